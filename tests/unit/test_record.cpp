// lib/patch/record: the record an apply keeps inside the patched process. Version 2 is
// written (compact sites); version 1, which older hotpatch versions left in processes that
// still run, must still be read; anything damaged is refused, never half-read.
#include "common/bytes.hpp"
#include "patch/record.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace hp;
using namespace hp::patch;

namespace {

Record sample() {
    Record r;
    r.id = "fix-1";
    r.package_sha256 = std::string(64, 'a');
    r.tool_version = "0.1.0";
    r.time = "2026-12-04T20:00:00Z";
    r.consistency = "stack";
    r.state = State::Applied;
    r.instance = {1234, 987654};
    r.address = 0x7f0000000000;
    r.payload_base = 0x7f0000002000;
    r.mappings = {{0x7f0000000000, 0x7f0000008000}, {0x7f0000010000, 0x7f0000011000}};
    r.freeze_us = 321;
    SiteRecord a;
    a.module = "victim";
    a.build_id = "b70e6b3850523f0a2734e022aa71c13df8c641bf";
    a.function = "compute";
    a.function_address = a.address = 0x55b0733eaed0;
    a.original = {0x48, 0x8d, 0x87, 0x40, 0x42};
    a.patched = {0xe9, 0x2b, 0xa2, 0xfe, 0xff};
    a.replacement = 0x7f0000002100;
    SiteRecord b = a; // another module, a site past the entry, stacked on another patch
    b.module = "libc.so.6";
    b.build_id = "0011";
    b.function = "";
    b.function_address = 0x7f1000001000;
    b.address = 0x7f1000001004;
    b.supersedes = "fix-0";
    SiteRecord c = a; // the first module again, stacked but at its entry
    c.function = "other";
    c.address = c.function_address = 0x55b0733eaf00;
    c.supersedes = "fix-0";
    r.sites = {a, b, c};
    return r;
}

void same(const Record& x, const Record& y) {
    CHECK(to_json(x).dump() == to_json(y).dump());
    CHECK(x.capacity == y.mappings[0].end - y.mappings[0].start);
}

Bytes v1_bytes(const Record& r) {
    nlohmann::ordered_json j = to_json(r); // version 1 stored exactly these members
    j.erase("state");
    j.erase("freeze_us");
    std::string text = j.dump();
    Bytes out{'H', 'P', 'R', 'E', 'C', 'O', 'R', 'D'};
    append_le32(out, 1);
    append_le32(out, static_cast<std::uint32_t>(r.state));
    append_le64(out, text.size());
    append_le64(out, r.freeze_us);
    out.insert(out.end(), text.begin(), text.end());
    return out;
}

} // namespace

TEST_CASE("record: version 2 round trip keeps every field, and is compact") {
    Record r = sample();
    r.capacity = 0x8000;
    Bytes b = serialize(r);
    CHECK(load_le32(b.data() + 8) == 2);
    auto back = parse(b, r.address);
    REQUIRE(back);
    same(*back, r);
    CHECK(back->state == State::Applied);
    CHECK(back->freeze_us == 321);
    CHECK(back->sites[1].function_address == 0x7f1000001000);
    CHECK(back->sites[1].supersedes == "fix-0");
    CHECK(back->sites[2].supersedes == "fix-0");
    CHECK(back->sites[0].supersedes.empty());

    // 1000 sites: well under half of version 1's size.
    Record big = sample();
    big.sites.assign(1000, sample().sites[0]);
    std::size_t v2 = serialize(big).size(), v1 = v1_bytes(big).size();
    MESSAGE("1000 sites: version 1 ", v1, " bytes, version 2 ", v2);
    CHECK(v2 * 2 < v1);
}

TEST_CASE("record: version 1, written by earlier versions, is still read") {
    Record r = sample();
    auto back = parse(v1_bytes(r), r.address);
    REQUIRE(back);
    same(*back, r);
}

TEST_CASE("record: a damaged version 2 record is refused") {
    Record r = sample();
    Bytes good = serialize(r);
    auto with_json = [&](std::string text, std::uint32_t version = 2) {
        Bytes b(good.begin(), good.begin() + kRecordHeader);
        b[8] = static_cast<std::uint8_t>(version);
        Bytes len;
        append_le64(len, text.size());
        std::copy(len.begin(), len.end(), b.begin() + 16);
        b.insert(b.end(), text.begin(), text.end());
        return parse(b, r.address);
    };
    std::string text(good.begin() + kRecordHeader, good.end());
    REQUIRE(with_json(text));
    CHECK_FALSE(with_json(text, 3)); // an unknown version
    CHECK_FALSE(with_json(text, 0));
    auto replace = [&](const std::string& from, const std::string& to) {
        std::string t = text;
        auto at = t.find(from);
        REQUIRE(at != std::string::npos);
        return t.replace(at, from.size(), to);
    };
    CHECK_FALSE(with_json(replace("[0,\"compute\"", "[7,\"compute\""))); // no module 7
    CHECK_FALSE(with_json(replace("[0,\"compute\"", "[-1,\"compute\"")));
    CHECK_FALSE(with_json(replace("[0,\"compute\"", "[\"0\",\"compute\"")));
    CHECK_FALSE(with_json(replace("[0,\"compute\"", "[false,\"compute\"")));
    CHECK_FALSE(with_json(replace("[0,\"compute\"", "[0.5,\"compute\"")));
    CHECK_FALSE(with_json(replace("[0,\"compute\"", "[1e300,\"compute\"")));
    CHECK_FALSE(with_json(replace("\"488d874042\"", "\"488d87\""))); // lengths differ
    CHECK_FALSE(with_json(replace("\"488d874042\"", "\"zz\"")));
    CHECK_FALSE(with_json(replace("\"modules\":[", "\"modulez\":[")));
    CHECK_FALSE(with_json(replace("[0,\"compute\",", "[0,")));                      // too short
    CHECK_FALSE(with_json(replace("\"0x7f1000001000\",\"fix-0\"", "1,\"fix-0\""))); // not text
    // A version 1 record body under a version 2 header (objects where arrays belong).
    const Bytes v1 = v1_bytes(r);
    CHECK_FALSE(with_json(std::string(v1.begin() + kRecordHeader, v1.end())));
}
