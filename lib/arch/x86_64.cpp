// x86-64: what matters when overwriting a function's entry.
//
// Landing pad. Code built with -fcf-protection starts every address-taken function with
// `endbr64` (f3 0f 1e fa). With IBT enforced, an indirect call or jump that lands anywhere
// else faults. We keep it and put the site after it, so that indirect callers still land on
// an endbr64 and the branch behind it takes them on. Our own far jump is indirect too: its
// destination (the new function, built with the same flags) starts with an endbr64 of its own.
//
// Near branch. `jmp rel32` (e9 + 4 bytes) is 5 bytes and reaches [-2 GiB, +2 GiB - 1] from
// the end of the instruction. It is used whenever the destination is in reach; a thunk placed
// within that range of the old code (the loader's business) makes it the common case.
//
// Far branch. `jmp [rip+0]` (ff 25 00 00 00 00) followed by the 8-byte absolute address is
// 14 bytes and reaches anywhere without touching a register: at a function's entry no
// general register is free to clobber without knowing the calling convention in force.
//
// Variable length. A site covers whole instructions, so it can be longer than the branch;
// the bytes after the branch are filled with int3 (cc). They are never executed: control
// leaves through the branch, and plan_site refuses functions with a branch into the middle
// of the site. A site may also grow into the int3/nop padding that compilers and linkers put
// between functions (cc, 90, 66 90, 0f 1f /0 ...) since nothing executes that either.
//
// No displaced instructions. A detour that returns into the old function must relocate the
// instructions it overwrites (and fix up rip-relative ones). We never return into the old
// function: the whole function is replaced, so overwritten instructions are simply dropped,
// and a rip-relative instruction in the site only earns a note.
//
// Zydis (v4) decodes lengths, relative branch targets and rip-relative operands, and formats
// instructions in Intel syntax for display.
#include "arch/arch_impl.hpp"
#include "doc/error.hpp"

#include <Zydis/Zydis.h>

#include <algorithm>
#include <array>
#include <limits>

namespace hp::arch::detail::x86_64 {

namespace {

constexpr std::uint8_t kInt3 = 0xcc; // int3

const ZydisDecoder& decoder() {
    static const ZydisDecoder instance = [] {
        ZydisDecoder d;
        if (!ZYAN_SUCCESS(ZydisDecoderInit(&d, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64)))
            throw Error(ErrorCode::Internal, "cannot initialise the Zydis decoder");
        return d;
    }();
    return instance;
}

const ZydisFormatter& formatter() {
    static const ZydisFormatter instance = [] {
        ZydisFormatter f;
        // "jmp 0x402000", as objdump prints it, rather than 16 zero-padded digits.
        if (!ZYAN_SUCCESS(ZydisFormatterInit(&f, ZYDIS_FORMATTER_STYLE_INTEL)) ||
            !ZYAN_SUCCESS(ZydisFormatterSetProperty(&f, ZYDIS_FORMATTER_PROP_ADDR_PADDING_ABSOLUTE,
                                                    ZYDIS_PADDING_DISABLED)))
            throw Error(ErrorCode::Internal, "cannot initialise the Zydis formatter");
        return f;
    }();
    return instance;
}

struct Decoded {
    ZydisDecodedInstruction insn;
    std::array<ZydisDecodedOperand, ZYDIS_MAX_OPERAND_COUNT> ops;
};

bool decode(ByteView code, Decoded& out) {
    return !code.empty() && ZYAN_SUCCESS(ZydisDecoderDecodeFull(
                                &decoder(), code.data(), code.size(), &out.insn, out.ops.data()));
}

} // namespace

InsnInfo analyse(ByteView code, std::uint64_t addr) {
    InsnInfo info;
    Decoded d;
    if (!decode(code, d)) return info;
    info.length = d.insn.length;
    info.mnemonic = ZydisMnemonicGetString(d.insn.mnemonic);
    info.is_int3 = d.insn.length == 1 && code[0] == kInt3;
    info.is_padding = info.is_int3 || d.insn.mnemonic == ZYDIS_MNEMONIC_NOP;

    for (std::size_t i = 0; i < d.insn.operand_count_visible; ++i) {
        const ZydisDecodedOperand& op = d.ops[i];
        const bool relative_imm = op.type == ZYDIS_OPERAND_TYPE_IMMEDIATE && op.imm.is_relative;
        const bool rip_mem =
            op.type == ZYDIS_OPERAND_TYPE_MEMORY &&
            (op.mem.base == ZYDIS_REGISTER_RIP || op.mem.base == ZYDIS_REGISTER_EIP);
        if (!relative_imm && !rip_mem) continue;
        ZyanU64 target = 0;
        if (!ZYAN_SUCCESS(ZydisCalcAbsoluteAddress(&d.insn, &op, addr, &target))) continue;
        info.pc_relative = true;
        info.target = target;
        if (relative_imm) {
            // jmp, jcc, call, loop*, jrcxz, xbegin (its abort handler is a branch target too).
            info.ref = InsnInfo::Ref::Jump;
        } else if (op.mem.type == ZYDIS_MEMOP_TYPE_AGEN) {
            // lea: an address, possibly of a label that is jumped to later.
            info.ref = InsnInfo::Ref::Address;
        } else {
            info.ref = InsnInfo::Ref::Data;
            info.size = std::max<std::uint32_t>(1, op.size / 8);
        }
    }
    return info;
}

std::uint32_t kept_landing_pad(ByteView func) {
    static constexpr std::array<std::uint8_t, 4> kEndbr64{0xf3, 0x0f, 0x1e, 0xfa}; // endbr64
    if (func.size() >= kEndbr64.size() &&
        std::equal(kEndbr64.begin(), kEndbr64.end(), func.begin()))
        return kEndbr64.size();
    return 0;
}

bool near_reachable(std::uint64_t from, std::uint64_t to) {
    // rel32 counts from the end of the 5-byte jmp.
    if (from > std::numeric_limits<std::uint64_t>::max() - near_size) return false;
    const std::uint64_t next = from + near_size;
    constexpr std::uint64_t max_forward = std::numeric_limits<std::int32_t>::max();
    constexpr std::uint64_t max_backward = std::uint64_t{1} << 31;
    return to >= next ? to - next <= max_forward : next - to <= max_backward;
}

Bytes near_branch(std::uint64_t from, std::uint64_t to) {
    if (!near_reachable(from, to))
        throw Error(ErrorCode::Internal, "jmp rel32 cannot reach " + hex_addr(to));
    Bytes out{0xe9}; // jmp rel32
    append_le32(out, static_cast<std::uint32_t>(to - (from + near_size)));
    return out;
}

Bytes far_branch(std::uint64_t dest) {
    Bytes out{0xff, 0x25, 0x00, 0x00, 0x00, 0x00}; // jmp qword ptr [rip+0]
    append_le64(out, dest);                        // .quad dest
    return out;
}

void pad(Bytes& out, std::size_t size) {
    if (out.size() > size) throw Error(ErrorCode::Internal, "branch longer than its site");
    out.resize(size, kInt3);
}

std::vector<Insn> disassemble(ByteView code, std::uint64_t addr, std::size_t max_insns) {
    std::vector<Insn> out;
    std::size_t off = 0;
    while (off < code.size() && out.size() < max_insns) {
        const ByteView rest = code.subspan(off);
        const std::uint64_t at = addr + off;
        Decoded d;
        if (!decode(rest, d)) {
            out.push_back(Insn{at, Bytes{rest.front()}, "(bad)"});
            break;
        }
        std::array<char, 256> text{};
        if (!ZYAN_SUCCESS(ZydisFormatterFormatInstruction(&formatter(), &d.insn, d.ops.data(),
                                                          d.insn.operand_count_visible, text.data(),
                                                          text.size(), at, nullptr)))
            text[0] = '\0';
        out.push_back(Insn{at, Bytes(rest.begin(), rest.begin() + d.insn.length),
                           text[0] != '\0' ? std::string(text.data()) : std::string("(bad)")});
        off += d.insn.length;
    }
    return out;
}

} // namespace hp::arch::detail::x86_64
