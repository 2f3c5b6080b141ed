# An ARM64 victim and patch, cross-compiled, pack and inspect on this x86-64 host.
source "$(dirname "$0")/lib.sh"
cc_arm64 -o "$T/victim" "$HP_SRC/tests/targets/victim.c"
cc_arm64 -shared -fPIC -o "$T/patch.so" "$HP_SRC/tests/targets/patch.c"
cc_arm64 -mbranch-protection=standard -o "$T/victim-pac" "$HP_SRC/tests/targets/victim.c"

expect_exit 0 hp-pack "$T/patch.so" --target "$T/victim" --replace compute -o "$T/arm.hpk"
jq_ok '.ok and .manifest.arch == "aarch64"'
expect_exit 0 hp-inspect --disasm "$T/arm.hpk"
jq_ok '.manifest.arch == "aarch64" and .functions[0].symbol == "compute"'
jq_ok '.functions[0].site.length == 4 and .functions[0].site.offset == 0'
jq_ok '.functions[0].site_disasm | length >= 1'
jq_ok '[.functions[0].replacement_disasm[].text] | any(test("^ret"))'
bid=$(aarch64-linux-gnu-readelf -n "$T/victim" | awk '/Build ID/ {print $3}')
jq_ok ".manifest.targets[0].build_id == \"$bid\""
site=$(jq -r '.functions[0].site.address' "$T/out")
word=$(aarch64-linux-gnu-objdump -d --start-address="$site" --stop-address=$((site + 4)) "$T/victim" |
    awk -F'\t' '/^ *[0-9a-f]+:/ && !n++ {print $2}' | tr -d ' ')
# objdump prints the word big-endian; the document has the bytes in memory order.
le=$(echo "$word" | sed 's/\(..\)\(..\)\(..\)\(..\)/\4\3\2\1/')
jq_ok ".functions[0].site.expected | startswith(\"$le\")"

# With -mbranch-protection=standard a leaf function starts with `bti c`, which is kept.
expect_exit 0 hp-pack "$T/patch.so" --target "$T/victim-pac" --replace compute -o "$T/arm-pac.hpk"
expect_exit 0 hp-inspect --disasm "$T/arm-pac.hpk"
aarch64-linux-gnu-objdump -d "$T/victim-pac" | awk '/<compute>:/ {getline; found = /bti/} END {exit !found}' ||
    fail "compute does not start with bti c"
jq_ok '.functions[0].site.offset == 4 and .functions[0].site.length == 4 and .functions[0].site.landing_pad == false'

# A function entered through paciasp: the site starts at the entry, its patched bytes are
# `bti c; b new` (paciasp is never kept), so it covers 8 bytes.
cat >"$T/pac.c" <<'SRC'
__asm__(".text\n.globl pac_first\n.type pac_first,%function\n.p2align 4\npac_first:\n"
        "  paciasp\n  stp x29, x30, [sp, #-16]!\n  mov x29, sp\n  bl compute\n"
        "  ldp x29, x30, [sp], #16\n  autiasp\n  ret\n.size pac_first, .-pac_first\n");
long compute(long x) { return x + 1; }
int main(void) { return 0; }
SRC
cc_arm64 -o "$T/pac" "$T/pac.c"
expect_exit 0 hp-pack "$T/patch.so" --target "$T/pac" --replace pac_first=compute -o "$T/pac.hpk"
expect_exit 0 hp-inspect --disasm "$T/pac.hpk"
jq_ok '.functions[0].site.landing_pad == true and .functions[0].site.offset == 0 and .functions[0].site.length == 8'
jq_ok '.functions[0].site_disasm[0].text == "paciasp"'
jq_ok '.functions[0].site.expected | startswith("3f2303d5")'

# An x86-64 patch against an ARM64 target is refused.
cc_x86 -shared -fPIC -o "$T/patch-x86.so" "$HP_SRC/tests/targets/patch.c"
expect_exit 2 hp-pack "$T/patch-x86.so" --target "$T/victim" --replace compute --replace main=compute -o "$T/bad.hpk"
error_is bad-input
expect_err "architecture mismatch: $T/patch-x86.so is x86_64, but $T/victim is aarch64 (wanted for --replace compute, main)"
[ ! -e "$T/bad.hpk" ] || fail "a refused pack wrote a package"
