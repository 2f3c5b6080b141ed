#include "patch/stacks.hpp"

#include "arch/syscalls.hpp"

#include <algorithm>
#include <fmt/format.h>

namespace hp::patch {

namespace {

// A stack is scanned from the stack pointer to the end of its mapping; a larger one is
// refused rather than scanned in part (threads get 8 MiB by default, the main thread's
// grows to its rlimit).
constexpr std::uint64_t kMaxStack = std::uint64_t{256} << 20;
constexpr unsigned kMaxStacks = 4; // a signal stack, the stack below it, and nested ones
constexpr std::uint64_t kSsOnstack = 1, kSsAutodisarm = 1u << 31;
constexpr std::size_t kMaxReported = 4;

// The ranges sorted by start, for lookups of every stack word: with 1000 replaced
// functions a linear search per word was most of the freeze (docs/performance.md).
// Ranges may overlap (a payload and a function it supersedes), so each position also
// knows the largest end of the ranges up to it, and a lookup walks back while that end
// still lies beyond the value.
class RangeIndex {
  public:
    explicit RangeIndex(const std::vector<CodeRange>& ranges) {
        sorted_.reserve(ranges.size());
        for (const CodeRange& r : ranges)
            if (r.start < r.end) sorted_.push_back(&r);
        std::sort(sorted_.begin(), sorted_.end(),
                  [](const CodeRange* a, const CodeRange* b) { return a->start < b->start; });
        max_end_.reserve(sorted_.size());
        std::uint64_t m = 0;
        for (const CodeRange* r : sorted_)
            max_end_.push_back(m = std::max(m, r->end));
        if (!sorted_.empty()) lo_ = sorted_.front()->start, hi_ = m;
    }

    const CodeRange* range_of(std::uint64_t v) const {
        if (v < lo_ || v >= hi_) return nullptr; // most stack words: no search
        auto it =
            std::upper_bound(sorted_.begin(), sorted_.end(), v,
                             [](std::uint64_t x, const CodeRange* r) { return x < r->start; });
        for (auto i = static_cast<std::size_t>(it - sorted_.begin()); i-- > 0;) {
            if (max_end_[i] <= v) break;
            if (v < sorted_[i]->end) return sorted_[i];
        }
        return nullptr;
    }

    // A value that may be a return address into one of the ranges.
    const CodeRange* returns_into(std::uint64_t v) const {
        const CodeRange* r = range_of(v);
        if (r == nullptr || std::find(r->entries.begin(), r->entries.end(), v) != r->entries.end())
            return nullptr;
        return r;
    }

  private:
    std::vector<const CodeRange*> sorted_;
    std::vector<std::uint64_t> max_end_;
    std::uint64_t lo_ = 0, hi_ = 0; // the span of all ranges
};

// /proc/PID/maps lists mappings in address order: a binary search (a process with 1000
// threads has over 2000 mappings, and every thread's stack is looked up).
const proc::Mapping* mapping_at(const std::vector<proc::Mapping>& maps, std::uint64_t a) {
    auto it = std::upper_bound(maps.begin(), maps.end(), a,
                               [](std::uint64_t x, const proc::Mapping& m) { return x < m.start; });
    if (it == maps.begin()) return nullptr;
    --it;
    return a < it->end ? &*it : nullptr;
}

// Whether the code at `addr` is a signal-return trampoline (arch::sigreturn_trampolines),
// remembering the addresses that were.
bool is_trampoline(const proc::Memory& mem, std::uint64_t addr, std::vector<std::uint64_t>& known) {
    if (std::find(known.begin(), known.end(), addr) != known.end()) return true;
    for (ByteView pat : arch::sigreturn_trampolines(arch::host())) {
        Bytes code(pat.size());
        if (mem.read_fallible(addr, code.data(), code.size()) &&
            std::equal(pat.begin(), pat.end(), code.begin())) {
            known.push_back(addr);
            return true;
        }
    }
    return false;
}

} // namespace

std::optional<std::string> code_in_use(const ptrace::Tracer& t, const proc::Memory& mem,
                                       std::vector<proc::Mapping>& maps,
                                       const std::vector<CodeRange>& ranges) {
    const RangeIndex index(ranges);
    auto by_start = [](const proc::Mapping& a, const proc::Mapping& b) {
        return a.start < b.start;
    };
    if (!std::is_sorted(maps.begin(), maps.end(), by_start)) // mapping_at searches them
        std::sort(maps.begin(), maps.end(), by_start);
    const arch::SigframeProof proof = arch::sigframe_proof(arch::host());
    std::vector<std::uint64_t> trampolines; // addresses already shown to be one
    std::vector<std::string> uses;
    bool refreshed = false;
    Bytes stack;
    for (const ptrace::ThreadInfo& th : t.threads()) {
        if (uses.size() >= kMaxReported) break;
        const std::uint64_t ip = th.regs.ip();
        if (const CodeRange* r = index.range_of(ip)) {
            uses.push_back(
                fmt::format("thread {} is executing in {} (ip {})", th.tid, r->name, hex_addr(ip)));
            continue;
        }
        if (const CodeRange* r = index.returns_into(th.regs.lr())) {
            uses.push_back(fmt::format("thread {} will return into {} (link register {})", th.tid,
                                       r->name, hex_addr(th.regs.lr())));
            continue;
        }
        // The thread's stack, then - when it runs on an alternate signal stack - the stack
        // its signal interrupted (found through the signal frame), and so on.
        std::string found;
        std::uint64_t sp = th.regs.sp() & ~std::uint64_t{7};
        for (unsigned nth = 0; found.empty() && nth < kMaxStacks; ++nth) {
            const char* which =
                nth == 0 ? "stack" : "interrupted stack (below its alternate signal stack)";
            const proc::Mapping* m = mapping_at(maps, sp);
            if (m == nullptr && !refreshed) {
                maps = proc::read_maps(mem.pid());
                refreshed = true;
                m = mapping_at(maps, sp);
            }
            // What cannot be scanned cannot be shown unused: a refusal, never a pass.
            if (m == nullptr) {
                found = fmt::format(
                    "thread {}'s {} pointer {} lies in no mapping: its stack cannot be checked",
                    th.tid, nth == 0 ? "stack" : "interrupted stack", hex_addr(sp));
                break;
            }
            const std::uint64_t end = m->end;
            if (end - sp > kMaxStack) {
                found =
                    fmt::format("thread {}'s {} from {} to {} is larger than {} MiB: not checked",
                                th.tid, which, hex_addr(sp), hex_addr(end), kMaxStack >> 20);
                break;
            }
            stack.resize(end - sp);
            if (!mem.read_fallible(sp, stack.data(), stack.size())) {
                found = fmt::format(
                    "thread {}'s {} ({}-{}) cannot be read: its stack cannot be checked", th.tid,
                    which, hex_addr(sp), hex_addr(end));
                break;
            }
            auto word = [&](std::uint64_t a) { return load_le64(stack.data() + (a - sp)); };

            // Frame-pointer chain: [fp] = caller's fp, [fp + 8] = return address. The frame
            // pointer register belongs to the innermost context only.
            std::uint64_t fp = nth == 0 ? th.regs.fp() : 0;
            for (unsigned depth = 1; depth <= 512 && fp >= sp && fp + 16 <= end && fp % 8 == 0;
                 ++depth) {
                if (const CodeRange* r = index.returns_into(word(fp + 8))) {
                    found =
                        fmt::format("thread {} has a return address into {} in frame #{} (at {})",
                                    th.tid, r->name, depth, hex_addr(fp + 8));
                    break;
                }
                std::uint64_t next = word(fp);
                if (next <= fp) break;
                fp = next;
            }
            // Every word: what the chain cannot see.
            for (std::uint64_t a = sp; found.empty() && a + 8 <= end; a += 8)
                if (const CodeRange* r = index.returns_into(word(a)))
                    found =
                        fmt::format("thread {} holds {} on its {} at {}: a return address into {}",
                                    th.tid, hex_addr(word(a)), which, hex_addr(a), r->name);
            if (!found.empty()) break;
            // On an alternate signal stack? The innermost signal frame's uc_stack describes a
            // stack that holds sp; its uc_mcontext holds the interrupted stack pointer. Words
            // of ordinary data can look like uc_stack, and a garbage "interrupted stack
            // pointer" would then refuse for nothing: a frame counts only with its proof
            // (arch::sigframe_proof), uc_link 0 and the signal-return trampoline or magic.
            std::optional<std::uint64_t> below;
            const std::uint64_t off = arch::altstack_to_saved_sp(arch::host());
            const std::uint64_t first = sp + std::max<std::uint64_t>(8, proof.trampoline_before);
            for (std::uint64_t a = first;
                 !below && a + std::max(off + 8, proof.magic_after + 4) <= end; a += 8) {
                std::uint64_t ss_sp = word(a), flags = word(a + 8) & 0xffffffffu,
                              ss_size = word(a + 16);
                bool flags_ok = (flags & ~std::uint64_t{kSsOnstack | kSsAutodisarm}) == 0;
                if (!flags_ok || ss_size == 0 || ss_size > m->end - m->start || ss_sp > sp ||
                    sp - ss_sp >= ss_size || word(a - 8) != 0)
                    continue;
                if (proof.trampoline_before != 0 &&
                    !is_trampoline(mem, word(a - proof.trampoline_before), trampolines))
                    continue;
                if (proof.magic_after != 0 &&
                    load_le32(stack.data() + (a + proof.magic_after - sp)) != proof.magic)
                    continue;
                std::uint64_t saved = word(a + off) & ~std::uint64_t{7};
                if (saved < ss_sp || saved >= ss_sp + ss_size) below = saved;
            }
            if (!below) break;
            sp = *below;
        }
        if (!found.empty()) uses.push_back(std::move(found));
    }
    if (uses.empty()) return std::nullopt;
    std::string out = uses[0];
    for (std::size_t i = 1; i < uses.size(); ++i)
        out += "; " + uses[i];
    return out;
}

} // namespace hp::patch
