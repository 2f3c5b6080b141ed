// ARM64: what matters when overwriting a function's entry.
//
// Fixed width. Every instruction is one little-endian 32-bit word at a 4-byte boundary, so a
// site is whole words and a near site is exactly the one word of the branch.
//
// Landing pads. With BTI enforced (PROT_BTI pages of a GNU_PROPERTY_AARCH64_FEATURE_1_BTI
// object), an indirect branch must land on a `bti` of the right kind, or on paciasp/pacibsp,
// which double as `bti c`. A leading `bti` is kept and the site goes after it, so indirect
// callers still find their landing pad.
//
// Pointer authentication. `paciasp` signs the return address in x30 (modifier: sp) and
// `autiasp`/`retaa` check it. If we kept a leading paciasp and branched behind it, the new
// function's own paciasp would sign x30 a second time, its epilogue would strip only one
// signature, and the return would fault. So paciasp (and pacibsp) is overwritten, but it was
// also the landing pad: the site becomes `bti c; b new` (8 bytes, SitePlan.landing_pad).
// `bti c` executes as a nop where BTI is off.
//
// Near branch. `b imm26` (000101 imm26) reaches [-128 MiB, +128 MiB - 4] from the branch
// itself, in whole words. A direct branch leaves PSTATE.BTYPE at 0, so its destination needs
// no landing pad.
//
// Far branch. `ldr x16, #8; br x16; .quad dest` (16 bytes). x16 (IP0) is the
// intra-procedure-call scratch register: AAPCS64 lets veneers and PLT stubs clobber it between
// a call and the callee's first instruction, so no caller expects it to survive into a
// function. `br x16` sets BTYPE=01, which `bti c` and paciasp at the new function's entry
// accept. The literal is only 4-byte aligned when the site is; Linux user space allows
// unaligned loads from normal memory.
//
// Padding. Linkers fill the gaps between functions with `nop` (d503201f) or zero words
// (`udf #0`); nothing executes them, so a site may grow into them. The remainder of a site
// after our branch is filled with `udf #0`, which traps if ever reached.
//
// No displaced instructions. We never return into the old function, so the words we overwrite
// are dropped, not relocated; a pc-relative one (adr, adrp, ldr literal) only earns a note.
//
// Our own decoder. Capstone 4.0.2 cannot decode several ARMv8.1+ instructions (casal, ldaddal,
// ldapr, retaa) and prints paciasp as "hint #0x19", so it cannot tell us "this is not a branch".
// The top-level encoding group (op0, bits 28:25) can: control transfers all live in the
// branch/exception/system group (101x). A word outside it is a non-branch whatever it is;
// there we only pick out the pc-relative references (adr/adrp, ldr literal). Inside the
// group, newer architecture versions keep adding branches (cb<cc>, retaasppc, ...), so a word
// we do not recognise there is reported as Unknown and plan_site refuses the function.
// Capstone serves for display only.
#include "arch/arch_impl.hpp"
#include "doc/error.hpp"

#include <capstone/capstone.h>
#include <dlfcn.h>

#include <array>
#include <optional>

namespace hp::arch::detail::aarch64 {

namespace {

constexpr std::uint32_t kLdrX16Lit8 = 0x58000050; // ldr x16, #8
constexpr std::uint32_t kBrX16 = 0xd61f0200;      // br x16
constexpr std::uint32_t kB = 0x14000000;          // b #0 (imm26 in bits 25:0)

constexpr std::uint32_t field(std::uint32_t w, unsigned hi, unsigned lo) {
    return (w >> lo) & ((std::uint32_t{1} << (hi - lo + 1)) - 1);
}

constexpr std::int64_t sign_extend(std::uint64_t value, unsigned width) {
    const std::uint64_t sign = std::uint64_t{1} << (width - 1);
    return static_cast<std::int64_t>((value ^ sign) - sign);
}

constexpr std::uint64_t add_offset(std::uint64_t base, std::int64_t offset) {
    return base + static_cast<std::uint64_t>(offset);
}

// General register r; 31 is sp in base-register and similar positions, else the zero register.
std::string reg(bool x, std::uint32_t r, bool sp31 = false) {
    if (r == 31) return sp31 ? (x ? "sp" : "wsp") : (x ? "xzr" : "wzr");
    return (x ? "x" : "w") + std::to_string(r);
}

// Immediates as Capstone prints them: small ones in decimal, the rest in hex.
std::string imm(std::uint64_t v) {
    return v <= 9 ? "#" + std::to_string(v) : "#" + hex_addr(v);
}
std::string target_operand(std::uint64_t addr) {
    return "#" + hex_addr(addr);
}

Decoded unknown() {
    return Decoded{Class::Unknown, 0, 0, {}, {}};
}

Decoded named(Class cls, std::string mnemonic, const std::string& operands = {}) {
    Decoded d;
    d.cls = cls;
    d.text = operands.empty() ? mnemonic : mnemonic + " " + operands;
    d.mnemonic = std::move(mnemonic);
    return d;
}

Decoded branch_to(std::string mnemonic, const std::string& operands, std::uint64_t target) {
    Decoded d =
        named(Class::Branch, std::move(mnemonic),
              operands.empty() ? target_operand(target) : operands + ", " + target_operand(target));
    d.target = target;
    return d;
}

// The named hints, by CRm:op2. Any other hint number executes as nop.
struct HintName {
    std::uint32_t number;
    const char* name;
};
constexpr HintName kHints[] = {
    {0, "nop"},          {1, "yield"},      {2, "wfe"},     {3, "wfi"},        {4, "sev"},
    {5, "sevl"},         {6, "dgh"},        {7, "xpaclri"}, {8, "pacia1716"},  {10, "pacib1716"},
    {12, "autia1716"},   {14, "autib1716"}, {16, "esb"},    {17, "psb csync"}, {18, "tsb csync"},
    {19, "gcsb dsync"},  {20, "csdb"},      {22, "clrbhb"}, {24, "paciaz"},    {25, "paciasp"},
    {26, "pacibz"},      {27, "pacibsp"},   {28, "autiaz"}, {29, "autiasp"},   {30, "autibz"},
    {31, "autibsp"},     {32, "bti"},       {34, "bti c"},  {36, "bti j"},     {38, "bti jc"},
    {40, "chkfeat x16"},
};

// Unconditional branch (register), bits 31:25 = 1101011: all indirect, no static target.
enum class RegOperands { None, Rn, RetRn, RnRm };
struct RegBranch {
    std::uint32_t mask;
    std::uint32_t value;
    const char* mnemonic;
    RegOperands operands;
};
constexpr RegBranch kRegBranches[] = {
    {0xfffffc1f, 0xd61f0000, "br", RegOperands::Rn},       // br xn
    {0xfffffc1f, 0xd63f0000, "blr", RegOperands::Rn},      // blr xn
    {0xfffffc1f, 0xd65f0000, "ret", RegOperands::RetRn},   // ret {xn}
    {0xfffffc1f, 0xd61f081f, "braaz", RegOperands::Rn},    // braaz xn
    {0xfffffc1f, 0xd61f0c1f, "brabz", RegOperands::Rn},    // brabz xn
    {0xfffffc1f, 0xd63f081f, "blraaz", RegOperands::Rn},   // blraaz xn
    {0xfffffc1f, 0xd63f0c1f, "blrabz", RegOperands::Rn},   // blrabz xn
    {0xffffffff, 0xd65f0bff, "retaa", RegOperands::None},  // retaa
    {0xffffffff, 0xd65f0fff, "retab", RegOperands::None},  // retab
    {0xffffffff, 0xd69f03e0, "eret", RegOperands::None},   // eret
    {0xffffffff, 0xd69f0bff, "eretaa", RegOperands::None}, // eretaa
    {0xffffffff, 0xd69f0fff, "eretab", RegOperands::None}, // eretab
    {0xffffffff, 0xd6bf03e0, "drps", RegOperands::None},   // drps
    {0xfffffc00, 0xd71f0800, "braa", RegOperands::RnRm},   // braa xn, xm|sp
    {0xfffffc00, 0xd71f0c00, "brab", RegOperands::RnRm},   // brab xn, xm|sp
    {0xfffffc00, 0xd73f0800, "blraa", RegOperands::RnRm},  // blraa xn, xm|sp
    {0xfffffc00, 0xd73f0c00, "blrab", RegOperands::RnRm},  // blrab xn, xm|sp
};

Decoded decode_branch_register(std::uint32_t w) {
    const std::uint32_t rn = field(w, 9, 5), rm = field(w, 4, 0);
    for (const RegBranch& b : kRegBranches) {
        if ((w & b.mask) != b.value) continue;
        std::string operands;
        if (b.operands == RegOperands::Rn || (b.operands == RegOperands::RetRn && rn != 30))
            operands = reg(true, rn);
        else if (b.operands == RegOperands::RnRm)
            operands = reg(true, rn) + ", " + reg(true, rm, true);
        return named(Class::Indirect, b.mnemonic, operands);
    }
    return unknown();
}

// Exception generation: bits 31:24 = 11010100, opc 23:21, imm16 20:5, op2 4:2, LL 1:0.
Decoded decode_exception(std::uint32_t w) {
    const std::uint32_t opc = field(w, 23, 21), op2 = field(w, 4, 2), ll = field(w, 1, 0);
    const std::string operand = imm(field(w, 20, 5));
    if (op2 != 0) return unknown();
    static constexpr std::array<const char*, 4> kCalls{nullptr, "svc", "hvc", "smc"};
    static constexpr std::array<const char*, 4> kDcps{nullptr, "dcps1", "dcps2", "dcps3"};
    if (opc == 0 && ll != 0) return named(Class::Other, kCalls[ll], operand);
    if (opc == 1 && ll == 0) return named(Class::Other, "brk", operand);
    if (opc == 2 && ll == 0) return named(Class::Other, "hlt", operand);
    if (opc == 3 && ll == 0) return named(Class::Other, "tcancel", operand);
    if (opc == 5 && ll != 0) return named(Class::Other, kDcps[ll], operand);
    return unknown();
}

// System instructions: bits 31:22 = 1101010100.
Decoded decode_system(std::uint32_t w) {
    if ((w & 0xfffff01f) == 0xd503201f) { // hint #imm7 (nop, bti, paciasp, ...)
        const std::uint32_t n = field(w, 11, 5);
        for (const HintName& h : kHints)
            if (h.number == n) return named(Class::Hint, h.name);
        return named(Class::Hint, "hint", imm(n));
    }
    if ((w & 0xfffff01f) == 0xd503301f) { // clrex, dsb, dmb, isb, sb, tcommit
        static constexpr std::array<const char*, 8> kBarriers{"tcommit", "dsb", "clrex", "",
                                                              "dsb",     "dmb", "isb",   "sb"};
        const char* m = kBarriers[field(w, 7, 5)];
        return Decoded{Class::Other, 0, 0, m, {}};
    }
    // msr (immediate) to PSTATE fields, cfinv, xaflag, axflag.
    if ((w & 0xfff8f01f) == 0xd500401f) return Decoded{Class::Other, 0, 0, "msr", {}};
    // wfet, wfit (bit 5)
    if ((w & 0xffffffc0) == 0xd5031000)
        return Decoded{Class::Other, 0, 0, field(w, 5, 5) ? "wfit" : "wfet", {}};
    // sys, sysl (dc, ic, tlbi, at ...): op0 = 01
    if ((w & 0xffd80000) == 0xd5080000)
        return Decoded{Class::Other, 0, 0, field(w, 21, 21) ? "sysl" : "sys", {}};
    // msr, mrs (register): op0 = 1x
    if ((w & 0xffd00000) == 0xd5100000)
        return Decoded{Class::Other, 0, 0, field(w, 21, 21) ? "mrs" : "msr", {}};
    return unknown();
}

// Branches, exception generating and system instructions (op0 = 101x).
Decoded decode_branch_group(std::uint32_t w, std::uint64_t pc) {
    static constexpr std::array<const char*, 16> kConds{"eq", "ne", "hs", "lo", "mi", "pl",
                                                        "vs", "vc", "hi", "ls", "ge", "lt",
                                                        "gt", "le", "al", "nv"};
    if ((w & 0x7c000000) == 0x14000000) { // b / bl imm26
        const std::uint64_t target = add_offset(pc, sign_extend(field(w, 25, 0), 26) * 4);
        return branch_to(field(w, 31, 31) ? "bl" : "b", {}, target);
    }
    if ((w & 0x7e000000) == 0x34000000) { // cbz / cbnz rt, imm19
        const std::uint64_t target = add_offset(pc, sign_extend(field(w, 23, 5), 19) * 4);
        return branch_to(field(w, 24, 24) ? "cbnz" : "cbz", reg(field(w, 31, 31), field(w, 4, 0)),
                         target);
    }
    if ((w & 0x7e000000) == 0x36000000) { // tbz / tbnz rt, #bit, imm14
        const std::uint64_t target = add_offset(pc, sign_extend(field(w, 18, 5), 14) * 4);
        const std::uint32_t bit = field(w, 31, 31) << 5 | field(w, 23, 19);
        return branch_to(field(w, 24, 24) ? "tbnz" : "tbz",
                         reg(field(w, 31, 31), field(w, 4, 0)) + ", #" + std::to_string(bit),
                         target);
    }
    if ((w & 0xff000000) == 0x54000000) { // b.cond / bc.cond imm19
        const std::uint64_t target = add_offset(pc, sign_extend(field(w, 23, 5), 19) * 4);
        return branch_to(std::string(field(w, 4, 4) ? "bc." : "b.") + kConds[field(w, 3, 0)], {},
                         target);
    }
    if ((w & 0xff000000) == 0xd4000000) return decode_exception(w);
    if ((w & 0xffc00000) == 0xd5000000) return decode_system(w);
    if ((w & 0xfe000000) == 0xd6000000) return decode_branch_register(w);
    return unknown();
}

// Display names for the ARMv8.1+ atomics Capstone 4 cannot decode. Empty when not one.
Decoded name_atomic(std::uint32_t w) {
    static constexpr std::array<const char*, 4> kSize{"b", "h", "", ""};
    const std::uint32_t size = field(w, 31, 30);
    const bool x = size == 3;
    const std::string rs = reg(x, field(w, 20, 16)), rt = reg(x, field(w, 4, 0));
    const std::string mem = "[" + reg(true, field(w, 9, 5), true) + "]";
    if ((w & 0x3fa07c00) == 0x08a07c00) { // cas{a}{l}{b,h} rs, rt, [xn|sp]
        const std::string m = std::string("cas") + (field(w, 22, 22) ? "a" : "") +
                              (field(w, 15, 15) ? "l" : "") + kSize[size];
        return named(Class::Other, m, rs + ", " + rt + ", " + mem);
    }
    if ((w & 0xbfa07c00) == 0x08207c00) { // casp{a}{l} rs, rs+1, rt, rt+1, [xn|sp]
        const bool px = field(w, 30, 30);
        const std::uint32_t s = field(w, 20, 16), t = field(w, 4, 0);
        const std::string m =
            std::string("casp") + (field(w, 22, 22) ? "a" : "") + (field(w, 15, 15) ? "l" : "");
        return named(Class::Other, m,
                     reg(px, s) + ", " + reg(px, (s + 1) % 32) + ", " + reg(px, t) + ", " +
                         reg(px, (t + 1) % 32) + ", " + mem);
    }
    if ((w & 0x3f200c00) == 0x38200000) { // atomic memory operations (FEAT_LSE, FEAT_LRCPC)
        static constexpr std::array<const char*, 8> kOps{"add",  "clr",  "eor",  "set",
                                                         "smax", "smin", "umax", "umin"};
        const bool acquire = field(w, 23, 23), release = field(w, 22, 22);
        const std::uint32_t o3 = field(w, 15, 15), opc = field(w, 14, 12);
        const std::string order = std::string(acquire ? "a" : "") + (release ? "l" : "");
        if (o3 == 0 && !acquire && field(w, 4, 0) == 31) // st<op>{l}{b,h} rs, [xn|sp]
            return named(Class::Other, "st" + std::string(kOps[opc]) + order + kSize[size],
                         rs + ", " + mem);
        if (o3 == 0)
            return named(Class::Other, "ld" + std::string(kOps[opc]) + order + kSize[size],
                         rs + ", " + rt + ", " + mem);
        if (opc == 0)
            return named(Class::Other, "swp" + order + kSize[size], rs + ", " + rt + ", " + mem);
        if (opc == 4 && acquire && !release && field(w, 20, 16) == 31)
            return named(Class::Other, std::string("ldapr") + kSize[size], rt + ", " + mem);
    }
    return {};
}

// Load register (literal): opc 31:30, 011, V 26, 00, imm19, rt.
Decoded decode_load_literal(std::uint32_t w, std::uint64_t pc) {
    const std::uint32_t opc = field(w, 31, 30), rt = field(w, 4, 0);
    const bool simd = field(w, 26, 26);
    const std::uint64_t target = add_offset(pc, sign_extend(field(w, 23, 5), 19) * 4);
    Decoded d;
    if (!simd) {
        static constexpr std::array<std::uint32_t, 4> kBytes{4, 8, 4, 0};
        if (opc == 3)
            d = named(Class::LoadLiteral, "prfm",
                      "#" + std::to_string(rt) + ", " + target_operand(target));
        else
            d = named(Class::LoadLiteral, opc == 2 ? "ldrsw" : "ldr",
                      reg(opc != 0, rt) + ", " + target_operand(target));
        d.size = kBytes[opc];
    } else {
        if (opc == 3) return Decoded{}; // unallocated, and a load/store: not a branch
        static constexpr std::array<const char*, 3> kRegs{"s", "d", "q"};
        static constexpr std::array<std::uint32_t, 3> kBytes{4, 8, 16};
        d = named(Class::LoadLiteral, "ldr",
                  kRegs[opc] + std::to_string(rt) + ", " + target_operand(target));
        d.size = kBytes[opc];
    }
    d.target = target;
    return d;
}

// How binutils spells a word it cannot name: ".inst 0x88e0fc41".
std::string inst_word(std::uint32_t w) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string out = ".inst 0x";
    for (int shift = 28; shift >= 0; shift -= 4)
        out.push_back(kDigits[(w >> shift) & 15]);
    return out;
}

// Capstone, opened once per disassemble() call and closed on every path. The library is
// loaded on first use (dlopen), not linked: it is only for display, and linking it cost
// every tool ~80,000 relocations and ~10 ms at start-up (hp-apply included). Without it
// the display falls back to our own decoder's text.
class Capstone {
    struct Api {
        decltype(&cs_open) open = nullptr;
        decltype(&cs_malloc) malloc = nullptr;
        decltype(&cs_disasm_iter) disasm_iter = nullptr;
        decltype(&cs_free) free = nullptr;
        decltype(&cs_close) close = nullptr;
    };
    static const Api* api() {
        static const Api* loaded = []() -> const Api* {
            void* h = ::dlopen(HP_CAPSTONE_SONAME, RTLD_NOW | RTLD_LOCAL);
            if (h == nullptr) return nullptr;
            static Api a;
            a.open = reinterpret_cast<decltype(&cs_open)>(::dlsym(h, "cs_open"));
            a.malloc = reinterpret_cast<decltype(&cs_malloc)>(::dlsym(h, "cs_malloc"));
            a.disasm_iter =
                reinterpret_cast<decltype(&cs_disasm_iter)>(::dlsym(h, "cs_disasm_iter"));
            a.free = reinterpret_cast<decltype(&cs_free)>(::dlsym(h, "cs_free"));
            a.close = reinterpret_cast<decltype(&cs_close)>(::dlsym(h, "cs_close"));
            if (!a.open || !a.malloc || !a.disasm_iter || !a.free || !a.close) return nullptr;
            return &a;
        }();
        return loaded;
    }

  public:
    Capstone() : api_(api()) {
        if (api_ == nullptr ||
            api_->open(CS_ARCH_ARM64, CS_MODE_LITTLE_ENDIAN, &handle_) != CS_ERR_OK)
            return;
        insn_ = api_->malloc(handle_);
        if (insn_ == nullptr) api_->close(&handle_);
    }
    ~Capstone() {
        if (insn_ == nullptr) return;
        api_->free(insn_, 1);
        api_->close(&handle_);
    }
    Capstone(const Capstone&) = delete;
    Capstone& operator=(const Capstone&) = delete;

    std::optional<std::string> text(const std::uint8_t* word, std::uint64_t addr) {
        if (insn_ == nullptr) return std::nullopt;
        const std::uint8_t* p = word;
        std::size_t size = 4;
        std::uint64_t at = addr;
        if (!api_->disasm_iter(handle_, &p, &size, &at, insn_)) return std::nullopt;
        std::string out = insn_->mnemonic;
        if (insn_->op_str[0] != '\0') out += std::string(" ") + insn_->op_str;
        return out;
    }

  private:
    const Api* api_;
    csh handle_ = 0;
    cs_insn* insn_ = nullptr;
};

} // namespace

Decoded decode(std::uint32_t word, std::uint64_t pc) {
    const std::uint32_t op0 = field(word, 28, 25);
    if ((op0 & 0b1110) == 0b1010) return decode_branch_group(word, pc);
    if ((op0 & 0b1110) == 0b1000 && (word & 0x1f000000) == 0x10000000) { // adr / adrp
        const std::int64_t offset = sign_extend(field(word, 23, 5) << 2 | field(word, 30, 29), 21);
        const bool page = field(word, 31, 31);
        const std::uint64_t target =
            page ? add_offset(pc & ~std::uint64_t{0xfff}, offset * 4096) : add_offset(pc, offset);
        Decoded d = named(page ? Class::Adrp : Class::Adr, page ? "adrp" : "adr",
                          reg(true, field(word, 4, 0)) + ", " + target_operand(target));
        d.target = target;
        return d;
    }
    if ((op0 & 0b0101) == 0b0100) { // loads and stores
        if ((word & 0x3b000000) == 0x18000000) return decode_load_literal(word, pc);
        return name_atomic(word);
    }
    if (op0 == 0 && field(word, 31, 16) == 0) // udf #imm16 (the zero word is udf #0)
        return named(Class::Other, "udf", imm(field(word, 15, 0)));
    return {};
}

InsnInfo analyse(ByteView code, std::uint64_t addr) {
    InsnInfo info;
    if (code.size() < 4) return info;
    const std::uint32_t w = load_le32(code.data());
    const Decoded d = decode(w, addr);
    info.length = 4;
    info.mnemonic = d.mnemonic.empty() ? inst_word(w) : d.mnemonic;
    info.is_padding = w == kNop || w == kUdf0;
    switch (d.cls) {
    case Class::Branch:
        info.ref = InsnInfo::Ref::Jump;
        info.target = d.target;
        info.pc_relative = true;
        break;
    case Class::Adr:
        info.ref = InsnInfo::Ref::Address;
        info.target = d.target;
        info.pc_relative = true;
        break;
    case Class::Adrp:
        info.pc_relative = true;
        break; // a page: too coarse to check
    case Class::LoadLiteral:
        info.ref = InsnInfo::Ref::Data;
        info.target = d.target;
        info.size = d.size;
        info.pc_relative = true;
        break;
    case Class::Unknown:
        info.unknown_branch_class = true;
        break;
    case Class::Other:
    case Class::Hint:
    case Class::Indirect:
        break;
    }
    return info;
}

std::uint32_t kept_landing_pad(ByteView func) {
    // bti, bti c, bti j, bti jc: hint #0x20..#0x26 (bits 7:6 select the kind)
    if (func.size() >= 4 && (load_le32(func.data()) & 0xffffff3f) == 0xd503241f) return 4;
    return 0;
}

bool starts_with_pac(ByteView func) {
    if (func.size() < 4) return false;
    const std::uint32_t w = load_le32(func.data());
    return w == kPaciasp || w == kPacibsp;
}

bool near_reachable(std::uint64_t from, std::uint64_t to) {
    if (from % 4 != 0 || to % 4 != 0) return false;
    constexpr std::uint64_t reach = std::uint64_t{1} << 27; // imm26 words
    return to >= from ? to - from <= reach - 4 : from - to <= reach;
}

Bytes near_branch(std::uint64_t from, std::uint64_t to) {
    if (!near_reachable(from, to))
        throw Error(ErrorCode::Internal, "b imm26 cannot reach " + hex_addr(to));
    const std::uint32_t imm26 = static_cast<std::uint32_t>((to - from) >> 2) & 0x03ffffff;
    Bytes out;
    append_le32(out, kB | imm26); // b dest
    return out;
}

Bytes far_branch(std::uint64_t dest) {
    Bytes out;
    append_le32(out, kLdrX16Lit8); // ldr x16, #8
    append_le32(out, kBrX16);      // br x16
    append_le64(out, dest);        // .quad dest
    return out;
}

Bytes landing_pad() {
    Bytes out;
    append_le32(out, kBtiC); // bti c
    return out;
}

void pad(Bytes& out, std::size_t size) {
    if (out.size() > size || (size - out.size()) % 4 != 0)
        throw Error(ErrorCode::Internal, "branch does not fit its site in whole words");
    out.resize(size, 0); // udf #0 words
}

std::vector<Insn> disassemble(ByteView code, std::uint64_t addr, std::size_t max_insns) {
    std::vector<Insn> out;
    Capstone capstone;
    std::size_t off = 0;
    for (; off + 4 <= code.size() && out.size() < max_insns; off += 4) {
        const ByteView bytes = code.subspan(off, 4);
        const std::uint64_t at = addr + off;
        const std::uint32_t w = load_le32(bytes.data());
        const Decoded d = decode(w, at);
        // Capstone 4 prints every hint as "hint #0x19"; ours are named. Where Capstone fails
        // (ARMv8.1+), our name if we have one; a fixed-width stream never loses sync, so an
        // unknown word is shown as binutils does and the listing goes on.
        std::optional<std::string> text;
        if (d.cls != Class::Hint) text = capstone.text(bytes.data(), at);
        if (!text) text = d.text.empty() ? inst_word(w) : d.text;
        out.push_back(Insn{at, Bytes(bytes.begin(), bytes.end()), std::move(*text)});
    }
    if (off < code.size() && out.size() < max_insns) {
        const ByteView rest = code.subspan(off);
        out.push_back(Insn{addr + off, Bytes(rest.begin(), rest.end()), "(bad)"});
    }
    return out;
}

} // namespace hp::arch::detail::aarch64
