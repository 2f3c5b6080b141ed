// Per-architecture facts and code (DESIGN §7). Pure: no process access; builds on every
// host for every target architecture. Everything that differs between x86-64 and ARM64
// lives behind this header, in x86_64.cpp and aarch64.cpp.
#pragma once

#include "common/bytes.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hp::arch {

enum class Arch { X86_64, AArch64 };

// "x86_64" / "aarch64": the spelling in manifests and documents.
std::string_view name(Arch a);
std::optional<Arch> from_name(std::string_view n);
// ELF e_machine (EM_X86_64 = 62, EM_AARCH64 = 183).
std::optional<Arch> from_elf_machine(std::uint16_t machine);
Arch host();

// Sizes of the branches we write (DESIGN §7 table).
std::size_t near_branch_size(Arch a); // 5 (jmp rel32) / 4 (b imm26)
std::size_t far_branch_size(Arch a);  // 14 (jmp [rip+0]; .quad) / 16 (ldr x16,#8; br x16; .quad)
// Whether a near branch placed at `from` can reach `to`.
bool near_reachable(Arch a, std::uint64_t from, std::uint64_t to);

// Where and how a function's entry can be overwritten, decided from its bytes alone.
struct SitePlan {
    // Offset of the site from the function's start: 0, or the length of a kept landing pad
    // (x86-64 `endbr64`, ARM64 `bti c`).
    std::uint32_t offset = 0;
    // ARM64 only: the function starts with `paciasp` (not kept: the return address would be
    // signed twice); the site starts at the function (offset 0) and its patched bytes begin
    // with `bti c`, the branch follows it.
    bool landing_pad = false;
    // Bytes the site covers when it holds a near branch: whole instructions, at least the
    // near branch (plus the 4-byte `bti c` when landing_pad).
    std::uint32_t near_length = 0;
    // Same for the far branch; 0 when the function (with its padding) cannot hold one.
    std::uint32_t far_length = 0;
    // Human-readable facts worth reporting (e.g. "kept endbr64", "site extends into
    // 3 bytes of int3 padding", "rip-relative instruction in site (not executed again)").
    std::vector<std::string> notes;
};

// Analyses the entry of a function. `code` holds the function's bytes followed by whatever
// the caller knows follows it up to the next symbol or section end (padding candidates);
// `func_size` is the function's size (<= code.size()); `func_addr` its virtual address
// (for messages and branch targets).
// Refuses (throws hp::Error, ErrorCode::Unsupported) when:
//  - the function with its trailing padding (x86-64: int3 0xcc or nop; ARM64: nop
//    d503201f or udf #0 words) cannot hold the near branch;
//  - an instruction inside the site cannot be decoded (x86-64: Zydis fails; ARM64: our own
//    decoder does not know it and it could be a branch);
//  - a branch inside the function (any relative jump/call/cbz/tbz/b.cond ... decoded
//    linearly over [0, func_size)) targets a byte strictly inside the site, i.e. in
//    (site_start, site_start + near_length).
//  - a pc-relative data access in the function overlaps the site (it would read the
//    patched bytes), or an address computed pc-relatively (lea [rip+..], adr) points strictly
//    inside the site (it may feed an indirect jump);
//  - the function is empty or (ARM64) misaligned. func_size > code.size() is BadInput.
// The message names the address and reason; the caller prefixes file and symbol.
SitePlan plan_site(Arch a, ByteView code, std::uint64_t func_size, std::uint64_t func_addr);

// The bytes to write at the site (function address + plan.offset) so that execution goes
// to `dest`. Uses the near branch when reachable, else the far branch when plan.far_length
// allows it; throws hp::Error(Unsupported) otherwise. The returned size is exactly
// plan.near_length or plan.far_length (the remainder after the branch is padded: x86-64
// int3, ARM64 udf/brk), so the whole covered site is rewritten in one write.
Bytes encode_site(Arch a, const SitePlan& plan, std::uint64_t site_addr, std::uint64_t dest);

// An absolute jump usable anywhere (for thunk pages): far branch to `dest`.
Bytes encode_far_jump(Arch a, std::uint64_t dest);

// One disassembled instruction for display (Zydis for x86-64, Capstone for ARM64).
struct Insn {
    std::uint64_t addr;
    Bytes bytes;
    std::string text; // "push rbp", "bti c", ... ; "(bad)" when undecodable
};
// Disassembles up to `max_insns` instructions; stops at the end of `code` or at an
// undecodable byte sequence (emitted as one "(bad)" entry).
std::vector<Insn> disassemble(Arch a, ByteView code, std::uint64_t addr,
                              std::size_t max_insns = 4096);

} // namespace hp::arch
