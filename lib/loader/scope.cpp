// Symbol resolution against a live process (DESIGN §6): which module's definition the
// payload binds to, in the order the dynamic loader itself would use, and which
// implementation of an IFUNC the process really runs.
//
// Two sources of truth, each used for what it is good at:
//  - the target's memory, for what ld.so decided at run time: the link_map chain (load
//    order) and the GOT slots it filled (IFUNC implementations);
//  - the mapped files (through /proc/PID/map_files), for static facts: dynamic symbols,
//    versions, relocation tables, section bounds.
// Lookups read a module's file the way ld.so reads its memory: through the dynamic
// section and the GNU (or SysV) hash table, with a few small preads per lookup. Reading and
// parsing whole files instead cost ~4 ms per MB on the reference machine, i.e. a libc
// lookup behind a dozen large libraries would blow the apply budget on I/O alone. The full
// parse (proc::open_module) remains for files without a hash table and for the rare IFUNC
// fallback that needs section names.
// Everything read from the target is treated as hostile: a process can hold any bytes at
// the addresses we follow, so every chain is capped, every read is fallible, and garbage
// sends us to the fallback order instead of into a loop or a crash.
#include "loader/loader.hpp"

#include "arch/reloc.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <deque>
#include <fcntl.h>
#include <fmt/format.h>
#include <optional>
#include <string_view>
#include <unistd.h>
#include <unordered_map>
#include <unordered_set>

namespace hp::loader {

namespace {

using elf::ElfFile;
using elf::Symbol;

// Caps on structures read from the target (hostile input).
constexpr std::size_t kMaxLinkMaps = 4096;
constexpr std::size_t kMaxName = 4096; // PATH_MAX
constexpr std::size_t kMaxPhdrs = 512;
constexpr std::size_t kMaxDynamic = 1024;
// Reads of unknown length never cross this boundary: a string ending just before an
// unmapped page must still be readable.
constexpr std::uint64_t kReadPage = 4096;

constexpr std::uint8_t kElfMagic[4] = {0x7f, 'E', 'L', 'F'};
constexpr std::int64_t DT_DEBUG = 21;
constexpr int RT_CONSISTENT = 0;

std::optional<std::uint64_t> peek_u64(const proc::Memory& mem, std::uint64_t addr) {
    std::uint8_t b[8];
    if (!mem.read_fallible(addr, b, sizeof b)) return std::nullopt;
    return load_le64(b);
}

// A NUL-terminated string of at most `cap` bytes, read page by page; nullopt when
// unreadable or unterminated within the cap.
std::optional<std::string> read_cstring(const proc::Memory& mem, std::uint64_t addr,
                                        std::size_t cap) {
    std::string out;
    std::array<std::uint8_t, kReadPage> buf;
    while (out.size() < cap) {
        const std::size_t chunk = static_cast<std::size_t>(
            std::min<std::uint64_t>(kReadPage - addr % kReadPage, cap - out.size()));
        if (addr + chunk < addr || !mem.read_fallible(addr, buf.data(), chunk)) return std::nullopt;
        if (const void* nul = std::memchr(buf.data(), 0, chunk)) {
            out.append(
                reinterpret_cast<const char*>(buf.data()),
                static_cast<std::size_t>(static_cast<const std::uint8_t*>(nul) - buf.data()));
            return out;
        }
        out.append(reinterpret_cast<const char*>(buf.data()), chunk);
        addr += chunk;
    }
    return std::nullopt;
}

std::string display_name(const std::string& name, const std::string& version) {
    return version.empty() ? name : name + "@" + version;
}

// Can a definition `cand` satisfy a reference to `version` ("" = unversioned)? This follows
// ld.so's check_match: a versioned reference binds to that exact version, or to an
// unversioned (index 0/1), non-hidden definition -- a library without version info, or an
// executable interposing the symbol; an unversioned reference binds to the default
// (non-hidden) version or an unversioned definition.
enum class Match { No, Fallback, Exact };
Match version_match(const Symbol& cand, const std::string& version) {
    if (!version.empty()) {
        if (cand.version == version) return Match::Exact;
        return cand.version.empty() && !cand.version_hidden ? Match::Fallback : Match::No;
    }
    return cand.version_hidden ? Match::No : Match::Exact;
}

// Symbols another module can bind to (ld.so's do_lookup_x filter): exported, with a value,
// of a type that names code or data. TLS is left out on purpose: the payload cannot have
// TLS relocations (DESIGN §5), so an address would be meaningless.
bool bindable(const Symbol& s) {
    if (!s.exported() || s.value == 0) return false;
    switch (s.type) {
    case elf::STT_NOTYPE:
    case elf::STT_OBJECT:
    case elf::STT_FUNC:
    case elf::STT_COMMON:
    case elf::STT_GNU_IFUNC:
        return true;
    default:
        return false;
    }
}

// The dynamic relocations that matter here, from either reader.
struct DynReloc {
    std::uint64_t offset = 0;
    std::uint32_t type = 0;
    std::int64_t addend = 0;
};

// A module's mapped file, read with pread at the offsets its own headers give. Every value
// taken from the file is bounds-checked against the file's PT_LOAD segments; a structural
// flaw throws Error(NotEligible) naming the file (as proc::open_module does: a process whose
// modules do not parse cannot be patched -- a clean "no", not bad user input).
class DynTable {
  public:
    // nullptr when the file cannot be read this way (no hash table, or map_files closed to
    // us): the caller then parses it in full through proc::open_module.
    static std::unique_ptr<DynTable> open(const proc::Module& m);
    ~DynTable() {
        if (fd_ >= 0) ::close(fd_);
    }
    DynTable(const DynTable&) = delete;
    DynTable& operator=(const DynTable&) = delete;

    std::optional<arch::Arch> arch() const { return arch_; }
    // Every dynsym entry named `name` (defined or not; the caller filters).
    std::vector<Symbol> lookup(std::string_view name);
    // The DT_RELA and DT_JMPREL tables.
    std::vector<DynReloc> relocations();

  private:
    DynTable() = default;
    [[noreturn]] void bad(const std::string& what) const {
        throw Error(ErrorCode::NotEligible, fmt::format("{}: malformed ELF: {}", path_, what));
    }
    bool pread_exact(std::uint64_t off, void* out, std::size_t len) const;
    // File offset of [vaddr, vaddr + len) when one PT_LOAD holds all of it in the file.
    std::optional<std::uint64_t> file_offset(std::uint64_t vaddr, std::uint64_t len) const;
    void read_vaddr(std::uint64_t vaddr, void* out, std::size_t len, const char* what) const;
    std::uint32_t u32_at(std::uint64_t vaddr, const char* what) const;
    // The string at strtab offset `off`, at most `cap` bytes; nullopt if longer.
    std::optional<std::string> string_at(std::uint64_t off, std::size_t cap) const;
    Symbol symbol_at(std::uint32_t idx) const;
    void read_versions();

    struct Load {
        std::uint64_t vaddr, offset, filesz;
    };
    std::string path_;
    int fd_ = -1;
    std::optional<arch::Arch> arch_;
    std::vector<Load> loads_;
    std::uint64_t symtab_ = 0, strtab_ = 0, strsz_ = 0, versym_ = 0, verdef_ = 0, verdefnum_ = 0;
    std::uint64_t rela_ = 0, relasz_ = 0, jmprel_ = 0, pltrelsz_ = 0;
    bool plt_is_rela_ = true;
    // GNU hash (preferred, as ld.so) or SysV hash, header parts kept in memory.
    bool gnu_ = false;
    std::uint64_t hash_ = 0; // vaddr of the table
    std::uint32_t nbuckets_ = 0, symoffset_ = 0, bloom_shift_ = 0, nchain_ = 0;
    std::vector<std::uint64_t> bloom_;
    std::vector<std::uint32_t> buckets_;
    std::uint64_t chains_ = 0; // vaddr of chain[0] (GNU: of chain[symoffset])
    bool versions_read_ = false;
    std::vector<std::string> version_names_; // verdef index -> name
};

// Limits on what a file's headers may ask us to read (far above real files).
constexpr std::size_t kMaxHashWords = std::size_t{1} << 22;
constexpr std::size_t kMaxChainWalk = std::size_t{1} << 20;
constexpr std::size_t kMaxRelocBytes = std::size_t{64} << 20;
constexpr std::size_t kMaxVerdefs = 4096;

enum : std::int64_t {
    DT_HASH = 4,
    DT_STRTAB = 5,
    DT_SYMTAB = 6,
    DT_RELA = 7,
    DT_RELASZ = 8,
    DT_STRSZ = 10,
    DT_SYMENT = 11,
    DT_PLTREL = 20,
    DT_PLTRELSZ = 2,
    DT_JMPREL = 23,
    DT_GNU_HASH = 0x6ffffef5,
    DT_VERSYM = 0x6ffffff0,
    DT_VERDEF = 0x6ffffffc,
    DT_VERDEFNUM = 0x6ffffffd,
};

bool DynTable::pread_exact(std::uint64_t off, void* out, std::size_t len) const {
    auto* p = static_cast<std::uint8_t*>(out);
    while (len > 0) {
        const ssize_t n = ::pread(fd_, p, len, static_cast<off_t>(off));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        p += n, off += static_cast<std::uint64_t>(n), len -= static_cast<std::size_t>(n);
    }
    return true;
}

std::optional<std::uint64_t> DynTable::file_offset(std::uint64_t vaddr, std::uint64_t len) const {
    for (const Load& l : loads_)
        if (vaddr >= l.vaddr && vaddr - l.vaddr <= l.filesz && len <= l.filesz - (vaddr - l.vaddr))
            return l.offset + (vaddr - l.vaddr);
    return std::nullopt;
}

void DynTable::read_vaddr(std::uint64_t vaddr, void* out, std::size_t len, const char* what) const {
    auto off = file_offset(vaddr, len);
    if (!off)
        bad(fmt::format("{} at {} (+{:#x}) is outside the file's segments", what, hex_addr(vaddr),
                        len));
    if (!pread_exact(*off, out, len))
        bad(fmt::format("{} at file offset {:#x} cannot be read", what, *off));
}

std::uint32_t DynTable::u32_at(std::uint64_t vaddr, const char* what) const {
    std::uint8_t b[4];
    read_vaddr(vaddr, b, 4, what);
    return load_le32(b);
}

std::optional<std::string> DynTable::string_at(std::uint64_t off, std::size_t cap) const {
    if (off >= strsz_)
        bad(fmt::format("string offset {:#x} outside .dynstr ({:#x} bytes)", off, strsz_));
    const std::size_t len =
        static_cast<std::size_t>(std::min<std::uint64_t>(cap + 1, strsz_ - off));
    std::string buf(len, '\0');
    read_vaddr(strtab_ + off, buf.data(), len, ".dynstr");
    const auto nul = buf.find('\0');
    if (nul == std::string::npos) return std::nullopt;
    buf.resize(nul);
    return buf;
}

void DynTable::read_versions() {
    versions_read_ = true;
    if (verdef_ == 0) return;
    std::uint64_t at = verdef_;
    for (std::uint64_t i = 0; i < std::min<std::uint64_t>(verdefnum_, kMaxVerdefs); ++i) {
        // Elf64_Verdef: vd_version, vd_flags, vd_ndx, vd_cnt (u16); vd_hash, vd_aux, vd_next (u32).
        std::uint8_t vd[20];
        read_vaddr(at, vd, sizeof vd, ".gnu.version_d");
        const std::uint16_t ndx = load_le16(vd + 4) & 0x7fff, cnt = load_le16(vd + 6);
        const std::uint32_t aux = load_le32(vd + 12), next = load_le32(vd + 16);
        if (cnt > 0) {
            // Elf64_Verdaux: vda_name, vda_next; the first one names the version.
            if (auto name = string_at(u32_at(at + aux, ".gnu.version_d aux"), kMaxName)) {
                if (version_names_.size() <= ndx) version_names_.resize(ndx + std::size_t{1});
                version_names_[ndx] = *name;
            }
        }
        if (next == 0) break;
        at += next;
    }
}

Symbol DynTable::symbol_at(std::uint32_t idx) const {
    std::uint8_t e[24]; // Elf64_Sym
    read_vaddr(symtab_ + std::uint64_t{idx} * 24, e, sizeof e, ".dynsym entry");
    Symbol s = elf::decode_symbol(e, /*dynamic=*/true);
    if (versym_ != 0) {
        std::uint8_t v[2];
        read_vaddr(versym_ + std::uint64_t{idx} * 2, v, 2, ".gnu.version");
        const std::uint16_t x = load_le16(v);
        s.version_hidden = (x & 0x8000) != 0;
        const std::size_t vi = x & 0x7fff;
        // 0 (local) and 1 (global, the base definition) mean "unversioned", as in ElfFile.
        if (vi >= 2 && vi < version_names_.size()) s.version = version_names_[vi];
    }
    // The name is filled in by the caller, which has already compared it.
    return s;
}

std::unique_ptr<DynTable> DynTable::open(const proc::Module& m) {
    std::unique_ptr<DynTable> t(new DynTable());
    t->path_ = m.path;
    t->fd_ = ::open(m.map_file.c_str(), O_RDONLY | O_CLOEXEC);
    // map_files may be closed to us (it needs more privilege than /proc/PID/mem on some
    // kernels); proc::open_module knows the checked fallback, so let the full parse handle it.
    if (t->fd_ < 0) return nullptr;
    std::uint8_t eh[64];
    if (!t->pread_exact(0, eh, sizeof eh) || std::memcmp(eh, kElfMagic, 4) != 0 || eh[4] != 2 ||
        eh[5] != 1)
        t->bad("not a 64-bit little-endian ELF file");
    t->arch_ = arch::from_elf_machine(load_le16(eh + 18));
    const std::uint64_t phoff = load_le64(eh + 32);
    const std::size_t phnum = load_le16(eh + 56);
    if (load_le16(eh + 54) != 56 || phnum > kMaxPhdrs)
        t->bad("unexpected program header table shape");
    Bytes ph(phnum * 56);
    if (!t->pread_exact(phoff, ph.data(), ph.size())) t->bad("program headers cannot be read");
    std::uint64_t dyn_off = 0, dyn_size = 0;
    for (std::size_t i = 0; i < phnum; ++i) {
        const std::uint8_t* p = ph.data() + i * 56;
        const std::uint32_t type = load_le32(p);
        if (type == elf::PT_LOAD)
            t->loads_.push_back({load_le64(p + 16), load_le64(p + 8), load_le64(p + 32)});
        if (type == elf::PT_DYNAMIC) dyn_off = load_le64(p + 8), dyn_size = load_le64(p + 32);
    }
    if (dyn_size == 0) return nullptr; // no dynamic section: nothing exported (static binary)
    const std::size_t ndyn =
        static_cast<std::size_t>(std::min<std::uint64_t>(dyn_size / 16, kMaxDynamic));
    Bytes d(ndyn * 16);
    if (!t->pread_exact(dyn_off, d.data(), d.size())) t->bad("dynamic section cannot be read");
    std::uint64_t gnu_hash = 0, sysv_hash = 0, syment = 24;
    for (std::size_t i = 0; i < ndyn; ++i) {
        const auto tag = static_cast<std::int64_t>(load_le64(d.data() + i * 16));
        const std::uint64_t v = load_le64(d.data() + i * 16 + 8);
        if (tag == elf::DT_NULL) break;
        switch (tag) {
        case DT_HASH:
            sysv_hash = v;
            break;
        case DT_GNU_HASH:
            gnu_hash = v;
            break;
        case DT_STRTAB:
            t->strtab_ = v;
            break;
        case DT_SYMTAB:
            t->symtab_ = v;
            break;
        case DT_STRSZ:
            t->strsz_ = v;
            break;
        case DT_SYMENT:
            syment = v;
            break;
        case DT_VERSYM:
            t->versym_ = v;
            break;
        case DT_VERDEF:
            t->verdef_ = v;
            break;
        case DT_VERDEFNUM:
            t->verdefnum_ = v;
            break;
        case DT_RELA:
            t->rela_ = v;
            break;
        case DT_RELASZ:
            t->relasz_ = v;
            break;
        case DT_JMPREL:
            t->jmprel_ = v;
            break;
        case DT_PLTRELSZ:
            t->pltrelsz_ = v;
            break;
        case DT_PLTREL:
            t->plt_is_rela_ = v == static_cast<std::uint64_t>(DT_RELA);
            break;
        default:
            break;
        }
    }
    if ((gnu_hash == 0 && sysv_hash == 0) || t->symtab_ == 0 || t->strtab_ == 0 || syment != 24)
        return nullptr;
    if (gnu_hash != 0) {
        // Header: nbuckets, symoffset, bloom_size, bloom_shift; then bloom words (64-bit),
        // buckets, and the hash chain starting at symbol index symoffset.
        std::uint8_t h[16];
        t->read_vaddr(gnu_hash, h, sizeof h, ".gnu.hash header");
        t->gnu_ = true;
        t->nbuckets_ = load_le32(h);
        t->symoffset_ = load_le32(h + 4);
        const std::uint32_t bloom_size = load_le32(h + 8);
        t->bloom_shift_ = load_le32(h + 12);
        if (t->nbuckets_ == 0 || t->nbuckets_ > kMaxHashWords || bloom_size == 0 ||
            bloom_size > kMaxHashWords)
            t->bad(fmt::format(".gnu.hash has {} buckets and {} bloom words", t->nbuckets_,
                               bloom_size));
        Bytes b(std::size_t{bloom_size} * 8 + std::size_t{t->nbuckets_} * 4);
        t->read_vaddr(gnu_hash + 16, b.data(), b.size(), ".gnu.hash tables");
        for (std::size_t i = 0; i < bloom_size; ++i)
            t->bloom_.push_back(load_le64(b.data() + i * 8));
        for (std::size_t i = 0; i < t->nbuckets_; ++i)
            t->buckets_.push_back(load_le32(b.data() + std::size_t{bloom_size} * 8 + i * 4));
        t->chains_ = gnu_hash + 16 + b.size();
    } else {
        std::uint8_t h[8];
        t->read_vaddr(sysv_hash, h, sizeof h, ".hash header");
        t->nbuckets_ = load_le32(h);
        t->nchain_ = load_le32(h + 4);
        if (t->nbuckets_ == 0 || t->nbuckets_ > kMaxHashWords || t->nchain_ > kMaxHashWords)
            t->bad(
                fmt::format(".hash has {} buckets and {} chain entries", t->nbuckets_, t->nchain_));
        Bytes b(std::size_t{t->nbuckets_} * 4);
        t->read_vaddr(sysv_hash + 8, b.data(), b.size(), ".hash buckets");
        for (std::size_t i = 0; i < t->nbuckets_; ++i)
            t->buckets_.push_back(load_le32(b.data() + i * 4));
        t->chains_ = sysv_hash + 8 + b.size();
    }
    t->hash_ = gnu_hash != 0 ? gnu_hash : sysv_hash;
    return t;
}

std::vector<Symbol> DynTable::lookup(std::string_view name) {
    if (!versions_read_) read_versions();
    std::vector<Symbol> out;
    // Compare the name in the string table with one read of exactly name + NUL.
    auto named = [&](std::uint32_t idx) -> std::optional<Symbol> {
        const std::uint32_t st_name = u32_at(symtab_ + std::uint64_t{idx} * 24, ".dynsym entry");
        if (st_name >= strsz_ || strsz_ - st_name < name.size() + 1) return std::nullopt;
        std::string buf(name.size() + 1, '\0');
        read_vaddr(strtab_ + st_name, buf.data(), buf.size(), ".dynstr");
        if (std::string_view(buf.data(), name.size()) != name || buf.back() != '\0')
            return std::nullopt;
        Symbol s = symbol_at(idx);
        s.name = std::string(name);
        return s;
    };
    if (gnu_) {
        std::uint32_t h = 5381; // the GNU hash: h * 33 + c
        for (unsigned char c : name)
            h = h * 33 + c;
        // The Bloom filter rules out most misses without touching the file.
        const std::uint64_t word = bloom_[(h / 64) % bloom_.size()];
        const std::uint64_t mask =
            (std::uint64_t{1} << (h % 64)) | (std::uint64_t{1} << ((h >> bloom_shift_) % 64));
        if ((word & mask) != mask) return out;
        std::uint32_t idx = buckets_[h % nbuckets_];
        if (idx == 0) return out;
        if (idx < symoffset_)
            bad(fmt::format(".gnu.hash bucket names symbol {} below symoffset {}", idx,
                            symoffset_));
        // Chain entries are read in small batches: one pread usually covers the whole chain.
        constexpr std::size_t kBatch = 16;
        std::array<std::uint8_t, kBatch * 4> batch{};
        std::size_t have = 0, pos = 0;
        for (std::size_t steps = 0; steps < kMaxChainWalk; ++steps, ++idx) {
            if (pos == have) {
                const std::uint64_t at = chains_ + (std::uint64_t{idx} - symoffset_) * 4;
                // A batch may run past the segment's end near the table's end: shrink it.
                have = kBatch;
                while (have > 1 && !file_offset(at, have * 4))
                    --have;
                read_vaddr(at, batch.data(), have * 4, ".gnu.hash chain");
                pos = 0;
            }
            const std::uint32_t ch = load_le32(batch.data() + 4 * pos++);
            if ((ch | 1) == (h | 1))
                if (auto s = named(idx)) out.push_back(std::move(*s));
            if (ch & 1) break; // end of this bucket's chain
        }
        return out;
    }
    std::uint32_t h = 0; // the SysV ELF hash
    for (unsigned char c : name) {
        h = (h << 4) + c;
        const std::uint32_t g = h & 0xf0000000;
        if (g != 0) h ^= g >> 24;
        h &= ~g;
    }
    std::uint32_t idx = buckets_[h % nbuckets_];
    // At most nchain steps: a cycle in a malformed chain cannot loop forever.
    for (std::uint32_t steps = 0; idx != 0 && steps < nchain_; ++steps) {
        if (idx >= nchain_)
            bad(fmt::format(".hash chain names symbol {} beyond {} entries", idx, nchain_));
        if (auto s = named(idx)) out.push_back(std::move(*s));
        idx = u32_at(chains_ + std::uint64_t{idx} * 4, ".hash chain");
    }
    return out;
}

std::vector<DynReloc> DynTable::relocations() {
    std::vector<DynReloc> out;
    auto table = [&](std::uint64_t vaddr, std::uint64_t size) {
        if (vaddr == 0 || size == 0) return;
        if (size > kMaxRelocBytes || size % 24 != 0)
            bad(fmt::format("relocation table of {:#x} bytes", size));
        Bytes b(static_cast<std::size_t>(size));
        read_vaddr(vaddr, b.data(), b.size(), "relocation table");
        for (std::size_t i = 0; i < b.size(); i += 24)
            out.push_back({load_le64(b.data() + i),
                           static_cast<std::uint32_t>(load_le64(b.data() + i + 8)),
                           static_cast<std::int64_t>(load_le64(b.data() + i + 16))});
    };
    table(rela_, relasz_);
    if (plt_is_rela_) table(jmprel_, pltrelsz_);
    return out;
}

// One module of the process and, once consulted, what we read of its file: the hash-table
// reader for lookups, and the full parse only when that is not enough.
struct Entry {
    proc::Module mod;
    bool consulted = false;
    std::unique_ptr<DynTable> table;
    std::unique_ptr<ElfFile> file;
    // Lookups without a hash table: name -> bindable dynsym entries of `file`; keys view the
    // names inside `file`, which is heap allocated and never modified.
    std::unordered_map<std::string_view, std::vector<const Symbol*>> exports;
    // Dynamic relocations, read once (IFUNC resolution scans them per symbol).
    std::optional<std::vector<DynReloc>> relocs;
};

} // namespace

struct SymbolScope::Impl {
    const proc::Memory& mem;
    std::deque<Entry> entries; // deque: Entry addresses stay stable as target modules are added
    std::size_t given = 0;     // entries[0, given) are the constructor's modules
    std::vector<Entry*> order;
    bool link_map = false;
    std::size_t parsed = 0;

    explicit Impl(const proc::Memory& m) : mem(m) {}

    // Errors reading a module's file name the module and the process.
    template <class F> auto reading(const Entry& e, F&& f) -> decltype(f()) {
        try {
            return f();
        } catch (const Error& err) {
            throw Error(err.code(), fmt::format("reading the symbols of {} in process {}: {}",
                                                e.mod.path, mem.pid(), err.what()));
        }
    }

    // First use of a module: the hash-table reader, or the full parse when it has none.
    // A failure leaves the entry unconsulted: the next lookup fails the same way instead of
    // silently finding nothing there.
    void consult(Entry& e) {
        if (e.consulted) return;
        e.table = reading(e, [&] { return DynTable::open(e.mod); });
        if (!e.table) open_full(e);
        e.consulted = true;
        ++parsed;
    }

    ElfFile& open_full(Entry& e) {
        if (!e.file) {
            e.file =
                reading(e, [&] { return std::make_unique<ElfFile>(proc::open_module(e.mod)); });
            if (!e.table)
                for (const Symbol& s : e.file->dynsym())
                    if (bindable(s)) e.exports[s.name].push_back(&s);
        }
        return *e.file;
    }

    std::optional<arch::Arch> arch_of(Entry& e) {
        consult(e);
        return e.table ? e.table->arch() : e.file->arch();
    }

    const std::vector<DynReloc>& relocations(Entry& e) {
        consult(e);
        if (!e.relocs) {
            std::vector<DynReloc> out;
            if (e.table) {
                out = reading(e, [&] { return e.table->relocations(); });
            } else {
                for (const elf::Reloc& r : e.file->relocations())
                    out.push_back({r.offset, r.type, r.addend});
            }
            e.relocs = std::move(out);
        }
        return *e.relocs;
    }

    // The entry for a module the caller holds (a target module), matched by identity of
    // mapping; a module we were not given gets an entry of its own.
    Entry& entry_for(const proc::Module& m) {
        for (Entry& e : entries)
            if (e.mod.start == m.start && e.mod.bias == m.bias && e.mod.path == m.path) return e;
        entries.push_back(Entry{m, false, nullptr, nullptr, {}, std::nullopt});
        return entries.back();
    }

    Entry* entry_containing(std::uint64_t addr) {
        for (Entry& e : entries)
            if (addr >= e.mod.start && addr < e.mod.end) return &e;
        return nullptr;
    }

    std::uint64_t runtime(const Entry& e, const Symbol& s) const {
        // SHN_ABS values are absolute (glibc >= 2.28 agrees); everything else moves with the
        // module.
        return s.shndx == elf::SHN_ABS ? s.value : e.mod.bias + s.value;
    }

    // The module's best definition for (name, version), if any.
    std::optional<Symbol> find_in(Entry& e, const std::string& name, const std::string& version) {
        consult(e);
        std::vector<Symbol> cands;
        if (e.table) {
            cands = reading(e, [&] { return e.table->lookup(name); });
        } else if (auto it = e.exports.find(name); it != e.exports.end()) {
            for (const Symbol* s : it->second)
                cands.push_back(*s);
        }
        std::optional<Symbol> fallback;
        for (Symbol& s : cands) {
            if (!bindable(s)) continue;
            const Match mt = version_match(s, version);
            if (mt == Match::Exact) return std::move(s);
            if (mt == Match::Fallback && !fallback) fallback = std::move(s);
        }
        return fallback;
    }

    void compute_order();
    std::optional<std::uint64_t> find_r_debug();
    std::optional<std::vector<Entry*>> walk_link_map(std::uint64_t r_debug_addr, bool& consistent);
    std::uint64_t ifunc_impl(Entry& def, const Symbol& s);
    bool in_plt(std::uint64_t addr);
};

// The runtime address of r_debug: the executable's DT_DEBUG, which ld.so fills in (that is
// what debuggers read), else ld.so's exported _r_debug.
std::optional<std::uint64_t> SymbolScope::Impl::find_r_debug() {
    if (given == 0) return std::nullopt;
    const proc::Module& exe = entries[0].mod;
    // Program headers from memory, not the file: the executable may be huge (a .symtab we
    // would otherwise parse) and ld.so itself found them there.
    std::uint8_t eh[64];
    if (mem.read_fallible(exe.start, eh, sizeof eh) && std::memcmp(eh, kElfMagic, 4) == 0 &&
        eh[4] == 2 && load_le16(eh + 54) == 56) {
        const std::uint64_t phoff = load_le64(eh + 32);
        const std::size_t phnum = std::min<std::size_t>(load_le16(eh + 56), kMaxPhdrs);
        Bytes ph(phnum * 56);
        if (phoff < (std::uint64_t{1} << 20) &&
            mem.read_fallible(exe.start + phoff, ph.data(), ph.size())) {
            for (std::size_t i = 0; i < phnum; ++i) {
                const std::uint8_t* p = ph.data() + i * 56;
                if (load_le32(p) != elf::PT_DYNAMIC) continue;
                const std::uint64_t dyn = exe.bias + load_le64(p + 16);
                const std::size_t n = static_cast<std::size_t>(
                    std::min<std::uint64_t>(load_le64(p + 40) / 16, kMaxDynamic));
                Bytes d(n * 16);
                if (!mem.read_fallible(dyn, d.data(), d.size())) break;
                for (std::size_t k = 0; k < n; ++k) {
                    const auto tag = static_cast<std::int64_t>(load_le64(d.data() + k * 16));
                    if (tag == elf::DT_NULL) break;
                    if (tag == DT_DEBUG) {
                        const std::uint64_t v = load_le64(d.data() + k * 16 + 8);
                        if (v != 0) return v;
                    }
                }
                break;
            }
        }
    }
    // No DT_DEBUG (or not filled in): glibc's ld.so exports the same structure. Only the
    // dynamic loader's own file is consulted, so this costs one small parse.
    for (std::size_t i = 0; i < given; ++i) {
        const std::string& p = entries[i].mod.path;
        const std::string base = p.substr(p.find_last_of('/') + 1);
        if (base.rfind("ld-linux", 0) != 0 && base.rfind("ld64", 0) != 0) continue;
        try {
            if (auto s = find_in(entries[i], "_r_debug", "")) return runtime(entries[i], *s);
        } catch (const Error&) {
            // An unreadable loader file only costs us the link_map order.
        }
    }
    return std::nullopt;
}

// struct r_debug { int r_version; struct link_map* r_map; ElfW(Addr) r_brk; int r_state; ... }
// struct link_map { ElfW(Addr) l_addr; char* l_name; ElfW(Dyn)* l_ld; link_map* l_next, *l_prev; }
// (the public prefix of glibc's link_map, <link.h>; the same on x86-64 and ARM64).
std::optional<std::vector<Entry*>> SymbolScope::Impl::walk_link_map(std::uint64_t rd,
                                                                    bool& consistent) {
    std::uint8_t r[32];
    if (!mem.read_fallible(rd, r, sizeof r)) return std::nullopt;
    const std::uint32_t version = load_le32(r);
    // 1 in glibc; 2 since 2.35 when dlmopen namespaces exist (r_debug_extended, same prefix).
    if (version != 1 && version != 2) return std::nullopt;
    consistent = load_le32(r + 24) == RT_CONSISTENT;
    std::vector<Entry*> out;
    std::unordered_set<std::uint64_t> seen;
    std::uint64_t node = load_le64(r + 8), prev = 0;
    for (std::size_t count = 0; node != 0; ++count) {
        // A cycle or an endless chain means the list is garbage: use the fallback order.
        if (count == kMaxLinkMaps || !seen.insert(node).second) return std::nullopt;
        std::uint8_t lm[40];
        if (!mem.read_fallible(node, lm, sizeof lm)) return std::nullopt;
        const std::uint64_t l_addr = load_le64(lm), l_name = load_le64(lm + 8),
                            l_ld = load_le64(lm + 16), l_next = load_le64(lm + 24),
                            l_prev = load_le64(lm + 32);
        // ld.so keeps the list doubly linked; a broken back link is garbage (or a list
        // being edited by a dlopen in another thread right now).
        if (l_prev != prev) return std::nullopt;
        // Match by address: l_addr is the load bias and l_ld, the module's dynamic section,
        // lies inside its mapping. Names are a weak key (merged /usr makes
        // /lib/x86_64-linux-gnu/libc.so.6 and /usr/lib/... the same file), so the name is
        // read only when the address match fails.
        Entry* match = nullptr;
        for (std::size_t i = 0; i < given && match == nullptr; ++i) {
            const proc::Module& m = entries[i].mod;
            if (m.bias == l_addr && l_ld >= m.start && l_ld < m.end) match = &entries[i];
        }
        if (match == nullptr && l_name != 0) {
            if (auto name = read_cstring(mem, l_name, kMaxName); name && !name->empty())
                for (std::size_t i = 0; i < given && match == nullptr; ++i)
                    if (entries[i].mod.path == *name) match = &entries[i];
        }
        // No match: the vDSO (not a file), or a module we were not told about. ld.so could
        // bind to the vDSO only for __vdso_* names nobody links against; skip it.
        if (match != nullptr && std::find(out.begin(), out.end(), match) == out.end())
            out.push_back(match);
        prev = node;
        node = l_next;
    }
    return out;
}

void SymbolScope::Impl::compute_order() {
    order.clear();
    link_map = false;
    if (auto rd = find_r_debug()) {
        // A list read while a dlopen edits it may be torn; one re-read after an
        // inconsistent state is cheap and catches the common case.
        for (int attempt = 0; attempt < 2; ++attempt) {
            bool consistent = true;
            auto chain = walk_link_map(*rd, consistent);
            if (!chain) break;
            if (!consistent && attempt == 0) continue;
            order.push_back(&entries[0]); // the executable is first, whatever the chain says
            for (Entry* e : *chain)
                if (e != &entries[0]) order.push_back(e);
            link_map = true;
            return;
        }
    }
    for (std::size_t i = 0; i < given; ++i)
        order.push_back(&entries[i]);
}

bool SymbolScope::Impl::in_plt(std::uint64_t addr) {
    Entry* e = entry_containing(addr);
    if (e == nullptr) return false;
    const ElfFile* f = nullptr;
    try {
        f = &open_full(*e);
    } catch (const Error&) {
        return false;
    }
    const elf::Section* s = f->section_at(addr - e->mod.bias);
    return s != nullptr && std::string_view(s->name).substr(0, 4) == ".plt";
}

// The implementation an IFUNC symbol resolved to in this process (DESIGN §6), never the
// resolver: calling the resolver's address would return a pointer instead of doing the work.
std::uint64_t SymbolScope::Impl::ifunc_impl(Entry& def, const Symbol& s) {
    const std::uint64_t resolver = runtime(def, s);
    auto plausible = [&](std::optional<std::uint64_t> v) { return v && *v != 0 && *v != resolver; };

    // (a) The defining module's own IRELATIVE slots: ld.so applies them eagerly at start-up
    // (lazy binding never applies to them), with the resolver's address as the addend.
    // glibc calls its own string functions through such slots, so strlen/memcpy/strcmp are
    // found here without any other module having to use them.
    if (auto a = arch_of(def)) {
        for (const DynReloc& r : relocations(def)) {
            if (arch::classify_reloc(*a, r.type) != arch::RelocKind::IRelative ||
                static_cast<std::uint64_t>(r.addend) != s.value)
                continue;
            auto v = peek_u64(mem, def.mod.bias + r.offset);
            if (plausible(v)) return *v;
        }
    }
    // (b) A GOT slot any module holds for this symbol (same version) that ld.so has already
    // bound: non-zero and not pointing at a PLT stub -- a lazily bound JUMP_SLOT still points
    // into its own .plt, and a non-PIE executable's canonical PLT entry is not the code either.
    // Slow path (rarely taken): it needs reloc symbol names and section bounds, so it
    // parses files in full.
    auto scan = [&](Entry& e) -> std::optional<std::uint64_t> {
        const ElfFile* f = nullptr;
        try {
            consult(e);
            f = &open_full(e);
        } catch (const Error&) {
            return std::nullopt; // another module's unreadable file does not decide this symbol
        }
        auto a = f->arch();
        if (!a) return std::nullopt;
        for (const elf::Reloc& r : f->relocations()) {
            const arch::RelocKind k = arch::classify_reloc(*a, r.type);
            if ((k != arch::RelocKind::GlobDat && k != arch::RelocKind::JumpSlot) ||
                r.symbol == nullptr || r.symbol->name != s.name)
                continue;
            const bool same_version =
                r.symbol->version == s.version || (r.symbol->version.empty() && !s.version_hidden);
            if (!same_version) continue;
            auto v = peek_u64(mem, e.mod.bias + r.offset);
            if (plausible(v) && !in_plt(*v)) return v;
        }
        return std::nullopt;
    };
    for (Entry* e : order)
        if (auto v = scan(*e)) return *v;
    for (Entry& e : entries)
        if (std::find(order.begin(), order.end(), &e) == order.end())
            if (auto v = scan(e)) return *v;
    throw Error(
        ErrorCode::NotEligible,
        fmt::format(
            "cannot tell which implementation of IFUNC '{}' the process uses ({} defines it; "
            "no IRELATIVE slot of its resolver and no bound GOT slot for it in process {})",
            display_name(s.name, s.version), def.mod.path, mem.pid()));
}

SymbolScope::SymbolScope(const proc::Memory& mem, std::vector<proc::Module> modules)
    : impl_(std::make_unique<Impl>(mem)) {
    for (proc::Module& m : modules)
        impl_->entries.push_back(Entry{std::move(m), false, nullptr, nullptr, {}, std::nullopt});
    impl_->given = impl_->entries.size();
    impl_->compute_order();
}

SymbolScope::~SymbolScope() = default;

std::vector<const proc::Module*> SymbolScope::load_order() const {
    std::vector<const proc::Module*> out;
    for (const Entry* e : impl_->order)
        out.push_back(&e->mod);
    return out;
}

bool SymbolScope::uses_link_map() const {
    return impl_->link_map;
}

std::size_t SymbolScope::parsed_modules() const {
    return impl_->parsed;
}

std::uint64_t SymbolScope::resolve(const package::Undefined& sym_in, const package::Manifest& m,
                                   const std::vector<const proc::Module*>& target_modules) {
    package::Undefined sym = sym_in;
    if (sym.provider.empty()) {
        sym.provider = "process";
        for (const package::Undefined& u : m.undefined)
            if (u.name == sym.name) {
                sym.provider = u.provider;
                break;
            }
    }
    const std::string shown = display_name(sym.name, sym.version);

    // 1) Resolved at pack time: a non-exported symbol of a target module.
    if (sym.provider.rfind("target:", 0) == 0) {
        const std::string digits = sym.provider.substr(7);
        std::size_t n = 0;
        bool ok = !digits.empty() && digits.size() <= 6;
        for (char c : digits) {
            ok = ok && c >= '0' && c <= '9';
            if (ok) n = n * 10 + static_cast<std::size_t>(c - '0');
        }
        if (!ok || n >= m.targets.size())
            throw Error(ErrorCode::BadPackage,
                        fmt::format("manifest: undefined '{}' has provider '{}', which "
                                    "names no target",
                                    shown, sym.provider));
        if (n >= target_modules.size() || target_modules[n] == nullptr)
            throw Error(
                ErrorCode::Internal,
                fmt::format("no process module given for manifest target {} (needed for '{}')", n,
                            shown));
        for (const package::LocalSymbol& l : m.targets[n].local_symbols)
            if (l.name == sym.name) return target_modules[n]->bias + l.address;
        throw Error(ErrorCode::BadPackage,
                    fmt::format("manifest: undefined '{}' has provider '{}' but "
                                "targets[{}].local_symbols has no entry for it",
                                shown, sym.provider, n));
    }
    if (sym.provider != "process")
        throw Error(ErrorCode::BadPackage,
                    fmt::format("manifest: undefined '{}' has the unknown provider '{}'", shown,
                                sym.provider));

    auto found = [&](Entry& e, const Symbol& s) {
        return s.type == elf::STT_GNU_IFUNC ? impl_->ifunc_impl(e, s) : impl_->runtime(e, s);
    };
    // 2) The target modules' own dynamic symbols, in manifest order.
    for (const proc::Module* tm : target_modules) {
        if (tm == nullptr) continue;
        Entry& e = impl_->entry_for(*tm);
        if (auto s = impl_->find_in(e, sym.name, sym.version)) return found(e, *s);
    }
    // 3) The global scope in load order: the first definition wins, as in ld.so.
    for (Entry* e : impl_->order)
        if (auto s = impl_->find_in(*e, sym.name, sym.version)) return found(*e, *s);

    if (sym.weak) return 0; // an undefined weak reference is null, as ld.so makes it
    throw Error(ErrorCode::NotEligible,
                fmt::format("symbol '{}' needed by the payload is not defined in process {}", shown,
                            impl_->mem.pid()));
}

} // namespace hp::loader
