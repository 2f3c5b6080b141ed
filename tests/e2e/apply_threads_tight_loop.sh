# 8 threads call the patched function in a tight loop during the apply: no crash, and
# every thread switches to the new code.
source "$(dirname "$0")/lib.sh"
cc_x86 -pthread -o "$T/threads" "$HP_SRC/tests/targets/threads.c"
cc_x86 -shared -fPIC -o "$T/p.so" "$HP_SRC/tests/targets/threads_patch.c"
hp-pack "$T/p.so" --target "$T/threads" --replace compute -o "$T/loop.hpk" >/dev/null
start_victim t "$T/threads" 8
[ "$(ls /proc/$VPID/task | wc -l)" -eq 9 ] || fail "victim does not have 9 threads"
# The workers are looping before the apply: the call count grows.
ask calls
first=${REPLY#calls }
calls_grew() { ask calls; [ "${REPLY#calls }" -gt "$first" ]; }
CHECKS=$((CHECKS + 1))
wait_until "the workers are not calling compute" calls_grew
expect_exit 0 hp-apply -p "$VPID" --allow-unsigned "$T/loop.hpk"
jq_ok '.ok and .record.state == "applied"'
expect_answer switched "switched 8"
kill -0 "$VPID" || fail "victim died"
expect_exit 0 hp-apply -p "$VPID" --revert loop
ask calls
case "$REPLY" in calls\ *) ;; *) fail "victim did not answer after revert" ;; esac
kill -0 "$VPID" || fail "victim died after revert"
