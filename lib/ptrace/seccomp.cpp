// Reading and evaluating seccomp filters (see seccomp.hpp). Arch-neutral: the only
// per-architecture facts are the AUDIT_ARCH values and the system-call instruction size,
// both taken from hp::arch.
//
// The kernel behaviour this file relies on (kernel/seccomp.c, net/core/filter.c):
// * PTRACE_SECCOMP_GET_FILTER(tid, index, buf) copies the whole original program of the
//   index-th filter into buf and returns its length in instructions; buf NULL returns the
//   length only. The kernel counts from the OLDEST filter (index 0 = installed first: what
//   CRIU needs to re-install them in order), although ptrace(2) says "the most recently
//   installed filter has the index 0"; observed on 6.18 (tests/unit/test_seccomp.cpp
//   checks it). read_filters() returns them newest first. The order only decides whose
//   data (the errno number) is reported when two filters return the same action, never
//   whether a call is allowed. It does not know the size of buf: a filter that changes
//   between a length query and the copy would overflow it. We therefore always pass a
//   buffer of BPF_MAXINSNS instructions, the most a seccomp filter can hold.
// * It fails with EACCES unless the caller has CAP_SYS_ADMIN (initial user namespace) AND
//   is not itself under seccomp; EINVAL when the thread is not in filter mode or the
//   kernel lacks CONFIG_CHECKPOINT_RESTORE (the original programs are then not kept);
//   EMEDIUMTYPE for a filter that is not classic BPF; ENOENT past the last filter; ESRCH
//   when the thread is not in a ptrace-stop of ours; EIO on kernels before 4.4.
// * The programs returned are the ones user space loaded, before the kernel's rewrites
//   (BPF_LEN loads are still BPF_LEN), and the kernel validated them at load time
//   (bpf_check_classic, then seccomp's own list of opcodes). We re-validate anyway: the
//   interpreter must be safe on any input, and tests feed it hand-built programs.
// * The filters' results combine by precedence: the smallest (signed) action wins, the
//   newest filter on a tie. An unknown action acts as SECCOMP_RET_KILL_PROCESS.
#include "ptrace/seccomp.hpp"

#include "arch/syscalls.hpp"
#include "doc/error.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fmt/format.h>
#include <fstream>
#include <sstream>
#include <sys/ptrace.h>
#include <sys/stat.h>

namespace hp::ptrace {

namespace {

constexpr std::uint32_t kDataSize = sizeof(seccomp_data); // 64: what BPF_LEN loads
constexpr std::uint32_t kMaxErrno = 4095;                 // the kernel caps ERRNO data here

static_assert(sizeof(seccomp_data) == 64, "seccomp_data is 64 bytes on every ABI");

std::string read_status(const std::string& path) {
    std::ifstream in(path);
    if (!in) return "";
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

// The integer after "Key:" in a /proc status text, if the line is there.
bool status_int(const std::string& status, std::string_view key, int& out) {
    std::string k = "\n" + std::string(key) + ":";
    std::string all = "\n" + status;
    auto at = all.find(k);
    if (at == std::string::npos) return false;
    const char* p = all.c_str() + at + k.size();
    char* end = nullptr;
    long v = std::strtol(p, &end, 10);
    if (end == p) return false;
    out = static_cast<int>(v);
    return true;
}

SeccompInfo parse_info(const std::string& path, Pid pid) {
    std::string status = read_status(path);
    if (status.empty())
        throw Error(ErrorCode::NoSuchProcess,
                    fmt::format("no process {} ({} unreadable)", pid, path));
    SeccompInfo info;
    status_int(status, "Seccomp", info.mode); // absent: a kernel without CONFIG_SECCOMP, mode 0
    status_int(status, "Seccomp_filters", info.filters);
    int nnp = 0;
    if (status_int(status, "NoNewPrivs", nnp)) info.no_new_privs = nnp != 0;
    return info;
}

// ---- classic BPF, as seccomp accepts it ----

// Opcode spelling used below: class | size/op | mode/source, as in <linux/bpf_common.h>.
constexpr std::uint16_t op(unsigned v) {
    return static_cast<std::uint16_t>(v);
}

bool is_cond_jump(std::uint16_t code) {
    switch (code) {
    case op(BPF_JMP | BPF_JEQ | BPF_K):
    case op(BPF_JMP | BPF_JEQ | BPF_X):
    case op(BPF_JMP | BPF_JGT | BPF_K):
    case op(BPF_JMP | BPF_JGT | BPF_X):
    case op(BPF_JMP | BPF_JGE | BPF_K):
    case op(BPF_JMP | BPF_JGE | BPF_X):
    case op(BPF_JMP | BPF_JSET | BPF_K):
    case op(BPF_JMP | BPF_JSET | BPF_X):
        return true;
    default:
        return false;
    }
}

// Exactly the opcodes seccomp lets through. Everything else - byte/half-word loads,
// indirect loads, BPF_MOD, the packet helpers - the kernel refuses to load.
bool seccomp_opcode(std::uint16_t code) {
    if (is_cond_jump(code)) return true;
    switch (code) {
    case op(BPF_LD | BPF_W | BPF_ABS):
    case op(BPF_LD | BPF_W | BPF_LEN):
    case op(BPF_LDX | BPF_W | BPF_LEN):
    case op(BPF_LD | BPF_IMM):
    case op(BPF_LDX | BPF_IMM):
    case op(BPF_LD | BPF_MEM):
    case op(BPF_LDX | BPF_MEM):
    case op(BPF_ST):
    case op(BPF_STX):
    case op(BPF_RET | BPF_K):
    case op(BPF_RET | BPF_A):
    case op(BPF_MISC | BPF_TAX):
    case op(BPF_MISC | BPF_TXA):
    case op(BPF_JMP | BPF_JA):
    case op(BPF_ALU | BPF_NEG):
        return true;
    default:
        break;
    }
    // The remaining ALU operations, with a constant (BPF_K) or X (BPF_X) operand.
    if (code > 0xff || BPF_CLASS(code) != BPF_ALU) return false;
    switch (BPF_OP(code)) {
    case BPF_ADD:
    case BPF_SUB:
    case BPF_MUL:
    case BPF_DIV:
    case BPF_AND:
    case BPF_OR:
    case BPF_XOR:
    case BPF_LSH:
    case BPF_RSH:
        return true;
    default:
        return false;
    }
}

// The kernel's load-time rules: a refused program cannot be attached, so one that breaks
// them did not come from a live process and we cannot know what it means.
bool valid_program(const std::vector<sock_filter>& p) {
    const std::size_t n = p.size();
    if (n == 0 || n > BPF_MAXINSNS) return false;
    for (std::size_t pc = 0; pc < n; ++pc) {
        const sock_filter& f = p[pc];
        if (!seccomp_opcode(f.code)) return false;
        const std::size_t left = n - pc - 1; // instructions after this one
        switch (f.code) {
        case op(BPF_LD | BPF_W | BPF_ABS):
            // Whole, aligned words of seccomp_data only.
            if (f.k >= kDataSize || (f.k & 3) != 0) return false;
            break;
        case op(BPF_ALU | BPF_DIV | BPF_K):
            if (f.k == 0) return false;
            break;
        case op(BPF_ALU | BPF_LSH | BPF_K):
        case op(BPF_ALU | BPF_RSH | BPF_K):
            if (f.k >= 32) return false;
            break;
        case op(BPF_LD | BPF_MEM):
        case op(BPF_LDX | BPF_MEM):
        case op(BPF_ST):
        case op(BPF_STX):
            if (f.k >= BPF_MEMWORDS) return false;
            break;
        case op(BPF_JMP | BPF_JA):
            if (f.k >= left) return false;
            break;
        default:
            if (is_cond_jump(f.code) && (f.jt >= left || f.jf >= left)) return false;
            break;
        }
    }
    if (BPF_CLASS(p[n - 1].code) != BPF_RET) return false;

    // Scratch memory: a word may be read only where every way of getting there stored it.
    // Jumps go forward only, so one pass suffices: `reach[pc]` accumulates (by
    // intersection) what the jumps into pc guarantee; `valid` is what the straight-line
    // predecessor guarantees. As in the kernel, a jump's fall-through guarantee is reset to
    // "everything" (nothing falls through a jump), and a RET does not reset it (the
    // instruction after a RET is judged as if it could be reached from before the RET).
    std::vector<std::uint16_t> reach(n, 0xffff);
    std::uint16_t valid = 0;
    for (std::size_t pc = 0; pc < n; ++pc) {
        const sock_filter& f = p[pc];
        valid &= reach[pc];
        const auto bit = static_cast<std::uint16_t>(1u << (f.k & 15));
        if (f.code == op(BPF_ST) || f.code == op(BPF_STX)) {
            valid |= bit;
        } else if (f.code == op(BPF_LD | BPF_MEM) || f.code == op(BPF_LDX | BPF_MEM)) {
            if ((valid & bit) == 0) return false;
        } else if (f.code == op(BPF_JMP | BPF_JA)) {
            reach[pc + 1 + f.k] &= valid;
            valid = 0xffff;
        } else if (is_cond_jump(f.code)) {
            reach[pc + 1 + f.jt] &= valid;
            reach[pc + 1 + f.jf] &= valid;
            valid = 0xffff;
        }
    }
    return true;
}

std::int32_t action_rank(std::uint32_t ret) {
    return static_cast<std::int32_t>(ret & SECCOMP_RET_ACTION_FULL);
}

std::string errno_text(std::uint32_t e) {
    if (e == 0) return "return 0 without running it";
    const char* name = ::strerrorname_np(static_cast<int>(e));
    return name != nullptr ? fmt::format("return {}", name) : fmt::format("return errno {}", e);
}

} // namespace

// ---- /proc ----

SeccompInfo seccomp_info(Pid pid) {
    return parse_info(fmt::format("/proc/{}/status", pid), pid);
}

SeccompInfo seccomp_info(Pid pid, Pid tid) {
    return parse_info(fmt::format("/proc/{}/task/{}/status", pid, tid), pid);
}

// ---- reading the filters ----

std::vector<std::vector<sock_filter>> read_filters(Pid tid) {
    auto cannot = [&](const std::string& why) {
        return Error(ErrorCode::NotEligible,
                     fmt::format("the seccomp filter of thread {} cannot be read: {}", tid, why));
    };
    auto filter_count = [&]() {
        int n = -1;
        status_int(read_status(fmt::format("/proc/{}/status", tid)), "Seccomp_filters", n);
        return n;
    };
    // Nothing can attach more than this many (each filter costs at least 1 + 4 of the
    // kernel's 32768-instruction budget); a longer chain means we are misreading.
    constexpr unsigned long kMaxFilters = 32768 / 5 + 1;

    std::vector<sock_filter> buf(BPF_MAXINSNS);
    // Another thread of the process that is still running can attach a filter to this one
    // (SECCOMP_FILTER_FLAG_TSYNC) while we read: compare the count before and after.
    for (int attempt = 0; attempt < 3; ++attempt) {
        const int before = filter_count();
        std::vector<std::vector<sock_filter>> out;
        for (unsigned long index = 0;; ++index) {
            if (index >= kMaxFilters)
                throw Error(ErrorCode::Internal,
                            fmt::format("thread {} reports more than {} seccomp filters", tid,
                                        kMaxFilters));
            long n = ::ptrace(PTRACE_SECCOMP_GET_FILTER, tid, reinterpret_cast<void*>(index),
                              buf.data());
            if (n >= 0) {
                if (n == 0 || static_cast<std::size_t>(n) > buf.size())
                    throw Error(
                        ErrorCode::Internal,
                        fmt::format(
                            "thread {}: the kernel reported a seccomp filter of {} instructions",
                            tid, n));
                out.emplace_back(buf.begin(), buf.begin() + n);
                continue;
            }
            int e = errno;
            if (e == ENOENT) break; // past the oldest filter
            switch (e) {
            case EACCES: {
                int own = 0;
                status_int(read_status("/proc/thread-self/status"), "Seccomp", own);
                if (own != 0)
                    throw cannot(fmt::format(
                        "this tool itself runs under seccomp (mode {}), and the kernel lets "
                        "only an unconfined tracer read filters (EACCES)",
                        own));
                throw cannot(
                    "reading a filter needs CAP_SYS_ADMIN in the initial user namespace (EACCES); "
                    "run as root outside a user namespace");
            }
            case EPERM:
                throw cannot("permission denied (EPERM), e.g. by a security module");
            case EINVAL:
                throw cannot(
                    "the kernel does not keep filters for reading (PTRACE_SECCOMP_GET_FILTER needs "
                    "CONFIG_CHECKPOINT_RESTORE), or the thread left filter mode (EINVAL)");
            case EIO:
                throw cannot("the kernel does not know PTRACE_SECCOMP_GET_FILTER (Linux 4.4 and "
                             "later) (EIO)");
            case EMEDIUMTYPE:
                throw cannot(
                    fmt::format("filter {} is not a classic BPF program (EMEDIUMTYPE)", index));
            case ESRCH: {
                struct stat st {};
                if (::stat(fmt::format("/proc/{}", tid).c_str(), &st) != 0)
                    throw Error(ErrorCode::ProcessExited, fmt::format("thread {} exited", tid));
                throw Error(
                    ErrorCode::Internal,
                    fmt::format(
                        "thread {} is not in a ptrace-stop of this thread (ESRCH): seize and "
                        "stop it before reading its seccomp filters",
                        tid));
            }
            default:
                throw cannot(std::strerror(e));
            }
        }
        const int after = filter_count();
        if (before == after && (after < 0 || static_cast<std::size_t>(after) == out.size())) {
            std::reverse(out.begin(), out.end()); // the kernel's oldest-first into newest-first
            return out;
        }
    }
    throw cannot(
        "its filters kept changing while being read (another thread of the process installs "
        "filters); stop every thread first");
}

// ---- evaluation ----

std::uint32_t run_filter(const std::vector<sock_filter>& prog, const seccomp_data& data) {
    constexpr std::uint32_t kRefuse = SECCOMP_RET_KILL_PROCESS;
    if (!valid_program(prog)) return kRefuse;

    // Loads read native-endian words of the structure, as the kernel's do.
    std::uint8_t bytes[kDataSize];
    std::memcpy(bytes, &data, kDataSize);

    std::uint32_t A = 0, X = 0;
    std::uint32_t mem[BPF_MEMWORDS] = {};
    const std::size_t n = prog.size();
    // valid_program() proved every jump forward and in range and a RET last, so this loop
    // ends in a RET; the bounds checks below stay as a second line of defence.
    for (std::size_t pc = 0; pc < n; ++pc) {
        const sock_filter& f = prog[pc];
        const std::uint32_t k = f.k;
        switch (f.code) {
        case op(BPF_LD | BPF_W | BPF_ABS):
            if (k >= kDataSize || (k & 3) != 0) return kRefuse;
            std::memcpy(&A, bytes + k, 4);
            break;
        case op(BPF_LD | BPF_W | BPF_LEN):
            A = kDataSize;
            break;
        case op(BPF_LDX | BPF_W | BPF_LEN):
            X = kDataSize;
            break;
        case op(BPF_LD | BPF_IMM):
            A = k;
            break;
        case op(BPF_LDX | BPF_IMM):
            X = k;
            break;
        case op(BPF_LD | BPF_MEM):
            if (k >= BPF_MEMWORDS) return kRefuse;
            A = mem[k];
            break;
        case op(BPF_LDX | BPF_MEM):
            if (k >= BPF_MEMWORDS) return kRefuse;
            X = mem[k];
            break;
        case op(BPF_ST):
            if (k >= BPF_MEMWORDS) return kRefuse;
            mem[k] = A;
            break;
        case op(BPF_STX):
            if (k >= BPF_MEMWORDS) return kRefuse;
            mem[k] = X;
            break;
        case op(BPF_MISC | BPF_TAX):
            X = A;
            break;
        case op(BPF_MISC | BPF_TXA):
            A = X;
            break;
        case op(BPF_ALU | BPF_NEG):
            A = 0u - A;
            break;
        case op(BPF_RET | BPF_K):
            return k;
        case op(BPF_RET | BPF_A):
            return A;
        case op(BPF_JMP | BPF_JA):
            if (k >= n - pc - 1) return kRefuse;
            pc += k;
            break;
        default:
            if (BPF_CLASS(f.code) == BPF_ALU) {
                const std::uint32_t v = BPF_SRC(f.code) == BPF_X ? X : k;
                switch (BPF_OP(f.code)) {
                case BPF_ADD:
                    A += v;
                    break;
                case BPF_SUB:
                    A -= v;
                    break;
                case BPF_MUL:
                    A *= v;
                    break;
                case BPF_DIV:
                    // A classic program that divides by a zero X returns 0 (and a constant 0
                    // divisor never loads). 0 is SECCOMP_RET_KILL_THREAD.
                    if (v == 0) return 0;
                    A /= v;
                    break;
                case BPF_AND:
                    A &= v;
                    break;
                case BPF_OR:
                    A |= v;
                    break;
                case BPF_XOR:
                    A ^= v;
                    break;
                // A shift by X uses its low 5 bits, as the kernel's interpreter and JITs do
                // for 32-bit operations (and a constant shift >= 32 never loads).
                case BPF_LSH:
                    A <<= (v & 31);
                    break;
                case BPF_RSH:
                    A >>= (v & 31);
                    break;
                default:
                    return kRefuse;
                }
                break;
            }
            if (is_cond_jump(f.code)) {
                const std::uint32_t v = BPF_SRC(f.code) == BPF_X ? X : k;
                bool taken = false;
                switch (BPF_OP(f.code)) {
                case BPF_JEQ:
                    taken = A == v;
                    break;
                case BPF_JGT:
                    taken = A > v;
                    break;
                case BPF_JGE:
                    taken = A >= v;
                    break;
                case BPF_JSET:
                    taken = (A & v) != 0;
                    break;
                default:
                    return kRefuse;
                }
                const std::size_t off = taken ? f.jt : f.jf;
                if (off >= n - pc - 1) return kRefuse;
                pc += off;
                break;
            }
            return kRefuse;
        }
    }
    return kRefuse; // unreachable after valid_program(): it ends in a RET
}

std::uint32_t run_filters(const std::vector<std::vector<sock_filter>>& filters,
                          const seccomp_data& data) {
    std::uint32_t ret = SECCOMP_RET_ALLOW;
    for (const auto& f : filters) {
        std::uint32_t r = run_filter(f, data);
        if (action_rank(r) < action_rank(ret)) ret = r; // strict: the newer filter wins ties
    }
    return ret;
}

bool action_allows(std::uint32_t ret) {
    std::uint32_t a = ret & SECCOMP_RET_ACTION_FULL;
    return a == SECCOMP_RET_ALLOW || a == SECCOMP_RET_LOG;
}

std::string describe_action(std::uint32_t ret) {
    const std::uint32_t data = ret & SECCOMP_RET_DATA;
    switch (ret & SECCOMP_RET_ACTION_FULL) {
    case SECCOMP_RET_KILL_PROCESS:
        return "kill the process";
    case SECCOMP_RET_KILL_THREAD:
        return "kill the thread";
    case SECCOMP_RET_TRAP:
        return "trap (SIGSYS)";
    case SECCOMP_RET_ERRNO:
        return errno_text(std::min(data, kMaxErrno));
    case SECCOMP_RET_USER_NOTIF:
        return "defer to a user-space supervisor (SECCOMP_RET_USER_NOTIF)";
    // We never set PTRACE_O_TRACESECCOMP, so as the tracer we make the call fail with ENOSYS.
    case SECCOMP_RET_TRACE:
        return "defer to a seccomp tracer (SECCOMP_RET_TRACE: ENOSYS under our ptrace)";
    case SECCOMP_RET_LOG:
        return "allow and log";
    case SECCOMP_RET_ALLOW:
        return "allow";
    default:
        return fmt::format("kill the process (unknown action {:#x})",
                           ret & SECCOMP_RET_ACTION_FULL);
    }
}

std::uint32_t audit_arch(arch::Arch a) {
    switch (a) {
    case arch::Arch::X86_64:
        return 0xc000003eu; // EM_X86_64 | __AUDIT_ARCH_64BIT | _LE
    case arch::Arch::AArch64:
        return 0xc00000b7u; // EM_AARCH64 | __AUDIT_ARCH_64BIT | _LE
    }
    throw Error(ErrorCode::Internal, "unknown architecture");
}

// ---- the check ----

void check_injection_allowed(Pid pid, Pid stopped_tid, arch::Arch a,
                             const std::vector<InjectedCall>& calls, std::uint64_t syscall_insn) {
    if (calls.empty()) return;
    const std::string whose = stopped_tid == pid
                                  ? fmt::format("process {}'s", pid)
                                  : fmt::format("process {}'s (thread {})", pid, stopped_tid);
    const SeccompInfo info = seccomp_info(pid, stopped_tid);
    if (info.mode == SECCOMP_MODE_DISABLED) return;
    const InjectedCall& first = calls.front();
    if (info.mode == SECCOMP_MODE_STRICT)
        throw Error(
            ErrorCode::NotEligible,
            fmt::format(
                "{} seccomp strict mode (only read, write, _exit and sigreturn) would kill the "
                "process on {} (nr {}); refusing to inject system calls",
                whose, first.name, first.nr));
    if (info.mode != SECCOMP_MODE_FILTER)
        throw Error(
            ErrorCode::NotEligible,
            fmt::format(
                "{} seccomp mode is {} (not 0, 1 or 2: the thread is being killed?); refusing to "
                "inject system calls",
                whose, info.mode));

    const auto filters = read_filters(stopped_tid);
    if (filters.empty())
        throw Error(
            ErrorCode::NotEligible,
            fmt::format(
                "{} seccomp mode is 'filter' but no filter could be read; refusing to inject "
                "system calls",
                whose));
    // The kernel reports the address after the system-call instruction (the user pc at
    // syscall entry on both architectures).
    const std::uint64_t ip = syscall_insn != 0 ? syscall_insn + arch::syscall_insn(a).size() : 0;
    for (const InjectedCall& c : calls) {
        seccomp_data d{};
        d.nr = static_cast<int>(c.nr);
        d.arch = audit_arch(a);
        d.instruction_pointer = ip;
        for (std::size_t i = 0; i < c.args.size(); ++i)
            d.args[i] = c.args[i];
        const std::uint32_t ret = run_filters(filters, d);
        if (!action_allows(ret))
            throw Error(
                ErrorCode::NotEligible,
                fmt::format(
                    "{} seccomp filter would {} on {} (nr {}); refusing to inject system calls",
                    whose, describe_action(ret), c.name, c.nr));
    }
}

} // namespace hp::ptrace
