# hp-inspect on damaged packages: never a crash, never a hang, always a clean answer.
# (a) 500 damaged copies as they come (truncated, 1..8 bits flipped, a zeroed range): each
#     is refused with exit 2 and error code bad-package (the digest or the layout catches it).
# (b) 500 copies damaged the same way, then made to pass the digest, so the manifest and
#     payload checks behind it see the damage: exit 0 or 2 only; half with --disasm, so
#     the disassemblers see hostile bytes too. At most 2% may still fail the digest and
#     at least 80% must be refused by the manifest or payload checks or accepted (497 of
#     500 were), so a broken digest recomputation cannot pass unnoticed.
# (c) the regression inputs of tests/fuzz/corpus (regress-*.hpk): exit 2, printable JSON.
# (d) large hostile packages (5 to 48 MB), valid digests, made here (too big for the
#     corpus), each aimed at a table walk that used to be quadratic or at name copies that
#     used to multiply: 65535 program headers x 400 000 relocations; 65535 section names
#     all pointing at one 1 MiB string (64 GiB of copies); 100 000 undefined symbols x
#     100 000 local symbols in the manifest; 5000 functions x 1M payload symbols; 4096
#     .init_array slots x 1M relocations and 1M symbols. Before the fixes each took 16 to
#     34 s (or ran out of memory) on a 2-core machine, now 0.5 to 3 s. Each: exit 0 or 2
#     within the 10 s timeout, with --disasm, under a 4 GiB address-space limit.
# One python3 process with a fixed seed writes every file; validation is one python3 run.
source "$(dirname "$0")/lib.sh"
cc_x86 -o "$T/victim" "$HP_SRC/tests/targets/victim.c"
cc_x86 -shared -fPIC -o "$T/patch.so" "$HP_SRC/tests/targets/patch.c"
cc_arm64 -o "$T/victim-arm64" "$HP_SRC/tests/targets/victim.c"
cc_arm64 -shared -fPIC -o "$T/patch-arm64.so" "$HP_SRC/tests/targets/patch.c"
expect_exit 0 hp-pack --keygen robust --key-dir "$T"
expect_exit 0 hp-pack "$T/patch.so" --target "$T/victim" --replace compute --replace other=other_v2 \
    -o "$T/x86.hpk"
expect_exit 0 hp-pack "$T/patch-arm64.so" --target "$T/victim-arm64" --replace compute \
    --replace other=other_v2 --sign "$T/robust.key" -o "$T/arm64-signed.hpk"
expect_exit 0 hp-inspect "$T/arm64-signed.hpk"
jq_ok '.ok and .signature.status == "valid"'

mkdir "$T/a" "$T/b"
# Damage, per file (kind = index mod 3):
#   truncate: cut at a random length below the original;
#   flip:     flip 1..8 random bits;
#   zero:     zero a random range of 1..256 bytes.
# A copy that comes out identical to the original, or (signed base) truncated exactly to
# its unsigned length (which is again a valid package), is drawn again.
# For (b) the package is made to pass the digest afterwards:
#   - a signed base loses its signature block first (it could not be re-signed here, and an
#     invalid signature would stop every copy before the structure checks);
#   - flip / zero: damage lands in [0, digest_off) of the original layout; then the
#     manifest's payload.sha256 (a second digest, checked before the ELF reader runs) is
#     set to the sha256 of the damaged payload when its 64 digits are still where hp-pack
#     wrote them, and the digest at the ORIGINAL header's payload_off + payload_size is
#     recomputed over the damaged bytes before it (damage to the header sizes moves where
#     the reader looks, so such copies fail the layout checks instead: that is intended);
#   - truncate: a digest at the original offset cannot exist in a shorter file, so the
#     cut is made at the damaged layout instead: the payload is cut at a random length and
#     the container is rebuilt consistently around it (header payload_size, manifest
#     payload.size and payload.sha256, padding, digest), so the ELF reader gets a
#     truncated payload.
python3 - "$T" <<'PY'
import hashlib, json, random, struct, sys

T = sys.argv[1]
rng = random.Random(20261124)

def layout(d):
    ms, ps = struct.unpack_from("<QQ", d, 16)
    po = (32 + ms + 15) & ~15
    return ms, ps, po, po + ps

bases = []
for name in ("x86.hpk", "arm64-signed.hpk"):
    d = open(f"{T}/{name}", "rb").read()
    ms, ps, po, do = layout(d)
    bases.append((name, d, do + 32 != len(d)))

def damage(d, kind, lo, hi, forbidden=()):
    while True:
        b = bytearray(d)
        if kind == "truncate":
            b = b[: rng.randrange(0, len(d))]
        elif kind == "flip":
            for _ in range(rng.randint(1, 8)):
                i = rng.randrange(lo, hi)
                b[i] ^= 1 << rng.randrange(8)
        else:
            n = rng.randint(1, 256)
            i = rng.randrange(lo, hi)
            b[i : min(i + n, hi)] = bytes(min(i + n, hi) - i)
        if bytes(b) != d and len(b) not in forbidden:
            return bytes(b)

def set_payload_sha(manifest, old_hex, new_hex):
    # In place, same length: only where hp-pack wrote it ("sha256":"<hex>" of "payload").
    key = b'"sha256":"' + old_hex.encode() + b'"'
    i = manifest.find(key)
    if i < 0:
        return manifest
    return manifest[:i] + b'"sha256":"' + new_hex.encode() + b'"' + manifest[i + len(key):]

def container(manifest, payload):
    out = bytearray(b"HOTPATCH" + struct.pack("<IIQQ", 1, 0, len(manifest), len(payload)))
    out += manifest
    out += bytes(-len(out) % 16)
    out += payload
    out += hashlib.sha256(out).digest()
    return bytes(out)

kinds = ("truncate", "flip", "zero")
for i in range(500):  # (a)
    name, d, signed = bases[i % 2]
    ms, ps, po, do = layout(d)
    kind = kinds[i % 3]
    # Damage anywhere in the file, digest and signature included.
    out = damage(d, kind, 0, len(d), forbidden=(do + 32,) if signed else ())
    open(f"{T}/a/{i:03d}-{kind}-{name}", "wb").write(out)

for i in range(500):  # (b)
    name, d, signed = bases[i % 2]
    ms, ps, po, do = layout(d)
    d = d[: do + 32]  # unsigned
    kind = kinds[i % 3]
    manifest, payload = d[32 : 32 + ms], d[po:do]
    old_hex = hashlib.sha256(payload).hexdigest()
    if kind == "truncate":
        cut = payload[: rng.randrange(1, len(payload))]
        m = json.loads(manifest)
        m["payload"]["size"] = len(cut)
        m["payload"]["sha256"] = hashlib.sha256(cut).hexdigest()
        out = container(json.dumps(m, separators=(",", ":")).encode(), cut)
    else:
        b = bytearray(damage(d, kind, 0, do))
        new_manifest = set_payload_sha(bytes(b[32 : 32 + ms]), old_hex,
                                       hashlib.sha256(bytes(b[po:do])).hexdigest())
        b[32 : 32 + ms] = new_manifest
        b[do : do + 32] = hashlib.sha256(bytes(b[:do])).digest()
        out = bytes(b)
    open(f"{T}/b/{i:03d}-{kind}-{name}", "wb").write(out)

# (d): built on the unsigned x86-64 base's manifest and payload.
d = bases[0][1]
ms, ps, po, do = layout(d)
manifest, payload = d[32 : 32 + ms], d[po:do]
def rebuilt(p):
    m = json.loads(manifest)
    m["payload"]["size"] = len(p)
    m["payload"]["sha256"] = hashlib.sha256(p).hexdigest()
    return container(json.dumps(m, separators=(",", ":")).encode(), p)
def section_headers(e):
    shoff, = struct.unpack_from("<Q", e, 40)
    shnum, shstrndx = struct.unpack_from("<HH", e, 60)
    heads = [shoff + 64 * i for i in range(shnum)]
    names_off, = struct.unpack_from("<Q", e, heads[shstrndx] + 24)
    def name(h):
        o = names_off + struct.unpack_from("<I", e, h)[0]
        return e[o : e.index(0, o)].decode()
    return {name(h): h for h in heads}
import os
os.mkdir(f"{T}/d")
# 65535 program headers (the real ones, then PT_NULL) and .rela.dyn moved to 400 000
# R_X86_64_NONE relocations inside the first loadable segment.
e = bytearray(payload)
rela = section_headers(e)[".rela.dyn"]
phoff, = struct.unpack_from("<Q", e, 32)
phnum, = struct.unpack_from("<H", e, 56)
real = e[phoff : phoff + 56 * phnum]
struct.pack_into("<Q", e, 32, len(e))
struct.pack_into("<H", e, 56, 65535)
e += real + bytes(56 * (65535 - phnum))
nrel = 400000
struct.pack_into("<QQ", e, rela + 24, len(e), 24 * nrel)
e += struct.pack("<QQq", 0, 0, 0) * nrel
open(f"{T}/d/relocs-x-phdrs.hpk", "wb").write(rebuilt(bytes(e)))
# 65535 section headers, all SHT_STRTAB over one 1 MiB name, and every name offset 0.
e = bytearray(payload)
strtab = len(e)
e += b"A" * (1 << 20) + b"\0"
shoff = len(e)
e += struct.pack("<IIQQQQIIQQ", 0, 3, 0, 0, strtab, (1 << 20) + 1, 0, 0, 1, 0) * 65535
struct.pack_into("<Q", e, 40, shoff)
struct.pack_into("<HH", e, 60, 65535, 1)
open(f"{T}/d/names-x-sections.hpk", "wb").write(rebuilt(bytes(e)))
# 100 000 local symbols and 100 000 undefined entries provided by the last of them.
m = json.loads(manifest)
n = 100000
m["targets"][0]["local_symbols"] = [{"name": f"s{i:06d}", "address": "0x0", "type": "func"} for i in range(n)]
m["undefined"] = [{"name": f"s{n - 1:06d}", "version": "", "weak": False, "provider": "target:0"}] * n
open(f"{T}/d/providers-x-locals.hpk", "wb").write(
    container(json.dumps(m, separators=(",", ":")).encode(), payload))
# 5000 functions whose replacement the payload lacks, and 1M more (empty) .symtab entries.
heads = section_headers(payload)
m = json.loads(manifest)
fn = dict(m["targets"][0]["functions"][0], replacement="absent")
m["targets"][0]["functions"] = [fn] * 5000
m["undefined"] = []
e = bytearray(payload)
so, sz = struct.unpack_from("<QQ", e, heads[".symtab"] + 24)
symtab = bytes(e[so : so + sz])
struct.pack_into("<QQ", e, heads[".symtab"] + 24, len(e), sz + 24 * 1000000)
e += symtab + bytes(24 * 1000000)
m["payload"]["size"] = len(e)
m["payload"]["sha256"] = hashlib.sha256(e).hexdigest()
open(f"{T}/d/functions-x-symbols.hpk", "wb").write(
    container(json.dumps(m, separators=(",", ":")).encode(), bytes(e)))
# 4096 .init_array slots, each made frame_dummy by a RELATIVE relocation that follows 1M
# filler relocations, with frame_dummy's symbol after 1M empty .symtab entries.
e = bytearray(payload)
init = struct.unpack_from("<Q", e, heads[".init_array"] + 16)[0]
stro = struct.unpack_from("<Q", e, heads[".strtab"] + 24)[0]
fd = next(struct.unpack_from("<Q", e, so + 24 * i + 8)[0] for i in range(sz // 24)
          if e[stro + struct.unpack_from("<I", e, so + 24 * i)[0] :].startswith(b"frame_dummy\0"))
do, dsz = struct.unpack_from("<QQ", e, heads[".dynamic"] + 24)
for k in range(dsz // 16):
    if struct.unpack_from("<q", e, do + 16 * k)[0] == 27:  # DT_INIT_ARRAYSZ
        struct.pack_into("<Q", e, do + 16 * k + 8, 4096 * 8)
phoff, = struct.unpack_from("<Q", e, 32)
for i in range(struct.unpack_from("<H", e, 56)[0]):  # the PT_LOAD holding .init_array grows
    t, _, _, va, _, _, msz = struct.unpack_from("<IIQQQQQ", e, phoff + 56 * i)
    if t == 1 and va <= init < va + msz:
        struct.pack_into("<Q", e, phoff + 56 * i + 40, init + 4096 * 8 + 64 - va)
ro, rsz = struct.unpack_from("<QQ", e, heads[".rela.dyn"] + 24)
relocs = (struct.pack("<QQq", init + 4096 * 8, 0, 0) * 1000000
          + b"".join(struct.pack("<QQq", init + 8 * k, 8, fd) for k in range(4096)) + bytes(e[ro : ro + rsz]))
struct.pack_into("<QQ", e, heads[".rela.dyn"] + 24, len(e), len(relocs))
e += relocs
struct.pack_into("<QQ", e, heads[".symtab"] + 24, len(e), 24 * 1000000 + sz)
e += bytes(24 * 1000000) + symtab
open(f"{T}/d/init-array-x-relocs.hpk", "wb").write(rebuilt(bytes(e)))
PY

# Every call: timeout 10 (124 = a hang), exit status and stdout kept for the validation.
: >"$T/results"
run_all() { # run_all SET (--disasm: every other file of b, every file of d)
    local set=$1 n=0 f rc
    for f in "$T/$set"/*.hpk; do
        local args=()
        if { [ "$set" = b ] && [ $((n % 2)) -eq 1 ]; } || [ "$set" = d ]; then args=(--disasm); fi
        n=$((n + 1))
        set +e
        timeout 10 hp-inspect --format json "${args[@]}" "$f" >"$f.json" 2>"$f.err"
        rc=$?
        set -e
        echo "$set $rc ${#args[@]} $f" >>"$T/results"
    done
}
run_all a
run_all b
mkdir "$T/c"
cp "$HP_SRC"/tests/fuzz/corpus/regress-*.hpk "$T/c/"
run_all c
(ulimit -v 4194304 && run_all d)

CHECKS=$((CHECKS + 1))
rm -f "$T/out" "$T/err" # fail() would show the last expect_exit's output, unrelated here
python3 - "$T/results" <<'PY' || fail "hp-inspect crashed, hung or answered wrongly on a damaged package (see above)"
import collections, json, sys

bad = []
counts = {k: collections.Counter() for k in "abcd"}
disasm = 0
for line in open(sys.argv[1]):
    s, rc, nd, path = line.rstrip("\n").split(" ", 3)
    rc = int(rc)
    disasm += s == "b" and nd != "0"
    name = path.rsplit("/", 1)[1]
    if rc >= 128 or rc == 124 or rc in (1, 3):
        why = {124: "timed out (hang)"}.get(rc, f"died of signal {rc - 128}" if rc >= 128 else f"exit {rc}")
        err = open(path + ".err", "rb").read()[-400:].decode("utf-8", "replace")
        bad.append(f"{s}/{name}: {why}: {err.strip()}")
        counts[s][f"FAIL exit {rc}"] += 1
        continue
    try:
        doc = json.load(open(path + ".json", encoding="utf-8"))
    except Exception as e:
        bad.append(f"{s}/{name}: exit {rc} without a JSON document ({e})")
        counts[s]["FAIL no JSON"] += 1
        continue
    if rc == 0:
        outcome = "ok"
        if doc.get("ok") is not True:
            bad.append(f"{s}/{name}: exit 0 but ok is not true")
    else:
        code = doc.get("error", {}).get("code")
        msg = doc.get("error", {}).get("message", "")
        if doc.get("ok") is not False or not msg:
            bad.append(f"{s}/{name}: exit {rc} without an error object")
        if "digest mismatch" in msg:
            where = "digest"
        elif "malformed ELF" in msg or "payload:" in msg:
            where = "payload"
        elif "manifest" in msg:
            where = "manifest"
        else:
            where = "container"
        outcome = f"{code}({where})"
    counts[s][outcome] += 1
    if s == "a" and not (rc == 2 and outcome.startswith("bad-package(")):
        bad.append(f"a/{name}: exit {rc} {outcome}, expected exit 2 bad-package")
    if s == "b" and rc not in (0, 2):
        bad.append(f"b/{name}: exit {rc}, expected 0 or 2")
    if s == "c" and rc != 2:
        bad.append(f"c/{name}: exit {rc}, expected 2")
    if s == "d" and rc not in (0, 2):
        bad.append(f"d/{name}: exit {rc}, expected 0 or 2")

# (b) must reach the checks behind the digest: a broken digest recomputation above would
# turn almost every copy into a digest mismatch and still pass the exit-status checks.
nb = sum(counts["b"].values())
digest = sum(v for k, v in counts["b"].items() if k.endswith("(digest)"))
behind = sum(v for k, v in counts["b"].items() if k == "ok" or k.endswith(("(manifest)", "(payload)")))
if digest > nb // 50:
    bad.append(f"b: {digest} of {nb} copies fail the digest (at most {nb // 50} may): the recomputation is broken")
if behind < nb * 4 // 5:
    bad.append(f"b: only {behind} of {nb} copies reach the manifest or payload checks or pass "
               f"(at least {nb * 4 // 5} must)")

def show(s):
    return " ".join(f"{k}={v}" for k, v in sorted(counts[s].items())) or "none"
print(f"inspect_robustness: (a) {sum(counts['a'].values())} damaged: {show('a')}")
print(f"inspect_robustness: (b) {sum(counts['b'].values())} damaged behind the digest "
      f"({disasm} with --disasm): {show('b')}")
print(f"inspect_robustness: (c) {sum(counts['c'].values())} regression inputs: {show('c')}")
print(f"inspect_robustness: (d) {sum(counts['d'].values())} large hostile payloads: {show('d')}")
for b in bad[:30]:
    print("FAIL", b, file=sys.stderr)
if bad:
    print(f"inspect_robustness: {len(bad)} failures", file=sys.stderr)
sys.exit(1 if bad else 0)
PY
