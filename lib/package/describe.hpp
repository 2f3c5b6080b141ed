// The hotpatch.inspect/1 document: what a package holds, in JSON and as text.
#pragma once

#include "doc/document.hpp"
#include "package/container.hpp"

namespace hp::package {

// Fills `doc` (already holding the common fields) from a package read from `path`.
void describe(const Package& p, const std::string& path, ByteView file, bool disasm,
              const std::vector<PublicKey>& trusted, doc::json& doc);

// The readable form for a terminal.
std::string describe_text(const doc::json& doc);

} // namespace hp::package
