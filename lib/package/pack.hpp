// Building a package: resolve the functions to replace in the target(s), analyse their
// entries, check the payload, and write the .hpk (the library side of hp-pack).
#pragma once

#include "package/container.hpp"

#include <functional>
#include <string>
#include <vector>

namespace hp::package {

struct ReplaceRequest {
    std::string old_spec; // a symbol name, or "0xADDR" (virtual address as nm prints it)
    std::string new_name; // empty: the old function's name
};

struct TargetRequest {
    std::string path;
    std::vector<ReplaceRequest> replaces;
};

struct PackRequest {
    std::string payload_path;
    std::vector<TargetRequest> targets;
    std::string id;
    std::string description;
    std::string sign_key_path;           // empty: unsigned
    bool strict = false;                 // warnings become refusals
    std::vector<std::string> debug_dirs; // searched as DIR/.build-id/xx/yyyy.debug
};

struct PackResult {
    Manifest manifest;
    Bytes package;
    std::optional<PublicKey> signer;
};

// Throws hp::Error: Usage / BadInput / Unsupported (exit 2), naming file and symbol.
// `warn` receives each warning (compiler clones of an old function...); with strict set
// the first warning is raised as Error(Unsupported) instead.
PackResult pack(const PackRequest& req, const std::function<void(const std::string&)>& warn);

} // namespace hp::package
