# Crash consistency, at random: runs of hp-apply SIGKILLed after a random delay, over a
# 20-function package in a victim whose 3 threads call all 20 functions and check every
# result, until at least 100 runs were killed mid-way and at least 30 of those kills
# landed while hp-apply was working on the process (it was its tracer at the moment of
# the kill, or the kill left a half state or the complete patch). After each kill the
# victim lives and is all-or-nothing or in a half state hp-verify names (after_kill in
# lib.sh); it is repaired, alternately by the next hp-apply and by --revert, and nothing
# is left.
# Most of a run's wall time is the tool starting up before it touches the process, so
# the delays are drawn over the window where it does: calibrated from the tool's own
# timings (prepare + switch, the part after the plan), and moved towards the end of the
# run when too few kills land in it. The delay is the point of the test, not a
# synchronisation: every moment of that window is a kill point. The verdict does not
# depend on luck: the window adapts and more runs are made (at most 600).
source "$(dirname "$0")/lib.sh"
build_many
start_victim m "$T/many" 3

# One whole apply here, and the part of it after the plan (attach to detach), in
# microseconds: the medians of 5.
walls=()
touch=()
for i in 1 2 3 4 5; do
    t0=$(date +%s%N)
    expect_exit 0 hp-apply -p "$VPID" --allow-unsigned "$T/many.hpk"
    walls+=($((($(date +%s%N) - t0) / 1000)))
    touch+=("$(jq '.timings.total_us - .timings.plan_us' "$T/out")")
    expect_exit 0 hp-apply -p "$VPID" --revert many
done
median() { printf '%s\n' "$@" | sort -n | sed -n 3p; }
wall=$(median "${walls[@]}")
work=$(median "${touch[@]}")
# The window: from a little before the attach to the end of the run.
lo=$((wall - work - work / 2))
[ "$lo" -ge 0 ] || lo=0
hi=$wall
echo "one apply takes ${wall} us, ${work} us of it attached (medians of 5); window [$lo, $hi] us" >&2

tracer_now() { # TracerPid of the victim, without a fork
    local k v
    TP=0
    while read -r k v; do [ "$k" = TracerPid: ] && TP=$v && return 0; done <"/proc/$VPID/status"
}
exec {never}<> <(:) # read -t on it is a sleep without a fork
declare -A count=([none]=0 [complete]=0 [half]=0 [kept]=0 [finished]=0 [early]=0 [inside]=0)
trial=0
killed=0
batch_early=0
batch_finished=0
while [ "$killed" -lt 100 ] || [ "${count[inside]}" -lt 30 ]; do
    trial=$((trial + 1))
    [ "$trial" -le 600 ] ||
        fail "after 600 runs only $killed were killed mid-apply, ${count[inside]} of them while attached"
    delay_us=$((RANDOM * 32768 + RANDOM))
    delay_us=$((lo + delay_us % (hi - lo + 1)))
    hp-apply -p "$VPID" --allow-unsigned "$T/many.hpk" >"$T/out" 2>"$T/err" &
    ap=$!
    HP_PIDS+=("$ap")
    read -r -t "$((delay_us / 1000000)).$(printf '%06d' $((delay_us % 1000000)))" -u "$never" || true
    tracer_now
    kill -9 "$ap" 2>/dev/null || true
    set +e
    wait "$ap"
    rc=$?
    set -e
    HP_PIDS=("$VPID") # reaped: its PID may be reused, never kill it later
    case $rc in
    137) ;;
    0) count[finished]=$((count[finished] + 1)) batch_finished=$((batch_finished + 1)) ;;
    *) fail "trial $trial: hp-apply exited $rc before the kill: $(cat "$T/err")" ;;
    esac
    after_kill many
    [ "$rc" -ne 0 ] || [ "$OUTCOME" = complete ] || fail "trial $trial: a finished apply is $OUTCOME"
    if [ "$rc" -ne 0 ]; then
        count[$OUTCOME]=$((count[$OUTCOME] + 1))
        killed=$((killed + 1))
        if [ "$TP" = "$ap" ] || [ "$OUTCOME" != none ]; then
            count[inside]=$((count[inside] + 1))
        elif [ "$OUTCOME" = none ]; then
            count[early]=$((count[early] + 1)) batch_early=$((batch_early + 1))
        fi
    fi
    repair many "$T/many.hpk" "$([ $((trial % 2)) -eq 0 ] && echo apply || echo revert)"
    # Every 20 runs: move the window towards where the tool touches the process.
    if [ $((trial % 20)) -eq 0 ]; then
        if [ "$batch_early" -gt 10 ]; then
            lo=$((lo + (hi - lo) / 3))
            echo "run $trial: $batch_early of 20 kills before the attach; window now [$lo, $hi] us" >&2
        elif [ "$batch_finished" -gt 10 ]; then
            hi=$((hi - (hi - lo) / 4))
            echo "run $trial: $batch_finished of 20 runs finished first; window now [$lo, $hi] us" >&2
        fi
        batch_early=0
        batch_finished=0
    fi
done
CHECKS=$((CHECKS + 1))
[ "${count[inside]}" -ge 30 ] || fail "only ${count[inside]} kills landed while attached"
ask calls
echo "$trial runs, $killed killed: ${count[inside]} while attached, ${count[early]} before the attach;" \
    "outcomes: no trace ${count[none]}, complete ${count[complete]}, half (named, repaired) ${count[half]};" \
    "finished before the kill ${count[finished]}; victim: $REPLY checked calls, still running" >&2
