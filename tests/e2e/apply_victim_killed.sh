# The victim is SIGKILLed while hp-apply holds it (issue 3 test 9): after attaching, inside
# a borrowed remote system call (registers set, and the call done but not yet restored),
# after prepare, during the switch (after the site is written), and during a --revert
# (after the site is restored). hp-apply exits 3 with a message naming the process, and
# does not hang (hold_apply's 60 s watchdog would make it exit 124) nor linger.
source "$(dirname "$0")/lib.sh"
cc_x86 -o "$T/victim" "$HP_SRC/tests/targets/victim.c"
cc_x86 -shared -fPIC -o "$T/patch.so" "$HP_SRC/tests/targets/patch.c"
hp-pack "$T/patch.so" --target "$T/victim" --replace compute -o "$T/k.hpk" >/dev/null

# killed_at STEP ARGS...: hold `hp-apply ARGS` at STEP, SIGKILL the victim, let it go on.
killed_at() {
    local step=$1 name=held-${1//:/-}
    shift
    hold_apply "$step" "$name" "$@"
    local tool
    tool=$(pgrep -x -P "$APID" hp-apply) || fail "no hp-apply under $APID"
    kill -9 "$VPID"
    release_apply
    wait_apply
    cp "$T/$name.out" "$T/out"
    cp "$T/$name.err" "$T/err"
    CHECKS=$((CHECKS + 1))
    [ "$RC" -eq 3 ] || fail "hp-apply exited $RC after the victim died at $step (expected 3): $(cat "$T/err")"
    jq_ok '.ok == false and .error.code == "process-exited"'
    jq_ok ".error.message | contains(\"process $VPID\")"
    expect_err "process $VPID"
    CHECKS=$((CHECKS + 1))
    ! kill -0 "$tool" 2>/dev/null || fail "hp-apply $tool still runs after exiting at $step"
}

for step in attached in-syscall after-syscall:2 prepared site; do
    start_victim "v-$step" "$T/victim"
    killed_at "$step" -p "$VPID" --allow-unsigned "$T/k.hpk"
done

start_victim v-revert "$T/victim"
expect_exit 0 hp-apply -p "$VPID" --allow-unsigned "$T/k.hpk"
expect_answer 5 "22 4 1"
killed_at restored -p "$VPID" --revert k
