# Crash consistency, at random: runs of hp-apply, until 100 were killed mid-way, over a 20-function package in a
# victim whose 3 threads call all 20 functions and check every result, each SIGKILLed
# after a random delay within (most of) the time a whole apply takes. After each kill the victim
# lives and is all-or-nothing or in a half state hp-verify names (after_kill in lib.sh);
# it is repaired, alternately by the next hp-apply and by --revert, and nothing is left.
# The delay is the point of the test, not a synchronisation: every moment of an apply
# is a kill point.
source "$(dirname "$0")/lib.sh"
build_many
start_victim m "$T/many" 3

# How long one whole apply takes here (the median of 5), in microseconds.
walls=()
for i in 1 2 3 4 5; do
    t0=$(date +%s%N)
    expect_exit 0 hp-apply -p "$VPID" --allow-unsigned "$T/many.hpk"
    walls+=($((($(date +%s%N) - t0) / 1000)))
    expect_exit 0 hp-apply -p "$VPID" --revert many
done
wall=$(printf '%s\n' "${walls[@]}" | sort -n | sed -n 3p)
echo "one apply takes ${wall} us (median of 5)" >&2

exec {never}<> <(:) # read -t on it is a sleep without a fork
declare -A count=([none]=0 [complete]=0 [half]=0 [finished]=0)
trial=0
killed=0
while [ "$killed" -lt 100 ]; do
    trial=$((trial + 1))
    [ "$trial" -le 400 ] || fail "only $killed of 400 runs were killed mid-apply"
    delay_us=$((RANDOM * 32768 + RANDOM))
    delay_us=$((delay_us % (wall * 3 / 4 + 1)))
    hp-apply -p "$VPID" --allow-unsigned "$T/many.hpk" >"$T/out" 2>"$T/err" &
    ap=$!
    HP_PIDS+=("$ap")
    read -r -t "$((delay_us / 1000000)).$(printf '%06d' $((delay_us % 1000000)))" -u "$never" || true
    kill -9 "$ap" 2>/dev/null || true
    set +e
    wait "$ap"
    rc=$?
    set -e
    HP_PIDS=("$VPID") # reaped: its PID may be reused, never kill it later
    case $rc in
    137) ;;
    0) count[finished]=$((count[finished] + 1)) ;;
    *) fail "trial $trial: hp-apply exited $rc before the kill: $(cat "$T/err")" ;;
    esac
    after_kill many
    [ "$rc" -ne 0 ] || [ "$OUTCOME" = complete ] || fail "trial $trial: a finished apply is $OUTCOME"
    if [ "$rc" -ne 0 ]; then
        count[$OUTCOME]=$((count[$OUTCOME] + 1))
        killed=$((killed + 1))
    fi
    repair many "$T/many.hpk" "$([ $((trial % 2)) -eq 0 ] && echo apply || echo revert)"
done
ask calls
echo "$trial trials: killed with no trace ${count[none]}, killed complete ${count[complete]}," \
    "killed half (named, repaired) ${count[half]}, finished before the kill ${count[finished]};" \
    "victim: $REPLY checked calls, still running" >&2
