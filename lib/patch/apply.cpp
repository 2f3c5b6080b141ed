#include "patch/apply.hpp"

#include "arch/syscalls.hpp"
#include "common/fault.hpp"
#include "doc/document.hpp"
#include "loader/loader.hpp"
#include "patch/injection.hpp"
#include "patch/lock.hpp"
#include "patch/stacks.hpp"
#include "ptrace/seccomp.hpp"
#include "ptrace/tracer.hpp"

#include <algorithm>
#include <fmt/format.h>
#include <sys/mman.h>
#include <thread>
#include <unistd.h>

namespace hp::patch {

std::string_view consistency_name(Consistency c) {
    return c == Consistency::Entry ? "entry" : "stack";
}

using Clock = std::chrono::steady_clock;
using package::Function;
using package::Manifest;

namespace {

std::uint64_t us_since(Clock::time_point t) {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t).count());
}

std::uint64_t page_size() {
    return static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
}
std::uint64_t round_up(std::uint64_t v, std::uint64_t a) {
    return (v + a - 1) / a * a;
}

std::string label(const SiteRecord& s) {
    return s.function.empty() ? hex_addr(s.function_address) : "'" + s.function + "'";
}

// DESIGN §6: our calls pass through the target's seccomp filters, and a "kill" action
// would kill it. Filters are per thread: each thread is asked about every call of the job,
// with its real flags, while it is held before the first call it is borrowed for (a
// refusal comes before any call ran in it). Threads that never run our calls are not
// read: at 1000 threads that was 1000 /proc status reads in prepare (and in the freeze of
// a revert's unmap).
void check_filters_when_borrowed(ptrace::Tracer& t, proc::Pid pid,
                                 std::vector<ptrace::InjectedCall> calls, std::uint64_t insn) {
    t.set_borrow_check([pid, calls = std::move(calls), insn](proc::Pid tid) {
        if (ptrace::seccomp_info(pid, tid).mode != 0)
            ptrace::check_injection_allowed(pid, tid, arch::host(), calls, insn);
    });
}

// Remote system calls through one borrowed thread; a negative result in the errno range
// is an error named by the call.
class Remote {
  public:
    Remote(ptrace::Tracer& t, std::uint64_t insn, arch::Arch a, Clock::time_point deadline)
        : t_(t), insn_(insn), nr_(arch::syscalls(a)), deadline_(deadline) {}
    const arch::SyscallNumbers& nr() const { return nr_; }
    // Undoing must not fail for want of time: the job's deadline may be what stopped us.
    void grant_cleanup_time() {
        deadline_ = std::max(deadline_, Clock::now() + std::chrono::seconds(2));
    }
    std::uint64_t call(const char* what, long nr, std::array<std::uint64_t, 6> args,
                       const ptrace::StackArg* stack_arg = nullptr) {
        std::int64_t r = t_.remote_syscall(0, insn_, nr, args, deadline_, stack_arg);
        if (r < 0 && r > -4096)
            throw Error(ErrorCode::NotEligible,
                        fmt::format("{} in process {} failed: {}", what, t_.pid(),
                                    std::strerror(static_cast<int>(-r))));
        return static_cast<std::uint64_t>(r);
    }

  private:
    ptrace::Tracer& t_;
    std::uint64_t insn_;
    const arch::SyscallNumbers& nr_;
    Clock::time_point deadline_;
};

// What was mapped in the target during prepare, undone in reverse unless committed.
class RemoteMappings {
  public:
    explicit RemoteMappings(Remote& r) : r_(r) {}
    ~RemoteMappings() {
        if (committed_) return;
        r_.grant_cleanup_time();
        for (auto it = ranges_.rbegin(); it != ranges_.rend(); ++it) {
            try {
                r_.call("munmap", r_.nr().munmap, {it->start, it->end - it->start, 0, 0, 0, 0});
            } catch (...) {
            }
        }
    }
    void add(std::uint64_t start, std::uint64_t len) { ranges_.push_back({start, start + len}); }
    void commit() { committed_ = true; }

  private:
    Remote& r_;
    std::vector<MappingRange> ranges_;
    bool committed_ = false;
};

struct PlannedSite {
    SiteRecord rec;
    const Function* fn = nullptr;
    std::size_t target = 0;
    const Record* superseded = nullptr;
};

// Waits with a growing pause between stop-the-world attempts, never past the deadline.
// Meanwhile the tracer keeps answering: a thread receiving signals sits in a
// signal-delivery-stop until we do, and behind a plain sleep it would take one signal per
// attempt and never get back to its own code (seen under a 1 kHz signal stream: stuck in
// a site for every attempt).
void back_off(ptrace::Tracer& t, unsigned attempt, Clock::time_point deadline) {
    auto pause =
        std::chrono::microseconds(std::min<unsigned>(50'000, 500u << std::min(attempt, 7u)));
    auto now = Clock::now();
    if (now + pause > deadline)
        pause = std::chrono::duration_cast<std::chrono::microseconds>(deadline - now);
    if (pause.count() > 0) t.serve_until(now + pause);
}

// The thread (and site) whose instruction pointer lies inside a site, if any.
std::optional<std::string> thread_in_sites(const ptrace::Tracer& t,
                                           const std::vector<SiteRecord>& sites) {
    for (const auto& th : t.threads()) {
        std::uint64_t ip = th.regs.ip();
        for (const auto& s : sites)
            if (ip >= s.address && ip < s.address + s.patched.size())
                return fmt::format("thread {} is executing inside the site of {} (ip {})", th.tid,
                                   label(s), hex_addr(ip));
    }
    return std::nullopt;
}

// The code of an applied patch: its payload and thunk pages; the replacement entries are
// where function pointers point.
std::vector<CodeRange> payload_code(const Record& r) {
    std::vector<CodeRange> out;
    for (std::size_t i = 0; i < r.mappings.size(); ++i) {
        CodeRange c;
        c.name = fmt::format("the code of patch '{}'", r.id);
        c.start = i == 0 ? r.payload_base : r.mappings[i].start;
        c.end = r.mappings[i].end;
        for (const SiteRecord& s : r.sites)
            c.entries.push_back(s.replacement);
        out.push_back(std::move(c));
    }
    return out;
}

// What must hold while every thread is stopped, per consistency model: no thread inside a
// site (always), and with Stack none using `code` (code_in_use).
struct SwitchCheck {
    const std::vector<SiteRecord>& sites;
    Consistency mode;
    std::vector<CodeRange> code;
    const proc::Memory& mem;
    std::vector<proc::Mapping>& maps;
    std::optional<std::string> operator()(const ptrace::Tracer& t) const {
        if (auto busy = thread_in_sites(t, sites)) return busy;
        if (mode == Consistency::Stack) return code_in_use(t, mem, maps, code);
        // Entry: a thread interrupted by a signal inside a site has that position saved in
        // its signal frame on the stack, and would resume in the middle of the new bytes
        // when its handler returns (SIGILL). Resuming at a site's first byte is fine.
        std::vector<CodeRange> interiors;
        for (const SiteRecord& s : sites)
            if (s.patched.size() > 1)
                interiors.push_back(
                    {s.address + 1, s.address + s.patched.size(), "the site of " + label(s), {}});
        return code_in_use(t, mem, maps, interiors);
    }
};

// Stops the world until the check passes, retrying until the deadline: each attempt's
// freeze lasts only as long as the check, then the threads run while we back off (the
// longest such freeze goes to tm.max_attempt_freeze_us). On return every thread is
// stopped. Throws Refused naming the threads and functions.
Clock::time_point stop_safely(ptrace::Tracer& t, const SwitchCheck& check,
                              Clock::time_point deadline, Timings& tm) {
    std::optional<std::string> busy;
    auto give_up = [&] {
        throw Refused(
            fmt::format(
                "{}; gave up after {} attempts (--timeout, --consistency {}); nothing was changed",
                *busy, tm.attempts, consistency_name(check.mode)),
            tm.attempts, tm.max_attempt_freeze_us);
    };
    for (;;) {
        ++tm.attempts;
        Clock::time_point first;
        try {
            first = t.stop_all(deadline);
        } catch (const Error& e) {
            // Out of time while stopping: the thread seen in a site is the real reason.
            if (e.code() == ErrorCode::Unsafe && busy) give_up();
            throw;
        }
        busy = check(t);
        if (!busy) return first;
        Clock::time_point resumed = t.resume_all();
        auto stop_cost = resumed - first;
        tm.max_attempt_freeze_us = std::max<std::uint64_t>(
            tm.max_attempt_freeze_us,
            std::chrono::duration_cast<std::chrono::microseconds>(stop_cost).count());
        fault_point("retry");
        if (Clock::now() + 2 * stop_cost >= deadline) give_up();
        back_off(t, tm.attempts, deadline);
        if (Clock::now() + 2 * stop_cost >= deadline) give_up();
    }
}

void check_signature_policy(const package::Package& pkg, const ApplyOptions& opt) {
    if (opt.allow_unsigned) return;
    if (!pkg.signature)
        throw Error(ErrorCode::Untrusted,
                    "the package is unsigned; pass --allow-unsigned to apply it anyway");
    auto trusted = package::load_trusted_keys(opt.keys_dir.empty() ? package::trusted_keys_dir()
                                                                   : opt.keys_dir);
    if (!package::is_trusted(*pkg.signature, trusted))
        throw Error(
            ErrorCode::Untrusted,
            fmt::format(
                "the package is signed by key {}, which is not in the trusted keys ({}); pass "
                "--allow-unsigned to apply it anyway",
                pkg.signature->key_id,
                opt.keys_dir.empty() ? package::trusted_keys_dir() : opt.keys_dir));
}

} // namespace

namespace {
// A process that died under us explains any error that followed: report that instead.
bool process_gone(proc::Pid pid) {
    try {
        proc::instance(pid);
        return false;
    } catch (const Error&) {
        return true;
    }
}

template <typename F> Outcome exit_aware(proc::Pid pid, F&& f) {
    try {
        return f();
    } catch (const Error& e) {
        if (e.code() != ErrorCode::ProcessExited && e.code() != ErrorCode::NoSuchProcess &&
            process_gone(pid))
            throw Error(ErrorCode::ProcessExited,
                        fmt::format("process {} exited while hp-apply was working on it ({})", pid,
                                    e.what()));
        throw;
    }
}

// Each target module of the package among the modules loaded in the process, by build-id;
// a target not loaded is a build-id-mismatch naming the module that is loaded instead.
std::vector<const proc::Module*>
find_targets(const Manifest& m, const std::vector<proc::Module>& mods, proc::Pid pid) {
    std::vector<const proc::Module*> target_mods;
    for (const package::Target& t : m.targets) {
        const proc::Module* found = nullptr;
        for (const proc::Module& mod : mods)
            if (mod.build_id == t.build_id) found = &mod;
        if (found == nullptr) {
            std::string loaded;
            for (const proc::Module& mod : mods) {
                auto slash = mod.path.rfind('/');
                std::string base =
                    slash == std::string::npos ? mod.path : mod.path.substr(slash + 1);
                if (base == t.module || mod.path == t.module)
                    loaded = fmt::format("; the loaded {} has build-id {}", mod.path,
                                         mod.build_id.empty() ? "(none)" : mod.build_id);
            }
            throw Error(ErrorCode::BuildIdMismatch,
                        fmt::format("module '{}' (build-id {}) of '{}' is not loaded in process "
                                    "{}{}; nothing was changed",
                                    t.module, t.build_id,
                                    t.functions.empty() ? "" : t.functions[0].symbol, pid, loaded));
        }
        target_mods.push_back(found);
    }
    return target_mods;
}
} // namespace

static Outcome apply_impl(const package::Package& pkg, const std::string& package_sha256,
                          const ApplyOptions& opt);
static Outcome revert_impl(proc::Pid pid, const std::string& id, std::chrono::milliseconds timeout,
                           Consistency mode);
static bool repair(proc::Pid pid, const proc::Memory& mem, std::vector<proc::Mapping>& maps,
                   std::vector<Record>& records, Clock::time_point deadline,
                   std::vector<std::string>& done);

Outcome apply(const package::Package& pkg, const std::string& package_sha256,
              const ApplyOptions& opt) {
    return exit_aware(opt.pid, [&] { return apply_impl(pkg, package_sha256, opt); });
}

Outcome revert(proc::Pid pid, const std::string& id, std::chrono::milliseconds timeout,
               Consistency consistency) {
    return exit_aware(pid, [&] { return revert_impl(pid, id, timeout, consistency); });
}

Outcome apply_impl(const package::Package& pkg, const std::string& package_sha256,
                   const ApplyOptions& opt) {
    const Manifest& m = pkg.manifest;
    Outcome out;
    auto t0 = Clock::now();
    auto deadline = t0 + opt.timeout;
    auto step = [&](PlanStep st) {
        if (opt.step) *opt.step = st;
    };
    step(PlanStep::Package);
    if (m.arch != arch::host())
        throw Error(ErrorCode::Unsupported,
                    fmt::format("the package is for {}, this host is {}", arch::name(m.arch),
                                arch::name(arch::host())));
    check_signature_policy(pkg, opt);

    // ---- plan: no contact with the target beyond reading /proc ----
    step(PlanStep::Process);
    proc::Instance inst = proc::instance(opt.pid);
    if (opt.expected && !(*opt.expected == inst))
        throw Error(ErrorCode::CheckFailed,
                    fmt::format("process {} is not the instance that was checked (start time {} "
                                "now, {} when checked)",
                                opt.pid, inst.start_time, opt.expected->start_time));
    InstanceLock lock(inst);
    auto maps = proc::read_maps(opt.pid);
    proc::Memory mem(opt.pid, /*writable=*/true);
    auto mods = proc::modules(opt.pid, maps);
    auto records = find_records(mem, maps);
    // A package for another build is refused before a repair of what a killed run left:
    // the repair touches only our own mappings, never which modules are loaded. The
    // records and the site bytes are checked after it, since they are what it changes.
    if (!opt.dry_run) find_targets(m, mods, opt.pid);
    if (!opt.dry_run && repair(opt.pid, mem, maps, records, deadline, out.repaired)) {
        if (opt.repaired != nullptr) *opt.repaired = out.repaired;
        maps = proc::read_maps(opt.pid);
        mods = proc::modules(opt.pid, maps);
        records = find_records(mem, maps);
    }
    step(PlanStep::Records);
    for (const Record& r : records) {
        if (r.id != m.id) continue;
        if (r.state == State::Applied)
            throw Error(ErrorCode::AlreadyApplied,
                        fmt::format("patch '{}' is already applied to process {}", m.id, opt.pid));
        if (r.state == State::Preparing)
            throw Error(ErrorCode::Busy,
                        fmt::format("an earlier apply of '{}' to process {} did not finish; run "
                                    "hp-apply -p {} --revert {} first",
                                    m.id, opt.pid, opt.pid, m.id));
        throw Error(
            ErrorCode::AlreadyApplied,
            fmt::format(
                "patch '{}' was reverted but its code is still mapped in process {} (a thread was "
                "using it); it cannot be applied again under the same id",
                m.id, opt.pid));
    }

    step(PlanStep::Modules);
    std::vector<const proc::Module*> target_mods = find_targets(m, mods, opt.pid);

    step(PlanStep::Sites);
    std::vector<PlannedSite> planned;
    for (std::size_t ti = 0; ti < m.targets.size(); ++ti) {
        const package::Target& t = m.targets[ti];
        for (const Function& f : t.functions) {
            PlannedSite ps;
            ps.fn = &f;
            ps.target = ti;
            ps.rec.module = t.module;
            ps.rec.build_id = t.build_id;
            ps.rec.function = f.symbol;
            ps.rec.function_address = target_mods[ti]->bias + f.address;
            ps.rec.address = ps.rec.function_address + f.site.offset;
            Bytes cur = mem.read(ps.rec.address, f.site.expected.size());
            if (cur != f.site.expected) {
                // Another applied patch may own this site: then we lie on top of it.
                for (const Record& r : records) {
                    if (r.state != State::Applied) continue;
                    for (const SiteRecord& s : r.sites) {
                        std::size_t n = s.patched.size();
                        if (s.address == ps.rec.address && n <= cur.size() &&
                            std::equal(s.patched.begin(), s.patched.end(), cur.begin()) &&
                            std::equal(s.original.begin(), s.original.end(),
                                       f.site.expected.begin()))
                            ps.superseded = &r;
                    }
                }
                if (ps.superseded == nullptr)
                    throw Error(ErrorCode::SiteMismatch,
                                fmt::format("the site of {} in {} at {} holds {}, the package "
                                            "expects {}; nothing was "
                                            "changed",
                                            label(ps.rec), t.module, hex_addr(ps.rec.address),
                                            to_hex(cur), to_hex(f.site.expected)));
                ps.rec.supersedes = ps.superseded->id;
                if (std::find(out.superseded.begin(), out.superseded.end(), ps.superseded->id) ==
                    out.superseded.end())
                    out.superseded.push_back(ps.superseded->id);
            }
            ps.rec.original = std::move(cur); // trimmed to the patched length below
            planned.push_back(std::move(ps));
        }
    }

    step(PlanStep::Reach);
    elf::ElfFile payload = elf::ElfFile::parse(pkg.payload, "payload", ErrorCode::BadPackage);
    const std::uint64_t page = page_size();
    std::uint64_t image = loader::image_size(payload);
    Record rec;
    rec.id = m.id;
    rec.package_sha256 = package_sha256;
    rec.tool_version = std::string(doc::version());
    rec.time = doc::now_rfc3339();
    rec.instance = inst;
    rec.consistency = std::string(consistency_name(opt.consistency));
    rec.sites.reserve(planned.size());
    for (const auto& ps : planned) {
        SiteRecord s = ps.rec;
        s.patched.assign(s.original.size(), 0);
        rec.sites.push_back(s);
    }
    // Reserve room for the record to be rewritten later (a revert of a patch below this
    // one updates this record's original bytes).
    rec.capacity = round_up(2 * serialize(rec).size() + 4096, page);
    std::uint64_t total = rec.capacity + image;

    // The payload goes within near-branch reach of the first target module; other modules
    // out of reach get a thunk page of far jumps near them.
    const proc::Module& primary = *target_mods[0];
    std::uint64_t base = loader::find_free_near(maps, m.arch, primary.start, primary.end, total);
    if (base == 0)
        throw Error(ErrorCode::NotEligible,
                    fmt::format("no free address range of {} bytes within branch reach of {} "
                                "in process {}",
                                total, primary.path, opt.pid));
    rec.payload_base = base + rec.capacity;
    rec.address = base;
    rec.mappings.push_back({base, base + total});
    auto planned_maps = maps;
    planned_maps.push_back({base, base + total, 0, "r-xp", "", 0, "(planned)"});
    std::sort(planned_maps.begin(), planned_maps.end(),
              [](auto& a, auto& b) { return a.start < b.start; });

    struct Thunk {
        std::uint64_t addr = 0;
        Bytes bytes;
        std::uint64_t file_offset = 0;
    };
    std::vector<Thunk> thunks;
    std::vector<std::uint64_t> dest(planned.size());
    for (std::size_t i = 0; i < planned.size(); ++i)
        dest[i] = rec.payload_base + planned[i].fn->replacement_address;
    for (std::size_t ti = 1; ti < target_mods.size(); ++ti) {
        const proc::Module& mod = *target_mods[ti];
        bool reach = true;
        for (std::size_t i = 0; i < planned.size(); ++i)
            if (planned[i].target == ti &&
                !arch::near_reachable(m.arch, planned[i].rec.address, dest[i]))
                reach = false;
        if (reach) continue;
        std::uint64_t addr = loader::find_free_near(planned_maps, m.arch, mod.start, mod.end, page);
        if (addr == 0)
            throw Error(ErrorCode::NotEligible,
                        fmt::format("no free page within branch reach of {} in process {}",
                                    mod.path, opt.pid));
        Thunk th;
        th.addr = addr;
        th.file_offset = total + page * thunks.size();
        for (std::size_t i = 0; i < planned.size(); ++i) {
            if (planned[i].target != ti) continue;
            std::uint64_t entry = addr + th.bytes.size();
            Bytes jump = arch::encode_far_jump(m.arch, dest[i]);
            th.bytes.insert(th.bytes.end(), jump.begin(), jump.end());
            th.bytes.resize(round_up(th.bytes.size(), 16), 0);
            dest[i] = entry;
        }
        if (th.bytes.size() > page)
            throw Error(ErrorCode::Unsupported,
                        fmt::format("too many functions in {} for one thunk page", mod.path));
        rec.mappings.push_back({addr, addr + page});
        planned_maps.push_back({addr, addr + page, 0, "r-xp", "", 0, "(planned)"});
        std::sort(planned_maps.begin(), planned_maps.end(),
                  [](auto& a, auto& b) { return a.start < b.start; });
        thunks.push_back(std::move(th));
    }

    step(PlanStep::Symbols);
    loader::SymbolScope scope(mem, mods);
    auto resolve = [&](const package::Undefined& u) -> std::uint64_t {
        for (const package::Undefined& mu : m.undefined)
            if (mu.name == u.name) return scope.resolve(mu, m, target_mods);
        return scope.resolve(u, m, target_mods);
    };
    loader::Image img = loader::link(payload, m.arch, rec.payload_base, resolve);
    step(PlanStep::Encoding);

    for (std::size_t i = 0; i < planned.size(); ++i) {
        const Function& f = *planned[i].fn;
        arch::SitePlan sp;
        sp.offset = f.site.offset;
        sp.landing_pad = f.site.landing_pad;
        sp.near_length = f.site.length;
        sp.far_length = f.site.far_length;
        SiteRecord& s = rec.sites[i];
        s.replacement = rec.payload_base + f.replacement_address;
        s.patched = arch::encode_site(m.arch, sp, s.address, dest[i]);
        s.original.resize(s.patched.size());
        if (planned[i].superseded) {
            // Lying on top of another patch: our saved bytes are its bytes, whole.
            for (const SiteRecord& o : planned[i].superseded->sites)
                if (o.address == s.address && o.patched.size() != s.patched.size())
                    throw Error(ErrorCode::Unsupported,
                                fmt::format("{} is patched by '{}' with a {}-byte site, this "
                                            "package needs {} bytes",
                                            label(s), planned[i].superseded->id, o.patched.size(),
                                            s.patched.size()));
        }
    }
    out.timings.plan_us = us_since(t0);
    step(PlanStep::Done);
    if (opt.dry_run) {
        out.record = std::move(rec);
        out.timings.total_us = us_since(t0);
        return out;
    }

    // ---- prepare: one borrowed thread, the others keep running ----
    auto tp = Clock::now();
    ptrace::Tracer tracer(opt.pid, deadline);
    fault_point("attached");
    const std::uint64_t insn = ptrace::find_syscall_insn(mem, maps, m.arch);
    Remote remote(tracer, insn, m.arch, deadline);
    const auto& nr = remote.nr();
    // Every call of the job (the undo path's munmaps included), with its real flags.
    InjectionLayout layout{base, total, rec.payload_base, rec.capacity, {}, {}, page};
    for (const loader::Piece& p : img.pieces)
        layout.pieces.push_back({p.addr, p.bytes.size(), p.exec, p.write});
    for (const Thunk& th : thunks)
        layout.thunks.push_back({th.addr, th.file_offset});
    check_filters_when_borrowed(tracer, opt.pid, injected_calls(m.arch, layout), insn);
    RemoteMappings mapped(remote);
    // The memfd's name travels on the borrowed thread's stack: no scratch mapping that a
    // killed hp-apply could leave behind.
    std::string name = mapping_name(m.id);
    Bytes name_bytes(name.begin(), name.end());
    name_bytes.push_back(0);
    ptrace::StackArg name_arg{0, name_bytes};
    std::uint64_t fd =
        remote.call("memfd_create", nr.memfd_create, {0, kMfdCloexec, 0, 0, 0, 0}, &name_arg);
    struct FdCloser {
        Remote& r;
        std::uint64_t fd;
        bool open = true;
        void close() {
            open = false;
            r.call("close", r.nr().close, {fd, 0, 0, 0, 0, 0});
        }
        ~FdCloser() {
            if (!open) return;
            r.grant_cleanup_time();
            try {
                close();
            } catch (...) {
            }
        }
    } closer{remote, fd};
    fault_point("borrowed");
    remote.call("ftruncate", nr.ftruncate, {fd, total + page * thunks.size(), 0, 0, 0, 0});
    std::uint64_t got =
        remote.call("mmap", nr.mmap,
                    {base, total, PROT_READ,
                     static_cast<std::uint64_t>(MAP_PRIVATE | kMapFixedNoReplace), fd, 0});
    mapped.add(got, total);
    if (got != base)
        throw Error(ErrorCode::NotEligible,
                    fmt::format("process {}: the kernel placed the patch at {} instead of {} "
                                "(no MAP_FIXED_NOREPLACE?)",
                                opt.pid, hex_addr(got), hex_addr(base)));
    // Each payload piece gets its final protection at once: code is never writable. A
    // read-only piece is already mapped as it must be.
    for (std::size_t i = 0; i < img.pieces.size(); ++i) {
        const loader::Piece& p = img.pieces[i];
        if (!layout.needs_mmap(layout.pieces[i])) continue;
        std::uint64_t prot = PROT_READ | (p.exec ? PROT_EXEC : 0) | (p.write ? PROT_WRITE : 0);
        remote.call("mmap (payload)", nr.mmap,
                    {p.addr, p.bytes.size(), prot, MAP_PRIVATE | MAP_FIXED, fd,
                     rec.capacity + (p.addr - rec.payload_base)});
    }
    for (const Thunk& th : thunks) {
        std::uint64_t a = remote.call("mmap (thunks)", nr.mmap,
                                      {th.addr, page, PROT_READ | PROT_EXEC,
                                       static_cast<std::uint64_t>(MAP_PRIVATE | kMapFixedNoReplace),
                                       fd, th.file_offset});
        mapped.add(a, page);
        if (a != th.addr)
            throw Error(ErrorCode::NotEligible, "the kernel placed the thunk page elsewhere");
    }
    closer.close(); // the mappings keep the memfd; a descriptor left open would leak
    for (const loader::Piece& p : img.pieces)
        mem.write(p.addr, p.bytes);
    for (const Thunk& th : thunks)
        mem.write(th.addr, th.bytes);
    rec.state = State::Preparing;
    Bytes rb = serialize(rec);
    if (rb.size() > rec.capacity)
        throw Error(ErrorCode::Internal, "the record outgrew its reservation");
    mem.write(base, rb);
    fault_point("prepared");
    out.timings.prepare_us = us_since(tp);

    // ---- switch: every thread stopped, no thread inside a site ----
    auto ts = Clock::now();
    // Stack consistency: the functions being replaced, and the code of patches this one
    // lies on top of (their replacements are what runs now), must be unused.
    SwitchCheck check{rec.sites, opt.consistency, {}, mem, maps};
    // A function's range is its size from the manifest: a `.cold` part the compiler split
    // off lies elsewhere and the manifest does not describe it, so a thread waiting there
    // is not seen (man hp-apply, --consistency).
    for (const PlannedSite& ps : planned) {
        check.code.push_back({ps.rec.function_address,
                              ps.rec.function_address + std::max<std::uint64_t>(ps.fn->size, 1),
                              label(ps.rec),
                              {ps.rec.function_address}});
        if (ps.superseded != nullptr)
            for (CodeRange& r : payload_code(*ps.superseded))
                check.code.push_back(std::move(r));
    }
    Clock::time_point first = stop_safely(tracer, check, deadline, out.timings);
    std::size_t written = 0;
    try {
        for (const SiteRecord& s : rec.sites) {
            mem.write(s.address, s.patched);
            ++written;
            fault_point("site");
            if (written == 1) fault_point("first-site");
        }
        Bytes state(4);
        store_le32(state.data(), static_cast<std::uint32_t>(State::Applied));
        mem.write(base + kStateOffset, state);
    } catch (...) {
        // Undo in reverse; the record stays "preparing" until the mapping goes.
        for (std::size_t i = written; i-- > 0;) {
            try {
                mem.write(rec.sites[i].address, rec.sites[i].original);
            } catch (...) {
            }
        }
        tracer.resume_all();
        throw;
    }
    Clock::time_point last = tracer.resume_all();
    fault_point("applied");
    mapped.commit();
    rec.state = State::Applied;
    rec.freeze_us = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(last - first).count());
    Bytes fz(8);
    store_le64(fz.data(), rec.freeze_us);
    mem.write(base + kFreezeOffset, fz);
    tracer.check_alive(); // SIGKILLed meanwhile: the writes above may have landed anyway
    out.timings.switch_us = us_since(ts);
    out.timings.freeze_us = rec.freeze_us;
    out.timings.max_attempt_freeze_us = std::max(out.timings.max_attempt_freeze_us, rec.freeze_us);
    out.timings.total_us = us_since(t0);
    out.record = std::move(rec);
    return out;
}

namespace {

// Unmaps the code of the reverted `rec` when no thread uses it; every thread of `tracer`
// is stopped. A failure only means the code stays mapped, which `out` says, never an
// error. Unmapping needs every word that could point into it gone, function pointers to
// the replacements included.
// What an unmap needs that takes a search of the target's memory (the syscall instruction
// to borrow, the death guard's trampoline): found before the threads stop, so the freeze
// of a revert holds only the check and the munmap calls.
struct UnmapPrep {
    std::uint64_t insn = 0;
    std::string error; // why there is no insn
};

UnmapPrep prepare_unmap(ptrace::Tracer& tracer, const proc::Memory& mem,
                        const std::vector<proc::Mapping>& maps) {
    UnmapPrep p;
    try {
        p.insn = ptrace::find_syscall_insn(mem, maps, arch::host());
    } catch (const Error& e) {
        p.error = e.what();
    }
    tracer.prepare_remote_syscalls();
    return p;
}

void unmap_unused(proc::Pid pid, ptrace::Tracer& tracer, const proc::Memory& mem,
                  std::vector<proc::Mapping>& maps, const Record& rec, const UnmapPrep& prep,
                  Clock::time_point deadline, Outcome& out) {
    fault_point("unmapping");
    try {
        std::vector<CodeRange> whole;
        for (const auto& r : rec.mappings)
            whole.push_back({r.start, r.end, "it", {}});
        auto busy = code_in_use(tracer, mem, maps, whole);
        if (busy) {
            out.keep_reason = *busy;
        } else if (prep.insn == 0) {
            out.keep_reason = prep.error;
        } else {
            const std::uint64_t insn = prep.insn;
            // A filter that refuses munmap keeps the code mapped instead of killing the target.
            std::vector<ptrace::InjectedCall> calls;
            for (const auto& r : rec.mappings)
                calls.push_back({arch::syscalls(arch::host()).munmap,
                                 {r.start, r.end - r.start, 0, 0, 0, 0},
                                 "munmap"});
            check_filters_when_borrowed(tracer, pid, std::move(calls), insn);
            for (const auto& r : rec.mappings) {
                std::int64_t rc =
                    tracer.remote_syscall(0, insn, arch::syscalls(arch::host()).munmap,
                                          {r.start, r.end - r.start, 0, 0, 0, 0}, deadline);
                if (rc < 0) {
                    out.keep_reason =
                        fmt::format("munmap failed: {}", std::strerror(static_cast<int>(-rc)));
                    break;
                }
            }
            out.unmapped = out.keep_reason.empty();
        }
    } catch (const Error& e) {
        out.keep_reason = e.what();
    }
}

// Unmaps the code of the reverted `rec` that unmap_unused had to keep (a thread was in it
// or returning into it), with the threads of `tracer` running: stops them and tries again,
// letting them run in between, until `until`. Once the sites are restored nothing enters
// the code any more, and a thread inside a replacement leaves it within microseconds; so
// rolling back a killed apply, which does not wait for the code to be unused (entry mode),
// does not leave the apply that follows finding its own id still mapped.
void unmap_later(proc::Pid pid, ptrace::Tracer& tracer, const UnmapPrep& prep,
                 const proc::Memory& mem, std::vector<proc::Mapping>& maps, const Record& rec,
                 Clock::time_point until, Clock::time_point deadline, Outcome& out) {
    for (unsigned attempt = 1; !out.unmapped && Clock::now() < until; ++attempt) {
        back_off(tracer, attempt, until);
        tracer.stop_all(deadline);
        out.keep_reason.clear();
        unmap_unused(pid, tracer, mem, maps, rec, prep, deadline, out);
        tracer.resume_all();
    }
}

// Reverts `rec` (found in `records`) with the process lock held: restores its sites (or
// hands its original bytes to a patch above), marks it reverted, unmaps its code when no
// thread uses it - with `wait_for_unmap`, trying again for up to 500 ms (unmap_later).
void revert_locked(proc::Pid pid, const proc::Memory& mem, std::vector<proc::Mapping>& maps,
                   std::vector<Record>& records, Record& rec, Clock::time_point deadline,
                   Consistency mode, bool wait_for_unmap, Outcome& out) {
    // For each site: restore it, or (when a later patch lies on top) hand our original
    // bytes to that patch's record so its revert restores them.
    std::vector<SiteRecord> restore;
    std::vector<Record*> updated;
    for (const SiteRecord& s : rec.sites) {
        Bytes cur = mem.read(s.address, s.patched.size());
        if (rec.state == State::Preparing) {
            // An apply that died: only sites it already wrote need restoring.
            if (cur == s.patched) restore.push_back(s);
            continue;
        }
        if (cur == s.patched) {
            restore.push_back(s);
            continue;
        }
        if (cur == s.original) continue; // restored by a revert that was interrupted
        Record* above = nullptr;
        for (Record& r : records) {
            if (&r == &rec || r.state != State::Applied) continue;
            for (SiteRecord& o : r.sites)
                // (o.original == s.original: handed over by a revert that was interrupted)
                if (o.address == s.address &&
                    (o.original == s.patched || o.original == s.original)) {
                    o.original = s.original;
                    o.supersedes = s.supersedes;
                    above = &r;
                }
        }
        if (above == nullptr)
            throw Error(ErrorCode::SiteMismatch,
                        fmt::format("the site of {} at {} holds {}, neither this patch's bytes {} "
                                    "nor a later patch's; "
                                    "nothing was changed",
                                    label(s), hex_addr(s.address), to_hex(cur), to_hex(s.patched)));
        if (std::find(updated.begin(), updated.end(), above) == updated.end())
            updated.push_back(above);
    }
    std::vector<std::pair<std::uint64_t, Bytes>> rewrites;
    for (Record* r : updated) {
        Bytes b = serialize(*r);
        std::uint64_t cap = r->payload_base - r->address;
        if (b.size() > cap)
            throw Error(ErrorCode::Internal,
                        fmt::format("the record of '{}' has no room to take over a site", r->id));
        rewrites.emplace_back(r->address, std::move(b));
    }

    ptrace::Tracer tracer(pid, deadline);
    const UnmapPrep prep = prepare_unmap(tracer, mem, maps);
    auto ts = Clock::now();
    SwitchCheck check{restore, mode, payload_code(rec), mem, maps};
    Clock::time_point first = stop_safely(tracer, check, deadline, out.timings);
    std::size_t written = 0;
    try {
        for (const auto& [addr, bytes] : rewrites)
            mem.write(addr, bytes);
        for (const SiteRecord& s : restore) {
            mem.write(s.address, s.original);
            ++written;
            fault_point("restored");
        }
        Bytes state(4);
        store_le32(state.data(), static_cast<std::uint32_t>(State::Reverted));
        mem.write(rec.address + kStateOffset, state);
    } catch (...) {
        for (std::size_t i = written; i-- > 0;) {
            try {
                mem.write(restore[i].address, restore[i].patched);
            } catch (...) {
            }
        }
        tracer.resume_all();
        throw;
    }
    rec.state = State::Reverted;
    unmap_unused(pid, tracer, mem, maps, rec, prep, deadline, out);
    Clock::time_point last = tracer.resume_all();
    tracer.check_alive();
    out.timings.freeze_us = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(last - first).count());
    out.timings.max_attempt_freeze_us =
        std::max(out.timings.max_attempt_freeze_us, out.timings.freeze_us);
    out.timings.switch_us = us_since(ts);
    if (wait_for_unmap && !out.unmapped)
        unmap_later(pid, tracer, prep, mem, maps, rec,
                    std::min(deadline, Clock::now() + std::chrono::milliseconds(500)), deadline,
                    out);
    out.record = rec;
}

// Unmaps what killed applies left and closes their descriptors (find_debris). Nothing
// points into such mappings, so no thread needs to be stopped.
void remove_debris(proc::Pid pid, const proc::Memory& mem, const std::vector<proc::Mapping>& maps,
                   const std::vector<Debris>& debris, Clock::time_point deadline) {
    const auto& nr = arch::syscalls(arch::host());
    std::vector<std::pair<long, std::array<std::uint64_t, 6>>> calls_to_make;
    for (const Debris& d : debris) {
        for (const MappingRange& r : d.mappings)
            calls_to_make.push_back({nr.munmap, {r.start, r.end - r.start, 0, 0, 0, 0}});
        for (int fd : d.fds)
            calls_to_make.push_back({nr.close, {static_cast<std::uint64_t>(fd), 0, 0, 0, 0, 0}});
    }
    if (calls_to_make.empty()) return;
    fault_point("debris");
    auto insn = ptrace::find_syscall_insn(mem, maps, arch::host());
    ptrace::Tracer tracer(pid, deadline);
    std::vector<ptrace::InjectedCall> calls;
    for (const auto& [n, a] : calls_to_make)
        calls.push_back({n, a, n == nr.close ? "close" : "munmap"});
    check_filters_when_borrowed(tracer, pid, std::move(calls), insn);
    for (const auto& [n, a] : calls_to_make) {
        std::int64_t rc = tracer.remote_syscall(0, insn, n, a, deadline);
        if (rc < 0 && rc != -EBADF)
            throw Error(ErrorCode::NotEligible,
                        fmt::format("process {}: cannot remove what an interrupted apply left "
                                    "({} failed: {})",
                                    pid, n == nr.close ? "close" : "munmap",
                                    std::strerror(static_cast<int>(-rc))));
    }
}

} // namespace

// With the lock held, nobody else is mid-apply: a record still "preparing", one half
// reverted, and debris are what killed runs left. Rolls the apply back or finishes the
// revert. Returns whether anything was done.
static bool repair(proc::Pid pid, const proc::Memory& mem, std::vector<proc::Mapping>& maps,
                   std::vector<Record>& records, Clock::time_point deadline,
                   std::vector<std::string>& done) {
    bool any = false;
    for (Record& r : records) {
        const bool reverting = half_reverted(mem, r);
        if (r.state != State::Preparing && !reverting) continue;
        Outcome o;
        revert_locked(pid, mem, maps, records, r, deadline, Consistency::Entry, true, o);
        done.push_back(
            fmt::format("{} '{}'{}",
                        reverting ? "finished the interrupted revert of"
                                  : "rolled back the interrupted apply of",
                        r.id, o.unmapped ? "" : " (its code stays mapped: " + o.keep_reason + ")"));
        any = true;
    }
    if (any) {
        maps = proc::read_maps(pid);
        records = find_records(mem, maps);
    }
    auto debris = find_debris(pid, mem, maps, records);
    if (!debris.empty()) {
        remove_debris(pid, mem, maps, debris, deadline);
        for (const Debris& d : debris)
            done.push_back(fmt::format(
                "removed what an interrupted apply of '{}' left ({} mappings, {} descriptors)",
                d.id, d.mappings.size(), d.fds.size()));
        any = true;
    }
    return any;
}

Outcome revert_impl(proc::Pid pid, const std::string& id, std::chrono::milliseconds timeout,
                    Consistency mode) {
    Outcome out;
    auto t0 = Clock::now();
    auto deadline = t0 + timeout;
    proc::Instance inst = proc::instance(pid);
    InstanceLock lock(inst);
    auto maps = proc::read_maps(pid);
    proc::Memory mem(pid, true);
    auto records = find_records(mem, maps);
    Record* rec = nullptr;
    for (Record& r : records)
        if (r.id == id) rec = &r;
    if (rec == nullptr || rec->state == State::Reverted) {
        // The remains of an apply killed before its record existed are removed here too.
        for (const Debris& d : find_debris(pid, mem, maps, records)) {
            if (d.id != id) continue;
            remove_debris(pid, mem, maps, {d}, deadline);
            out.repaired.push_back(
                fmt::format("removed what an interrupted apply of '{}' left ({} mappings, {} "
                            "descriptors)",
                            id, d.mappings.size(), d.fds.size()));
            out.record.id = id;
            out.record.instance = inst;
            out.record.state = State::Reverted;
            out.unmapped = true;
            out.timings.total_us = us_since(t0);
            return out;
        }
        if (rec != nullptr) {
            // Reverted, its code kept mapped (a thread was using it, or a revert was killed
            // before unmapping): try the unmap again.
            ptrace::Tracer tracer(pid, deadline);
            const UnmapPrep prep = prepare_unmap(tracer, mem, maps);
            auto ts = Clock::now();
            Clock::time_point first = tracer.stop_all(deadline);
            unmap_unused(pid, tracer, mem, maps, *rec, prep, deadline, out);
            Clock::time_point last = tracer.resume_all();
            out.timings.freeze_us = static_cast<std::uint64_t>(
                std::chrono::duration_cast<std::chrono::microseconds>(last - first).count());
            out.timings.switch_us = us_since(ts);
            out.record = *rec;
            out.timings.total_us = us_since(t0);
            return out;
        }
        throw Error(ErrorCode::NotApplied,
                    fmt::format("patch '{}' is not applied to process {}", id, pid));
    }
    // A killed apply is rolled back without waiting for its code to be unused (it was never
    // complete, so no call chain relies on it); its unmap then waits for that.
    const bool rolling_back = rec->state == State::Preparing;
    revert_locked(pid, mem, maps, records, *rec, deadline, rolling_back ? Consistency::Entry : mode,
                  rolling_back, out);
    if (out.unmapped) {
        // A descriptor an interrupted apply of this id left open goes too.
        maps = proc::read_maps(pid);
        records = find_records(mem, maps);
        for (const Debris& d : find_debris(pid, mem, maps, records))
            if (d.id == id) {
                remove_debris(pid, mem, maps, {d}, deadline);
                out.repaired.push_back(fmt::format(
                    "closed {} descriptors an interrupted apply of '{}' left", d.fds.size(), id));
            }
    }
    out.timings.total_us = us_since(t0);
    return out;
}

} // namespace hp::patch
