// A lean, bounds-checked ELF64 little-endian reader (x86-64 and ARM64 files on any host).
// Every offset and size read from the file is checked before use: payloads come out of
// packages, which are hostile input (DESIGN §5). LIEF is not used: it is slow on large
// binaries and accepted malformed files when tried here.
#pragma once

#include "arch/arch.hpp"
#include "common/bytes.hpp"
#include "doc/error.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace hp::elf {

// ELF constants we use, spelled as in <elf.h> but kept here so the reader builds anywhere.
enum : std::uint32_t {
    SHT_NULL = 0,
    SHT_PROGBITS = 1,
    SHT_SYMTAB = 2,
    SHT_STRTAB = 3,
    SHT_RELA = 4,
    SHT_DYNAMIC = 6,
    SHT_NOTE = 7,
    SHT_NOBITS = 8,
    SHT_REL = 9,
    SHT_DYNSYM = 11,
    SHT_INIT_ARRAY = 14,
    SHT_FINI_ARRAY = 15,
    SHT_PREINIT_ARRAY = 16,
    SHT_GNU_verdef = 0x6ffffffd,
    SHT_GNU_verneed = 0x6ffffffe,
    SHT_GNU_versym = 0x6fffffff,
};
enum : std::uint32_t {
    PT_LOAD = 1,
    PT_DYNAMIC = 2,
    PT_NOTE = 4,
    PT_TLS = 7,
    PT_GNU_EH_FRAME = 0x6474e550
};
enum : std::uint32_t { PF_X = 1, PF_W = 2, PF_R = 4 };
enum : std::uint8_t {
    STT_NOTYPE = 0,
    STT_OBJECT = 1,
    STT_FUNC = 2,
    STT_SECTION = 3,
    STT_FILE = 4,
    STT_COMMON = 5,
    STT_TLS = 6,
    STT_GNU_IFUNC = 10
};
enum : std::uint8_t { STB_LOCAL = 0, STB_GLOBAL = 1, STB_WEAK = 2, STB_GNU_UNIQUE = 10 };
enum : std::uint8_t { STV_DEFAULT = 0, STV_INTERNAL = 1, STV_HIDDEN = 2, STV_PROTECTED = 3 };
enum : std::uint16_t { SHN_UNDEF = 0, SHN_ABS = 0xfff1, SHN_COMMON = 0xfff2 };
enum : std::uint16_t { ET_EXEC = 2, ET_DYN = 3 };
enum : std::int64_t {
    DT_NULL = 0,
    DT_NEEDED = 1,
    DT_INIT = 12,
    DT_FINI = 13,
    DT_SONAME = 14,
    DT_TEXTREL = 22,
    DT_INIT_ARRAY = 25,
    DT_INIT_ARRAYSZ = 27,
    DT_PREINIT_ARRAY = 32,
    DT_PREINIT_ARRAYSZ = 33,
    DT_FLAGS = 30
};

struct Section {
    std::string name;
    std::uint32_t type = 0;
    std::uint64_t flags = 0, addr = 0, offset = 0, size = 0, entsize = 0, addralign = 0;
    std::uint32_t link = 0, info = 0;
};

struct Segment {
    std::uint32_t type = 0, flags = 0;
    std::uint64_t offset = 0, vaddr = 0, filesz = 0, memsz = 0, align = 0;
};

struct Symbol {
    std::string name;
    std::uint64_t value = 0, size = 0;
    std::uint8_t type = 0, bind = 0, visibility = 0;
    std::uint16_t shndx = 0;
    bool dynamic = false; // from .dynsym (else .symtab)
    std::string version;  // symbol version ("GLIBC_2.2.5"), dynsym only; empty if none
    bool version_hidden = false;
    bool defined() const { return shndx != SHN_UNDEF; }
    // Exported: what another module's lookup can bind to.
    bool exported() const {
        return dynamic && defined() && bind != STB_LOCAL &&
               (visibility == STV_DEFAULT || visibility == STV_PROTECTED);
    }
};

// The fields of one Elf64_Sym entry (24 bytes at `p`), all but the name, which needs
// the string table. Shared by the file reader and readers of symbol tables in memory.
Symbol decode_symbol(const std::uint8_t* p, bool dynamic);

struct Reloc {
    std::uint64_t offset = 0; // r_offset: a virtual address of this file
    std::uint32_t type = 0;
    std::uint32_t sym = 0; // index into the section's linked symbol table
    std::int64_t addend = 0;
    const Symbol* symbol = nullptr; // resolved (null for index 0)
    std::string section;            // ".rela.dyn", ".rela.plt"
};

class ElfFile {
  public:
    // Parses `data`; `name` is used in messages. Malformed input throws Error(bad_code)
    // with a message naming the file, the structure and the offset.
    static ElfFile parse(Bytes data, std::string name, ErrorCode bad_code = ErrorCode::BadInput);
    static ElfFile open(const std::string& path, ErrorCode bad_code = ErrorCode::BadInput);

    const std::string& name() const { return name_; }
    const Bytes& data() const { return data_; }
    std::uint16_t machine() const { return machine_; }
    std::optional<arch::Arch> arch() const { return arch::from_elf_machine(machine_); }
    std::uint16_t type() const { return type_; }

    const std::vector<Section>& sections() const { return sections_; }
    const std::vector<Segment>& segments() const { return segments_; }
    const Section* section(std::string_view name) const;
    // The section's bytes in the file (empty for SHT_NOBITS); bounds checked at parse.
    ByteView section_data(const Section& s) const;

    // Lowercase hex of the NT_GNU_BUILD_ID note, if any.
    const std::optional<std::string>& build_id() const { return build_id_; }

    const std::vector<Symbol>& dynsym() const { return dynsym_; }
    const std::vector<Symbol>& symtab() const { return symtab_; }

    // Bytes of the file image at a virtual address, through the PT_LOAD segment (or, for
    // files without program headers such as separate debug files, the section) that holds
    // them in the file. nullopt when [vaddr, vaddr+len) is not entirely file-backed.
    std::optional<ByteView> read_vaddr(std::uint64_t vaddr, std::uint64_t len) const;
    // The section containing `vaddr` (allocated sections only), if any.
    const Section* section_at(std::uint64_t vaddr) const;

    // Dynamic section entries (tag, value), and the strings they name.
    const std::vector<std::pair<std::int64_t, std::uint64_t>>& dynamic() const { return dynamic_; }
    std::vector<std::string> needed() const;
    std::optional<std::string> soname() const;

    // All SHT_RELA relocations of allocated sections (.rela.dyn, .rela.plt).
    const std::vector<Reloc>& relocations() const { return relocs_; }

    [[noreturn]] void bad(const std::string& what) const;

    // Relocations point into the symbol vectors: moving keeps their buffers, copying would not.
    ElfFile(ElfFile&&) = default;
    ElfFile& operator=(ElfFile&&) = default;
    ElfFile(const ElfFile&) = delete;
    ElfFile& operator=(const ElfFile&) = delete;

  private:
    ElfFile() = default;
    ByteView slice(std::uint64_t off, std::uint64_t size, const char* what) const;
    std::string string_at(const Section& strtab, std::uint64_t off, const char* what) const;
    void parse_all();
    void parse_symbols(const Section& s, std::vector<Symbol>& out, bool dynamic);
    void parse_versions();
    void parse_notes();
    void parse_dynamic();
    void parse_relocations();

    std::string name_;
    Bytes data_;
    ErrorCode bad_code_ = ErrorCode::BadInput;
    std::uint16_t machine_ = 0, type_ = 0;
    std::vector<Section> sections_;
    std::vector<Segment> segments_;
    std::optional<std::string> build_id_;
    std::vector<Symbol> dynsym_, symtab_;
    std::vector<std::pair<std::int64_t, std::uint64_t>> dynamic_;
    std::vector<Reloc> relocs_;
    // Bytes of names materialised so far (string_at), against a budget: offsets are the
    // file's to choose, so many entries naming one long string would otherwise cost
    // entries x length in memory and time.
    mutable std::uint64_t string_bytes_ = 0;
};

// ELF strings (section, symbol, version and DT_NEEDED names) are arbitrary bytes. This
// spelling of one is safe in a message, on a terminal and in a JSON document: valid UTF-8
// without control characters; any other byte is written as \xNN.
std::string printable(std::string_view s);

// Address ranges [begin, end) covered by the FDEs of .eh_frame (function bounds for
// stripped binaries). Malformed entries end the walk; what was read before is returned.
struct Range {
    std::uint64_t begin, end;
};
std::vector<Range> eh_frame_ranges(const ElfFile& f);

} // namespace hp::elf
