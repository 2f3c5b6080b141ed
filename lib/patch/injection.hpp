// The system calls hp-apply's prepare step injects into the target (DESIGN §6), listed
// with their real arguments before any is made: seccomp filters are asked about each one
// (hp-apply before injecting, hp-check when it checks a process). One list for both, so
// the check cannot drift from what apply does.
#pragma once

#include "arch/arch.hpp"
#include "ptrace/seccomp.hpp"

#include <cstdint>
#include <vector>

namespace hp::patch {

inline constexpr std::uint64_t kMapFixedNoReplace = 0x100000; // MAP_FIXED_NOREPLACE (Linux 4.17)
inline constexpr std::uint64_t kMfdCloexec = 1;               // MFD_CLOEXEC

// What prepare maps: one memfd holding the record and the payload (mapped read-only at
// `base`, then each payload piece over it with its final protection), and a page of far
// jumps per target module out of branch reach.
struct InjectionLayout {
    struct Piece {
        std::uint64_t addr = 0, size = 0;
        bool exec = false, write = false;
    };
    struct Thunk {
        std::uint64_t addr = 0, file_offset = 0;
    };
    std::uint64_t base = 0, total = 0; // the record and the payload
    std::uint64_t payload_base = 0;    // where the payload starts in that mapping
    std::uint64_t payload_offset = 0;  // and in the memfd
    std::vector<Piece> pieces;
    std::vector<Thunk> thunks;
    std::uint64_t page = 4096;

    // A read-only piece that the first mapping already maps at the file offset its own
    // mapping would use needs no call of its own (one remote call less per piece, each
    // ~0.15 ms: docs/performance.md).
    bool needs_mmap(const Piece& p) const {
        return p.exec || p.write || payload_offset != payload_base - base;
    }
};

// memfd_create, ftruncate, the mmaps, close, and the munmaps of the undo path. The memfd's
// number is not known before it exists: 3 stands in (filters rarely test descriptors).
std::vector<ptrace::InjectedCall> injected_calls(arch::Arch a, const InjectionLayout& layout);

// The shape of a typical apply - a read+exec and a read+write piece and a thunk page -
// for checking a process before a package is known.
InjectionLayout typical_layout(std::uint64_t page);

} // namespace hp::patch
