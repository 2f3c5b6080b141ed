#include "patch/verify.hpp"

#include "patch/record.hpp"

#include <fmt/format.h>

namespace hp::patch {

using doc::json;

namespace {

[[noreturn]] void bad_input(const std::string& what) { throw Error(ErrorCode::BadInput, "upstream document: " + what); }

const nlohmann::json& field(const nlohmann::json& j, const char* key, const std::string& where) {
    if (!j.is_object() || !j.contains(key)) bad_input(fmt::format("{}: missing \"{}\"", where, key));
    return j[key];
}
std::string str_field(const nlohmann::json& j, const char* key, const std::string& where) {
    const auto& v = field(j, key, where);
    if (!v.is_string()) bad_input(fmt::format("{}.{}: not a string", where, key));
    return v.get<std::string>();
}
std::uint64_t addr_field(const nlohmann::json& j, const char* key, const std::string& where) {
    auto a = parse_addr(str_field(j, key, where));
    if (!a) bad_input(fmt::format("{}.{}: not an address", where, key));
    return *a;
}
Bytes hex_field(const nlohmann::json& j, const char* key, const std::string& where) {
    auto h = from_hex(str_field(j, key, where));
    if (!h || h->empty() || h->size() > 64) bad_input(fmt::format("{}.{}: not hex bytes (1..64)", where, key));
    return *h;
}

std::string site_label(const SiteRecord& s) {
    return s.function.empty() ? hex_addr(s.function_address) : s.function;
}

} // namespace

bool verify_process(proc::Pid pid, json& doc) {
    proc::Instance inst = proc::instance(pid);
    doc["pid"] = pid;
    doc["start_time"] = inst.start_time;
    auto maps = proc::read_maps(pid);
    proc::Memory mem(pid);
    auto records = find_records(mem, maps);
    bool ok = true;
    json patches = json::array();
    std::vector<std::string> problems;
    for (const Record& r : records) {
        json pj = {{"id", r.id}, {"state", std::string(state_name(r.state))}, {"package_sha256", r.package_sha256},
                   {"time", r.time}, {"freeze_us", r.freeze_us}, {"sites", json::array()}};
        for (const SiteRecord& s : r.sites) {
            Bytes cur(s.patched.size());
            bool readable = mem.read_fallible(s.address, cur.data(), cur.size());
            std::string status;
            if (!readable) status = "unreadable";
            else if (cur == s.patched) status = "patched";
            else if (cur == s.original) status = "original";
            else {
                status = "other";
                for (const Record& o : records)
                    for (const SiteRecord& os : o.sites)
                        if (&o != &r && o.state == State::Applied && os.address == s.address && os.patched == cur &&
                            os.original == s.patched)
                            status = "superseded:" + o.id;
            }
            bool good = r.state == State::Applied ? (status == "patched" || status.rfind("superseded:", 0) == 0)
                                                  : status != "unreadable";
            if (r.state == State::Preparing) good = false;
            json sj = {{"function", s.function}, {"module", s.module}, {"address", hex_addr(s.address)},
                       {"status", status}, {"expected", to_hex(r.state == State::Applied ? s.patched : s.original)},
                       {"found", readable ? to_hex(cur) : ""}, {"ok", good}};
            if (!good)
                problems.push_back(fmt::format("patch '{}': site of {} at {} is {} (holds {}, expected {})", r.id,
                                               site_label(s), hex_addr(s.address), status, readable ? to_hex(cur) : "?",
                                               to_hex(s.patched)));
            ok = ok && good;
            pj["sites"].push_back(std::move(sj));
        }
        if (r.state == State::Preparing)
            problems.push_back(fmt::format("patch '{}' is half applied (state preparing: an apply was interrupted); "
                                           "run hp-apply -p {} --revert {}",
                                           r.id, pid, r.id));
        patches.push_back(std::move(pj));
    }
    doc["patches"] = std::move(patches);
    doc["problems"] = problems;
    return ok;
}

bool verify_document(proc::Pid pid, const nlohmann::json& up, json& doc) {
    if (!up.is_object()) bad_input("not a JSON object");
    std::string schema = str_field(up, "schema", "document");
    proc::Instance inst = proc::instance(pid);
    doc["pid"] = pid;
    doc["start_time"] = inst.start_time;
    doc["source"] = schema;
    auto maps = proc::read_maps(pid);
    proc::Memory mem(pid);
    json sites = json::array();
    bool ok = true;
    std::vector<std::string> problems;

    if (schema == "hotpatch.apply/1") {
        if (field(up, "ok", "document") != true) bad_input("the apply document reports a failure (ok is false)");
        const auto& rec = field(up, "record", "document");
        std::string state = str_field(rec, "state", "record");
        if (up.contains("pid") && up["pid"].is_number_integer() && up["pid"].get<int>() != pid)
            bad_input(fmt::format("the document is about process {}, not {}", up["pid"].get<int>(), pid));
        std::string id = str_field(rec, "id", "record");
        const auto& ss = field(rec, "sites", "record");
        if (!ss.is_array() || ss.size() > 100000) bad_input("record.sites: not an array");
        for (std::size_t i = 0; i < ss.size(); ++i) {
            std::string w = fmt::format("record.sites[{}]", i);
            std::uint64_t addr = addr_field(ss[i], "address", w);
            Bytes want = hex_field(ss[i], state == "applied" ? "new" : "original", w);
            Bytes cur(want.size());
            bool readable = mem.read_fallible(addr, cur.data(), cur.size());
            bool good = readable && cur == want;
            std::string fn = ss[i].contains("function") && ss[i]["function"].is_string() ? ss[i]["function"].get<std::string>() : "";
            if (!good)
                problems.push_back(fmt::format("site of {} at {} holds {}, expected {} (patch '{}' {})", fn.empty() ? "?" : fn,
                                               hex_addr(addr), readable ? to_hex(cur) : "(unreadable)", to_hex(want), id, state));
            sites.push_back({{"function", fn}, {"address", hex_addr(addr)}, {"expected", to_hex(want)},
                             {"found", readable ? to_hex(cur) : ""}, {"status", good ? state : "mismatch"}, {"ok", good}});
            ok = ok && good;
        }
    } else if (schema == "hotpatch.inspect/1") {
        if (field(up, "ok", "document") != true) bad_input("the inspect document reports a failure (ok is false)");
        auto mods = proc::modules(pid, maps);
        auto records = find_records(mem, maps);
        std::string id = str_field(field(up, "manifest", "document"), "id", "manifest");
        std::string sha = str_field(field(up, "package", "document"), "sha256", "package");
        const auto& fns = field(up, "functions", "document");
        if (!fns.is_array() || fns.size() > 100000) bad_input("functions: not an array");
        std::size_t n_orig = 0, n_patched = 0;
        for (std::size_t i = 0; i < fns.size(); ++i) {
            std::string w = fmt::format("functions[{}]", i);
            std::string bid = str_field(fns[i], "build_id", w);
            std::uint64_t faddr = addr_field(fns[i], "address", w);
            const auto& site = field(fns[i], "site", w);
            std::uint64_t off = addr_field(site, "address", w + ".site") - faddr;
            Bytes expected = hex_field(site, "expected", w + ".site");
            std::string fn = str_field(fns[i], "symbol", w);
            const proc::Module* mod = nullptr;
            for (const auto& md : mods)
                if (md.build_id == bid) mod = &md;
            json sj = {{"function", fn}, {"module", str_field(fns[i], "module", w)}};
            if (mod == nullptr) {
                sj["status"] = "module-not-loaded";
                problems.push_back(fmt::format("{}: module with build-id {} is not loaded", fn, bid));
                sites.push_back(sj);
                continue;
            }
            std::uint64_t addr = mod->bias + faddr + off;
            sj["address"] = hex_addr(addr);
            Bytes cur(expected.size());
            std::string status = "other";
            if (mem.read_fallible(addr, cur.data(), cur.size())) {
                if (cur == expected) status = "original";
                for (const Record& r : records)
                    for (const SiteRecord& s : r.sites)
                        if (r.id == id && r.state == State::Applied && s.address == addr &&
                            std::equal(s.patched.begin(), s.patched.end(), cur.begin()))
                            status = "patched";
                sj["found"] = to_hex(cur);
            }
            sj["status"] = status;
            if (status == "original") ++n_orig;
            if (status == "patched") ++n_patched;
            if (status == "other")
                problems.push_back(fmt::format("site of {} at {} holds {}: neither the original bytes nor patch '{}'",
                                               fn, hex_addr(addr), to_hex(cur), id));
            sites.push_back(std::move(sj));
        }
        std::string verdict = n_patched == fns.size() ? "applied" : n_orig == fns.size() ? "not-applied" : "mixed";
        doc["package"] = {{"id", id}, {"sha256", sha}, {"state", verdict}};
        ok = problems.empty() && verdict != "mixed";
        if (verdict == "mixed" && problems.empty())
            problems.push_back(fmt::format("patch '{}' is only partly present: {} of {} sites patched", id, n_patched,
                                           fns.size()));
    } else {
        bad_input(fmt::format("schema \"{}\" carries no sites (expected hotpatch.apply/1 or hotpatch.inspect/1)", schema));
    }
    doc["sites"] = std::move(sites);
    doc["problems"] = problems;
    return ok;
}

} // namespace hp::patch
