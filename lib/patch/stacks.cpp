#include "patch/stacks.hpp"

#include <algorithm>
#include <fmt/format.h>

namespace hp::patch {

namespace {

constexpr std::uint64_t kMaxStack = std::uint64_t{8} << 20;
constexpr std::size_t kMaxReported = 4;

const CodeRange* range_of(const std::vector<CodeRange>& ranges, std::uint64_t v) {
    for (const CodeRange& r : ranges)
        if (v >= r.start && v < r.end) return &r;
    return nullptr;
}

// A value that may be a return address into one of the ranges.
const CodeRange* returns_into(const std::vector<CodeRange>& ranges, std::uint64_t v) {
    const CodeRange* r = range_of(ranges, v);
    if (r == nullptr || std::find(r->entries.begin(), r->entries.end(), v) != r->entries.end()) return nullptr;
    return r;
}

const proc::Mapping* mapping_at(const std::vector<proc::Mapping>& maps, std::uint64_t a) {
    for (const proc::Mapping& m : maps)
        if (a >= m.start && a < m.end) return &m;
    return nullptr;
}

} // namespace

std::optional<std::string> code_in_use(const ptrace::Tracer& t, const proc::Memory& mem,
                                       std::vector<proc::Mapping>& maps, const std::vector<CodeRange>& ranges) {
    std::vector<std::string> uses;
    bool refreshed = false;
    Bytes stack;
    for (const ptrace::ThreadInfo& th : t.threads()) {
        if (uses.size() >= kMaxReported) break;
        const std::uint64_t ip = th.regs.ip();
        if (const CodeRange* r = range_of(ranges, ip)) {
            uses.push_back(fmt::format("thread {} is executing in {} (ip {})", th.tid, r->name, hex_addr(ip)));
            continue;
        }
        if (const CodeRange* r = returns_into(ranges, th.regs.lr())) {
            uses.push_back(fmt::format("thread {} will return into {} (link register {})", th.tid, r->name,
                                       hex_addr(th.regs.lr())));
            continue;
        }
        const std::uint64_t sp = th.regs.sp() & ~std::uint64_t{7};
        const proc::Mapping* m = mapping_at(maps, sp);
        if (m == nullptr && !refreshed) {
            maps = proc::read_maps(mem.pid());
            refreshed = true;
            m = mapping_at(maps, sp);
        }
        if (m == nullptr) continue; // no stack to scan (a thread that switched sp to nowhere)
        const std::uint64_t end = std::min(m->end, sp + kMaxStack);
        stack.resize(end - sp);
        if (!mem.read_fallible(sp, stack.data(), stack.size())) continue;
        auto word = [&](std::uint64_t a) { return load_le64(stack.data() + (a - sp)); };

        // Frame-pointer chain: [fp] = caller's fp, [fp + 8] = return address.
        std::string found;
        std::uint64_t fp = th.regs.fp();
        for (unsigned depth = 1; depth <= 512 && fp >= sp && fp + 16 <= end && fp % 8 == 0; ++depth) {
            if (const CodeRange* r = returns_into(ranges, word(fp + 8))) {
                found = fmt::format("thread {} has a return address into {} in frame #{} (at {})", th.tid, r->name,
                                    depth, hex_addr(fp + 8));
                break;
            }
            std::uint64_t next = word(fp);
            if (next <= fp) break;
            fp = next;
        }
        // Every word: what the chain cannot see.
        for (std::uint64_t a = sp; found.empty() && a + 8 <= end; a += 8)
            if (const CodeRange* r = returns_into(ranges, word(a)))
                found = fmt::format("thread {} holds {} on its stack at {}: a return address into {}", th.tid,
                                    hex_addr(word(a)), hex_addr(a), r->name);
        if (!found.empty()) uses.push_back(std::move(found));
    }
    if (uses.empty()) return std::nullopt;
    std::string out = uses[0];
    for (std::size_t i = 1; i < uses.size(); ++i) out += "; " + uses[i];
    return out;
}

} // namespace hp::patch
