# A victim stopped by SIGSTOP stays stopped after the apply (and is patched) and after the
# revert: every one of its 4 threads is in state T afterwards; a victim already under
# another tracer (strace) is refused with exit 1 traced, untouched.
source "$(dirname "$0")/lib.sh"
cc_x86 -o "$T/victim" "$HP_SRC/tests/targets/victim.c"
cc_x86 -shared -fPIC -o "$T/patch.so" "$HP_SRC/tests/targets/patch.c"
hp-pack "$T/patch.so" --target "$T/victim" --replace compute -o "$T/s.hpk" >/dev/null
# Three threads idle in pause(), the main thread answers "N" with compute(N).
cat >"$T/mt.c" <<'SRC'
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
__attribute__((noipa)) long compute(long x) { return x + 1; }
static void *idle(void *a) { (void)a; for (;;) pause(); return NULL; }
int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    pthread_t t;
    for (int i = 0; i < 3; i++) pthread_create(&t, NULL, idle, NULL);
    printf("ready\n");
    char line[64];
    while (fgets(line, sizeof line, stdin)) printf("%ld\n", compute(atol(line)));
    return 0;
}
SRC
cat >"$T/mtp.c" <<'SRC'
long compute_v2(long x) { return x + 100; }
SRC
cc_x86 -pthread -o "$T/mt" "$T/mt.c"
cc_x86 -shared -fPIC -o "$T/mtp.so" "$T/mtp.c"
hp-pack "$T/mtp.so" --target "$T/mt" --replace compute=compute_v2 --id mt -o "$T/mt.hpk" >/dev/null
# The states of every thread, one letter each.
states() { for f in /proc/$VPID/task/*/stat; do sed 's/.*) \(.\).*/\1/' "$f"; done | tr -d '\n'; }
# (A function, so wait_until reads the states anew on every try.)
all_stopped() { [ "$(states)" = TTTT ]; }

start_victim v "$T/mt"
CHECKS=$((CHECKS + 1))
[ "$(ls "/proc/$VPID/task" | wc -l)" -eq 4 ] || fail "the victim has $(ls "/proc/$VPID/task" | wc -l) threads, not 4"
kill -STOP "$VPID"
wait_until "victim did not stop" all_stopped
expect_exit 0 hp-apply -p "$VPID" --allow-unsigned "$T/mt.hpk"
CHECKS=$((CHECKS + 1))
[ "$(states)" = TTTT ] || fail "thread states $(states) after the apply, expected TTTT (all stopped)"
kill -CONT "$VPID"
expect_answer 5 105
kill -STOP "$VPID"
wait_until "victim did not stop again" all_stopped
expect_exit 0 hp-apply -p "$VPID" --revert mt
jq_ok '.unmapped == true'
CHECKS=$((CHECKS + 1))
[ "$(states)" = TTTT ] || fail "thread states $(states) after the revert, expected TTTT (all stopped)"
kill -CONT "$VPID"
expect_answer 5 6

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
