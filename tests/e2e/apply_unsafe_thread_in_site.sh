# A thread that never leaves the site (it spins on the function's first instruction):
# hp-apply retries until --timeout, then exits 1 unsafe naming the thread and the
# function, and nothing in the victim changed.
source "$(dirname "$0")/lib.sh"
cat >"$T/spin.c" <<'SRC'
#include <pthread.h>
#include <stdio.h>
#include <string.h>
void spin_forever(void);
__asm__(".text\n.globl spin_forever\n.type spin_forever,@function\n.p2align 4\n"
        "spin_forever: jmp spin_forever\n"   /* eb fe: the thread's ip stays in the site */
        " nop\n nop\n nop\n nop\n nop\n nop\n ret\n.size spin_forever, .-spin_forever\n");
static void *run(void *a) { (void)a; spin_forever(); return NULL; }
int main(void) {
    pthread_t t;
    pthread_create(&t, NULL, run, NULL);
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("ready\n");
    char line[16];
    while (fgets(line, sizeof line, stdin)) printf("alive\n");
    return 0;
}
SRC
cc_x86 -pthread -o "$T/spin" "$T/spin.c"
cat >"$T/p.c" <<'SRC'
void spin_forever(void) {}
SRC
cc_x86 -shared -fPIC -o "$T/p.so" "$T/p.c"
hp-pack "$T/p.so" --target "$T/spin" --replace spin_forever -o "$T/spin.hpk" >/dev/null
start_victim s "$T/spin"
# The spinning thread: the one that is not the main thread.
spinner=$(ls "/proc/$VPID/task" | grep -vx "$VPID")
exec_snapshot "$VPID" >"$T/before"
expect_exit 1 hp-apply -p "$VPID" --allow-unsigned --timeout 300 "$T/spin.hpk"
error_is unsafe
expect_err "thread $spinner is executing inside the site of 'spin_forever'"
expect_err "nothing was changed"
exec_snapshot "$VPID" >"$T/after"
CHECKS=$((CHECKS + 1))
diff "$T/before" "$T/after" >&2 || { cat /proc/$VPID/maps >&2; fail "executable mappings changed"; }
grep -q hotpatch "/proc/$VPID/maps" && fail "the patch mapping was left behind"
expect_answer x alive
