// Relocation semantics per architecture: which dynamic relocation types the hotpatch
// loader applies, and what each one means. Kept beside the other per-arch facts.
#pragma once

#include "arch/arch.hpp"

#include <optional>
#include <string>

namespace hp::arch {

enum class RelocKind {
    None,       // R_*_NONE: nothing to do
    Relative,   // B + A
    Absolute64, // S + A
    GlobDat,    // S (+ A on ARM64)
    JumpSlot,   // S (+ A on ARM64); bound eagerly by our loader
    Tls,        // any TLS model: refused (DESIGN §5)
    IRelative,  // the payload defines an IFUNC: refused
    Copy,       // never valid in a shared object
    Unsupported,
};

RelocKind classify_reloc(Arch a, std::uint32_t type);
// "R_X86_64_JUMP_SLOT", or "type 42" when unknown.
std::string reloc_name(Arch a, std::uint32_t type);
// The names of the types the loader applies, for messages and docs.
std::string supported_relocs(Arch a);

} // namespace hp::arch
