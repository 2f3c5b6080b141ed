# Crash consistency, at random: runs of hp-apply SIGKILLed after a random delay, over a
# 20-function package in a victim whose 3 threads call all 20 functions and check every
# result, until at least 100 runs were killed mid-way and at least 30 of those kills
# landed while hp-apply was working on the process (it was its tracer at the moment of
# the kill, or the kill left a half state or the complete patch). After each kill the
# victim lives and is all-or-nothing or in a half state hp-verify names (after_kill in
# lib.sh); it is repaired, alternately by the next hp-apply and by --revert, and nothing
# is left. Every fourth run instead SIGKILLs a --revert of the complete patch after a
# random delay (its own window), until at least 10 of those kills landed while it worked
# (it was the tracer, or the patch was no longer complete): after each the victim is
# all-or-nothing, the patch kept mapped or a named half state, and is repaired.
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
rwalls=()
rtouch=()
for i in 1 2 3 4 5; do
    t0=$(date +%s%N)
    expect_exit 0 hp-apply -p "$VPID" --allow-unsigned "$T/many.hpk"
    walls+=($((($(date +%s%N) - t0) / 1000)))
    touch+=("$(jq '.timings.total_us - .timings.plan_us' "$T/out")")
    t0=$(date +%s%N)
    expect_exit 0 hp-apply -p "$VPID" --revert many
    rwalls+=($((($(date +%s%N) - t0) / 1000)))
    rtouch+=("$(jq '.timings.total_us' "$T/out")")
done
median() { printf '%s\n' "$@" | sort -n | sed -n 3p; }
# The window: from a little before the attach to the end of the run.
window() { # WALLS_MEDIAN WORK_MEDIAN -> "lo hi"
    local lo=$(($1 - $2 - $2 / 2))
    [ "$lo" -ge 0 ] || lo=0
    echo "$lo $1"
}
wall=$(median "${walls[@]}")
work=$(median "${touch[@]}")
read -r lo hi <<<"$(window "$wall" "$work")"
echo "one apply takes ${wall} us, ${work} us of it attached (medians of 5); window [$lo, $hi] us" >&2
rwall=$(median "${rwalls[@]}")
rwork=$(median "${rtouch[@]}")
read -r rlo rhi <<<"$(window "$rwall" "$rwork")"
echo "one revert takes ${rwall} us, ${rwork} us of it locked (medians of 5); window [$rlo, $rhi] us" >&2

tracer_now() { # TracerPid of the victim, without a fork
    local k v
    TP=0
    while read -r k v; do [ "$k" = TracerPid: ] && TP=$v && return 0; done <"/proc/$VPID/status"
}
exec {never}<> <(:) # read -t on it is a sleep without a fork
declare -A count=([none]=0 [complete]=0 [half]=0 [kept]=0 [finished]=0 [early]=0 [inside]=0 [killed]=0
    [batch_early]=0 [batch_finished]=0)
declare -A rcount
for k in "${!count[@]}"; do rcount[$k]=0; done
trial=0
# killed_run LO HI ARGS...: `hp-apply -p VPID ARGS` SIGKILLed after a random delay in
# [LO, HI] us; leaves its exit status in rc, its PID in ap and the victim's tracer at the
# moment of the kill in TP.
killed_run() {
    local lo=$1 hi=$2 delay_us
    shift 2
    delay_us=$((RANDOM * 32768 + RANDOM))
    delay_us=$((lo + delay_us % (hi - lo + 1)))
    hp-apply -p "$VPID" "$@" >"$T/out" 2>"$T/err" &
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
    [ "$rc" -eq 137 ] || [ "$rc" -eq 0 ] || fail "trial $trial: hp-apply $* exited $rc before the kill: $(cat "$T/err")"
}
# tally NAME FINISHED UNTOUCHED: after_kill, then the run counted in the array NAME. A run
# that finished before the kill must have left the outcome FINISHED; a kill counts as
# inside when it hit while hp-apply was the tracer or left another state than UNTOUCHED.
tally() {
    local -n c=$1
    local fin=$2 untouched=$3
    after_kill many
    if [ "$rc" -eq 0 ]; then
        [ "$OUTCOME" = "$fin" ] || fail "trial $trial: a finished run left $OUTCOME, not $fin"
        c[finished]=$((c[finished] + 1)) c[batch_finished]=$((c[batch_finished] + 1))
        return 0
    fi
    c[$OUTCOME]=$((c[$OUTCOME] + 1)) c[killed]=$((c[killed] + 1))
    if [ "$TP" = "$ap" ] || [ "$OUTCOME" != "$untouched" ]; then
        c[inside]=$((c[inside] + 1))
    else
        c[early]=$((c[early] + 1)) c[batch_early]=$((c[batch_early] + 1))
    fi
}
# adapt NAME LO HI RUNS WHAT: after RUNS runs counted in NAME, moves the window (the
# variables LO and HI) towards where the tool touches the process: later when most kills
# came before it, earlier (both ends) when most runs finished first.
adapt() {
    local -n c=$1 l=$2 h=$3
    local runs=$4 what=$5
    if [ "${c[batch_early]}" -gt $((runs / 2)) ]; then
        l=$((l + (h - l) / 3))
        echo "run $trial: ${c[batch_early]} of $runs $what kills before the attach; window now [$l, $h] us" >&2
    elif [ "${c[batch_finished]}" -gt $((runs / 2)) ]; then
        h=$((h - (h - l) / 4)) l=$((l - l / 4))
        echo "run $trial: ${c[batch_finished]} of $runs ${what}s finished first; window now [$l, $h] us" >&2
    fi
    c[batch_early]=0 c[batch_finished]=0
}
while [ "${count[killed]}" -lt 100 ] || [ "${count[inside]}" -lt 30 ] || [ "${rcount[inside]}" -lt 10 ]; do
    trial=$((trial + 1))
    [ "$trial" -le 800 ] ||
        fail "after 800 runs only ${count[killed]} applies were killed mid-way, ${count[inside]} of them" \
            "while attached, and ${rcount[inside]} reverts while attached"
    if [ $((trial % 4)) -eq 0 ]; then
        # A revert run: the complete patch, then a --revert killed at random.
        expect_exit 0 hp-apply -p "$VPID" --allow-unsigned "$T/many.hpk"
        killed_run "$rlo" "$rhi" --revert many
        tally rcount none complete
        repair many "$T/many.hpk" "$([ $((trial % 8)) -eq 0 ] && echo apply || echo revert)"
        [ $((trial % 20)) -ne 0 ] || adapt rcount rlo rhi 5 revert
    else
        killed_run "$lo" "$hi" --allow-unsigned "$T/many.hpk"
        tally count complete none
        repair many "$T/many.hpk" "$([ $((trial % 2)) -eq 0 ] && echo apply || echo revert)"
        [ $((trial % 20)) -ne 19 ] || adapt count lo hi 15 apply
    fi
done
CHECKS=$((CHECKS + 1))
[ "${count[inside]}" -ge 30 ] || fail "only ${count[inside]} kills landed while attached"
CHECKS=$((CHECKS + 1))
[ "${rcount[inside]}" -ge 10 ] || fail "only ${rcount[inside]} revert kills landed while attached"
ask calls
echo "$trial runs; applies: ${count[killed]} killed: ${count[inside]} while attached, ${count[early]} before the attach;" \
    "outcomes: no trace ${count[none]}, complete ${count[complete]}, half (named, repaired) ${count[half]};" \
    "finished before the kill ${count[finished]}; reverts: ${rcount[killed]} killed: ${rcount[inside]} while attached," \
    "${rcount[early]} before; outcomes: no trace ${rcount[none]}, kept mapped ${rcount[kept]}," \
    "half (named, repaired) ${rcount[half]}, complete ${rcount[complete]};" \
    "finished before the kill ${rcount[finished]}; victim: $REPLY checked calls, still running" >&2
