#include "package/describe.hpp"

#include "elf/elf_file.hpp"
#include "package/payload.hpp"

#include <fmt/format.h>
#include <unordered_map>

namespace hp::package {

using doc::json;

namespace {

std::string seg_flags(std::uint32_t f) {
    std::string s = "---";
    if (f & elf::PF_R) s[0] = 'r';
    if (f & elf::PF_W) s[1] = 'w';
    if (f & elf::PF_X) s[2] = 'x';
    return s;
}

json disasm_json(arch::Arch a, ByteView code, std::uint64_t addr) {
    json out = json::array();
    for (const arch::Insn& i : arch::disassemble(a, code, addr))
        out.push_back(
            {{"address", hex_addr(i.addr)}, {"bytes", to_hex(i.bytes)}, {"text", i.text}});
    return out;
}

// The replacement function's bytes: its symbol size when known, else up to the next
// function symbol, at most 4 KiB. `s` is the replacement's symbol (find_payload_function).
ByteView replacement_code(const elf::ElfFile& e, const Function& f, const elf::Symbol* s) {
    std::uint64_t size = 0;
    if (s && s->value == f.replacement_address) size = s->size;
    if (size == 0) size = 64;
    size = std::min<std::uint64_t>(size, 4096);
    while (size > 0) {
        if (auto b = e.read_vaddr(f.replacement_address, size)) return *b;
        size /= 2;
    }
    return {};
}

} // namespace

void describe(const Package& p, const std::string& path, ByteView file, bool disasm,
              const std::vector<PublicKey>& trusted, json& doc) {
    const Manifest& m = p.manifest;
    doc["package"] = {{"path", path},
                      {"size", file.size()},
                      {"sha256", sha256_hex(file)},
                      {"format", kContainerVersion}};
    doc["integrity"] = {{"digest", to_hex(p.digest)}, {"status", "ok"}};
    if (p.signature) {
        json sig = {{"status", "valid"},
                    {"key_id", p.signature->key_id},
                    {"trusted", is_trusted(*p.signature, trusted)}};
        for (const PublicKey& k : trusted)
            if (k.key == p.signature->public_key) sig["key_name"] = k.name;
        doc["signature"] = sig;
    } else {
        doc["signature"] = {{"status", "unsigned"}};
    }
    doc["manifest"] = to_json(m);

    elf::ElfFile e = elf::ElfFile::parse(p.payload, "payload", ErrorCode::BadPackage);
    json segs = json::array();
    for (const elf::Segment& s : e.segments())
        if (s.type == elf::PT_LOAD)
            segs.push_back({{"vaddr", hex_addr(s.vaddr)},
                            {"memsz", s.memsz},
                            {"filesz", s.filesz},
                            {"flags", seg_flags(s.flags)}});
    json und = json::array();
    // Per target, each local symbol's address (the last entry of a name, as a search would
    // give): indexed once, not searched per undefined symbol (100 000 x 100 000 at the limits).
    std::vector<std::unordered_map<std::string_view, std::uint64_t>> local_addr(m.targets.size());
    for (std::size_t t = 0; t < m.targets.size(); ++t)
        for (const LocalSymbol& ls : m.targets[t].local_symbols)
            local_addr[t][ls.name] = ls.address;
    for (const Undefined& u : m.undefined) {
        json uj = {
            {"name", u.name}, {"version", u.version}, {"weak", u.weak}, {"provider", u.provider}};
        if (u.provider.rfind("target:", 0) == 0) {
            const std::size_t t = std::stoul(u.provider.substr(7));
            uj["module"] = m.targets[t].module;
            if (auto it = local_addr[t].find(u.name); it != local_addr[t].end())
                uj["address"] = hex_addr(it->second);
        }
        und.push_back(std::move(uj));
    }
    json needed = json::array();
    for (const std::string& n : e.needed())
        needed.push_back(elf::printable(n)); // arbitrary bytes
    doc["payload"] = {{"size", p.payload.size()},
                      {"sha256", m.payload_sha256},
                      {"segments", segs},
                      {"needed", needed},
                      {"undefined", und}};

    std::unordered_map<std::string_view, const elf::Symbol*> replacement;
    if (disasm) {
        std::vector<std::string_view> wanted;
        for (const Target& t : m.targets)
            for (const Function& f : t.functions)
                wanted.push_back(f.replacement);
        replacement = find_payload_functions(e, wanted);
    }
    json fns = json::array();
    for (const Target& t : m.targets)
        for (const Function& f : t.functions) {
            std::uint64_t site = f.address + f.site.offset;
            json fj = {{"module", t.module},
                       {"build_id", t.build_id},
                       {"symbol", f.symbol},
                       {"address", hex_addr(f.address)},
                       {"size", f.size},
                       {"site",
                        {{"address", hex_addr(site)},
                         {"offset", f.site.offset},
                         {"length", f.site.length},
                         {"far_length", f.site.far_length},
                         {"landing_pad", f.site.landing_pad},
                         {"expected", to_hex(f.site.expected)}}},
                       {"sha256", f.sha256},
                       {"replacement", f.replacement},
                       {"replacement_address", hex_addr(f.replacement_address)}};
            if (disasm) {
                fj["site_disasm"] = disasm_json(m.arch, f.site.expected, site);
                fj["replacement_disasm"] =
                    disasm_json(m.arch, replacement_code(e, f, replacement.at(f.replacement)),
                                f.replacement_address);
            }
            fns.push_back(std::move(fj));
        }
    doc["functions"] = std::move(fns);
}

std::string describe_text(const json& doc) {
    std::string out;
    const json& m = doc["manifest"];
    out += fmt::format("package  {} ({} bytes)\n", doc["package"]["path"].get<std::string>(),
                       doc["package"]["size"].get<std::uint64_t>());
    out += fmt::format("id       {}\n", m["id"].get<std::string>());
    if (!m["description"].get<std::string>().empty())
        out += fmt::format("about    {}\n", m["description"].get<std::string>());
    out += fmt::format("arch     {}\n", m["arch"].get<std::string>());
    out += fmt::format("created  {} by {}\n", m["created"].get<std::string>(),
                       m["creator"].get<std::string>());
    out += fmt::format("digest   ok (sha256 {})\n", doc["integrity"]["digest"].get<std::string>());
    const json& sig = doc["signature"];
    if (sig["status"] == "unsigned")
        out += "signed   no\n";
    else
        out +=
            fmt::format("signed   valid, key {}{}\n", sig["key_id"].get<std::string>(),
                        sig["trusted"].get<bool>() ? " (trusted)" : " (not in the trusted keys)");
    for (const json& t : m["targets"])
        out += fmt::format("target   {} build-id {}\n", t["module"].get<std::string>(),
                           t["build_id"].get<std::string>());
    out += fmt::format("payload  {} bytes\n", doc["payload"]["size"].get<std::uint64_t>());
    for (const json& u : doc["payload"]["undefined"]) {
        std::string v = u["version"].get<std::string>();
        out += fmt::format(
            "  needs  {}{}{} from {}\n", u["name"].get<std::string>(), v.empty() ? "" : "@", v,
            u["provider"] == "process" ? std::string("the process")
                                       : u.value("module", std::string("target")) + " at " +
                                             u.value("address", std::string("?")));
    }
    for (const json& f : doc["functions"]) {
        std::string sym = f["symbol"].get<std::string>();
        out += fmt::format("function {} {} ({} bytes) -> {}\n", f["module"].get<std::string>(),
                           sym.empty() ? f["address"].get<std::string>()
                                       : sym + " @ " + f["address"].get<std::string>(),
                           f["size"].get<std::uint64_t>(), f["replacement"].get<std::string>());
        out += fmt::format(
            "  site   {} length {} expects {}\n", f["site"]["address"].get<std::string>(),
            f["site"]["length"].get<unsigned>(), f["site"]["expected"].get<std::string>());
        for (const char* key : {"site_disasm", "replacement_disasm"}) {
            if (!f.contains(key)) continue;
            out += std::string("  ") + (key[0] == 's' ? "old site:" : "replacement:") + "\n";
            for (const json& i : f[key])
                out += fmt::format("    {:>18}  {:<24} {}\n", i["address"].get<std::string>(),
                                   i["bytes"].get<std::string>(), i["text"].get<std::string>());
        }
    }
    if (doc.contains("warnings"))
        for (const json& w : doc["warnings"])
            out += "warning  " + w.get<std::string>() + "\n";
    return out;
}

} // namespace hp::package
