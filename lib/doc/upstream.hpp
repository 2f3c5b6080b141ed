// Upstream documents read from standard input (`hp-apply -`, `hp-verify -`; DESIGN §3):
// the JSON reader and the interpretation of the documents one tool takes from another.
// Pure: no process is touched, so all of it is fuzzed (tests/fuzz/fuzz_upstream.cpp).
//
// Standard input is hostile input: every function here either returns a fully validated
// value or throws hp::Error — BadInput naming the field ("upstream document:
// record.sites[3].address: not an address"), or CheckFailed where the document itself
// says no. Never a nlohmann exception, never a silently truncated number.
#pragma once

#include "common/bytes.hpp"

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace hp::doc {

// Hostile-input limits. A document the tools print stays far below them: the sites limit
// is the package's limit on functions, the others leave room for hp-inspect --disasm of
// such a package.
constexpr std::size_t kMaxUpstreamSize = std::size_t{64} << 20;  // bytes of standard input
constexpr std::size_t kMaxUpstreamDepth = 64;                    // nested arrays and objects
constexpr std::size_t kMaxUpstreamValues = std::size_t{1} << 22; // values and keys, in all
constexpr std::size_t kMaxUpstreamSites = 100'000;               // sites or functions
constexpr std::size_t kMaxUpstreamString = 4096;                 // a path, id, name
constexpr std::size_t kMaxUpstreamSiteBytes = 64;                // bytes of one site

// One JSON text, strictly (RFC 8259, UTF-8, nothing after it), within the limits above.
// Throws Error(BadInput) saying where it breaks; the message is printable ASCII.
nlohmann::json parse_upstream(ByteView raw);

// A hotpatch.check/1 document (hp-check) as hp-apply takes it.
struct CheckedPackage {
    std::string package_path;   // no NUL byte, at most kMaxUpstreamString bytes
    std::string package_sha256; // 64 lowercase hex digits
    int pid = 0;                // > 0
    std::uint64_t start_time = 0;
};
// Throws Error(BadInput) when `doc` is not a hotpatch.check/1 document or a field is
// missing or malformed, and Error(CheckFailed) when the document says the package is not
// eligible ("ok": false) or is about another process than `pid`. So what it returns was
// checked and found eligible, for this pid. `pid` 0 (hp-apply without -p) takes the
// document's process.
CheckedPackage interpret_check(const nlohmann::json& doc, int pid);

// One site an upstream document expects, as hp-verify compares it with memory.
struct ExpectedSite {
    std::string function;      // symbol; "" when the document names none
    std::string module;        // hotpatch.inspect/1 only
    std::string build_id;      // hotpatch.inspect/1 only: the module to look for
    std::uint64_t address = 0; // apply: runtime address; inspect: link-time (add the bias)
    Bytes bytes;               // apply: what the record's state says is there;
                               // inspect: the original bytes the package expects
};
// The sites of a hotpatch.apply/1 document (the record of one apply, revert or dry run)
// or of a hotpatch.inspect/1 document (a package's functions).
struct ExpectedSites {
    enum class Kind { Apply, Inspect };
    Kind kind = Kind::Apply;
    std::string schema;         // "hotpatch.apply/1" or "hotpatch.inspect/1"
    std::string id;             // the patch id
    std::string state;          // apply: the record's state ("applied", "reverted", ...)
    std::string package_sha256; // inspect: the package's sha256
    std::optional<int> pid;     // apply: the process the document is about, when it says
    std::vector<ExpectedSite> sites;
};
// Throws Error(BadInput) for any other document, one that reports a failure ("ok": false),
// or a missing or malformed field (the message names it).
ExpectedSites interpret_sites(const nlohmann::json& doc);

} // namespace hp::doc
