# --consistency stack (the default) refuses while a thread executes an old function (its
# top frame) or has it further down its stack, names thread and function, and changes
# nothing; --consistency entry patches anyway, the thread finishing in the old code. A
# revert in stack mode refuses while a thread is inside a replacement.
source "$(dirname "$0")/lib.sh"
cc_x86 -pthread -o "$T/cons" "$HP_SRC/tests/targets/consistency.c"
cc_x86 -shared -fPIC -o "$T/p.so" "$HP_SRC/tests/targets/consistency_patch.c"
for f in spin waiter quick; do
    hp-pack "$T/p.so" --target "$T/cons" --replace "$f=${f}_v2" --id "$f" -o "$T/$f.hpk" >/dev/null
done
start_victim c "$T/cons"

# A thread looping inside spin(): refused, by default, naming the thread and spin.
expect_answer spin spinning
spinner=$(ls "/proc/$VPID/task" | sort -n | tail -n 1)
before=$(exec_snapshot "$VPID")
expect_exit 1 hp-apply -p "$VPID" --allow-unsigned --timeout 500 "$T/spin.hpk"
error_is unsafe
jq_ok '.consistency == "stack"'
expect_err "thread $spinner is executing in 'spin'"
expect_err "--consistency stack"
[ "$(exec_snapshot "$VPID")" = "$before" ] || fail "a refused apply changed the victim's code"
expect_exit 0 hp-verify -p "$VPID"
jq_ok '.patches == []'

# A thread blocked in read() under waiter(): refused, the return address is found.
expect_answer wait waiting
expect_exit 1 hp-apply -p "$VPID" --allow-unsigned --timeout 500 --consistency stack "$T/waiter.hpk"
error_is unsafe
expect_err "a return address into 'waiter'"
[ "$(exec_snapshot "$VPID")" = "$before" ] || fail "a refused apply changed the victim's code"

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

# Once the spinning thread has left spin(), the stack-mode apply goes through.
expect_answer unspin unspun
expect_exit 0 hp-apply -p "$VPID" --allow-unsigned "$T/spin.hpk"
jq_ok '.record.consistency == "stack" and .record.state == "applied"'
# quick() is called from the main thread, blocked in fgets() meanwhile: never in use.
expect_exit 0 hp-apply -p "$VPID" --allow-unsigned "$T/quick.hpk"
expect_answer "quick 1" "quick 11"
expect_exit 0 hp-apply -p "$VPID" --revert quick
jq_ok '.unmapped == true'
expect_answer "quick 1" "quick 2"
