# Threads confirmed blocked in read() on a pipe, nanosleep(2 s) and a futex wait while the
# process is patched each return normally: the read gets its data, the futex returns 0,
# the sleep is not shortened; none sees EINTR.
source "$(dirname "$0")/lib.sh"
cc_x86 -pthread -o "$T/blocking" "$HP_SRC/tests/targets/blocking.c"
cat >"$T/p.c" <<'SRC'
long compute(long x) { return x * 100; }
SRC
cc_x86 -shared -fPIC -o "$T/p.so" "$T/p.c"
hp-pack "$T/p.so" --target "$T/blocking" --replace compute -o "$T/blk.hpk" >/dev/null
start_victim b "$T/blocking"
ask tids
read -r _ reader sleeper waiter <<<"$REPLY"

# Wait (bounded) until each thread is inside its system call, as /proc shows it:
# read = 0, nanosleep = 35 or clock_nanosleep = 230, futex = 202 (x86-64 numbers); after a
# ptrace stop an interrupted sleep continues as restart_syscall = 219.
in_syscall() { # TID NR...
    local tid=$1 nr
    shift
    nr=$(cut -d' ' -f1 "/proc/$VPID/task/$tid/syscall" 2>/dev/null || echo x)
    for want in "$@"; do [ "$nr" = "$want" ] && return 0; done
    return 1
}
all_blocked() { in_syscall "$reader" 0 && in_syscall "$sleeper" 35 230 && in_syscall "$waiter" 202; }
wait_until "threads never blocked in their system calls" all_blocked

expect_exit 0 hp-apply -p "$VPID" --allow-unsigned "$T/blk.hpk"
# The sleeper must still have been asleep when the apply ended, or the check is void.
CHECKS=$((CHECKS + 1))
in_syscall "$sleeper" 35 230 219 || fail "the sleeper woke before the apply finished: test is void"
expect_answer "compute 3" "300"

echo feed >&"$VIN"
read -t 10 -r REPLY <&"$VOUT" || fail "reader did not report"
CHECKS=$((CHECKS + 1))
[ "$REPLY" = "read 5 hello ok" ] || fail "reader: '$REPLY'"
echo wake >&"$VIN"
read -t 10 -r REPLY <&"$VOUT" || fail "futex waiter did not report"
CHECKS=$((CHECKS + 1))
[ "$REPLY" = "futex 0 ok" ] || fail "futex waiter: '$REPLY'"
read -t 10 -r REPLY <&"$VOUT" || fail "sleeper did not report"
read -r word ns status <<<"$REPLY"
CHECKS=$((CHECKS + 1))
[ "$word" = slept ] && [ "$status" = ok ] && [ "$ns" -ge 2000000000 ] || fail "sleeper: '$REPLY' (shortened or interrupted)"
