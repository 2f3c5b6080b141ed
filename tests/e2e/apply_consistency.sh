# --consistency stack (the default) refuses while a thread executes an old function (its
# top frame) or has it further down its stack, names thread and function, and changes
# nothing, after retrying (at least 2 attempts, each holding the threads well under the
# timeout: timings.max_attempt_freeze_us); between attempts the victim answers requests;
# a thread that leaves the function while hp-apply retries lets it through (attempts >= 2
# in the record's timings); with frame pointers (a second build with
# -fno-omit-frame-pointer) the refusal names the frame of a function waiting two frames
# down; a thread whose signal handler waits on an alternate signal stack has the stack
# below it scanned, while look-alike words in an ordinary frame are no signal frame; a
# thread whose stack pointer lies in no mapping is refused; --consistency entry patches
# anyway, the thread finishing in the old code. A revert in stack mode refuses while a
# thread is inside a replacement.
source "$(dirname "$0")/lib.sh"
cc_x86 -pthread -o "$T/cons" "$HP_SRC/tests/targets/consistency.c"
cc_x86 -shared -fPIC -o "$T/p.so" "$HP_SRC/tests/targets/consistency_patch.c"
for f in spin waiter quick alt_waiter; do
    hp-pack "$T/p.so" --target "$T/cons" --replace "$f=${f}_v2" --id "$f" -o "$T/$f.hpk" >/dev/null
done
# refused ARGS...: hp-apply --allow-unsigned --timeout 500 ARGS exits 1 unsafe, and the
# victim's code is unchanged.
refused() {
    local before
    before=$(exec_snapshot "$VPID")
    expect_exit 1 hp-apply -p "$VPID" --allow-unsigned --timeout 500 "$@"
    error_is unsafe
    CHECKS=$((CHECKS + 1))
    [ "$(exec_snapshot "$VPID")" = "$before" ] || fail "a refused apply changed the victim's code"
}
# Asks the victim $1, expects answer $2, and sets NEW_TID to the one thread the request
# started: the thread of /proc/PID/task that was not there before (not the largest id:
# thread ids wrap around at pid_max).
started_by() {
    local before
    before=$(ls "/proc/$VPID/task" | sort)
    expect_answer "$1" "$2"
    NEW_TID=$(comm -13 <(echo "$before") <(ls "/proc/$VPID/task" | sort))
    CHECKS=$((CHECKS + 1))
    [ -n "$NEW_TID" ] && [ "$(echo "$NEW_TID" | wc -l)" -eq 1 ] ||
        fail "'$1' started threads '$NEW_TID', expected one"
}
start_victim c "$T/cons"

# A thread looping inside spin(): refused, by default, naming the thread and spin.
started_by spin spinning
spinner=$NEW_TID
refused "$T/spin.hpk"
jq_ok '.consistency == "stack"'
expect_err "thread $spinner is executing in 'spin'"
expect_err "--consistency stack"
CHECKS=$((CHECKS + 1))
n=$(grep -oE 'gave up after [0-9]+ attempts' "$T/err" | grep -oE '[0-9]+')
[ "${n:-0}" -ge 2 ] || fail "gave up after ${n:-no} attempts: it never retried"
# Each attempt held the threads only for its check, not until the timeout (a sanity
# bound, far above the real figure, not a speed test).
jq_ok ".timings.attempts == $n and .timings.max_attempt_freeze_us > 0"
jq_ok '.timings.max_attempt_freeze_us < 250000'
echo "spin refused: $n attempts in 500 ms, longest freeze $(jq .timings.max_attempt_freeze_us "$T/out") us" >&2
expect_exit 0 hp-verify -p "$VPID"
jq_ok '.patches == []'

# A thread blocked in read() under waiter(): refused, the return address is found.
expect_answer wait waiting
refused --consistency stack "$T/waiter.hpk"
expect_err "a return address into 'waiter'"

# Entry mode patches it; the blocked thread finishes in the old code, the next in the new.
expect_exit 0 hp-apply -p "$VPID" --allow-unsigned --consistency entry "$T/waiter.hpk"
jq_ok '.record.consistency == "entry" and .record.state == "applied"'
expect_answer wake "waited 7"
expect_answer wait waiting
expect_answer wake "waited 107"

# A thread blocked inside the replacement: a stack-mode revert refuses, naming the code.
expect_answer wait waiting
expect_exit 1 hp-apply -p "$VPID" --revert waiter --timeout 500
error_is unsafe
expect_err "the code of patch 'waiter'"
expect_exit 0 hp-verify -p "$VPID"
jq_ok '.patches[0].id == "waiter" and .patches[0].state == "applied"'
# Entry mode reverts; the code stays mapped while the thread is in it, and it finishes.
expect_exit 0 hp-apply -p "$VPID" --revert waiter --consistency entry
jq_ok '.unmapped == false and (.kept_mapped_because | test("thread"))'
expect_answer wake "waited 107"
expect_answer wait waiting
expect_answer wake "waited 7"

# A thread that leaves spin() while hp-apply retries: hp-apply holds (a test hold point)
# after its first attempt found the thread there and resumed the process; the thread is
# then let out of spin() and ends, and the next attempt goes through. (The thread is the
# one spinning since the start.)
hold_apply retry retry -p "$VPID" --allow-unsigned --timeout 30000 "$T/spin.hpk"
# Between attempts the threads run: the victim answers while hp-apply waits to retry.
expect_answer "quick 5" "quick 6"
release_apply
expect_answer unspin unspun
wait_apply
CHECKS=$((CHECKS + 1))
[ "$RC" -eq 0 ] || fail "hp-apply exited $RC after the thread left spin(): $(cat "$T/retry.err")"
cp "$T/retry.out" "$T/out"
jq_ok '.record.consistency == "stack" and .record.state == "applied" and .timings.attempts >= 2'
jq_ok '.timings.max_attempt_freeze_us >= .timings.freeze_us'
echo "spin: applied after $(jq .timings.attempts "$T/out") attempts, longest freeze $(jq .timings.max_attempt_freeze_us "$T/out") us" >&2
# quick() is called from the main thread, blocked in fgets() meanwhile: never in use.
expect_exit 0 hp-apply -p "$VPID" --allow-unsigned "$T/quick.hpk"
expect_answer "quick 1" "quick 11"
expect_exit 0 hp-apply -p "$VPID" --revert quick
jq_ok '.unmapped == true'
expect_answer "quick 1" "quick 2"

# A thread whose signal handler blocks on an alternate signal stack: alt_waiter() is on
# the stack the signal interrupted, which is found through the signal frame and scanned.
started_by altwait waiting
alt_tid=$NEW_TID
refused "$T/alt_waiter.hpk"
expect_err "thread $alt_tid holds"
expect_err "on its interrupted stack (below its alternate signal stack)"
expect_err "a return address into 'alt_waiter'"
expect_answer wake "waited 1007"

# Words in an ordinary frame that look like a signal frame's uc_stack (a pointer just
# below the stack pointer, 0, a size, and an unmapped "interrupted stack pointer" where a
# signal frame keeps it): without a signal-return trampoline's address before them they
# are no signal frame, and stack mode applies.
expect_answer decoy waiting
expect_exit 0 hp-apply -p "$VPID" --allow-unsigned "$T/quick.hpk"
jq_ok '.record.consistency == "stack" and .record.state == "applied"'
expect_exit 0 hp-apply -p "$VPID" --revert quick
expect_answer wake "waited 9"

# Frame pointers: the same victim built with -fno-omit-frame-pointer, a thread blocked in
# read() under waiter() under deep_waiter(): the chain names deep_waiter's frame.
cc_x86 -pthread -fno-omit-frame-pointer -o "$T/cons-fp" "$HP_SRC/tests/targets/consistency.c"
hp-pack "$T/p.so" --target "$T/cons-fp" --replace deep_waiter=deep_waiter_v2 --id deep -o "$T/deep.hpk" >/dev/null
start_victim fp "$T/cons-fp"
started_by deepwait waiting
waiter_tid=$NEW_TID
refused "$T/deep.hpk"
expect_err "thread $waiter_tid has a return address into 'deep_waiter' in frame #1"
expect_answer wake "waited 14"
expect_exit 0 hp-apply -p "$VPID" --allow-unsigned "$T/deep.hpk"
expect_answer deepwait waiting
expect_answer wake "waited 214"

# A thread whose stack pointer lies in no mapping (x86-64 asm: it loops without touching
# memory): its stack cannot be checked, which is a refusal naming the thread, never a pass.
# (A spinning thread first: the lowest running thread is the one borrowed for the
# system calls of the prepare phase, which need a stack.)
start_victim bad "$T/cons"
expect_answer spin spinning
started_by badsp looping
bad_tid=$NEW_TID
refused "$T/quick.hpk"
expect_err "thread $bad_tid's stack pointer 0x1000 lies in no mapping: its stack cannot be checked"
kill -9 "$VPID"
