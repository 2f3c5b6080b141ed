// libFuzzer target for the package reader (DESIGN §5, §9): read_package with the test-only
// skip_digest switch, so mutated inputs reach the manifest and payload checks behind the
// digest. An accepted package is then described exactly as `hp-inspect --disasm` does, and
// every document or error message is serialised as the tools print it.
//
// hp::Error is the expected outcome for bad input. Anything else escaping (std::exception
// from the standard library or nlohmann::json, e.g. invalid UTF-8 in a message), a crash, a
// leak, a timeout or a sanitizer report is a bug. Build and run: tests/fuzz/run.sh.
#include "doc/error.hpp"
#include "package/container.hpp"
#include "package/describe.hpp"

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const hp::ByteView file(data, size);
    hp::doc::json doc;
    try {
        hp::package::ReadOptions opts;
        opts.skip_digest = true; // TEST ONLY: reach what the digest guards
        hp::package::Package p = hp::package::read_package(file, opts);
        hp::package::describe(p, "fuzz.hpk", file, /*disasm=*/true, /*trusted=*/{}, doc);
        (void)hp::package::describe_text(doc);
    } catch (const hp::Error& e) {
        // What hp::doc::Tool does with an error: the message goes into the JSON document.
        doc["ok"] = false;
        doc["error"] = {{"code", std::string(hp::code_name(e.code()))}, {"message", e.what()}};
    }
    (void)doc.dump(2); // throws (and so fails the run) where hp-inspect could not print it
    return 0;
}
