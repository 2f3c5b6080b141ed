// Stopping, inspecting and borrowing the threads of a process with ptrace (DESIGN §6).
// PTRACE_SEIZE + PTRACE_INTERRUPT: no signals are sent; threads born while attached are
// caught through PTRACE_O_TRACECLONE. PTRACE_O_EXITKILL is never set: the target must
// outlive the tool. The destructor detaches every thread, restoring any borrowed state.
#pragma once

#include "arch/arch.hpp"
#include "proc/process.hpp"

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <vector>

namespace hp::ptrace {

using proc::Pid;
using Clock = std::chrono::steady_clock;

// The register file of a stopped thread, whatever the host architecture. Per-arch code
// in lib/ptrace/regs_*.cpp; everything else uses these accessors.
class Regs {
  public:
    std::uint64_t ip() const;
    std::uint64_t sp() const;
    // Frame pointer (rbp / x29) and, on ARM64, the link register (0 on x86-64).
    std::uint64_t fp() const;
    std::uint64_t lr() const;
    void set_ip(std::uint64_t v);
    void set_sp(std::uint64_t v);
    // The raw storage (user_regs_struct / user_pt_regs), sized for the largest.
    alignas(16) std::array<std::uint8_t, 512> raw{};
};

struct ThreadInfo {
    Pid tid = 0;
    Regs regs;               // as of the last stop
    bool in_syscall = false; // stopped inside a system call (from /proc or registers)
    long syscall_nr = -1;
};

// Bytes a system call takes by pointer (a file name, say), placed for the call on the
// borrowed thread's own stack below its red zone, where nothing live can be: argument
// `index` gets their address. Nothing is mapped for them, so nothing can leak.
struct StackArg {
    unsigned index = 0;
    ByteView bytes;
};

class Tracer {
  public:
    // Seizes every thread of `pid` (looping over /proc/PID/task until no new thread
    // appears). Nothing is stopped yet. Throws Error: Traced (another tracer, named),
    // Permission (with the reason), NoSuchProcess, ProcessExited, Unsafe (deadline).
    Tracer(Pid pid, Clock::time_point deadline);
    ~Tracer(); // detaches all (threads resume; a group-stopped process stays stopped)
    Tracer(const Tracer&) = delete;
    Tracer& operator=(const Tracer&) = delete;

    Pid pid() const { return pid_; }

    // Stops every thread (PTRACE_INTERRUPT; new threads are caught too) and reads their
    // registers. Returns the time the first thread was asked to stop.
    Clock::time_point stop_all(Clock::time_point deadline);
    // Resumes every stopped thread (re-delivering any signal that arrived meanwhile).
    // Returns the time the last thread was resumed.
    Clock::time_point resume_all();
    const std::vector<ThreadInfo>& threads() const { return threads_; }

    // Throws Error(ProcessExited) when the process has exited or is being killed (a
    // SIGKILL pending): a job that finished while it died reports that, not success.
    void check_alive();

    // Collects pending reports without blocking: re-delivers signals that stopped a
    // running thread, lets threads born meanwhile start. Every other call does this while
    // it waits; a caller that keeps the Tracer attached while it works elsewhere calls it
    // now and then, since a traced thread that takes a signal or creates a thread waits in
    // a ptrace-stop until the tracer answers.
    void service_events();
    // Waits until `until` while answering every report as it comes (service_events in a
    // loop). A caller that pauses with threads attached, e.g. between attempts to stop
    // them all, waits with this instead of sleeping: a traced thread that takes a signal
    // sits in its signal-delivery-stop until we answer, so behind a plain sleep a thread
    // with a stream of queued signals takes one signal per attempt and never gets back to
    // its own code - it stays wherever it was interrupted, attempt after attempt.
    void serve_until(Clock::time_point until);

    // Runs one system call in one thread while the others keep running: stops that thread
    // only (if not stopped already), saves its full state, executes `nr(args)` at
    // `syscall_insn` (the address of an existing syscall/svc instruction in the target),
    // restores the state so the thread continues exactly as before (an interrupted,
    // restartable system call is restarted by the kernel as after any ptrace stop), and
    // returns the raw result (negative errno on failure).
    // Prefers a thread that is not inside a system call when `tid` is 0.
    std::int64_t remote_syscall(Pid tid, std::uint64_t syscall_insn, long nr,
                                std::array<std::uint64_t, 6> args, Clock::time_point deadline,
                                const StackArg* stack_arg = nullptr);
    // Called before the first remote_syscall that borrows a thread, with that thread held
    // in a stop. For what depends on the thread: its seccomp filters (DESIGN §6), read for
    // the threads that run our calls only (a 1000-thread process: one /proc status read
    // instead of 1000). A thread it refuses (hp::Error) is let go untouched and never
    // borrowed again: remote_syscall(0, ...) chooses another, and throws the first refusal
    // when none is left; remote_syscall(tid, ...) throws it at once.
    void set_borrow_check(std::function<void(Pid)> check);
    // The thread remote_syscall(0, ...) would borrow.
    Pid choose_thread() const;
    // Does now, while the threads run, the searches of the target's memory that the first
    // remote_syscall would otherwise do with threads held (the signal-return trampoline of
    // the death guard). Optional; never throws.
    void prepare_remote_syscalls() noexcept;

  private:
    struct Impl;
    Pid pid_;
    std::vector<ThreadInfo> threads_;
    std::unique_ptr<Impl> impl_;
};

// The first occurrence of `pat` at an instruction boundary of `a` in the executable,
// non-writable mappings (vDSO, then libc, then the rest); 0 when there is none.
std::uint64_t find_code(const proc::Memory& mem, const std::vector<proc::Mapping>& maps,
                        ByteView pat, arch::Arch a);

// Finds the address of an existing system-call instruction in the process (vDSO first,
// then libc, then any executable mapping), by scanning executable mappings for its bytes.
std::uint64_t find_syscall_insn(const proc::Memory& mem, const std::vector<proc::Mapping>& maps,
                                arch::Arch a);

} // namespace hp::ptrace
