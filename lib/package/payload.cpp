#include "package/payload.hpp"

#include "arch/reloc.hpp"

#include <algorithm>
#include <fmt/format.h>
#include <limits>
#include <set>
#include <unordered_map>

namespace hp::package {

using namespace hp::elf;

namespace {

[[noreturn]] void refuse(const ElfFile& f, const std::string& what) {
    throw Error(ErrorCode::Unsupported, printable(fmt::format("{}: {}", f.name(), what)));
}

// Names reserved to the toolchain (crt files, the linker): their objects exist in every
// module and are not the patch author's data.
bool toolchain_name(const std::string& n) {
    if (n.size() >= 2 && n[0] == '_' && (n[1] == '_' || (n[1] >= 'A' && n[1] <= 'Z'))) return true;
    return n == "completed.0" || n.rfind("completed.", 0) == 0 || n == "_DYNAMIC" ||
           n == "_GLOBAL_OFFSET_TABLE_" || n == "_edata" || n == "_end";
}

// The address an 8-byte slot at `vaddr` will hold after relocation (for .init_array
// entries); `r` is the first relocation of that slot, if any.
std::optional<std::uint64_t> slot_value(const ElfFile& f, std::uint64_t vaddr, const Reloc* r) {
    if (r != nullptr) {
        auto kind = arch::classify_reloc(*f.arch(), r->type);
        if (kind == arch::RelocKind::Relative) return static_cast<std::uint64_t>(r->addend);
        if (kind == arch::RelocKind::Absolute64 && r->symbol && r->symbol->defined())
            return r->symbol->value + static_cast<std::uint64_t>(r->addend);
        return std::nullopt;
    }
    if (auto b = f.read_vaddr(vaddr, 8)) return load_le64(b->data());
    return std::nullopt;
}

void check_constructors(const ElfFile& f) {
    std::uint64_t init = 0, initsz = 0, preinitsz = 0;
    for (auto [tag, val] : f.dynamic()) {
        if (tag == DT_INIT_ARRAY) init = val;
        if (tag == DT_INIT_ARRAYSZ) initsz = val;
        if (tag == DT_PREINIT_ARRAYSZ) preinitsz = val;
    }
    if (initsz == 0)
        if (const Section* s = f.section(".init_array")) init = s->addr, initsz = s->size;
    if (preinitsz != 0 || (f.section(".preinit_array") && f.section(".preinit_array")->size))
        refuse(f, "has a .preinit_array: payload constructors would never run");
    if (initsz > 4096 * 8) refuse(f, fmt::format(".init_array of {} bytes", initsz));
    // One pass over the relocations and one over the symbols serve every entry (not one
    // per entry: 4096 entries x 4M relocations and 8M symbols in a hostile payload).
    const std::uint64_t n = initsz / 8;
    std::vector<const Reloc*> slot_reloc(n, nullptr); // the first relocation of each slot
    for (const Reloc& r : f.relocations())
        if (std::uint64_t d = r.offset - init;
            d % 8 == 0 && d / 8 < n && slot_reloc[d / 8] == nullptr)
            slot_reloc[d / 8] = &r;
    std::vector<std::optional<std::uint64_t>> targets(n);
    std::unordered_map<std::uint64_t, const std::string*> names; // address -> first function there
    for (std::uint64_t k = 0; k < n; ++k)
        if ((targets[k] = slot_value(f, init + 8 * k, slot_reloc[k])))
            names.emplace(*targets[k], nullptr);
    for (const auto* tab : {&f.symtab(), &f.dynsym()}) // .symtab first
        for (const Symbol& s : *tab)
            if (s.defined() && s.type == STT_FUNC)
                if (auto it = names.find(s.value); it != names.end() && it->second == nullptr)
                    it->second = &s.name;
    for (std::uint64_t off = 0; off + 8 <= initsz; off += 8) {
        const auto& target = targets[off / 8];
        std::string name = target && names.at(*target) ? *names.at(*target) : std::string();
        // crtbeginS.o registers frame_dummy in every gcc-linked shared object; it only sets
        // up transactional-memory clones and is harmless to skip.
        if (name == "frame_dummy") continue;
        if (name.empty())
            refuse(f,
                   fmt::format(
                       ".init_array entry at {} has no symbol name: a constructor (or a stripped "
                       "payload, where crt's frame_dummy cannot be told apart; do not strip it) "
                       "would never run",
                       hex_addr(init + off)));
        refuse(f,
               fmt::format(
                   "has a constructor '{}' (.init_array entry at {}): payload constructors would "
                   "never run; initialise in the replacement functions instead",
                   name, hex_addr(init + off)));
    }
    if (const Section* s = f.section(".ctors"); s && s->type != SHT_NOBITS) {
        ByteView d = f.section_data(*s);
        for (std::size_t i = 0; i + 8 <= d.size(); i += 8) {
            std::uint64_t v = load_le64(d.data() + i);
            if (v != 0 && v != ~std::uint64_t{0})
                refuse(f, "has a .ctors constructor: payload constructors would never run");
        }
    }
}

} // namespace

void check_payload(const ElfFile& f, arch::Arch a) {
    if (f.type() != ET_DYN)
        refuse(f, "is not a shared object (build the patch with -shared -fPIC)");
    auto fa = f.arch();
    if (!fa)
        refuse(f, fmt::format("has ELF machine {}, not a supported architecture", f.machine()));
    if (*fa != a)
        refuse(f, fmt::format("is built for {}, the package is for {}", arch::name(*fa),
                              arch::name(a)));
    // The first thread-local symbol names the variable in the refusals below (a payload
    // with TLS has a PT_TLS segment, found first; a stripped one has no name for it).
    const Symbol* tls = nullptr;
    for (const auto* tab : {&f.symtab(), &f.dynsym()})
        for (const Symbol& s : *tab)
            if (s.type == STT_TLS && !s.name.empty() && tls == nullptr) tls = &s;
    bool has_load = false;
    for (const Segment& s : f.segments()) {
        if (s.type == PT_TLS)
            refuse(f, tls != nullptr
                          ? fmt::format("has a TLS segment for the thread-local variable '{}' "
                                        "(thread-local variables are not supported)",
                                        tls->name)
                          : "has a TLS segment (thread-local variables are not supported)");
        if (s.type == PT_LOAD) has_load = true;
        if (s.type == PT_LOAD && (s.flags & PF_W) && (s.flags & PF_X))
            refuse(f,
                   fmt::format("has a writable and executable segment at {}", hex_addr(s.vaddr)));
    }
    if (!has_load) refuse(f, "has no loadable segment");
    if (tls != nullptr)
        refuse(f,
               fmt::format("uses the thread-local symbol '{}' (TLS is not supported)", tls->name));
    for (const auto* tab : {&f.dynsym(), &f.symtab()})
        for (const Symbol& s : *tab) {
            if (s.type == STT_GNU_IFUNC && s.defined())
                refuse(f, fmt::format("defines the IFUNC '{}' (not supported)", s.name));
        }
    for (auto [tag, val] : f.dynamic()) {
        (void)val;
        if (tag == DT_TEXTREL) refuse(f, "has text relocations (build with -fPIC)");
        if (tag == DT_FLAGS && (val & 0x4 /*DF_TEXTREL*/))
            refuse(f, "has text relocations (build with -fPIC)");
    }
    // Loadable ranges sorted by start, each with the furthest end reached so far: the 8
    // bytes [r, r + 8) of a relocation lie in one segment iff some segment that starts at
    // or before r ends at or after r + 8. (Not one pass over all segments per relocation:
    // up to 4M relocations x 65535 program headers in a hostile payload.)
    std::vector<std::pair<std::uint64_t, std::uint64_t>> loads; // (p_vaddr, furthest end so far)
    for (const Segment& s : f.segments())
        if (s.type == PT_LOAD)
            loads.emplace_back(s.vaddr, s.vaddr + s.memsz); // no wrap: checked at parse
    std::sort(loads.begin(), loads.end());
    for (std::size_t i = 1; i < loads.size(); ++i)
        loads[i].second = std::max(loads[i].second, loads[i - 1].second);
    auto in_load = [&](std::uint64_t addr) {
        if (addr > std::numeric_limits<std::uint64_t>::max() - 8) return false;
        auto it = std::upper_bound(loads.begin(), loads.end(), addr,
                                   [](std::uint64_t v, const auto& l) { return v < l.first; });
        return it != loads.begin() && std::prev(it)->second >= addr + 8;
    };
    for (const Reloc& r : f.relocations()) {
        auto kind = arch::classify_reloc(a, r.type);
        std::string where =
            fmt::format("{} at {}", arch::reloc_name(a, r.type), hex_addr(r.offset));
        if (r.symbol != nullptr && !r.symbol->name.empty())
            where += fmt::format(" against '{}'", r.symbol->name);
        switch (kind) {
        case arch::RelocKind::Tls:
            refuse(f, fmt::format(
                          "has the TLS relocation {} (thread-local variables are not supported)",
                          where));
        case arch::RelocKind::IRelative:
            refuse(f, fmt::format("has the IFUNC relocation {}", where));
        case arch::RelocKind::Copy:
            refuse(f, fmt::format("has a copy relocation {}", where));
        case arch::RelocKind::Unsupported:
            refuse(f,
                   fmt::format(
                       "has the relocation {} ({}), which the loader does not apply; supported: {}",
                       where, r.section, arch::supported_relocs(a)));
        default:
            break;
        }
        // Every relocation must land inside a loaded segment.
        if (!in_load(r.offset))
            refuse(f, fmt::format("relocation {} lies outside every loadable segment", where));
    }
    check_constructors(f);
}

std::vector<PayloadUndefined> payload_undefined(const ElfFile& f) {
    std::vector<PayloadUndefined> out;
    std::set<std::string> seen;
    for (const Symbol& s : f.dynsym()) {
        if (s.defined() || s.name.empty()) continue;
        if (!seen.insert(s.name).second) continue;
        out.push_back({s.name, s.version, s.bind == STB_WEAK, s.type});
    }
    return out;
}

const Symbol* find_payload_function(const ElfFile& f, const std::string& name,
                                    const Symbol** not_function) {
    for (const auto* tab : {&f.dynsym(), &f.symtab()})
        for (const Symbol& s : *tab) {
            if (s.name != name || !s.defined()) continue;
            if (s.type == STT_FUNC) return &s;
            if (not_function != nullptr) *not_function = &s;
        }
    return nullptr;
}

std::unordered_map<std::string_view, const Symbol*>
find_payload_functions(const ElfFile& f, const std::vector<std::string_view>& names) {
    std::unordered_map<std::string_view, const Symbol*> out;
    for (std::string_view n : names)
        out.emplace(n, nullptr);
    for (const auto* tab : {&f.dynsym(), &f.symtab()})
        for (const Symbol& s : *tab)
            if (s.defined() && s.type == STT_FUNC)
                if (auto it = out.find(s.name); it != out.end() && it->second == nullptr)
                    it->second = &s;
    return out;
}

std::vector<const Symbol*> payload_data_objects(const ElfFile& f) {
    std::vector<const Symbol*> out;
    std::set<std::string> seen;
    for (const auto* tab : {&f.dynsym(), &f.symtab()})
        for (const Symbol& s : *tab)
            if (s.defined() && s.type == STT_OBJECT && !toolchain_name(s.name) &&
                seen.insert(s.name).second)
                out.push_back(&s);
    return out;
}

void check_payload_against_manifest(ByteView payload, const Manifest& m) {
    ElfFile f =
        ElfFile::parse(Bytes(payload.begin(), payload.end()), "payload", ErrorCode::BadPackage);
    check_payload(f, m.arch);
    auto bad = [](const std::string& what) { throw Error(ErrorCode::BadPackage, printable(what)); };
    // Looked up once per function: indexed here, not searched (up to 100 000 functions x
    // 65535 program headers or 8M symbols in a hostile package).
    std::vector<std::pair<std::uint64_t, std::uint64_t>>
        code; // (p_vaddr, furthest file end so far)
    for (const Segment& s : f.segments())
        if (s.type == PT_LOAD && (s.flags & PF_X))
            code.emplace_back(s.vaddr, s.vaddr + s.filesz); // no wrap
    std::sort(code.begin(), code.end());
    for (std::size_t i = 1; i < code.size(); ++i)
        code[i].second = std::max(code[i].second, code[i - 1].second);
    std::vector<std::string_view> wanted;
    for (const Target& t : m.targets)
        for (const Function& fn : t.functions)
            wanted.push_back(fn.replacement);
    const auto replacement = find_payload_functions(f, wanted);
    for (std::size_t t = 0; t < m.targets.size(); ++t)
        for (std::size_t i = 0; i < m.targets[t].functions.size(); ++i) {
            const Function& fn = m.targets[t].functions[i];
            auto it = std::upper_bound(code.begin(), code.end(), fn.replacement_address,
                                       [](std::uint64_t v, const auto& c) { return v < c.first; });
            bool in_code = it != code.begin() && std::prev(it)->second > fn.replacement_address;
            if (!in_code)
                bad(fmt::format(
                    "manifest: targets[{}].functions[{}].replacement_address {} is not in an "
                    "executable segment of the payload",
                    t, i, hex_addr(fn.replacement_address)));
            if (const Symbol* s = replacement.at(fn.replacement);
                s && s->value != fn.replacement_address)
                bad(fmt::format("manifest: targets[{}].functions[{}]: replacement '{}' is at {} in "
                                "the payload, "
                                "not {}",
                                t, i, fn.replacement, hex_addr(s->value),
                                hex_addr(fn.replacement_address)));
        }
    std::set<std::string> listed;
    for (const Undefined& u : m.undefined)
        listed.insert(u.name);
    for (const PayloadUndefined& u : payload_undefined(f))
        if (!listed.count(u.name))
            bad(fmt::format(
                "manifest: undefined: the payload needs '{}', which the manifest does not list",
                u.name));
}

} // namespace hp::package
