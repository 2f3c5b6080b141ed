// Stopping and borrowing threads with ptrace (DESIGN §6, §8). Arch-neutral: registers go
// through regs_impl.hpp.
//
// The kernel behaviour this file is built on (kernel/ptrace.c, kernel/signal.c):
//
// * PTRACE_SEIZE attaches without stopping. PTRACE_INTERRUPT sets JOBCTL_TRAP_STOP and
//   guarantees at least one trap; ANY trap (a signal-delivery-stop, a clone event) clears
//   it, so "the stop that answers an interrupt" is whatever stop comes next - but only a
//   trap that comes AFTER it: an interrupt sent to a thread already sitting in a stop we
//   have not collected yet stays pending, and the thread traps again as soon as it is
//   resumed. Hence we collect a thread's reports before interrupting it
//   (interrupt_running).
// * All our stops but the clone event happen in get_signal() on the way back to user
//   mode, i.e. after an interrupted system call has returned -ERESTART* / -EINTR and
//   before the kernel applies its restart logic. Whatever stop a thread is resumed from
//   (event-stop or signal-delivery-stop), get_signal() then returns and the restart is
//   decided from the registers at that moment. That is why a borrowed thread whose saved
//   registers are put back unchanged restarts its read/futex/nanosleep as after any stop.
//   A PTRACE_EVENT_CLONE stop is in the middle of clone(): registers set there would be
//   overwritten by clone's return value, so such a thread is moved on to an event-stop
//   before it is used.
// * A signal-delivery-stop is left in place until the thread is resumed: PTRACE_CONT(sig)
//   (or PTRACE_DETACH(sig)) delivers exactly that signal with its siginfo. Signals are
//   therefore never dropped, only delayed while we hold the thread.
// * A group-stop (SIGSTOP & co.) of a seized tracee is reported as PTRACE_EVENT_STOP
//   with the stop signal in WSTOPSIG. PTRACE_LISTEN leaves such a thread stopped (and
//   reporting a SIGCONT) without a ptrace-stop to service; PTRACE_INTERRUPT re-traps it.
//   At PTRACE_DETACH, __ptrace_unlink() re-instates JOBCTL_STOP_PENDING while the group
//   is stopped (SIGNAL_STOP_STOPPED), so a stopped process is stopped again after we go.
// * PTRACE_DETACH needs the thread in a ptrace-stop; a LISTENing thread is not (it fails
//   ptrace_freeze_traced). Detaching therefore interrupts every thread first.
// * When the tracer dies, every tracee is detached and resumed (exit_ptrace). A thread in
//   a signal-delivery-stop then gets that signal - a single-step's SIGTRAP would kill the
//   target - while a syscall-stop's 0x85 (TRACESYSGOOD) is no signal and is dropped. A
//   borrowed thread therefore runs its call between syscall-stops, at a `syscall; ret`
//   pair, on a stack that holds an rt_sigframe of its saved state under a return address
//   into a signal-return trampoline (detail::build_guard): a tracer killed at any moment
//   leaves it to finish the call, return into rt_sigreturn and continue exactly as before.
// * Every ptrace request must come from the thread that attached; waitpid(TID, __WALL)
//   reports the tracees' stops and exits. We wait per thread id (never waitpid(-1)) so
//   that the tool's other children are not reaped behind its back.
#include "ptrace/tracer.hpp"

#include "arch/syscalls.hpp"
#include "common/fault.hpp"
#include "doc/error.hpp"
#include "ptrace/regs_impl.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <fmt/format.h>
#include <set>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace hp::ptrace {

namespace detail {

// Writing back what get_extra() saved is the same on every architecture: each regset in
// the order it was read (ARM64 needs NT_PRFPREG before NT_ARM_SVE).
int set_extra(Pid tid, const ExtraState& st) {
    for (const auto& s : st.sets) {
        iovec iov{const_cast<std::uint8_t*>(s.data.data()), s.data.size()};
        if (::ptrace(PTRACE_SETREGSET, tid, s.type, &iov) != 0) return errno;
    }
    return 0;
}

} // namespace detail

namespace {

using std::chrono::duration_cast;
using std::chrono::microseconds;
using std::chrono::milliseconds;

bool is_stop_signal(int sig) {
    return sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU;
}

Pid gettid_() {
    return static_cast<Pid>(::syscall(SYS_gettid));
}

long ms_between(Clock::time_point a, Clock::time_point b) {
    return static_cast<long>(duration_cast<milliseconds>(b - a).count());
}

std::string read_small(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return "";
    char buf[4096];
    ssize_t n = ::read(fd, buf, sizeof buf);
    ::close(fd);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

// The value of a "Key:\tvalue" line of /proc/PID/status ("" if absent).
std::string status_field(const std::string& status, std::string_view key) {
    std::string all = "\n" + status, k = "\n" + std::string(key) + ":";
    auto at = all.find(k);
    if (at == std::string::npos) return "";
    std::size_t i = at + k.size();
    while (i < all.size() && (all[i] == ' ' || all[i] == '\t'))
        ++i;
    std::size_t j = all.find('\n', i);
    return all.substr(i, j == std::string::npos ? std::string::npos : j - i);
}

void* as_data(long v) {
    return reinterpret_cast<void*>(v);
}

// Kernel sigset (8 bytes) as PTRACE_GETSIGMASK/SETSIGMASK take it; not glibc's sigset_t.
using KSigset = std::uint64_t;
constexpr KSigset sigbit(int sig) {
    return KSigset{1} << (sig - 1);
}

// While a borrowed thread runs our system call, every signal is blocked but SIGTRAP: the
// single-step trap is forced with force_sig_fault(), which would reset a blocked SIGTRAP's
// handler to SIG_DFL (force_sig_info_to_task). SIGKILL and SIGSTOP cannot be blocked.
constexpr KSigset kBorrowMask = ~sigbit(SIGTRAP);
// TRACESYSGOOD: a borrowed thread's system call is run between a syscall-enter-stop and a
// syscall-exit-stop (PTRACE_SYSCALL), reported as SIGTRAP | 0x80. Unlike the SIGTRAP of a
// single-step, such a stop is harmless when the tracer dies: ptrace_report_syscall() then
// sends the stop's "signal" 0x85, which is not a valid signal and is dropped, whereas a
// single-step's SIGTRAP would be delivered and kill the target.
constexpr long kOptions = PTRACE_O_TRACECLONE | PTRACE_O_TRACESYSGOOD;

} // namespace

struct Tracer::Impl {
    enum class Run { Running, Stopped, Listening, Zombie };
    enum class Stop { None, Event, GroupStop, Signal, Clone, Syscall };
    struct Thread {
        Pid tid = 0;
        Run run = Run::Running;
        Stop kind = Stop::None;
        int sig = 0;      // kind == Signal: the signal being delivered
        siginfo_t info{}; // ... and its siginfo
        bool interrupt_pending = false;
        bool hold = false;    // keep it stopped whatever the mode (borrowed, awaited)
        bool foreign = false; // auto-attached child of clone() outside the thread group
    };
    struct Deferred {
        Pid tid;
        int sig;
    };

    Pid pid;
    Pid self_tid = gettid_();
    std::vector<ThreadInfo>& infos;
    std::map<Pid, Thread> threads;
    bool all_stopped = false; // between stop_all() and resume_all()
    bool detaching = false;
    bool process_exited = false;
    std::vector<Deferred> resend; // signals to re-send with tgkill (see borrow restore)
    std::unique_ptr<proc::Memory> mem;
    std::unique_ptr<proc::Memory> wmem;      // for guard frames
    std::vector<proc::Mapping> maps;         // as of the last guard_for() that needed them
    std::optional<std::uint64_t> trampoline; // 0: none (or guards unusable in this process)

    Impl(Pid p, std::vector<ThreadInfo>& out) : pid(p), infos(out) {
        sigset_t chld;
        sigemptyset(&chld);
        sigaddset(&chld, SIGCHLD);
        ::pthread_sigmask(SIG_BLOCK, &chld, &saved_mask);
    }
    ~Impl() {
        detach_all();
        ::pthread_sigmask(SIG_SETMASK, &saved_mask, nullptr);
    }
    sigset_t saved_mask{};
    Pid last_borrowed = 0; // reused while it qualifies: choosing reads /proc per thread
    std::function<void(Pid)> borrow_check; // see Tracer::set_borrow_check
    std::set<Pid> borrow_checked, borrow_refused;
    std::optional<Error> borrow_error; // the first refusal

    // ---- bookkeeping ----

    Thread* find(Pid tid) {
        auto it = threads.find(tid);
        return it == threads.end() ? nullptr : &it->second;
    }

    void check_thread() const {
        Pid me = gettid_();
        if (me != self_tid)
            throw Error(ErrorCode::Internal,
                        fmt::format("ptrace requests for process {} must come from thread {} (the "
                                    "attaching thread), not {}",
                                    pid, self_tid, me));
    }

    [[noreturn]] void throw_exited() const {
        throw Error(
            ErrorCode::ProcessExited,
            fmt::format("process {} exited (killed, or it ended) while we were attached to it",
                        pid));
    }

    // Some thread can still run: not gone, not a zombie.
    bool any_live() const {
        return std::any_of(threads.begin(), threads.end(),
                           [](const auto& kv) { return kv.second.run != Run::Zombie; });
    }

    void check_alive() const {
        if (process_exited || !any_live()) throw_exited();
    }

    // Exited, or SIGKILLed and on its way out: kill(2) returns before the threads are gone
    // (their exits are reported later), but the signal is already pending for the group.
    bool killed() const {
        std::string status = read_small(fmt::format("/proc/{}/status", pid));
        if (status.empty()) return true;
        constexpr std::uint64_t kSigkillBit = std::uint64_t{1} << (SIGKILL - 1);
        for (std::string_view key : {"ShdPnd", "SigPnd"}) {
            std::string mask = status_field(status, key);
            if (!mask.empty() && (std::stoull(mask, nullptr, 16) & kSigkillBit) != 0) return true;
        }
        return false;
    }

    void gone(Pid tid) {
        threads.erase(tid);
        // The leader's exit is reported only once the whole group is gone (or on exec).
        if (tid == pid) process_exited = true;
    }

    bool want_stopped(const Thread& t) const { return all_stopped || detaching || t.hold; }

    void add_new_thread(Pid tid) {
        if (threads.count(tid)) return;
        Thread t;
        t.tid = tid;
        // Its first report will be the initial PTRACE_EVENT_STOP of an auto-attached tracee.
        t.interrupt_pending = true;
        // clone() without CLONE_THREAD makes a process, traced too: stopped and detached
        // like a thread, but never borrowed.
        struct stat st {};
        t.foreign = ::stat(fmt::format("/proc/{}/task/{}", pid, tid).c_str(), &st) != 0;
        threads.emplace(tid, t);
    }

    // ---- ptrace primitives ----

    void interrupt(Thread& t) {
        if (t.interrupt_pending || t.run == Run::Zombie) return;
        if (::ptrace(PTRACE_INTERRUPT, t.tid, nullptr, nullptr) == 0) t.interrupt_pending = true;
        // ESRCH: the thread is gone or going; its exit is collected by poll().
    }

    // Asks a thread that may be running to stop. It may already sit in a stop we have not
    // collected (a signal arrived while we were busy elsewhere and it waits in its
    // signal-delivery-stop). PTRACE_INTERRUPT would then stay pending in the kernel, that
    // older stop would be taken for its answer, and once resumed the thread would trap
    // again before running a single instruction; the next stop_all() would take that stale
    // trap for the answer to its own interrupt and leave a new one pending, and so on: the
    // thread never ran again while we were attached (seen as a signal handler's entry
    // "stuck" on every retry of a switch). So first collect what it reported, and interrupt
    // it only if it still runs. What remains is the window between the two calls: at most
    // one stale trap, which the next call here collects instead of renewing.
    void interrupt_running(Pid tid) {
        poll(tid);
        Thread* t = find(tid);
        if (t != nullptr && (t->run == Run::Running || t->run == Run::Listening)) interrupt(*t);
    }

    // Resumes a stopped thread with PTRACE_CONT(sig). ESRCH means it was killed out of its
    // stop (SIGKILL wakes a traced task): poll() will collect its exit.
    void cont(Thread& t, int sig) {
        ::ptrace(PTRACE_CONT, t.tid, nullptr, as_data(sig));
        t.run = Run::Running;
        t.kind = Stop::None;
        t.sig = 0;
    }

    // Lets a stopped thread go on as if we had never stopped it.
    void resume(Thread& t) {
        if (t.run != Run::Stopped) return;
        switch (t.kind) {
        case Stop::GroupStop:
            // Stay in the group-stop, as without a tracer (see the top of this file).
            if (::ptrace(PTRACE_LISTEN, t.tid, nullptr, nullptr) == 0) {
                t.run = Run::Listening;
            } else if (errno == ESRCH) {
                t.run = Run::Running;
            }
            // Any other failure: it stays in its ptrace-stop, which is stopped as well.
            break;
        case Stop::Signal:
            cont(t, t.sig);
            break;
        default:
            cont(t, 0);
            break;
        }
    }

    // Decides what a thread that just stopped does next.
    void settle(Thread& t) {
        if (t.run != Run::Stopped) return;
        if (t.kind == Stop::Clone) {
            // Mid-clone(): finish the call; when we want the thread stopped, a pending
            // interrupt makes it trap again on its way out (an event-stop).
            if (want_stopped(t)) interrupt(t);
            ::ptrace(PTRACE_CONT, t.tid, nullptr, nullptr);
            t.run = Run::Running;
            t.kind = Stop::None;
            return;
        }
        if (!want_stopped(t)) resume(t);
    }

    void on_status(Pid tid, int status) {
        if (WIFEXITED(status) || WIFSIGNALED(status)) {
            gone(tid);
            return;
        }
        Thread* tp = find(tid);
        if (tp == nullptr || !WIFSTOPPED(status)) return;
        Thread& t = *tp;
        int sig = WSTOPSIG(status);
        int event = status >> 16;
        t.run = Run::Stopped;
        t.interrupt_pending = false; // any trap clears a pending PTRACE_INTERRUPT
        t.sig = 0;
        if (event == PTRACE_EVENT_STOP) {
            t.kind = is_stop_signal(sig) ? Stop::GroupStop : Stop::Event;
        } else if (event == PTRACE_EVENT_CLONE) {
            unsigned long msg = 0;
            if (::ptrace(PTRACE_GETEVENTMSG, tid, nullptr, &msg) == 0 && msg != 0)
                add_new_thread(static_cast<Pid>(msg));
            t.kind = Stop::Clone;
        } else if (event == 0 && sig == (SIGTRAP | 0x80)) {
            t.kind = Stop::Syscall; // only a borrowed thread, resumed with PTRACE_SYSCALL
        } else if (event == 0) {
            t.kind = Stop::Signal;
            t.sig = sig;
            std::memset(&t.info, 0, sizeof t.info);
            ::ptrace(PTRACE_GETSIGINFO, tid, nullptr, &t.info);
        } else {
            t.kind = Stop::Event; // no other event is enabled
        }
        settle(t);
    }

    // Collects one pending report of `tid`, if any. Returns true when something happened.
    bool poll(Pid tid) {
        for (;;) {
            int status = 0;
            pid_t r = ::waitpid(tid, &status, __WALL | WNOHANG);
            if (r == tid) {
                on_status(tid, status);
                return true;
            }
            if (r == 0) return false;
            if (errno == EINTR) continue;
            // ECHILD: not (or no longer) our tracee - it exited and was reaped.
            gone(tid);
            return true;
        }
    }

    // Every 8th sweep looks at every thread; the others skip threads in a stop we have
    // collected (only a SIGKILL can make one report again, and an exit found late is
    // harmless: resuming it fails with ESRCH and a later sweep collects it). With 1000
    // threads, a full sweep is 1000 waitpid calls.
    unsigned sweeps = 0;
    Clock::time_point last_sweep{};
    bool poll_all() {
        last_sweep = Clock::now();
        const bool full = ++sweeps % 8 == 0;
        std::vector<Pid> tids;
        tids.reserve(threads.size());
        // Zombies too: their exit report (the leader's comes last) says the process is gone.
        for (auto& kv : threads)
            if (full || kv.second.run != Run::Stopped) tids.push_back(kv.first);
        bool any = false;
        for (Pid tid : tids)
            any |= poll(tid);
        return any;
    }

    // A thread that never reports: a zombie leader (it exited with pthread_exit while others
    // run; its exit is reported only when the group is empty) cannot stop again.
    void mark_zombies() {
        for (auto& [tid, t] : threads) {
            if (t.run == Run::Stopped || t.run == Run::Zombie) continue;
            char s = proc::thread_state(pid, tid);
            if (s == 'Z' || s == 'X') t.run = Run::Zombie;
        }
    }

    // Services reports until `done()` or the deadline. Waits with a short, growing sleep:
    // stops arrive within microseconds, and a blocking wait would need waitpid(-1).
    // With `focus`, the wait is for that one thread: it is polled every round and the
    // others (which may need answering: a signal, a new thread) every 16th round, or at
    // once when they were last looked at over 5 ms ago. A borrowed thread's stops (four
    // waits per remote call) in a 1000-thread process then do not cost 1000 waitpid calls
    // each: they were 24 000 of the 30 000 of one apply (strace -c).
    template <class Done> bool pump_until(Done done, Clock::time_point deadline, Pid focus = 0) {
        int idle = 0;
        for (unsigned round = 0;; ++round) {
            const bool sweep = focus == 0 || round % 16 == 15 ||
                               Clock::now() - last_sweep > std::chrono::milliseconds(5);
            bool any = sweep ? poll_all() : poll(focus);
            if (done()) return true;
            if (Clock::now() >= deadline) return false;
            if (any) {
                idle = 0;
                continue;
            }
            ++idle;
            if (idle % 16 == 0) mark_zombies();
            if (done()) return true;
            if (idle < 4) {
                std::this_thread::yield();
            } else {
                // A tracee's stop or exit sends us SIGCHLD (blocked since attach): wait for
                // it rather than sleeping past it.
                const long us = std::min(1000, 10 << std::min(idle - 4, 7));
                timespec ts{0, us * 1000};
                sigset_t chld;
                sigemptyset(&chld);
                sigaddset(&chld, SIGCHLD);
                ::sigtimedwait(&chld, nullptr, &ts);
            }
        }
    }

    bool stopped(Pid tid) {
        Thread* t = find(tid);
        return t == nullptr || t->run == Run::Stopped || t->run == Run::Zombie;
    }

    // ---- attach ----

    std::string explain_eperm() const {
        std::string status = read_small(fmt::format("/proc/{}/status", pid));
        if (status_field(status, "Kthread") == "1")
            return fmt::format("process {} is a kernel thread", pid);
        std::string yama = read_small("/proc/sys/kernel/yama/ptrace_scope");
        int scope = yama.empty() ? -1 : yama[0] - '0';
        if (scope == 3)
            return "Yama ptrace_scope is 3 (/proc/sys/kernel/yama/ptrace_scope): attaching is "
                   "disabled until reboot";
        uid_t me = ::geteuid();
        unsigned ruid = 0, euid = 0, suid = 0, fsuid = 0;
        bool have_uid = std::sscanf(status_field(status, "Uid").c_str(), "%u %u %u %u", &ruid,
                                    &euid, &suid, &fsuid) == 4;
        if (me != 0 && have_uid && (ruid != me || euid != me || suid != me))
            return fmt::format("process {} runs as uid {} and we as uid {}: ptrace needs the same "
                               "uid or CAP_SYS_PTRACE",
                               pid, euid, me);
        // A non-dumpable process (setuid, changed credentials, PR_SET_DUMPABLE 0) has its
        // /proc/PID files owned by root (proc_pid_make_inode/task_dump_owner).
        struct stat st {};
        if (me != 0 && ::stat(fmt::format("/proc/{}", pid).c_str(), &st) == 0 && st.st_uid == 0 &&
            have_uid && euid != 0)
            return fmt::format("process {} is not dumpable (setuid, changed credentials or "
                               "PR_SET_DUMPABLE 0): ptrace needs CAP_SYS_PTRACE",
                               pid);
        if (scope == 1 && me != 0)
            return "Yama ptrace_scope is 1 (/proc/sys/kernel/yama/ptrace_scope): only an ancestor "
                   "may attach; run as root or with CAP_SYS_PTRACE";
        if (scope == 2 && me != 0)
            return "Yama ptrace_scope is 2 (/proc/sys/kernel/yama/ptrace_scope): only "
                   "CAP_SYS_PTRACE may attach";
        return fmt::format("ptrace attach to process {} denied (EPERM): a security module "
                           "(SELinux, AppArmor), a container's limits or a missing "
                           "CAP_SYS_PTRACE",
                           pid);
    }

    void attach(Clock::time_point deadline) {
        if (pid <= 0) throw Error(ErrorCode::NoSuchProcess, fmt::format("no process {}", pid));
        if (pid == ::getpid())
            throw Error(ErrorCode::Permission, fmt::format("process {} is this process", pid));
        std::string status = read_small(fmt::format("/proc/{}/status", pid));
        if (status.empty())
            throw Error(ErrorCode::NoSuchProcess, fmt::format("no process {}", pid));
        std::string tgid = status_field(status, "Tgid");
        if (!tgid.empty() && tgid != std::to_string(pid))
            throw Error(ErrorCode::NoSuchProcess,
                        fmt::format("{} is a thread of process {}, not a process", pid, tgid));
        (void)proc::instance(pid); // NoSuchProcess, or ProcessExited for a zombie

        std::vector<Pid> ignored; // threads that were exiting when seen
        for (;;) {
            std::vector<Pid> tids;
            try {
                tids = proc::threads(pid);
            } catch (const Error&) {
                if (threads.empty()) throw;
                throw_exited();
            }
            bool added = false;
            for (Pid tid : tids) {
                if (threads.count(tid) || std::count(ignored.begin(), ignored.end(), tid)) continue;
                if (::ptrace(PTRACE_SEIZE, tid, nullptr, as_data(kOptions)) == 0) {
                    Thread t;
                    t.tid = tid;
                    threads.emplace(tid, t);
                    added = true;
                    continue;
                }
                int e = errno;
                if (e == ESRCH) {
                    if (tid == pid)
                        throw Error(ErrorCode::NoSuchProcess, fmt::format("no process {}", pid));
                    continue; // vanished between the listing and the seize
                }
                if (e != EPERM && e != EBUSY)
                    throw Error(ErrorCode::Internal,
                                fmt::format("cannot attach to thread {} of process {}: {}", tid,
                                            pid, std::strerror(e)));
                auto tracer = proc::tracer_pid(pid, tid);
                if (tracer && *tracer == self_tid && threads.empty())
                    throw Error(
                        ErrorCode::Traced,
                        fmt::format("process {} is already traced by this process (thread {})", pid,
                                    self_tid));
                if (tracer && *tracer == self_tid) {
                    // Born from a thread we already hold: PTRACE_O_TRACECLONE attached it.
                    add_new_thread(tid);
                    added = true;
                    continue;
                }
                char st = proc::thread_state(pid, tid);
                if (st == 'Z' || st == 'X') {
                    // ptrace_attach() refuses exiting tasks. A zombie leader of a live
                    // process (pthread_exit) has nothing to stop; an exiting thread neither.
                    if (tid == pid && tids.size() <= 1) throw_exited();
                    if (tid == pid) {
                        Thread t;
                        t.tid = tid;
                        t.run = Run::Zombie;
                        threads.emplace(tid, t);
                    } else {
                        ignored.push_back(tid);
                    }
                    continue;
                }
                if (tracer && *tracer != 0) {
                    std::string name = proc::comm(*tracer);
                    // Another hp-apply that took a different lock (another network or
                    // PID namespace, or an older version): the same situation as losing
                    // the lock, so the same answer.
                    if (name == "hp-apply")
                        throw Error(ErrorCode::Busy,
                                    fmt::format("another hp-apply is working on process {}: it is "
                                                "traced by {} ({})",
                                                pid, *tracer, name));
                    throw Error(
                        ErrorCode::Traced,
                        fmt::format("process {} is already traced by {} ({})", pid, *tracer, name));
                }
                throw Error(ErrorCode::Permission, explain_eperm());
            }
            // Service what attaching produced: group-stop reports of a stopped process
            // (parked with LISTEN), initial stops of threads born meanwhile, signals.
            poll_all();
            if (process_exited) throw_exited();
            if (!added) break;
            if (Clock::now() >= deadline)
                throw Error(
                    ErrorCode::Unsafe,
                    fmt::format("threads of process {} kept appearing while attaching", pid));
        }
        if (!any_live()) throw_exited();
    }

    // Threads of the process that we do not know. Those traced by us (born meanwhile) are
    // adopted, others seized; returns true when something was added.
    bool adopt_unknown() {
        std::vector<Pid> tids;
        try {
            tids = proc::threads(pid);
        } catch (const Error&) {
            return false; // gone: the exit reports will tell
        }
        bool added = false;
        for (Pid tid : tids) {
            if (threads.count(tid)) continue;
            if (::ptrace(PTRACE_SEIZE, tid, nullptr, as_data(kOptions)) == 0) {
                Thread t;
                t.tid = tid;
                threads.emplace(tid, t);
                if (want_stopped(threads[tid])) interrupt(threads[tid]);
                added = true;
            } else if (errno == EPERM && proc::tracer_pid(pid, tid) == self_tid) {
                add_new_thread(tid);
                added = true;
            }
        }
        return added;
    }

    std::string describe_thread(Pid tid) const {
        char st = proc::thread_state(pid, tid);
        std::string wchan = read_small(fmt::format("/proc/{}/task/{}/wchan", pid, tid));
        auto sc = proc::thread_syscall(pid, tid);
        std::string out = fmt::format("thread {} (state {}", tid, st);
        if (!wchan.empty() && wchan != "0") out += fmt::format(", wchan {}", wchan);
        if (sc && *sc >= 0) out += fmt::format(", in system call {}", *sc);
        return out + ")";
    }

    // ---- stop / resume ----

    Clock::time_point stop_all(Clock::time_point deadline) {
        check_alive();
        auto t0 = Clock::now();
        all_stopped = true;
        std::vector<Pid> tids;
        tids.reserve(threads.size());
        for (auto& kv : threads)
            tids.push_back(kv.first);
        for (Pid tid : tids)
            interrupt_running(tid); // may collect an exit (erasing the thread): by id
        auto all_in = [&] {
            if (process_exited || !any_live()) return true;
            for (auto& [tid, t] : threads)
                if (!(t.run == Run::Zombie || (t.run == Run::Stopped && t.kind != Stop::Clone)))
                    return false;
            // Every known thread is stopped, so none can create more: anything unknown left
            // in /proc/PID/task was missed (or born before its parent was seized).
            return !adopt_unknown();
        };
        bool ok = pump_until(all_in, deadline);
        if (process_exited || !any_live()) {
            all_stopped = false;
            resume_all();
            throw_exited();
        }
        if (!ok) {
            Pid late = 0;
            for (auto& [tid, t] : threads)
                if (t.run != Run::Stopped && t.run != Run::Zombie) {
                    late = tid;
                    break;
                }
            std::string who = late ? describe_thread(late) : std::string("a new thread");
            resume_all();
            throw Error(ErrorCode::Unsafe,
                        fmt::format("could not stop {} of process {} within {} ms", who, pid,
                                    std::max(0L, ms_between(t0, deadline))));
        }
        try {
            read_infos();
        } catch (...) {
            resume_all();
            throw;
        }
        return t0;
    }

    void read_infos() {
        infos.clear();
        for (auto& [tid, t] : threads) {
            if (t.run != Run::Stopped || t.foreign) continue;
            ThreadInfo ti;
            ti.tid = tid;
            int e = detail::get_gp(tid, ti.regs);
            if (e == ESRCH) continue; // killed out of its stop; its exit is collected later
            if (e == ENOEXEC)
                throw Error(
                    ErrorCode::Unsupported,
                    fmt::format("process {} is not a 64-bit process of this architecture", pid));
            if (e != 0)
                throw Error(ErrorCode::Internal,
                            fmt::format("cannot read the registers of thread {} of process {}: {}",
                                        tid, pid, std::strerror(e)));
            ti.syscall_nr = detail::interrupted_syscall(ti.regs, read32());
            ti.in_syscall = ti.syscall_nr >= 0;
            infos.push_back(ti);
        }
        // The main thread first, as in /proc/PID/task.
        std::stable_partition(infos.begin(), infos.end(),
                              [&](const ThreadInfo& i) { return i.tid == pid; });
    }

    detail::Read32 read32() {
        return [this](std::uint64_t addr) -> std::optional<std::uint32_t> {
            try {
                if (!mem) mem = std::make_unique<proc::Memory>(pid, false);
            } catch (const Error&) {
                return std::nullopt;
            }
            std::uint8_t b[4];
            if (!mem->read_fallible(addr, b, 4)) return std::nullopt;
            return load_le32(b);
        };
    }

    void send_deferred() {
        for (const Deferred& d : resend)
            ::syscall(SYS_tgkill, pid, d.tid, d.sig);
        resend.clear();
    }

    Clock::time_point resume_all() {
        all_stopped = false;
        send_deferred();
        for (auto& [tid, t] : threads)
            if (!t.hold) resume(t);
        return Clock::now();
    }

    // ---- borrowing one thread ----

    // The signal-return trampoline a guarded thread returns through, 0 when there is none
    // or guards cannot work here (a shadow stack would refuse the unbalanced return).
    // Searched once, before the first thread is held (remote_syscall): reading /proc and
    // scanning libc takes ~1 ms, which a held thread would feel as a stall longer than the
    // freeze itself (docs/performance.md).
    std::uint64_t find_trampoline() {
        if (trampoline) return *trampoline;
        trampoline = 0;
        try {
            const arch::Arch a = arch::host();
            if (!mem) mem = std::make_unique<proc::Memory>(pid, false);
            std::string status = read_small(fmt::format("/proc/{}/status", pid));
            if (status_field(status, "x86_Thread_features").find("shstk") != std::string::npos)
                return 0;
            maps = proc::read_maps(pid);
            for (ByteView pat : arch::sigreturn_trampolines(a))
                if (std::uint64_t at = find_code(*mem, maps, pat, a); at != 0) {
                    trampoline = at;
                    break;
                }
        } catch (const Error&) {
            trampoline = 0;
        }
        return *trampoline;
    }

    // The death guard for a thread borrowed with `saved` registers to run a system call at
    // `insn` (see detail::build_guard), when the process allows one: `insn` is followed by
    // a return, a signal-return trampoline exists in its code, and no shadow stack (x86
    // CET) would refuse the unbalanced return.
    std::optional<detail::Guard> guard_for(const Regs& saved, const detail::ExtraState& extra,
                                           KSigset blocked, std::uint64_t insn, std::uint64_t top) {
        const arch::Arch a = arch::host();
        try {
            if (find_trampoline() == 0) return std::nullopt;
            ByteView ret = arch::return_insn(a);
            Bytes after(ret.size());
            if (!mem->read_fallible(insn + detail::syscall_insn_size(), after.data(),
                                    after.size()) ||
                !std::equal(ret.begin(), ret.end(), after.begin()))
                return std::nullopt;
            auto stack_of = [&]() -> const proc::Mapping* {
                for (const proc::Mapping& m : maps)
                    if (saved.sp() >= m.start && saved.sp() < m.end && m.writable()) return &m;
                return nullptr;
            };
            const proc::Mapping* st = stack_of();
            if (st == nullptr) {
                maps = proc::read_maps(pid); // a thread born since
                st = stack_of();
            }
            if (st == nullptr) return std::nullopt;
            return detail::build_guard(saved, extra, blocked, *trampoline, st->start, top);
        } catch (const Error&) {
            return std::nullopt;
        }
    }

    bool write_tracee(std::uint64_t addr, ByteView bytes) {
        try {
            if (!wmem) wmem = std::make_unique<proc::Memory>(pid, true);
            wmem->write(addr, bytes);
            return true;
        } catch (const Error&) {
            return false;
        }
    }

    Pid choose_thread() const {
        auto blocked_in_syscall = [&](const Thread& t) {
            if (t.run == Run::Stopped) {
                for (const ThreadInfo& i : infos)
                    if (i.tid == t.tid) return i.in_syscall;
                return false;
            }
            auto sc = proc::thread_syscall(pid, t.tid); // "running" (on a CPU) -> nullopt
            return sc && *sc >= 0;
        };
        // Threads the borrow check refused are never chosen again (when nothing else is
        // left, a refused one is returned: acquire_checked then gives the refusal).
        auto refused = [&](Pid tid) { return borrow_refused.count(tid) != 0; };
        auto usable = [&](const Thread& t) {
            return !t.foreign && t.run != Run::Zombie && t.kind != Stop::Signal &&
                   !refused(t.tid) && !blocked_in_syscall(t);
        };
        if (const auto it = threads.find(last_borrowed); it != threads.end() && usable(it->second))
            return last_borrowed;
        for (const auto& [tid, t] : threads) {
            if (t.foreign || t.run == Run::Zombie || t.kind == Stop::Signal || refused(tid))
                continue;
            if (!blocked_in_syscall(t)) return tid;
        }
        auto main = threads.find(pid);
        if (main != threads.end() && main->second.run != Run::Zombie && !refused(pid)) return pid;
        for (const auto& [tid, t] : threads)
            if (!t.foreign && t.run != Run::Zombie && !refused(tid)) return tid;
        for (const auto& [tid, t] : threads)
            if (!t.foreign && t.run != Run::Zombie) return tid;
        return pid;
    }

    std::int64_t remote_syscall(Pid want, std::uint64_t insn, long nr,
                                std::array<std::uint64_t, 6> args, Clock::time_point deadline,
                                const StackArg* stack_arg);
    Pid acquire(Pid want, Clock::time_point deadline, bool& was_stopped);
    Pid acquire_checked(Pid want, Clock::time_point deadline, bool& was_stopped);
    void detach_all() noexcept;
    class Borrow;
};

// Restores a borrowed thread on every path out of remote_syscall (DESIGN §6: "every change
// to the target is undone unless committed").
class Tracer::Impl::Borrow {
  public:
    Borrow(Impl& impl, Pid tid) : impl_(impl), tid_(tid) {}
    ~Borrow() {
        try {
            restore();
        } catch (...) {
            // Nothing more can be done for this thread; the destructor of Tracer detaches.
        }
    }
    Borrow(const Borrow&) = delete;
    Borrow& operator=(const Borrow&) = delete;

    // Saves everything the thread must get back. Throws before anything is changed.
    void save() {
        Impl::Thread& t = thread();
        int e = detail::get_gp(tid_, regs_);
        if (e == 0) e = detail::get_extra(tid_, extra_);
        if (e == 0 && ::ptrace(PTRACE_GETSIGMASK, tid_, as_data(sizeof(KSigset)), &mask_) != 0)
            e = errno;
        if (e == ESRCH) throw_gone();
        if (e == ENOEXEC)
            throw Error(
                ErrorCode::Unsupported,
                fmt::format("process {} is not a 64-bit process of this architecture", impl_.pid));
        if (e != 0)
            throw Error(ErrorCode::Internal,
                        fmt::format("cannot save the state of thread {} of process {}: {}", tid_,
                                    impl_.pid, std::strerror(e)));
        group_stopped_ = t.kind == Impl::Stop::GroupStop;
        if (t.kind == Impl::Stop::Signal) pending_.push_back({t.sig, t.info});
        saved_ = true;
    }

    const Regs& regs() const { return regs_; }

    // Executes the prepared registers from syscall-enter-stop to syscall-exit-stop. With a
    // guard (see build_guard), a tracer that dies at any point of this leaves the thread
    // to run the call, return into the signal-return trampoline and get its state back.
    std::int64_t run(Regs work, std::uint64_t insn, std::uint64_t top, Clock::time_point deadline) {
        (void)thread();
        if (auto g = impl_.guard_for(regs_, extra_, mask_, insn, top)) {
            if (impl_.write_tracee(g->frame_addr, g->frame)) work.set_sp(g->sp);
        }
        dirty_ = true; // from here on, restore() puts back registers and mask
        // Registers first, then the mask: the guard's frame carries the thread's own mask,
        // so a death between the two leaves nothing behind.
        if (int e = detail::set_gp(tid_, work); e != 0) {
            errno = e;
            fail("set the registers of");
        }
        KSigset block = kBorrowMask;
        if (::ptrace(PTRACE_SETSIGMASK, tid_, as_data(sizeof(KSigset)), &block) != 0)
            fail("block signals in");
        fault_point("in-syscall");
        const std::uint64_t after = insn + detail::syscall_insn_size();
        bool entered = false;
        for (int steps = 0;; ++steps) {
            // Resuming with signal 0 discards a signal whose delivery-stop we are in; it was
            // saved (save() or below) and is given back by restore().
            // Once inside the call, a thread with a signal to give back finishes it with a
            // single-step instead: the step's SIGTRAP stop after the call is a
            // signal-delivery-stop, where restore() can deliver that signal with its own
            // siginfo, in order. (Its one drawback: a tracer dying in that stop lets the
            // SIGTRAP through; hence only then.)
            const bool step = entered && !pending_.empty();
            if (::ptrace(step ? PTRACE_SINGLESTEP : PTRACE_SYSCALL, tid_, nullptr, nullptr) != 0)
                fail("resume");
            thread().run = Impl::Run::Running;
            thread().kind = Impl::Stop::None;
            if (!impl_.pump_until([&] { return impl_.stopped(tid_); }, deadline, tid_)) {
                throw Error(
                    ErrorCode::Unsafe,
                    fmt::format(
                        "system call {} in thread {} of process {} did not complete in time", nr_,
                        tid_, impl_.pid));
            }
            if (impl_.find(tid_) == nullptr) throw_gone();
            Impl::Thread& s = thread();
            if (s.kind == Impl::Stop::Syscall) {
                Regs now;
                if (int e = detail::get_gp(tid_, now); e != 0) {
                    errno = e;
                    fail("read the registers of");
                }
                if (now.ip() != after)
                    throw Error(ErrorCode::Internal,
                                fmt::format("thread {} of process {} stopped for a system call at "
                                            "{} instead of {}",
                                            tid_, impl_.pid, hex_addr(now.ip()), hex_addr(after)));
                if (entered) {
                    fault_point("after-syscall");
                    return detail::syscall_result(now);
                }
                entered = true;
                continue;
            }
            if (s.kind == Impl::Stop::Signal && s.sig == SIGTRAP && entered) {
                Regs now;
                if (int e = detail::get_gp(tid_, now); e != 0) {
                    errno = e;
                    fail("read the registers of");
                }
                if (now.ip() == after) {
                    fault_point("after-syscall");
                    return detail::syscall_result(now);
                }
                pending_.push_back({s.sig, s.info}); // someone else's
            } else if (s.kind == Impl::Stop::Signal) {
                // SIGSTOP (it cannot be blocked) or another signal that got through.
                pending_.push_back({s.sig, s.info});
            } else if (s.kind == Impl::Stop::GroupStop) {
                group_stopped_ = true; // another thread stopped the group
            } else if (s.kind == Impl::Stop::Event) {
                group_stopped_ = false; // a SIGCONT woke a listening thread
            }
            if (steps > 64)
                throw Error(
                    ErrorCode::Internal,
                    fmt::format("thread {} of process {} keeps stopping before the system call",
                                tid_, impl_.pid));
        }
    }

    void set_nr(long nr) { nr_ = nr; }

  private:
    struct Pending {
        int sig;
        siginfo_t info;
    };

    Impl::Thread& thread() {
        Impl::Thread* t = impl_.find(tid_);
        if (t == nullptr) throw_gone();
        return *t;
    }

    [[noreturn]] void throw_gone() {
        if (impl_.process_exited || impl_.killed()) impl_.throw_exited();
        throw Error(ErrorCode::ProcessExited,
                    fmt::format("thread {} of process {} exited while borrowed", tid_, impl_.pid));
    }

    [[noreturn]] void fail(const char* what) {
        int e = errno;
        if (e == ESRCH) throw_gone();
        throw Error(ErrorCode::Internal, fmt::format("cannot {} thread {} of process {}: {}", what,
                                                     tid_, impl_.pid, std::strerror(e)));
    }

    // Puts the saved state back and returns the thread to a stop equivalent to the one it
    // was borrowed in.
    void restore() {
        if (!saved_) return;
        saved_ = false;
        Impl::Thread* t = impl_.find(tid_);
        if (t == nullptr) return; // died: nothing to restore
        if (t->run != Impl::Run::Stopped) {
            // Still running our call (timeout): stop it first, briefly.
            impl_.interrupt(*t);
            impl_.pump_until([&] { return impl_.stopped(tid_); }, Clock::now() + milliseconds(2000),
                             tid_);
            t = impl_.find(tid_);
            if (t == nullptr || t->run != Impl::Run::Stopped) return;
        }
        if (dirty_) {
            // Exactly the saved registers: the kernel then applies its own restart logic when
            // the thread leaves get_signal() (see the top of this file). The general
            // registers last: until then a guarded thread still finds its way back alone.
            ::ptrace(PTRACE_SETSIGMASK, tid_, as_data(sizeof(KSigset)), &mask_);
            detail::set_extra(tid_, extra_);
            detail::set_gp(tid_, regs_);
        }
        // The thread now sits in a stop of our making (the SIGTRAP delivery-stop). Give it
        // back the stop it had, with every signal that reached it meanwhile:
        // - not in a group-stop and a signal to deliver: this is a signal-delivery-stop,
        //   so PTRACE_SETSIGINFO + resuming with that signal delivers it exactly as it was
        //   (ptrace_signal() keeps our siginfo when si_signo matches);
        // - otherwise PTRACE_INTERRUPT + PTRACE_CONT(0) lets get_signal() loop once and trap
        //   again in do_jobctl_trap(), an event-stop with the registers untouched (and the
        //   group's stop signal when the group is stopped, so LISTEN works again).
        // Signals beyond the first (rare: at most SIGSTOP and a foreign SIGTRAP get past the
        // mask) are re-sent with tgkill, with our siginfo: delayed, not lost.
        if (!pending_.empty() && !group_stopped_) {
            Pending first = pending_.front();
            bool at_signal_stop = t->kind == Impl::Stop::Signal;
            if (at_signal_stop && ::ptrace(PTRACE_SETSIGINFO, tid_, nullptr, &first.info) == 0) {
                t->kind = Impl::Stop::Signal;
                t->sig = first.sig;
                t->info = first.info;
                for (std::size_t i = 1; i < pending_.size(); ++i)
                    impl_.resend.push_back({tid_, pending_[i].sig});
                pending_.clear();
                return;
            }
        }
        for (const Pending& p : pending_)
            impl_.resend.push_back({tid_, p.sig});
        pending_.clear();
        if (dirty_ || t->kind == Impl::Stop::Signal || t->kind == Impl::Stop::Clone) {
            impl_.interrupt(*t);
            ::ptrace(PTRACE_CONT, tid_, nullptr, nullptr);
            t->run = Impl::Run::Running;
            t->kind = Impl::Stop::None;
            impl_.pump_until(
                [&] {
                    Impl::Thread* x = impl_.find(tid_);
                    return x == nullptr ||
                           (x->run == Impl::Run::Stopped && x->kind != Impl::Stop::Clone);
                },
                Clock::now() + milliseconds(2000), tid_);
        }
    }

    Impl& impl_;
    Pid tid_;
    Regs regs_;
    detail::ExtraState extra_;
    KSigset mask_ = 0;
    bool saved_ = false, dirty_ = false, group_stopped_ = false;
    long nr_ = -1;
    std::vector<Pending> pending_;
};

// A thread to borrow, in an event- or signal-delivery-stop and held there. A thread chosen
// by us (want == 0) that exits before it stops is replaced by another choice.
Pid Tracer::Impl::acquire(Pid want, Clock::time_point deadline, bool& was_stopped) {
    for (;;) {
        check_alive();
        Pid tid = want != 0 ? want : choose_thread();
        // Collect a stop it already made, so that the interrupt below is not left pending
        // (see interrupt_running); a signal-delivery-stop found so is delivered first,
        // unless every thread is being held.
        if (find(tid) != nullptr) {
            poll(tid);
            if (find(tid) == nullptr && want == 0) continue; // it exited: choose again
        }
        Thread* t = find(tid);
        if (t == nullptr || t->foreign)
            throw Error(ErrorCode::NoSuchProcess,
                        fmt::format("thread {} of process {} is not traced", tid, pid));
        if (t->run == Run::Zombie)
            throw Error(ErrorCode::ProcessExited,
                        fmt::format("thread {} of process {} has exited", tid, pid));
        t->hold = true;
        was_stopped = t->run == Run::Stopped && t->kind != Stop::Clone;
        if (was_stopped) return tid;
        interrupt(*t);
        auto ready = [&] {
            Thread* x = find(tid);
            return x == nullptr || x->run == Run::Zombie ||
                   (x->run == Run::Stopped && x->kind != Stop::Clone);
        };
        bool ok = pump_until(ready, deadline, tid);
        Thread* x = find(tid);
        if (x != nullptr && x->run == Run::Stopped && x->kind != Stop::Clone) return tid;
        if (x != nullptr) {
            x->hold = false;
            settle(*x);
        }
        if (!ok)
            throw Error(ErrorCode::Unsafe, fmt::format("could not stop {} of process {} in time",
                                                       describe_thread(tid), pid));
        if (process_exited) throw_exited();
        if (want != 0)
            throw Error(ErrorCode::ProcessExited,
                        fmt::format("thread {} of process {} exited", tid, pid));
    }
}

// acquire(), then the borrow check (Tracer::set_borrow_check) for a thread not checked yet.
// A thread we chose that the check refuses is let go and never chosen again; the first
// refusal is the answer when no thread is left (or for a thread the caller named).
Pid Tracer::Impl::acquire_checked(Pid want, Clock::time_point deadline, bool& was_stopped) {
    for (;;) {
        if (want == 0 && borrow_error && borrow_refused.count(choose_thread()) != 0)
            throw *borrow_error; // every usable thread was refused
        Pid tid = acquire(want, deadline, was_stopped);
        if (!borrow_check || borrow_checked.count(tid) != 0) return tid;
        auto let_go = [&] {
            if (Thread* x = find(tid)) {
                x->hold = false;
                if (!was_stopped) settle(*x);
            }
        };
        try {
            borrow_check(tid);
            borrow_checked.insert(tid);
            return tid;
        } catch (const Error& e) {
            let_go();
            if (want != 0) throw;
            // A thread that exited while it was checked is no refusal: choose again
            // (acquire() reports the process's own exit).
            if ((e.code() == ErrorCode::ProcessExited || e.code() == ErrorCode::NoSuchProcess) &&
                (proc::thread_state(pid, tid) == 'X' || proc::thread_state(pid, tid) == 'Z'))
                continue;
            borrow_refused.insert(tid);
            if (!borrow_error) borrow_error = e;
        } catch (...) {
            let_go();
            throw;
        }
    }
}

std::int64_t Tracer::Impl::remote_syscall(Pid want, std::uint64_t insn, long nr,
                                          std::array<std::uint64_t, 6> args,
                                          Clock::time_point deadline, const StackArg* stack_arg) {
    bool was_stopped = false;
    (void)find_trampoline(); // while every thread still runs
    Pid tid = acquire_checked(want, deadline, was_stopped);
    if (want == 0) last_borrowed = tid;
    // Whatever happens, a thread we stopped for this call runs again afterwards (declared
    // before the Borrow, so it runs after the registers are back).
    struct Release {
        Impl& impl;
        Pid tid;
        bool was_stopped;
        ~Release() {
            if (Thread* x = impl.find(tid)) {
                x->hold = false;
                if (!was_stopped) impl.settle(*x);
            }
        }
    } release{*this, tid, was_stopped};
    Borrow b(*this, tid);
    b.set_nr(nr);
    b.save();
    if (!detail::insn_usable(b.regs(), insn))
        throw Error(
            ErrorCode::Unsupported,
            fmt::format("thread {} of process {} is stopped at the system call instruction {} "
                        "chosen for the call; borrow another thread",
                        tid, pid, hex_addr(insn)));
    // Below the red zone (x86-64: 128 bytes; ARM64 has none) everything is dead.
    std::uint64_t top = b.regs().sp() - 128;
    if (stack_arg != nullptr) {
        top = (top - stack_arg->bytes.size()) & ~std::uint64_t{15};
        if (stack_arg->index >= args.size() || !write_tracee(top, stack_arg->bytes))
            throw Error(ErrorCode::NotEligible,
                        fmt::format("cannot place the argument of system call {} on the stack of "
                                    "thread {} of process {}",
                                    nr, tid, pid));
        args[stack_arg->index] = top;
    }
    Regs work = b.regs();
    detail::prepare_syscall(work, insn, nr, args);
    std::int64_t r = b.run(std::move(work), insn, top, deadline);
    // -ERESTART* never reaches user code; an injected call interrupted by a signal is EINTR.
    if (r <= -512 && r >= -516) r = -EINTR;
    return r;
}

void Tracer::Impl::detach_all() noexcept {
    try {
        if (gettid_() != self_tid)
            return; // only the attaching thread may; the kernel detaches at our exit
        detaching = true;
        for (auto& [tid, t] : threads)
            if (t.run == Run::Running || t.run == Run::Listening) interrupt(t);
        pump_until(
            [&] {
                for (auto& [tid, t] : threads)
                    if (t.run != Run::Stopped && t.run != Run::Zombie) return false;
                return true;
            },
            Clock::now() + milliseconds(2000));
        for (auto& [tid, t] : threads) {
            if (t.run != Run::Stopped) continue;
            int sig = t.kind == Stop::Signal ? t.sig : 0;
            ::ptrace(PTRACE_DETACH, tid, nullptr, as_data(sig));
        }
        // Threads still running here (stuck in uninterruptible sleep) stay attached until
        // this process exits, when the kernel detaches them (exit_ptrace).
        threads.clear();
        send_deferred();
    } catch (...) {
    }
}

// ---- Tracer ----

Tracer::Tracer(Pid pid, Clock::time_point deadline)
    : pid_(pid), impl_(std::make_unique<Impl>(pid, threads_)) {
    impl_->attach(deadline);
}

Tracer::~Tracer() = default;

Clock::time_point Tracer::stop_all(Clock::time_point deadline) {
    impl_->check_thread();
    return impl_->stop_all(deadline);
}

Clock::time_point Tracer::resume_all() {
    impl_->check_thread();
    return impl_->resume_all();
}

std::int64_t Tracer::remote_syscall(Pid tid, std::uint64_t syscall_insn, long nr,
                                    std::array<std::uint64_t, 6> args, Clock::time_point deadline,
                                    const StackArg* stack_arg) {
    impl_->check_thread();
    return impl_->remote_syscall(tid, syscall_insn, nr, args, deadline, stack_arg);
}

void Tracer::prepare_remote_syscalls() noexcept {
    (void)impl_->find_trampoline();
}

void Tracer::set_borrow_check(std::function<void(Pid)> check) {
    impl_->borrow_check = std::move(check);
    impl_->borrow_checked.clear();
    impl_->borrow_refused.clear();
    impl_->borrow_error.reset();
}

Pid Tracer::choose_thread() const {
    return impl_->choose_thread();
}

void Tracer::check_alive() {
    impl_->check_thread();
    impl_->poll_all();
    impl_->check_alive();
    if (impl_->killed()) impl_->throw_exited();
}

void Tracer::service_events() {
    impl_->check_thread();
    impl_->poll_all();
}

void Tracer::serve_until(Clock::time_point until) {
    impl_->check_thread();
    impl_->pump_until([] { return false; }, until);
}

// ---- finding code in the target ----

// The first occurrence of `pat` (at `a`'s instruction alignment) in the executable,
// non-writable mappings: the vDSO first, then libc, then the rest. 0 when absent.
std::uint64_t find_code(const proc::Memory& mem, const std::vector<proc::Mapping>& maps,
                        ByteView pat, arch::Arch a) {
    const std::uint64_t align = a == arch::Arch::AArch64 ? 4 : 1;
    auto is_libc = [](const std::string& p) {
        auto slash = p.rfind('/');
        std::string_view base =
            std::string_view(p).substr(slash == std::string::npos ? 0 : slash + 1);
        return base.rfind("libc.so", 0) == 0 || base.rfind("libc-", 0) == 0;
    };
    // Code that does not change under us: executable, not writable (JIT areas are).
    auto usable = [](const proc::Mapping& m) {
        return m.executable() && !m.writable() && m.path != "[vsyscall]";
    };
    std::vector<const proc::Mapping*> order;
    for (const auto& m : maps)
        if (usable(m) && m.path == "[vdso]") order.push_back(&m);
    for (const auto& m : maps)
        if (usable(m) && is_libc(m.path)) order.push_back(&m);
    for (const auto& m : maps)
        if (usable(m) && m.path != "[vdso]" && !is_libc(m.path)) order.push_back(&m);

    // A file-backed mapping is searched in its file: reading /proc/PID/mem would fault every
    // page read into the process (its RSS grew by 64 KiB per apply). A candidate is then
    // confirmed in memory, where a page may differ (a patch site, a breakpoint). Mappings
    // whose file cannot be read are searched in memory.
    constexpr std::size_t kChunk = 64 * 1024;
    Bytes found(pat.size());
    Bytes buf; // one buffer: a fresh one per chunk costs page faults
    buf.reserve(kChunk);
    for (const proc::Mapping* m : order) {
        const proc::MappingFile file(mem.pid(), *m); // !ok() for anonymous mappings
        bool from_file = file.ok();
        for (std::uint64_t at = m->start; at < m->end;) {
            std::size_t len =
                static_cast<std::size_t>(std::min<std::uint64_t>(kChunk, m->end - at));
            if (from_file && !file.read(at - m->start, len, buf))
                from_file = false; // and read this chunk from memory
            if (!from_file) {
                buf.resize(len);
                if (!mem.read_fallible(at, buf.data(), len)) break; // unreadable: next mapping
            }
            // memchr for the first byte: a loop over every byte with a division for the
            // alignment took 1.2 ms for the ~400 KiB of libc before its first `syscall; ret`,
            // memchr 0.15 ms (glibc's memmem 0.3 ms).
            const std::uint8_t* const b = buf.data();
            const std::uint8_t* const end = b + buf.size();
            for (const std::uint8_t* c = b;; ++c) {
                if (end - c < static_cast<std::ptrdiff_t>(pat.size())) break;
                c = static_cast<const std::uint8_t*>(
                    std::memchr(c, pat[0], static_cast<std::size_t>(end - c)));
                if (c == nullptr || end - c < static_cast<std::ptrdiff_t>(pat.size())) break;
                const std::uint64_t addr = at + static_cast<std::uint64_t>(c - b);
                if ((addr & (align - 1)) != 0 || std::memcmp(c, pat.data(), pat.size()) != 0)
                    continue;
                if (!from_file) return addr;
                if (mem.read_fallible(addr, found.data(), found.size()) &&
                    std::equal(pat.begin(), pat.end(), found.begin()))
                    return addr;
            }
            if (at + len >= m->end || buf.size() < len) break;
            at += len - (pat.size() - 1); // overlap so a match across chunks is found
        }
    }
    return 0;
}

std::uint64_t find_syscall_insn(const proc::Memory& mem, const std::vector<proc::Mapping>& maps,
                                arch::Arch a) {
    // Preferred: a system call instruction followed by a return, which lets a borrowed
    // thread carry a death guard (detail::build_guard).
    ByteView sc = arch::syscall_insn(a), ret = arch::return_insn(a);
    Bytes pair(sc.begin(), sc.end());
    pair.insert(pair.end(), ret.begin(), ret.end());
    if (std::uint64_t at = find_code(mem, maps, pair, a); at != 0) return at;
    if (std::uint64_t at = find_code(mem, maps, sc, a); at != 0) return at;
    throw Error(ErrorCode::NotEligible,
                fmt::format("no {} instruction in the executable mappings of process {}",
                            a == arch::Arch::X86_64 ? "syscall" : "svc #0", mem.pid()));
}

} // namespace hp::ptrace
