#include "doc/upstream.hpp"

#include "doc/error.hpp"
#include "doc/field.hpp"

#include <algorithm>
#include <fmt/format.h>
#include <initializer_list>
#include <string_view>

namespace hp::doc {

using json = nlohmann::json;

namespace {

// Input bytes quoted in a message: printable ASCII kept, anything else as \xNN, cut short.
// The message goes to a terminal and into a JSON document; neither may get raw bytes.
std::string printable(std::string_view s, std::size_t max = 80) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (out.size() >= max) {
            out += "...";
            break;
        }
        auto c = static_cast<unsigned char>(s[i]);
        if (c >= 0x20 && c < 0x7f)
            out.push_back(static_cast<char>(c));
        else
            out += fmt::format("\\x{:02x}", c);
    }
    return out;
}

[[noreturn]] void bad_input(const std::string& what) {
    throw Error(ErrorCode::BadInput, "upstream document: " + what);
}

// The first pass over the text: nlohmann's strict parser, building nothing, only counting
// nesting and values. The document is built only when this pass accepts the text, so a
// hostile input costs neither deep recursion (which dump() and copies would do) nor
// unbounded memory.
class Limits final : public nlohmann::json_sax<json> {
  public:
    std::string error; // set when the pass stops

    bool null() override { return value(); }
    bool boolean(bool) override { return value(); }
    bool number_integer(number_integer_t) override { return value(); }
    bool number_unsigned(number_unsigned_t) override { return value(); }
    bool number_float(number_float_t, const string_t&) override { return value(); }
    bool string(string_t&) override { return value(); }
    bool binary(binary_t&) override { return value(); }
    bool start_object(std::size_t) override { return open(); }
    bool key(string_t&) override { return value(); }
    bool end_object() override { return close(); }
    bool start_array(std::size_t) override { return open(); }
    bool end_array() override { return close(); }
    bool parse_error(std::size_t, const std::string&,
                     const nlohmann::detail::exception& e) override {
        // "[json.exception.parse_error.101] parse error at line 1, column 2: syntax error
        // while parsing value - invalid literal; last read: 'x'": keep from "parse error".
        std::string_view what = e.what();
        if (auto at = what.find("] "); what.starts_with("[json.exception.") && at != what.npos)
            what.remove_prefix(at + 2);
        error = "standard input is not valid JSON: " + printable(what, 200);
        return false;
    }

  private:
    bool value() {
        if (++values_ <= kMaxUpstreamValues) return true;
        error = fmt::format("standard input holds more than {} JSON values", kMaxUpstreamValues);
        return false;
    }
    bool open() {
        if (++depth_ > kMaxUpstreamDepth) {
            error = fmt::format("standard input is JSON nested deeper than {} levels",
                                kMaxUpstreamDepth);
            return false;
        }
        return value();
    }
    bool close() {
        --depth_;
        return true;
    }
    std::size_t values_ = 0, depth_ = 0;
};

constexpr FieldErrors kErrors{
    .code = ErrorCode::BadInput,
    .prefix = "upstream document",
    .root_path = false,
    .missing = "missing",
    .unit = "bytes",
    .address = "\"0x...\", 64 bits",
    .max_string = kMaxUpstreamString,
    .max_address = kMaxUpstreamString,
};

// The document's schema, which must be one of `expected`.
std::string schema_of(const json& doc, std::initializer_list<std::string_view> expected) {
    if (!doc.is_object()) bad_input("not a JSON object");
    std::string schema = Field(kErrors, doc, "").at("schema").str();
    std::string want;
    for (std::string_view e : expected) {
        if (schema == e) return schema;
        want += (want.empty() ? "" : " or ") + std::string(e);
    }
    bad_input(fmt::format("schema \"{}\" is not {}", printable(schema), want));
}

} // namespace

json parse_upstream(ByteView raw) {
    if (raw.size() > kMaxUpstreamSize)
        throw Error(ErrorCode::BadInput,
                    fmt::format("standard input is larger than {} bytes", kMaxUpstreamSize));
    if (raw.empty())
        throw Error(ErrorCode::BadInput, "standard input is empty (expected a JSON document)");
    // nlohmann's lexer takes a NUL byte outside a string for the end of the input, so
    // "{...}\0garbage" would pass as one document. No JSON text holds a raw NUL byte.
    if (auto nul = std::find(raw.begin(), raw.end(), std::uint8_t{0}); nul != raw.end())
        throw Error(ErrorCode::BadInput,
                    fmt::format("standard input is not valid JSON: a NUL byte at offset {}",
                                nul - raw.begin()));
    Limits limits;
    if (!json::sax_parse(raw.begin(), raw.end(), &limits, json::input_format_t::json, true,
                         false)) {
        if (limits.error.empty()) limits.error = "standard input is not valid JSON";
        throw Error(ErrorCode::BadInput, limits.error);
    }
    json j = json::parse(raw.begin(), raw.end(), nullptr, false);
    if (j.is_discarded()) throw Error(ErrorCode::BadInput, "standard input is not valid JSON");
    return j;
}

CheckedPackage interpret_check(const json& doc, int pid) {
    schema_of(doc, {"hotpatch.check/1"});
    Field root(kErrors, doc, "");
    if (!root.at("ok").boolean())
        throw Error(ErrorCode::CheckFailed, "the check document says the package is not eligible");
    CheckedPackage c;
    Field package = root.at("package"), process = root.at("process");
    c.package_path = package.at("path").str();
    if (c.package_path.empty()) package.at("path").bad("empty");
    if (c.package_path.find('\0') != std::string::npos) package.at("path").bad("holds a NUL byte");
    c.package_sha256 = package.at("sha256").sha256();
    c.pid = process.at("pid").pid();
    c.start_time = process.at("start_time").uint64();
    if (pid != 0 && c.pid != pid)
        throw Error(ErrorCode::CheckFailed,
                    fmt::format("the check document is about process {}, not {}", c.pid, pid));
    return c;
}

ExpectedSites interpret_sites(const json& doc) {
    ExpectedSites out;
    out.schema = schema_of(doc, {"hotpatch.apply/1", "hotpatch.inspect/1"});
    Field root(kErrors, doc, "");
    out.kind = out.schema == "hotpatch.apply/1" ? ExpectedSites::Kind::Apply
                                                : ExpectedSites::Kind::Inspect;
    const char* what = out.kind == ExpectedSites::Kind::Apply ? "apply" : "inspect";
    if (!root.at("ok").boolean())
        bad_input(fmt::format("the {} document reports a failure (ok is false)", what));

    if (out.kind == ExpectedSites::Kind::Apply) {
        if (root.has("pid")) out.pid = root.at("pid").pid();
        Field rec = root.at("record");
        out.id = rec.at("id").str();
        out.state = rec.at("state").str();
        // "planned": a dry run; the others are a record's states (patch/record.hpp).
        bool applied = out.state == "applied";
        if (!applied && out.state != "reverted" && out.state != "planned" &&
            out.state != "preparing")
            rec.at("state").bad(fmt::format("unknown state \"{}\"", printable(out.state)));
        Field ss = rec.at("sites");
        std::size_t n = ss.array_size(kMaxUpstreamSites);
        out.sites.reserve(n);
        for (std::size_t i = 0; i < n; ++i) {
            Field s = ss.at(i);
            ExpectedSite site;
            site.address = s.at("address").addr();
            site.bytes = s.at(applied ? "new" : "original").hex(kMaxUpstreamSiteBytes);
            if (s.has("function")) site.function = s.at("function").str();
            out.sites.push_back(std::move(site));
        }
        return out;
    }

    out.id = root.at("manifest").at("id").str();
    out.package_sha256 = root.at("package").at("sha256").str();
    Field fns = root.at("functions");
    std::size_t n = fns.array_size(kMaxUpstreamSites);
    out.sites.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
        Field f = fns.at(i);
        ExpectedSite site;
        site.build_id = f.at("build_id").str();
        (void)f.at("address").addr(); // the function's: the site's own address is what counts
        Field s = f.at("site");
        site.address = s.at("address").addr();
        site.bytes = s.at("expected").hex(kMaxUpstreamSiteBytes);
        site.function = f.at("symbol").str();
        site.module = f.at("module").str();
        out.sites.push_back(std::move(site));
    }
    return out;
}

} // namespace hp::doc
