# A victim whose executable was replaced on disk after it started (a new build moved over
# the same path, as a package upgrade does) is still patched correctly: hp-apply reads the
# module through /proc/PID/map_files (the old, deleted inode), not the path. A package
# packed against the new file is refused for the old process.
source "$(dirname "$0")/lib.sh"
cc_x86 -o "$T/victim" "$HP_SRC/tests/targets/victim.c"
cc_x86 -shared -fPIC -o "$T/patch.so" "$HP_SRC/tests/targets/patch.c"
hp-pack "$T/patch.so" --target "$T/victim" --replace compute -o "$T/fix-compute.hpk" >/dev/null
start_victim v "$T/victim"
expect_answer 5 "6 4 1"
old_id=$(hp-inspect "$T/fix-compute.hpk" | jq -r '.manifest.targets[0].build_id')

# The upgrade: another build (other build-id, other bytes) moved over the running path.
cc_x86 -DOTHER_BUILD -o "$T/victim.new" "$HP_SRC/tests/targets/victim.c"
mv "$T/victim.new" "$T/victim"
CHECKS=$((CHECKS + 1))
grep -qF "$T/victim (deleted)" "/proc/$VPID/maps" || fail "the running executable is not shown deleted"
cmp -s "$T/victim" "/proc/$VPID/exe" && fail "the file on disk is still the running build"
hp-pack "$T/patch.so" --target "$T/victim" --replace compute --id new-build -o "$T/new-build.hpk" >/dev/null
new_id=$(hp-inspect "$T/new-build.hpk" | jq -r '.manifest.targets[0].build_id')
CHECKS=$((CHECKS + 1))
[ -n "$old_id" ] && [ -n "$new_id" ] && [ "$old_id" != "$new_id" ] || fail "build-ids '$old_id' and '$new_id' should differ"

exec_snapshot "$VPID" >"$T/before"

# Packed against the new file: the process runs the old build.
expect_exit 1 hp-apply -p "$VPID" --allow-unsigned "$T/new-build.hpk"
error_is build-id-mismatch
expect_err "'compute'"
exec_snapshot "$VPID" >"$T/refused"
CHECKS=$((CHECKS + 1))
diff "$T/before" "$T/refused" >&2 || fail "the refused apply changed executable mappings"
grep -q hotpatch "/proc/$VPID/maps" && fail "the refused apply left a mapping"

# Packed against the build that runs: applied from the mapped (deleted) file.
expect_exit 0 hp-apply -p "$VPID" --allow-unsigned "$T/fix-compute.hpk"
jq_ok ".ok and .pid == $VPID and .record.state == \"applied\" and .record.sites[0].function == \"compute\""
jq_ok ".record.sites[0].module == \"victim\" and .record.sites[0].build_id == \"$old_id\""
expect_answer 5 "22 4 2"
grep -q "hotpatch:fix-compute" "/proc/$VPID/maps" || fail "no hotpatch mapping named in /proc/PID/maps"
expect_exit 0 hp-verify -p "$VPID"
jq_ok '.ok and (.patches | length == 1) and .patches[0].id == "fix-compute" and .patches[0].sites[0].status == "patched"'

expect_exit 0 hp-apply -p "$VPID" --revert fix-compute
jq_ok '.ok and .record.state == "reverted" and .unmapped == true'
expect_answer 5 "6 4 3"
exec_snapshot "$VPID" >"$T/after"
CHECKS=$((CHECKS + 1))
diff "$T/before" "$T/after" >&2 || fail "executable mappings differ after revert"
grep -q hotpatch "/proc/$VPID/maps" && fail "the patch mapping is still there after revert"
expect_exit 0 hp-verify -p "$VPID"
jq_ok '.ok and (.patches | length == 0)'
