// Private to lib/arch: what arch.cpp needs from each architecture, and the ARM64 decoder
// (exposed here so that the unit tests can check it word by word). Nothing outside lib/arch
// and tests/unit includes this.
#pragma once

#include "arch/arch.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace hp::arch::detail {

// The facts about one instruction that the site analysis in arch.cpp works from. Both
// architectures describe their instructions this way so that the rules of DESIGN §7 (whole
// instructions, padding, no branch into the site) are written once.
struct InsnInfo {
    // 0 when the bytes cannot be decoded (x86-64: Zydis fails or runs out of bytes; ARM64:
    // fewer than 4 bytes left).
    std::uint32_t length = 0;
    // Trailing-padding material: x86-64 int3 or a nop form; ARM64 nop or the zero word.
    bool is_padding = false;
    bool is_int3 = false; // x86-64 0xcc, to word the padding note
    // ARM64: in the branch/exception/system group but not recognised; could be a branch.
    bool unknown_branch_class = false;
    // Reads the program counter (rip-relative operand, relative branch, adr, ldr literal):
    // worth a note when it sits in the site, since it is overwritten and never executed again.
    bool pc_relative = false;
    enum class Ref {
        None,
        Jump,    // control may arrive at `target` (jmp/jcc/call/loop, b/bl/b.cond/cbz/tbz)
        Address, // `target` is computed into a register (lea [rip+..], adr): may feed a jump
        Data,    // `size` bytes at `target` are read or written (mov [rip+..], ldr literal)
    };
    Ref ref = Ref::None;
    std::uint64_t target = 0;
    std::uint32_t size = 0;
    std::string mnemonic; // for messages; may be empty
};

namespace x86_64 {
inline constexpr std::size_t near_size = 5;  // jmp rel32
inline constexpr std::size_t far_size = 14;  // jmp [rip+0]; .quad dest
inline constexpr std::size_t insn_align = 1; // instructions start at any byte
// `code` starts at the instruction, `addr` is its address.
InsnInfo analyse(ByteView code, std::uint64_t addr);
// Length of a leading landing pad that must stay in place (endbr64), or 0.
std::uint32_t kept_landing_pad(ByteView func);
bool near_reachable(std::uint64_t from, std::uint64_t to);
Bytes near_branch(std::uint64_t from, std::uint64_t to);
Bytes far_branch(std::uint64_t dest);
void pad(Bytes& out, std::size_t size); // int3 up to `size`
std::vector<Insn> disassemble(ByteView code, std::uint64_t addr, std::size_t max_insns);
} // namespace x86_64

namespace aarch64 {
inline constexpr std::size_t near_size = 4;  // b imm26
inline constexpr std::size_t far_size = 16;  // ldr x16, #8; br x16; .quad dest
inline constexpr std::size_t insn_align = 4; // fixed-width, word-aligned instructions

inline constexpr std::uint32_t kNop = 0xd503201f;     // nop
inline constexpr std::uint32_t kBtiC = 0xd503245f;    // bti c
inline constexpr std::uint32_t kPaciasp = 0xd503233f; // paciasp
inline constexpr std::uint32_t kPacibsp = 0xd503237f; // pacibsp
inline constexpr std::uint32_t kUdf0 = 0x00000000;    // udf #0

// Our own decoder for the instruction classes that matter to site analysis (DESIGN §7:
// Capstone 4 misses ARMv8.1+ encodings, so it cannot be trusted to tell "not a branch").
enum class Class {
    Other,       // known not to transfer control (outside the branch/exception/system group,
                 // or a recognised exception/system instruction inside it)
    Hint,        // the HINT space (nop, bti, pac*/aut*, ...): unallocated hints execute as nop
    Branch,      // b, bl, b.cond, bc.cond, cbz, cbnz, tbz, tbnz: pc-relative `target`
    Indirect,    // br, blr, ret, eret, drps and their pointer-authentication forms
    Adr,         // adr: `target` is an address computed into a register
    Adrp,        // adrp: `target` is a 4 KiB page address
    LoadLiteral, // ldr/ldrsw/prfm (literal): reads `size` bytes at `target` (prfm: 0)
    Unknown,     // in the branch/exception/system group and not recognised: could be a branch
};
struct Decoded {
    Class cls = Class::Other;
    std::uint64_t target = 0;
    std::uint32_t size = 0;
    std::string mnemonic; // "cbz", "paciasp", "casal"; empty when we have no name
    std::string text;     // with operands, in Capstone's style; empty when we have no name
};
Decoded decode(std::uint32_t word, std::uint64_t pc);

InsnInfo analyse(ByteView code, std::uint64_t addr);
// 4 for a leading bti (kept), else 0.
std::uint32_t kept_landing_pad(ByteView func);
// Whether the first word is paciasp/pacibsp, which is replaced by `bti c` (SitePlan.landing_pad).
bool starts_with_pac(ByteView func);
bool near_reachable(std::uint64_t from, std::uint64_t to);
Bytes near_branch(std::uint64_t from, std::uint64_t to);
Bytes far_branch(std::uint64_t dest);
Bytes landing_pad();                    // bti c
void pad(Bytes& out, std::size_t size); // udf #0 words up to `size`
std::vector<Insn> disassemble(ByteView code, std::uint64_t addr, std::size_t max_insns);
} // namespace aarch64

} // namespace hp::arch::detail
