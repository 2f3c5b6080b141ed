# A victim stopped by SIGSTOP stays stopped after the apply (and is patched); a victim
# already under another tracer (strace) is refused with exit 1 traced, untouched.
source "$(dirname "$0")/lib.sh"
cc_x86 -o "$T/victim" "$HP_SRC/tests/targets/victim.c"
cc_x86 -shared -fPIC -o "$T/patch.so" "$HP_SRC/tests/targets/patch.c"
hp-pack "$T/patch.so" --target "$T/victim" --replace compute -o "$T/s.hpk" >/dev/null
state() { awk '{print $3}' "/proc/$VPID/stat"; }

start_victim v "$T/victim"
kill -STOP "$VPID"
for i in $(seq 1 1000); do [ "$(state)" = T ] && break; sleep 0.005; done
CHECKS=$((CHECKS + 1))
[ "$(state)" = T ] || fail "victim did not stop"
expect_exit 0 hp-apply -p "$VPID" --allow-unsigned "$T/s.hpk"
CHECKS=$((CHECKS + 1))
[ "$(state)" = T ] || fail "victim is in state $(state) after the apply, expected T (stopped)"
kill -CONT "$VPID"
expect_answer 5 "22 4 1"

start_victim w "$T/victim"
strace -o /dev/null -p "$VPID" 2>"$T/strace.err" &
spid=$!
HP_PIDS+=("$spid")
for i in $(seq 1 1000); do
    [ "$(awk '/TracerPid/ {print $2}' "/proc/$VPID/status")" != 0 ] && break
    [ "$i" -eq 1000 ] && fail "strace never attached"
    sleep 0.005
done
exec_snapshot "$VPID" >"$T/before"
expect_exit 1 hp-apply -p "$VPID" --allow-unsigned "$T/s.hpk"
error_is traced
expect_err "strace"
exec_snapshot "$VPID" >"$T/after"
CHECKS=$((CHECKS + 1))
diff "$T/before" "$T/after" >&2 || fail "executable mappings changed"
