// x86-64 registers of a stopped thread.
//
// The ABI facts this file relies on:
// - NT_PRSTATUS is `struct user_regs_struct` (27 quadwords) for a 64-bit task; a 32-bit
//   (ia32 compat) task gets the 17-word ia32 layout instead, which we refuse.
// - System calls take the number in rax and arguments in rdi, rsi, rdx, r10, r8, r9; the
//   `syscall` instruction (0f 05) clobbers rcx and r11; the result comes back in rax.
// - orig_rax holds the number of the system call the thread entered the kernel with (-1
//   for an interrupt or exception). On the way out of an interrupted call the tracer sees
//   rax = -ERESTART* with rip NOT yet rewound: the kernel rewinds (rip -= 2, rax = orig_rax)
//   in arch_do_signal_or_restart() only after the ptrace stop ends. Restoring these
//   registers unchanged before resuming lets the kernel do exactly that.
// - The XSAVE area (NT_X86_XSTATE) is written back only whole: xstateregs_set() refuses any
//   size other than the one xstateregs_get() reports.
#if defined(__x86_64__)

#include "ptrace/regs_impl.hpp"

#include <cerrno>
#include <cstring>
#include <elf.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/user.h>

namespace hp::ptrace {

namespace {

user_regs_struct load(const Regs& r) {
    user_regs_struct u;
    std::memcpy(&u, r.raw.data(), sizeof u);
    return u;
}

void store(Regs& r, const user_regs_struct& u) {
    std::memcpy(r.raw.data(), &u, sizeof u);
}

static_assert(sizeof(user_regs_struct) <= sizeof(Regs::raw));

// -ERESTARTSYS, -ERESTARTNOINTR, -ERESTARTNOHAND, -ERESTART_RESTARTBLOCK (kernel-internal
// values from include/linux/errno.h that a tracer sees in rax), and -EINTR.
bool interrupted_result(std::int64_t rax) {
    return rax == -512 || rax == -513 || rax == -514 || rax == -516 || rax == -EINTR;
}

} // namespace

std::uint64_t Regs::ip() const {
    return load(*this).rip;
}
std::uint64_t Regs::sp() const {
    return load(*this).rsp;
}
std::uint64_t Regs::fp() const {
    return load(*this).rbp;
}
std::uint64_t Regs::lr() const {
    return 0;
}
void Regs::set_ip(std::uint64_t v) {
    auto u = load(*this);
    u.rip = v;
    store(*this, u);
}

namespace detail {

int get_gp(Pid tid, Regs& r) {
    iovec iov{r.raw.data(), r.raw.size()};
    if (::ptrace(PTRACE_GETREGSET, tid, NT_PRSTATUS, &iov) != 0) return errno;
    return iov.iov_len == sizeof(user_regs_struct) ? 0 : ENOEXEC;
}

int set_gp(Pid tid, const Regs& r) {
    iovec iov{const_cast<std::uint8_t*>(r.raw.data()), sizeof(user_regs_struct)};
    return ::ptrace(PTRACE_SETREGSET, tid, NT_PRSTATUS, &iov) == 0 ? 0 : errno;
}

int get_extra(Pid tid, ExtraState& out) {
    out.sets.clear();
    // 64 KiB holds any XSAVE layout (AMX tiles included, ~11 KiB); the kernel returns the
    // size of the task's user XSAVE format in iov_len.
    ExtraState::Set s;
    s.type = NT_X86_XSTATE;
    s.data.resize(64 * 1024);
    iovec iov{s.data.data(), s.data.size()};
    if (::ptrace(PTRACE_GETREGSET, tid, NT_X86_XSTATE, &iov) == 0) {
        s.data.resize(iov.iov_len);
        out.sets.push_back(std::move(s));
        return 0;
    }
    if (errno == ESRCH) return errno;
    // No XSAVE (ENODEV): the legacy 512-byte FXSAVE image.
    s.type = NT_PRFPREG;
    s.data.assign(sizeof(user_fpregs_struct), 0);
    iov = {s.data.data(), s.data.size()};
    if (::ptrace(PTRACE_GETREGSET, tid, NT_PRFPREG, &iov) != 0) return errno;
    s.data.resize(iov.iov_len);
    out.sets.push_back(std::move(s));
    return 0;
}

std::size_t syscall_insn_size() {
    return 2;
}

void prepare_syscall(Regs& r, std::uint64_t insn, long nr, const std::array<std::uint64_t, 6>& a) {
    auto u = load(r);
    u.rax = static_cast<std::uint64_t>(nr);
    u.orig_rax = static_cast<std::uint64_t>(-1);
    u.rdi = a[0];
    u.rsi = a[1];
    u.rdx = a[2];
    u.r10 = a[3];
    u.r8 = a[4];
    u.r9 = a[5];
    u.rip = insn;
    store(r, u);
}

std::int64_t syscall_result(const Regs& r) {
    return static_cast<std::int64_t>(load(r).rax);
}

long interrupted_syscall(const Regs& r, const Read32&) {
    auto u = load(r);
    auto orig = static_cast<std::int64_t>(u.orig_rax);
    if (orig >= 0 && interrupted_result(static_cast<std::int64_t>(u.rax)))
        return static_cast<long>(orig);
    return -1;
}

bool insn_usable(const Regs&, std::uint64_t) {
    return true;
}

} // namespace detail
} // namespace hp::ptrace

#endif // __x86_64__
