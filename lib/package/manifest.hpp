// The package manifest: what a package patches and how (docs/package-format.md).
#pragma once

#include "arch/arch.hpp"
#include "common/bytes.hpp"

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace hp::package {

constexpr int kManifestFormat = 1;
// Hostile-input limits on a manifest.
constexpr std::size_t kMaxTargets = 64;
constexpr std::size_t kMaxFunctions = 100'000;
constexpr std::size_t kMaxSymbols = 100'000;
constexpr std::size_t kMaxNameLength = 4096;
constexpr std::size_t kMaxSiteBytes = 64;

struct Site {
    std::uint32_t offset = 0;     // from the function's start (a kept endbr64 / bti c)
    std::uint32_t length = 0;     // bytes covered by the near branch
    std::uint32_t far_length = 0; // bytes covered by the far branch; 0: not possible
    bool landing_pad = false;     // ARM64: patched bytes start with `bti c` (paciasp entry)
    Bytes expected;               // bytes at [offset, offset + max(length, far_length))
};

struct Function {
    std::string symbol;        // may be empty for a stripped binary patched by address
    std::uint64_t address = 0; // virtual address as nm/objdump print it
    std::uint64_t size = 0;
    std::string size_source; // "dynsym", "symtab", "debug", "eh_frame"
    Site site;
    std::string sha256;                    // of the whole old function's bytes
    std::string replacement;               // symbol in the payload
    std::uint64_t replacement_address = 0; // its virtual address in the payload
};

struct LocalSymbol {
    std::string name;
    std::uint64_t address = 0; // virtual address in the target module's file
    std::string type;          // "func", "object", "notype"
};

struct Target {
    std::string module;   // file name (informational; matching is by build-id)
    std::string build_id; // lowercase hex
    std::vector<Function> functions;
    std::vector<LocalSymbol> local_symbols;
};

struct Undefined {
    std::string name;
    std::string version; // "" when unversioned
    bool weak = false;
    // "target:N" when resolved at pack time to a non-exported symbol of targets[N];
    // "process" when the process must provide it at apply time.
    std::string provider;
};

struct Manifest {
    int format = kManifestFormat;
    std::string id;
    std::string description;
    arch::Arch arch = arch::Arch::X86_64;
    std::string creator;
    std::string created;
    std::uint64_t payload_size = 0;
    std::string payload_sha256;
    std::vector<Target> targets;
    std::vector<Undefined> undefined;
};

bool valid_patch_id(std::string_view id);

nlohmann::ordered_json to_json(const Manifest& m);
// Validates every field (types, ranges, hex, limits); throws Error(BadPackage) naming the
// JSON path of the first flaw ("manifest: targets[0].functions[1].site.expected: ...").
Manifest manifest_from_json(const nlohmann::json& j);

} // namespace hp::package
