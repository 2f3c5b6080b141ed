// The target's seccomp filters, and whether the system calls we inject pass them (DESIGN §6:
// "Injected system calls pass through the target's seccomp filter, and a 'kill' action
// kills the target: read the filter first or refuse"; §8: hp-check explains seccomp).
//
// Filters are per thread (a thread may install one without SECCOMP_FILTER_FLAG_TSYNC), so
// every check names the thread that will execute the calls. The filters are read with
// PTRACE_SECCOMP_GET_FILTER and evaluated here by a small classic-BPF interpreter that
// accepts exactly what the kernel accepts for seccomp and treats anything else as
// SECCOMP_RET_KILL_PROCESS: when in doubt, we refuse.
#pragma once

#include "arch/arch.hpp"
#include "proc/process.hpp"

#include <array>
#include <cstdint>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <string>
#include <vector>

namespace hp::ptrace {

using proc::Pid;

struct SeccompInfo {
    int mode = 0;              // "Seccomp:" 0 none, 1 strict, 2 filter (3: dying, after a kill)
    int filters = -1;          // "Seccomp_filters:"; -1 when the kernel does not report it (< 5.9)
    bool no_new_privs = false; // "NoNewPrivs:"
};
// From /proc/PID/status (the main thread). Throws Error(NoSuchProcess) when unreadable.
SeccompInfo seccomp_info(Pid pid);
// From /proc/PID/task/TID/status: what one thread runs under.
SeccompInfo seccomp_info(Pid pid, Pid tid);

// The classic-BPF programs attached to a thread, index 0 the most recently installed (the
// order in which the kernel runs them; PTRACE_SECCOMP_GET_FILTER itself numbers them from
// the oldest, see seccomp.cpp). The thread must be seized by the calling thread and in a
// ptrace-stop; the kernel also requires CAP_SYS_ADMIN and that the caller itself is not
// under seccomp. Throws Error(NotEligible) naming why a filter cannot be read (no kernel
// support, no privilege, an eBPF filter), Error(ProcessExited) when the thread is gone.
std::vector<std::vector<sock_filter>> read_filters(Pid tid);

// Runs one seccomp program on `data`, as the kernel would. Pure and bounds-checked: a
// program the kernel would have refused to load (unknown or non-seccomp opcode, a jump out
// of range, a load outside seccomp_data or misaligned, scratch memory read before it is
// written on some path, no RET at the end, division by a constant 0, ...) returns
// SECCOMP_RET_KILL_PROCESS.
std::uint32_t run_filter(const std::vector<sock_filter>& prog, const seccomp_data& data);
// The effective return value of several filters: the one whose action has the highest
// precedence (smallest signed value of ret & SECCOMP_RET_ACTION_FULL); on a tie the
// earlier one in `filters` (the newer one) wins, with its data. No filter: ALLOW.
std::uint32_t run_filters(const std::vector<std::vector<sock_filter>>& filters,
                          const seccomp_data& data);
// Whether the system call runs: ALLOW or LOG.
bool action_allows(std::uint32_t ret);
// "kill the process", "kill the thread", "trap (SIGSYS)", "return EPERM", ...
std::string describe_action(std::uint32_t ret);

// AUDIT_ARCH_X86_64 (0xc000003e) / AUDIT_ARCH_AARCH64 (0xc00000b7): seccomp_data.arch for a
// native 64-bit system call of that architecture.
std::uint32_t audit_arch(arch::Arch a);

struct InjectedCall {
    long nr;                           // the target ABI's number (arch::syscalls(a))
    std::array<std::uint64_t, 6> args; // as they will be passed (filters test flags, prot...)
    const char* name;                  // for the message: "mmap", "memfd_create"
};

// Refuses (throws Error(NotEligible)) when thread `stopped_tid` of process `pid` would not
// simply run every call in `calls`: strict mode, or a filter action other than ALLOW/LOG
// for one of them, or filters that cannot be read. `stopped_tid` must be seized by the
// calling thread and in a ptrace-stop (e.g. after Tracer::stop_all). `syscall_insn` is the
// address of the system-call instruction the calls will execute (0 when unknown): filters
// may test seccomp_data.instruction_pointer, which the kernel sets to the address after it.
void check_injection_allowed(Pid pid, Pid stopped_tid, arch::Arch a,
                             const std::vector<InjectedCall>& calls,
                             std::uint64_t syscall_insn = 0);

} // namespace hp::ptrace
