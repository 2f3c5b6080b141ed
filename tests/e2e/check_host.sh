# hp-check's host checks by id: each probed feature passes on this machine (as root); the
# informational ones report what this kernel has. Then the same checks under a seccomp
# filter (tests/targets/seccomp_exec.c) that makes ptrace, memfd_create and
# process_vm_readv/writev fail with EPERM, as a container's profile may: host.ptrace-seize
# and host.memfd fail, host.process-vm warns (not required), host.proc-mem is skipped
# (its probe needs a tracer), exit 1.
source "$(dirname "$0")/lib.sh"
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root"; exit 77; }
expect_exit 0 hp-check
jq_ok '.schema == "hotpatch.check/1" and .ok and ([.checks[] | select(.status == "fail")] | length == 0)'
for id in host.kernel host.arch host.ptrace-seize host.process-vm host.memfd host.privileges host.proc-mem; do
    check_is "$id" pass
done
jq_ok ".checks[] | select(.id == \"host.kernel\") | .detail | startswith(\"Linux $(uname -r) \")"
jq_ok '.checks[] | select(.id == "host.privileges") | .detail == "running as root"'
jq_ok '.checks[] | select(.id == "host.proc-mem") | .detail | contains("probed on a child")'
# PR_GET_MDWE (Linux 6.3+): a pass where the kernel knows it, else skipped.
if python3 -c 'import ctypes, sys; sys.exit(ctypes.CDLL(None).prctl(66, 0, 0, 0, 0) < 0)'; then
    check_is host.mdwe pass
else
    check_is host.mdwe skip
fi
if [ -e /proc/sys/kernel/yama/ptrace_scope ]; then
    jq_ok '.checks[] | select(.id == "host.yama") | .detail | startswith("Yama ptrace_scope ")'
else
    check_is host.yama pass
    jq_ok '.checks[] | select(.id == "host.yama") | .detail == "Yama is not present (classic ptrace rules)"'
fi
[ -e /sys/fs/selinux/enforce ] || { check_is host.selinux skip; jq_ok '.checks[] | select(.id == "host.selinux") | .detail == "SELinux not present"'; }
[ "$(cat /sys/module/apparmor/parameters/enabled 2>/dev/null)" = Y ] || check_is host.apparmor skip
if [ -e /sys/kernel/security/lockdown ]; then check_is host.lockdown pass; else check_is host.lockdown skip; fi

# Under the seccomp filter.
cc_x86 -o "$T/seccomp_exec" "$HP_SRC/tests/targets/seccomp_exec.c"
expect_exit 1 "$T/seccomp_exec" hp-check
jq_ok '.ok == false and .error.code == "not-eligible"'
check_is host.ptrace-seize fail
jq_ok '.checks[] | select(.id == "host.ptrace-seize") | (.detail | contains("Operation not permitted")) and (.hint | contains("seccomp"))'
check_is host.memfd fail
jq_ok '.checks[] | select(.id == "host.memfd") | .detail == "memfd_create: Operation not permitted"'
check_is host.process-vm warn
check_is host.proc-mem skip
jq_ok '.checks[] | select(.id == "host.proc-mem") | .detail | startswith("not probed: PTRACE_SEIZE failed")'
for id in host.kernel host.arch host.privileges; do check_is "$id" pass; done
expect_err "hp-check: host.ptrace-seize: PTRACE_SEIZE on a child failed"
expect_err "hp-check: host.memfd: memfd_create"
