#!/bin/bash
# Fuzzes the package reader (tests/fuzz/fuzz_package.cpp) for a while; ctest's fuzz.package.
#
#   HP_BIN=build [HP_SRC=.] [HP_FUZZ_SECONDS=60] tests/fuzz/run.sh
#
# Configures (once) and builds a separate clang build tree in "$HP_BIN/fuzz" (libFuzzer,
# ASan, UBSan; the first build takes a few minutes), copies tests/fuzz/corpus into a
# temporary directory, and fuzzes from there for HP_FUZZ_SECONDS. Fails on any crash,
# sanitizer report, leak, uncaught exception, timeout (10 s per input) or out-of-memory
# (2 GiB). The failing input is kept in "$HP_BIN/fuzz/artifacts/" with the command that
# reproduces it; the temporary directory is always removed. The committed corpus is not
# changed: after fixing a bug, add the minimised input as tests/fuzz/corpus/regress-*.hpk.
set -euo pipefail
: "${HP_BIN:?HP_BIN must name the main build directory}"
HP_SRC=${HP_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
SECONDS_TO_RUN=${HP_FUZZ_SECONDS:-60}
FB=$HP_BIN/fuzz
FUZZER=$FB/tests/fuzz/fuzz_package

for tool in clang clang++ cmake; do
    command -v "$tool" >/dev/null || { echo "fuzz.package: $tool not found (apt-get install clang libclang-rt-14-dev)" >&2; exit 1; }
done

if [ ! -f "$FB/CMakeCache.txt" ]; then
    echo "fuzz.package: configuring the fuzz build tree in $FB"
    CC=clang CXX=clang++ cmake -S "$HP_SRC" -B "$FB" -DHOTPATCH_FUZZ=ON -DHOTPATCH_TESTS=OFF \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$FB.configure.log" 2>&1 ||
        { cat "$FB.configure.log" >&2; echo "fuzz.package: configure failed" >&2; exit 1; }
    rm -f "$FB.configure.log"
fi
# Always (re)build: cheap when up to date, and picks up changes to lib/.
cmake --build "$FB" --target fuzz_package -j2 >"$FB/build.log" 2>&1 ||
    { tail -n 60 "$FB/build.log" >&2; echo "fuzz.package: build failed (log: $FB/build.log)" >&2; exit 1; }

T=$(mktemp -d /tmp/hp-fuzz.XXXXXX)
trap 'rm -rf "$T"' EXIT
mkdir "$T/corpus" "$T/artifacts"
cp "$HP_SRC"/tests/fuzz/corpus/* "$T/corpus/"
DICT=()
[ -f "$HP_SRC/tests/fuzz/package.dict" ] && DICT=(-dict="$HP_SRC/tests/fuzz/package.dict")

echo "fuzz.package: fuzzing read_package for ${SECONDS_TO_RUN} s from $(ls "$T/corpus" | wc -l) seed files"
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
            echo "fuzz.package: failing input kept: $FB/artifacts/$a (reproduce: $FUZZER $FB/artifacts/$a)" >&2
        done
    fi
    echo "fuzz.package: FAIL (fuzzer exit $rc) after ${execs:-?} executions" >&2
    exit 1
fi
echo "fuzz.package: OK: $execs executions in $SECONDS_TO_RUN s ($rate exec/s), no crash, leak or timeout"
