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
void Regs::set_sp(std::uint64_t v) {
    auto u = load(*this);
    u.rsp = v;
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

// The rt_sigframe that x86-64 rt_sigreturn reads at (rsp - 8) (arch/x86/kernel/signal_64.c,
// uapi asm/sigcontext.h and asm/ucontext.h):
//   +0    pretcode: the trampoline address, popped by the `ret` after our system call
//   +8    ucontext: uc_flags, uc_link, uc_stack (24 bytes), uc_mcontext (struct
//         sigcontext, 256 bytes), uc_sigmask (8 bytes)
//   +312  siginfo (128 bytes, not read by rt_sigreturn)
// uc_mcontext.fpstate points to an XSAVE image followed by FP_XSTATE_MAGIC2, as the kernel
// lays it out when delivering a signal; its software-reserved bytes (offset 464) carry
// FP_XSTATE_MAGIC1 and the sizes. uc_stack gets an invalid ss_flags on purpose: the
// kernel's restore_altstack() ignores the resulting EINVAL, so the thread's alternate
// signal stack stays exactly as it is.
std::optional<Guard> build_guard(const Regs& saved, const ExtraState& extra, std::uint64_t blocked,
                                 std::uint64_t trampoline, std::uint64_t stack_lo,
                                 std::uint64_t top) {
    constexpr std::uint64_t kRedZone = 128, kFrame = 440, kUc = 8, kMc = kUc + 40;
    constexpr std::uint32_t kMagic1 = 0x46505853, kMagic2 = 0x46505845;
    constexpr std::uint64_t kUcFpXstate = 1, kUcSigcontextSs = 2, kUcStrictRestoreSs = 4;
    if (extra.sets.empty()) return std::nullopt;
    const auto& fp = extra.sets.front();
    const bool xsave = fp.type == NT_X86_XSTATE && fp.data.size() >= 576;
    if (!xsave && fp.data.size() < 512) return std::nullopt;
    const std::uint64_t fp_size = xsave ? fp.data.size() + 4 : 512;

    auto u = load(saved);
    // Leave the red zone and a little more alone; the FPU image must be 64-byte aligned.
    top = std::min<std::uint64_t>(top, u.rsp - kRedZone - 64);
    std::uint64_t fp_addr = (top - fp_size) & ~std::uint64_t{63};
    std::uint64_t frame_addr = (fp_addr - kFrame) & ~std::uint64_t{15};
    if (frame_addr < stack_lo + 4096 || frame_addr > u.rsp) return std::nullopt;

    Guard g;
    g.frame_addr = frame_addr;
    g.sp = frame_addr;
    g.frame.assign(fp_addr + fp_size - frame_addr, 0);
    std::uint8_t* f = g.frame.data();
    auto put64 = [&](std::uint64_t off, std::uint64_t v) { store_le64(f + off, v); };
    put64(0, trampoline);
    put64(kUc + 0, (xsave ? kUcFpXstate : 0) | kUcSigcontextSs | kUcStrictRestoreSs);
    store_le32(f + kUc + 24, 0x100); // uc_stack.ss_flags: invalid, see above

    // An interrupted, restartable system call is restarted as the kernel would have done
    // when resuming the thread (arch_do_signal_or_restart): rewind, number back in rax.
    // -ERESTART_RESTARTBLOCK too is re-issued as the original call (its arguments are
    // still in the registers), not as restart_syscall: rt_sigreturn resets the restart
    // block. A relative sleep may so get longer, never shorter.
    std::uint64_t rip = u.rip, rax = u.rax;
    auto orig = static_cast<std::int64_t>(u.orig_rax);
    auto res = static_cast<std::int64_t>(u.rax);
    if (orig >= 0 && (res == -512 || res == -513 || res == -514 || res == -516)) {
        rip -= 2;
        rax = u.orig_rax;
    }
    const std::uint64_t gp[] = {u.r8,  u.r9,  u.r10, u.r11, u.r12, u.r13, u.r14, u.r15, u.rdi,
                                u.rsi, u.rbp, u.rbx, u.rdx, rax,   u.rcx, u.rsp, rip,   u.eflags};
    for (std::size_t i = 0; i < std::size(gp); ++i)
        put64(kMc + 8 * i, gp[i]);
    f[kMc + 144] = static_cast<std::uint8_t>(u.cs); // cs, gs, fs, ss: u16 each
    f[kMc + 150] = static_cast<std::uint8_t>(u.ss);
    put64(kMc + 184, fp_addr);
    put64(kUc + 296, blocked);

    std::uint8_t* img = f + (fp_addr - frame_addr);
    std::memcpy(img, fp.data.data(), xsave ? fp.data.size() : 512);
    if (xsave) {
        const auto n = static_cast<std::uint32_t>(fp.data.size());
        // ptrace fills the software-reserved bytes like a signal frame; make sure of it.
        std::uint64_t features = load_le32(img + 464) == kMagic1 ? load_le64(img + 472) : 0;
        if (features == 0) features = load_le64(img + 512) | 3; // XSAVE header: xstate_bv
        store_le32(img + 464, kMagic1);
        store_le32(img + 468, n + 4); // extended_size
        store_le64(img + 472, features);
        store_le32(img + 480, n); // xstate_size
        store_le32(img + n, kMagic2);
    }
    return g;
}

bool insn_usable(const Regs&, std::uint64_t) {
    return true;
}

} // namespace detail
} // namespace hp::ptrace

#endif // __x86_64__
