// System call numbers and conventions the tool injects, per architecture (the numbers of
// the target's ABI, not the host's: both tables are always built).
#pragma once

#include "arch/arch.hpp"

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

} // namespace hp::arch
