# hp-pack refuses payloads that would silently not work: constructors, TLS, a data
# object the target also defines, relocation types the loader does not apply.
source "$(dirname "$0")/lib.sh"
cc_x86 -o "$T/victim" "$HP_SRC/tests/targets/victim.c"

cat >"$T/ctor.c" <<'SRC'
static int ready;
__attribute__((constructor)) static void setup(void) { ready = 1; }
long compute(long x) { return x + ready; }
SRC
cc_x86 -shared -fPIC -o "$T/ctor.so" "$T/ctor.c"
expect_exit 2 hp-pack "$T/ctor.so" --target "$T/victim" --replace compute -o "$T/x.hpk"
error_is unsupported
expect_err "hp-pack: error: $T/ctor.so: has a constructor 'setup' (.init_array entry at 0x"

cat >"$T/tls.c" <<'SRC'
static __thread long per_thread;
long compute(long x) { return x + ++per_thread; }
SRC
cc_x86 -shared -fPIC -o "$T/tls.so" "$T/tls.c"
expect_exit 2 hp-pack "$T/tls.so" --target "$T/victim" --replace compute -o "$T/x.hpk"
error_is unsupported
expect_err "hp-pack: error: $T/tls.so: has a TLS segment for the thread-local variable 'per_thread' (thread-local variables are not supported)"

# The patch author copied `static long calls;` instead of declaring it extern.
cat >"$T/dup.c" <<'SRC'
static long calls;
long compute(long x) { calls++; return x + calls; }
long *keep(void) { return &calls; }
SRC
cc_x86 -shared -fPIC -o "$T/dup.so" "$T/dup.c"
expect_exit 2 hp-pack "$T/dup.so" --target "$T/victim" --replace compute -o "$T/x.hpk"
error_is unsupported
expect_err "hp-pack: error: $T/dup.so: defines the data object 'calls', which $T/victim also defines (at 0x"

# A relocation type the loader does not apply: turn the payload's first R_X86_64_GLOB_DAT
# into R_X86_64_PC64 (24) in place; the script prints its offset and symbol.
cc_x86 -shared -fPIC -o "$T/rel.so" "$HP_SRC/tests/targets/patch.c"
read -r rel_at rel_sym < <(python3 - "$T/rel.so" <<'PY'
import struct, sys
p = sys.argv[1]; d = bytearray(open(p, 'rb').read())
shoff = struct.unpack_from('<Q', d, 40)[0]; shnum = struct.unpack_from('<H', d, 60)[0]
for i in range(shnum):
    name, typ, flags, addr, off, size, link, info, align, ent = struct.unpack_from('<IIQQQQIIQQ', d, shoff + 64 * i)
    if typ != 4: continue
    for r in range(off, off + size, 24):
        info = struct.unpack_from('<Q', d, r + 8)[0]
        if info & 0xffffffff == 6:
            struct.pack_into('<Q', d, r + 8, (info >> 32) << 32 | 24)
            open(p, 'wb').write(d)
            symoff = struct.unpack_from('<Q', d, shoff + 64 * link + 24)[0]
            stroff = struct.unpack_from('<Q', d, shoff + 64 * struct.unpack_from('<I', d, shoff + 64 * link + 40)[0] + 24)[0]
            n = stroff + struct.unpack_from('<I', d, symoff + 24 * (info >> 32))[0]
            print(hex(struct.unpack_from('<Q', d, r)[0]), d[n : d.index(0, n)].decode())
            sys.exit(0)
sys.exit("no GLOB_DAT relocation found")
PY
) || true
[ -n "$rel_sym" ] || fail "fixture: no GLOB_DAT relocation with a symbol in rel.so"
expect_exit 2 hp-pack "$T/rel.so" --target "$T/victim" --replace compute -o "$T/x.hpk"
error_is unsupported
expect_err "hp-pack: error: $T/rel.so: has the relocation type 24 at $rel_at against '$rel_sym' (.rela.dyn), which the loader does not apply;"
expect_err "supported: R_X86_64_NONE, R_X86_64_64, R_X86_64_GLOB_DAT, R_X86_64_JUMP_SLOT, R_X86_64_RELATIVE"

# A plain gcc -shared payload (crt's frame_dummy in .init_array) is accepted.
cc_x86 -shared -fPIC -o "$T/ok.so" "$HP_SRC/tests/targets/patch.c"
expect_exit 0 hp-pack "$T/ok.so" --target "$T/victim" --replace compute -o "$T/ok.hpk"
[ ! -e "$T/x.hpk" ] || fail "a refused pack wrote a package"
