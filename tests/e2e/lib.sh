# Shared helpers for the end-to-end tests (sourced). Each test gets a scratch directory,
# and everything it started is killed and removed on exit, also on failure.
set -euo pipefail
: "${HP_BIN:?HP_BIN must name the build directory}"
: "${HP_SRC:?HP_SRC must name the source directory}"
export PATH="$HP_BIN:$PATH"
T=$(mktemp -d /tmp/hp-e2e.XXXXXX)
HP_PIDS=()
TEST_NAME=$(basename "$0" .sh)
CHECKS=0
_hp_cleanup() {
    local rc=$?
    for p in "${HP_PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    rm -rf "$T"
    if [ $rc -eq 0 ]; then echo "PASS $TEST_NAME ($CHECKS checks)"; fi
}
trap _hp_cleanup EXIT

fail() {
    echo "FAIL $TEST_NAME: $*" >&2
    [ -s "$T/out" ] && { echo "--- stdout:" >&2; head -c 3000 "$T/out" >&2; echo >&2; }
    [ -s "$T/err" ] && { echo "--- stderr:" >&2; head -c 3000 "$T/err" >&2; }
    exit 1
}

# expect_exit STATUS CMD...: run CMD (stdout -> $T/out, stderr -> $T/err), require STATUS.
expect_exit() {
    local want=$1
    shift
    set +e
    "$@" >"$T/out" 2>"$T/err"
    local got=$?
    set -e
    CHECKS=$((CHECKS + 1))
    [ "$got" -eq "$want" ] || fail "'$*' exited $got, expected $want"
}
# expect_err TEXT: stderr of the last command contains TEXT.
expect_err() {
    CHECKS=$((CHECKS + 1))
    grep -qF -- "$1" "$T/err" || fail "stderr does not contain '$1'"
}
# jq_ok EXPR: the JSON on stdout of the last command satisfies EXPR.
jq_ok() {
    CHECKS=$((CHECKS + 1))
    jq -e "$1" "$T/out" >/dev/null || fail "jq '$1' does not hold"
}
# error_is CODE: the document says ok=false with this error code.
error_is() {
    jq_ok ".ok == false and .error.code == \"$1\" and (.error.message | length > 0)"
}

# Compilers: native x86-64 and the Debian aarch64 cross compiler.
cc_x86() { gcc -O2 "$@"; }
cc_arm64() { aarch64-linux-gnu-gcc -O2 "$@"; }
