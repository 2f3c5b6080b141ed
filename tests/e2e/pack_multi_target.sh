# One package replacing a function of the executable and one of a library it loads; each
# --replace binds to the --target before it; statics resolve to the right module.
source "$(dirname "$0")/lib.sh"
cc_x86 -shared -fPIC -Wl,-soname,libvictim.so.1 -o "$T/libvictim.so.1" "$HP_SRC/tests/targets/libvictim.c"
cat >"$T/main.c" <<'SRC'
#include <stdio.h>
int lib_answer(int x);
__attribute__((noinline)) int compute(int x) { return x * x + 1; }
int main(void) { printf("%d %d\n", compute(1), lib_answer(2)); return 0; }
SRC
cc_x86 -o "$T/app" "$T/main.c" "$T/libvictim.so.1" -Wl,-rpath,"$T"
cat >"$T/p.c" <<'SRC'
extern int lib_calls;            /* static in libvictim */
int compute(int x) { return x + 100; }
int lib_answer_v2(int x) { lib_calls++; return x * 20; }
SRC
cc_x86 -shared -fPIC -o "$T/p.so" "$T/p.c"

expect_exit 0 hp-pack "$T/p.so" --target "$T/app" --replace compute \
    --target "$T/libvictim.so.1" --replace lib_answer=lib_answer_v2 -o "$T/multi.hpk"
jq_ok '.functions == 2 and (.manifest.targets | length == 2)'
jq_ok '.manifest.targets[0].module == "app" and .manifest.targets[0].functions[0].symbol == "compute"'
jq_ok '.manifest.targets[1].module == "libvictim.so.1" and .manifest.targets[1].functions[0].replacement == "lib_answer_v2"'
bid=$(readelf -n "$T/libvictim.so.1" | awk '/Build ID/ {print $3}')
jq_ok ".manifest.targets[1].build_id == \"$bid\""
# lib_calls is the library's static: resolved for target 1, not the executable.
jq_ok '.manifest.targets[1].local_symbols[0].name == "lib_calls" and (.manifest.targets[0].local_symbols | length == 0)'
expect_exit 0 hp-inspect "$T/multi.hpk"
jq_ok '.payload.undefined[] | select(.name == "lib_calls") | .provider == "target:1" and .module == "libvictim.so.1"'

# The order matters: lib_answer is not a function of the executable.
expect_exit 2 hp-pack "$T/p.so" --target "$T/libvictim.so.1" --target "$T/app" --replace lib_answer=lib_answer_v2 -o "$T/x.hpk"
expect_err "$T/libvictim.so.1 has no --replace after it"
expect_exit 2 hp-pack "$T/p.so" --target "$T/app" --replace compute --target "$T/app" --replace main=compute -o "$T/x.hpk"
expect_err "given twice as --target"
[ ! -e "$T/x.hpk" ] || fail "a refused pack wrote a package"
