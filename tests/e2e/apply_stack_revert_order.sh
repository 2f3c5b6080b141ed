# Two packages stacked and reverted in either order. A replaces compute and other; B
# replaces compute again (it supersedes A there). Reverting B gives compute back to A;
# reverting A first leaves compute with B, and B's later revert restores the original.
source "$(dirname "$0")/lib.sh"
cc_x86 -o "$T/victim" "$HP_SRC/tests/targets/victim.c"
cat >"$T/a.c" <<'SRC'
long compute(long x) { return x + 10; }
long other(long x) { return x - 10; }
SRC
cat >"$T/b.c" <<'SRC'
long compute(long x) { return x + 20; }
SRC
cc_x86 -shared -fPIC -o "$T/a.so" "$T/a.c"
cc_x86 -shared -fPIC -o "$T/b.so" "$T/b.c"
hp-pack "$T/a.so" --target "$T/victim" --replace compute --replace other -o "$T/a.hpk" >/dev/null
hp-pack "$T/b.so" --target "$T/victim" --replace compute -o "$T/b.hpk" >/dev/null
# answers: "compute(5) other(5)" (the call counter is dropped)
expect2() {
    ask 5
    CHECKS=$((CHECKS + 1))
    [ "${REPLY% *}" = "$1" ] || fail "victim answered '$REPLY', expected '$1 ...' ($2)"
}
start_victim v "$T/victim"
exec_snapshot "$VPID" >"$T/pristine"
expect2 "6 4" "original"

# Order 1: A, B, revert B, revert A.
expect_exit 0 hp-apply -p "$VPID" --allow-unsigned "$T/a.hpk"
expect2 "15 -5" "A"
expect_exit 0 hp-apply -p "$VPID" --allow-unsigned "$T/b.hpk"
jq_ok '.superseded == ["a"] and .record.sites[0].supersedes == "a"'
expect2 "25 -5" "B on top of A"
expect_exit 0 hp-verify -p "$VPID"
jq_ok '[.patches[] | {id, s: [.sites[].status]}] | sort_by(.id) == [{"id":"a","s":["superseded:b","patched"]},{"id":"b","s":["patched"]}]'
expect_exit 0 hp-apply -p "$VPID" --revert b
expect2 "15 -5" "B reverted: compute back to A"
expect_exit 0 hp-apply -p "$VPID" --revert a
expect2 "6 4" "A reverted"
exec_snapshot "$VPID" >"$T/now"
diff "$T/pristine" "$T/now" >&2 || fail "executable mappings differ after order 1"

# Order 2: A, B, revert A (compute stays B), revert B.
expect_exit 0 hp-apply -p "$VPID" --allow-unsigned "$T/a.hpk"
expect_exit 0 hp-apply -p "$VPID" --allow-unsigned "$T/b.hpk"
expect_exit 0 hp-apply -p "$VPID" --revert a
expect2 "25 4" "A reverted under B: compute stays B, other is original"
expect_exit 0 hp-verify -p "$VPID"
jq_ok '(.patches | length == 1) and .patches[0].id == "b" and .patches[0].sites[0].status == "patched"'
expect_exit 0 hp-apply -p "$VPID" --revert b
expect2 "6 4" "B reverted: the original, not A"
exec_snapshot "$VPID" >"$T/now"
CHECKS=$((CHECKS + 1))
diff "$T/pristine" "$T/now" >&2 || fail "executable mappings differ after order 2"
grep -q hotpatch "/proc/$VPID/maps" && fail "patch mappings left behind"
true
