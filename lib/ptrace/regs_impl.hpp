// Private to lib/ptrace: what tracer.cpp needs from the host architecture's register code
// (regs_x86_64.cpp / regs_aarch64.cpp; exactly one of them has content on a given host).
// Nothing outside lib/ptrace includes this.
#pragma once

#include "common/bytes.hpp"
#include "ptrace/tracer.hpp"

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

namespace hp::ptrace::detail {

// General registers (NT_PRSTATUS). Return 0 or the errno of the failed ptrace call;
// EINVAL/ENOTSUP-like results are mapped to ENOEXEC when the register set has the wrong
// size (a 32-bit compat process: not supported).
int get_gp(Pid tid, Regs& r);
int set_gp(Pid tid, const Regs& r);

// Everything besides the general registers that a borrowed thread must get back
// bit-for-bit: x86-64 the XSAVE area (NT_X86_XSTATE, else the legacy NT_PRFPREG);
// ARM64 FP/SIMD (NT_PRFPREG) and, when the CPU has it, the SVE state (NT_ARM_SVE), which
// a system call would otherwise discard. Restored in the order saved.
struct ExtraState {
    struct Set {
        unsigned type = 0;
        Bytes data;
    };
    std::vector<Set> sets;
};
int get_extra(Pid tid, ExtraState& out);
int set_extra(Pid tid, const ExtraState& s); // arch-neutral, in tracer.cpp

// Size of the system call instruction (2: `syscall`, 4: `svc #0`).
std::size_t syscall_insn_size();

// Turns saved registers into "execute system call nr(args) at insn". x86-64 also sets
// orig_rax = -1: the thread may be stopped on the way out of an interrupted system call,
// and the kernel's restart logic (arch_do_signal_or_restart) looks at orig_rax after our
// resume; -1 means "not in a system call", so it leaves rip/rax alone.
void prepare_syscall(Regs& r, std::uint64_t insn, long nr,
                     const std::array<std::uint64_t, 6>& args);
// The death guard of a borrowed thread (see tracer.cpp): stack contents and a stack
// pointer such that, should the tracer die while the thread executes our system call at a
// `syscall; ret` instruction pair, the `ret` lands on a signal-return trampoline and
// rt_sigreturn puts back every register, the FPU/vector state and the signal mask exactly
// as saved (with an interrupted system call set up for restart, as the kernel would have
// done). `frame` is written at `frame_addr`, below the red zone of the saved stack.
struct Guard {
    std::uint64_t frame_addr = 0;
    Bytes frame;
    std::uint64_t sp = 0; // the stack pointer to run the call with
};
// It lies below `top` (and below the saved stack pointer's red zone); nullopt when this
// architecture has no guard yet or the frame does not fit above `stack_lo` (the start of
// the mapping holding the saved stack pointer).
std::optional<Guard> build_guard(const Regs& saved, const ExtraState& extra, std::uint64_t blocked,
                                 std::uint64_t trampoline, std::uint64_t stack_lo,
                                 std::uint64_t top);

// The system call's return value in the registers after it ran (rax / x0).
std::int64_t syscall_result(const Regs& r);

// Reads 4 bytes of the tracee (nullopt when unreadable).
using Read32 = std::function<std::optional<std::uint32_t>(std::uint64_t)>;
// The system call that the stop interrupted (it will be restarted by the kernel or return
// EINTR when the thread resumes), or -1 when the thread was not in one.
long interrupted_syscall(const Regs& r, const Read32& read32);

// Whether `insn` may be used to borrow a thread stopped with registers `r`. ARM64: the
// kernel's do_signal() remembers the restart address of the interrupted call before it
// stops for us and, after we resume, rewrites x8 to restart_syscall when pc equals that
// address; a borrowed thread must not have its pc set there.
bool insn_usable(const Regs& r, std::uint64_t insn);

} // namespace hp::ptrace::detail
