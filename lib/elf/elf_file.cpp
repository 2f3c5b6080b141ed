#include "elf/elf_file.hpp"

#include "common/file.hpp"

#include <cstring>
#include <fmt/format.h>

namespace hp::elf {

namespace {

constexpr std::size_t kEhdrSize = 64, kShdrSize = 64, kPhdrSize = 56, kSymSize = 24, kRelaSize = 24,
                      kDynSize = 16;
constexpr std::uint32_t NT_GNU_BUILD_ID = 3;
// Hostile-input limits: far above anything a real patch or binary has.
constexpr std::size_t kMaxSymbols = 4'000'000;
constexpr std::size_t kMaxRelocs = 4'000'000;
// Total bytes of names (section, symbol, version, DT_NEEDED) a file may make us copy out:
// real files stay near the size of their string tables, far below this.
constexpr std::uint64_t kStringBudgetBase = std::uint64_t{64} << 20;

bool add_overflows(std::uint64_t a, std::uint64_t b) {
    return a + b < a;
}

} // namespace

std::string printable(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size();) {
        const auto c = static_cast<unsigned char>(s[i]);
        // Well-formed UTF-8 only, and not C0/C1 controls or DEL (C1: U+0080..U+009F, which
        // UTF-8 spells c2 80 .. c2 9f).
        std::size_t n = utf8_sequence_length(s, i);
        if (c < 0x20 || c == 0x7f ||
            (c == 0xc2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) < 0xa0))
            n = 0;
        if (n == 0) {
            out += fmt::format("\\x{:02x}", c);
            ++i;
        } else {
            out.append(s.substr(i, n));
            i += n;
        }
    }
    return out;
}

Symbol decode_symbol(const std::uint8_t* p, bool dynamic) {
    Symbol sym;
    sym.type = p[4] & 0xf;
    sym.bind = p[4] >> 4;
    sym.visibility = p[5] & 3;
    sym.shndx = load_le16(p + 6);
    sym.value = load_le64(p + 8);
    sym.size = load_le64(p + 16);
    sym.dynamic = dynamic;
    return sym;
}

void ElfFile::bad(const std::string& what) const {
    // Messages quote names from the file: printable() keeps them safe to print and to put
    // in a JSON document (nlohmann::json refuses to serialise invalid UTF-8).
    throw Error(bad_code_, printable(fmt::format("{}: malformed ELF: {}", name_, what)));
}

ByteView ElfFile::slice(std::uint64_t off, std::uint64_t size, const char* what) const {
    if (add_overflows(off, size) || off + size > data_.size())
        bad(fmt::format("{} at file offset {:#x} size {:#x} lies outside the file ({:#x} bytes)",
                        what, off, size, data_.size()));
    return ByteView(data_.data() + off, size);
}

std::string ElfFile::string_at(const Section& strtab, std::uint64_t off, const char* what) const {
    ByteView s = section_data(strtab);
    if (off >= s.size())
        bad(fmt::format("{} name offset {:#x} outside string table {} ({:#x} bytes)", what, off,
                        strtab.name, s.size()));
    const void* nul = std::memchr(s.data() + off, 0, s.size() - off);
    if (nul == nullptr)
        bad(fmt::format("{} name at offset {:#x} of {} is not terminated", what, off, strtab.name));
    const std::size_t len = static_cast<const std::uint8_t*>(nul) - (s.data() + off);
    string_bytes_ += len + 1;
    if (string_bytes_ > kStringBudgetBase + 2 * std::uint64_t{data_.size()})
        bad(fmt::format(
            "names total more than {:#x} bytes ({} name at offset {:#x} of {}): string table "
            "offsets are reused beyond any real file",
            kStringBudgetBase + 2 * std::uint64_t{data_.size()}, what, off, strtab.name));
    return std::string(reinterpret_cast<const char*>(s.data() + off), len);
}

ByteView ElfFile::section_data(const Section& s) const {
    if (s.type == SHT_NOBITS || s.type == SHT_NULL) return {};
    return slice(s.offset, s.size, "section");
}

ElfFile ElfFile::open(const std::string& path, ErrorCode bad_code) {
    return parse(read_file(path), path, bad_code);
}

ElfFile ElfFile::parse(Bytes data, std::string name, ErrorCode bad_code) {
    ElfFile f;
    f.name_ = std::move(name);
    f.data_ = std::move(data);
    f.bad_code_ = bad_code;
    f.parse_all();
    return f;
}

void ElfFile::parse_all() {
    if (data_.size() < kEhdrSize || std::memcmp(data_.data(),
                                                "\x7f"
                                                "ELF",
                                                4) != 0)
        bad("not an ELF file (no \\x7fELF magic at offset 0)");
    const std::uint8_t* h = data_.data();
    if (h[4] != 2) bad("not a 64-bit ELF file (EI_CLASS at offset 4)");
    if (h[5] != 1) bad("not little-endian (EI_DATA at offset 5)");
    type_ = load_le16(h + 16);
    machine_ = load_le16(h + 18);
    std::uint64_t phoff = load_le64(h + 32), shoff = load_le64(h + 40);
    std::uint16_t phentsize = load_le16(h + 54), phnum = load_le16(h + 56);
    std::uint16_t shentsize = load_le16(h + 58), shnum = load_le16(h + 60);
    std::uint16_t shstrndx = load_le16(h + 62);

    if (phnum != 0) {
        if (phentsize != kPhdrSize)
            bad(fmt::format("e_phentsize {} at offset 54 is not 56", phentsize));
        ByteView ph = slice(phoff, std::uint64_t{phnum} * kPhdrSize, "program header table");
        for (std::size_t i = 0; i < phnum; ++i) {
            const std::uint8_t* p = ph.data() + i * kPhdrSize;
            Segment s;
            s.type = load_le32(p);
            s.flags = load_le32(p + 4);
            s.offset = load_le64(p + 8);
            s.vaddr = load_le64(p + 16);
            s.filesz = load_le64(p + 32);
            s.memsz = load_le64(p + 40);
            s.align = load_le64(p + 48);
            if (s.type == PT_LOAD || s.type == PT_DYNAMIC || s.type == PT_NOTE) {
                slice(s.offset, s.filesz, fmt::format("segment {}", i).c_str());
                if (s.memsz < s.filesz)
                    bad(fmt::format("segment {} has p_memsz {:#x} < p_filesz {:#x}", i, s.memsz,
                                    s.filesz));
                if (add_overflows(s.vaddr, s.memsz))
                    bad(fmt::format("segment {} wraps the address space", i));
            }
            segments_.push_back(s);
        }
    }

    if (shnum != 0) {
        if (shentsize != kShdrSize)
            bad(fmt::format("e_shentsize {} at offset 58 is not 64", shentsize));
        ByteView sh = slice(shoff, std::uint64_t{shnum} * kShdrSize, "section header table");
        std::vector<std::uint32_t> name_offs;
        for (std::size_t i = 0; i < shnum; ++i) {
            const std::uint8_t* p = sh.data() + i * kShdrSize;
            Section s;
            name_offs.push_back(load_le32(p));
            s.type = load_le32(p + 4);
            s.flags = load_le64(p + 8);
            s.addr = load_le64(p + 16);
            s.offset = load_le64(p + 24);
            s.size = load_le64(p + 32);
            s.link = load_le32(p + 40);
            s.info = load_le32(p + 44);
            s.addralign = load_le64(p + 48);
            s.entsize = load_le64(p + 56);
            if (s.type != SHT_NOBITS && s.type != SHT_NULL)
                slice(s.offset, s.size, fmt::format("section {}", i).c_str());
            sections_.push_back(s);
        }
        if (shstrndx != 0) {
            if (shstrndx >= sections_.size())
                bad(fmt::format("e_shstrndx {} at offset 62 is not a section", shstrndx));
            Section names = sections_[shstrndx];
            names.name = ".shstrtab";
            for (std::size_t i = 0; i < sections_.size(); ++i)
                sections_[i].name = string_at(names, name_offs[i], "section");
        }
    }

    for (const Section& s : sections_) {
        if (s.type == SHT_DYNSYM) parse_symbols(s, dynsym_, true);
        if (s.type == SHT_SYMTAB) parse_symbols(s, symtab_, false);
    }
    parse_versions();
    parse_notes();
    parse_dynamic();
    parse_relocations();
}

void ElfFile::parse_symbols(const Section& s, std::vector<Symbol>& out, bool dynamic) {
    if (!out.empty()) bad(fmt::format("more than one {} section", dynamic ? "dynsym" : "symtab"));
    if (s.link >= sections_.size())
        bad(fmt::format("symbol table {} links to string table {} which does not exist", s.name,
                        s.link));
    const Section& strtab = sections_[s.link];
    if (strtab.type != SHT_STRTAB)
        bad(fmt::format("symbol table {} links to section {} which is not a string table", s.name,
                        s.link));
    ByteView d = section_data(s);
    if (d.size() % kSymSize != 0)
        bad(fmt::format("symbol table {} size {:#x} is not a multiple of 24", s.name, d.size()));
    std::size_t n = d.size() / kSymSize;
    if (n > kMaxSymbols)
        bad(fmt::format("symbol table {} has {} entries (limit {})", s.name, n, kMaxSymbols));
    out.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
        const std::uint8_t* p = d.data() + i * kSymSize;
        Symbol sym = decode_symbol(p, dynamic);
        sym.name = string_at(strtab, load_le32(p), "symbol");
        out.push_back(std::move(sym));
    }
}

void ElfFile::parse_versions() {
    const Section* versym = nullptr;
    std::vector<std::string> names; // index -> version name
    auto set_name = [&](std::size_t idx, std::string n) {
        if (idx > 0xffff) return;
        if (names.size() <= idx) names.resize(idx + 1);
        names[idx] = std::move(n);
    };
    for (const Section& s : sections_) {
        if (s.type == SHT_GNU_versym) versym = &s;
        if (s.type != SHT_GNU_verneed && s.type != SHT_GNU_verdef) continue;
        if (s.link >= sections_.size())
            bad(fmt::format("{} links to a missing string table", s.name));
        const Section& strtab = sections_[s.link];
        ByteView d = section_data(s);
        std::uint64_t off = 0;
        // Both lists are chains of records linked by byte offsets; bound the walk by the
        // number of records that can fit so a cycle cannot loop forever.
        std::size_t guard = d.size() / 16 + 1;
        while (guard-- > 0) {
            if (add_overflows(off, 16) || off + 16 > d.size())
                bad(fmt::format("{} entry at offset {:#x} truncated", s.name, off));
            const std::uint8_t* p = d.data() + off;
            if (s.type == SHT_GNU_verneed) {
                std::uint16_t cnt = load_le16(p + 2);
                std::uint32_t aux = load_le32(p + 8), next = load_le32(p + 12);
                std::uint64_t aoff = off + aux;
                for (std::uint16_t j = 0; j < cnt; ++j) {
                    if (aoff + 16 > d.size() || aoff < off)
                        bad(fmt::format("{} aux entry at offset {:#x} truncated", s.name, aoff));
                    const std::uint8_t* a = d.data() + aoff;
                    set_name(load_le16(a + 6) & 0x7fff,
                             string_at(strtab, load_le32(a + 8), "version"));
                    std::uint32_t anext = load_le32(a + 12);
                    if (anext == 0) break;
                    aoff += anext;
                }
                if (next == 0) break;
                off += next;
            } else {
                if (off + 20 > d.size())
                    bad(fmt::format("{} entry at offset {:#x} truncated", s.name, off));
                std::uint16_t ndx = load_le16(p + 4), cnt = load_le16(p + 6);
                std::uint32_t aux = load_le32(p + 12), next = load_le32(p + 16);
                if (cnt > 0) {
                    std::uint64_t aoff = off + aux;
                    if (aoff + 8 > d.size())
                        bad(fmt::format("{} aux entry at offset {:#x} truncated", s.name, aoff));
                    set_name(ndx & 0x7fff,
                             string_at(strtab, load_le32(d.data() + aoff), "version"));
                }
                if (next == 0) break;
                off += next;
            }
        }
    }
    if (versym == nullptr || dynsym_.empty()) return;
    ByteView v = section_data(*versym);
    std::size_t n = std::min(v.size() / 2, dynsym_.size());
    for (std::size_t i = 0; i < n; ++i) {
        std::uint16_t x = load_le16(v.data() + 2 * i);
        std::uint16_t idx = x & 0x7fff;
        dynsym_[i].version_hidden = (x & 0x8000) != 0;
        if (idx >= 2 && idx < names.size()) dynsym_[i].version = names[idx];
    }
}

void ElfFile::parse_notes() {
    auto walk = [&](ByteView d) {
        std::uint64_t off = 0;
        while (off + 12 <= d.size()) {
            std::uint32_t namesz = load_le32(d.data() + off),
                          descsz = load_le32(d.data() + off + 4),
                          type = load_le32(d.data() + off + 8);
            std::uint64_t name_off = off + 12;
            std::uint64_t desc_off = name_off + ((std::uint64_t{namesz} + 3) & ~std::uint64_t{3});
            std::uint64_t end = desc_off + ((std::uint64_t{descsz} + 3) & ~std::uint64_t{3});
            if (desc_off + descsz > d.size()) return; // truncated note: ignore the rest
            if (type == NT_GNU_BUILD_ID && namesz == 4 &&
                std::memcmp(d.data() + name_off, "GNU", 4) == 0 && descsz > 0 && descsz <= 64) {
                build_id_ = to_hex(d.subspan(desc_off, descsz));
                return;
            }
            off = end;
        }
    };
    for (const Section& s : sections_)
        if (s.type == SHT_NOTE && !build_id_) walk(section_data(s));
    for (const Segment& s : segments_)
        if (s.type == PT_NOTE && !build_id_) walk(slice(s.offset, s.filesz, "note segment"));
}

void ElfFile::parse_dynamic() {
    ByteView d;
    if (const Section* s = section(".dynamic"); s != nullptr && s->type == SHT_DYNAMIC)
        d = section_data(*s);
    else
        for (const Segment& seg : segments_)
            if (seg.type == PT_DYNAMIC) d = slice(seg.offset, seg.filesz, "dynamic segment");
    for (std::size_t off = 0; off + kDynSize <= d.size(); off += kDynSize) {
        auto tag = static_cast<std::int64_t>(load_le64(d.data() + off));
        if (tag == DT_NULL) break;
        dynamic_.emplace_back(tag, load_le64(d.data() + off + 8));
    }
}

std::vector<std::string> ElfFile::needed() const {
    std::vector<std::string> out;
    const Section* dynstr = section(".dynstr");
    if (dynstr == nullptr) return out;
    for (auto [tag, val] : dynamic_)
        if (tag == DT_NEEDED) out.push_back(string_at(*dynstr, val, "DT_NEEDED"));
    return out;
}

std::optional<std::string> ElfFile::soname() const {
    const Section* dynstr = section(".dynstr");
    if (dynstr == nullptr) return std::nullopt;
    for (auto [tag, val] : dynamic_)
        if (tag == DT_SONAME) return string_at(*dynstr, val, "DT_SONAME");
    return std::nullopt;
}

void ElfFile::parse_relocations() {
    for (const Section& s : sections_) {
        if (s.type == SHT_REL && (s.flags & 2 /*SHF_ALLOC*/))
            bad(fmt::format("section {} uses REL relocations; only RELA is supported", s.name));
        if (s.type != SHT_RELA || !(s.flags & 2)) continue;
        ByteView d = section_data(s);
        if (d.size() % kRelaSize != 0)
            bad(fmt::format("relocation section {} size {:#x} is not a multiple of 24", s.name,
                            d.size()));
        if (d.size() / kRelaSize + relocs_.size() > kMaxRelocs) bad("too many relocations");
        const std::vector<Symbol>* syms = nullptr;
        if (s.link != 0) {
            if (s.link >= sections_.size())
                bad(fmt::format("relocation section {} links to missing section {}", s.name,
                                s.link));
            syms = sections_[s.link].type == SHT_DYNSYM   ? &dynsym_
                   : sections_[s.link].type == SHT_SYMTAB ? &symtab_
                                                          : nullptr;
        }
        for (std::size_t off = 0; off < d.size(); off += kRelaSize) {
            Reloc r;
            r.offset = load_le64(d.data() + off);
            std::uint64_t info = load_le64(d.data() + off + 8);
            r.type = static_cast<std::uint32_t>(info);
            r.sym = static_cast<std::uint32_t>(info >> 32);
            r.addend = static_cast<std::int64_t>(load_le64(d.data() + off + 16));
            r.section = s.name;
            if (r.sym != 0) {
                if (syms == nullptr || r.sym >= syms->size())
                    bad(fmt::format(
                        "relocation at {} offset {:#x} names symbol {} which does not exist",
                        s.name, off, r.sym));
                r.symbol = &(*syms)[r.sym];
            }
            relocs_.push_back(std::move(r));
        }
    }
}

const Section* ElfFile::section(std::string_view n) const {
    for (const Section& s : sections_)
        if (s.name == n) return &s;
    return nullptr;
}

const Section* ElfFile::section_at(std::uint64_t vaddr) const {
    for (const Section& s : sections_)
        if ((s.flags & 2) && s.size > 0 && vaddr >= s.addr && vaddr - s.addr < s.size) return &s;
    return nullptr;
}

std::optional<ByteView> ElfFile::read_vaddr(std::uint64_t vaddr, std::uint64_t len) const {
    if (add_overflows(vaddr, len)) return std::nullopt;
    for (const Segment& s : segments_) {
        if (s.type != PT_LOAD || vaddr < s.vaddr) continue;
        std::uint64_t rel = vaddr - s.vaddr;
        if (rel <= s.filesz && len <= s.filesz - rel)
            return ByteView(data_.data() + s.offset + rel, len);
    }
    if (segments_.empty()) {
        for (const Section& s : sections_) {
            if (s.type == SHT_NOBITS || !(s.flags & 2) || vaddr < s.addr) continue;
            std::uint64_t rel = vaddr - s.addr;
            if (rel <= s.size && len <= s.size - rel)
                return ByteView(data_.data() + s.offset + rel, len);
        }
    }
    return std::nullopt;
}

} // namespace hp::elf
