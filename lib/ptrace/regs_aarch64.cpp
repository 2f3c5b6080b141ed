// ARM64 registers of a stopped thread.
//
// The ABI facts this file relies on:
// - NT_PRSTATUS is `struct user_pt_regs`: x0..x30, sp, pc, pstate (34 doublewords); a
//   32-bit (AArch32 compat) task gets another layout, which we refuse.
// - System calls take the number in x8 and arguments in x0..x5; `svc #0` (0xd4000001)
//   returns the result in x0 and preserves every other general register.
// - Unlike x86-64, do_signal() prepares the restart of an interrupted call BEFORE the
//   ptrace stop: a tracer already sees pc rewound to the `svc` and x0 = orig_x0, and the
//   kernel's syscallno is already forgotten (so /proc/TID/syscall shows -1). An
//   interrupted call is recognised by the `svc #0` word at pc. After the stop, do_signal()
//   turns x8 into restart_syscall only when pc still equals its remembered restart address
//   (see insn_usable) - so restoring the saved registers re-issues the call with its
//   original arguments: a relative sleep starts over (longer, never shorter).
// - A system call discards the SVE state beyond the FP/SIMD view: NT_ARM_SVE is saved and
//   restored whole (after NT_PRFPREG, which would otherwise zero-pad it again).
#if defined(__aarch64__)

#include "ptrace/regs_impl.hpp"

#include <cerrno>
#include <cstring>
#include <elf.h>
#include <sys/ptrace.h>
#include <sys/uio.h>

namespace hp::ptrace {

namespace {

// struct user_pt_regs, spelled out: <asm/ptrace.h> clashes with glibc's <sys/ptrace.h>.
struct PtRegs {
    std::uint64_t x[31];
    std::uint64_t sp, pc, pstate;
};
static_assert(sizeof(PtRegs) == 272 && sizeof(PtRegs) <= sizeof(Regs::raw));

constexpr std::uint32_t kSvc0 = 0xd4000001; // svc #0
constexpr std::size_t kFpsimdSize = 528;    // struct user_fpsimd_state: v0-v31, fpsr, fpcr, pad
constexpr std::size_t kSveHeaderSize = 16;  // struct user_sve_header

PtRegs load(const Regs& r) {
    PtRegs u;
    std::memcpy(&u, r.raw.data(), sizeof u);
    return u;
}

void store(Regs& r, const PtRegs& u) {
    std::memcpy(r.raw.data(), &u, sizeof u);
}

} // namespace

std::uint64_t Regs::ip() const {
    return load(*this).pc;
}
std::uint64_t Regs::sp() const {
    return load(*this).sp;
}
std::uint64_t Regs::fp() const {
    return load(*this).x[29];
}
std::uint64_t Regs::lr() const {
    return load(*this).x[30];
}
void Regs::set_ip(std::uint64_t v) {
    auto u = load(*this);
    u.pc = v;
    store(*this, u);
}
void Regs::set_sp(std::uint64_t v) {
    auto u = load(*this);
    u.sp = v;
    store(*this, u);
}

namespace detail {

int get_gp(Pid tid, Regs& r) {
    iovec iov{r.raw.data(), sizeof(PtRegs)};
    if (::ptrace(PTRACE_GETREGSET, tid, NT_PRSTATUS, &iov) != 0) return errno;
    return iov.iov_len == sizeof(PtRegs) ? 0 : ENOEXEC;
}

int set_gp(Pid tid, const Regs& r) {
    iovec iov{const_cast<std::uint8_t*>(r.raw.data()), sizeof(PtRegs)};
    return ::ptrace(PTRACE_SETREGSET, tid, NT_PRSTATUS, &iov) == 0 ? 0 : errno;
}

int get_extra(Pid tid, ExtraState& out) {
    out.sets.clear();
    ExtraState::Set fp;
    fp.type = NT_PRFPREG;
    fp.data.assign(kFpsimdSize, 0);
    iovec iov{fp.data.data(), fp.data.size()};
    if (::ptrace(PTRACE_GETREGSET, tid, NT_PRFPREG, &iov) != 0) return errno;
    fp.data.resize(iov.iov_len);
    out.sets.push_back(std::move(fp));

    // SVE: the header says how large the task's current state is (it depends on the
    // vector length); a CPU without SVE fails the request (EINVAL), which is fine.
    std::uint8_t hdr[kSveHeaderSize];
    iov = {hdr, sizeof hdr};
    if (::ptrace(PTRACE_GETREGSET, tid, NT_ARM_SVE, &iov) != 0 || iov.iov_len < sizeof hdr)
        return errno == ESRCH ? ESRCH : 0;
    std::uint32_t size;
    std::memcpy(&size, hdr, 4);
    if (size < kSveHeaderSize || size > (1u << 20)) return 0;
    ExtraState::Set sve;
    sve.type = NT_ARM_SVE;
    sve.data.assign((size + 15) & ~15u, 0); // the regset's unit is 16 bytes
    iov = {sve.data.data(), sve.data.size()};
    if (::ptrace(PTRACE_GETREGSET, tid, NT_ARM_SVE, &iov) != 0) return errno == ESRCH ? ESRCH : 0;
    sve.data.resize(std::min<std::size_t>(iov.iov_len, size));
    out.sets.push_back(std::move(sve));
    return 0;
}

std::size_t syscall_insn_size() {
    return 4;
}

void prepare_syscall(Regs& r, std::uint64_t insn, long nr, const std::array<std::uint64_t, 6>& a) {
    auto u = load(r);
    for (std::size_t i = 0; i < 6; ++i)
        u.x[i] = a[i];
    u.x[8] = static_cast<std::uint64_t>(nr);
    u.pc = insn;
    store(r, u);
}

std::int64_t syscall_result(const Regs& r) {
    return static_cast<std::int64_t>(load(r).x[0]);
}

long interrupted_syscall(const Regs& r, const Read32& read32) {
    auto u = load(r);
    // Restartable: pc was already rewound to the svc (see the top of this file).
    if (auto w = read32(u.pc); w && *w == kSvc0) return static_cast<long>(u.x[8]);
    // Interrupted with EINTR: pc is past the svc.
    if (static_cast<std::int64_t>(u.x[0]) == -EINTR && u.pc >= 4)
        if (auto w = read32(u.pc - 4); w && *w == kSvc0) return static_cast<long>(u.x[8]);
    return -1;
}

std::optional<Guard> build_guard(const Regs&, const ExtraState&, std::uint64_t, std::uint64_t,
                                 std::uint64_t, std::uint64_t) {
    // Not yet: an ARM64 rt_sigframe needs the fpsimd (and SVE) records rebuilt from the
    // regsets. Until then a tracer that dies mid-call leaves this thread with our registers.
    return std::nullopt;
}

bool insn_usable(const Regs& r, std::uint64_t insn) {
    // do_signal()'s restart_addr is pc (when rewound) or pc - 4 (when not).
    std::uint64_t pc = load(r).pc;
    return insn != pc && insn + 4 != pc;
}

} // namespace detail
} // namespace hp::ptrace

#endif // __aarch64__
