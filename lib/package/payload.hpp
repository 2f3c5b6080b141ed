// The payload: the patch's ELF shared object. What hp-pack refuses in it and what a
// package reader checks it against (DESIGN §5).
#pragma once

#include "elf/elf_file.hpp"
#include "package/manifest.hpp"

#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace hp::package {

struct PayloadUndefined {
    std::string name;
    std::string version;
    bool weak = false;
    std::uint8_t type = 0;
};

// Refuses (Error(Unsupported), message naming the file and the feature) a payload that is
// not an ET_DYN of architecture `a`, or has constructors (.init_array entries other than
// crt's frame_dummy, .preinit_array, .ctors), TLS, text relocations, IFUNCs, or relocation
// types the loader does not apply.
void check_payload(const elf::ElfFile& payload, arch::Arch a);

// The dynamic symbols the payload needs from outside.
std::vector<PayloadUndefined> payload_undefined(const elf::ElfFile& payload);

// A defined function of the payload by name (dynsym first, then symtab); nullptr if none.
// Sets *not_function when a symbol of that name exists but is not a function.
const elf::Symbol* find_payload_function(const elf::ElfFile& payload, const std::string& name,
                                         const elf::Symbol** not_function = nullptr);

// find_payload_function for many names in one pass over the symbol tables: each name maps
// to what find_payload_function would return (nullptr if none). The keys view `names`.
std::unordered_map<std::string_view, const elf::Symbol*>
find_payload_functions(const elf::ElfFile& payload, const std::vector<std::string_view>& names);

// The payload's defined data objects that are not toolchain/crt internals.
std::vector<const elf::Symbol*> payload_data_objects(const elf::ElfFile& payload);

// For the package reader: the payload parses, passes check_payload, and agrees with the
// manifest (replacement addresses in executable segments, undefined symbols listed).
// Throws Error(BadPackage) (or Unsupported for a refused feature).
void check_payload_against_manifest(ByteView payload, const Manifest& m);

} // namespace hp::package
