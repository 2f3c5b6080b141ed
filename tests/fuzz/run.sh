#!/bin/bash
# Fuzzes one reader of outside input for a while; ctest's fuzz.package and fuzz.upstream.
#
#   HP_BIN=build [HP_SRC=.] [HP_FUZZ_SECONDS=60] tests/fuzz/run.sh [TARGET]
#
# TARGET names the fuzzer tests/fuzz/fuzz_TARGET.cpp, its seed corpus and its dictionary:
#   package   (default) the package reader:  corpus tests/fuzz/corpus/,          package.dict
#   upstream  the stdin JSON documents:      corpus tests/fuzz/corpus-upstream/, upstream.dict
#
# Configures (once) and builds a separate clang build tree in "$HP_BIN/fuzz" (libFuzzer,
# ASan, UBSan; the first build takes a few minutes; concurrent runs take turns with a lock
# on "$HP_BIN/fuzz.lock"), copies the corpus into a temporary directory, and fuzzes from
# there for HP_FUZZ_SECONDS. Fails on any crash, sanitizer report, leak, uncaught exception,
# timeout (10 s per input) or out-of-memory (2 GiB). The failing input is kept in
# "$HP_BIN/fuzz/artifacts/" with the command that reproduces it; the temporary directory is
# always removed. The committed corpus is not changed: after fixing a bug, add the minimised
# input to the corpus as regress-*.hpk (package) or regress-*.json (upstream).
set -euo pipefail
: "${HP_BIN:?HP_BIN must name the main build directory}"
HP_SRC=${HP_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
SECONDS_TO_RUN=${HP_FUZZ_SECONDS:-60}
TARGET=${1:-package}
case "$TARGET" in
package) CORPUS=$HP_SRC/tests/fuzz/corpus WHAT=read_package ;;
upstream) CORPUS=$HP_SRC/tests/fuzz/corpus-upstream WHAT="parse_upstream, interpret_check, interpret_sites" ;;
*) echo "fuzz: unknown target '$TARGET' (package or upstream)" >&2; exit 2 ;;
esac
NAME=fuzz.$TARGET
FB=$HP_BIN/fuzz
FUZZER=$FB/tests/fuzz/fuzz_$TARGET

for tool in clang clang++ cmake flock; do
    command -v "$tool" >/dev/null || { echo "$NAME: $tool not found (apt-get install clang libclang-rt-14-dev)" >&2; exit 1; }
done

mkdir -p "$HP_BIN"
(
    # One configure and one build at a time in the shared tree ($FB), whoever comes first.
    flock 9
    if [ ! -f "$FB/CMakeCache.txt" ]; then
        echo "$NAME: configuring the fuzz build tree in $FB"
        CC=clang CXX=clang++ cmake -S "$HP_SRC" -B "$FB" -DHOTPATCH_FUZZ=ON -DHOTPATCH_TESTS=OFF \
            -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$FB.configure.log" 2>&1 ||
            { cat "$FB.configure.log" >&2; echo "$NAME: configure failed" >&2; exit 1; }
        rm -f "$FB.configure.log"
    fi
    # Always (re)build: cheap when up to date, and picks up changes to lib/.
    cmake --build "$FB" --target "fuzz_$TARGET" -j2 >"$FB/build-$TARGET.log" 2>&1 ||
        { tail -n 60 "$FB/build-$TARGET.log" >&2; echo "$NAME: build failed (log: $FB/build-$TARGET.log)" >&2; exit 1; }
) 9>"$FB.lock"

T=$(mktemp -d /tmp/hp-fuzz.XXXXXX)
trap 'rm -rf "$T"' EXIT
mkdir "$T/corpus" "$T/artifacts"
cp "$CORPUS"/* "$T/corpus/"
DICT=()
[ -f "$HP_SRC/tests/fuzz/$TARGET.dict" ] && DICT=(-dict="$HP_SRC/tests/fuzz/$TARGET.dict")

echo "$NAME: fuzzing $WHAT for ${SECONDS_TO_RUN} s from $(ls "$T/corpus" | wc -l) seed files"
set +e
UBSAN_OPTIONS=print_stacktrace=1 "$FUZZER" -max_total_time="$SECONDS_TO_RUN" -rss_limit_mb=2048 -timeout=10 \
    -print_final_stats=1 -artifact_prefix="$T/artifacts/" "${DICT[@]}" "$T/corpus" >"$T/log" 2>&1
rc=$?
set -e

execs=$(awk '/^stat::number_of_executed_units:/ {print $2}' "$T/log")
rate=$(awk '/^stat::average_exec_per_sec:/ {print $2}' "$T/log")
grep -E '^#[0-9]+[[:space:]]+DONE' "$T/log" || true
artifacts=$(ls "$T/artifacts")
if [ "$rc" -ne 0 ] || [ -n "$artifacts" ] || [ -z "$execs" ]; then
    # The report: libFuzzer prints it last, after the stream of NEW/REDUCE/pulse lines.
    grep -vE '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse|RELOAD)|^[[:space:]]+NEW_FUNC' "$T/log" | tail -n 80 >&2
    if [ -n "$artifacts" ]; then
        mkdir -p "$FB/artifacts"
        cp "$T"/artifacts/* "$FB/artifacts/"
        for a in $artifacts; do
            echo "$NAME: failing input kept: $FB/artifacts/$a (reproduce: $FUZZER $FB/artifacts/$a)" >&2
        done
    fi
    echo "$NAME: FAIL (fuzzer exit $rc) after ${execs:-?} executions" >&2
    exit 1
fi
echo "$NAME: OK: $execs executions in $SECONDS_TO_RUN s ($rate exec/s), no crash, leak or timeout"
