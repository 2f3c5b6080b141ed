// The readers of upstream documents on standard input (doc/upstream): strict JSON within
// limits, and the check, apply and inspect documents interpreted field by field.
#include "doc/error.hpp"
#include "doc/upstream.hpp"

#include <doctest/doctest.h>
#include <string>

using namespace hp;
using namespace hp::doc;

namespace {

using json = nlohmann::json;

json parse(const std::string& text) {
    return parse_upstream(
        ByteView(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
}

// The error a call throws: code and message; fails the test when it throws nothing.
template <class F> std::pair<ErrorCode, std::string> error_of(F&& f) {
    try {
        f();
    } catch (const Error& e) {
        return {e.code(), e.what()};
    }
    FAIL("no hp::Error thrown");
    return {ErrorCode::Internal, ""};
}

const std::string kSha = "5ec851ee1d5b1cfe9945f6d56cceec7cb1015fb1a6af9c6cffa98f3705c30126";

json check_doc() {
    return {{"schema", "hotpatch.check/1"},
            {"ok", true},
            {"process", {{"pid", 42}, {"start_time", 1120509}}},
            {"package", {{"path", "/srv/fix.hpk"}, {"sha256", kSha}, {"id", "fix"}}}};
}

json apply_doc() {
    json site = {{"function", "compute"},
                 {"address", "0x55d70ae61240"},
                 {"original", "488305082e000001"},
                 {"new", "e9db9effffcccccc"}};
    return {{"schema", "hotpatch.apply/1"},
            {"ok", true},
            {"pid", 42},
            {"record", {{"id", "fix"}, {"state", "applied"}, {"sites", json::array({site})}}}};
}

json inspect_doc() {
    json fn = {{"module", "victim"},
               {"build_id", "f0f369879569ad5809f61b3369e82dd85d6e851b"},
               {"symbol", "compute"},
               {"address", "0x1240"},
               {"site", {{"address", "0x1244"}, {"expected", "488305082e"}}}};
    return {{"schema", "hotpatch.inspect/1"},
            {"ok", true},
            {"manifest", {{"id", "fix"}}},
            {"package", {{"sha256", kSha}}},
            {"functions", json::array({fn})}};
}

} // namespace

TEST_CASE("upstream_parse_refuses_malformed_json_as_bad_input") {
    for (const std::string& text :
         {std::string(), std::string("   "), std::string("not json"), std::string("{\"a\":1} x"),
          std::string("{\"a\":1}{}"), std::string("{\"a\":\"\xff\"}"),
          std::string("{\"a\"\0:1}", 8), std::string("{}\0{", 4), std::string("[1,]"),
          std::string("{\"a\":01}"), std::string("\"\\ud800\""), std::string("[") + "1"}) {
        CAPTURE(text);
        auto [code, msg] = error_of([&] { (void)parse(text); });
        CHECK(code == ErrorCode::BadInput);
        CHECK(msg.find("standard input") == 0);
        for (char c : msg)
            CHECK((c >= 0x20 && c < 0x7f)); // printable, whatever the input held
    }
    CHECK(parse(" {\"a\": [1, 2.5, null]}\n")["a"].size() == 3);
}

TEST_CASE("upstream_parse_limits_depth_and_values") {
    std::string deep(kMaxUpstreamDepth, '[');
    deep += std::string(kMaxUpstreamDepth, ']');
    CHECK(parse(deep).is_array());
    std::string deeper = "[" + deep + "]";
    CHECK(error_of([&] { (void)parse(deeper); }).second.find("deeper than 64") !=
          std::string::npos);
    std::string many = "[0";
    for (std::size_t i = 0; i < kMaxUpstreamValues; ++i)
        many += ",0";
    many += "]";
    CHECK(error_of([&] { (void)parse(many); }).second.find("more than") != std::string::npos);
}

TEST_CASE("upstream_check_document_read_as_hp_apply_did") {
    CheckedPackage c = interpret_check(check_doc(), 42);
    CHECK(c.package_path == "/srv/fix.hpk");
    CHECK(c.package_sha256 == kSha);
    CHECK(c.pid == 42);
    CHECK(c.start_time == 1120509);

    json failed = check_doc();
    failed["ok"] = false;
    failed.erase("package"); // a failed check may not get as far as the package
    CHECK(error_of([&] { (void)interpret_check(failed, 42); }).first == ErrorCode::CheckFailed);
    auto [code, msg] = error_of([&] { (void)interpret_check(check_doc(), 43); });
    CHECK(code == ErrorCode::CheckFailed);
    CHECK(msg == "the check document is about process 42, not 43");
    CHECK(interpret_check(check_doc(), 0).pid == 42); // hp-apply - without -p
}

TEST_CASE("upstream_check_document_fields_of_wrong_type_are_bad_input") {
    struct Case {
        const char* pointer;
        json value;
        const char* message;
    };
    const Case cases[] = {
        {"/schema", 1, "upstream document: schema: not a string"},
        {"/schema", "hotpatch.apply/1",
         "upstream document: schema \"hotpatch.apply/1\" is not hotpatch.check/1"},
        {"/ok", "true", "upstream document: ok: not a boolean"},
        {"/process/pid", "42", "upstream document: process.pid: not an integer"},
        {"/process/pid", -42, "upstream document: process.pid: -42 is out of range"},
        {"/process/pid", 0, "upstream document: process.pid: 0 is out of range"},
        {"/process/pid", 4294967338u, "upstream document: process.pid: 4294967338 is out of range"},
        {"/process/pid", 42.0, "upstream document: process.pid: not an integer"},
        {"/process/start_time", -1, "upstream document: process.start_time: -1 is negative"},
        {"/process/start_time", 1e300,
         "upstream document: process.start_time: not a non-negative integer"},
        {"/process/start_time", nullptr,
         "upstream document: process.start_time: not a non-negative integer"},
        {"/process", json::array(), "upstream document: process: not an object"},
        {"/package/path", 7, "upstream document: package.path: not a string"},
        {"/package/path", "", "upstream document: package.path: empty"},
        {"/package/path", std::string("/srv/a\0b", 8),
         "upstream document: package.path: holds a NUL byte"},
        {"/package/sha256", "",
         "upstream document: package.sha256: not a sha256 (64 lowercase hex digits)"},
        {"/package/sha256", "5EC851EE1D5B1CFE9945F6D56CCEEC7CB1015FB1A6AF9C6CFFA98F3705C30126",
         "upstream document: package.sha256: not a sha256 (64 lowercase hex digits)"},
    };
    for (const Case& c : cases) {
        json doc = check_doc();
        doc[json::json_pointer(c.pointer)] = c.value;
        CAPTURE(c.pointer);
        auto [code, msg] = error_of([&] { (void)interpret_check(doc, 42); });
        CHECK(code == ErrorCode::BadInput);
        CHECK(msg == c.message);
    }
    json doc = check_doc();
    doc["package"].erase("sha256");
    CHECK(error_of([&] { (void)interpret_check(doc, 42); }).second ==
          "upstream document: package: missing \"sha256\"");
    CHECK(error_of([&] { (void)interpret_check(json::array(), 42); }).second ==
          "upstream document: not a JSON object");
}

TEST_CASE("upstream_apply_document_gives_the_bytes_its_state_says") {
    ExpectedSites s = interpret_sites(apply_doc());
    CHECK(s.kind == ExpectedSites::Kind::Apply);
    CHECK(s.id == "fix");
    CHECK(s.pid == 42);
    REQUIRE(s.sites.size() == 1);
    CHECK(s.sites[0].address == 0x55d70ae61240);
    CHECK(to_hex(s.sites[0].bytes) == "e9db9effffcccccc");
    CHECK(s.sites[0].function == "compute");
    json reverted = apply_doc();
    reverted["record"]["state"] = "reverted";
    CHECK(to_hex(interpret_sites(reverted).sites[0].bytes) == "488305082e000001");
}

TEST_CASE("upstream_apply_document_broken_sites_name_the_field") {
    struct Case {
        const char* pointer;
        json value;
        const char* message;
    };
    const Case cases[] = {
        {"/record/sites/0/address", 4198400,
         "upstream document: record.sites[0].address: not a string"},
        {"/record/sites/0/address", "0x",
         "upstream document: record.sites[0].address: not an address (\"0x...\", 64 bits)"},
        {"/record/sites/0/address", "0x10000000000000000",
         "upstream document: record.sites[0].address: not an address (\"0x...\", 64 bits)"},
        {"/record/sites/0/new", std::string(130, '0'),
         "upstream document: record.sites[0].new: not hex bytes (1..64)"},
        {"/record/sites/0/new", "",
         "upstream document: record.sites[0].new: not hex bytes (1..64)"},
        {"/record/sites/0/new", "e",
         "upstream document: record.sites[0].new: not hex bytes (1..64)"},
        {"/record/sites/0/function", 3,
         "upstream document: record.sites[0].function: not a string"},
        {"/record/sites/0", nullptr, "upstream document: record.sites[0]: not an object"},
        {"/record/sites", 3, "upstream document: record.sites: not an array"},
        {"/record/state", "exploded",
         "upstream document: record.state: unknown state \"exploded\""},
        {"/pid", -1, "upstream document: pid: -1 is out of range"},
        {"/ok", false, "upstream document: the apply document reports a failure (ok is false)"},
    };
    for (const Case& c : cases) {
        json doc = apply_doc();
        doc[json::json_pointer(c.pointer)] = c.value;
        CAPTURE(c.pointer);
        auto [code, msg] = error_of([&] { (void)interpret_sites(doc); });
        CHECK(code == ErrorCode::BadInput);
        CHECK(msg == c.message);
    }
    json doc = apply_doc();
    doc["record"]["sites"] = json::array();
    for (std::size_t i = 0; i <= kMaxUpstreamSites; ++i)
        doc["record"]["sites"].push_back(0);
    CHECK(error_of([&] { (void)interpret_sites(doc); }).second ==
          "upstream document: record.sites: 100001 entries (limit 100000)");
}

TEST_CASE("upstream_inspect_document_gives_link_time_sites") {
    ExpectedSites s = interpret_sites(inspect_doc());
    CHECK(s.kind == ExpectedSites::Kind::Inspect);
    CHECK(s.id == "fix");
    CHECK(s.package_sha256 == kSha);
    CHECK(!s.pid);
    REQUIRE(s.sites.size() == 1);
    CHECK(s.sites[0].address == 0x1244);
    CHECK(s.sites[0].build_id == "f0f369879569ad5809f61b3369e82dd85d6e851b");
    CHECK(s.sites[0].module == "victim");
    json doc = inspect_doc();
    doc["functions"][0]["site"].erase("expected");
    CHECK(error_of([&] { (void)interpret_sites(doc); }).second ==
          "upstream document: functions[0].site: missing \"expected\"");
    doc = inspect_doc();
    doc["schema"] = "hotpatch.check/1";
    CHECK(error_of([&] { (void)interpret_sites(doc); }).second ==
          "upstream document: schema \"hotpatch.check/1\" is not hotpatch.apply/1 or "
          "hotpatch.inspect/1");
}
