# One lock per process instance whoever asks: a victim run by a non-root user created by
# the test, that user's hp-apply held after attaching; root's hp-apply on the same process
# exits 1 busy naming the holder (it used to take another lock and fail at PTRACE_SEIZE
# with 'traced'). The reverse: root's hp-apply held, the user's is busy. And a holder whose
# lock root cannot see (it runs in another network namespace, so its abstract socket name
# is another one) is still reported busy, from the tracer's name.
source "$(dirname "$0")/lib.sh"
test_user
uid=$TEST_UID
cc_x86 -o "$T/victim" "$HP_SRC/tests/targets/victim.c"
cc_x86 -shared -fPIC -o "$T/patch.so" "$HP_SRC/tests/targets/patch.c"
hp-pack "$T/patch.so" --target "$T/victim" --replace compute -o "$T/c.hpk" >/dev/null
chmod 644 "$T/c.hpk"
# hold_apply runs `hp-apply` from PATH: these wrappers run the real one as the user, or
# in a network namespace of its own.
mkdir -m 755 "$T/user" "$T/netns"
real=$(command -v hp-apply)
printf '#!/bin/sh\nexec setpriv --reuid=%s --regid=%s --clear-groups %s "$@"\n' "$uid" "$uid" "$real" >"$T/user/hp-apply"
printf '#!/bin/sh\nexec unshare --net %s "$@"\n' "$real" >"$T/netns/hp-apply"
chmod 755 "$T/user/hp-apply" "$T/netns/hp-apply"

# busy_by WHO: the second hp-apply's failure document is busy, its message names the holder.
busy_by() {
    error_is busy
    expect_err "another hp-apply is working on process $VPID: $1"
    jq_ok ".error.message | contains(\"$1\")"
}
# finish: the held hp-apply completes the apply; the victim is patched once.
finish() {
    release_apply
    wait_apply
    CHECKS=$((CHECKS + 1))
    [ "$RC" -eq 0 ] || fail "the held hp-apply exited $RC: $(cat "$T/$1.err")"
    expect_answer 5 "22 4 1"
    expect_exit 0 hp-verify -p "$VPID"
    jq_ok '(.patches | length == 1) and .patches[0].state == "applied"'
}
# held_pid: the PID of the hp-apply that hold_apply started (under timeout, maybe a wrapper).
held_pid() { pgrep -x -P "$APID" hp-apply; }

# The user's hp-apply holds; root is busy.
start_victim u1 setpriv --reuid="$uid" --regid="$uid" --clear-groups "$T/victim"
PATH="$T/user:$PATH" hold_apply attached user1 -p "$VPID" --allow-unsigned "$T/c.hpk"
holder=$(held_pid)
CHECKS=$((CHECKS + 1))
[ "$(stat -c %u "/proc/$holder")" = "$uid" ] || fail "the held hp-apply does not run as $user"
[ "$(tracer_of "$VPID")" = "$holder" ] || fail "the held hp-apply ($holder) does not trace the victim"
expect_exit 1 hp-apply -p "$VPID" --allow-unsigned "$T/c.hpk"
busy_by "pid $holder (uid $uid) holds the lock @hotpatch-$VPID-"
# A dry run is refused the same way.
expect_exit 1 hp-apply -p "$VPID" --dry-run --allow-unsigned "$T/c.hpk"
busy_by "pid $holder (uid $uid) holds the lock @hotpatch-$VPID-"
finish user1

# Root's hp-apply holds; the user's is busy.
start_victim u2 setpriv --reuid="$uid" --regid="$uid" --clear-groups "$T/victim"
hold_apply attached root2 -p "$VPID" --allow-unsigned "$T/c.hpk"
holder=$(held_pid)
expect_exit 1 as_user hp-apply -p "$VPID" --allow-unsigned "$T/c.hpk"
busy_by "pid $holder (uid 0) holds the lock @hotpatch-$VPID-"
finish root2

# A holder in another network namespace: its lock is not ours to see, but it traces the
# victim, and a tracer named hp-apply means busy, not 'traced'.
start_victim u3 setpriv --reuid="$uid" --regid="$uid" --clear-groups "$T/victim"
PATH="$T/netns:$PATH" hold_apply attached netns3 -p "$VPID" --allow-unsigned "$T/c.hpk"
holder=$(held_pid)
[ "$(tracer_of "$VPID")" = "$holder" ] || fail "the held hp-apply ($holder) does not trace the victim"
expect_exit 1 hp-apply -p "$VPID" --allow-unsigned "$T/c.hpk"
busy_by "it is traced by $holder (hp-apply)"
finish netns3
