# Two hp-apply on one process at the same moment: while the first holds the process (held
# at a test hold point), the second exits 1 busy; the first then completes, and the victim
# is consistent (patched once).
source "$(dirname "$0")/lib.sh"
cc_x86 -o "$T/victim" "$HP_SRC/tests/targets/victim.c"
cc_x86 -shared -fPIC -o "$T/patch.so" "$HP_SRC/tests/targets/patch.c"
hp-pack "$T/patch.so" --target "$T/victim" --replace compute -o "$T/c.hpk" >/dev/null
start_victim v "$T/victim"
hold_apply attached first -p "$VPID" --allow-unsigned "$T/c.hpk"
expect_exit 1 hp-apply -p "$VPID" --allow-unsigned "$T/c.hpk"
error_is busy
expect_err "another hp-apply is working on process $VPID"
release_apply
wait_apply
CHECKS=$((CHECKS + 1))
[ "$RC" -eq 0 ] || fail "the first hp-apply exited $RC: $(cat "$T/first.err")"
expect_answer 5 "22 4 1"
expect_exit 0 hp-verify -p "$VPID"
jq_ok '(.patches | length == 1) and .patches[0].state == "applied"'
