// Symbol resolution against a live process (DESIGN §6): which module's definition the
// payload binds to, in the order the dynamic loader itself would use, and which
// implementation of an IFUNC the process really runs.
//
// Two sources of truth, each used for what it is good at:
//  - the target's memory, for what ld.so decided at run time: the link_map chain (load
//    order) and the GOT slots it filled (IFUNC implementations);
//  - the mapped files (through /proc/PID/map_files), for static facts: dynamic symbols,
//    versions, relocation tables, section bounds.
// Everything read from the target is treated as hostile: a process can hold any bytes at
// the addresses we follow, so every chain is capped, every read is fallible, and garbage
// sends us to the fallback order instead of into a loop or a crash.
#include "loader/loader.hpp"

#include "arch/reloc.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <deque>
#include <fmt/format.h>
#include <optional>
#include <string_view>
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

constexpr std::int64_t DT_DEBUG = 21;
constexpr int RT_CONSISTENT = 0;

std::optional<std::uint64_t> peek_u64(const proc::Memory& mem, std::uint64_t addr) {
    std::uint8_t b[8];
    if (!mem.read_fallible(addr, b, sizeof b)) return std::nullopt;
    return load_le64(b);
}

// A NUL-terminated string of at most `cap` bytes, read page by page; nullopt when
// unreadable or unterminated within the cap.
std::optional<std::string> read_cstring(const proc::Memory& mem, std::uint64_t addr, std::size_t cap) {
    std::string out;
    std::array<std::uint8_t, kReadPage> buf;
    while (out.size() < cap) {
        const std::size_t chunk = static_cast<std::size_t>(
            std::min<std::uint64_t>(kReadPage - addr % kReadPage, cap - out.size()));
        if (addr + chunk < addr || !mem.read_fallible(addr, buf.data(), chunk)) return std::nullopt;
        if (const void* nul = std::memchr(buf.data(), 0, chunk)) {
            out.append(reinterpret_cast<const char*>(buf.data()),
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
    case elf::STT_GNU_IFUNC: return true;
    default: return false;
    }
}

// One module of the process and, once consulted, its parsed file.
struct Entry {
    proc::Module mod;
    std::unique_ptr<ElfFile> file;
    // name -> bindable dynsym entries; keys view the names inside `file`, which is heap
    // allocated and never modified, so they stay valid.
    std::unordered_map<std::string_view, std::vector<const Symbol*>> exports;
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

    Entry& open(Entry& e) {
        if (e.file) return e;
        try {
            e.file = std::make_unique<ElfFile>(proc::open_module(e.mod));
        } catch (const Error& err) {
            throw Error(err.code(), fmt::format("reading the symbols of {} in process {}: {}", e.mod.path,
                                                mem.pid(), err.what()));
        }
        ++parsed;
        for (const Symbol& s : e.file->dynsym())
            if (bindable(s)) e.exports[s.name].push_back(&s);
        return e;
    }

    // The entry for a module the caller holds (a target module), matched by identity of
    // mapping; a module we were not given gets an entry of its own.
    Entry& entry_for(const proc::Module& m) {
        for (Entry& e : entries)
            if (e.mod.start == m.start && e.mod.bias == m.bias && e.mod.path == m.path) return e;
        entries.push_back(Entry{m, nullptr, {}});
        return entries.back();
    }

    Entry* entry_containing(std::uint64_t addr) {
        for (Entry& e : entries)
            if (addr >= e.mod.start && addr < e.mod.end) return &e;
        return nullptr;
    }

    std::uint64_t runtime(const Entry& e, const Symbol& s) const {
        // SHN_ABS values are absolute (glibc >= 2.28 agrees); everything else moves with the module.
        return s.shndx == elf::SHN_ABS ? s.value : e.mod.bias + s.value;
    }

    // The module's best definition for (name, version), if any.
    const Symbol* find_in(Entry& e, const std::string& name, const std::string& version) {
        open(e);
        auto it = e.exports.find(name);
        if (it == e.exports.end()) return nullptr;
        const Symbol* fallback = nullptr;
        for (const Symbol* s : it->second) {
            Match mt = version_match(*s, version);
            if (mt == Match::Exact) return s;
            if (mt == Match::Fallback && fallback == nullptr) fallback = s;
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
    if (mem.read_fallible(exe.start, eh, sizeof eh) && std::memcmp(eh, "\x7f" "ELF", 4) == 0 && eh[4] == 2 &&
        load_le16(eh + 54) == 56) {
        const std::uint64_t phoff = load_le64(eh + 32);
        const std::size_t phnum = std::min<std::size_t>(load_le16(eh + 56), kMaxPhdrs);
        Bytes ph(phnum * 56);
        if (phoff < (std::uint64_t{1} << 20) && mem.read_fallible(exe.start + phoff, ph.data(), ph.size())) {
            for (std::size_t i = 0; i < phnum; ++i) {
                const std::uint8_t* p = ph.data() + i * 56;
                if (load_le32(p) != elf::PT_DYNAMIC) continue;
                const std::uint64_t dyn = exe.bias + load_le64(p + 16);
                const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(load_le64(p + 40) / 16, kMaxDynamic));
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
            if (const Symbol* s = find_in(entries[i], "_r_debug", "")) return runtime(entries[i], *s);
        } catch (const Error&) {
            // An unreadable loader file only costs us the link_map order.
        }
    }
    return std::nullopt;
}

// struct r_debug { int r_version; struct link_map* r_map; ElfW(Addr) r_brk; int r_state; ... }
// struct link_map { ElfW(Addr) l_addr; char* l_name; ElfW(Dyn)* l_ld; link_map* l_next, *l_prev; }
// (the public prefix of glibc's link_map, <link.h>; the same on x86-64 and ARM64).
std::optional<std::vector<Entry*>> SymbolScope::Impl::walk_link_map(std::uint64_t rd, bool& consistent) {
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
        const std::uint64_t l_addr = load_le64(lm), l_name = load_le64(lm + 8), l_ld = load_le64(lm + 16),
                            l_next = load_le64(lm + 24), l_prev = load_le64(lm + 32);
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
        if (match != nullptr && std::find(out.begin(), out.end(), match) == out.end()) out.push_back(match);
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
    for (std::size_t i = 0; i < given; ++i) order.push_back(&entries[i]);
}

bool SymbolScope::Impl::in_plt(std::uint64_t addr) {
    Entry* e = entry_containing(addr);
    if (e == nullptr) return false;
    try {
        open(*e);
    } catch (const Error&) {
        return false;
    }
    const elf::Section* s = e->file->section_at(addr - e->mod.bias);
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
    if (auto a = def.file->arch()) {
        for (const elf::Reloc& r : def.file->relocations()) {
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
    auto scan = [&](Entry& e) -> std::optional<std::uint64_t> {
        try {
            open(e);
        } catch (const Error&) {
            return std::nullopt; // another module's unreadable file does not decide this symbol
        }
        auto a = e.file->arch();
        if (!a) return std::nullopt;
        for (const elf::Reloc& r : e.file->relocations()) {
            const arch::RelocKind k = arch::classify_reloc(*a, r.type);
            if ((k != arch::RelocKind::GlobDat && k != arch::RelocKind::JumpSlot) || r.symbol == nullptr ||
                r.symbol->name != s.name)
                continue;
            const bool same_version = r.symbol->version == s.version ||
                                      (r.symbol->version.empty() && !s.version_hidden);
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
    throw Error(ErrorCode::NotEligible,
                fmt::format("cannot tell which implementation of IFUNC '{}' the process uses ({} defines it; "
                            "no IRELATIVE slot of its resolver and no bound GOT slot for it in process {})",
                            display_name(s.name, s.version), def.mod.path, mem.pid()));
}

SymbolScope::SymbolScope(const proc::Memory& mem, std::vector<proc::Module> modules)
    : impl_(std::make_unique<Impl>(mem)) {
    for (proc::Module& m : modules) impl_->entries.push_back(Entry{std::move(m), nullptr, {}});
    impl_->given = impl_->entries.size();
    impl_->compute_order();
}

SymbolScope::~SymbolScope() = default;

std::vector<const proc::Module*> SymbolScope::load_order() const {
    std::vector<const proc::Module*> out;
    for (const Entry* e : impl_->order) out.push_back(&e->mod);
    return out;
}

bool SymbolScope::uses_link_map() const { return impl_->link_map; }

std::size_t SymbolScope::parsed_modules() const { return impl_->parsed; }

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
            throw Error(ErrorCode::BadPackage, fmt::format("manifest: undefined '{}' has provider '{}', which "
                                                           "names no target",
                                                           shown, sym.provider));
        if (n >= target_modules.size() || target_modules[n] == nullptr)
            throw Error(ErrorCode::Internal,
                        fmt::format("no process module given for manifest target {} (needed for '{}')", n, shown));
        for (const package::LocalSymbol& l : m.targets[n].local_symbols)
            if (l.name == sym.name) return target_modules[n]->bias + l.address;
        throw Error(ErrorCode::BadPackage, fmt::format("manifest: undefined '{}' has provider '{}' but "
                                                       "targets[{}].local_symbols has no entry for it",
                                                       shown, sym.provider, n));
    }
    if (sym.provider != "process")
        throw Error(ErrorCode::BadPackage,
                    fmt::format("manifest: undefined '{}' has the unknown provider '{}'", shown, sym.provider));

    auto found = [&](Entry& e, const Symbol& s) {
        return s.type == elf::STT_GNU_IFUNC ? impl_->ifunc_impl(e, s) : impl_->runtime(e, s);
    };
    // 2) The target modules' own dynamic symbols, in manifest order.
    for (const proc::Module* tm : target_modules) {
        if (tm == nullptr) continue;
        Entry& e = impl_->entry_for(*tm);
        if (const Symbol* s = impl_->find_in(e, sym.name, sym.version)) return found(e, *s);
    }
    // 3) The global scope in load order: the first definition wins, as in ld.so.
    for (Entry* e : impl_->order)
        if (const Symbol* s = impl_->find_in(*e, sym.name, sym.version)) return found(*e, *s);

    if (sym.weak) return 0; // an undefined weak reference is null, as ld.so makes it
    throw Error(ErrorCode::NotEligible, fmt::format("symbol '{}' needed by the payload is not defined in process {}",
                                                    shown, impl_->mem.pid()));
}

} // namespace hp::loader
