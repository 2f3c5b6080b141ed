# hp-pack refuses a site that cannot hold the branch, and a branch inside the function
# that lands inside the site; it accepts a short function followed by padding.
source "$(dirname "$0")/lib.sh"
cat >"$T/t.c" <<'SRC'
__asm__(".text\n"
        ".globl tiny_packed\n.type tiny_packed,@function\n.p2align 4\n"
        "tiny_packed: xor %eax, %eax\n ret\n.size tiny_packed, .-tiny_packed\n"
        ".globl right_after\n.type right_after,@function\n"
        "right_after: xor %eax, %eax\n ret\n.size right_after, .-right_after\n"
        ".globl tiny_padded\n.type tiny_padded,@function\n.p2align 4\n"
        "tiny_padded: xor %eax, %eax\n ret\n.size tiny_padded, .-tiny_padded\n"
        " int3\n int3\n int3\n int3\n int3\n"
        ".globl loop_back\n.type loop_back,@function\n.p2align 4\n"
        "loop_back: xor %eax, %eax\n"      /* 31 c0: the site covers +0..+5 */
        "1: add $1, %eax\n"                /* +2: loop target inside the site */
        " cmp $10, %eax\n jne 1b\n ret\n.size loop_back, .-loop_back\n"
        ".globl loop_entry\n.type loop_entry,@function\n.p2align 4\n"
        "loop_entry: add $1, %edi\n"       /* +0: a loop back to the entry is fine */
        " cmp $10, %edi\n jne loop_entry\n mov %edi, %eax\n ret\n.size loop_entry, .-loop_entry\n");
int main(void) { return 0; }
SRC
cc_x86 -o "$T/t" "$T/t.c"
cat >"$T/p.c" <<'SRC'
int fixed(void) { return 42; }
SRC
cc_x86 -shared -fPIC -o "$T/p.so" "$T/p.c"

expect_exit 2 hp-pack "$T/p.so" --target "$T/t" --replace tiny_packed=fixed -o "$T/x.hpk"
error_is unsupported
fn=0x$(nm "$T/t" | awk '$3 == "tiny_packed" {print $1}')
expect_err "hp-pack: error: $T/t: 'tiny_packed': the site at $(printf '0x%x' "$fn") needs 5 bytes for the near branch (jmp rel32, within 2 GiB), but the function ends 3 bytes after it and is followed by 0 bytes of padding"

expect_exit 0 hp-pack "$T/p.so" --target "$T/t" --replace tiny_padded=fixed -o "$T/ok.hpk"
jq_ok '.manifest.targets[0].functions[0].size == 3 and .manifest.targets[0].functions[0].site.length == 5'
jq_ok '.manifest.targets[0].functions[0].site.expected | startswith("31c0c3cccc")'

expect_exit 2 hp-pack "$T/p.so" --target "$T/t" --replace loop_back=fixed -o "$T/x.hpk"
error_is unsupported
fn=0x$(nm "$T/t" | awk '$3 == "loop_back" {print $1}')
expect_err "hp-pack: error: $T/t: 'loop_back': branch at $(printf '0x%x' $((fn + 8))) (jnz) targets $(printf '0x%x' $((fn + 2))), inside the site [$(printf '0x%x' "$fn"), $(printf '0x%x' $((fn + 5))))"

expect_exit 0 hp-pack "$T/p.so" --target "$T/t" --replace loop_entry=fixed -o "$T/ok2.hpk"
[ ! -e "$T/x.hpk" ] || fail "a refused pack wrote a package"

# ARM64: an ARMv8.1 atomic (which Capstone 4 cannot decode) inside the site is fine; a
# conditional branch into an 8-byte paciasp site is not.
cat >"$T/a.c" <<'SRC'
__asm__(".text\n"
        ".globl atomic_first\n.type atomic_first,%function\n.p2align 4\n"
        "atomic_first: casal w0, w1, [x2]\n ret\n.size atomic_first, .-atomic_first\n"
        ".globl pac_loop\n.type pac_loop,%function\n.p2align 4\n"
        "pac_loop: paciasp\n"
        "1: add w0, w0, #1\n"        /* +4: inside the 8-byte site `bti c; b new` */
        " cmp w0, #10\n b.ne 1b\n autiasp\n ret\n.size pac_loop, .-pac_loop\n");
int main(void) { return 0; }
SRC
cc_arm64 -march=armv8.1-a -o "$T/a" "$T/a.c"
cat >"$T/pa.c" <<'SRC'
int fixed(void) { return 42; }
SRC
cc_arm64 -shared -fPIC -o "$T/pa.so" "$T/pa.c"
expect_exit 0 hp-pack "$T/pa.so" --target "$T/a" --replace atomic_first=fixed -o "$T/ok3.hpk"
jq_ok '.manifest.targets[0].functions[0].site.length == 4'
expect_exit 2 hp-pack "$T/pa.so" --target "$T/a" --replace pac_loop=fixed -o "$T/x.hpk"
error_is unsupported
fn=0x$(aarch64-linux-gnu-nm "$T/a" | awk '$3 == "pac_loop" {print $1}')
expect_err "hp-pack: error: $T/a: 'pac_loop': branch at $(printf '0x%x' $((fn + 12))) (b.ne) targets $(printf '0x%x' $((fn + 4))), inside the site [$(printf '0x%x' "$fn"), $(printf '0x%x' $((fn + 8))))"
