# A function of a shared library the victim loads is replaced; then one package replaces
# a function of the executable and one of the library together (the library is terabytes
# away from a PIE executable: a thunk page near it carries the far jump).
source "$(dirname "$0")/lib.sh"
cc_x86 -shared -fPIC -Wl,-soname,libvictim.so.1 -o "$T/libvictim.so.1" "$HP_SRC/tests/targets/libvictim.c"
cc_x86 -o "$T/user" "$HP_SRC/tests/targets/libuser.c" "$T/libvictim.so.1" -Wl,-rpath,"$T"
cat >"$T/lib.c" <<'SRC'
extern int lib_calls;                    /* static in libvictim */
int lib_answer_v2(int x) { lib_calls += 100; return x * 1000; }
SRC
cat >"$T/both.c" <<'SRC'
extern int lib_calls;
int compute(int x) { return -x; }
int lib_answer_v3(int x) { lib_calls += 1; return x * 7; }
SRC
cc_x86 -shared -fPIC -o "$T/lib.so" "$T/lib.c"
cc_x86 -shared -fPIC -o "$T/both.so" "$T/both.c"
hp-pack "$T/lib.so" --target "$T/libvictim.so.1" --replace lib_answer=lib_answer_v2 -o "$T/lib-only.hpk" >/dev/null
hp-pack "$T/both.so" --target "$T/user" --replace compute \
    --target "$T/libvictim.so.1" --replace lib_answer=lib_answer_v3 -o "$T/both.hpk" >/dev/null

start_victim u "$T/user"
expect_answer 2 "5 20 1"
expect_exit 0 hp-apply -p "$VPID" --allow-unsigned "$T/lib-only.hpk"
jq_ok '.record.sites[0].module == "libvictim.so.1"'
expect_answer 2 "5 2000 101"
expect_exit 0 hp-apply -p "$VPID" --revert lib-only
expect_answer 2 "5 20 102"

expect_exit 0 hp-apply -p "$VPID" --allow-unsigned "$T/both.hpk"
jq_ok '(.record.sites | length == 2) and (.record.mappings | length >= 1)'
expect_answer 3 "-3 21 103"
expect_exit 0 hp-verify -p "$VPID"
expect_exit 0 hp-apply -p "$VPID" --revert both
expect_answer 3 "10 30 104"
grep -q hotpatch "/proc/$VPID/maps" && fail "patch mappings left behind"
true
