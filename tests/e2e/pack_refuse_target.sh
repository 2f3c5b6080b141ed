# hp-pack refuses targets it cannot bind a package to: no build-id, another architecture,
# not an ELF file.
source "$(dirname "$0")/lib.sh"
cc_x86 -Wl,--build-id=none -o "$T/nobid" "$HP_SRC/tests/targets/victim.c"
cc_x86 -shared -fPIC -o "$T/patch.so" "$HP_SRC/tests/targets/patch.c"
expect_exit 2 hp-pack "$T/patch.so" --target "$T/nobid" --replace compute -o "$T/x.hpk"
error_is bad-input
expect_err "$T/nobid: has no GNU build-id note"

cc_arm64 -o "$T/arm" "$HP_SRC/tests/targets/victim.c"
expect_exit 2 hp-pack "$T/patch.so" --target "$T/arm" --replace compute -o "$T/x.hpk"
error_is bad-input
expect_err "architecture mismatch: $T/patch.so is x86_64, but $T/arm is aarch64"

echo "not elf" >"$T/text"
expect_exit 2 hp-pack "$T/patch.so" --target "$T/text" --replace compute -o "$T/x.hpk"
error_is bad-input
expect_err "$T/text: malformed ELF: not an ELF file"

expect_exit 3 hp-pack "$T/patch.so" --target "$T/missing" --replace compute -o "$T/x.hpk"
error_is io
expect_err "$T/missing: cannot open"
[ ! -e "$T/x.hpk" ] || fail "a refused pack wrote a package"
