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
exec_snapshot "$VPID" >"$T/before"
expect_exit 0 hp-apply -p "$VPID" --allow-unsigned "$T/lib-only.hpk"
jq_ok '.record.sites[0].module == "libvictim.so.1"'
expect_answer 2 "5 2000 101"
expect_exit 0 hp-apply -p "$VPID" --revert lib-only
expect_answer 2 "5 20 102"

expect_exit 0 hp-apply -p "$VPID" --allow-unsigned "$T/both.hpk"
cp "$T/out" "$T/both.json"
jq_ok '[.record.sites[].module] == ["user", "libvictim.so.1"]'
# Two mappings: the record and the replacement code near the executable, then one page of
# onward jumps near the library; both replacements lie in the first.
jq_ok '(.record.mappings | length == 2) and .record.mappings[0].start == .record.record_address'
hx() { jq -r "$1" "$T/both.json"; }
m0=($(hx '.record.mappings[0] | .start, .end')) m1=($(hx '.record.mappings[1] | .start, .end'))
CHECKS=$((CHECKS + 1))
[ $((m1[1] - m1[0])) -eq "$(getconf PAGESIZE)" ] || fail "the thunk mapping is not one page: ${m1[*]}"
inside() { [ $(($1)) -ge $(($2)) ] && [ $(($1)) -lt $(($3)) ]; }
for i in 0 1; do
    CHECKS=$((CHECKS + 1))
    inside "$(hx ".record.sites[$i].replacement")" "${m0[@]}" || fail "replacement $i is outside ${m0[*]}"
done
# Where each site's jmp rel32 lands: the executable's straight in the code, the library's
# (terabytes away) in the thunk page.
jump_target() {
    local at new
    at=$(hx ".record.sites[$1].address") new=$(hx ".record.sites[$1].new")
    [ "${new:0:2}" = e9 ] || fail "site $1 is not a jmp rel32: $new"
    local rel=$((16#${new:8:2}${new:6:2}${new:4:2}${new:2:2}))
    [ $rel -ge $((1 << 31)) ] && rel=$((rel - (1 << 32)))
    echo $((at + 5 + rel))
}
t0=$(jump_target 0) t1=$(jump_target 1)
CHECKS=$((CHECKS + 1))
[ "$t0" -eq $(($(hx '.record.sites[0].replacement'))) ] || fail "the executable's site does not jump to its replacement"
inside "$t1" "${m1[@]}" || fail "the library's site does not jump into the thunk page ${m1[*]}"
# /proc/PID/maps shows exactly these ranges under the patch's name, none writable+executable.
awk '/hotpatch:both/ {split($1, r, "-"); print r[1], r[2], $2}' "/proc/$VPID/maps" >"$T/hpmaps"
CHECKS=$((CHECKS + 1))
total=0
while read -r lo hi perms; do
    inside 0x$lo "${m0[@]}" || inside 0x$lo "${m1[@]}" || fail "hotpatch mapping $lo-$hi is not in the record"
    if [[ $perms == *w*x* ]]; then fail "hotpatch mapping $lo-$hi is $perms"; fi
    total=$((total + 0x$hi - 0x$lo))
done <"$T/hpmaps"
# Inside the ranges and as large as both together: the ranges exactly.
[ $total -eq $((m0[1] - m0[0] + m1[1] - m1[0])) ] || fail "hotpatch:both mappings cover $total bytes, not the record's ranges"
for r in "${m0[0]}" "${m1[0]}"; do
    CHECKS=$((CHECKS + 1))
    grep -q "^$(printf '%x' $((r))) " "$T/hpmaps" || fail "no hotpatch:both mapping starts at $r"
done
CHECKS=$((CHECKS + 1))
grep -q "^$(printf '%x' $((m1[0]))) $(printf '%x' $((m1[1]))) r-x" "$T/hpmaps" || fail "the thunk page is not r-x"
expect_answer 3 "-3 21 103"
expect_exit 0 hp-verify -p "$VPID"
expect_exit 0 hp-apply -p "$VPID" --revert both
expect_answer 3 "10 30 104"
grep -q hotpatch "/proc/$VPID/maps" && fail "patch mappings left behind"
exec_snapshot "$VPID" >"$T/after"
CHECKS=$((CHECKS + 1))
diff "$T/before" "$T/after" >&2 || fail "executable mappings differ after revert"
