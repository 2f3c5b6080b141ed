#include "arch/reloc.hpp"

#include <fmt/format.h>

namespace hp::arch {

namespace {

struct Entry {
    std::uint32_t type;
    const char* name;
    RelocKind kind;
};

// x86-64 psABI, table "Relocation Types".
constexpr Entry kX86[] = {
    {0, "R_X86_64_NONE", RelocKind::None},
    {1, "R_X86_64_64", RelocKind::Absolute64},
    {2, "R_X86_64_PC32", RelocKind::Unsupported},
    {5, "R_X86_64_COPY", RelocKind::Copy},
    {6, "R_X86_64_GLOB_DAT", RelocKind::GlobDat},
    {7, "R_X86_64_JUMP_SLOT", RelocKind::JumpSlot},
    {8, "R_X86_64_RELATIVE", RelocKind::Relative},
    {10, "R_X86_64_32", RelocKind::Unsupported},
    {16, "R_X86_64_DTPMOD64", RelocKind::Tls},
    {17, "R_X86_64_DTPOFF64", RelocKind::Tls},
    {18, "R_X86_64_TPOFF64", RelocKind::Tls},
    {36, "R_X86_64_TLSDESC", RelocKind::Tls},
    {37, "R_X86_64_IRELATIVE", RelocKind::IRelative},
};

// ELF for the Arm 64-bit Architecture, "Dynamic relocations".
constexpr Entry kArm64[] = {
    {0, "R_AARCH64_NONE", RelocKind::None},
    {257, "R_AARCH64_ABS64", RelocKind::Absolute64},
    {1024, "R_AARCH64_COPY", RelocKind::Copy},
    {1025, "R_AARCH64_GLOB_DAT", RelocKind::GlobDat},
    {1026, "R_AARCH64_JUMP_SLOT", RelocKind::JumpSlot},
    {1027, "R_AARCH64_RELATIVE", RelocKind::Relative},
    {1028, "R_AARCH64_TLS_DTPMOD", RelocKind::Tls},
    {1029, "R_AARCH64_TLS_DTPREL", RelocKind::Tls},
    {1030, "R_AARCH64_TLS_TPREL", RelocKind::Tls},
    {1031, "R_AARCH64_TLSDESC", RelocKind::Tls},
    {1032, "R_AARCH64_IRELATIVE", RelocKind::IRelative},
};

std::span<const Entry> table(Arch a) {
    if (a == Arch::X86_64) return kX86;
    return kArm64;
}

} // namespace

RelocKind classify_reloc(Arch a, std::uint32_t type) {
    for (const Entry& e : table(a))
        if (e.type == type) return e.kind;
    return RelocKind::Unsupported;
}

std::string reloc_name(Arch a, std::uint32_t type) {
    for (const Entry& e : table(a))
        if (e.type == type) return e.name;
    return fmt::format("type {}", type);
}

std::string supported_relocs(Arch a) {
    std::string out;
    for (const Entry& e : table(a)) {
        if (e.kind == RelocKind::Tls || e.kind == RelocKind::IRelative ||
            e.kind == RelocKind::Copy || e.kind == RelocKind::Unsupported)
            continue;
        if (!out.empty()) out += ", ";
        out += e.name;
    }
    return out;
}

} // namespace hp::arch
