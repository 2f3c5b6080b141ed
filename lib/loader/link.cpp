// The pure half of the loader: payload layout, relocation, and the choice of a free
// address range. Nothing here touches a process; link() turns the payload file into the
// exact bytes to write, so the same code is exercised by unit tests on any host.
#include "loader/loader.hpp"

#include "arch/reloc.hpp"

#include <algorithm>
#include <fmt/format.h>
#include <map>
#include <utility>

namespace hp::loader {

namespace {

using elf::ElfFile;
using elf::Segment;

// The smallest page any supported kernel uses; also the guard gap unit.
constexpr std::uint64_t kMinPage = 4096;
// Larger p_align than this is not a page size (2 MiB is the largest anyone links for:
// huge-page text); refusing it keeps a hostile payload from asking for absurd padding.
constexpr std::uint64_t kMaxPage = std::uint64_t{2} << 20;
// A payload image is a few pages; a hostile p_memsz must not make us allocate gigabytes.
constexpr std::uint64_t kMaxImage = std::uint64_t{1} << 30;
// Linux's default vm.mmap_min_addr: nothing can be mapped below it.
constexpr std::uint64_t kMinUserAddr = 0x10000;

[[noreturn]] void bad_package(const ElfFile& f, const std::string& what) {
    throw Error(ErrorCode::BadPackage, fmt::format("payload {}: {}", f.name(), what));
}

bool is_pow2(std::uint64_t v) {
    return v != 0 && (v & (v - 1)) == 0;
}
std::uint64_t align_down(std::uint64_t v, std::uint64_t a) {
    return v & ~(a - 1);
}
// Callers guarantee v + a - 1 does not wrap (values below kMaxImage or 2^48).
std::uint64_t align_up(std::uint64_t v, std::uint64_t a) {
    return (v + a - 1) & ~(a - 1);
}

// One PT_LOAD after rounding to whole pages, relative to vaddr 0.
struct PieceSpec {
    std::uint64_t lo = 0, hi = 0; // page-aligned vaddr range
    const Segment* seg = nullptr;
};

struct Layout {
    std::uint64_t page = kMinPage;
    std::uint64_t size = 0;
    std::vector<PieceSpec> pieces; // sorted by lo, disjoint
};

// Why the page unit is the largest p_align and not the host page size: the loader is pure
// (it may run on another machine than the target) and the linker already promised, via
// p_align, that segments never share a page of that size. ARM64 toolchains default to
// 64 KiB, so an ARM64 payload is laid out correctly for 4K, 16K and 64K kernels alike.
Layout layout_of(const ElfFile& f) {
    Layout l;
    for (const Segment& s : f.segments()) {
        if (s.type != elf::PT_LOAD) continue;
        if (s.align > 1) {
            if (!is_pow2(s.align) || s.align > kMaxPage)
                bad_package(
                    f,
                    fmt::format("PT_LOAD at {} has p_align {:#x}: not a power of two up to {:#x}",
                                hex_addr(s.vaddr), s.align, kMaxPage));
            l.page = std::max(l.page, s.align);
        }
    }
    for (const Segment& s : f.segments()) {
        if (s.type != elf::PT_LOAD || s.memsz == 0) continue;
        // ElfFile guarantees vaddr + memsz does not wrap; the cap keeps align_up safe.
        if (s.vaddr + s.memsz > kMaxImage)
            bad_package(
                f, fmt::format("PT_LOAD at {} (memsz {:#x}) reaches beyond the {} MiB image limit",
                               hex_addr(s.vaddr), s.memsz, kMaxImage >> 20));
        l.pieces.push_back({align_down(s.vaddr, l.page), align_up(s.vaddr + s.memsz, l.page), &s});
    }
    if (l.pieces.empty()) bad_package(f, "has no loadable segment");
    std::sort(l.pieces.begin(), l.pieces.end(),
              [](const PieceSpec& a, const PieceSpec& b) { return a.lo < b.lo; });
    for (std::size_t i = 1; i < l.pieces.size(); ++i)
        if (l.pieces[i].lo < l.pieces[i - 1].hi)
            // Two segments on one page would need one protection for both (and W+X is
            // refused by hardened kernels): the linker never does this for its own p_align.
            bad_package(f, fmt::format("PT_LOAD segments at {} and {} share a {:#x}-byte page",
                                       hex_addr(l.pieces[i - 1].seg->vaddr),
                                       hex_addr(l.pieces[i].seg->vaddr), l.page));
    l.size = l.pieces.back().hi;
    return l;
}

// The instruction granule branch sources and targets are aligned to (ARM64 words).
std::uint64_t code_granule(arch::Arch a) {
    return a == arch::Arch::AArch64 ? 4 : 1;
}

// Highest user-space address + 1 a mapping may end at (x86-64: 47-bit user space minus the
// guard page the kernel keeps; ARM64: 48-bit VA, the Linux default).
std::uint64_t user_limit(arch::Arch a) {
    return a == arch::Arch::AArch64 ? 0xfffffffff000 : 0x7ffffffff000;
}

// [lo, hi] of the branch targets (multiples of g) a near branch at `from` reaches.
// near_reachable is the single source of truth for the reach; binary search on it keeps
// the exact edge (x86-64: rel32 counts from the end of the jmp) without restating it.
std::pair<std::uint64_t, std::uint64_t> reach_of(arch::Arch a, std::uint64_t from,
                                                 std::uint64_t g) {
    // Lowest: reachable(from, t) is monotone (false then true) for t in [0, from].
    std::uint64_t lo = 0, hi = from / g; // in granules; hi is reachable (distance 0)
    while (lo < hi) {
        std::uint64_t mid = lo + (hi - lo) / 2;
        if (arch::near_reachable(a, from, mid * g))
            hi = mid;
        else
            lo = mid + 1;
    }
    const std::uint64_t low = lo * g;
    // Highest: monotone (true then false) for t in [from, 2^48]. No branch reaches 2^48
    // from user space, so the search range is bounded there.
    std::uint64_t l2 = from / g, h2 = (std::uint64_t{1} << 48) / g;
    while (l2 < h2) {
        std::uint64_t mid = l2 + (h2 - l2 + 1) / 2;
        if (arch::near_reachable(a, from, mid * g))
            l2 = mid;
        else
            h2 = mid - 1;
    }
    return {low, l2 * g};
}

} // namespace

std::uint64_t image_page_size(const elf::ElfFile& payload) {
    return layout_of(payload).page;
}

std::uint64_t image_size(const elf::ElfFile& payload) {
    return layout_of(payload).size;
}

Image link(const elf::ElfFile& payload, arch::Arch a, std::uint64_t base, const Resolver& resolve) {
    const Layout l = layout_of(payload);
    if (payload.arch() != a)
        throw Error(ErrorCode::Unsupported,
                    fmt::format("payload {}: ELF machine {} is not {}", payload.name(),
                                payload.machine(), arch::name(a)));
    if (base % l.page != 0 || base > user_limit(a) || user_limit(a) - base < l.size)
        throw Error(ErrorCode::Internal,
                    fmt::format("payload {}: link base {} is not a {:#x}-aligned user address "
                                "with room for {:#x} bytes",
                                payload.name(), hex_addr(base), l.page, l.size));
    Image img;
    img.base = base;
    img.size = l.size;
    for (const PieceSpec& p : l.pieces) {
        Piece piece;
        piece.addr = base + p.lo;
        piece.exec = (p.seg->flags & elf::PF_X) != 0;
        piece.write = (p.seg->flags & elf::PF_W) != 0;
        piece.bytes.assign(p.hi - p.lo, 0); // zero fill covers .bss and the page tails
        // ElfFile checked offset + filesz against the file at parse time.
        const auto* src = payload.data().data() + p.seg->offset;
        std::copy(src, src + p.seg->filesz,
                  piece.bytes.begin() + static_cast<std::ptrdiff_t>(p.seg->vaddr - p.lo));
        img.pieces.push_back(std::move(piece));
    }

    // One resolver call per (name, version): the same symbol must get the same answer for
    // every slot, and the resolver may be slow (it reads the target).
    std::map<std::pair<std::string, std::string>, std::uint64_t> resolved;
    auto symbol_value = [&](const elf::Reloc& r) -> std::uint64_t {
        const elf::Symbol* s = r.symbol;
        if (s == nullptr) return 0; // symbol index 0 means S = 0 (ELF gABI)
        if (s->type == elf::STT_TLS || s->type == elf::STT_GNU_IFUNC)
            throw Error(
                ErrorCode::Unsupported,
                fmt::format(
                    "payload {}: relocation at {} refers to the {} symbol '{}', which the loader "
                    "does not support",
                    payload.name(), hex_addr(r.offset),
                    s->type == elf::STT_TLS ? "thread-local" : "IFUNC", s->name));
        if (s->defined()) {
            // Payload-defined symbols bind to the payload: no interposition by the process.
            if (s->shndx == elf::SHN_ABS) return s->value;
            return base + s->value;
        }
        auto key = std::make_pair(s->name, s->version);
        if (auto it = resolved.find(key); it != resolved.end()) return it->second;
        package::Undefined u;
        u.name = s->name;
        u.version = s->version;
        u.weak = s->bind == elf::STB_WEAK;
        // provider stays empty: the resolver knows the manifest and looks the name up there.
        const std::uint64_t v = resolve(u);
        resolved.emplace(std::move(key), v);
        return v;
    };

    for (const elf::Reloc& r : payload.relocations()) {
        const arch::RelocKind kind = arch::classify_reloc(a, r.type);
        if (kind == arch::RelocKind::None) continue;
        std::uint64_t value = 0;
        switch (kind) {
        case arch::RelocKind::Relative:
            value = base + static_cast<std::uint64_t>(r.addend);
            break;
        case arch::RelocKind::Absolute64:
            value = symbol_value(r) + static_cast<std::uint64_t>(r.addend);
            break;
        case arch::RelocKind::GlobDat:
        case arch::RelocKind::JumpSlot:
            // x86-64 psABI: S (its addend is 0 and ld.so ignores it); AArch64: S + A.
            value = symbol_value(r) +
                    (a == arch::Arch::AArch64 ? static_cast<std::uint64_t>(r.addend) : 0);
            break;
        default:
            throw Error(
                ErrorCode::Unsupported,
                fmt::format("payload {}: relocation {} at {} ({}) is not applied by the loader; "
                            "supported: {}",
                            payload.name(), arch::reloc_name(a, r.type), hex_addr(r.offset),
                            r.section, arch::supported_relocs(a)));
        }
        Piece* target = nullptr;
        for (Piece& p : img.pieces) {
            const std::uint64_t lo = p.addr - base;
            if (r.offset >= lo && r.offset - lo <= p.bytes.size() &&
                p.bytes.size() - (r.offset - lo) >= 8)
                target = &p;
        }
        if (target == nullptr)
            bad_package(payload,
                        fmt::format("relocation {} at {} lies outside every loaded segment",
                                    arch::reloc_name(a, r.type), hex_addr(r.offset)));
        store_le64(target->bytes.data() + (r.offset - (target->addr - base)), value);
    }
    return img;
}

std::uint64_t find_free_near(const std::vector<proc::Mapping>& maps, arch::Arch a,
                             std::uint64_t near_lo, std::uint64_t near_hi, std::uint64_t size,
                             std::uint64_t align) {
    if (size == 0 || near_hi <= near_lo || !is_pow2(align) || align < kMinPage || size > kMaxImage)
        return 0;
    size = align_up(size, align);
    const std::uint64_t g = code_granule(a);
    const std::uint64_t limit = user_limit(a);
    if (near_hi > limit) return 0;
    // Every site lies in [near_lo, near_hi): the worst cases are its two ends. The first
    // site is at near_lo; the last one starts no later than near_hi - 1 (rounded down to
    // an instruction). Reach is monotone in distance, so the targets every site reaches
    // are those the last site reaches going down and the first one reaches going up.
    const std::uint64_t first = align_up(near_lo, g), last = align_down(near_hi - 1, g);
    const std::uint64_t win_lo = reach_of(a, last, g).first;
    const std::uint64_t win_hi = reach_of(a, first, g).second + g; // exclusive end of targets
    const std::uint64_t guard = align;

    std::vector<proc::Mapping> sorted = maps;
    std::sort(sorted.begin(), sorted.end(),
              [](const proc::Mapping& x, const proc::Mapping& y) { return x.start < y.start; });

    std::uint64_t best = 0, best_dist = ~std::uint64_t{0};
    auto consider = [&](std::uint64_t addr) {
        if (addr < kMinUserAddr || addr % align != 0 || addr > limit || limit - addr < size) return;
        const std::uint64_t end = addr + size;
        // Belt and braces: the window arithmetic above must agree with the real predicate.
        const std::uint64_t tgt_last = align_down(end - 1, g);
        if (!arch::near_reachable(a, first, addr) || !arch::near_reachable(a, first, tgt_last) ||
            !arch::near_reachable(a, last, addr) || !arch::near_reachable(a, last, tgt_last))
            return;
        const std::uint64_t dist = end <= near_lo    ? near_lo - end
                                   : addr >= near_hi ? addr - near_hi
                                                     : 0;
        if (dist < best_dist) best = addr, best_dist = dist;
    };
    // Walk the holes between mappings (tracking the furthest end seen, in case the input
    // has overlapping entries), each shrunk by the guard gap and clipped to the window.
    std::uint64_t prev_end = 0;
    auto hole = [&](std::uint64_t hole_lo, std::uint64_t hole_hi) {
        // [hole_lo, hole_hi) is free; keep `guard` from both neighbours (there is no
        // neighbour below the first hole: mmap_min_addr is the floor there, and none above
        // the last: the kernel keeps its own guard below the user limit).
        std::uint64_t lo = hole_lo == 0 ? kMinUserAddr : hole_lo + guard;
        std::uint64_t hi = hole_hi >= limit ? limit : (hole_hi >= guard ? hole_hi - guard : 0);
        lo = std::max({lo, win_lo, kMinUserAddr});
        hi = std::min({hi, win_hi, limit});
        if (hi <= lo || hi - lo < size) return;
        const std::uint64_t low_addr = align_up(lo, align);
        const std::uint64_t high_addr = align_down(hi - size, align);
        if (low_addr > high_addr) return;
        // The candidates closest to the module are at the hole's ends.
        consider(low_addr);
        consider(high_addr);
        // A hole around the module's own span: anything in it is at distance 0.
        if (near_hi > low_addr && near_hi < high_addr) consider(align_up(near_hi, align));
    };
    for (const proc::Mapping& m : sorted) {
        if (m.start >= limit) break;
        if (m.start > prev_end) hole(prev_end, m.start);
        prev_end = std::max(prev_end, m.end);
    }
    if (prev_end < limit) hole(prev_end, limit);
    return best;
}

} // namespace hp::loader
