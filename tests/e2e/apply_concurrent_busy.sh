# Two hp-apply on one process at the same moment: while the first holds the process (held
# at a test hold point), the second exits 1 busy; the first then completes, and the victim
# is consistent (patched once).
source "$(dirname "$0")/lib.sh"
cc_x86 -o "$T/victim" "$HP_SRC/tests/targets/victim.c"
cc_x86 -shared -fPIC -o "$T/patch.so" "$HP_SRC/tests/targets/patch.c"
hp-pack "$T/patch.so" --target "$T/victim" --replace compute -o "$T/c.hpk" >/dev/null
start_victim v "$T/victim"
mkfifo "$T/hold"
HOTPATCH_TEST_HOLD=attached HOTPATCH_TEST_HOLD_FD=3 timeout 30 hp-apply -p "$VPID" --allow-unsigned "$T/c.hpk" \
    3<"$T/hold" >"$T/first.out" 2>"$T/first.err" &
apid=$!
HP_PIDS+=("$apid")
exec {hold}>"$T/hold"
wait_until "first hp-apply never held" grep -q "holding at attached" "$T/first.err"
track_child "$apid"
expect_exit 1 hp-apply -p "$VPID" --allow-unsigned "$T/c.hpk"
error_is busy
expect_err "another hp-apply is working on process $VPID"
echo x >&"$hold"
set +e; wait "$apid"; rc=$?; set -e
CHECKS=$((CHECKS + 1))
[ "$rc" -eq 0 ] || fail "the first hp-apply exited $rc: $(cat "$T/first.err")"
expect_answer 5 "22 4 1"
expect_exit 0 hp-verify -p "$VPID"
jq_ok '(.patches | length == 1) and .patches[0].state == "applied"'
