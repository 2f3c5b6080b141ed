// libFuzzer target for the readers of upstream documents on standard input (DESIGN §3,
// §9): what `hp-apply -p PID -` and `hp-verify -p PID -` do with the bytes before they touch
// a process. parse_upstream, then both interpretations — as a hotpatch.check/1 document
// for hp-apply and as a hotpatch.apply/1 or hotpatch.inspect/1 document for hp-verify —
// and every accepted value or error message put into a document and serialised as the
// tools print it.
//
// hp::Error with BadInput (or CheckFailed, from a check document that says no) is the
// expected outcome for bad input. Any other error code, any other exception (nlohmann's
// type_error from a get<>() on the wrong type, out_of_range, invalid UTF-8 on dump), a
// crash, a leak, a timeout or a sanitizer report (a float-to-int cast out of range, deep
// recursion) is a bug. Build and run: tests/fuzz/run.sh upstream.
#include "doc/error.hpp"
#include "doc/upstream.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

namespace {

using json = nlohmann::json;

// What hp::doc::Tool does with an error. The message must be worth printing: not empty.
void record_error(const hp::Error& e, json& out, bool check_failed_allowed) {
    const bool expected = e.code() == hp::ErrorCode::BadInput ||
                          (check_failed_allowed && e.code() == hp::ErrorCode::CheckFailed);
    if (!expected || std::string(e.what()).empty()) std::abort();
    out["ok"] = false;
    out["error"] = {{"code", std::string(hp::code_name(e.code()))}, {"message", e.what()}};
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    json out;
    json up;
    try {
        up = hp::doc::parse_upstream(hp::ByteView(data, size));
    } catch (const hp::Error& e) {
        record_error(e, out, false);
        (void)out.dump(2); // strict: a parse message must be valid UTF-8 as it is
        return 0;
    }

    // As hp-apply takes it; the pid is the one the document names when it names one, so
    // mutations reach the end of the function.
    json check_out;
    try {
        int pid = 1;
        if (up.is_object() && up.contains("process") && up["process"].is_object() &&
            up["process"].contains("pid") && up["process"]["pid"].is_number_unsigned() &&
            up["process"]["pid"].get<std::uint64_t>() <= 0x7fffffff)
            pid = static_cast<int>(up["process"]["pid"].get<std::uint64_t>());
        hp::doc::CheckedPackage c = hp::doc::interpret_check(up, pid);
        if (c.pid <= 0 || c.package_sha256.size() != 64 || c.package_path.empty()) std::abort();
        check_out["package"] = {{"path", c.package_path}, {"sha256", c.package_sha256}};
        check_out["process"] = {{"pid", c.pid}, {"start_time", c.start_time}};
    } catch (const hp::Error& e) {
        record_error(e, check_out, true);
    }
    (void)check_out.dump(2);

    // As hp-verify takes it.
    json sites_out;
    try {
        hp::doc::ExpectedSites s = hp::doc::interpret_sites(up);
        if (s.sites.size() > hp::doc::kMaxUpstreamSites || (s.pid && *s.pid <= 0)) std::abort();
        sites_out["id"] = s.id;
        sites_out["sites"] = json::array();
        for (const hp::doc::ExpectedSite& site : s.sites) {
            if (site.bytes.empty() || site.bytes.size() > hp::doc::kMaxUpstreamSiteBytes)
                std::abort();
            sites_out["sites"].push_back({{"function", site.function},
                                          {"module", site.module},
                                          {"build_id", site.build_id},
                                          {"address", hp::hex_addr(site.address)},
                                          {"bytes", hp::to_hex(site.bytes)}});
        }
    } catch (const hp::Error& e) {
        record_error(e, sites_out, false);
    }
    (void)sites_out.dump(2);
    return 0;
}
