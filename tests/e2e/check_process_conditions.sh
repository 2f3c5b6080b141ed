# hp-check's process checks, each passing and failing where this machine can produce it:
# traced by strace, seccomp (a filter that kills on executable mmap, one that denies
# memfd_create, strict mode; no_new_privs), a binary replaced on disk after start, a
# package needing a symbol the process lacks, a kernel thread, a zombie, a PID that does
# not exist. Exit 1 when any fails.
source "$(dirname "$0")/lib.sh"
cc_x86 -o "$T/victim" "$HP_SRC/tests/targets/victim.c"

start_victim v "$T/victim"
expect_exit 0 hp-check -p "$VPID"
for id in process.exists process.kind process.arch process.traced process.ptrace \
    process.seccomp process.no-new-privs process.replaced process.patches; do
    check_is "$id" pass
done
# It runs as root: its /proc files are root's whether it is dumpable or not.
check_is process.dumpable skip
jq_ok '.checks[] | select(.id == "process.dumpable") | .detail | startswith("unknown")'
jq_ok '.checks[] | select(.id == "process.no-new-privs") | .detail == "no_new_privs is not set"'

# Traced: strace attached (its ready line is the victim answering through it).
strace -f -o /dev/null -p "$VPID" 2>"$T/strace.err" &
spid=$!
HP_PIDS+=("$spid")
wait_until "strace never attached" is_traced "$VPID"
expect_exit 1 hp-check -p "$VPID"
check_is process.traced fail
jq_ok '.checks[] | select(.id == "process.traced") | .detail | contains("strace")'
jq_ok '.ok == false and .error.code == "not-eligible"'
kill "$spid"
wait "$spid" 2>/dev/null || true
wait_until "strace never detached" is_untraced "$VPID"

# Another build at the same path without a deleted mapping (a bind mount over the file):
# the file the process would run now has another build-id. Then unmounted: a match again.
cc_x86 -DOTHER_BUILD -o "$T/victim.other" "$HP_SRC/tests/targets/victim.c"
mount --bind "$T/victim.other" "$T/victim"
HP_MOUNTS+=("$T/victim")
expect_exit 0 hp-check -p "$VPID"
check_is process.replaced warn
jq_ok ".checks[] | select(.id == \"process.replaced\") | .detail | startswith(\"$T/victim on disk has build-id \") and contains(\"the mapped one\")"
umount "$T/victim"
expect_exit 0 hp-check -p "$VPID"
check_is process.replaced pass

# Replaced on disk: a new build of the binary at the same path.
cc_x86 -DOTHER_BUILD -o "$T/victim.new" "$HP_SRC/tests/targets/victim.c"
mv "$T/victim.new" "$T/victim"
expect_exit 0 hp-check -p "$VPID"
check_is process.replaced warn
jq_ok '.checks[] | select(.id == "process.replaced") | .hint | contains("restart")'

# A package needing a symbol the process lacks.
cc_x86 -o "$T/v2" "$HP_SRC/tests/targets/victim.c"
cat >"$T/missing.c" <<'SRC'
long not_in_this_process(long);
long compute(long x) { return not_in_this_process(x); }
SRC
cc_x86 -shared -fPIC -o "$T/missing.so" "$T/missing.c"
hp-pack "$T/missing.so" --target "$T/v2" --replace compute -o "$T/missing.hpk" >/dev/null 2>&1
start_victim v2 "$T/v2"
expect_exit 1 hp-check -p "$VPID" --allow-unsigned "$T/missing.hpk"
check_is package.symbols fail
jq_ok '.checks[] | select(.id == "package.symbols") | .detail | contains("not_in_this_process")'

# Seccomp: a filter that kills on an executable mmap; and one that allows everything.
cc_x86 -o "$T/sv" "$HP_SRC/tests/targets/seccomp_victim.c"
start_victim sk "$T/sv" kill-mmap
expect_exit 1 hp-check -p "$VPID"
check_is process.seccomp fail
jq_ok '.checks[] | select(.id == "process.seccomp") | .detail | contains("kill")'
expect_answer ping pong
start_victim se "$T/sv" errno-memfd
expect_exit 1 hp-check -p "$VPID"
check_is process.seccomp fail
jq_ok '.checks[] | select(.id == "process.seccomp") | .detail | contains("memfd_create")'
check_is process.no-new-privs pass
jq_ok '.checks[] | select(.id == "process.no-new-privs") | .detail | startswith("no_new_privs is set")'
expect_answer ping pong
start_victim ss "$T/sv" strict
expect_exit 1 hp-check -p "$VPID"
check_is process.seccomp fail
jq_ok '.checks[] | select(.id == "process.seccomp") | .detail | contains("strict")'
expect_answer ping pong
start_victim sa "$T/sv" allow-log
expect_exit 0 hp-check -p "$VPID"
check_is process.seccomp pass

# A PID that does not exist is a failed check, exit 1.
expect_exit 1 hp-check -p 999999999
check_is process.exists fail

# A kernel thread (kthreadd is PID 2 outside a PID namespace; else the first one found).
kt=$(for d in /proc/[0-9]*; do
    f=$(awk '{sub(/.*\) /, ""); print $7}' "$d/stat" 2>/dev/null) || continue
    [ -n "$f" ] && [ $((f & 0x200000)) -ne 0 ] && { echo "${d#/proc/}"; break; }
done | head -1)
if [ -n "$kt" ]; then
    expect_exit 1 hp-check -p "$kt"
    check_is process.kind fail
    jq_ok '.checks[] | select(.id == "process.kind") | .detail == "a kernel thread"'
else
    echo "note: no kernel thread visible in this PID namespace; that case was not run"
fi

# A zombie: a child that exited and whose parent (now sleep) never reaps it.
python3 -c 'import os, sys
pid = os.fork()
if pid == 0:
    os._exit(0)
open(sys.argv[1], "w").write(str(pid))
os.execvp("sleep", ["sleep", "1000"])' "$T/zpid" &
HP_PIDS+=("$!")
wait_until "no zombie pid written" test -s "$T/zpid"
zpid=$(cat "$T/zpid")
is_zombie() { [ "$(awk '{sub(/.*\) /, ""); print $1}' "/proc/$zpid/stat")" = Z ]; }
wait_until "process $zpid never became a zombie" is_zombie
expect_exit 1 hp-check -p "$zpid"
check_is process.exists pass
check_is process.kind fail
jq_ok '.checks[] | select(.id == "process.kind") | .detail | contains("zombie")'
