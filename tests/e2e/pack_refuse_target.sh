# hp-pack refuses targets it cannot bind a package to: no build-id, another architecture,
# not an ELF file, a file name that is not UTF-8.
source "$(dirname "$0")/lib.sh"
cc_x86 -Wl,--build-id=none -o "$T/nobid" "$HP_SRC/tests/targets/victim.c"
cc_x86 -shared -fPIC -o "$T/patch.so" "$HP_SRC/tests/targets/patch.c"
expect_exit 2 hp-pack "$T/patch.so" --target "$T/nobid" --replace compute -o "$T/x.hpk"
error_is bad-input
expect_err "$T/nobid: has no GNU build-id note (wanted for --replace compute), so a package cannot be bound"

cc_arm64 -o "$T/arm" "$HP_SRC/tests/targets/victim.c"
expect_exit 2 hp-pack "$T/patch.so" --target "$T/arm" --replace compute -o "$T/x.hpk"
error_is bad-input
expect_err "architecture mismatch: $T/patch.so is x86_64, but $T/arm is aarch64 (wanted for --replace compute)"

# A target without DT_SONAME is recorded by its file name, which the manifest (JSON) can
# hold only as UTF-8: a Latin-1 byte in it is refused, the name shown escaped.
cc_x86 -o "$T/victim" "$HP_SRC/tests/targets/victim.c"
cp "$T/victim" "$T/vict"$'\xe9'
expect_exit 2 hp-pack "$T/patch.so" --target "$T/vict"$'\xe9' --replace compute -o "$T/x.hpk"
error_is unsupported
expect_err "$T/vict\xe9: its module name (the file name) 'vict\xe9' is not valid UTF-8"
expect_exit 0 hp-pack "$T/patch.so" --target "$T/victim" --replace compute -o "$T/ok.hpk"
rm "$T/ok.hpk"

echo "not elf" >"$T/text"
expect_exit 2 hp-pack "$T/patch.so" --target "$T/text" --replace compute -o "$T/x.hpk"
error_is bad-input
expect_err "$T/text: malformed ELF: not an ELF file"

expect_exit 3 hp-pack "$T/patch.so" --target "$T/missing" --replace compute -o "$T/x.hpk"
error_is io
expect_err "$T/missing: cannot open"
[ ! -e "$T/x.hpk" ] || fail "a refused pack wrote a package"
