# --dry-run reports the plan (the sites, their bytes now and the bytes it would write) and
# changes nothing: the same maps, every executable mapping byte-identical, the same open
# descriptors, never traced, no patch for hp-verify, the same answers.
source "$(dirname "$0")/lib.sh"
cc_x86 -o "$T/victim" "$HP_SRC/tests/targets/victim.c"
cc_x86 -shared -fPIC -o "$T/patch.so" "$HP_SRC/tests/targets/patch.c"
hp-pack "$T/patch.so" --target "$T/victim" --replace compute --replace other=other_v2 \
    -o "$T/fix.hpk" >/dev/null
hp-inspect "$T/fix.hpk" >"$T/inspect.json"
start_victim v "$T/victim"
expect_answer 5 "6 4 1"
cp "/proc/$VPID/maps" "$T/maps.before"
ls -l "/proc/$VPID/fd" | awk '{print $9, $10, $11}' >"$T/fd.before"
exec_snapshot "$VPID" >"$T/before"
# The executable's load address: the start of its offset-0 mapping (a PIE, vaddr 0).
base=$((16#$(awk -v exe="$T/victim" '$6 == exe && $3 == "00000000" {split($1, r, "-"); print r[1]; exit}' "/proc/$VPID/maps")))

expect_exit 0 hp-apply -p "$VPID" --allow-unsigned --dry-run "$T/fix.hpk"
cp "$T/out" "$T/plan.json"
jq_ok ".ok == true and .action == \"dry-run\" and .pid == $VPID and .id == \"fix\""
jq_ok '.record.state == "planned" and (.record.sites | length == 2)'
jq_ok '[.record.sites[].function] == ["compute", "other"]'
jq_ok '.timings.freeze_us == 0 and .timings.attempts == 0'
# Each site: where the package says, holding the bytes the package expects (as many as the
# near jump covers: the payload would lie within reach), to get a jmp rel32 of that length.
for i in 0 1; do
    want_addr=$(jq -r ".functions[$i].site.address" "$T/inspect.json")
    n=$(jq -r ".functions[$i].site.length" "$T/inspect.json")
    want_bytes=$(jq -r ".functions[$i].site.expected[0:$((2 * n))]" "$T/inspect.json")
    printf -v want_addr '0x%x' $((base + want_addr))
    jq_ok ".record.sites[$i].address == \"$want_addr\" and .record.sites[$i].original == \"$want_bytes\""
    jq_ok ".record.sites[$i].new | startswith(\"e9\") and length == $((2 * n))"
done
expect_exit 0 hp-apply -p "$VPID" --allow-unsigned --dry-run --format text "$T/fix.hpk"
expect_out() { CHECKS=$((CHECKS + 1)); grep -qF -- "$1" "$T/out" || fail "output lacks '$1'"; }
expect_out "dry run: 'fix' can be applied to process $VPID; it would write:"
expect_out "victim compute at"

CHECKS=$((CHECKS + 1))
diff "$T/maps.before" "/proc/$VPID/maps" >&2 || fail "/proc/PID/maps changed"
ls -l "/proc/$VPID/fd" | awk '{print $9, $10, $11}' >"$T/fd.after"
diff "$T/fd.before" "$T/fd.after" >&2 || fail "the open descriptors changed"
exec_snapshot "$VPID" >"$T/after"
diff "$T/before" "$T/after" >&2 || fail "an executable mapping changed"
is_untraced "$VPID" || fail "the victim is left traced"
expect_exit 0 hp-verify -p "$VPID"
jq_ok '.ok and (.patches | length == 0)'
expect_answer 5 "6 4 2"

# The plan was right: the real apply writes at the same sites over the same bytes (the
# jump targets may differ: the payload's address is chosen when it is mapped).
expect_exit 0 hp-apply -p "$VPID" --allow-unsigned "$T/fix.hpk"
CHECKS=$((CHECKS + 1))
jq -e --slurpfile plan "$T/plan.json" \
    '[.record.sites[] | {address, original}] == [$plan[0].record.sites[] | {address, original}]' \
    "$T/out" >/dev/null || fail "the apply wrote elsewhere than the dry run planned"
expect_answer 5 "22 3 3"
expect_exit 0 hp-apply -p "$VPID" --revert fix
exec_snapshot "$VPID" >"$T/reverted"
CHECKS=$((CHECKS + 1))
diff "$T/before" "$T/reverted" >&2 || fail "an executable mapping differs after revert"
