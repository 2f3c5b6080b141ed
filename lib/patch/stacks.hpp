// Which threads use a piece of code (DESIGN §6, consistency model): executing in it, or
// holding a return address into it. Used by --consistency stack (old functions on apply,
// replacements on revert) and before a reverted payload is unmapped.
#pragma once

#include "proc/process.hpp"
#include "ptrace/tracer.hpp"

#include <optional>
#include <string>
#include <vector>

namespace hp::patch {

struct CodeRange {
    std::uint64_t start = 0, end = 0;
    std::string name; // for messages: "'compute'", "the payload of 'fix-1'"
    // Function entries inside the range. A stack word equal to one is a function pointer
    // or a thread about to enter - neither executes the old code once the entry is
    // patched - so it does not count (only for stack words; the instruction pointer
    // always does).
    std::vector<std::uint64_t> entries;
};

// Every thread of `t` must be stopped. For each thread: its instruction pointer (and ARM64
// link register); then its stack from the stack pointer to the end of the mapping that
// holds it: first the frame-pointer chain (precise where every frame keeps one), then
// every aligned word (conservative: frames without a frame pointer - Debian's libc is
// built without - and signal frames are covered; a stale value can cause a false
// refusal, never a missed use). A thread on an alternate signal stack also has the stack
// its signal interrupted scanned, found through the signal frame's saved stack pointer. A
// stack that cannot be checked - its pointer in no mapping, unreadable, or more than 256
// MiB to scan - is itself a use (a refusal that names the thread), never a pass.
// Returns a description of the first few uses found. `maps` is refreshed when a thread's
// stack is not in it (a thread born since).
std::optional<std::string> code_in_use(const ptrace::Tracer& t, const proc::Memory& mem,
                                       std::vector<proc::Mapping>& maps,
                                       const std::vector<CodeRange>& ranges);

} // namespace hp::patch
