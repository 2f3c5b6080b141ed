#include "package/manifest.hpp"

#include "doc/error.hpp"
#include "doc/field.hpp"

#include <algorithm>
#include <fmt/format.h>
#include <unordered_set>

namespace hp::package {

using ojson = nlohmann::ordered_json;
using json = nlohmann::json;

bool valid_patch_id(std::string_view id) {
    if (id.empty() || id.size() > 64) return false;
    for (char c : id)
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return false;
    return true;
}

ojson to_json(const Manifest& m) {
    ojson j;
    j["format"] = m.format;
    j["id"] = m.id;
    j["description"] = m.description;
    j["arch"] = std::string(arch::name(m.arch));
    j["creator"] = m.creator;
    j["created"] = m.created;
    j["payload"] = {{"size", m.payload_size}, {"sha256", m.payload_sha256}};
    j["targets"] = ojson::array();
    for (const Target& t : m.targets) {
        ojson tj;
        tj["module"] = t.module;
        tj["build_id"] = t.build_id;
        tj["functions"] = ojson::array();
        for (const Function& f : t.functions) {
            ojson fj;
            fj["symbol"] = f.symbol;
            fj["address"] = hex_addr(f.address);
            fj["size"] = f.size;
            fj["size_source"] = f.size_source;
            fj["site"] = {{"offset", f.site.offset},
                          {"length", f.site.length},
                          {"far_length", f.site.far_length},
                          {"landing_pad", f.site.landing_pad},
                          {"expected", to_hex(f.site.expected)}};
            fj["sha256"] = f.sha256;
            fj["replacement"] = f.replacement;
            fj["replacement_address"] = hex_addr(f.replacement_address);
            tj["functions"].push_back(std::move(fj));
        }
        tj["local_symbols"] = ojson::array();
        for (const LocalSymbol& s : t.local_symbols)
            tj["local_symbols"].push_back(
                {{"name", s.name}, {"address", hex_addr(s.address)}, {"type", s.type}});
        j["targets"].push_back(std::move(tj));
    }
    j["undefined"] = ojson::array();
    for (const Undefined& u : m.undefined)
        j["undefined"].push_back(
            {{"name", u.name}, {"version", u.version}, {"weak", u.weak}, {"provider", u.provider}});
    return j;
}

namespace {

using doc::Field;

constexpr doc::FieldErrors kErrors{
    .code = ErrorCode::BadPackage,
    .prefix = "manifest",
    .root_path = true,
    .missing = "missing field",
    .unit = "bytes", // the limits of docs/package-format.md count UTF-8 bytes
    .address = "\"0x...\"",
    .max_string = kMaxNameLength,
    .max_address = 18,
};

} // namespace

Manifest manifest_from_json(const json& j) {
    Field root(kErrors, j, "");
    if (!j.is_object()) root.bad("the manifest is not a JSON object");
    Manifest m;
    m.format = static_cast<int>(root.at("format").uint(1000));
    if (m.format != kManifestFormat)
        root.at("format").bad(fmt::format(
            "manifest format {} is not supported (this tool reads {})", m.format, kManifestFormat));
    m.id = root.at("id").str(64);
    if (!valid_patch_id(m.id)) root.at("id").bad("not a patch id ([a-z0-9._-]{1,64})");
    m.description = root.at("description").str(64 * 1024);
    auto a = arch::from_name(root.at("arch").str(32));
    if (!a) root.at("arch").bad("unknown architecture");
    m.arch = *a;
    m.creator = root.at("creator").str(1024);
    m.created = root.at("created").str(64);
    Field payload = root.at("payload");
    m.payload_size = payload.at("size").uint(std::uint64_t{1} << 40);
    m.payload_sha256 = payload.at("sha256").sha256();

    Field targets = root.at("targets");
    std::size_t nt = targets.array_size(kMaxTargets);
    if (nt == 0) targets.bad("no target modules");
    std::size_t total_functions = 0;
    for (std::size_t i = 0; i < nt; ++i) {
        Field tf = targets.at(i);
        Target t;
        t.module = tf.at("module").str();
        t.build_id = tf.at("build_id").str(128);
        if (t.build_id.empty() || !from_hex(t.build_id) ||
            to_hex(*from_hex(t.build_id)) != t.build_id)
            tf.at("build_id").bad("not a lowercase hex build-id");
        for (const Target& earlier : m.targets)
            if (earlier.build_id == t.build_id)
                tf.at("build_id").bad("the same module appears twice");
        Field fns = tf.at("functions");
        std::size_t nf = fns.array_size(kMaxFunctions);
        total_functions += nf;
        if (total_functions > kMaxFunctions) fns.bad("too many functions in the package");
        for (std::size_t k = 0; k < nf; ++k) {
            Field ff = fns.at(k);
            Function f;
            f.symbol = ff.at("symbol").str();
            f.address = ff.at("address").addr();
            f.size = ff.at("size").uint(std::uint64_t{1} << 32);
            f.size_source = ff.at("size_source").str(16);
            if (f.size_source != "dynsym" && f.size_source != "symtab" &&
                f.size_source != "debug" && f.size_source != "eh_frame")
                ff.at("size_source").bad("not dynsym, symtab, debug or eh_frame");
            Field sf = ff.at("site");
            f.site.offset = static_cast<std::uint32_t>(sf.at("offset").uint(16));
            f.site.length = static_cast<std::uint32_t>(sf.at("length").uint(kMaxSiteBytes));
            f.site.far_length = static_cast<std::uint32_t>(sf.at("far_length").uint(kMaxSiteBytes));
            f.site.landing_pad = sf.at("landing_pad").boolean();
            f.site.expected = sf.at("expected").canonical_hex(kMaxSiteBytes);
            std::size_t need = std::max(f.site.length, f.site.far_length);
            if (f.site.landing_pad && m.arch != arch::Arch::AArch64)
                sf.at("landing_pad").bad("a landing pad site exists only on aarch64");
            std::size_t pad = f.site.landing_pad ? 4 : 0;
            if (f.site.length < arch::near_branch_size(m.arch) + pad)
                sf.at("length").bad(fmt::format("{} bytes cannot hold a branch", f.site.length));
            if (f.site.far_length != 0 && f.site.far_length < arch::far_branch_size(m.arch) + pad)
                sf.at("far_length")
                    .bad(fmt::format("{} bytes cannot hold a far branch", f.site.far_length));
            if (f.site.landing_pad && f.site.offset != 0)
                sf.at("offset").bad("a landing pad site starts at the function");
            if (f.site.expected.size() != need)
                sf.at("expected")
                    .bad(fmt::format("{} bytes, the site needs {}", f.site.expected.size(), need));
            if (f.address + f.site.offset < f.address)
                ff.at("address").bad("site wraps the address space");
            f.sha256 = ff.at("sha256").sha256();
            f.replacement = ff.at("replacement").str();
            if (f.replacement.empty()) ff.at("replacement").bad("empty symbol name");
            f.replacement_address = ff.at("replacement_address").addr();
            t.functions.push_back(std::move(f));
        }
        Field ls = tf.at("local_symbols");
        std::size_t nl = ls.array_size(kMaxSymbols);
        for (std::size_t k = 0; k < nl; ++k) {
            Field lf = ls.at(k);
            LocalSymbol s;
            s.name = lf.at("name").str();
            if (s.name.empty()) lf.at("name").bad("empty symbol name");
            s.address = lf.at("address").addr();
            s.type = lf.at("type").str(16);
            if (s.type != "func" && s.type != "object" && s.type != "notype")
                lf.at("type").bad("not func, object or notype");
            t.local_symbols.push_back(std::move(s));
        }
        m.targets.push_back(std::move(t));
    }
    if (total_functions == 0) targets.bad("no functions to replace");

    Field und = root.at("undefined");
    std::size_t nu = und.array_size(kMaxSymbols);
    // Each target's local symbol names, indexed once for the provider check below (a search
    // per entry would cost 100 000 x 100 000 string compares at the limits).
    std::vector<std::unordered_set<std::string_view>> local_names(m.targets.size());
    for (std::size_t t = 0; t < m.targets.size(); ++t)
        for (const LocalSymbol& l : m.targets[t].local_symbols)
            local_names[t].insert(l.name);
    for (std::size_t k = 0; k < nu; ++k) {
        Field uf = und.at(k);
        Undefined u;
        u.name = uf.at("name").str();
        u.version = uf.at("version").str(256);
        u.weak = uf.at("weak").boolean();
        u.provider = uf.at("provider").str(32);
        if (u.provider.rfind("target:", 0) == 0) {
            auto idx = u.provider.substr(7);
            if (idx.empty() || idx.size() > 3 ||
                idx.find_first_not_of("0123456789") != std::string::npos ||
                std::stoul(idx) >= m.targets.size())
                uf.at("provider").bad("names a target that does not exist");
            if (local_names[std::stoul(idx)].count(u.name) == 0)
                uf.at("provider")
                    .bad(fmt::format("target {} has no local symbol '{}'", idx, u.name));
        } else if (u.provider != "process") {
            uf.at("provider").bad("not \"process\" or \"target:N\"");
        }
        m.undefined.push_back(std::move(u));
    }
    return m;
}

} // namespace hp::package
