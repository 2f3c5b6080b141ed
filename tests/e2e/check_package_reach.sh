# package.reach: a victim that reserved every free range within 2 GiB of its executable
# (victim fill-reach) leaves no room for the payload within branch reach. hp-check fails
# package.reach (later plan steps skipped), hp-apply refuses with exit 1 not-eligible and
# leaves the victim untouched. An ordinary victim passes (check_pipeline).
source "$(dirname "$0")/lib.sh"
cc_x86 -o "$T/victim" "$HP_SRC/tests/targets/victim.c"
cc_x86 -shared -fPIC -o "$T/patch.so" "$HP_SRC/tests/targets/patch.c"
hp-pack "$T/patch.so" --target "$T/victim" --replace compute -o "$T/fix.hpk" >/dev/null
start_victim v "$T/victim" fill-reach
expect_answer 5 "6 4 1"
exec_snapshot "$VPID" >"$T/before"
cp "/proc/$VPID/maps" "$T/maps.before"

expect_exit 1 hp-check -p "$VPID" --allow-unsigned "$T/fix.hpk"
jq_ok '.ok == false and .error.code == "not-eligible"'
for id in package.busy package.applied package.modules package.sites; do check_is "$id" pass; done
check_is package.reach fail
jq_ok '.checks[] | select(.id == "package.reach") | (.detail | contains("within branch reach of")) and
    (.hint | contains("address space"))'
check_is package.symbols skip
jq_ok '.checks[] | select(.id == "package.plan") | .status == "pass" and (.detail | contains("failed check"))'
expect_err "package.reach: no free address range of"

expect_exit 1 hp-apply -p "$VPID" --allow-unsigned "$T/fix.hpk"
error_is not-eligible
expect_err "within branch reach of $T/victim"
CHECKS=$((CHECKS + 1))
exec_snapshot "$VPID" | cmp -s - "$T/before" || fail "an executable mapping of the victim changed"
CHECKS=$((CHECKS + 1))
diff "$T/maps.before" "/proc/$VPID/maps" >&2 || fail "the victim's mappings changed"
CHECKS=$((CHECKS + 1))
is_untraced "$VPID" || fail "the victim is left traced"
expect_answer 5 "6 4 2"
