# Shared helpers for the end-to-end tests (sourced). Each test gets a scratch directory,
# and everything it started is killed and removed on exit, also on failure.
set -euo pipefail
: "${HP_BIN:?HP_BIN must name the build directory}"
: "${HP_SRC:?HP_SRC must name the source directory}"
export PATH="$HP_BIN:$PATH"
T=$(mktemp -d /tmp/hp-e2e.XXXXXX)
HP_PIDS=()
HP_MOUNTS=() # bind mounts a test made, unmounted on exit
TEST_NAME=$(basename "$0" .sh)
CHECKS=0
_hp_cleanup() {
    local rc=$?
    for p in "${HP_PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    for m in "${HP_MOUNTS[@]}"; do umount "$m" 2>/dev/null || true; done
    rm -rf "$T"
    if [ $rc -eq 0 ]; then echo "PASS $TEST_NAME ($CHECKS checks)"; fi
}
trap _hp_cleanup EXIT
# A command that fails outside expect_exit ends the test under set -e; say which one.
trap '[[ $- != *e* ]] || echo "FAIL $TEST_NAME: line $LINENO: \"$BASH_COMMAND\" exited $?" >&2' ERR

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
# check_status ID: the status of hp-check's check ID in the last document ("" when it is
# absent; distinct statuses space-separated when the check appears more than once).
check_status() { jq -r ".checks[] | select(.id == \"$1\") | .status" "$T/out" | sort -u | tr '\n' ' ' | sed 's/ $//'; }
# check_is ID STATUS: hp-check's check ID has STATUS ("pass", "warn", "fail", "skip").
check_is() {
    CHECKS=$((CHECKS + 1))
    [ "$(check_status "$1")" = "$2" ] || fail "check $1 is '$(check_status "$1")', expected '$2'"
}

# Compilers: native x86-64 and the Debian aarch64 cross compiler.
cc_x86() { gcc -O2 "$@"; }
cc_arm64() { aarch64-linux-gnu-gcc -O2 "$@"; }

# start_victim NAME CMD...: runs CMD with its stdin and stdout on fifos; sets VPID, VIN
# (write requests), VOUT (read answers); waits for its "ready" line (10 s watchdog).
start_victim() {
    local name=$1
    shift
    mkfifo "$T/$name.in" "$T/$name.out"
    "$@" <"$T/$name.in" >"$T/$name.out" 2>"$T/$name.err" &
    VPID=$!
    HP_PIDS+=("$VPID")
    exec {VIN}>"$T/$name.in"
    exec {VOUT}<"$T/$name.out"
    read -t 10 -r REPLY <&"$VOUT" || fail "victim $name did not start"
    case "$REPLY" in ready*) ;; *) fail "victim $name said '$REPLY' instead of ready" ;; esac
}
# ask LINE: send one request, read one answer into REPLY (10 s watchdog).
ask() {
    echo "$1" >&"$VIN"
    read -t 10 -r REPLY <&"$VOUT" || fail "victim did not answer '$1'"
}
# expect_answer REQUEST WANT
expect_answer() {
    ask "$1"
    CHECKS=$((CHECKS + 1))
    [ "$REPLY" = "$2" ] || fail "victim answered '$REPLY' to '$1', expected '$2'"
}
# Every executable mapping of a process, bytes included, as one hash per mapping. A
# mapping that cannot be read whole fails the snapshot (and so the test): a skipped
# mapping would hide a change. ([vsyscall] is not readable through /proc/PID/mem.)
exec_snapshot() {
    python3 - "$1" <<'PY'
import sys, hashlib
pid = sys.argv[1]
mem = open(f"/proc/{pid}/mem", "rb", 0)
for line in open(f"/proc/{pid}/maps"):
    f = line.split()
    lo, hi = (int(x, 16) for x in f[0].split("-"))
    if "x" not in f[1] or (len(f) > 5 and f[5] == "[vsyscall]"):
        continue
    mem.seek(lo)
    try:
        data = mem.read(hi - lo)
    except OSError as e:
        sys.exit(f"exec_snapshot: cannot read {line.strip()}: {e}")
    if len(data) != hi - lo:
        sys.exit(f"exec_snapshot: read {len(data)} of {hi - lo} bytes of {line.strip()}")
    print(f[0], f[1], " ".join(f[5:]), hashlib.sha256(data).hexdigest())
PY
}

# wait_until MESSAGE CMD...: poll a state (not a timing) every 5 ms until CMD succeeds;
# fail with MESSAGE after 2000 tries (a 10 s watchdog, like the others here).
wait_until() {
    local msg=$1 i
    shift
    for i in $(seq 1 2000); do
        "$@" && return 0
        sleep 0.005
    done
    fail "$msg"
}
# track_child PID: also kill, on exit, the child of PID (hp-apply run under `timeout`,
# whose own PID $! is not: killing only the wrapper would leave hp-apply running).
track_child() {
    local c
    c=$(pgrep -P "$1") || fail "process $1 has no child to track"
    HP_PIDS+=($c)
}
# test_user: TEST_UID becomes the uid of hp-e2e-user, a system user for tests that need
# one that is not root (created when missing, and then deleted on exit), and $T readable
# by it. as_user CMD...: run CMD as that user.
test_user() {
    [ "$(id -u)" -eq 0 ] || fail "this test needs root to create its user"
    if ! id hp-e2e-user >/dev/null 2>&1; then
        useradd --system --no-create-home --shell /usr/sbin/nologin hp-e2e-user
        trap '_hp_cleanup; userdel hp-e2e-user 2>/dev/null || true' EXIT
    fi
    TEST_UID=$(id -u hp-e2e-user)
    chmod 755 "$T"
}
as_user() { setpriv --reuid="$TEST_UID" --regid="$TEST_UID" --clear-groups "$@"; }
# killed_apply STEP ARGS...: run `hp-apply ARGS` that kills itself at the fault point STEP
# (HOTPATCH_TEST_FAULT, man hp-apply), and require that it died there (exit 137).
killed_apply() {
    local step=$1 rc
    shift
    set +e
    HOTPATCH_TEST_FAULT=$step hp-apply "$@" >"$T/out" 2>"$T/err"
    rc=$?
    set -e
    CHECKS=$((CHECKS + 1))
    [ "$rc" -eq 137 ] || fail "hp-apply was not killed at '$step' (exit $rc)"
}
# hold_apply STEP NAME ARGS...: start `hp-apply ARGS` (60 s watchdog) that stops at the
# test hold point STEP (HOTPATCH_TEST_HOLD, man hp-apply; STEP:N at its Nth occurrence),
# and return once it holds there. Its output goes to $T/NAME.out and $T/NAME.err; APID is
# its PID's wrapper.
# release_apply lets it go on; wait_apply waits for it and leaves its exit status in RC.
hold_apply() {
    local step=$1 name=$2
    shift 2
    mkfifo "$T/$name.hold"
    HOTPATCH_TEST_HOLD=$step HOTPATCH_TEST_HOLD_FD=3 timeout 60 hp-apply "$@" \
        3<"$T/$name.hold" >"$T/$name.out" 2>"$T/$name.err" &
    APID=$!
    HP_PIDS+=("$APID")
    exec {HOLD}>"$T/$name.hold"
    wait_until "hp-apply never held at $step" grep -q "holding at ${step%%:*}" "$T/$name.err"
    track_child "$APID"
}
release_apply() { echo go >&"$HOLD"; }
wait_apply() {
    set +e
    wait "$APID"
    RC=$?
    set -e
    exec {HOLD}>&-
}
# tracer_of PID: the TracerPid of a process (0 when not traced).
tracer_of() { awk '/TracerPid/ {print $2}' "/proc/$1/status"; }
is_traced() { [ "$(tracer_of "$1")" != 0 ]; }
is_untraced() { [ "$(tracer_of "$1")" = 0 ]; }

# ---- crash consistency (tests/targets/many.c: "state" answers o/n per function) ----
# build_many: $T/many (tests/targets/many.c) and $T/many.hpk, the package "many" that
# replaces all 20 of its functions.
build_many() {
    cc_x86 -pthread -o "$T/many" "$HP_SRC/tests/targets/many.c"
    cc_x86 -shared -fPIC -o "$T/p.so" "$HP_SRC/tests/targets/many_patch.c"
    local args=() i
    for i in $(seq 0 19); do args+=(--replace "f$i=f${i}_v2"); done
    hp-pack "$T/p.so" --target "$T/many" "${args[@]}" --id many -o "$T/many.hpk" >/dev/null
}
# after_kill ID: after an hp-apply of patch ID was killed, the victim lives, behaves
# all-old, all-new or (only when hp-verify names a half state) mixed, never anything else;
# hp-verify -p shows no trace (OUTCOME=none), the complete patch (complete), the patch
# reverted with its code still mapped (kept: a revert killed before it unmapped), or a
# named half state (half: an apply or a revert interrupted between its writes, or the
# remains of an apply killed before its record). The hp-verify document is left in
# $T/verify.json.
# A worker borrowed for a system call when hp-apply died finishes that call on its own
# (man hp-apply); every worker's call count growing proves none is still in one, so what
# the call does (a memfd created, a mapping made or removed) is not left to race the
# checks below.
workers_moved_on() {
    ask progress
    local now=($REPLY) i
    for i in "${!now[@]}"; do [ "${now[$i]}" -gt "${PROGRESS_AT_KILL[$i]}" ] || return 1; done
}
after_kill() {
    local id=$1 rc n
    kill -0 "$VPID" 2>/dev/null || fail "the victim died"
    ask progress
    PROGRESS_AT_KILL=($REPLY)
    wait_until "a worker of the victim stopped making calls after the kill" workers_moved_on
    ask state
    local state=$REPLY
    case $state in *'?'*) fail "torn function: state $state" ;; esac
    set +e
    hp-verify -p "$VPID" >"$T/verify.json" 2>"$T/verify.err"
    rc=$?
    set -e
    CHECKS=$((CHECKS + 1))
    n=$(jq '.patches | length' "$T/verify.json")
    if [ "$n" -eq 0 ]; then
        [ "$rc" -eq 0 ] || fail "hp-verify exited $rc with no patch: $(cat "$T/verify.err")"
        [[ $state =~ ^o+$ ]] || fail "no patch recorded, but the victim behaves $state"
        ! grep -q hotpatch "/proc/$VPID/maps" || fail "a hotpatch mapping without a record is not reported"
        OUTCOME=none
    elif jq -e --arg id "$id" '.patches | length == 1 and .[0].id == $id and .[0].state == "applied" and
                (.[0].sites | length == 20 and all(.status == "patched"))' "$T/verify.json" >/dev/null; then
        [ "$rc" -eq 0 ] || fail "hp-verify exited $rc on a complete patch"
        [[ $state =~ ^n+$ ]] || fail "patch recorded complete, but the victim behaves $state"
        OUTCOME=complete
    elif jq -e --arg id "$id" '.patches | length == 1 and .[0].id == $id and .[0].state == "reverted" and
                (.[0].sites | length == 20 and all(.status == "original"))' "$T/verify.json" >/dev/null; then
        [ "$rc" -eq 0 ] || fail "hp-verify exited $rc on a reverted patch"
        [[ $state =~ ^o+$ ]] || fail "patch recorded reverted, but the victim behaves $state"
        OUTCOME=kept
    else
        [ "$rc" -eq 1 ] || fail "hp-verify exited $rc on a half state: $(cat "$T/verify.json")"
        jq -e --arg id "$id" '.patches | all(.id == $id and (.state == "preparing" or .state == "debris" or
                (.state == "applied" and has("interrupted"))))' \
            "$T/verify.json" >/dev/null || fail "unexpected patches: $(cat "$T/verify.json")"
        grep -q "interrupted" "$T/verify.err" || fail "hp-verify does not name the half state: $(cat "$T/verify.err")"
        OUTCOME=half
    fi
}
# clean_victim: nothing of ours is left in the victim (mappings, descriptors) and it
# behaves all-old.
clean_victim() {
    CHECKS=$((CHECKS + 1))
    ! grep -q hotpatch "/proc/$VPID/maps" || fail "a hotpatch mapping is left: $(grep hotpatch "/proc/$VPID/maps")"
    local fds
    fds=$(ls -l "/proc/$VPID/fd")
    [[ $fds != *memfd:hotpatch* ]] || fail "a hotpatch memfd descriptor is left open"
    expect_answer state oooooooooooooooooooo
}
# repair ID PACKAGE HOW: bring the victim back to all-old after after_kill: HOW = apply
# (the next hp-apply repairs and applies, then a revert) or revert (--revert repairs);
# code kept mapped is unmapped by --revert again.
repair() {
    local id=$1 pkg=$2 how=$3
    case $OUTCOME in
    none) ;;
    complete) expect_exit 0 hp-apply -p "$VPID" --revert "$id" ;;
    kept)
        expect_exit 0 hp-apply -p "$VPID" --revert "$id"
        jq_ok '.unmapped == true'
        ;;
    half)
        if [ "$how" = apply ]; then
            expect_exit 0 hp-apply -p "$VPID" --allow-unsigned "$pkg"
            jq_ok '.repaired | length >= 1'
            expect_answer state nnnnnnnnnnnnnnnnnnnn
            expect_exit 0 hp-apply -p "$VPID" --revert "$id"
        else
            expect_exit 0 hp-apply -p "$VPID" --revert "$id"
        fi
        ;;
    esac
    clean_victim
}
