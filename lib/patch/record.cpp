#include "patch/record.hpp"

#include <cstring>
#include <dirent.h>
#include <fmt/format.h>
#include <map>
#include <set>
#include <unistd.h>

namespace hp::patch {

using ojson = nlohmann::ordered_json;

namespace {
constexpr char kMagic[8] = {'H', 'P', 'R', 'E', 'C', 'O', 'R', 'D'};
constexpr std::string_view kMemfdPrefix = "/memfd:hotpatch:";
// A record larger than this is not ours (1000-function packages need ~300 KiB).
constexpr std::uint64_t kMaxJson = 64u << 20;
} // namespace

std::string_view state_name(State s) {
    switch (s) {
    case State::Preparing:
        return "preparing";
    case State::Applied:
        return "applied";
    case State::Reverted:
        return "reverted";
    }
    return "unknown";
}

ojson to_json(const Record& r) {
    ojson j;
    j["id"] = r.id;
    j["package_sha256"] = r.package_sha256;
    j["state"] = std::string(state_name(r.state));
    j["pid"] = r.instance.pid;
    j["start_time"] = r.instance.start_time;
    j["time"] = r.time;
    j["tool_version"] = r.tool_version;
    j["consistency"] = r.consistency;
    j["freeze_us"] = r.freeze_us;
    j["record_address"] = hex_addr(r.address);
    j["payload_base"] = hex_addr(r.payload_base);
    j["mappings"] = ojson::array();
    for (const auto& m : r.mappings)
        j["mappings"].push_back({{"start", hex_addr(m.start)}, {"end", hex_addr(m.end)}});
    j["sites"] = ojson::array();
    for (const auto& s : r.sites) {
        ojson sj = {{"module", s.module},
                    {"build_id", s.build_id},
                    {"function", s.function},
                    {"function_address", hex_addr(s.function_address)},
                    {"address", hex_addr(s.address)},
                    {"original", to_hex(s.original)},
                    {"new", to_hex(s.patched)},
                    {"replacement", hex_addr(s.replacement)}};
        if (!s.supersedes.empty()) sj["supersedes"] = s.supersedes;
        j["sites"].push_back(std::move(sj));
    }
    return j;
}

// Version 2 of the record keeps the members of to_json() except the sites, which it
// writes compactly: a "modules" table of [name, build_id] and each site as an array
//   [module index, function, address, original, new, replacement,
//    function_address ("" when it is the address), supersedes (optional)]
// (~80 bytes a site instead of ~230: the record is most of what a 1000-function patch adds
// to the process beyond its code, docs/performance.md). Version 1 records (objects per
// site, as to_json() writes them) are still read.
constexpr std::uint32_t kVersion = 2;

Bytes serialize(const Record& r) {
    ojson j = to_json(r);
    // Header fields are authoritative: the JSON copies are informational.
    j.erase("state");
    j.erase("freeze_us");
    ojson modules = ojson::array(), sites = ojson::array();
    std::map<std::pair<std::string, std::string>, std::size_t> index;
    for (const SiteRecord& s : r.sites) {
        auto [it, added] = index.try_emplace({s.module, s.build_id}, modules.size());
        if (added) modules.push_back(ojson::array({s.module, s.build_id}));
        ojson site = ojson::array({it->second, s.function, hex_addr(s.address), to_hex(s.original),
                                   to_hex(s.patched), hex_addr(s.replacement)});
        const bool other_fn = s.function_address != s.address;
        if (other_fn || !s.supersedes.empty())
            site.push_back(other_fn ? hex_addr(s.function_address) : std::string());
        if (!s.supersedes.empty()) site.push_back(s.supersedes);
        sites.push_back(std::move(site));
    }
    j["modules"] = std::move(modules);
    j["sites"] = std::move(sites);
    std::string text = j.dump();
    Bytes out(kMagic, kMagic + 8);
    append_le32(out, kVersion);
    append_le32(out, static_cast<std::uint32_t>(r.state));
    append_le64(out, text.size());
    append_le64(out, r.freeze_us);
    out.insert(out.end(), text.begin(), text.end());
    return out;
}

std::optional<Record> parse(ByteView b, std::uint64_t address) {
    if (b.size() < kRecordHeader || std::memcmp(b.data(), kMagic, 8) != 0) return std::nullopt;
    const std::uint32_t version = load_le32(b.data() + 8);
    if (version != 1 && version != kVersion) return std::nullopt;
    std::uint32_t state = load_le32(b.data() + 12);
    std::uint64_t len = load_le64(b.data() + 16);
    if (state < 1 || state > 3 || len > kMaxJson || len > b.size() - kRecordHeader)
        return std::nullopt;
    auto j = nlohmann::json::parse(b.begin() + kRecordHeader, b.begin() + kRecordHeader + len,
                                   nullptr, false);
    if (j.is_discarded() || !j.is_object()) return std::nullopt;
    try {
        Record r;
        r.state = static_cast<State>(state);
        r.freeze_us = load_le64(b.data() + 24);
        r.address = address;
        r.id = j.at("id").get<std::string>();
        r.package_sha256 = j.at("package_sha256").get<std::string>();
        r.instance.pid = j.at("pid").get<int>();
        r.instance.start_time = j.at("start_time").get<std::uint64_t>();
        r.time = j.at("time").get<std::string>();
        r.tool_version = j.at("tool_version").get<std::string>();
        r.consistency = j.at("consistency").get<std::string>();
        auto addr = [](const nlohmann::json& v) {
            auto a = parse_addr(v.get<std::string>());
            if (!a) throw std::runtime_error("bad address");
            return *a;
        };
        auto hex = [](const nlohmann::json& v) {
            auto h = from_hex(v.get<std::string>());
            if (!h) throw std::runtime_error("bad hex");
            return *h;
        };
        r.payload_base = addr(j.at("payload_base"));
        for (const auto& m : j.at("mappings"))
            r.mappings.push_back({addr(m.at("start")), addr(m.at("end"))});
        const nlohmann::json* modules = version == 1 ? nullptr : &j.at("modules");
        for (const auto& s : j.at("sites")) {
            SiteRecord sr;
            if (version == 1) {
                sr.module = s.at("module").get<std::string>();
                sr.build_id = s.at("build_id").get<std::string>();
                sr.function = s.at("function").get<std::string>();
                sr.function_address = addr(s.at("function_address"));
                sr.address = addr(s.at("address"));
                sr.original = hex(s.at("original"));
                sr.patched = hex(s.at("new"));
                sr.replacement = addr(s.at("replacement"));
                if (s.contains("supersedes")) sr.supersedes = s.at("supersedes").get<std::string>();
            } else {
                if (!s.is_array() || s.size() < 6 || s.size() > 8)
                    throw std::runtime_error("bad site");
                if (!s.at(0).is_number_unsigned()) throw std::runtime_error("bad module index");
                const auto& mod = modules->at(s.at(0).get<std::size_t>());
                if (!mod.is_array() || mod.size() != 2) throw std::runtime_error("bad module");
                sr.module = mod.at(0).get<std::string>();
                sr.build_id = mod.at(1).get<std::string>();
                sr.function = s.at(1).get<std::string>();
                sr.address = addr(s.at(2));
                sr.original = hex(s.at(3));
                sr.patched = hex(s.at(4));
                sr.replacement = addr(s.at(5));
                sr.function_address = sr.address;
                if (s.size() > 6 && !s.at(6).get<std::string>().empty())
                    sr.function_address = addr(s.at(6));
                if (s.size() > 7) sr.supersedes = s.at(7).get<std::string>();
            }
            if (sr.original.size() != sr.patched.size() || sr.patched.empty() ||
                sr.patched.size() > 64)
                return std::nullopt;
            r.sites.push_back(std::move(sr));
        }
        if (!r.mappings.empty()) r.capacity = r.mappings[0].end - r.mappings[0].start;
        return r;
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

std::string mapping_name(const std::string& id) {
    return "hotpatch:" + id;
}

std::vector<Record> find_records(const proc::Memory& mem, const std::vector<proc::Mapping>& maps) {
    std::vector<Record> out;
    for (const proc::Mapping& m : maps) {
        if (m.path.compare(0, kMemfdPrefix.size(), kMemfdPrefix) != 0 || m.offset != 0) continue;
        // The record's header says how long it is; read it, then the JSON.
        std::uint8_t head[kRecordHeader];
        if (!mem.read_fallible(m.start, head, sizeof head)) continue;
        if (std::memcmp(head, kMagic, 8) != 0) continue;
        std::uint64_t len = load_le64(head + 16);
        if (len > kMaxJson || len > m.end - m.start) continue;
        Bytes b(kRecordHeader + len);
        if (!mem.read_fallible(m.start, b.data(), b.size())) continue;
        if (auto r = parse(b, m.start)) out.push_back(std::move(*r));
    }
    return out;
}

std::vector<Debris> find_debris(proc::Pid pid, const proc::Memory& mem,
                                const std::vector<proc::Mapping>& maps,
                                const std::vector<Record>& records) {
    // "/memfd:hotpatch:ID (deleted)" -> ID
    auto id_of = [](const std::string& path) -> std::optional<std::string> {
        if (path.compare(0, kMemfdPrefix.size(), kMemfdPrefix) != 0) return std::nullopt;
        std::string id = path.substr(kMemfdPrefix.size());
        constexpr std::string_view kDeleted = " (deleted)";
        if (id.size() >= kDeleted.size() &&
            id.compare(id.size() - kDeleted.size(), kDeleted.size(), kDeleted) == 0)
            id.resize(id.size() - kDeleted.size());
        return id;
    };
    // Ids whose first mapping starts with the record magic: a record, readable or not.
    std::set<std::string> recorded;
    for (const proc::Mapping& m : maps) {
        auto id = id_of(m.path);
        char magic[sizeof kMagic];
        if (id && m.offset == 0 &&
            mem.read_fallible(m.start, reinterpret_cast<std::uint8_t*>(magic), sizeof magic) &&
            std::memcmp(magic, kMagic, sizeof kMagic) == 0)
            recorded.insert(*id);
    }
    std::map<std::string, Debris> by_id;
    for (const proc::Mapping& m : maps) {
        auto id = id_of(m.path);
        if (!id || recorded.count(*id) != 0) continue;
        bool owned = false;
        for (const Record& r : records)
            for (const MappingRange& rr : r.mappings)
                if (m.start >= rr.start && m.end <= rr.end) owned = true;
        if (owned) continue;
        Debris& d = by_id[*id];
        d.id = *id;
        if (!d.mappings.empty() && d.mappings.back().end == m.start)
            d.mappings.back().end = m.end; // pieces of one mapping with other protections
        else
            d.mappings.push_back({m.start, m.end});
    }
    // A descriptor is only ever open while an hp-apply holds the process's lock, between
    // memfd_create and close: found without that lock held, it was left behind.
    std::string dir = fmt::format("/proc/{}/fd", pid);
    if (DIR* d = ::opendir(dir.c_str())) {
        while (dirent* e = ::readdir(d)) {
            if (e->d_name[0] == '.') continue;
            char target[512];
            ssize_t n = ::readlink((dir + "/" + e->d_name).c_str(), target, sizeof target - 1);
            if (n <= 0) continue;
            target[n] = 0;
            auto id = id_of(target);
            if (!id || recorded.count(*id) != 0) continue;
            Debris& db = by_id[*id];
            db.id = *id;
            db.fds.push_back(std::atoi(e->d_name));
        }
        ::closedir(d);
    }
    std::vector<Debris> out;
    for (auto& [id, d] : by_id)
        out.push_back(std::move(d));
    return out;
}

bool half_reverted(const proc::Memory& mem, const Record& r) {
    if (r.state != State::Applied) return false;
    for (const SiteRecord& s : r.sites) {
        Bytes cur(s.original.size());
        if (mem.read_fallible(s.address, cur.data(), cur.size()) && cur == s.original) return true;
    }
    return false;
}

} // namespace hp::patch
