# Every man page is clean under mandoc's linter, and documents every option --help lists.
source "$(dirname "$0")/lib.sh"
cd "$HP_SRC/man"
out=$(mandoc -T lint ./*.1 2>&1 || true)
CHECKS=$((CHECKS + 1))
[ -z "$out" ] || fail "mandoc -T lint: $out"
for page in ./*.1; do
    tool=$(basename "$page" .1)
    [ -x "$HP_BIN/$tool" ] || continue
    for opt in $("$HP_BIN/$tool" --help | grep -oE -- '--[a-z][a-z-]+' | sort -u); do
        CHECKS=$((CHECKS + 1))
        grep -qF -- "Fl ${opt#-}" "$page" || fail "$page does not document $opt"
    done
done
