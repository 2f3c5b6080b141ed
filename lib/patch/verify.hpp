// Comparing process memory with what it should hold (hp-verify).
#pragma once

#include "doc/document.hpp"
#include "proc/process.hpp"

namespace hp::patch {

// Every patch recorded in the process, each site checked against its record. Fills
// `doc` ("patches": [...]); returns true when every site holds what its record says (or
// what a later patch lying on top of it wrote).
bool verify_process(proc::Pid pid, doc::json& doc);

// The sites of an upstream document: a hotpatch.apply/1 (its record's sites must hold the
// new bytes, or the original ones after a revert) or a hotpatch.inspect/1 (per function:
// "original", "patched" by this package per the in-process record, or "other").
// Throws Error(BadInput) for a document of another kind or malformed fields.
bool verify_document(proc::Pid pid, const nlohmann::json& upstream, doc::json& doc);

} // namespace hp::patch
