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
expect_err "$T/ctor.so: has a constructor 'setup'"

cat >"$T/tls.c" <<'SRC'
static __thread long per_thread;
long compute(long x) { return x + ++per_thread; }
SRC
cc_x86 -shared -fPIC -o "$T/tls.so" "$T/tls.c"
expect_exit 2 hp-pack "$T/tls.so" --target "$T/victim" --replace compute -o "$T/x.hpk"
error_is unsupported
expect_err "$T/tls.so: has a TLS segment"

# The patch author copied `static long calls;` instead of declaring it extern.
cat >"$T/dup.c" <<'SRC'
static long calls;
long compute(long x) { calls++; return x + calls; }
long *keep(void) { return &calls; }
SRC
cc_x86 -shared -fPIC -o "$T/dup.so" "$T/dup.c"
expect_exit 2 hp-pack "$T/dup.so" --target "$T/victim" --replace compute -o "$T/x.hpk"
error_is unsupported
expect_err "$T/dup.so: defines the data object 'calls', which $T/victim also defines"

# A relocation type the loader does not apply: turn the payload's R_X86_64_GLOB_DAT into
# R_X86_64_PC64 (24) in place.
cc_x86 -shared -fPIC -o "$T/rel.so" "$HP_SRC/tests/targets/patch.c"
python3 - "$T/rel.so" <<'PY'
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
            open(p, 'wb').write(d); sys.exit(0)
sys.exit("no GLOB_DAT relocation found")
PY
expect_exit 2 hp-pack "$T/rel.so" --target "$T/victim" --replace compute -o "$T/x.hpk"
error_is unsupported
expect_err "$T/rel.so: has the relocation type 24"
expect_err "supported: R_X86_64_NONE, R_X86_64_64, R_X86_64_GLOB_DAT, R_X86_64_JUMP_SLOT, R_X86_64_RELATIVE"

# A plain gcc -shared payload (crt's frame_dummy in .init_array) is accepted.
cc_x86 -shared -fPIC -o "$T/ok.so" "$HP_SRC/tests/targets/patch.c"
expect_exit 0 hp-pack "$T/ok.so" --target "$T/victim" --replace compute -o "$T/ok.hpk"
[ ! -e "$T/x.hpk" ] || fail "a refused pack wrote a package"
