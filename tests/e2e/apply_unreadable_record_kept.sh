# A patch mapping whose record this version cannot read (its version field set to 99, as a
# later hotpatch might write it) is never taken for the leftovers of a killed apply: the
# next hp-apply, which removes such leftovers before it works, leaves it mapped, the code
# it patched keeps running the replacement, and hp-verify does not call it debris.
# (Before, unmapping it would have crashed the victim at its next call of compute.)
source "$(dirname "$0")/lib.sh"
cc_x86 -o "$T/victim" "$HP_SRC/tests/targets/victim.c"
cc_x86 -shared -fPIC -o "$T/patch.so" "$HP_SRC/tests/targets/patch.c"
hp-pack "$T/patch.so" --target "$T/victim" --replace compute -o "$T/first.hpk" >/dev/null
hp-pack "$T/patch.so" --target "$T/victim" --replace other=other_v2 -o "$T/second.hpk" >/dev/null
start_victim v "$T/victim"
expect_answer 5 "6 4 1"
expect_exit 0 hp-apply -p "$VPID" --allow-unsigned "$T/first.hpk"
rec=$(jq -r '.record.record_address' "$T/out")
ask 5
patched=${REPLY%% *}
CHECKS=$((CHECKS + 1))
[ "$patched" != 6 ] || fail "compute is not patched: '$REPLY'"

python3 -c "
f = open('/proc/$VPID/mem', 'r+b', 0); f.seek($rec + 8); f.write((99).to_bytes(4, 'little'))"
expect_exit 0 hp-apply -p "$VPID" --allow-unsigned "$T/second.hpk"
jq_ok '(.repaired // []) | length == 0'
CHECKS=$((CHECKS + 1))
grep -q "/memfd:hotpatch:first" "/proc/$VPID/maps" || fail "the mapping of the unreadable record was removed"
ask 5
CHECKS=$((CHECKS + 1))
[ "${REPLY%% *}" = "$patched" ] || fail "compute answered '$REPLY' after the second apply"
hp-verify -p "$VPID" >"$T/verify.json" || true
jq -e '[.patches[] | select(.state == "debris")] | length == 0' "$T/verify.json" >/dev/null ||
    fail "hp-verify calls the unreadable record debris: $(cat "$T/verify.json")"
CHECKS=$((CHECKS + 1))
