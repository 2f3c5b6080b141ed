#!/usr/bin/env bash
# The demo: build the service and its fix, pack the fix against the service binary,
# inspect it, start the service, check the fix (dry run), apply it while the service runs,
# verify, revert — the service keeps answering throughout, one process. Run through
# ./run demo (tests/e2e/demo_runs.sh runs it too).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${HP_BIN:?set HP_BIN to the build directory}
WORK=$(mktemp -d /tmp/hotpatch-demo.XXXXXX)
SVC=
cleanup() { [ -n "$SVC" ] && kill "$SVC" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
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

step "start the service (it stays up from here on)"
mkfifo "$WORK/in" "$WORK/out"
"$WORK/service" <"$WORK/in" >"$WORK/out" 2>"$WORK/audit.log" &
SVC=$!
exec {TO}>"$WORK/in"
exec {FROM}<"$WORK/out"
read -t 10 -r line <&"$FROM"
echo "service pid $SVC: $line"
# ask NAME: one request to the running service; the answer, the PID that gave it (the same
# process all along) and the service's own request counter from its audit log.
ask() {
    printf '%s\n' "$1" >&"$TO"
    read -t 10 -r line <&"$FROM" || { echo "demo: the service did not answer" >&2; exit 1; }
    kill -0 "$SVC" || { echo "demo: the service is gone" >&2; exit 1; }
    printf '  pid %s  %-9s -> %-16s (audit %s)\n' "$SVC" "\"$1\"" "$line" "$(tail -1 "$WORK/audit.log" | cut -d' ' -f2)"
}
ask admin
ask ""

step "check everything first, changing nothing"
echo "hp-apply -p $SVC --allow-unsigned --dry-run fix-empty-user.hpk"
"$BIN/hp-apply" -p "$SVC" --allow-unsigned --dry-run "$WORK/fix-empty-user.hpk" --format text

step "apply the fix to the running service"
echo "hp-apply -p $SVC --allow-unsigned fix-empty-user.hpk"
"$BIN/hp-apply" -p "$SVC" --allow-unsigned "$WORK/fix-empty-user.hpk" --format text
ask admin
ask ""

step "verify what is in memory"
echo "hp-verify -p $SVC"
"$BIN/hp-verify" -p "$SVC" --format text
echo "hp-inspect fix-empty-user.hpk | hp-verify -p $SVC - | jq .package"
"$BIN/hp-inspect" "$WORK/fix-empty-user.hpk" | "$BIN/hp-verify" -p "$SVC" - | jq -c .package
ask ""

step "revert it (the next restart runs the fixed binary from disk anyway)"
echo "hp-apply -p $SVC --revert fix-empty-user"
"$BIN/hp-apply" -p "$SVC" --revert fix-empty-user --format text
ask admin
ask ""

step "the same process answered throughout"
echo "pid $SVC, $(grep -c '^audit:' "$WORK/audit.log") requests served, no restart"
