#!/usr/bin/env bash
# The demo: build the service and its fix, pack the fix against the service binary,
# and inspect the package. Run through ./run demo.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${HP_BIN:?set HP_BIN to the build directory}
WORK=$(mktemp -d /tmp/hotpatch-demo.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "build the service and the patch"
gcc -O2 -g -o "$WORK/service" "$HERE/service.c"
gcc -O2 -shared -fPIC -o "$WORK/fix.so" "$HERE/fix.c"
echo "gcc -O2 -g -o service service.c"
echo "gcc -O2 -shared -fPIC -o fix.so fix.c"

step "the bug: an empty user name is granted access"
printf 'admin\nmallory\n\n' | "$WORK/service" 2>/dev/null

step "pack the fix against the exact service binary"
echo "hp-pack fix.so --target service --replace check_access -o fix-empty-user.hpk"
"$BIN/hp-pack" "$WORK/fix.so" --target "$WORK/service" --replace check_access \
    --description "deny empty user names" -o "$WORK/fix-empty-user.hpk" --format text

step "inspect the package"
echo "hp-inspect --disasm fix-empty-user.hpk"
"$BIN/hp-inspect" --disasm "$WORK/fix-empty-user.hpk" --format text

step "the same as JSON, for scripts"
echo "hp-inspect fix-empty-user.hpk | jq '.functions[] | {symbol, site: .site.address, expected: .site.expected}'"
"$BIN/hp-inspect" "$WORK/fix-empty-user.hpk" | jq '.functions[] | {symbol, site: .site.address, expected: .site.expected}'
