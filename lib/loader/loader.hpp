// The payload loader: lays out the patch .so at a chosen address, resolves its symbols
// against the process (DESIGN §6 order), applies its relocations. Nothing from the payload
// runs in the tool; the result is bytes to write into the target.
#pragma once

#include "elf/elf_file.hpp"
#include "package/manifest.hpp"
#include "proc/process.hpp"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace hp::loader {

// One loadable piece of the payload image, at its final address.
struct Piece {
    std::uint64_t addr = 0; // page aligned
    Bytes bytes;            // size is a multiple of the page size (memsz rounded up)
    bool exec = false, write = false;
};

struct Image {
    std::uint64_t base = 0; // runtime address of payload vaddr 0
    std::uint64_t size = 0; // span of all pieces, page aligned
    std::vector<Piece> pieces;
};

// The page unit of the layout: the largest p_align of the payload's PT_LOAD segments, at
// least 4096 (ARM64 linkers default to 64 KiB, so such a payload suits 4K/16K/64K kernels).
// Pieces start and end on this unit; the caller must map the image at a base aligned to it
// and should refuse a target whose page size (AT_PAGESZ) is larger.
// Throws Error(BadPackage) on a p_align that is not a power of two up to 2 MiB.
std::uint64_t image_page_size(const elf::ElfFile& payload);

// Span the payload's PT_LOAD segments need from vaddr 0 (so from `base`), a multiple of
// image_page_size(). Throws Error(BadPackage) when segments share a page or the image
// would exceed 1 GiB.
std::uint64_t image_size(const elf::ElfFile& payload);

// Resolves one undefined symbol of the payload to a runtime address; throws
// Error(NotEligible) naming the symbol when the process cannot provide it (a weak one
// may resolve to 0).
using Resolver = std::function<std::uint64_t(const package::Undefined& sym)>;

// Lays the payload out at `base` and applies every relocation (pure: no process access).
// Symbols the payload defines bind to the payload. Throws Error(Unsupported) on a
// relocation the loader does not apply. `base` must be aligned to image_page_size(). The
// resolver is called once per (name, version) with `provider` left empty (the manifest's
// entry of that name says it; SymbolScope::resolve looks it up). Pieces are reported with
// their segment's flags: GNU_RELRO data stays writable (nothing re-protects it).
Image link(const elf::ElfFile& payload, arch::Arch a, std::uint64_t base, const Resolver& resolve);

// The process's view for symbol resolution: modules in load order (executable first,
// then the link_map order of the dynamic loader, read from the target's r_debug; /proc
// maps order as a fallback), their dynamic symbols read through map_files on demand.
class SymbolScope {
  public:
    SymbolScope(const proc::Memory& mem, std::vector<proc::Module> modules);
    ~SymbolScope();
    SymbolScope(const SymbolScope&) = delete;
    SymbolScope& operator=(const SymbolScope&) = delete;

    // DESIGN §6: the pack-time offsets of non-exported target symbols (provider
    // "target:N" -> `targets[N]` module bias + address), then the target module's dynamic
    // symbols, then the global scope in load order; versions honoured; an IFUNC resolves
    // to the implementation the process already uses (from a GOT slot the process has
    // resolved, or libc's own IRELATIVE slots), never to the resolver.
    // `target_modules[i]` is the process module matched to manifest targets[i].
    // A `sym` with an empty provider (as link() passes it) takes the provider of the
    // manifest's undefined entry of that name ("process" when there is none).
    // Throws Error(NotEligible) naming NAME@VERSION and the PID when a non-weak symbol is
    // not found (a weak one gives 0), or when an IFUNC's implementation cannot be told.
    std::uint64_t resolve(const package::Undefined& sym, const package::Manifest& m,
                          const std::vector<const proc::Module*>& target_modules);

    // The global scope, in lookup order (for reports and tests).
    std::vector<const proc::Module*> load_order() const;
    // Whether that order came from the dynamic loader's link_map chain (else: the given
    // module order, e.g. a static binary or an unreadable r_debug).
    bool uses_link_map() const;
    // How many modules' files have been read and parsed so far (lookups are lazy).
    std::size_t parsed_modules() const;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// A free address range of `size` bytes whose every byte is within near-branch reach of
// every address in [near_lo, near_hi) (so sites there can jump to code placed in it),
// page aligned, not overlapping any mapping, with a guard gap; 0 when none exists.
// `align` (a power of two >= 4096; pass image_page_size() for a payload) is both the
// alignment of the result and the guard gap kept from neighbouring mappings. Of all fits,
// the one closest to [near_lo, near_hi) wins; never below 64 KiB (mmap_min_addr) nor above
// the user address limit (x86-64 0x7ffffffff000, ARM64 48-bit 0xfffffffff000).
std::uint64_t find_free_near(const std::vector<proc::Mapping>& maps, arch::Arch a,
                             std::uint64_t near_lo, std::uint64_t near_hi, std::uint64_t size,
                             std::uint64_t align = 4096);

} // namespace hp::loader
