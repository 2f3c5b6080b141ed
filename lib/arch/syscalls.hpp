// System call numbers and conventions the tool injects, per architecture (the numbers of
// the target's ABI, not the host's: both tables are always built).
#pragma once

#include "arch/arch.hpp"

#include <vector>

namespace hp::arch {

struct SyscallNumbers {
    long mmap, munmap, mprotect, memfd_create, ftruncate, close, getpid;
};

constexpr SyscallNumbers kX86_64Syscalls{9, 11, 10, 319, 77, 3, 39};
constexpr SyscallNumbers kAArch64Syscalls{222, 215, 226, 279, 46, 57, 172};

inline const SyscallNumbers& syscalls(Arch a) {
    return a == Arch::X86_64 ? kX86_64Syscalls : kAArch64Syscalls;
}

// The bytes of the system call instruction: `syscall` (0f 05) / `svc #0` (01 00 00 d4).
inline ByteView syscall_insn(Arch a) {
    static constexpr std::uint8_t x86[] = {0x0f, 0x05};
    static constexpr std::uint8_t arm[] = {0x01, 0x00, 0x00, 0xd4};
    return a == Arch::X86_64 ? ByteView(x86) : ByteView(arm);
}

// The return instruction that must follow a system call instruction for the borrowed
// thread's death guard (see lib/ptrace/tracer.cpp): `ret` (c3) / `ret` (c0 03 5f d6).
inline ByteView return_insn(Arch a) {
    static constexpr std::uint8_t x86[] = {0xc3};
    static constexpr std::uint8_t arm[] = {0xc0, 0x03, 0x5f, 0xd6};
    return a == Arch::X86_64 ? ByteView(x86) : ByteView(arm);
}

// Signal-return trampolines as C libraries and the kernel ship them: "set the
// rt_sigreturn number, system call". x86-64: glibc's __restore_rt (mov rax, 15; syscall)
// and musl's (mov eax, 15; syscall); ARM64: the vDSO's __kernel_rt_sigreturn
// (mov x8, #139; svc #0).
inline std::vector<ByteView> sigreturn_trampolines(Arch a) {
    static constexpr std::uint8_t glibc[] = {0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05};
    static constexpr std::uint8_t musl[] = {0xb8, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05};
    static constexpr std::uint8_t vdso[] = {0x68, 0x11, 0x80, 0xd2, 0x01, 0x00, 0x00, 0xd4};
    if (a == Arch::X86_64) return {ByteView(glibc), ByteView(musl)};
    return {ByteView(vdso)};
}

// A signal frame's ucontext holds uc_stack - the alternate signal stack as the kernel
// saw it (ss_sp, ss_flags, ss_size: three 8-byte words) - and, at this distance after its
// start, the interrupted stack pointer in uc_mcontext. x86-64: sigcontext's rsp is its
// 16th word after the 24 bytes of uc_stack (24 + 15 * 8); ARM64: uc_stack at 16, the
// 16-byte aligned sigcontext at 176, its sp at 176 + 8 + 31 * 8 = 432 (432 - 16).
inline std::uint64_t altstack_to_saved_sp(Arch a) {
    return a == Arch::X86_64 ? 144 : 416;
}

// What proves that words looking like uc_stack (ss_sp, ss_flags, ss_size) belong to a
// signal frame and are not ordinary data, relative to uc_stack at `a`. Both ABIs: uc_link,
// the word before uc_stack, is 0 (the kernel writes 0). x86-64: the rt_sigframe starts 24
// bytes before uc_stack (pretcode, uc_flags, uc_link) with pretcode, the address of the
// signal-return trampoline the handler returns to (sa_restorer, mandatory there). ARM64
// keeps that address in the handler's link register, not in the frame; but the kernel
// always writes an fpsimd_context first into sigcontext.__reserved, whose 32-bit magic
// FPSIMD_MAGIC (0x46508001) then lies at uc_stack + 448 (sigcontext at 160 after uc_stack,
// __reserved at 288 in it, after fault_address, 31 registers, sp, pc and pstate).
struct SigframeProof {
    std::uint64_t trampoline_before; // pretcode at a - this; 0: none in the frame
    std::uint64_t magic_after;       // a 32-bit magic at a + this; 0: none
    std::uint32_t magic;
};

inline SigframeProof sigframe_proof(Arch a) {
    if (a == Arch::X86_64) return {24, 0, 0};
    return {0, 448, 0x46508001};
}

} // namespace hp::arch
