# A victim stopped by SIGSTOP stays stopped after the apply (and is patched); a victim
# already under another tracer (strace) is refused with exit 1 traced, untouched.
source "$(dirname "$0")/lib.sh"
cc_x86 -o "$T/victim" "$HP_SRC/tests/targets/victim.c"
cc_x86 -shared -fPIC -o "$T/patch.so" "$HP_SRC/tests/targets/patch.c"
hp-pack "$T/patch.so" --target "$T/victim" --replace compute -o "$T/s.hpk" >/dev/null
state() { awk '{print $3}' "/proc/$VPID/stat"; }

start_victim v "$T/victim"
kill -STOP "$VPID"
wait_until "victim did not stop" test "$(state)" = T
expect_exit 0 hp-apply -p "$VPID" --allow-unsigned "$T/s.hpk"
CHECKS=$((CHECKS + 1))
[ "$(state)" = T ] || fail "victim is in state $(state) after the apply, expected T (stopped)"
kill -CONT "$VPID"
expect_answer 5 "22 4 1"

start_victim w "$T/victim"
strace -o /dev/null -p "$VPID" 2>"$T/strace.err" &
spid=$!
HP_PIDS+=("$spid")
wait_until "strace never attached" is_traced "$VPID"
exec_snapshot "$VPID" >"$T/before"
expect_exit 1 hp-apply -p "$VPID" --allow-unsigned "$T/s.hpk"
error_is traced
expect_err "strace"
exec_snapshot "$VPID" >"$T/after"
CHECKS=$((CHECKS + 1))
diff "$T/before" "$T/after" >&2 || fail "executable mappings changed"
