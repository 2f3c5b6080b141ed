# A victim under PR_SET_MDWE (PR_MDWE_REFUSE_EXEC_GAIN): no mapping may gain PROT_EXEC or
# be writable and executable. The victim proves it is in force (its own mprotect to exec
# and its own W+X mmap are refused), then is patched and reverted: both work, because
# hp-apply maps code read+exec from the start and writes it through /proc/PID/mem (a
# tool that maps the payload writable, then mprotects it executable, fails here). The
# process holds no writable+executable mapping, and MDWE is still in force afterwards.
# A kernel without PR_SET_MDWE (before 6.3): exit 77, skipped.
source "$(dirname "$0")/lib.sh"
cc_x86 -o "$T/mdwe" "$HP_SRC/tests/targets/mdwe.c"
cc_x86 -shared -fPIC -o "$T/p.so" "$HP_SRC/tests/targets/mdwe_patch.c"
hp-pack "$T/p.so" --target "$T/mdwe" --replace compute -o "$T/mdwe.hpk" >/dev/null
start_victim m "$T/mdwe"
if [ "$REPLY" = "ready nomdwe EINVAL" ]; then
    echo "SKIP $TEST_NAME: the kernel has no PR_SET_MDWE ($(uname -r))" >&2
    exit 77
fi
CHECKS=$((CHECKS + 1))
[ "$REPLY" = "ready mdwe 1 refused refused" ] ||
    fail "MDWE not in force (want flags 1, mprotect to exec and W+X mmap refused): '$REPLY'"
# (Permissions read "rwxp": w and x are adjacent. No pipe into grep -q: under pipefail its
# early exit could SIGPIPE the writer and hide a match.)
no_wx_mapping() { ! awk '$2 ~ /wx/ {found = 1} END {exit !found}' "/proc/$VPID/maps"; }

expect_answer "compute 5" 11
expect_exit 0 hp-apply -p "$VPID" --allow-unsigned "$T/mdwe.hpk"
jq_ok '.ok and .record.state == "applied"'
expect_answer "compute 5" 1010
CHECKS=$((CHECKS + 1))
grep -q 'r-xp.*hotpatch' "/proc/$VPID/maps" || fail "no read+exec patch mapping: $(grep hotpatch "/proc/$VPID/maps")"
CHECKS=$((CHECKS + 1))
no_wx_mapping || fail "a writable and executable mapping: $(awk '$2 ~ /wx/' "/proc/$VPID/maps")"
expect_answer mdwe "mdwe 1 refused refused"
expect_exit 0 hp-verify -p "$VPID"

expect_exit 0 hp-apply -p "$VPID" --revert mdwe
jq_ok '.ok'
expect_answer "compute 5" 11
expect_answer mdwe "mdwe 1 refused refused"
CHECKS=$((CHECKS + 1))
no_wx_mapping || fail "a writable and executable mapping after the revert"
