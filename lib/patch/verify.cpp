#include "patch/verify.hpp"

#include "doc/upstream.hpp"
#include "patch/record.hpp"

#include <fmt/format.h>

namespace hp::patch {

using doc::json;

namespace {

[[noreturn]] void bad_input(const std::string& what) {
    throw Error(ErrorCode::BadInput, "upstream document: " + what);
}

// How many of the sites of a patch's verify document (`pj["sites"]`) have `status`.
std::size_t sites_with_status(const json& pj, std::string_view status) {
    std::size_t n = 0;
    for (const json& sj : pj["sites"])
        n += sj["status"] == status ? 1 : 0;
    return n;
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
        const bool reverting = half_reverted(mem, r); // a revert killed between its site writes
        json pj = {{"id", r.id},
                   {"state", std::string(state_name(r.state))},
                   {"package_sha256", r.package_sha256},
                   {"time", r.time},
                   {"freeze_us", r.freeze_us},
                   {"sites", json::array()}};
        for (const SiteRecord& s : r.sites) {
            Bytes cur(s.patched.size());
            bool readable = mem.read_fallible(s.address, cur.data(), cur.size());
            std::string status;
            if (!readable)
                status = "unreadable";
            else if (cur == s.patched)
                status = "patched";
            else if (cur == s.original)
                status = "original";
            else {
                status = "other";
                for (const Record& o : records)
                    for (const SiteRecord& os : o.sites)
                        if (&o != &r && o.state == State::Applied && os.address == s.address &&
                            os.patched == cur && os.original == s.patched)
                            status = "superseded:" + o.id;
            }
            bool good = r.state == State::Applied
                            ? (status == "patched" || status.rfind("superseded:", 0) == 0)
                            : status != "unreadable";
            if (r.state == State::Preparing) good = false;
            json sj = {{"function", s.function},
                       {"module", s.module},
                       {"address", hex_addr(s.address)},
                       {"status", status},
                       {"expected", to_hex(r.state == State::Applied ? s.patched : s.original)},
                       {"found", readable ? to_hex(cur) : ""},
                       {"ok", good}};
            if (!good && r.state != State::Preparing &&
                !reverting) // a half state gets one headline below
                problems.push_back(
                    fmt::format("patch '{}': site of {} at {} is {} (holds {}, expected {})", r.id,
                                site_label(s), hex_addr(s.address), status,
                                readable ? to_hex(cur) : "?", to_hex(s.patched)));
            ok = ok && good;
            pj["sites"].push_back(std::move(sj));
        }
        if (r.state == State::Preparing) {
            const std::size_t written = sites_with_status(pj, "patched");
            pj["interrupted"] = fmt::format("{} of {} sites written", written, r.sites.size());
            problems.insert(
                problems.begin(),
                fmt::format(
                    "patch '{}' is half applied (state preparing, {} of {} sites written: an "
                    "apply was interrupted); the next hp-apply -p {} rolls it back, as does "
                    "hp-apply -p {} --revert {}",
                    r.id, written, r.sites.size(), pid, pid, r.id));
        }
        if (reverting) {
            const std::size_t restored = sites_with_status(pj, "original");
            pj["interrupted"] = fmt::format("{} of {} sites restored", restored, r.sites.size());
            problems.insert(
                problems.begin(),
                fmt::format(
                    "patch '{}' is half reverted (state applied, {} of {} sites restored: a revert "
                    "was interrupted); hp-apply -p {} --revert {} finishes the revert, as does the "
                    "next hp-apply -p {}",
                    r.id, restored, r.sites.size(), pid, r.id, pid));
        }
        patches.push_back(std::move(pj));
    }
    // An apply killed before its record existed: mappings and a descriptor, nothing reachable.
    for (const Debris& d : find_debris(pid, mem, maps, records)) {
        json mj = json::array();
        for (const MappingRange& m : d.mappings)
            mj.push_back({{"start", hex_addr(m.start)}, {"end", hex_addr(m.end)}});
        patches.push_back({{"id", d.id},
                           {"state", "debris"},
                           {"mappings", mj},
                           {"fds", d.fds},
                           {"sites", json::array()}});
        problems.insert(
            problems.begin(),
            fmt::format(
                "an apply of '{}' was interrupted before its record was written: {} mappings and "
                "{} descriptors remain, no site is written; the next hp-apply -p {} removes them, "
                "as "
                "does hp-apply -p {} --revert {}",
                d.id, d.mappings.size(), d.fds.size(), pid, pid, d.id));
        ok = false;
    }
    doc["patches"] = std::move(patches);
    doc["problems"] = problems;
    return ok;
}

bool verify_document(proc::Pid pid, const nlohmann::json& up, json& doc) {
    // Everything in the document is validated before the process is looked at.
    hp::doc::ExpectedSites want = hp::doc::interpret_sites(up);
    if (want.pid && *want.pid != pid)
        bad_input(fmt::format("the document is about process {}, not {}", *want.pid, pid));
    proc::Instance inst = proc::instance(pid);
    doc["pid"] = pid;
    doc["start_time"] = inst.start_time;
    doc["source"] = want.schema;
    auto maps = proc::read_maps(pid);
    proc::Memory mem(pid);
    json sites = json::array();
    bool ok = true;
    std::vector<std::string> problems;

    if (want.kind == hp::doc::ExpectedSites::Kind::Apply) {
        for (const hp::doc::ExpectedSite& s : want.sites) {
            Bytes cur(s.bytes.size());
            bool readable = mem.read_fallible(s.address, cur.data(), cur.size());
            bool good = readable && cur == s.bytes;
            if (!good)
                problems.push_back(fmt::format(
                    "site of {} at {} holds {}, expected {} (patch '{}' {})",
                    s.function.empty() ? "?" : s.function, hex_addr(s.address),
                    readable ? to_hex(cur) : "(unreadable)", to_hex(s.bytes), want.id, want.state));
            sites.push_back({{"function", s.function},
                             {"address", hex_addr(s.address)},
                             {"expected", to_hex(s.bytes)},
                             {"found", readable ? to_hex(cur) : ""},
                             {"status", good ? want.state : "mismatch"},
                             {"ok", good}});
            ok = ok && good;
        }
    } else {
        auto mods = proc::modules(pid, maps);
        auto records = find_records(mem, maps);
        const std::string& id = want.id;
        std::size_t n_orig = 0, n_patched = 0;
        for (const hp::doc::ExpectedSite& s : want.sites) {
            const proc::Module* mod = nullptr;
            for (const auto& md : mods)
                if (md.build_id == s.build_id) mod = &md;
            json sj = {{"function", s.function}, {"module", s.module}};
            if (mod == nullptr) {
                sj["status"] = "module-not-loaded";
                problems.push_back(fmt::format("{}: module with build-id {} is not loaded",
                                               s.function, s.build_id));
                sites.push_back(sj);
                continue;
            }
            std::uint64_t addr = mod->bias + s.address;
            sj["address"] = hex_addr(addr);
            Bytes cur(s.bytes.size());
            std::string status = "other";
            if (mem.read_fallible(addr, cur.data(), cur.size())) {
                if (cur == s.bytes) status = "original";
                for (const Record& r : records)
                    for (const SiteRecord& rs : r.sites)
                        if (r.id == id && r.state == State::Applied && rs.address == addr &&
                            rs.patched.size() <= cur.size() &&
                            std::equal(rs.patched.begin(), rs.patched.end(), cur.begin()))
                            status = "patched";
                sj["found"] = to_hex(cur);
            }
            sj["status"] = status;
            if (status == "original") ++n_orig;
            if (status == "patched") ++n_patched;
            if (status == "other")
                problems.push_back(fmt::format(
                    "site of {} at {} holds {}: neither the original bytes nor patch '{}'",
                    s.function, hex_addr(addr), to_hex(cur), id));
            sites.push_back(std::move(sj));
        }
        std::size_t n = want.sites.size();
        std::string verdict = n_patched == n ? "applied" : n_orig == n ? "not-applied" : "mixed";
        doc["package"] = {{"id", id}, {"sha256", want.package_sha256}, {"state", verdict}};
        ok = problems.empty() && verdict != "mixed";
        if (verdict == "mixed" && problems.empty())
            problems.push_back(fmt::format(
                "patch '{}' is only partly present: {} of {} sites patched", id, n_patched, n));
    }
    doc["sites"] = std::move(sites);
    doc["problems"] = problems;
    return ok;
}

} // namespace hp::patch
