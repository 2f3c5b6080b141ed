# As a non-root user created by the test: its own dumpable process passes the ptrace
# check; one that set PR_SET_DUMPABLE 0 is reported not dumpable and not traceable,
# saying why, and the package checks that need ptrace are skipped; root's process is
# refused for its uid.
source "$(dirname "$0")/lib.sh"
test_user
uid=$TEST_UID
cc_x86 -o "$T/u" "$HP_SRC/tests/targets/undumpable.c"
echo 'int nothing(void) { return 1; }' >"$T/p.c"
cc_x86 -shared -fPIC -o "$T/p.so" "$T/p.c"
hp-pack "$T/p.so" --target "$T/u" --replace main=nothing -o "$T/nothing.hpk" >/dev/null

start_victim ok setpriv --reuid="$uid" --regid="$uid" --clear-groups "$T/u" dumpable
expect_exit 0 as_user hp-check -p "$VPID"
check_is process.dumpable pass
check_is process.ptrace pass
check_is host.privileges warn
expect_answer ping pong

start_victim no setpriv --reuid="$uid" --regid="$uid" --clear-groups "$T/u" undumpable
expect_exit 1 as_user hp-check -p "$VPID"
check_is process.dumpable warn
check_is process.ptrace fail
jq_ok '.checks[] | select(.id == "process.ptrace") | .hint | contains("root")'
# The reason, from what was gathered: same uid, so not the uid rule; not dumpable.
jq_ok '.checks[] | select(.id == "process.ptrace") | .detail | contains("it is not dumpable") and (contains("runs as uid") | not)'
# The package checks need ptrace (the plan reads the process's memory): skipped.
expect_exit 1 as_user hp-check -p "$VPID" --allow-unsigned "$T/nothing.hpk"
check_is package.signature warn
jq_ok '[.checks[] | select(.id | startswith("package.") and . != "package.signature") | .status] | length == 8 and all(. == "skip")'
# (the first failed check the plan needs: its maps cannot be read either)
jq_ok '.checks[] | select(.id == "package.sites") | .detail == "not checked: process.modules failed"'
# root may still patch it.
expect_exit 0 hp-check -p "$VPID"
check_is process.ptrace pass
expect_answer ping pong

# Another user's process (root's): the uid rule is the reason; its dumpable state cannot
# be read from /proc for a process whose effective ids are root's.
start_victim root "$T/u" dumpable
expect_exit 1 as_user hp-check -p "$VPID"
check_is process.ptrace fail
jq_ok ".checks[] | select(.id == \"process.ptrace\") | .detail | contains(\"it runs as uid 0 (real, effective, saved: 0 0 0), we are uid $uid without CAP_SYS_PTRACE\")"
check_is process.dumpable skip
expect_answer ping pong
