// The record of one apply, kept inside the patched process itself (DESIGN §2, §6): the
// first bytes of the patch mapping. hp-verify and later hp-apply runs find it there, so
// no state file on the host can disagree with the process.
//
// Layout at the record address (little-endian):
//   0  "HPRECORD"        magic
//   8  u32 version = 2 (1 is still read; see record.cpp)
//   12 u32 state         1 preparing, 2 applied, 3 reverted (payload still mapped)
//   16 u64 json_length
//   24 u64 freeze_us     written after the switch
//   32 JSON              the record body (sites with original and new bytes, ...)
// State changes are single 4-byte writes; the JSON is written while the state is
// "preparing" (nothing reachable yet) or rewritten inside reserved capacity.
#pragma once

#include "common/bytes.hpp"
#include "proc/process.hpp"

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace hp::patch {

enum class State : std::uint32_t { Preparing = 1, Applied = 2, Reverted = 3 };
std::string_view state_name(State s);

struct SiteRecord {
    std::string module; // module name
    std::string build_id;
    std::string function;               // symbol ("" when patched by address)
    std::uint64_t function_address = 0; // runtime
    std::uint64_t address = 0;          // runtime address of the site
    Bytes original;                // what was there before this patch (maybe another patch's bytes)
    Bytes patched;                 // what this patch wrote
    std::string supersedes;        // id of the patch whose bytes `original` are, if any
    std::uint64_t replacement = 0; // runtime address of the replacement function
};

struct MappingRange {
    std::uint64_t start = 0, end = 0;
};

struct Record {
    std::string id;
    std::string package_sha256;
    std::string tool_version;
    std::string time; // RFC 3339 UTC of the apply
    std::string consistency = "entry";
    State state = State::Preparing;
    proc::Instance instance;
    std::vector<MappingRange> mappings; // [0] holds the record and payload; thunk pages after
    std::uint64_t payload_base = 0;
    std::vector<SiteRecord> sites;
    std::uint64_t freeze_us = 0;
    std::uint64_t address = 0;  // where the record lives in the target
    std::uint64_t capacity = 0; // bytes reserved for it
};

constexpr std::size_t kRecordHeader = 32;

nlohmann::ordered_json to_json(const Record& r);
// Bytes of the whole record (header + JSON) to write at r.address.
Bytes serialize(const Record& r);
// Parses a record read from the target; nullopt when the magic is absent or it is
// malformed (a damaged record is reported by the caller, never trusted).
std::optional<Record> parse(ByteView bytes, std::uint64_t address);

// The name of the patch mappings in /proc/PID/maps: "/memfd:hotpatch:<id> (deleted)".
std::string mapping_name(const std::string& id);
// Every record in the process: the first mapping of each "hotpatch:" memfd.
std::vector<Record> find_records(const proc::Memory& mem, const std::vector<proc::Mapping>& maps);

// What an apply that was killed before writing its record leaves in the process: patch
// mappings no record accounts for, and the memfd's descriptor if it was not closed yet.
// Nothing points into them (no site is written before the record), so removing them is
// always safe; the next hp-apply does, as does hp-apply --revert with their id.
struct Debris {
    std::string id;
    std::vector<MappingRange> mappings;
    std::vector<int> fds; // in the target
};
// A patch mapping that starts with a record's magic is never debris, even when its record
// cannot be read (damaged, or written by another version of hotpatch): sites may lead
// into it, and unmapping it would crash the process.
std::vector<Debris> find_debris(proc::Pid pid, const proc::Memory& mem,
                                const std::vector<proc::Mapping>& maps,
                                const std::vector<Record>& records);

// Whether an applied record has a site already holding its original bytes: what a revert
// killed between its site writes leaves. hp-verify names it; the next hp-apply, or
// hp-apply --revert with its id, finishes the revert.
bool half_reverted(const proc::Memory& mem, const Record& r);

// Offsets of the header fields, for the single-word writes.
constexpr std::uint64_t kStateOffset = 12;
constexpr std::uint64_t kFreezeOffset = 24;

} // namespace hp::patch
