# hp-check's process.arch on a 32-bit (i386 compat) process: a fail naming it, exit 1,
# never a check left out; the package checks that need it are skipped. A native process
# passes (check_process_conditions). Skipped (77) when the kernel cannot run i386 code.
source "$(dirname "$0")/lib.sh"
as --32 -o "$T/i386.o" "$HP_SRC/tests/targets/i386_blocking.s"
ld -m elf_i386 -o "$T/i386" "$T/i386.o"
"$T/i386" </dev/null >/dev/null 2>&1 || { echo "SKIP: this kernel does not run i386 programs"; exit 77; }

start_victim v "$T/i386"
expect_exit 1 hp-check -p "$VPID"
check_is process.arch fail
jq_ok '.checks[] | select(.id == "process.arch") | .detail == "32-bit i386 process: not supported"'
jq_ok '.ok == false and .error.code == "not-eligible" and (.error.message | startswith("process.arch"))'
check_is process.exists pass
check_is process.kind pass
expect_err "process.arch: 32-bit i386 process: not supported"

# With a package: its checks are not run against a process of another architecture.
cc_x86 -o "$T/victim" "$HP_SRC/tests/targets/victim.c"
cc_x86 -shared -fPIC -o "$T/patch.so" "$HP_SRC/tests/targets/patch.c"
hp-pack "$T/patch.so" --target "$T/victim" --replace compute -o "$T/fix.hpk" >/dev/null
expect_exit 1 hp-check -p "$VPID" --allow-unsigned "$T/fix.hpk"
check_is process.arch fail
check_is package.modules skip
jq_ok '.checks[] | select(.id == "package.plan") | .detail == "not checked: process.arch failed"'

# It is still blocked in read(0), untouched: one byte lets it exit 0.
echo >&"$VIN"
wait "$VPID" || fail "the i386 victim exited $?"
