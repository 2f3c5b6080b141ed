#!/bin/bash
# Regenerates the seed documents of tests/fuzz/corpus-upstream/ (fuzz_upstream: what
# `hp-apply -` and `hp-verify -` read) with the real tools against a real victim
# (tests/targets/victim.c). Needs the rights to trace it (root, or Yama scope 0).
#
#   tests/fuzz/make-corpus-upstream.sh [BUILD_DIR]     (default build/)
#
# It replaces the seed-*.json files only, compacted with jq (the fuzzer's speed depends on
# input size). The broken-*.json files are hand-written near misses (a check document
# with fields of the wrong types, an apply document with broken sites, nesting one level
# too deep, ...) and the regress-*.json files inputs that once broke the reader; both are
# kept as they are. Documents carry PIDs, addresses and times, so each run gives other
# bytes.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$(cd "${1:-${HP_BIN:-$SRC/build}}" && pwd)
OUT=$SRC/tests/fuzz/corpus-upstream
for t in hp-pack hp-inspect hp-check hp-apply; do
    [ -x "$BIN/$t" ] || { echo "make-corpus-upstream: no $t in $BIN (build first)" >&2; exit 1; }
done
command -v jq >/dev/null || { echo "make-corpus-upstream: jq not found" >&2; exit 1; }
T=$(mktemp -d /tmp/hp-corpus.XXXXXX)
VPID=
trap '[ -z "$VPID" ] || { kill -9 "$VPID"; wait "$VPID" || true; } 2>/dev/null; rm -rf "$T"' EXIT

gcc -O2 -o "$T/victim" "$SRC/tests/targets/victim.c"
gcc -O2 -DOTHER_BUILD -o "$T/victim2" "$SRC/tests/targets/victim.c"
gcc -O2 -shared -fPIC -o "$T/patch.so" "$SRC/tests/targets/patch.c"
"$BIN/hp-pack" "$T/patch.so" --target "$T/victim" --replace compute --replace other=other_v2 \
    -o "$T/fix.hpk" >/dev/null
"$BIN/hp-pack" "$T/patch.so" --target "$T/victim2" --replace compute -o "$T/other.hpk" >/dev/null
mkfifo "$T/in" "$T/out"
"$T/victim" <"$T/in" >"$T/out" &
VPID=$!
exec {VIN}>"$T/in" {VOUT}<"$T/out"
read -t 10 -r _ <&"$VOUT"

doc() { # doc NAME EXPECTED_STATUS CMD...: one seed from the stdout of CMD
    local name=$1 want=$2 got=0
    shift 2
    "$@" >"$T/doc.json" 2>/dev/null || got=$?
    [ "$got" -eq "$want" ] || { echo "make-corpus-upstream: '$*' exited $got, expected $want" >&2; exit 1; }
    jq -c . "$T/doc.json" >"$T/$name.json"
}
doc seed-check 0 "$BIN/hp-check" -p "$VPID" --allow-unsigned "$T/fix.hpk"
doc seed-check-not-eligible 1 "$BIN/hp-check" -p "$VPID" --allow-unsigned "$T/other.hpk"
doc seed-check-io 3 "$BIN/hp-check" -p "$VPID" --allow-unsigned "$T/missing.hpk"
doc seed-inspect 0 "$BIN/hp-inspect" "$T/fix.hpk"
doc seed-apply-dry-run 0 "$BIN/hp-apply" -p "$VPID" --allow-unsigned --dry-run "$T/fix.hpk"
doc seed-apply 0 "$BIN/hp-apply" -p "$VPID" --allow-unsigned - <"$T/seed-check.json"
doc seed-apply-revert 0 "$BIN/hp-apply" -p "$VPID" --revert fix
doc seed-apply-not-applied 1 "$BIN/hp-apply" -p "$VPID" --revert fix # ok false

mkdir -p "$OUT"
rm -f "$OUT"/seed-*.json
cp "$T"/seed-*.json "$OUT/"
ls -l "$OUT"
echo "make-corpus-upstream: $(ls "$OUT" | wc -l) files, $(du -cb "$OUT"/* | tail -1 | cut -f1) bytes in $OUT"
