# 1000 threads on 64 KiB stacks: 996 blocked in system calls (249 each in read() on a
# pipe, poll(), a condition variable's futex and nanosleep(30 s)), confirmed blocked
# through /proc, and 4 calling the patched function in a loop. hp-apply and the revert
# complete, the workers switch both ways, and the blocked threads are unaffected by the
# two stops: still blocked afterwards, then woken, each read gets exactly its byte, each
# poll returns POLLIN, each futex wait returns 0, each sleep returns 0 after its full
# 30 s (long enough to outlast the apply and the revert, which is checked: else the
# test is void). The freeze is printed to stderr (not asserted).
source "$(dirname "$0")/lib.sh"
cc_x86 -pthread -o "$T/thousand" "$HP_SRC/tests/targets/thousand.c"
cc_x86 -shared -fPIC -o "$T/p.so" "$HP_SRC/tests/targets/thousand_patch.c"
hp-pack "$T/p.so" --target "$T/thousand" --replace compute -o "$T/k.hpk" >/dev/null
SLEEP=30 # long enough to outlast the apply and the revert on a loaded 2-core machine
start_victim k "$T/thousand" 4 249 "$SLEEP"
CHECKS=$((CHECKS + 1))
[ "$REPLY" = "ready 1000" ] || fail "victim: '$REPLY'"
CHECKS=$((CHECKS + 1))
[ "$(ls "/proc/$VPID/task" | wc -l)" -eq 1001 ] || fail "victim does not have 1001 threads"

# Threads per system call, as /proc shows them (x86-64 numbers): read 0 (the readers and
# the main thread reading stdin), futex 202, and poll 7 / ppoll 271 / nanosleep 35 /
# clock_nanosleep 230, which continue as restart_syscall 219 after a ptrace stop.
COUNTS=
declare -A BY_NR
census() { # BY_NR[system call number] = threads in it (one read per file: cat is slower)
    local f nr
    BY_NR=()
    for f in /proc/"$VPID"/task/*/syscall; do
        read -r nr _ 2>/dev/null <"$f" || continue
        BY_NR[$nr]=$((${BY_NR[$nr]:-0} + 1))
    done
}
all_blocked() {
    census
    COUNTS="${BY_NR[0]:-0} ${BY_NR[202]:-0} $((${BY_NR[7]:-0} + ${BY_NR[271]:-0} + ${BY_NR[35]:-0} + ${BY_NR[230]:-0} + ${BY_NR[219]:-0}))"
    [ "$COUNTS" = "250 249 498" ]
}
by_nr() { local k; for k in "${!BY_NR[@]}"; do printf '%s:%s ' "$k" "${BY_NR[$k]}"; done; }
wait_until "the threads never all blocked in their system calls" all_blocked

timings() { # WHAT: the tool's numbers, for the log
    echo "$1: $(jq -c '.timings | {freeze_us, total_us, attempts}' "$T/out")" >&2
}
expect_exit 0 hp-apply -p "$VPID" --allow-unsigned --timeout 30000 "$T/k.hpk"
jq_ok '.ok and .record.state == "applied"'
timings "apply with 1000 threads"
expect_answer "switched new" "switched 4"
expect_answer "compute 5" 105
CHECKS=$((CHECKS + 1))
all_blocked || fail "blocked threads left their system calls during the apply (read, futex," \
    "poll+sleep: $COUNTS, want 250 249 498; by system call: $(by_nr))"

expect_exit 0 hp-apply -p "$VPID" --revert k --timeout 30000
jq_ok '.ok'
timings "revert with 1000 threads"
expect_answer "switched old" "switched 4"
expect_answer "compute 5" 6
# Both stops are over and every blocked thread is still in its call: the sleepers too,
# or the check of their sleep below would be void.
ask awake
read -r _ n min_ns <<<"$REPLY"
CHECKS=$((CHECKS + 1))
[ "$n" = 0 ] || [ "$min_ns" -ge "${SLEEP}000000000" ] || fail "$n sleepers returned early, one after $min_ns ns of $SLEEP s"
CHECKS=$((CHECKS + 1))
[ "$n" = 0 ] || fail "test void: $n sleepers returned (after the full $SLEEP s) before the apply and revert were done"
CHECKS=$((CHECKS + 1))
all_blocked || fail "blocked threads left their system calls during the revert (read, futex," \
    "poll+sleep: $COUNTS, want 250 249 498; by system call: $(by_nr))"

expect_answer feed fed
ask results
CHECKS=$((CHECKS + 1))
[ "$REPLY" = "results 249 249 249 249 249 249" ] ||
    fail "after wake-up (readers done/ok, pollers done/ok, waiters done/ok): '$REPLY'"
# The sleepers may have up to $SLEEP s left: a longer watchdog than ask's 10 s.
echo sleepers >&"$VIN"
read -t $((SLEEP + 30)) -r REPLY <&"$VOUT" || fail "victim did not answer 'sleepers'"
read -r word ndone nok min_ns <<<"$REPLY"
CHECKS=$((CHECKS + 1))
[ "$word" = sleepers ] && [ "$ndone" = 249 ] && [ "$nok" = 249 ] ||
    fail "sleepers (done, ok = full $SLEEP s and no error, shortest ns): '$REPLY'"
echo "shortest sleep: $min_ns ns of ${SLEEP}000000000" >&2
kill -0 "$VPID" || fail "victim died"
