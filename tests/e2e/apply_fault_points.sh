# Crash consistency, deterministic: hp-apply SIGKILLed at every named step
# (HOTPATCH_TEST_FAULT, man hp-apply), including inside every remote system call while a
# thread is borrowed, over a 20-function package in a victim whose 4 threads call all 20
# functions and check every result. After each kill the victim lives and is
# all-or-nothing (after_kill in lib.sh); the half states are repaired, alternately by the
# next hp-apply and by --revert.
source "$(dirname "$0")/lib.sh"
build_many
start_victim m "$T/many" 4

declare -A seen
trial=0
kill_at() {
    local step=$1
    set +e
    HOTPATCH_TEST_FAULT=$step hp-apply -p "$VPID" --allow-unsigned "$T/many.hpk" >"$T/out" 2>"$T/err"
    RC=$?
    set -e
}
check_step() {
    local step=$1
    trial=$((trial + 1))
    after_kill many
    seen[$step]=$OUTCOME
    repair many "$T/many.hpk" "$([ $((trial % 2)) -eq 0 ] && echo apply || echo revert)"
}

for step in attached borrowed prepared first-site applied; do
    kill_at "$step"
    [ "$RC" -eq 137 ] || fail "hp-apply was not killed at $step (exit $RC): $(cat "$T/err")"
    check_step "$step"
done
# Inside the remote system calls: every occurrence, until an apply runs past the fault.
for kind in in-syscall after-syscall; do
    for k in $(seq 1 30); do
        kill_at "$kind:$k"
        if [ "$RC" -eq 0 ]; then
            [ "$k" -gt 3 ] || fail "only $((k - 1)) remote system calls?"
            expect_exit 0 hp-apply -p "$VPID" --revert many
            clean_victim
            break
        fi
        [ "$RC" -eq 137 ] || fail "hp-apply was not killed at $kind:$k (exit $RC): $(cat "$T/err")"
        check_step "$kind:$k"
    done
done

# What each step leaves, as the issue asks to see it.
[ "${seen[attached]}" = none ] || fail "killed after attaching: ${seen[attached]}"
[ "${seen[prepared]}" = half ] || fail "killed when prepared: ${seen[prepared]}"
[ "${seen[first-site]}" = half ] || fail "killed after the first site: ${seen[first-site]}"
[ "${seen[applied]}" = complete ] || fail "killed after the switch: ${seen[applied]}"
for s in "${!seen[@]}"; do echo "fault $s -> ${seen[$s]}" >&2; done
ask calls
echo "victim: $REPLY checked calls, still running" >&2
