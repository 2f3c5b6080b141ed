# An apply refused after it repaired what a killed run left still says what it repaired:
# k1 applied, an apply of k2 killed once prepared (a record still "preparing"); applying
# k1 again rolls k2 back first, then is refused already-applied, and its failure document
# lists the rollback under "repaired" (it used to be dropped with the error).
source "$(dirname "$0")/lib.sh"
cc_x86 -o "$T/victim" "$HP_SRC/tests/targets/victim.c"
cc_x86 -shared -fPIC -o "$T/patch.so" "$HP_SRC/tests/targets/patch.c"
for id in k1 k2; do
    hp-pack "$T/patch.so" --target "$T/victim" --replace compute --id "$id" -o "$T/$id.hpk" >/dev/null
done
start_victim v "$T/victim"
expect_exit 0 hp-apply -p "$VPID" --allow-unsigned "$T/k1.hpk"
killed_apply prepared -p "$VPID" --allow-unsigned "$T/k2.hpk"
expect_exit 1 hp-verify -p "$VPID"
jq_ok '[.patches[] | "\(.id) \(.state)"] | sort == ["k1 applied", "k2 preparing"]'

expect_exit 1 hp-apply -p "$VPID" --allow-unsigned "$T/k1.hpk"
error_is already-applied
jq_ok '.repaired | length == 1 and (.[0] | startswith("rolled back the interrupted apply of '"'k2'"'"))'
# The repair did happen: k2 is gone, k1 still applied and working.
expect_exit 0 hp-verify -p "$VPID"
jq_ok '[.patches[] | "\(.id) \(.state)"] == ["k1 applied"]'
expect_answer 5 "22 4 1"
