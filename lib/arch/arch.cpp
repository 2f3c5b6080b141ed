// Dispatch on Arch, and the site rules of DESIGN §7 written once for both architectures.
// Each architecture only describes its instructions (arch_impl.hpp: InsnInfo); deciding
// where a site starts, how far it reaches and whether anything jumps into it happens here,
// so that x86-64 and ARM64 cannot drift apart on what "safe" means.
#include "arch/arch.hpp"

#include "arch/arch_impl.hpp"
#include "common/bytes.hpp"
#include "doc/error.hpp"

#include <elf.h>

#include <algorithm>
#include <string>

namespace hp::arch {

namespace {

using detail::InsnInfo;

// The per-architecture facts the shared code needs, in one table row each.
struct Isa {
    std::size_t near_size;
    std::size_t far_size;
    std::size_t insn_align;
    const char* pc_relative_word; // how the architecture's manuals say "pc-relative"
    const char* near_name;        // the near branch and its reach, for messages
    const char* far_name;
    const char* mixed_padding; // padding made of several kinds of filler
    InsnInfo (*analyse)(ByteView, std::uint64_t);
};

constexpr Isa kX86_64{detail::x86_64::near_size,
                      detail::x86_64::far_size,
                      detail::x86_64::insn_align,
                      "rip-relative",
                      "jmp rel32, within 2 GiB",
                      "jmp [rip+0]",
                      "int3/nop",
                      &detail::x86_64::analyse};
constexpr Isa kAArch64{detail::aarch64::near_size,
                       detail::aarch64::far_size,
                       detail::aarch64::insn_align,
                       "pc-relative",
                       "b, within 128 MiB",
                       "ldr x16; br x16",
                       "nop/udf",
                       &detail::aarch64::analyse};

const Isa& isa(Arch a) {
    switch (a) {
    case Arch::X86_64:
        return kX86_64;
    case Arch::AArch64:
        return kAArch64;
    }
    throw Error(ErrorCode::Internal, "unknown architecture value");
}

Error unsupported(std::string message) {
    return Error(ErrorCode::Unsupported, std::move(message));
}

std::string range(std::uint64_t lo, std::uint64_t hi) {
    return "[" + hex_addr(lo) + ", " + hex_addr(hi) + ")";
}

std::string with_mnemonic(const InsnInfo& info) {
    return info.mnemonic.empty() ? std::string() : " (" + info.mnemonic + ")";
}

// Display text of the single instruction at the start of `code` ("endbr64", "bti c").
std::string first_text(Arch a, ByteView code, std::uint64_t addr) {
    auto insns = disassemble(a, code, addr, 1);
    return insns.empty() ? std::string("?") : insns.front().text;
}

// Tracks the trailing padding a site grows into, to word the note.
struct PaddingUse {
    std::uint64_t bytes = 0;
    std::string kind; // the filler's mnemonic while it is uniform, else the Isa's mixed word

    void add(const InsnInfo& info, const Isa& set) {
        const std::string m = info.is_int3 ? "int3" : info.mnemonic;
        if (bytes == 0)
            kind = m;
        else if (kind != m)
            kind = set.mixed_padding;
        bytes += info.length;
    }
    std::string describe() const {
        return std::to_string(bytes) + " byte" + (bytes == 1 ? "" : "s") + " of " + kind +
               " padding";
    }
};

} // namespace

std::string_view name(Arch a) {
    switch (a) {
    case Arch::X86_64:
        return "x86_64";
    case Arch::AArch64:
        return "aarch64";
    }
    return "unknown";
}

std::optional<Arch> from_name(std::string_view n) {
    if (n == "x86_64") return Arch::X86_64;
    if (n == "aarch64") return Arch::AArch64;
    return std::nullopt;
}

std::optional<Arch> from_elf_machine(std::uint16_t machine) {
    switch (machine) {
    case EM_X86_64:
        return Arch::X86_64;
    case EM_AARCH64:
        return Arch::AArch64;
    default:
        return std::nullopt;
    }
}

Arch host() {
#if defined(__x86_64__)
    return Arch::X86_64;
#elif defined(__aarch64__)
    return Arch::AArch64;
#else
#error "hotpatch supports x86-64 and ARM64 hosts only"
#endif
}

std::size_t near_branch_size(Arch a) {
    return isa(a).near_size;
}
std::size_t far_branch_size(Arch a) {
    return isa(a).far_size;
}

bool near_reachable(Arch a, std::uint64_t from, std::uint64_t to) {
    switch (a) {
    case Arch::X86_64:
        return detail::x86_64::near_reachable(from, to);
    case Arch::AArch64:
        return detail::aarch64::near_reachable(from, to);
    }
    return false;
}

SitePlan plan_site(Arch a, ByteView code, std::uint64_t func_size, std::uint64_t func_addr) {
    const Isa& set = isa(a);
    if (func_size > code.size())
        throw Error(ErrorCode::BadInput, "function at " + hex_addr(func_addr) + " has size " +
                                             std::to_string(func_size) + " but only " +
                                             std::to_string(code.size()) + " bytes were given");
    if (func_size == 0) throw unsupported("function at " + hex_addr(func_addr) + " has size 0");
    if (func_addr % set.insn_align != 0 || func_size % set.insn_align != 0)
        throw unsupported("function at " + hex_addr(func_addr) + " (size " +
                          std::to_string(func_size) + ") is not aligned to whole " +
                          std::to_string(set.insn_align) + "-byte instructions");

    SitePlan plan;
    const ByteView func = code.first(func_size);
    switch (a) {
    case Arch::X86_64:
        plan.offset = detail::x86_64::kept_landing_pad(func);
        break;
    case Arch::AArch64:
        plan.offset = detail::aarch64::kept_landing_pad(func);
        plan.landing_pad = plan.offset == 0 && detail::aarch64::starts_with_pac(func);
        break;
    }
    if (plan.offset != 0) plan.notes.push_back("kept " + first_text(a, func, func_addr));
    if (plan.landing_pad)
        plan.notes.push_back(first_text(a, func, func_addr) +
                             " at entry not kept (the return address would be signed twice): "
                             "the site starts with bti c");

    // The bytes written before the branch itself: `bti c` in place of paciasp.
    const std::uint64_t prefix = plan.landing_pad ? 4 : 0;
    const std::uint64_t near_need = prefix + set.near_size;
    const std::uint64_t far_need = prefix + set.far_size;
    const std::uint64_t site = func_addr + plan.offset;

    // Grow the site by whole instructions from its start, then into trailing padding, until
    // it holds the far branch or cannot grow. Offsets below are from the function's start.
    std::uint64_t pos = plan.offset;
    std::uint64_t near_end = 0; // end of the near site, 0 until reached
    PaddingUse padding, near_padding;
    std::vector<std::uint64_t> pc_relative; // addresses of pc-relative instructions walked
    std::string far_stop;                   // why the far site could not grow, if known
    while (pos - plan.offset < far_need) {
        const std::uint64_t addr = func_addr + pos;
        InsnInfo info;
        if (pos < func_size) {
            info = set.analyse(func.subspan(pos), addr);
            if (info.length == 0) {
                const bool crosses = set.analyse(code.subspan(pos), addr).length != 0;
                const std::string why = crosses
                                            ? "the instruction at " + hex_addr(addr) +
                                                  " runs past the end of the function"
                                            : "cannot decode the instruction at " + hex_addr(addr);
                if (near_end == 0) throw unsupported(why + ", inside the site");
                far_stop = why;
                break;
            }
            if (info.pc_relative) pc_relative.push_back(addr);
        } else if (pos < code.size()) {
            info = set.analyse(code.subspan(pos), addr);
            if (info.length == 0 || !info.is_padding) break;
            padding.add(info, set);
        } else {
            break;
        }
        pos += info.length;
        if (near_end == 0 && pos - plan.offset >= near_need) {
            near_end = pos;
            near_padding = padding;
        }
    }
    if (near_end == 0) {
        throw unsupported("the site at " + hex_addr(site) + " needs " + std::to_string(near_need) +
                          " bytes for the near branch (" + (plan.landing_pad ? "bti c; " : "") +
                          set.near_name + "), but the function ends " +
                          std::to_string(func_size - plan.offset) +
                          " bytes after it and is followed by " + std::to_string(padding.bytes) +
                          " bytes of padding");
    }
    const std::uint64_t near_len = near_end - plan.offset;
    std::uint64_t far_len = pos - plan.offset >= far_need ? pos - plan.offset : 0;
    if (far_len == 0 && !far_stop.empty()) plan.notes.push_back("no far site: " + far_stop);

    // Linear sweep over the whole function: nothing may jump into the middle of the site,
    // compute an address inside it, or read the bytes we are about to change.
    for (std::uint64_t off = 0; off < func_size;) {
        const std::uint64_t addr = func_addr + off;
        const InsnInfo info = set.analyse(func.subspan(off), addr);
        if (info.unknown_branch_class) {
            throw unsupported("instruction at " + hex_addr(addr) + with_mnemonic(info) +
                              " is in the branch/exception/system encoding group but not known "
                              "to our decoder (it could be a branch)");
        }
        if (info.length == 0) {
            // Data in code or a jump table: the site itself decoded cleanly (above), so the
            // rest is reported rather than refused.
            if (off < near_end)
                throw unsupported("cannot decode the instruction at " + hex_addr(addr) +
                                  ", inside the site");
            plan.notes.push_back("branch analysis stopped at " + hex_addr(addr) +
                                 ": cannot decode (data in code?); later branches not checked");
            break;
        }
        off += info.length;
        if (info.ref == InsnInfo::Ref::None) continue;

        const std::uint64_t t = info.target;
        if (info.ref == InsnInfo::Ref::Data) {
            if (info.size == 0) continue; // prefetch: reads nothing
            const std::uint64_t t_end = t + info.size;
            const std::string what = "instruction at " + hex_addr(addr) + with_mnemonic(info) +
                                     " accesses " + range(t, t_end);
            if (t < site + near_len && t_end > site)
                throw unsupported(what + ", overlapping the site " + range(site, site + near_len));
            if (far_len != 0 && t < site + far_len && t_end > site) {
                plan.notes.push_back("no far site: " + what + ", overlapping " +
                                     range(site, site + far_len));
                far_len = 0;
            }
            continue;
        }
        const std::string what =
            (info.ref == InsnInfo::Ref::Jump ? "branch at " : "address computed at ") +
            hex_addr(addr) + with_mnemonic(info) +
            (info.ref == InsnInfo::Ref::Jump ? " targets " : " is ") + hex_addr(t);
        if (t > site && t < site + near_len)
            throw unsupported(what + ", inside the site " + range(site, site + near_len));
        if (far_len != 0 && t > site && t < site + far_len) {
            plan.notes.push_back("no far site: " + what + ", inside " +
                                 range(site, site + far_len));
            far_len = 0;
        }
    }

    if (near_padding.bytes != 0)
        plan.notes.push_back("site extends into " + near_padding.describe());
    if (far_len != 0 && padding.bytes > near_padding.bytes)
        plan.notes.push_back("far site extends into " + padding.describe());
    for (std::uint64_t addr : pc_relative) {
        if (addr < site + near_len)
            plan.notes.push_back(std::string(set.pc_relative_word) + " instruction at " +
                                 hex_addr(addr) + " in site (not executed again)");
        else if (far_len != 0)
            plan.notes.push_back(std::string(set.pc_relative_word) + " instruction at " +
                                 hex_addr(addr) + " in far site (not executed again)");
    }
    plan.near_length = static_cast<std::uint32_t>(near_len);
    plan.far_length = static_cast<std::uint32_t>(far_len);
    return plan;
}

Bytes encode_site(Arch a, const SitePlan& plan, std::uint64_t site_addr, std::uint64_t dest) {
    const Isa& set = isa(a);
    if (dest % set.insn_align != 0)
        throw unsupported("destination " + hex_addr(dest) + " is not instruction-aligned");
    Bytes out;
    if (plan.landing_pad) {
        if (a != Arch::AArch64) throw Error(ErrorCode::Internal, "landing_pad on x86-64 plan");
        out = detail::aarch64::landing_pad();
    }
    const std::uint64_t from = site_addr + out.size();
    if (plan.near_length < out.size() + set.near_size)
        throw Error(ErrorCode::Internal, "site plan shorter than the near branch");

    std::size_t length = 0;
    Bytes branch;
    if (near_reachable(a, from, dest)) {
        length = plan.near_length;
        branch = a == Arch::X86_64 ? detail::x86_64::near_branch(from, dest)
                                   : detail::aarch64::near_branch(from, dest);
    } else if (plan.far_length != 0) {
        if (plan.far_length < out.size() + set.far_size)
            throw Error(ErrorCode::Internal, "site plan shorter than the far branch");
        length = plan.far_length;
        branch = encode_far_jump(a, dest);
    } else {
        throw unsupported(
            "destination " + hex_addr(dest) + " is out of reach of the near branch (" +
            set.near_name + ") from " + hex_addr(from) + " and the site cannot hold the " +
            std::to_string(out.size() + set.far_size) + "-byte far branch (" + set.far_name + ")");
    }
    out.insert(out.end(), branch.begin(), branch.end());
    switch (a) {
    case Arch::X86_64:
        detail::x86_64::pad(out, length);
        break;
    case Arch::AArch64:
        detail::aarch64::pad(out, length);
        break;
    }
    return out;
}

Bytes encode_far_jump(Arch a, std::uint64_t dest) {
    switch (a) {
    case Arch::X86_64:
        return detail::x86_64::far_branch(dest);
    case Arch::AArch64:
        return detail::aarch64::far_branch(dest);
    }
    throw Error(ErrorCode::Internal, "unknown architecture value");
}

std::vector<Insn> disassemble(Arch a, ByteView code, std::uint64_t addr, std::size_t max_insns) {
    switch (a) {
    case Arch::X86_64:
        return detail::x86_64::disassemble(code, addr, max_insns);
    case Arch::AArch64:
        return detail::aarch64::disassemble(code, addr, max_insns);
    }
    return {};
}

} // namespace hp::arch
