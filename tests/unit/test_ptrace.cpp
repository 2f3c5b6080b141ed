// lib/proc and lib/ptrace against real processes: the victim (tests/targets/ptrace_victim.c)
// is started with pipes for its stdin and stdout and killed at the end of each test, even
// a failing one. Synchronisation is on state - ready lines, /proc/PID/task/TID/syscall -
// never on sleeps; every wait has a deadline so that nothing can hang.
#include "arch/arch.hpp"
#include "arch/syscalls.hpp"
#include "doc/error.hpp"
#include "elf/elf_file.hpp"
#include "proc/process.hpp"
#include "ptrace/tracer.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <fstream>
#include <functional>
#include <map>
#include <poll.h>
#include <sstream>
#include <string>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

using namespace hp;
using hp::proc::Pid;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

namespace {

// Writing to a victim that died must fail the test, not kill the test binary.
const bool kIgnoreSigpipe = [] {
    std::signal(SIGPIPE, SIG_IGN);
    return true;
}();

Clock::time_point in(milliseconds d) {
    return Clock::now() + d;
}

std::vector<Pid> threads_of(pid_t pid) {
    try {
        return proc::threads(pid);
    } catch (const Error&) {
        return {};
    }
}

// A running victim process; killed (SIGKILL) and reaped when the test ends.
class Victim {
  public:
    explicit Victim(const std::string& mode) {
        int in_pipe[2], out_pipe[2];
        REQUIRE(::pipe2(in_pipe, O_CLOEXEC) == 0);
        REQUIRE(::pipe2(out_pipe, O_CLOEXEC) == 0);
        pid_ = ::fork();
        REQUIRE(pid_ >= 0);
        if (pid_ == 0) {
            ::dup2(in_pipe[0], 0);
            ::dup2(out_pipe[1], 1);
            const char* argv[] = {HP_FIXTURE_PTRACE_VICTIM, mode.c_str(), nullptr};
            ::execv(argv[0], const_cast<char* const*>(argv));
            ::_exit(127);
        }
        ::close(in_pipe[0]);
        ::close(out_pipe[1]);
        to_ = in_pipe[1];
        from_ = out_pipe[0];
    }
    ~Victim() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            // A thread a Tracer could not detach (it never stopped) is still traced by this
            // process: its exit must be collected (__WALL) before the leader can be reaped.
            auto deadline = Clock::now() + seconds(10);
            while (Clock::now() < deadline) {
                for (Pid tid : threads_of(pid_))
                    if (tid != pid_) ::waitpid(tid, nullptr, __WALL | WNOHANG);
                pid_t r = ::waitpid(pid_, nullptr, __WALL | WNOHANG);
                if (r == pid_ || (r < 0 && errno == ECHILD)) break;
                ::usleep(1000);
            }
        }
        ::close(to_);
        ::close(from_);
    }
    Victim(const Victim&) = delete;
    Victim& operator=(const Victim&) = delete;

    pid_t pid() const { return pid_; }

    // The next line of output, or "" at the deadline / end of file.
    std::string line(Clock::time_point deadline) {
        for (;;) {
            auto nl = buf_.find('\n');
            if (nl != std::string::npos) {
                std::string l = buf_.substr(0, nl);
                buf_.erase(0, nl + 1);
                return l;
            }
            // At least one look, even at the deadline (a zero timeout still reads what is there).
            auto left = std::max<long long>(
                0, std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count());
            pollfd p{from_, POLLIN, 0};
            int r = ::poll(&p, 1, static_cast<int>(left));
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) return "";
            char b[4096];
            ssize_t n = ::read(from_, b, sizeof b);
            if (n <= 0) return "";
            buf_.append(b, static_cast<std::size_t>(n));
        }
    }
    // Lines until one that starts with `prefix` (which is returned); "" at the deadline.
    std::string line_starting(const std::string& prefix, Clock::time_point deadline,
                              std::vector<std::string>* skipped = nullptr) {
        for (;;) {
            std::string l = line(deadline);
            if (l.empty() || l.rfind(prefix, 0) == 0) return l;
            if (skipped) skipped->push_back(l);
        }
    }
    void send(const std::string& s) {
        std::string l = s + "\n";
        REQUIRE(::write(to_, l.data(), l.size()) == static_cast<ssize_t>(l.size()));
    }
    bool ping(Clock::time_point deadline) {
        send("ping");
        return line(deadline) == "pong";
    }

  private:
    pid_t pid_ = -1;
    int to_ = -1, from_ = -1;
    std::string buf_;
};

std::vector<std::string> words(const std::string& s) {
    std::istringstream is(s);
    std::vector<std::string> out;
    for (std::string w; is >> w;)
        out.push_back(w);
    return out;
}

// Waits until the thread is blocked in system call `nr` (first field of
// /proc/PID/task/TID/syscall) and sleeping: synchronisation on state.
bool wait_in_syscall(pid_t pid, pid_t tid, long nr, Clock::time_point deadline) {
    while (Clock::now() < deadline) {
        if (proc::thread_syscall(pid, tid) == nr && proc::thread_state(pid, tid) == 'S')
            return true;
        ::sched_yield();
    }
    return false;
}

std::array<std::uint64_t, 6> args(std::initializer_list<std::uint64_t> a) {
    std::array<std::uint64_t, 6> out{};
    std::copy(a.begin(), a.end(), out.begin());
    return out;
}

std::uint64_t syscall_insn(pid_t pid) {
    proc::Memory mem(pid);
    return ptrace::find_syscall_insn(mem, proc::read_maps(pid), arch::host());
}

const arch::SyscallNumbers& nrs() {
    return arch::syscalls(arch::host());
}

bool mapped(pid_t pid, std::uint64_t addr) {
    for (const auto& m : proc::read_maps(pid))
        if (addr >= m.start && addr < m.end) return true;
    return false;
}

bool executable_at(const std::vector<proc::Mapping>& maps, std::uint64_t addr) {
    for (const auto& m : maps)
        if (addr >= m.start && addr < m.end) return m.executable();
    return false;
}

ErrorCode code_of(const std::function<void()>& f, std::string* message = nullptr) {
    try {
        f();
    } catch (const Error& e) {
        if (message) *message = e.what();
        return e.code();
    }
    FAIL("no hp::Error thrown");
    return ErrorCode::Internal;
}

} // namespace

TEST_CASE("seize_stop_resume_eight_threads_keeps_the_victim_serving") {
    Victim v("threads");
    std::vector<std::string> roles_lines;
    REQUIRE(v.line_starting("ready", in(seconds(5)), &roles_lines) != "");
    std::map<pid_t, std::string> role;
    for (const auto& l : roles_lines) {
        auto w = words(l);
        REQUIRE(w.size() == 3);
        role[std::stoi(w[1])] = w[2];
    }
    REQUIRE(role.size() == 8);
    // The blocked workers really are blocked before we look at them.
    for (auto& [tid, r] : role) {
        if (r == "read") REQUIRE(wait_in_syscall(v.pid(), tid, SYS_read, in(seconds(5))));
        if (r == "futex") REQUIRE(wait_in_syscall(v.pid(), tid, SYS_futex, in(seconds(5))));
    }
    REQUIRE(wait_in_syscall(v.pid(), v.pid(), SYS_read, in(seconds(5)))); // serving stdin

    ptrace::Tracer t(v.pid(), in(seconds(5)));
    // A thread that is not blocked is preferred for borrowing.
    Pid chosen = t.choose_thread();
    CHECK(role[chosen] != "read");
    CHECK(role[chosen] != "futex");
    CHECK(chosen != v.pid()); // the main thread is blocked in read(0)

    for (int round = 0; round < 5; ++round) {
        CAPTURE(round);
        // After a resume the blocked workers re-issue their calls: wait until they are
        // blocked again, so that the stop finds them inside.
        for (auto& [tid, r] : role) {
            if (r == "read") REQUIRE(wait_in_syscall(v.pid(), tid, SYS_read, in(seconds(5))));
            if (r == "futex") REQUIRE(wait_in_syscall(v.pid(), tid, SYS_futex, in(seconds(5))));
        }
        t.stop_all(in(seconds(5)));
        auto maps = proc::read_maps(v.pid());
        REQUIRE(t.threads().size() == 9);
        CHECK(t.threads().front().tid == v.pid());
        for (const auto& ti : t.threads()) {
            CAPTURE(ti.tid);
            CHECK(ti.regs.ip() != 0);
            CHECK(ti.regs.sp() != 0);
            CHECK(executable_at(maps, ti.regs.ip()));
            if (role[ti.tid] == "read") CHECK((ti.in_syscall && ti.syscall_nr == SYS_read));
            if (role[ti.tid] == "futex") CHECK((ti.in_syscall && ti.syscall_nr == SYS_futex));
            if (role[ti.tid] == "spin") CHECK(!ti.in_syscall);
        }
        // Every thread is in a ptrace-stop ('t').
        for (Pid tid : proc::threads(v.pid()))
            CHECK(proc::thread_state(v.pid(), tid) == 't');
        t.resume_all();
        CHECK(v.ping(in(seconds(5))));
    }
}

TEST_CASE("remote_getpid_mmap_munmap_through_a_borrowed_thread") {
    Victim v("threads");
    REQUIRE(v.line_starting("ready", in(seconds(5))) != "");
    std::uint64_t insn = syscall_insn(v.pid());
    ptrace::Tracer t(v.pid(), in(seconds(5)));

    // Other threads keep running while one is borrowed.
    CHECK(t.remote_syscall(0, insn, nrs().getpid, {}, in(seconds(5))) == v.pid());
    std::int64_t addr = t.remote_syscall(
        0, insn, nrs().mmap,
        args({0, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, static_cast<std::uint64_t>(-1), 0}),
        in(seconds(5)));
    REQUIRE(addr > 0);
    CHECK(addr % 4096 == 0);
    CHECK(mapped(v.pid(), static_cast<std::uint64_t>(addr)));
    CHECK(t.remote_syscall(0, insn, nrs().munmap, args({static_cast<std::uint64_t>(addr), 4096}),
                           in(seconds(5))) == 0);
    CHECK_FALSE(mapped(v.pid(), static_cast<std::uint64_t>(addr)));
    // A failing call returns -errno.
    CHECK(t.remote_syscall(0, insn, nrs().munmap, args({1, 4096}), in(seconds(5))) == -EINVAL);
    CHECK(v.ping(in(seconds(5))));

    // With every thread stopped: the main thread (blocked in read) can be borrowed too, and
    // stays stopped afterwards.
    t.stop_all(in(seconds(5)));
    CHECK(t.remote_syscall(v.pid(), insn, nrs().getpid, {}, in(seconds(5))) == v.pid());
    CHECK(proc::thread_state(v.pid(), v.pid()) == 't');
    t.resume_all();
    CHECK(v.ping(in(seconds(5))));
}

// Tracer::set_borrow_check (hp-apply reads a thread's seccomp filters there): each thread
// is checked once, before its first call; a refused thread is let go and another chosen;
// with every thread refused, the first refusal is the answer.
TEST_CASE("a_thread_the_borrow_check_refuses_is_let_go_and_another_is_borrowed") {
    Victim v("threads");
    REQUIRE(v.line_starting("ready", in(seconds(5))) != "");
    std::uint64_t insn = syscall_insn(v.pid());
    ptrace::Tracer t(v.pid(), in(seconds(5)));
    const Pid first = t.choose_thread();
    std::vector<Pid> asked;
    t.set_borrow_check([&](Pid tid) {
        asked.push_back(tid);
        if (tid == first) throw Error(ErrorCode::NotEligible, fmt::format("refused {}", tid));
    });
    CHECK(t.remote_syscall(0, insn, nrs().getpid, {}, in(seconds(5))) == v.pid());
    CHECK(t.remote_syscall(0, insn, nrs().getpid, {}, in(seconds(5))) == v.pid());
    REQUIRE(asked.size() == 2); // the refused thread, then the one that ran both calls
    CHECK(asked[0] == first);
    CHECK(asked[1] != first);
    CHECK(t.choose_thread() != first);
    // Named by the caller: refused at once.
    std::string msg;
    CHECK(code_of([&] { t.remote_syscall(first, insn, nrs().getpid, {}, in(seconds(5))); }, &msg) ==
          ErrorCode::NotEligible);
    CHECK(msg == fmt::format("refused {}", first));
    CHECK(v.ping(in(seconds(5))));

    // Every thread refused: the first refusal, after each thread was asked once.
    asked.clear();
    t.set_borrow_check([&](Pid tid) {
        asked.push_back(tid);
        throw Error(ErrorCode::NotEligible, fmt::format("refused {}", tid));
    });
    CHECK(code_of([&] { t.remote_syscall(0, insn, nrs().getpid, {}, in(seconds(5))); }, &msg) ==
          ErrorCode::NotEligible);
    REQUIRE_FALSE(asked.empty());
    CHECK(msg == fmt::format("refused {}", asked[0]));
    std::sort(asked.begin(), asked.end());
    CHECK(std::adjacent_find(asked.begin(), asked.end()) == asked.end());
    CHECK(asked.size() == proc::threads(v.pid()).size());
    // And the threads run on: none was left stopped.
    CHECK(v.ping(in(seconds(5))));
}

TEST_CASE("borrowed_thread_blocked_in_read_gets_its_data_without_eintr") {
    Victim v("read");
    REQUIRE(v.line_starting("ready", in(seconds(5))) != "");
    REQUIRE(wait_in_syscall(v.pid(), v.pid(), SYS_read, in(seconds(5))));
    std::uint64_t insn = syscall_insn(v.pid());
    {
        ptrace::Tracer t(v.pid(), in(seconds(5)));
        CHECK(t.choose_thread() == v.pid()); // the only thread, though blocked
        CHECK(t.remote_syscall(0, insn, nrs().getpid, {}, in(seconds(5))) == v.pid());
        // The read was restarted: the thread is blocked in it again.
        CHECK(wait_in_syscall(v.pid(), v.pid(), SYS_read, in(seconds(5))));
        v.send("hello");
        CHECK(v.line(in(seconds(5))) == "read 6 0 hello");
    }
    CHECK(v.ping(in(seconds(5))));
}

TEST_CASE("borrowed_thread_in_nanosleep_sleeps_its_full_time") {
    Victim v("sleep");
    REQUIRE(v.line_starting("ready", in(seconds(5))) != "");
    // glibc's nanosleep() is clock_nanosleep on both architectures.
    REQUIRE(wait_in_syscall(v.pid(), v.pid(), SYS_clock_nanosleep, in(seconds(5))));
    std::uint64_t insn = syscall_insn(v.pid());
    {
        ptrace::Tracer t(v.pid(), in(seconds(5)));
        CHECK(t.remote_syscall(0, insn, nrs().getpid, {}, in(seconds(5))) == v.pid());
    }
    auto w = words(v.line_starting("slept", in(seconds(10))));
    REQUIRE(w.size() == 4);
    CHECK(std::stoll(w[1]) >= 2'000'000'000LL); // never shortened
    CHECK(w[2] == "0");                         // no EINTR
    CHECK(v.ping(in(seconds(5))));
}

TEST_CASE("borrowed_thread_in_futex_wait_returns_zero_when_woken") {
    Victim v("futex");
    auto ready = words(v.line_starting("ready", in(seconds(5))));
    REQUIRE(ready.size() == 2);
    pid_t waiter = std::stoi(ready[1]);
    REQUIRE(wait_in_syscall(v.pid(), waiter, SYS_futex, in(seconds(5))));
    std::uint64_t insn = syscall_insn(v.pid());
    {
        ptrace::Tracer t(v.pid(), in(seconds(5)));
        CHECK(t.remote_syscall(waiter, insn, nrs().getpid, {}, in(seconds(5))) == v.pid());
        // Back in its wait (restarted), before the word changes: otherwise the restarted
        // FUTEX_WAIT would legitimately return EAGAIN.
        REQUIRE(wait_in_syscall(v.pid(), waiter, SYS_futex, in(seconds(5))));
        v.send("wake");
        CHECK(v.line_starting("futex", in(seconds(5))) == "futex 0 0");
    }
    CHECK(v.ping(in(seconds(5))));
}

TEST_CASE("already_traced_process_is_refused_naming_the_tracer") {
    Victim v("read");
    REQUIRE(v.line_starting("ready", in(seconds(5))) != "");
    int ok[2], hold[2];
    REQUIRE(::pipe2(ok, O_CLOEXEC) == 0);
    REQUIRE(::pipe2(hold, O_CLOEXEC) == 0);
    pid_t other = ::fork();
    REQUIRE(other >= 0);
    if (other == 0) {
        char c = ::ptrace(PTRACE_SEIZE, v.pid(), nullptr, nullptr) == 0 ? 'y' : 'n';
        (void)!::write(ok[1], &c, 1);
        (void)!::read(hold[0], &c, 1); // until the test closes its end
        ::_exit(0);
    }
    ::close(ok[1]);
    ::close(hold[0]);
    struct Reap {
        pid_t pid;
        int fd;
        ~Reap() {
            ::close(fd);
            ::kill(pid, SIGKILL);
            ::waitpid(pid, nullptr, 0);
        }
    } reap{other, hold[1]};
    char c = 0;
    REQUIRE(::read(ok[0], &c, 1) == 1);
    ::close(ok[0]);
    REQUIRE(c == 'y');

    std::string msg;
    CHECK(code_of([&] { ptrace::Tracer t(v.pid(), in(seconds(5))); }, &msg) == ErrorCode::Traced);
    CHECK(msg.find(std::to_string(other)) != std::string::npos);
    CHECK(msg.find(std::to_string(v.pid())) != std::string::npos);
}

TEST_CASE("victim_killed_before_stop_all_reports_exit_without_hanging") {
    Victim v("threads");
    REQUIRE(v.line_starting("ready", in(seconds(5))) != "");
    ptrace::Tracer t(v.pid(), in(seconds(5)));
    REQUIRE(::kill(v.pid(), SIGKILL) == 0);
    auto code = code_of([&] { t.stop_all(in(seconds(5))); });
    CHECK((code == ErrorCode::ProcessExited || code == ErrorCode::NoSuchProcess));
    // And again: still an error, still no hang.
    code = code_of([&] { t.remote_syscall(0, 0, nrs().getpid, {}, in(seconds(5))); });
    CHECK((code == ErrorCode::ProcessExited || code == ErrorCode::NoSuchProcess));
}

TEST_CASE("tracer_refuses_missing_process_and_itself") {
    std::string pid_max;
    std::ifstream("/proc/sys/kernel/pid_max") >> pid_max;
    CHECK(code_of([&] { ptrace::Tracer t(std::stoi(pid_max), in(seconds(5))); }) ==
          ErrorCode::NoSuchProcess);
    CHECK(code_of([&] { ptrace::Tracer t(::getpid(), in(seconds(5))); }) == ErrorCode::Permission);
    CHECK(code_of([&] { (void)proc::instance(std::stoi(pid_max)); }) == ErrorCode::NoSuchProcess);
}

TEST_CASE("proc_instance_modules_and_memory_of_a_live_victim") {
    Victim v("proc");
    auto ready = words(v.line_starting("ready", in(seconds(5))));
    REQUIRE(ready.size() == 3);
    std::uint64_t marker = std::stoull(ready[1], nullptr, 16);
    std::uint64_t shared = std::stoull(ready[2], nullptr, 16);

    // Instance: start time is field 22 of /proc/PID/stat, whose comm has ") (" and spaces.
    CHECK(proc::comm(v.pid()) == "hp v) (x y");
    std::string stat;
    std::getline(std::ifstream("/proc/" + std::to_string(v.pid()) + "/stat"), stat);
    auto fields = words(stat.substr(stat.rfind(')') + 1)); // fields[0] is field 3
    REQUIRE(fields.size() > 19);
    auto inst = proc::instance(v.pid());
    CHECK(inst.pid == v.pid());
    CHECK(inst.start_time == std::stoull(fields[19]));
    CHECK(proc::instance(v.pid()) == inst);
    CHECK(proc::instance(v.pid()).start_time >= proc::instance(::getpid()).start_time);

    // Maps: a path with spaces and parentheses, removed from disk.
    auto maps = proc::read_maps(v.pid());
    auto sh = std::find_if(maps.begin(), maps.end(),
                           [&](const proc::Mapping& m) { return m.start == shared; });
    REQUIRE(sh != maps.end());
    CHECK(sh->path.rfind("/tmp/hp victim (map) ", 0) == 0);
    CHECK(sh->path.size() > 10);
    CHECK(sh->path.substr(sh->path.size() - 10) == " (deleted)");
    CHECK(sh->perms == "r--s");
    CHECK(sh->end - sh->start == 4096);

    // Modules: the executable first, with its build-id and the right bias; libc found.
    auto t0 = Clock::now();
    auto mods = proc::modules(v.pid(), maps);
    auto took = Clock::now() - t0;
    MESSAGE("modules(): " << mods.size() << " modules in "
                          << std::chrono::duration_cast<std::chrono::microseconds>(took).count()
                          << " us");
    REQUIRE(!mods.empty());
    char exe[PATH_MAX];
    REQUIRE(::realpath(HP_FIXTURE_PTRACE_VICTIM, exe) != nullptr);
    const proc::Module& m0 = mods.front();
    CHECK(m0.path == exe);
    CHECK_FALSE(m0.deleted);
    auto file = elf::ElfFile::open(exe);
    REQUIRE(file.build_id().has_value());
    CHECK(m0.build_id == *file.build_id());
    const elf::Symbol* sym = nullptr;
    for (const auto* table : {&file.symtab(), &file.dynsym()})
        for (const auto& s : *table)
            if (s.name == "ptrace_victim_marker" && s.defined()) sym = &s;
    REQUIRE(sym != nullptr);
    CHECK(sym->value + m0.bias == marker);
    CHECK(marker >= m0.start);
    CHECK(marker < m0.end);
    CHECK(m0.map_file.find("/map_files/") != std::string::npos);

    auto libc = std::find_if(mods.begin(), mods.end(), [](const proc::Module& m) {
        return m.path.find("/libc.so") != std::string::npos;
    });
    REQUIRE(libc != mods.end());
    CHECK(libc->build_id == elf::ElfFile::open(libc->path).build_id().value_or("?"));
    CHECK(libc->bias % 4096 == 0);
    // The deleted data file, vDSO and anonymous memory are not modules.
    for (const auto& m : mods) {
        CHECK(m.path.find("hp victim") == std::string::npos);
        CHECK(m.path[0] == '/');
    }

    // The whole mapped file, parsed.
    auto parsed = proc::open_module(m0);
    CHECK(parsed.build_id() == file.build_id());

    // Memory: the marker's bytes in the process are those of the file.
    proc::Memory mem(v.pid());
    auto code = file.read_vaddr(sym->value, 4);
    REQUIRE(code.has_value());
    Bytes live = mem.read(marker, 4);
    CHECK(Bytes(code->begin(), code->end()) == live);
    CHECK(mem.read_u64(marker) == load_le64(mem.read(marker, 8).data()));
    std::string msg;
    CHECK(code_of([&] { (void)mem.read(0, 8); }, &msg) == ErrorCode::Io);
    CHECK(msg.find("0x0") != std::string::npos);
    CHECK(msg.find(std::to_string(v.pid())) != std::string::npos);
    std::uint8_t b[8];
    CHECK_FALSE(mem.read_fallible(0, b, 8));

    // Threads and states.
    CHECK(proc::threads(v.pid()) == std::vector<Pid>{v.pid()});
    // After its ready line the victim goes on to block in read(): wait for that (it may
    // still be running when we get here), synchronising on the state itself.
    CHECK(wait_in_syscall(v.pid(), v.pid(), SYS_read, in(seconds(10))));
    CHECK(proc::thread_state(v.pid(), v.pid()) == 'S');

    // Once the process is gone: ProcessExited, not an I/O error.
    ::kill(v.pid(), SIGKILL);
    while (proc::thread_state(v.pid(), v.pid()) != 'Z' &&
           proc::thread_state(v.pid(), v.pid()) != 'X')
        ::sched_yield();
    CHECK(code_of([&] { (void)mem.read(marker, 4); }) == ErrorCode::ProcessExited);
    CHECK(code_of([&] { (void)proc::instance(v.pid()); }) == ErrorCode::ProcessExited);
}

TEST_CASE("memory_writes_reach_read_only_pages") {
    Victim v("proc");
    REQUIRE(v.line_starting("ready", in(seconds(5))) != "");
    auto mods = proc::modules(v.pid(), proc::read_maps(v.pid()));
    REQUIRE(!mods.empty());
    // The executable's ELF header page is mapped r--p: written through /proc/PID/mem
    // (FOLL_FORCE breaks copy-on-write), as a site in r-x code is. Bytes 9..15 of e_ident
    // are padding that nothing reads.
    std::uint64_t at = mods.front().start + 9;
    proc::Memory mem(v.pid(), true);
    const std::uint8_t data[] = {0xde, 0xad, 0xbe, 0xef};
    mem.write(at, data);
    CHECK(mem.read(at, 4) == Bytes{0xde, 0xad, 0xbe, 0xef});
    std::string msg;
    CHECK(code_of([&] { mem.write(0, data); }, &msg) == ErrorCode::Io);
    CHECK(msg.find("cannot write 4 bytes at 0x0 in process " + std::to_string(v.pid())) !=
          std::string::npos);
    CHECK(v.ping(in(seconds(5))));
}

TEST_CASE("group_stopped_process_stays_stopped_after_detach") {
    Victim v("threads");
    REQUIRE(v.line_starting("ready", in(seconds(5))) != "");
    REQUIRE(::kill(v.pid(), SIGSTOP) == 0);
    auto all_stopped = [&] {
        for (Pid tid : proc::threads(v.pid()))
            if (proc::thread_state(v.pid(), tid) != 'T') return false;
        return true;
    };
    auto wait_all_stopped = [&] {
        auto deadline = in(seconds(5));
        while (!all_stopped() && Clock::now() < deadline)
            ::sched_yield();
        return all_stopped();
    };
    REQUIRE(wait_all_stopped());
    std::uint64_t insn = syscall_insn(v.pid());
    {
        ptrace::Tracer t(v.pid(), in(seconds(5)));
        // Attached but not stopped by us: the process is still stopped.
        t.stop_all(in(seconds(5)));
        CHECK(t.threads().size() == 9);
        CHECK(t.remote_syscall(0, insn, nrs().getpid, {}, in(seconds(5))) == v.pid());
        t.resume_all();
        // Borrowing while running (the group is stopped: the thread goes back to it).
        CHECK(t.remote_syscall(0, insn, nrs().getpid, {}, in(seconds(5))) == v.pid());
    }
    CHECK(wait_all_stopped());
    v.send("ping");
    CHECK(v.line(in(milliseconds(200))) == ""); // still stopped: no answer
    REQUIRE(::kill(v.pid(), SIGCONT) == 0);
    CHECK(v.line(in(seconds(5))) == "pong");
}

TEST_CASE("signals_sent_while_stopped_or_borrowed_are_delivered_in_order") {
    Victim v("signals");
    REQUIRE(v.line_starting("ready", in(seconds(5))) != "");
    REQUIRE(wait_in_syscall(v.pid(), v.pid(), SYS_read, in(seconds(5))));
    std::uint64_t insn = syscall_insn(v.pid());
    auto queue = [&](int value) {
        sigval sv{};
        sv.sival_int = value;
        REQUIRE(::sigqueue(v.pid(), SIGRTMIN, sv) == 0);
    };
    {
        ptrace::Tracer t(v.pid(), in(seconds(5)));
        t.stop_all(in(seconds(5)));
        queue(1);
        queue(2);
        // Borrowed while signals are pending: they stay queued.
        CHECK(t.remote_syscall(v.pid(), insn, nrs().getpid, {}, in(seconds(5))) == v.pid());
        queue(3);
        t.resume_all();
        // The main thread takes them one by one, each a signal-delivery-stop that the
        // tracer must answer: serve until the victim answers.
        v.send("report");
        std::string l;
        auto deadline = in(seconds(5));
        while (l.empty() && Clock::now() < deadline) {
            t.service_events();
            l = v.line(in(milliseconds(1)));
        }
        CHECK(l == "rt 3 1 2 3");
        // More while attached and running, then detach with them in flight.
        queue(4);
        queue(5);
    }
    v.send("report");
    CHECK(v.line(in(seconds(5))) == "rt 5 1 2 3 4 5");
}

TEST_CASE("signal_in_flight_when_borrowed_is_delivered_once") {
    Victim v("signals");
    REQUIRE(v.line_starting("ready", in(seconds(5))) != "");
    REQUIRE(wait_in_syscall(v.pid(), v.pid(), SYS_read, in(seconds(5))));
    std::uint64_t insn = syscall_insn(v.pid());
    {
        ptrace::Tracer t(v.pid(), in(seconds(5)));
        t.stop_all(in(seconds(5)));
        sigval sv{};
        sv.sival_int = 7;
        REQUIRE(::sigqueue(v.pid(), SIGRTMIN, sv) == 0);
        t.resume_all();
        // The main thread now dequeues the signal and waits in its signal-delivery-stop
        // (nobody services it): borrow it right there.
        auto deadline = in(seconds(5));
        while (proc::thread_state(v.pid(), v.pid()) != 't' && Clock::now() < deadline)
            ::sched_yield();
        CHECK(t.remote_syscall(v.pid(), insn, nrs().getpid, {}, in(seconds(5))) == v.pid());
        v.send("report");
        std::string l;
        deadline = in(seconds(5));
        while (l.empty() && Clock::now() < deadline) {
            t.service_events();
            l = v.line(in(milliseconds(1)));
        }
        CHECK(l == "rt 1 7"); // delivered, once, with its value
    }
    CHECK(v.ping(in(seconds(5))));
}

TEST_CASE("zombie_main_thread_is_skipped") {
    Victim v("zombie");
    auto ready = words(v.line_starting("ready", in(seconds(5))));
    REQUIRE(ready.size() == 2);
    pid_t worker = std::stoi(ready[1]);
    auto deadline = in(seconds(5));
    while (proc::thread_state(v.pid(), v.pid()) != 'Z' && Clock::now() < deadline)
        ::sched_yield();
    REQUIRE(proc::thread_state(v.pid(), v.pid()) == 'Z');
    // Alive, though its leader is a zombie: instance, maps and modules still work.
    CHECK(proc::instance(v.pid()).pid == v.pid());
    CHECK_FALSE(proc::read_maps(v.pid()).empty());
    auto mods = proc::modules(v.pid(), proc::read_maps(v.pid()));
    REQUIRE_FALSE(mods.empty());
    CHECK(mods.front().build_id == elf::ElfFile::open(mods.front().path).build_id().value_or("?"));
    std::uint64_t insn = syscall_insn(v.pid());
    ptrace::Tracer t(v.pid(), in(seconds(5)));
    t.stop_all(in(seconds(5)));
    REQUIRE(t.threads().size() == 1);
    CHECK(t.threads().front().tid == worker);
    CHECK(t.choose_thread() == worker);
    CHECK(t.remote_syscall(0, insn, nrs().getpid, {}, in(seconds(5))) == v.pid());
    t.resume_all();
    CHECK(v.ping(in(seconds(5))));
}

TEST_CASE("thread_in_vfork_cannot_be_stopped_and_is_reported_unsafe") {
    Victim v("vfork");
    auto ready = words(v.line_starting("ready", in(seconds(5))));
    REQUIRE(ready.size() == 2);
    pid_t vforker = std::stoi(ready[1]);
    auto deadline = in(seconds(5));
    while (proc::thread_state(v.pid(), vforker) != 'D' && Clock::now() < deadline)
        ::sched_yield();
    REQUIRE(proc::thread_state(v.pid(), vforker) == 'D');
    REQUIRE(wait_in_syscall(v.pid(), v.pid(), SYS_read, in(seconds(5))));
    ptrace::Tracer t(v.pid(), in(seconds(5)));
    std::string msg;
    CHECK(code_of([&] { t.stop_all(in(milliseconds(300))); }, &msg) == ErrorCode::Unsafe);
    CHECK(msg.find("could not stop thread " + std::to_string(vforker) + " (state D") !=
          std::string::npos);
    // What was stopped runs again.
    CHECK(v.ping(in(seconds(5))));
    // The other thread can still be borrowed.
    CHECK(t.remote_syscall(v.pid(), syscall_insn(v.pid()), nrs().getpid, {}, in(seconds(5))) ==
          v.pid());
    CHECK(v.ping(in(seconds(5))));
}

TEST_CASE("threads_born_during_the_freeze_are_caught") {
    Victim v("churn");
    REQUIRE(v.line_starting("ready", in(seconds(5))) != "");
    std::uint64_t insn = syscall_insn(v.pid());
    ptrace::Tracer t(v.pid(), in(seconds(5)));
    for (int round = 0; round < 20; ++round) {
        t.stop_all(in(seconds(5)));
        std::vector<Pid> known;
        for (const auto& ti : t.threads())
            known.push_back(ti.tid);
        for (Pid tid : proc::threads(v.pid())) {
            char st = proc::thread_state(v.pid(), tid);
            CAPTURE(tid);
            CAPTURE(st);
            CHECK((std::count(known.begin(), known.end(), tid) == 1 || st == 'Z' || st == 'X'));
            if (st != 'Z' && st != 'X') CHECK(st == 't');
        }
        t.resume_all();
        t.service_events();
        // Borrowing one thread while the others keep creating threads.
        CHECK(t.remote_syscall(0, insn, nrs().getpid, {}, in(seconds(5))) == v.pid());
    }
    t.stop_all(in(seconds(5)));
    t.resume_all();
    CHECK(v.ping(in(seconds(5))));
}

TEST_CASE("find_syscall_insn_finds_the_instruction_bytes") {
    Victim v("read");
    REQUIRE(v.line_starting("ready", in(seconds(5))) != "");
    proc::Memory mem(v.pid());
    auto maps = proc::read_maps(v.pid());
    std::uint64_t at = ptrace::find_syscall_insn(mem, maps, arch::host());
    ByteView want = arch::syscall_insn(arch::host());
    CHECK(mem.read(at, want.size()) == Bytes(want.begin(), want.end()));
    CHECK(executable_at(maps, at));
    if (arch::host() == arch::Arch::AArch64) CHECK(at % 4 == 0);
    // No executable mapping: not eligible.
    std::vector<proc::Mapping> none;
    CHECK(code_of([&] { (void)ptrace::find_syscall_insn(mem, none, arch::host()); }) ==
          ErrorCode::NotEligible);
}

TEST_CASE("a_second_tracer_in_this_process_is_refused") {
    Victim v("read");
    REQUIRE(v.line_starting("ready", in(seconds(5))) != "");
    ptrace::Tracer t(v.pid(), in(seconds(5)));
    std::string msg;
    CHECK(code_of([&] { ptrace::Tracer u(v.pid(), in(seconds(5))); }, &msg) == ErrorCode::Traced);
    CHECK(msg.find("this process") != std::string::npos);
    // The first one still works.
    t.stop_all(in(seconds(5)));
    CHECK(t.threads().size() == 1);
    t.resume_all();
}

namespace {
std::size_t open_fds() {
    std::size_t n = 0;
    DIR* d = ::opendir("/proc/self/fd");
    while (dirent* e = ::readdir(d))
        n += e->d_name[0] != '.';
    ::closedir(d);
    return n;
}
} // namespace

TEST_CASE("tracer_and_proc_readers_leave_no_file_descriptor_behind") {
    Victim v("threads");
    REQUIRE(v.line_starting("ready", in(seconds(5))) != "");
    std::size_t before = open_fds();
    {
        auto maps = proc::read_maps(v.pid());
        auto mods = proc::modules(v.pid(), maps);
        REQUIRE(!mods.empty());
        (void)proc::open_module(mods.front());
        std::uint64_t insn = syscall_insn(v.pid());
        ptrace::Tracer t(v.pid(), in(seconds(5)));
        t.stop_all(in(seconds(5)));
        auto t0 = Clock::now();
        for (int i = 0; i < 10; ++i)
            CHECK(t.remote_syscall(0, insn, nrs().getpid, {}, in(seconds(5))) == v.pid());
        auto per_call =
            std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count() / 10;
        t.resume_all();
        auto t1 = Clock::now();
        for (int i = 0; i < 10; ++i)
            CHECK(t.remote_syscall(0, insn, nrs().getpid, {}, in(seconds(5))) == v.pid());
        auto per_call_running =
            std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t1).count() / 10;
        MESSAGE("remote getpid: " << per_call << " us per call (all stopped), " << per_call_running
                                  << " us (others running)");
    }
    CHECK(open_fds() == before);
    CHECK(v.ping(in(seconds(5))));
}
