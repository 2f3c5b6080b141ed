// Applying and reverting a package in a running process (DESIGN §6):
// plan (no contact) -> prepare (one borrowed thread) -> switch (all stopped) -> record.
#pragma once

#include "package/container.hpp"
#include "patch/record.hpp"

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace hp::patch {

// DESIGN §6 consistency models. Entry: no thread's instruction pointer inside a site (a
// thread already inside an old function finishes it in the old code). Stack (default): no
// thread executing in, or holding a return address into, any function being replaced
// (revert: any replacement), so that no call chain mixes old and new code - what a
// multi-function patch that changes a contract between functions needs.
enum class Consistency { Entry, Stack };
std::string_view consistency_name(Consistency c);

// The steps of the plan, in order; a dry run tells hp-check which one stopped it.
enum class PlanStep { Package, Process, Records, Modules, Sites, Reach, Symbols, Encoding, Done };

struct ApplyOptions {
    proc::Pid pid = 0;
    std::chrono::milliseconds timeout{5000};
    bool dry_run = false;
    bool allow_unsigned = false;
    Consistency consistency = Consistency::Stack;
    std::string keys_dir;                   // "" = trusted_keys_dir()
    std::optional<proc::Instance> expected; // from a check document: refuse another instance
    PlanStep* step = nullptr;               // when set: the step the plan is in (Done after it)
    // When set: what the repair of killed runs' remains did, kept even when the apply is
    // refused after it (Outcome::repaired is lost with the exception).
    std::vector<std::string>* repaired = nullptr;
};

struct Timings {
    std::uint64_t plan_us = 0, prepare_us = 0, switch_us = 0, total_us = 0;
    std::uint64_t freeze_us = 0;
    unsigned attempts = 0; // stop-the-world attempts (retries when a thread was in a site)
    std::uint64_t max_attempt_freeze_us = 0; // the longest of them, the last one's freeze included
};

// The consistency check never passed before the timeout (ErrorCode::Unsafe): with the
// attempts made and the longest time one of them held the threads.
class Refused : public Error {
  public:
    Refused(std::string message, unsigned n, std::uint64_t max_freeze_us)
        : Error(ErrorCode::Unsafe, std::move(message)), attempts(n),
          max_attempt_freeze_us(max_freeze_us) {}
    unsigned attempts;
    std::uint64_t max_attempt_freeze_us;
};

struct Outcome {
    Record record;
    Timings timings;
    bool unmapped = false;               // revert: the payload mapping was removed
    std::string keep_reason;             // revert: why it stayed mapped
    std::vector<std::string> superseded; // apply: ids this one lies on top of
    std::vector<std::string> repaired;   // what interrupted runs had left and was undone first
};

// Throws hp::Error with the codes of DESIGN §3; the process is untouched or fully
// restored whenever an error is thrown.
Outcome apply(const package::Package& pkg, const std::string& package_sha256,
              const ApplyOptions& opt);
Outcome revert(proc::Pid pid, const std::string& id, std::chrono::milliseconds timeout,
               Consistency consistency = Consistency::Stack);

} // namespace hp::patch
