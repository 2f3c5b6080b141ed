#include "check/checks.hpp"

#include "common/file.hpp"
#include "patch/apply.hpp"
#include "patch/injection.hpp"
#include "patch/record.hpp"
#include "ptrace/seccomp.hpp"
#include "ptrace/tracer.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <fmt/format.h>
#include <fstream>
#include <sstream>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

namespace hp::check {

namespace {

Check pass(std::string id, std::string detail) {
    return {std::move(id), "pass", std::move(detail), ""};
}
Check warn(std::string id, std::string detail, std::string hint) {
    return {std::move(id), "warn", std::move(detail), std::move(hint)};
}
Check fail(std::string id, std::string detail, std::string hint) {
    return {std::move(id), "fail", std::move(detail), std::move(hint)};
}
Check skip(std::string id, std::string detail) {
    return {std::move(id), "skip", std::move(detail), ""};
}

std::optional<std::string> read_text(const std::string& path) {
    std::ifstream f(path);
    if (!f) return std::nullopt;
    std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    while (!s.empty() && (s.back() == '\n' || s.back() == ' '))
        s.pop_back();
    return s;
}

std::string status_field(proc::Pid pid, const std::string& key) {
    std::ifstream f(fmt::format("/proc/{}/status", pid));
    std::string line;
    while (std::getline(f, line))
        if (line.rfind(key + ":", 0) == 0) {
            std::string v = line.substr(key.size() + 1);
            v.erase(0, v.find_first_not_of(" \t"));
            return v;
        }
    return "";
}

bool have_cap_sys_ptrace() {
    std::string cap = status_field(::getpid(), "CapEff");
    if (cap.empty()) return false;
    return (std::stoull(cap, nullptr, 16) >> 19) & 1; // CAP_SYS_PTRACE = 19
}

// What /proc/PID/mem lets a tracer write, as the kernel's command line sets it.
std::string force_override_setting() {
    auto cmdline = read_text("/proc/cmdline").value_or("");
    for (const char* v : {"never", "ptrace", "always"})
        if (cmdline.find(std::string("proc_mem.force_override=") + v) != std::string::npos)
            return std::string("proc_mem.force_override=") + v + " (kernel command line)";
    return "proc_mem.force_override: the kernel's default (not on the command line)";
}

// PTRACE_SEIZE on a child of ours that waits, then /proc/CHILD/mem writing the bytes its
// read-only code already holds (the child is a fork of us: our code is at the same
// address in it), as hp-apply writes a site: the features, without touching anyone else.
// Returns host.ptrace-seize and host.proc-mem.
std::pair<Check, Check> probe_child() {
    int fds[2];
    if (::pipe(fds) != 0)
        return {warn("host.ptrace-seize", "cannot probe (pipe failed)", ""),
                skip("host.proc-mem", "not probed (pipe failed); " + force_override_setting())};
    pid_t child = ::fork();
    if (child == 0) {
        char c;
        ::close(fds[1]);
        (void)!::read(fds[0], &c, 1);
        ::_exit(0);
    }
    ::close(fds[0]);
    if (child < 0) {
        ::close(fds[1]);
        return {warn("host.ptrace-seize", "cannot probe (fork failed)", ""),
                skip("host.proc-mem", "not probed (fork failed); " + force_override_setting())};
    }
    long r = ::ptrace(PTRACE_SEIZE, child, nullptr, nullptr);
    int e = errno;
    std::optional<int> mem_errno;
    if (r == 0) {
        auto code = reinterpret_cast<std::uintptr_t>(&force_override_setting);
        unsigned char byte = *reinterpret_cast<const unsigned char*>(code);
        int fd = ::open(fmt::format("/proc/{}/mem", child).c_str(), O_RDWR | O_CLOEXEC);
        mem_errno = fd < 0 ? errno : 0;
        if (fd >= 0) {
            if (::pwrite(fd, &byte, 1, static_cast<off_t>(code)) != 1) mem_errno = errno;
            ::close(fd);
        }
    }
    ::kill(child, SIGKILL);
    ::close(fds[1]);
    int st;
    ::waitpid(child, &st, __WALL);
    if (r != 0)
        return {
            fail("host.ptrace-seize",
                 fmt::format("PTRACE_SEIZE on a child failed: {}", std::strerror(e)),
                 "ptrace may be disabled (Yama scope 3, a container's seccomp profile, or an LSM)"),
            skip("host.proc-mem", "not probed: PTRACE_SEIZE failed; " + force_override_setting())};
    Check seize = pass("host.ptrace-seize", "PTRACE_SEIZE works (Linux 3.4+)");
    if (*mem_errno == 0)
        return {seize, pass("host.proc-mem",
                            "a tracer can write read-only code through /proc/PID/mem, probed on a "
                            "child; " +
                                force_override_setting())};
    return {
        seize,
        fail("host.proc-mem",
             fmt::format(
                 "writing read-only code of a traced child through /proc/PID/mem failed: {} ({})",
                 std::strerror(*mem_errno), force_override_setting()),
             "boot without proc_mem.force_override=never (or with =ptrace)")};
}

} // namespace

doc::json to_json(const Check& c) {
    return {{"id", c.id}, {"status", c.status}, {"detail", c.detail}, {"hint", c.hint}};
}

std::vector<Check> host_checks() {
    std::vector<Check> out;
    utsname u{};
    ::uname(&u);
    out.push_back(pass("host.kernel", fmt::format("Linux {} ({})", u.release, u.machine)));
    if (arch::host() == arch::Arch::X86_64)
        out.push_back(pass("host.arch", "x86_64: apply, revert and verify are supported"));
    else
        out.push_back(
            warn("host.arch",
                 "aarch64: packages can be built and inspected; applying is not yet supported",
                 "apply from an x86_64 host for now"));
    auto probes = probe_child();
    out.push_back(probes.first);
    {
        long v = 0x1234, got = 0;
        iovec local{&got, sizeof got}, remote{&v, sizeof v};
        ssize_t n = ::process_vm_readv(::getpid(), &local, 1, &remote, 1, 0);
        out.push_back(n == sizeof v
                          ? pass("host.process-vm", "process_vm_readv works")
                          : warn("host.process-vm",
                                 fmt::format("process_vm_readv: {}", std::strerror(errno)),
                                 "not required: hotpatch uses /proc/PID/mem"));
    }
    {
        int fd = static_cast<int>(::syscall(SYS_memfd_create, "hotpatch-probe", 1u));
        if (fd >= 0) {
            ::close(fd);
            out.push_back(
                pass("host.memfd", "memfd_create works (patch mappings are named memfds)"));
        } else {
            out.push_back(fail("host.memfd", fmt::format("memfd_create: {}", std::strerror(errno)),
                               "hotpatch needs Linux 3.17+ with memfd_create"));
        }
    }
    {
        int r = ::prctl(66 /* PR_GET_MDWE */, 0, 0, 0, 0);
        out.push_back(
            r >= 0
                ? pass("host.mdwe", "PR_SET_MDWE is known to this kernel (patch code is mapped r-x "
                                    "from the start, so MDWE processes can be patched)")
                : skip("host.mdwe", "PR_SET_MDWE is not supported by this kernel (Linux 6.3+)"));
    }
    bool root = ::geteuid() == 0, cap = have_cap_sys_ptrace();
    if (root || cap)
        out.push_back(
            pass("host.privileges", root ? "running as root" : "CAP_SYS_PTRACE is effective"));
    else
        out.push_back(
            warn("host.privileges",
                 fmt::format("uid {} without CAP_SYS_PTRACE: only own processes", ::geteuid()),
                 "run as root to patch other users' services"));
    if (auto y = read_text("/proc/sys/kernel/yama/ptrace_scope")) {
        static const char* meaning[] = {"0 (classic: same uid may trace)",
                                        "1 (restricted: only descendants, unless "
                                        "CAP_SYS_PTRACE)",
                                        "2 (admin-only: CAP_SYS_PTRACE needed)",
                                        "3 (no attach at all)"};
        int s = std::atoi(y->c_str());
        std::string d =
            fmt::format("Yama ptrace_scope {}", s >= 0 && s <= 3 ? meaning[s] : y->c_str());
        if (s == 3)
            out.push_back(
                fail("host.yama", d, "ptrace_scope 3 cannot be lowered without a reboot"));
        else if (s >= 1 && !cap && !root)
            out.push_back(fail("host.yama", d, "run as root or with CAP_SYS_PTRACE"));
        else
            out.push_back(pass("host.yama", d));
    } else {
        out.push_back(pass("host.yama", "Yama is not present (classic ptrace rules)"));
    }
    out.push_back(probes.second);
    if (auto e = read_text("/sys/fs/selinux/enforce"))
        out.push_back(*e == "1" ? warn("host.selinux", "SELinux enforcing",
                                       "a policy may deny ptrace or memfd execution")
                                : pass("host.selinux", "SELinux permissive"));
    else
        out.push_back(skip("host.selinux", "SELinux not present"));
    if (auto a = read_text("/sys/module/apparmor/parameters/enabled"); a && *a == "Y")
        out.push_back(pass("host.apparmor",
                           "AppArmor enabled (a confined target's profile may deny ptrace)"));
    else
        out.push_back(skip("host.apparmor", "AppArmor not enabled"));
    if (auto l = read_text("/sys/kernel/security/lockdown"))
        out.push_back(
            pass("host.lockdown",
                 fmt::format("kernel lockdown: {} (does not restrict user-space ptrace)", *l)));
    else
        out.push_back(skip("host.lockdown", "kernel lockdown not reported"));
    return out;
}

namespace {

// Fields of /proc/PID/stat after the command: field 3 (state) is [0], field 9 (flags) [6].
std::vector<std::string> stat_fields(proc::Pid pid) {
    auto stat = read_text(fmt::format("/proc/{}/stat", pid)).value_or("");
    std::vector<std::string> out;
    auto rp = stat.rfind(')');
    if (rp == std::string::npos) return out;
    std::istringstream in(stat.substr(rp + 1));
    for (std::string f; in >> f;)
        out.push_back(f);
    return out;
}

// "Uid:" / "Gid:" of /proc/PID/status: real, effective, saved, filesystem.
std::vector<long> id_list(proc::Pid pid, const char* key) {
    std::istringstream in(status_field(pid, key));
    std::vector<long> v;
    for (long x; in >> x;)
        v.push_back(x);
    return v;
}

// The id that 0 inside the process's user namespace is, as we see it: 0 in the initial
// namespace, and 0 too when 0 is not mapped (the kernel then uses the global root).
long ns_root(proc::Pid pid, const char* map) {
    std::ifstream f(fmt::format("/proc/{}/{}", pid, map));
    long inside, outside, count;
    while (f >> inside >> outside >> count)
        if (inside == 0) return outside;
    return 0;
}

// What we know of a process when asking why ptrace is refused.
struct Facts {
    std::vector<long> uid, gid;   // real, effective, saved, filesystem
    std::optional<bool> dumpable; // nullopt: cannot tell
    proc::Pid tracer = 0;
    std::optional<int> yama; // ptrace_scope, when Yama is present
};

// Dumpable, from the kernel's own bookkeeping (task_dump_owner): the files in /proc/PID
// belong to the process's effective uid and gid, except that when it is not dumpable
// they are given to the root of its user namespace; the directory /proc/PID itself always
// keeps the effective ids. Files root's and the directory not: not dumpable. A process
// whose effective ids are that root already looks the same either way: unknown, not a
// guess.
std::optional<bool> dumpable(proc::Pid pid) {
    struct stat dir {
    }, file{};
    if (::stat(fmt::format("/proc/{}", pid).c_str(), &dir) != 0 ||
        ::stat(fmt::format("/proc/{}/maps", pid).c_str(), &file) != 0)
        return std::nullopt;
    long ruid = ns_root(pid, "uid_map"), rgid = ns_root(pid, "gid_map");
    if (static_cast<long>(file.st_uid) != ruid || static_cast<long>(file.st_gid) != rgid)
        return true;
    if (static_cast<long>(dir.st_uid) == ruid && static_cast<long>(dir.st_gid) == rgid)
        return std::nullopt;
    return false;
}

// Why PTRACE_SEIZE was refused, from what was gathered: kernel/ptrace.c
// __ptrace_may_access (uids, dumpable), then the security modules (Yama, SELinux,
// AppArmor).
std::string ptrace_denial(const Facts& f) {
    std::vector<std::string> why;
    bool privileged = have_cap_sys_ptrace();
    long me = ::getuid(), my_gid = ::getgid();
    auto id = [](const std::vector<long>& ids, std::size_t i) {
        return i < ids.size() ? ids[i] : -1;
    };
    auto all_are = [&](const std::vector<long>& ids, long v) {
        return id(ids, 0) == v && id(ids, 1) == v && id(ids, 2) == v;
    };
    if (f.tracer != 0)
        why.push_back(
            fmt::format("it is already traced by {} ({})", f.tracer, proc::comm(f.tracer)));
    if (!privileged && !(all_are(f.uid, me) && all_are(f.gid, my_gid)))
        why.push_back(fmt::format(
            "it runs as uid {} (real, effective, saved: {} {} {}), we are uid {} without "
            "CAP_SYS_PTRACE",
            id(f.uid, 1), id(f.uid, 0), id(f.uid, 1), id(f.uid, 2), me));
    if (!privileged && f.dumpable == false)
        why.push_back("it is not dumpable (PR_SET_DUMPABLE 0, or a set-id program), which needs "
                      "CAP_SYS_PTRACE");
    if (f.yama == 3)
        why.push_back("Yama ptrace_scope is 3 (no attach at all)");
    else if (f.yama == 2 && !privileged)
        why.push_back("Yama ptrace_scope 2 needs CAP_SYS_PTRACE");
    else if (f.yama == 1 && !privileged)
        why.push_back("Yama ptrace_scope 1: only its ancestors (or a tracer it named with "
                      "PR_SET_PTRACER) may attach");
    if (why.empty()) {
        std::string lsm;
        if (read_text("/sys/fs/selinux/enforce").value_or("") == "1") lsm = "SELinux (enforcing)";
        if (read_text("/sys/module/apparmor/parameters/enabled").value_or("") == "Y")
            lsm += std::string(lsm.empty() ? "" : " or ") + "AppArmor";
        why.push_back(
            lsm.empty()
                ? "no uid, dumpable or Yama rule explains it: a security module or a container's "
                  "seccomp profile may deny ptrace"
                : "no uid, dumpable or Yama rule explains it: probably " + lsm);
    }
    std::string out;
    for (const auto& w : why)
        out += (out.empty() ? "" : "; ") + w;
    return out;
}

// The executable's ELF class and machine, from its header: the module list holds 64-bit
// ELF files only, so a 32-bit (compat) process would have no module to look at.
Check exe_arch(proc::Pid pid) {
    std::string exe = fmt::format("/proc/{}/exe", pid);
    unsigned char h[20] = {};
    int fd = ::open(exe.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return skip("process.arch",
                    fmt::format("unknown: {} cannot be opened: {}", exe, std::strerror(errno)));
    ssize_t n = ::pread(fd, h, sizeof h, 0);
    ::close(fd);
    if (n != static_cast<ssize_t>(sizeof h))
        return skip("process.arch", fmt::format("unknown: {} is shorter than an ELF header", exe));
    if (std::memcmp(h,
                    "\x7f"
                    "ELF",
                    4) != 0)
        return fail("process.arch", "the executable is not an ELF file",
                    "only ELF executables can be patched");
    std::uint16_t machine = static_cast<std::uint16_t>(h[18] | h[19] << 8);
    if (h[5] == 2) machine = static_cast<std::uint16_t>(h[18] << 8 | h[19]); // big-endian
    static const std::pair<std::uint16_t, const char*> names[] = {
        {3, "i386"}, {8, "MIPS"},    {20, "PowerPC"},  {21, "PowerPC64"}, {22, "S/390"},
        {40, "ARM"}, {62, "x86_64"}, {183, "aarch64"}, {243, "RISC-V"}};
    std::string mname = fmt::format("machine {}", machine);
    for (const auto& [code, label] : names)
        if (code == machine) mname = label;
    bool is64 = h[4] == 2, little = h[5] == 1;
    auto arch = arch::from_elf_machine(machine);
    if (is64 && little && arch && *arch == arch::host())
        return pass("process.arch",
                    fmt::format("64-bit {} ELF, as this host", arch::name(arch::host())));
    return fail("process.arch",
                fmt::format("{}-bit {} process: not supported", is64 ? 64 : 32, mname),
                fmt::format("only 64-bit {} processes can be patched on this host",
                            arch::name(arch::host())));
}

} // namespace

std::vector<Check> process_checks(proc::Pid pid) {
    std::vector<Check> out;
    proc::Instance inst;
    try {
        inst = proc::instance(pid);
    } catch (const Error& e) {
        if (e.code() != ErrorCode::ProcessExited) {
            out.push_back(fail("process.exists", e.what(),
                               "check the PID (pidof, systemctl show -p MainPID)"));
            return out;
        }
        // Every thread has exited: a zombie until its parent reaps it (a leader that
        // exited while other threads run is alive, and instance() says so).
        out.push_back(pass("process.exists", fmt::format("process {} ({}) exists, but has exited",
                                                         pid, proc::comm(pid))));
        out.push_back(fail("process.kind",
                           "a zombie: it has exited and waits for its parent to reap it",
                           "nothing runs in it any more: check the service's running process"));
        return out;
    }
    out.push_back(pass("process.exists", fmt::format("process {} ({}), start time {}", pid,
                                                     proc::comm(pid), inst.start_time)));
    {
        // Kernel threads have PF_KTHREAD (0x00200000) in field 9 of /proc/PID/stat.
        auto st = stat_fields(pid);
        unsigned long flags = st.size() > 6 ? std::stoul(st[6]) : 0;
        if (flags & 0x00200000) {
            out.push_back(
                fail("process.kind", "a kernel thread", "kernel threads cannot be patched"));
            return out;
        }
        char buf[4096];
        ssize_t n = ::readlink(fmt::format("/proc/{}/exe", pid).c_str(), buf, sizeof buf - 1);
        if (n > 0)
            out.push_back(pass("process.kind", "user-space process, " +
                                                   std::string(buf, static_cast<std::size_t>(n))));
        else
            out.push_back(warn("process.kind",
                               fmt::format("user-space process; /proc/{}/exe is not readable: {}",
                                           pid, std::strerror(errno)),
                               "not dumpable or another user's: run as root"));
    }
    out.push_back(exe_arch(pid));
    try {
        auto maps = proc::read_maps(pid);
        auto mods = proc::modules(pid, maps);
        // The file at each module's path as the process sees it (its root, its mount
        // namespace), against the mapped one.
        bool replaced = false;
        std::vector<std::string> unread;
        for (const auto& m : mods) {
            if (m.deleted) {
                out.push_back(warn(
                    "process.replaced",
                    fmt::format("{} was replaced or removed on disk since it was mapped", m.path),
                    "a restart runs different code than the one patched now"));
                replaced = true;
                continue;
            }
            try {
                auto disk = elf::ElfFile::open(fmt::format("/proc/{}/root{}", pid, m.path));
                if (disk.build_id().value_or("") != m.build_id) {
                    out.push_back(
                        warn("process.replaced",
                             fmt::format("{} on disk has build-id {}, the mapped one {}", m.path,
                                         disk.build_id().value_or("(none)"), m.build_id),
                             "a restart runs different code than the one patched now"));
                    replaced = true;
                }
            } catch (const Error& e) {
                unread.push_back(e.what());
            }
        }
        if (!unread.empty()) {
            std::string d;
            for (const auto& u : unread)
                d += (d.empty() ? "" : "; ") + u;
            out.push_back(warn("process.replaced",
                               fmt::format("not compared with the file on disk: {}", d),
                               "run as root to read the process's files"));
        } else if (!replaced) {
            out.push_back(pass("process.replaced", "every mapped module matches its file on disk"));
        }
        proc::Memory mem(pid);
        auto recs = patch::find_records(mem, maps);
        if (recs.empty()) out.push_back(pass("process.patches", "no patches applied"));
        for (const auto& r : recs) {
            std::string d = fmt::format("patch '{}' {} ({} sites, {})", r.id,
                                        patch::state_name(r.state), r.sites.size(), r.time);
            if (r.state == patch::State::Preparing)
                out.push_back(warn("process.patches", d + ": an apply was interrupted",
                                   fmt::format("hp-apply -p {} --revert {}", pid, r.id)));
            else
                out.push_back(pass("process.patches", d));
        }
    } catch (const Error& e) {
        out.push_back(fail("process.modules", e.what(), "run as root or as the process owner"));
    }
    Facts facts;
    facts.uid = id_list(pid, "Uid");
    facts.gid = id_list(pid, "Gid");
    facts.tracer = proc::tracer_pid(pid).value_or(0);
    if (auto y = read_text("/proc/sys/kernel/yama/ptrace_scope"))
        facts.yama = std::atoi(y->c_str());
    if (facts.tracer != 0)
        out.push_back(fail("process.traced",
                           fmt::format("traced by {} ({})", facts.tracer, proc::comm(facts.tracer)),
                           "detach the debugger or strace first"));
    else
        out.push_back(pass("process.traced", "not traced"));
    facts.dumpable = dumpable(pid);
    if (!facts.dumpable)
        out.push_back(skip("process.dumpable",
                           "unknown: its effective uid and gid are root's (of its user namespace), "
                           "and root's /proc files look the same dumpable or not"));
    else if (*facts.dumpable)
        out.push_back(pass("process.dumpable", "dumpable"));
    else
        out.push_back(warn("process.dumpable",
                           "not dumpable (PR_SET_DUMPABLE 0 or a set-id program)",
                           "only root (CAP_SYS_PTRACE) can patch it"));
    try {
        // Seize and detach (Tracer's RAII): nothing is stopped, and nothing stays attached.
        ptrace::Tracer probe(pid, ptrace::Clock::now() + std::chrono::seconds(5));
        out.push_back(pass("process.ptrace",
                           "ptrace is permitted (attached and detached without stopping it)"));
    } catch (const Error& e) {
        out.push_back(
            fail("process.ptrace",
                 fmt::format("ptrace is not permitted: {} ({})", ptrace_denial(facts), e.what()),
                 "run as root, or as its owner when it is dumpable and Yama allows it"));
    }
    try {
        int mode = 0;
        for (proc::Pid tid : proc::threads(pid))
            mode = std::max(mode, ptrace::seccomp_info(pid, tid).mode);
        if (mode == 0) {
            out.push_back(pass("process.seccomp", "no seccomp filter"));
        } else if (mode == 1) {
            out.push_back(fail("process.seccomp",
                               "seccomp strict mode: only read/write/exit are allowed",
                               "such a process cannot be patched"));
        } else {
            auto page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
            auto calls = patch::injected_calls(arch::host(), patch::typical_layout(page));
            ptrace::Tracer tracer(pid, ptrace::Clock::now() + std::chrono::seconds(5));
            tracer.stop_all(ptrace::Clock::now() + std::chrono::seconds(5));
            try {
                for (const auto& th : tracer.threads())
                    ptrace::check_injection_allowed(pid, th.tid, arch::host(), calls);
                tracer.resume_all();
                out.push_back(pass("process.seccomp",
                                   "seccomp filters allow the system calls hp-apply injects"));
            } catch (const Error& e) {
                tracer.resume_all();
                out.push_back(
                    fail("process.seccomp", e.what(), "such a process cannot be patched safely"));
            }
        }
    } catch (const Error& e) {
        out.push_back(fail("process.seccomp",
                           std::string("cannot read the seccomp filters: ") + e.what(),
                           "run as root (reading filters needs CAP_SYS_ADMIN)"));
    }
    if (status_field(pid, "NoNewPrivs") == "1")
        out.push_back(pass("process.no-new-privs",
                           "no_new_privs is set (informational: it does not restrict ptrace)"));
    else
        out.push_back(pass("process.no-new-privs", "no_new_privs is not set"));
    return out;
}

namespace {

// The plan's steps as checks, in plan order. A check passes when the plan got past its
// step; the step that stopped the plan fails with the error; later ones are skipped.
struct PlanCheck {
    patch::PlanStep step;
    const char* id;
    const char* pass_detail;
    const char* hint; // when the error is that step's own "no"
};
constexpr PlanCheck kPlanChecks[] = {
    {patch::PlanStep::Package, "package.arch", "built for this host's architecture",
     "pack it for this architecture"},
    {patch::PlanStep::Process, "package.busy", "no other hp-apply is working on the process",
     "wait for the other hp-apply"},
    {patch::PlanStep::Records, "package.applied", "not applied yet",
     "hp-verify -p PID lists the patches applied"},
    {patch::PlanStep::Modules, "package.modules",
     "every target module is loaded with a matching build-id",
     "the package was built for another build of the binary"},
    {patch::PlanStep::Sites, "package.sites", "every site holds the expected bytes",
     "rebuild the package against this binary, or find what changed the code (hp-verify -p PID)"},
    {patch::PlanStep::Reach, "package.reach", "free address ranges within branch reach were found",
     "the address space near the target module is full"},
    {patch::PlanStep::Symbols, "package.symbols",
     "every symbol the payload needs resolves in the process",
     "the process must provide every symbol the patch uses"},
};

// The error codes that are a step's own "no"; any other error is package.plan.
bool own_error(patch::PlanStep step, ErrorCode code) {
    switch (step) {
    case patch::PlanStep::Package:
        return code == ErrorCode::Unsupported;
    case patch::PlanStep::Process:
        return code == ErrorCode::Busy;
    case patch::PlanStep::Records:
        return code == ErrorCode::AlreadyApplied || code == ErrorCode::Busy;
    case patch::PlanStep::Modules:
        return code == ErrorCode::BuildIdMismatch;
    case patch::PlanStep::Sites:
        return code == ErrorCode::SiteMismatch;
    case patch::PlanStep::Reach:
        return code == ErrorCode::NotEligible || code == ErrorCode::Unsupported;
    case patch::PlanStep::Symbols:
        return code == ErrorCode::NotEligible;
    case patch::PlanStep::Encoding:
        return code == ErrorCode::Unsupported;
    case patch::PlanStep::Done:
        return false;
    }
    return false;
}

std::string plan_hint(ErrorCode code) {
    switch (code) {
    case ErrorCode::Permission:
        return "run as root or as the process owner";
    case ErrorCode::NoSuchProcess:
    case ErrorCode::ProcessExited:
        return "the process exited during the check";
    case ErrorCode::BadPackage:
        return "the package is damaged: rebuild it with hp-pack";
    case ErrorCode::Unsupported:
        return "hotpatch cannot apply this package to this process";
    default:
        return "run the check again; if it persists, report it with this document";
    }
}

} // namespace

std::vector<Check> package_checks(proc::Pid pid, const package::Package& pkg,
                                  const std::string& sha, const PackageOptions& opt,
                                  const std::vector<Check>& process) {
    std::vector<Check> out;
    if (!pkg.signature) {
        if (opt.allow_unsigned)
            out.push_back(warn("package.signature", "unsigned (allowed by --allow-unsigned)", ""));
        else
            out.push_back(fail("package.signature", "unsigned",
                               "sign it (hp-pack --sign) or pass --allow-unsigned"));
    } else {
        auto dir = opt.keys_dir.empty() ? package::trusted_keys_dir() : opt.keys_dir;
        bool trusted = package::is_trusted(*pkg.signature, package::load_trusted_keys(dir));
        if (trusted)
            out.push_back(pass("package.signature",
                               fmt::format("signed by trusted key {}", pkg.signature->key_id)));
        else if (opt.allow_unsigned)
            out.push_back(warn(
                "package.signature",
                fmt::format("signed by untrusted key {} (allowed)", pkg.signature->key_id), ""));
        else
            out.push_back(
                fail("package.signature",
                     fmt::format("signed by key {}, not in {}", pkg.signature->key_id, dir),
                     "install its .pub in the trusted keys directory, or pass --allow-unsigned"));
    }
    // The plan reads the process's maps and memory: after a failed process check it
    // needs, its checks would only repeat that failure.
    static const char* const needs[] = {"process.exists", "process.kind", "process.arch",
                                        "process.modules", "process.ptrace"};
    for (const Check& c : process) {
        if (c.status != "fail" ||
            std::find(std::begin(needs), std::end(needs), c.id) == std::end(needs))
            continue;
        for (const PlanCheck& pc : kPlanChecks)
            out.push_back(skip(pc.id, fmt::format("not checked: {} failed", c.id)));
        out.push_back(skip("package.plan", fmt::format("not checked: {} failed", c.id)));
        return out;
    }
    // The apply plan is the check: exactly what hp-apply will decide, with nothing touched.
    patch::ApplyOptions ao;
    ao.pid = pid;
    ao.dry_run = true;
    ao.allow_unsigned = true;
    patch::PlanStep reached = patch::PlanStep::Package;
    ao.step = &reached;
    std::optional<Error> error;
    std::size_t sites = 0;
    try {
        sites = patch::apply(pkg, sha, ao).record.sites.size();
    } catch (const Error& e) {
        error = e;
    }
    bool own = error && own_error(reached, error->code());
    // The encoding fails only on a site another patch holds with another length.
    patch::PlanStep failed =
        reached == patch::PlanStep::Encoding ? patch::PlanStep::Sites : reached;
    for (const PlanCheck& pc : kPlanChecks) {
        if (own && pc.step == failed) {
            std::string hint = pc.hint;
            if (auto at = hint.find("PID"); at != std::string::npos)
                hint.replace(at, 3, std::to_string(pid));
            out.push_back(fail(pc.id, error->what(), hint));
        } else if (pc.step < reached) {
            out.push_back(pass(pc.id, pc.step == patch::PlanStep::Sites && !error
                                          ? fmt::format("{} site(s) hold the expected bytes", sites)
                                          : std::string(pc.pass_detail)));
        } else {
            out.push_back(skip(pc.id, "not checked: the plan stopped before it"));
        }
    }
    if (!error)
        out.push_back(pass("package.plan", "hp-apply's plan (a dry run) found nothing in the way"));
    else if (own)
        out.push_back(pass("package.plan", "the plan stopped at the failed check above"));
    else
        out.push_back(fail("package.plan",
                           fmt::format("{} (error {})", error->what(), code_name(error->code())),
                           plan_hint(error->code())));
    return out;
}

} // namespace hp::check
