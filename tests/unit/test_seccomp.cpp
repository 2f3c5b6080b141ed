// lib/ptrace/seccomp: the classic-BPF interpreter on hand-built programs, then the whole
// check against real processes under real filters (tests/targets/seccomp_victim.c). Nothing
// is ever injected: after each check the victim must still answer, and where the filter
// would act, the victim itself makes the call so the kernel confirms the prediction.
// Synchronisation is on the victim's output lines, with a deadline on every wait.
#include "arch/arch.hpp"
#include "arch/syscalls.hpp"
#include "doc/error.hpp"
#include "ptrace/seccomp.hpp"
#include "ptrace/tracer.hpp"

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <poll.h>
#include <string>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

using namespace hp;
using hp::ptrace::InjectedCall;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

namespace {

// ---- hand-built programs ----

using Prog = std::vector<sock_filter>;

sock_filter stmt(unsigned code, std::uint32_t k) {
    return sock_filter{static_cast<std::uint16_t>(code), 0, 0, k};
}
sock_filter jump(unsigned code, std::uint32_t k, std::uint8_t jt, std::uint8_t jf) {
    return sock_filter{static_cast<std::uint16_t>(code), jt, jf, k};
}
constexpr std::uint32_t kOffNr = offsetof(seccomp_data, nr);
constexpr std::uint32_t kOffArch = offsetof(seccomp_data, arch);
// Arguments are 64-bit; filters load them one 32-bit word at a time (little-endian here).
constexpr std::uint32_t arg_lo(unsigned i) {
    return static_cast<std::uint32_t>(offsetof(seccomp_data, args) + 8 * i);
}
constexpr std::uint32_t arg_hi(unsigned i) {
    return arg_lo(i) + 4;
}
constexpr std::uint32_t kX86 = 0xc000003e, kArm = 0xc00000b7;

seccomp_data call(int nr, std::array<std::uint64_t, 6> args = {}, std::uint32_t arch = kX86) {
    seccomp_data d{};
    d.nr = nr;
    d.arch = arch;
    for (std::size_t i = 0; i < 6; ++i)
        d.args[i] = args[i];
    return d;
}

const Prog kAllowAll = {stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)};

// Program computing A from nr (in A) with one ALU op against K or X, then RET A.
Prog alu(unsigned opcode, std::uint32_t k, bool with_x, std::uint32_t x = 0) {
    Prog p = {stmt(BPF_LD | BPF_W | BPF_ABS, kOffNr)};
    if (with_x) p.push_back(stmt(BPF_LDX | BPF_IMM, x));
    p.push_back(stmt(BPF_ALU | opcode | (with_x ? BPF_X : BPF_K), k));
    p.push_back(stmt(BPF_RET | BPF_A, 0));
    return p;
}

} // namespace

TEST_CASE("seccomp interpreter: allow-all, kill on a number, errno with an arch check") {
    using ptrace::run_filter;
    CHECK(run_filter(kAllowAll, call(9)) == SECCOMP_RET_ALLOW);

    const Prog kill9 = {
        stmt(BPF_LD | BPF_W | BPF_ABS, kOffNr),
        jump(BPF_JMP | BPF_JEQ | BPF_K, 9, 0, 1),
        stmt(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
        stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    CHECK(run_filter(kill9, call(9)) == SECCOMP_RET_KILL_PROCESS);
    CHECK(run_filter(kill9, call(10)) == SECCOMP_RET_ALLOW);

    const Prog errno_memfd = {
        stmt(BPF_LD | BPF_W | BPF_ABS, kOffArch),
        jump(BPF_JMP | BPF_JEQ | BPF_K, kX86, 1, 0),
        stmt(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
        stmt(BPF_LD | BPF_W | BPF_ABS, kOffNr),
        jump(BPF_JMP | BPF_JEQ | BPF_K, 319, 0, 1),
        stmt(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    std::uint32_t r = run_filter(errno_memfd, call(319));
    CHECK(r == (SECCOMP_RET_ERRNO | EPERM));
    CHECK(ptrace::describe_action(r) == "return EPERM");
    CHECK_FALSE(ptrace::action_allows(r));
    CHECK(run_filter(errno_memfd, call(9)) == SECCOMP_RET_ALLOW);
    // The same number from another architecture is a different call: killed here.
    CHECK(run_filter(errno_memfd, call(319, {}, kArm)) == SECCOMP_RET_KILL_PROCESS);
}

TEST_CASE("seccomp interpreter: JSET on an argument, both halves of a 64-bit argument") {
    using ptrace::run_filter;
    // mmap (9) with PROT_EXEC in prot (args[2]) is killed; MAP_FIXED... in the high word of
    // args[3] (never set in practice) traps, to show the high word is read separately.
    const Prog p = {
        stmt(BPF_LD | BPF_W | BPF_ABS, kOffNr),
        jump(BPF_JMP | BPF_JEQ | BPF_K, 9, 0, 6),
        stmt(BPF_LD | BPF_W | BPF_ABS, arg_lo(2)),
        jump(BPF_JMP | BPF_JSET | BPF_K, PROT_EXEC, 0, 1),
        stmt(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
        stmt(BPF_LD | BPF_W | BPF_ABS, arg_hi(3)),
        jump(BPF_JMP | BPF_JSET | BPF_K, 1, 0, 1),
        stmt(BPF_RET | BPF_K, SECCOMP_RET_TRAP),
        stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    CHECK(run_filter(p, call(9, {0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS})) ==
          SECCOMP_RET_ALLOW);
    CHECK(run_filter(p, call(9, {0, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE})) ==
          SECCOMP_RET_KILL_PROCESS);
    CHECK(run_filter(p, call(9, {0, 4096, PROT_READ, std::uint64_t{1} << 32})) == SECCOMP_RET_TRAP);
    CHECK(run_filter(p, call(10, {0, 4096, PROT_EXEC})) == SECCOMP_RET_ALLOW);

    // JSET, JGT, JGE against X.
    const Prog px = {
        stmt(BPF_LD | BPF_W | BPF_ABS, arg_lo(0)),
        stmt(BPF_LDX | BPF_IMM, 100),
        jump(BPF_JMP | BPF_JGT | BPF_X, 0, 0, 1),
        stmt(BPF_RET | BPF_K, 1), // A > 100
        jump(BPF_JMP | BPF_JGE | BPF_X, 0, 0, 1),
        stmt(BPF_RET | BPF_K, 2), // A == 100
        jump(BPF_JMP | BPF_JSET | BPF_X, 0, 0, 1),
        stmt(BPF_RET | BPF_K, 3), // A & 100
        jump(BPF_JMP | BPF_JEQ | BPF_X, 0, 1, 0),
        stmt(BPF_RET | BPF_K, 4), // otherwise (JEQ X not taken)
        stmt(BPF_RET | BPF_K, 5), // unreachable
    };
    CHECK(run_filter(px, call(0, {101})) == 1);
    CHECK(run_filter(px, call(0, {100})) == 2);
    CHECK(run_filter(px, call(0, {4})) == 3); // 100 = 0b1100100
    CHECK(run_filter(px, call(0, {1})) == 4);
}

TEST_CASE("seccomp interpreter: ALU, LEN, JA, TAX/TXA") {
    using ptrace::run_filter;
    const seccomp_data d = call(1000);
    CHECK(run_filter(alu(BPF_ADD, 24, false), d) == 1024);
    CHECK(run_filter(alu(BPF_ADD, 0, true, 24), d) == 1024);
    CHECK(run_filter(alu(BPF_SUB, 1001, false), d) == 0xffffffffu); // 32-bit wrap
    CHECK(run_filter(alu(BPF_SUB, 0, true, 1), d) == 999);
    CHECK(run_filter(alu(BPF_MUL, 3, false), d) == 3000);
    CHECK(run_filter(alu(BPF_MUL, 0, true, 0x10000000), d) ==
          static_cast<std::uint32_t>(1000u * 0x10000000u));
    CHECK(run_filter(alu(BPF_DIV, 7, false), d) == 142);
    CHECK(run_filter(alu(BPF_DIV, 0, true, 10), d) == 100);
    CHECK(run_filter(alu(BPF_AND, 0xff, false), d) == (1000u & 0xff));
    CHECK(run_filter(alu(BPF_OR, 0, true, 0x10000), d) == (1000u | 0x10000));
    CHECK(run_filter(alu(BPF_XOR, 0xffffffff, false), d) == ~1000u);
    CHECK(run_filter(alu(BPF_LSH, 4, false), d) == 16000);
    CHECK(run_filter(alu(BPF_RSH, 0, true, 3), d) == 125);
    // A shift by X uses its low five bits, as the kernel's 32-bit shifts do.
    CHECK(run_filter(alu(BPF_LSH, 0, true, 33), d) == 2000);
    // Division by a zero X ends the program with 0: SECCOMP_RET_KILL_THREAD.
    CHECK(run_filter(alu(BPF_DIV, 0, true, 0), d) == SECCOMP_RET_KILL_THREAD);

    const Prog neg = {stmt(BPF_LD | BPF_IMM, 5), stmt(BPF_ALU | BPF_NEG, 0),
                      stmt(BPF_RET | BPF_A, 0)};
    CHECK(run_filter(neg, d) == 0xfffffffbu);

    const Prog len = {stmt(BPF_LDX | BPF_W | BPF_LEN, 0), stmt(BPF_LD | BPF_W | BPF_LEN, 0),
                      stmt(BPF_ALU | BPF_ADD | BPF_X, 0), stmt(BPF_RET | BPF_A, 0)};
    CHECK(run_filter(len, d) == 128);

    const Prog ja = {stmt(BPF_JMP | BPF_JA, 1), stmt(BPF_RET | BPF_K, 1),
                     stmt(BPF_LD | BPF_IMM, 7), stmt(BPF_MISC | BPF_TAX, 0),
                     stmt(BPF_LD | BPF_IMM, 1), stmt(BPF_MISC | BPF_TXA, 0),
                     stmt(BPF_RET | BPF_A, 0)};
    CHECK(run_filter(ja, d) == 7);

    // instruction_pointer is a 64-bit field at offset 8, loaded as two words.
    seccomp_data withip = d;
    withip.instruction_pointer = 0x123456789abcdef0;
    const Prog ip = {
        stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, instruction_pointer) + 4),
        stmt(BPF_RET | BPF_A, 0)};
    CHECK(run_filter(ip, withip) == 0x12345678u);
}

TEST_CASE("seccomp interpreter: scratch memory") {
    using ptrace::run_filter;
    // M[3] = nr; X = 2; M[15] = X; A = M[15]; A *= M[3] (through X); return A.
    const Prog p = {
        stmt(BPF_LD | BPF_W | BPF_ABS, kOffNr),
        stmt(BPF_ST, 3),
        stmt(BPF_LDX | BPF_IMM, 2),
        stmt(BPF_STX, 15),
        stmt(BPF_LD | BPF_MEM, 15),
        stmt(BPF_LDX | BPF_MEM, 3),
        stmt(BPF_ALU | BPF_MUL | BPF_X, 0),
        stmt(BPF_RET | BPF_A, 0),
    };
    CHECK(run_filter(p, call(21)) == 42);

    // Reading a word never written: the kernel refuses to load it, so do we.
    const Prog unset = {stmt(BPF_LD | BPF_MEM, 0), stmt(BPF_RET | BPF_A, 0)};
    CHECK(run_filter(unset, call(0)) == SECCOMP_RET_KILL_PROCESS);
    // Written on one path only (nr == 1), read after the paths join.
    const Prog one_path = {
        stmt(BPF_LD | BPF_W | BPF_ABS, kOffNr),
        jump(BPF_JMP | BPF_JEQ | BPF_K, 1, 0, 1),
        stmt(BPF_ST, 0),
        stmt(BPF_LD | BPF_MEM, 0),
        stmt(BPF_RET | BPF_A, 0),
    };
    CHECK(run_filter(one_path, call(1)) == SECCOMP_RET_KILL_PROCESS);
    // Written on both paths: fine.
    const Prog both_paths = {
        stmt(BPF_LD | BPF_W | BPF_ABS, kOffNr),
        jump(BPF_JMP | BPF_JEQ | BPF_K, 1, 0, 2),
        stmt(BPF_ST, 0),
        stmt(BPF_JMP | BPF_JA, 1),
        stmt(BPF_ST, 0),
        stmt(BPF_LD | BPF_MEM, 0),
        stmt(BPF_RET | BPF_A, 0),
    };
    CHECK(run_filter(both_paths, call(1)) == 1);
    CHECK(run_filter(both_paths, call(2)) == 2);
    // Out of the 16 words.
    const Prog big = {stmt(BPF_ST, 16), stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)};
    CHECK(run_filter(big, call(0)) == SECCOMP_RET_KILL_PROCESS);
}

TEST_CASE("seccomp interpreter: anything the kernel would not load is a kill") {
    using ptrace::run_filter;
    const std::uint32_t kKill = SECCOMP_RET_KILL_PROCESS;
    const sock_filter allow = stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    auto with = [&](sock_filter f) { return Prog{f, allow}; };
    // Invalid or non-seccomp opcodes, even where they are never reached.
    CHECK(run_filter(with(stmt(0xffff, 0)), call(0)) == kKill);
    CHECK(run_filter(with(stmt(BPF_LD | BPF_B | BPF_ABS, 0)), call(0)) == kKill);
    CHECK(run_filter(with(stmt(BPF_LD | BPF_H | BPF_ABS, 0)), call(0)) == kKill);
    CHECK(run_filter(with(stmt(BPF_LD | BPF_W | BPF_IND, 0)), call(0)) == kKill);
    CHECK(run_filter(with(stmt(BPF_ALU | BPF_MOD | BPF_K, 3)), call(0)) == kKill);
    CHECK(run_filter(with(stmt(BPF_LDX | BPF_B | BPF_MSH, 0)), call(0)) == kKill);
    CHECK(run_filter(Prog{allow, stmt(0xffff, 0), allow}, call(0)) == kKill);
    // Loads outside seccomp_data or not word-aligned.
    CHECK(run_filter(with(stmt(BPF_LD | BPF_W | BPF_ABS, 64)), call(0)) == kKill);
    CHECK(run_filter(with(stmt(BPF_LD | BPF_W | BPF_ABS, 0xfffff000)), call(0)) == kKill);
    CHECK(run_filter(with(stmt(BPF_LD | BPF_W | BPF_ABS, 2)), call(0)) == kKill);
    CHECK(run_filter(with(stmt(BPF_LD | BPF_W | BPF_ABS, 60)), call(0)) == SECCOMP_RET_ALLOW);
    // Constant division by zero and oversized constant shifts.
    CHECK(run_filter(with(stmt(BPF_ALU | BPF_DIV | BPF_K, 0)), call(0)) == kKill);
    CHECK(run_filter(with(stmt(BPF_ALU | BPF_LSH | BPF_K, 32)), call(0)) == kKill);
    // Jumps past the end (the last instruction must be reachable as a RET).
    CHECK(run_filter(with(stmt(BPF_JMP | BPF_JA, 1)), call(0)) == kKill);
    CHECK(run_filter(with(jump(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 0)), call(1)) == kKill);
    CHECK(run_filter(with(jump(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 1)), call(0)) == kKill);
    // No RET at the end, even if a RET comes first; empty; longer than BPF_MAXINSNS.
    CHECK(run_filter(Prog{allow, stmt(BPF_LD | BPF_IMM, 0)}, call(0)) == kKill);
    CHECK(run_filter(Prog{}, call(0)) == kKill);
    CHECK(run_filter(Prog(BPF_MAXINSNS + 1, allow), call(0)) == kKill);
    CHECK(run_filter(Prog(BPF_MAXINSNS, allow), call(0)) == SECCOMP_RET_ALLOW);
}

TEST_CASE("seccomp precedence across filters and the words for each action") {
    using ptrace::run_filters;
    auto ret = [](std::uint32_t v) { return Prog{stmt(BPF_RET | BPF_K, v)}; };
    const seccomp_data d = call(9);
    CHECK(run_filters({}, d) == SECCOMP_RET_ALLOW);
    CHECK(run_filters({ret(SECCOMP_RET_ERRNO | 5), ret(SECCOMP_RET_TRAP)}, d) == SECCOMP_RET_TRAP);
    CHECK(run_filters({ret(SECCOMP_RET_ALLOW), ret(SECCOMP_RET_LOG)}, d) == SECCOMP_RET_LOG);
    CHECK(run_filters({ret(SECCOMP_RET_TRACE | 1), ret(SECCOMP_RET_USER_NOTIF)}, d) ==
          SECCOMP_RET_USER_NOTIF);
    // KILL_PROCESS (0x80000000) beats KILL_THREAD (0): the comparison is signed.
    CHECK(run_filters({ret(SECCOMP_RET_KILL_THREAD), ret(SECCOMP_RET_KILL_PROCESS)}, d) ==
          SECCOMP_RET_KILL_PROCESS);
    CHECK(run_filters({ret(SECCOMP_RET_ALLOW), ret(SECCOMP_RET_KILL_THREAD)}, d) ==
          SECCOMP_RET_KILL_THREAD);
    // Same action: the newer filter (first) keeps its data.
    CHECK(run_filters({ret(SECCOMP_RET_ERRNO | EACCES), ret(SECCOMP_RET_ERRNO | EPERM)}, d) ==
          (SECCOMP_RET_ERRNO | EACCES));
    // An invalid program counts as a kill even next to permissive ones.
    CHECK(run_filters({ret(SECCOMP_RET_ALLOW), Prog{}}, d) == SECCOMP_RET_KILL_PROCESS);

    using ptrace::action_allows;
    using ptrace::describe_action;
    CHECK(action_allows(SECCOMP_RET_ALLOW));
    CHECK(action_allows(SECCOMP_RET_LOG));
    for (std::uint32_t a :
         {SECCOMP_RET_KILL_PROCESS, SECCOMP_RET_KILL_THREAD, SECCOMP_RET_TRAP, SECCOMP_RET_ERRNO,
          SECCOMP_RET_USER_NOTIF, SECCOMP_RET_TRACE, 0x00020000u})
        CHECK_FALSE(action_allows(a));
    CHECK(describe_action(SECCOMP_RET_KILL_PROCESS) == "kill the process");
    CHECK(describe_action(SECCOMP_RET_KILL_THREAD) == "kill the thread");
    CHECK(describe_action(SECCOMP_RET_TRAP | 7) == "trap (SIGSYS)");
    CHECK(describe_action(SECCOMP_RET_ERRNO | ENOSYS) == "return ENOSYS");
    CHECK(describe_action(SECCOMP_RET_ERRNO) == "return 0 without running it");
    CHECK(describe_action(0x00020000u).find("kill the process") == 0);
    CHECK(ptrace::audit_arch(arch::Arch::X86_64) == kX86);
    CHECK(ptrace::audit_arch(arch::Arch::AArch64) == kArm);
}

// ---- real processes ----

namespace {

// Writing to a victim that died must fail the test, not kill the test binary.
const bool kIgnoreSigpipe = [] {
    std::signal(SIGPIPE, SIG_IGN);
    return true;
}();

Clock::time_point in(milliseconds d) {
    return Clock::now() + d;
}

int ms_left(Clock::time_point deadline) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
    return static_cast<int>(std::clamp<long long>(left, 0, 60'000));
}

// The wait status of child `pid` once it has exited (`pidfd` refers to it); -1 if it has not
// by the deadline. A pidfd turns the wait into a poll with a timeout.
int wait_child(pid_t pid, int pidfd, Clock::time_point deadline) {
    for (;;) {
        pollfd p{pidfd, POLLIN, 0};
        int r = ::poll(&p, 1, ms_left(deadline));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        int st = 0;
        return ::waitpid(pid, &st, __WALL) == pid ? st : -1;
    }
}

int pidfd_of(pid_t pid) {
    return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}

bool has_cap_sys_admin() {
    std::ifstream in("/proc/self/status");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("CapEff:", 0) == 0)
            return (std::stoull(line.substr(7), nullptr, 16) >> 21) & 1;
    return false;
}

// A victim process under the filter of `mode`, ready; killed and reaped at the end.
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
            const char* argv[] = {HP_FIXTURE_SECCOMP_VICTIM, mode.c_str(), nullptr};
            ::execv(argv[0], const_cast<char* const*>(argv));
            ::_exit(127);
        }
        ::close(in_pipe[0]);
        ::close(out_pipe[1]);
        to_ = in_pipe[1];
        from_ = out_pipe[0];
        pidfd_ = pidfd_of(pid_);
        REQUIRE(pidfd_ >= 0);
        ready_ = line(in(seconds(10)));
        REQUIRE(ready_.rfind("ready", 0) == 0);
    }
    ~Victim() {
        if (pid_ > 0 && !reaped_) {
            ::kill(pid_, SIGKILL);
            wait_exit(in(seconds(10)));
        }
        ::close(pidfd_);
        ::close(to_);
        ::close(from_);
    }
    Victim(const Victim&) = delete;
    Victim& operator=(const Victim&) = delete;

    pid_t pid() const { return pid_; }
    const std::string& ready_line() const { return ready_; }

    // The next line of output, or "" at the deadline / end of file.
    std::string line(Clock::time_point deadline) {
        for (;;) {
            auto nl = buf_.find('\n');
            if (nl != std::string::npos) {
                std::string l = buf_.substr(0, nl);
                buf_.erase(0, nl + 1);
                return l;
            }
            pollfd p{from_, POLLIN, 0};
            int r = ::poll(&p, 1, ms_left(deadline));
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) return "";
            char b[512];
            ssize_t n = ::read(from_, b, sizeof b);
            if (n <= 0) return "";
            buf_.append(b, static_cast<std::size_t>(n));
        }
    }
    // Sends one command and returns the answer line ("" when none came in time).
    std::string ask(const std::string& cmd) {
        std::string l = cmd + "\n";
        if (::write(to_, l.data(), l.size()) != static_cast<ssize_t>(l.size())) return "";
        return line(in(seconds(10)));
    }
    // The wait status once the process has exited; -1 if it has not by the deadline.
    int wait_exit(Clock::time_point deadline) {
        if (reaped_) return status_;
        int st = wait_child(pid_, pidfd_, deadline);
        if (st != -1) {
            reaped_ = true;
            status_ = st;
        }
        return st;
    }

  private:
    pid_t pid_ = -1;
    int to_ = -1, from_ = -1, pidfd_ = -1;
    bool reaped_ = false;
    int status_ = 0;
    std::string buf_, ready_;
};

// The calls lib/patch/apply.cpp makes during prepare (and undo), with its flags: a
// read+write scratch page, the memfd, its size, the record read-only, code read+exec at a
// fixed address, a thunk page, close, munmap.
std::vector<InjectedCall> apply_calls(arch::Arch a) {
    const auto& nr = arch::syscalls(a);
    constexpr std::uint64_t kMapFixedNoReplace = 0x100000, kMfdCloexec = 1, kFd = 3, kPage = 4096;
    constexpr std::uint64_t kBase = 0x7f0000000000, kTotal = 16 * kPage;
    const std::uint64_t none = static_cast<std::uint64_t>(-1);
    return {
        {nr.mmap, {0, kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, none, 0}, "mmap"},
        {nr.memfd_create, {0x7f0000100000, kMfdCloexec, 0, 0, 0, 0}, "memfd_create"},
        {nr.ftruncate, {kFd, kTotal + kPage, 0, 0, 0, 0}, "ftruncate"},
        {nr.mmap, {kBase, kTotal, PROT_READ, MAP_PRIVATE | kMapFixedNoReplace, kFd, 0}, "mmap"},
        {nr.mmap,
         {kBase + kPage, kPage, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_FIXED, kFd, kPage},
         "mmap"},
        {nr.mmap,
         {kBase + kTotal, kPage, PROT_READ | PROT_EXEC, MAP_PRIVATE | kMapFixedNoReplace, kFd,
          kTotal},
         "mmap"},
        {nr.close, {kFd, 0, 0, 0, 0, 0}, "close"},
        {nr.munmap, {kBase, kTotal, 0, 0, 0, 0}, "munmap"},
    };
}

// Seizes and stops the victim, runs the check on `tid` (0: the main thread), detaches.
// Returns "" when allowed, else the NotEligible message; other errors fail the test.
std::string check(Victim& v, pid_t tid = 0, std::vector<InjectedCall> calls = {}) {
    if (calls.empty()) calls = apply_calls(arch::host());
    auto deadline = in(seconds(10));
    ptrace::Tracer t(v.pid(), deadline);
    t.stop_all(deadline);
    try {
        ptrace::check_injection_allowed(v.pid(), tid != 0 ? tid : v.pid(), arch::host(), calls);
    } catch (const Error& e) {
        CHECK(e.code() == ErrorCode::NotEligible);
        return e.what();
    }
    return "";
}

bool contains(const std::string& s, const std::string& what) {
    return s.find(what) != std::string::npos;
}

} // namespace

TEST_CASE("seccomp check on a real process: no filter, allow and log") {
    {
        Victim v("none");
        auto info = ptrace::seccomp_info(v.pid());
        CHECK(info.mode == 0);
        CHECK_FALSE(info.no_new_privs);
        CHECK(check(v) == "");
        CHECK(v.ask("ping") == "pong");
    }
    {
        Victim v("allow-log");
        auto info = ptrace::seccomp_info(v.pid());
        CHECK(info.mode == SECCOMP_MODE_FILTER);
        CHECK(info.no_new_privs);
        if (info.filters >= 0) CHECK(info.filters == 2);
        if (has_cap_sys_admin()) {
            CHECK(check(v) == "");
            // Index 0 is the newest filter: the 4-instruction LOG one, then allow-all (the
            // kernel's own numbering is the other way round).
            auto deadline = in(seconds(10));
            ptrace::Tracer t(v.pid(), deadline);
            t.stop_all(deadline);
            auto filters = ptrace::read_filters(v.pid());
            REQUIRE(filters.size() == 2);
            REQUIRE(filters[0].size() == 4);
            CHECK(filters[0][2].k == SECCOMP_RET_LOG);
            CHECK(filters[1].size() == 1);
            CHECK(ptrace::run_filters(filters,
                                      call(static_cast<int>(arch::syscalls(arch::host()).mmap), {},
                                           ptrace::audit_arch(arch::host()))) == SECCOMP_RET_LOG);
        } else {
            CHECK(contains(check(v), "CAP_SYS_ADMIN"));
        }
        CHECK(v.ask("ping") == "pong");
        CHECK(v.ask("mmap-exec") == "mmap-exec ok");
    }
}

TEST_CASE("seccomp check on a real process: kill on executable mmap") {
    Victim v("kill-mmap");
    const auto& nr = arch::syscalls(arch::host());
    std::string msg = check(v);
    if (!has_cap_sys_admin()) {
        CHECK(contains(msg, "CAP_SYS_ADMIN"));
        return;
    }
    INFO(msg);
    CHECK(contains(msg, "kill the process"));
    CHECK(contains(msg, fmt::format("on mmap (nr {})", nr.mmap)));
    CHECK(contains(msg, fmt::format("process {}'s seccomp filter", v.pid())));
    CHECK(contains(msg, "refusing to inject"));
    CHECK(v.ask("ping") == "pong"); // nothing was injected

    // The filter reads prot: the same process passes without the executable mappings.
    auto calls = apply_calls(arch::host());
    calls.erase(std::remove_if(calls.begin(), calls.end(),
                               [](const InjectedCall& c) { return c.args[2] & PROT_EXEC; }),
                calls.end());
    CHECK(check(v, 0, calls) == "");
    CHECK(v.ask("mmap-rw") == "mmap-rw ok");

    // The kernel agrees with the prediction: the victim's own executable mmap kills it.
    CHECK(v.ask("mmap-exec") == "");
    int st = v.wait_exit(in(seconds(10)));
    REQUIRE(st != -1);
    CHECK(WIFSIGNALED(st));
    CHECK(WTERMSIG(st) == SIGSYS);
}

TEST_CASE("seccomp check on a real process: errno on memfd_create") {
    Victim v("errno-memfd");
    std::string msg = check(v);
    if (!has_cap_sys_admin()) {
        CHECK(contains(msg, "CAP_SYS_ADMIN"));
        return;
    }
    INFO(msg);
    CHECK(contains(msg, "return EPERM"));
    CHECK(contains(
        msg, fmt::format("on memfd_create (nr {})", arch::syscalls(arch::host()).memfd_create)));
    CHECK(v.ask("ping") == "pong");
    CHECK(v.ask("memfd") == fmt::format("memfd err {}", EPERM)); // and the kernel agrees
    CHECK(v.ask("mmap-exec") == "mmap-exec ok");
}

TEST_CASE("seccomp check on a real process: strict mode") {
    Victim v("strict");
    CHECK(ptrace::seccomp_info(v.pid()).mode == SECCOMP_MODE_STRICT);
    std::string msg = check(v);
    INFO(msg);
    CHECK(contains(msg, "strict mode"));
    CHECK(contains(msg, "on mmap"));
    CHECK(v.ask("ping") == "pong");
}

TEST_CASE("seccomp check on a real process: filters are per thread") {
    Victim v("thread-kill");
    pid_t worker = static_cast<pid_t>(std::stol(v.ready_line().substr(6)));
    CHECK(ptrace::seccomp_info(v.pid()).mode == 0);
    CHECK(ptrace::seccomp_info(v.pid(), worker).mode == SECCOMP_MODE_FILTER);
    CHECK(check(v) == ""); // the main thread is unfiltered
    std::string msg = check(v, worker);
    INFO(msg);
    if (has_cap_sys_admin()) {
        CHECK(contains(
            msg,
            fmt::format("process {}'s (thread {}) seccomp filter would kill the process on mmap",
                        v.pid(), worker)));
    } else {
        CHECK(contains(msg, "CAP_SYS_ADMIN"));
    }
    CHECK(v.ask("ping") == "pong");
}

TEST_CASE("reading seccomp filters: the kernel's preconditions") {
    if (!has_cap_sys_admin()) return;
    Victim v("kill-mmap");
    auto deadline = in(seconds(10));
    {
        // Seized but running: not in a ptrace-stop.
        ptrace::Tracer t(v.pid(), deadline);
        try {
            ptrace::read_filters(v.pid());
            FAIL("read_filters on a running thread succeeded");
        } catch (const Error& e) {
            CHECK(e.code() == ErrorCode::Internal);
            CHECK(contains(e.what(), "ptrace-stop"));
        }
    }
    // A tracer that is itself under seccomp may not read filters, even as root (EACCES).
    pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        int rc = 1;
        try {
            sock_filter allow = stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
            sock_fprog prog{1, &allow};
            if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
                ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
                ::_exit(3);
            ptrace::Tracer t(v.pid(), deadline);
            t.stop_all(deadline);
            ptrace::read_filters(v.pid());
            rc = 4; // read although confined
        } catch (const Error& e) {
            rc = e.code() == ErrorCode::NotEligible && contains(e.what(), "runs under seccomp") ? 0
                                                                                                : 5;
        } catch (...) {
            rc = 6;
        }
        ::_exit(rc);
    }
    int child_fd = pidfd_of(child);
    REQUIRE(child_fd >= 0);
    int st = wait_child(child, child_fd, in(seconds(20)));
    ::close(child_fd);
    if (st == -1) {
        ::kill(child, SIGKILL);
        ::waitpid(child, nullptr, 0);
    }
    REQUIRE(st != -1);
    CHECK(WIFEXITED(st));
    CHECK(WEXITSTATUS(st) == 0);
    CHECK(v.ask("ping") == "pong");
}
