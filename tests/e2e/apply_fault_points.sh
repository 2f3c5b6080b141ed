# Crash consistency, deterministic: hp-apply SIGKILLed at every named step
# (HOTPATCH_TEST_FAULT, man hp-apply), including inside every remote system call while a
# thread is borrowed, over a 20-function package in a victim whose 4 threads call all 20
# functions and check every result; then hp-apply --revert killed at each of its steps
# (after the first, the tenth and the last site is restored, before the unmap, inside the
# munmap), and the repair of what killed runs left killed in turn (a preparing record
# being rolled back, debris being removed, in their remote calls too). After each kill
# the victim lives and is all-or-nothing (after_kill in lib.sh); the half states are
# repaired, alternately by the next hp-apply and by --revert.
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
# A thread borrowed for a system call finishes the call on its own once hp-apply is dead
# (man hp-apply): after a kill inside a munmap, wait until that munmap has happened.
unmapped() { ! grep -q hotpatch "/proc/$VPID/maps"; }
settle() {
    case $1 in
    *in-syscall*) wait_until "the borrowed thread never finished its munmap" unmapped ;;
    esac
}
check_step() {
    local step=$1
    trial=$((trial + 1))
    after_kill many
    seen[$step]=$OUTCOME
    echo "fault $step -> $OUTCOME" >&2
    repair many "$T/many.hpk" "$([ $((trial % 2)) -eq 0 ] && echo apply || echo revert)"
}

for step in attached borrowed prepared first-site site:10 applied; do
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

# The revert killed: apply completely, then kill --revert at STEP.
kill_revert_at() {
    local step=$1
    expect_exit 0 hp-apply -p "$VPID" --allow-unsigned "$T/many.hpk"
    set +e
    HOTPATCH_TEST_FAULT=$step hp-apply -p "$VPID" --revert many >"$T/out" 2>"$T/err"
    RC=$?
    set -e
    [ "$RC" -eq 137 ] || fail "hp-apply --revert was not killed at $step (exit $RC): $(cat "$T/err")"
    settle "$step"
    check_step "revert $step"
}
# restored:20 is after the last site, before the record says reverted; the munmap is the
# revert's first remote system call: killed inside it, the borrowed thread still makes the
# call, and nothing is left.
for step in restored:1 restored:10 restored:20 unmapping in-syscall:1 after-syscall:1; do
    kill_revert_at "$step"
done

# The repair killed: leave a half state, then kill the next hp-apply while it repairs.
kill_repair_at() {
    local leave=$1 step=$2
    kill_at "$leave"
    [ "$RC" -eq 137 ] || fail "hp-apply was not killed at $leave (exit $RC): $(cat "$T/err")"
    kill_at "$step"
    [ "$RC" -eq 137 ] || fail "the repair was not killed at $step after $leave (exit $RC): $(cat "$T/err")"
    [ "$leave" != site:10 ] || settle "$step"
    check_step "repair of $leave at $step"
}
# A preparing record with 10 sites written, rolled back: killed after its first site is
# restored, before its unmap, inside the munmap.
kill_repair_at site:10 restored:1
kill_repair_at site:10 unmapping
kill_repair_at site:10 in-syscall:1
# Debris (the memfd mapped, no record yet): killed before it is removed, and inside the
# first and second remote calls that remove it.
kill_repair_at after-syscall:3 debris
kill_repair_at after-syscall:3 in-syscall:1
kill_repair_at after-syscall:3 after-syscall:2

# What each step leaves, as the issue asks to see it.
[ "${seen[attached]}" = none ] || fail "killed after attaching: ${seen[attached]}"
[ "${seen[prepared]}" = half ] || fail "killed when prepared: ${seen[prepared]}"
[ "${seen[first-site]}" = half ] || fail "killed after the first site: ${seen[first-site]}"
[ "${seen[applied]}" = complete ] || fail "killed after the switch: ${seen[applied]}"
[ "${seen[site:10]}" = half ] || fail "killed after the tenth site: ${seen[site:10]}"
for s in restored:1 restored:10 restored:20; do
    [ "${seen[revert $s]}" = half ] || fail "revert killed at $s: ${seen[revert $s]}"
done
[ "${seen[revert unmapping]}" = kept ] || fail "revert killed before the unmap: ${seen[revert unmapping]}"
[ "${seen[revert in-syscall:1]}" = none ] || fail "revert killed in its munmap: ${seen[revert in-syscall:1]}"
[ "${seen[revert after-syscall:1]}" = none ] || fail "revert killed after its munmap: ${seen[revert after-syscall:1]}"
[ "${seen[repair of after-syscall:3 at debris]}" = half ] || fail "debris removal killed: not debris any more?"
ask calls
echo "victim: $REPLY checked calls, still running" >&2
