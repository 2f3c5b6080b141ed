# A function of the running executable is replaced: the victim's answers change, its PID
# stays; the patch uses the victim's static counter and static function (resolved at pack
# time) and libc's strlen (an IFUNC, resolved from the process); revert restores it.
source "$(dirname "$0")/lib.sh"
cc_x86 -o "$T/victim" "$HP_SRC/tests/targets/victim.c"
cc_x86 -shared -fPIC -o "$T/patch.so" "$HP_SRC/tests/targets/patch.c"
hp-pack "$T/patch.so" --target "$T/victim" --replace compute -o "$T/fix-compute.hpk" >/dev/null
start_victim v "$T/victim"
expect_answer 5 "6 4 1"
exec_snapshot "$VPID" >"$T/before"
# Before the apply, the package's sites hold their original bytes (hp-inspect's document
# through hp-verify -p PID -): every site 'original', exit 0.
hp-inspect "$T/fix-compute.hpk" >"$T/inspect.json"
expect_exit 0 hp-verify -p "$VPID" - <"$T/inspect.json"
jq_ok '.ok and .package.state == "not-applied" and (.sites | length == 1) and all(.sites[]; .status == "original") and .sites[0].function == "compute"'

expect_exit 0 hp-apply -p "$VPID" --allow-unsigned "$T/fix-compute.hpk"
cp "$T/out" "$T/apply.json"
jq_ok ".schema == \"hotpatch.apply/1\" and .ok and .action == \"apply\" and .pid == $VPID and .id == \"fix-compute\""
jq_ok '.record.state == "applied" and (.record.sites | length == 1) and .record.sites[0].function == "compute"'
jq_ok '.timings.freeze_us > 0 and .timings.total_us > .timings.freeze_us'
# compute is now scale(x) + strlen("patched") = 3x + 7, and still counts calls.
expect_answer 5 "22 4 2"
expect_answer 1 "10 0 3"
kill -0 "$VPID" || fail "victim died"

grep -q "hotpatch:fix-compute" "/proc/$VPID/maps" || fail "no hotpatch mapping named in /proc/PID/maps"
awk '$2 ~ /w/ && $2 ~ /x/ {found = 1} END {exit !found}' "/proc/$VPID/maps" &&
    fail "a writable+executable mapping exists"

expect_exit 0 hp-verify -p "$VPID"
jq_ok '.ok and (.patches | length == 1) and .patches[0].id == "fix-compute" and .patches[0].state == "applied"'
jq_ok '.patches[0].sites[0].status == "patched"'
expect_exit 0 hp-verify -p "$VPID" - <"$T/apply.json"
jq_ok '.ok and .sites[0].status == "applied"'

expect_exit 1 hp-apply -p "$VPID" --allow-unsigned "$T/fix-compute.hpk"
error_is already-applied

expect_exit 0 hp-apply -p "$VPID" --revert fix-compute
jq_ok '.ok and .action == "revert" and .record.state == "reverted" and .unmapped == true'
expect_answer 5 "6 4 4"
grep -q "hotpatch:" "/proc/$VPID/maps" && fail "the patch mapping is still there after revert"
exec_snapshot "$VPID" >"$T/after"
CHECKS=$((CHECKS + 1))
diff "$T/before" "$T/after" >&2 || fail "executable mappings differ after revert"
expect_exit 0 hp-verify -p "$VPID"
jq_ok '.ok and (.patches | length == 0)'
expect_exit 1 hp-apply -p "$VPID" --revert fix-compute
error_is not-applied
