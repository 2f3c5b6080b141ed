# The patch calls printf-family, strlen and memcpy, reads and writes the victim's static
# counter and calls its static function that only .symtab names — and the victim's binary
# is stripped after packing (the package carries the addresses; no symbols needed).
source "$(dirname "$0")/lib.sh"
cc_x86 -o "$T/victim" "$HP_SRC/tests/targets/victim.c"
cc_x86 -shared -fPIC -o "$T/patch.so" "$HP_SRC/tests/targets/libc_patch.c"
hp-pack "$T/patch.so" --target "$T/victim" --replace compute -o "$T/libc.hpk" >/dev/null
strip "$T/victim"
[[ $(nm "$T/victim" 2>&1) == *"no symbols"* ]] || fail "fixture: victim not stripped"
start_victim v "$T/victim"
expect_answer 4 "5 3 1"
expect_exit 0 hp-apply -p "$VPID" --allow-unsigned "$T/libc.hpk"
# scale(4) + strlen("patched-by-hotpatch") = 12 + 19; calls += 1000
expect_answer 4 "31 3 1001"
grep -q "compute(4) via patched-by-hotpatch" "$T/v.err" || fail "the patch's fprintf did not reach stderr"
expect_answer 1 "22 0 2001"
