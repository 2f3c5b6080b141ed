# Every man page is clean under mandoc's linter, and documents every option --help lists.
source "$(dirname "$0")/lib.sh"
cd "$HP_SRC/man"
out=$(mandoc -T lint ./*.1 2>&1 || true)
CHECKS=$((CHECKS + 1))
[ -z "$out" ] || fail "mandoc -T lint: $out"
for page in ./*.1; do
    tool=$(basename "$page" .1)
    CHECKS=$((CHECKS + 1))
    [ -x "$HP_BIN/$tool" ] || fail "$page has no tool $HP_BIN/$tool to compare its options with"
    "$HP_BIN/$tool" --help >"$T/help" || fail "$tool --help failed"
    opts=$(grep -oE -- '--[a-z][a-z-]+' "$T/help" | sort -u)
    [ -n "$opts" ] || fail "$tool --help lists no options"
    for opt in $opts; do
        CHECKS=$((CHECKS + 1))
        grep -qF -- "Fl ${opt#-}" "$page" || fail "$page does not document $opt"
    done
done
