#!/bin/bash
# Regenerates the seed packages of tests/fuzz/corpus/ with the real hp-pack, from
# tests/targets/victim.c and tests/targets/patch.c (ARM64 with aarch64-linux-gnu-gcc).
#
#   tests/fuzz/make-corpus.sh [BUILD_DIR]     (BUILD_DIR: where hp-pack is; default build/)
#
# It replaces the seed-*.hpk files only. The regress-*.hpk files are inputs that once broke
# the reader; they are kept as they are, never regenerated. Each has a valid digest and
# payload.sha256 (unsigned), so hp-inspect reaches the flaw too (tests/e2e/
# inspect_robustness.sh feeds them to it and requires exit 2):
#   regress-utf8-undefined-name.hpk  found by fuzz_package: a payload .dynsym name with a
#       0x9c byte quoted in an error message; nlohmann::json refused to serialise the
#       error document and hp-inspect died in std::terminate (exit 134).
#   regress-utf8-tls-symbol.hpk      the same through payload.cpp's refuse(): an STT_TLS
#       .symtab symbol whose name starts with 0xff.
#   regress-utf8-section-name.hpk    the same through ElfFile::bad(): section "\xffrela.dyn"
#       made SHT_REL.
#   regress-reloc-offset-wrap.hpk    an R_X86_64_RELATIVE at 0xfffffffffffffff9: the
#       "inside a PT_LOAD" check wrapped around and accepted it (the loader would write
#       8 bytes just below the payload's mapping).
# The seeds are kept small (the fuzzer's speed depends on input size): -Os, no separate
# code segment, no relro, no build-id or .comment in the payload, `strip -g` (which keeps
# .symtab: the reader needs it to recognise crt's frame_dummy in .init_array).
# Packages carry the creation time and a fresh signing key, so each run gives other bytes.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$(cd "${1:-${HP_BIN:-$SRC/build}}" && pwd)
OUT=$SRC/tests/fuzz/corpus
PACK=$BIN/hp-pack
[ -x "$PACK" ] || { echo "make-corpus: no hp-pack in $BIN (build first)" >&2; exit 1; }
T=$(mktemp -d /tmp/hp-corpus.XXXXXX)
trap 'rm -rf "$T"' EXIT

V=$SRC/tests/targets/victim.c
P=$SRC/tests/targets/patch.c
SMALL=(-Os -shared -fPIC -Wl,-z,noseparate-code -Wl,-z,norelro -Wl,--hash-style=gnu -Wl,--build-id=none)

# Payloads.
gcc "${SMALL[@]}" -o "$T/patch-x86.so" "$P"
strip -g -R .comment "$T/patch-x86.so"
aarch64-linux-gnu-gcc "${SMALL[@]}" -Wl,-z,max-page-size=4096 -o "$T/patch-arm64.so" "$P"
aarch64-linux-gnu-strip -g -R .comment "$T/patch-arm64.so"

# Targets: plain, with entry landing pads (x86-64 endbr64, ARM64 bti c), and stripped.
gcc -O2 -o "$T/victim-x86" "$V"
gcc -O2 -fcf-protection=full -o "$T/victim-x86-cet" "$V"
gcc -O2 -o "$T/victim-x86-stripped" "$V"
compute_addr=0x$(nm "$T/victim-x86-stripped" | awk '$3 == "compute" {print $1}')
strip "$T/victim-x86-stripped"
aarch64-linux-gnu-gcc -O2 -o "$T/victim-arm64" "$V"
aarch64-linux-gnu-gcc -O2 -mbranch-protection=standard -o "$T/victim-arm64-bti" "$V"

"$PACK" --keygen corpus --key-dir "$T" >/dev/null

pack() { # pack NAME ARGS...: one seed, quietly
    local name=$1
    shift
    "$PACK" "$@" -o "$T/$name.hpk" >"$T/pack.json" 2>"$T/pack.err" ||
        { cat "$T/pack.err" >&2; echo "make-corpus: hp-pack failed for $name" >&2; exit 1; }
}
# x86-64, unsigned, two functions, the victim's statics as local symbols.
pack seed-x86-multi "$T/patch-x86.so" --target "$T/victim-x86" \
    --replace compute --replace other=other_v2 --description "fuzz seed: two functions"
# x86-64, signed, endbr64 kept (site offset 4).
pack seed-x86-signed-cet "$T/patch-x86.so" --target "$T/victim-x86-cet" --replace compute \
    --sign "$T/corpus.key"
# x86-64, stripped target named by address: size from .eh_frame, no symbol, statics left to
# the process.
pack seed-x86-byaddr "$T/patch-x86.so" --target "$T/victim-x86-stripped" --replace "$compute_addr=compute"
# ARM64, unsigned, two functions.
pack seed-arm64-multi "$T/patch-arm64.so" --target "$T/victim-arm64" \
    --replace compute --replace other=other_v2
# ARM64, signed, bti c kept.
pack seed-arm64-signed-bti "$T/patch-arm64.so" --target "$T/victim-arm64-bti" \
    --replace compute --replace other=other_v2 --sign "$T/corpus.key"

mkdir -p "$OUT"
rm -f "$OUT"/seed-*.hpk
cp "$T"/seed-*.hpk "$OUT/"
ls -l "$OUT"
echo "make-corpus: $(ls "$OUT" | wc -l) files, $(du -cb "$OUT"/* | tail -1 | cut -f1) bytes in $OUT"
