// /proc/PID readers and /proc/PID/mem access.
//
// Why /proc and not ptrace peeks: /proc/PID/mem moves any number of bytes in one pread /
// pwrite (the kernel walks the target's page tables with FOLL_FORCE, so read-only code pages
// can be written as a debugger does), and it needs no stopped thread. The kernel's mem_rw()
// returns 0 once the target's mm is gone (exited, or a zombie), and -EIO for an address
// that no mapping covers; both are told apart below so that a vanished process is reported
// as such and not as an I/O error.
#include "proc/process.hpp"

#include "doc/error.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

namespace hp::proc {

namespace {

// An owned file descriptor.
class Fd {
  public:
    explicit Fd(int fd = -1) : fd_(fd) {}
    ~Fd() { reset(); }
    Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
    Fd& operator=(Fd&& o) noexcept {
        if (this != &o) {
            reset();
            fd_ = o.fd_;
            o.fd_ = -1;
        }
        return *this;
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    int get() const { return fd_; }
    int release() {
        int f = fd_;
        fd_ = -1;
        return f;
    }
    explicit operator bool() const { return fd_ >= 0; }
    void reset() {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }

  private:
    int fd_;
};

std::string pid_dir(Pid pid) {
    return fmt::format("/proc/{}", pid);
}

// Reads a whole /proc file (their size is not known in advance: st_size is 0). Returns
// false with errno set when the file cannot be opened or read.
bool slurp(const std::string& path, std::string& out) {
    Fd f(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!f) return false;
    out.clear();
    char buf[16384];
    for (;;) {
        ssize_t n = ::read(f.get(), buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        if (n == 0) return true;
        out.append(buf, static_cast<std::size_t>(n));
    }
}

// The fields of a /proc/.../stat line after the comm, starting with field 3 (state). The
// comm is "(name)" and the name may itself hold spaces and ')', so the fields start after
// the LAST ')' of the line (proc(5)).
std::vector<std::string_view> stat_fields(std::string_view line) {
    std::vector<std::string_view> out;
    auto close = line.rfind(')');
    if (close == std::string_view::npos) return out;
    std::string_view rest = line.substr(close + 1);
    std::size_t i = 0;
    while (i < rest.size()) {
        while (i < rest.size() && (rest[i] == ' ' || rest[i] == '\n'))
            ++i;
        std::size_t j = i;
        while (j < rest.size() && rest[j] != ' ' && rest[j] != '\n')
            ++j;
        if (j > i) out.push_back(rest.substr(i, j - i));
        i = j;
    }
    return out;
}

std::optional<std::uint64_t> parse_u64(std::string_view s, int base = 10) {
    if (s.empty()) return std::nullopt;
    std::uint64_t v = 0;
    for (char c : s) {
        unsigned d;
        if (c >= '0' && c <= '9')
            d = static_cast<unsigned>(c - '0');
        else if (base == 16 && c >= 'a' && c <= 'f')
            d = static_cast<unsigned>(c - 'a' + 10);
        else if (base == 16 && c >= 'A' && c <= 'F')
            d = static_cast<unsigned>(c - 'A' + 10);
        else
            return std::nullopt;
        if (v > (UINT64_MAX - d) / static_cast<unsigned>(base)) return std::nullopt;
        v = v * static_cast<unsigned>(base) + d;
    }
    return v;
}

std::optional<long> parse_long(std::string_view s) {
    bool neg = !s.empty() && s[0] == '-';
    auto v = parse_u64(neg ? s.substr(1) : s);
    if (!v || *v > static_cast<std::uint64_t>(INT64_MAX)) return std::nullopt;
    return neg ? -static_cast<long>(*v) : static_cast<long>(*v);
}

bool is_dead_state(std::string_view st) {
    return st == "Z" || st == "X";
}

// The /proc directory that shows the process's memory (maps, mem, exe, root), or nullopt
// when no thread is alive. Normally /proc/PID; but once the main thread has exited with
// pthread_exit() while others run, the leader is a zombie without an mm (its maps are
// empty, its mem reads nothing): a live thread's /proc/PID/task/TID has the same view.
std::optional<std::string> live_dir(Pid pid) {
    std::string s;
    if (!slurp(pid_dir(pid) + "/stat", s)) return std::nullopt;
    auto f = stat_fields(s);
    if (!f.empty() && !is_dead_state(f[0])) return pid_dir(pid);
    std::string task = pid_dir(pid) + "/task";
    DIR* d = ::opendir(task.c_str());
    if (d == nullptr) return std::nullopt;
    std::optional<std::string> out;
    while (dirent* e = ::readdir(d)) {
        if (e->d_name[0] == '.') continue;
        std::string dir = task + "/" + e->d_name;
        if (slurp(dir + "/stat", s) && !stat_fields(s).empty() &&
            !is_dead_state(stat_fields(s)[0])) {
            out = dir;
            break;
        }
    }
    ::closedir(d);
    return out;
}

std::string mm_dir(Pid pid) {
    return live_dir(pid).value_or(pid_dir(pid));
}

// Whether the process is gone (or has no live thread left): then an EIO / short transfer
// on its memory means "it exited", not "bad address".
bool process_gone(Pid pid) {
    return !live_dir(pid);
}

constexpr std::uint32_t kPtLoad = 1, kPtNote = 4;
constexpr std::uint32_t kNtGnuBuildId = 3;
// Bounds on what a header may make us read: real files have a few dozen program headers and
// notes of a few hundred bytes.
constexpr std::size_t kMaxPhdrBytes = 64 * 1024, kMaxNoteBytes = 64 * 1024;

bool pread_all(int fd, void* buf, std::size_t len, std::uint64_t off) {
    auto* p = static_cast<std::uint8_t*>(buf);
    std::size_t done = 0;
    while (done < len) {
        ssize_t n = ::pread(fd, p + done, len - done, static_cast<off_t>(off + done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        done += static_cast<std::size_t>(n);
    }
    return true;
}

// Build-id from the notes of one PT_NOTE segment; the name and descriptor are padded to the
// segment's alignment (4, or 8 for the .note.gnu.property segment).
std::optional<std::string> build_id_in(ByteView d, std::uint64_t align) {
    std::uint64_t a = align == 8 ? 8 : 4;
    std::uint64_t off = 0;
    while (off + 12 <= d.size()) {
        std::uint64_t namesz = load_le32(d.data() + off), descsz = load_le32(d.data() + off + 4);
        std::uint32_t type = load_le32(d.data() + off + 8);
        std::uint64_t name_off = off + 12;
        std::uint64_t desc_off = name_off + ((namesz + a - 1) & ~(a - 1));
        if (desc_off > d.size() || descsz > d.size() - desc_off) return std::nullopt;
        if (type == kNtGnuBuildId && namesz == 4 &&
            std::memcmp(d.data() + name_off, "GNU", 4) == 0 && descsz > 0 && descsz <= 64)
            return to_hex(d.subspan(desc_off, descsz));
        off = desc_off + ((descsz + a - 1) & ~(a - 1));
    }
    return std::nullopt;
}

struct Headers {
    std::uint64_t first_load_vaddr = 0;
    std::string build_id;
};

// Reads the ELF header, the program headers and the PT_NOTE segments only: a few hundred
// bytes per module, so listing the ~20 modules of a typical process stays in the
// sub-millisecond range (reading whole libraries would cost tens of milliseconds).
std::optional<Headers> read_headers(int fd) {
    std::uint8_t eh[64];
    if (!pread_all(fd, eh, sizeof eh, 0)) return std::nullopt;
    // 64-bit little-endian ELF only: both architectures we patch are.
    if (std::memcmp(eh,
                    "\x7f"
                    "ELF",
                    4) != 0 ||
        eh[4] != 2 || eh[5] != 1)
        return std::nullopt;
    std::uint64_t phoff = load_le64(eh + 0x20);
    std::uint64_t phentsize = load_le16(eh + 0x36);
    std::uint64_t phnum = load_le16(eh + 0x38);
    if (phnum == 0xffff) { // PN_XNUM: the real count is sh_info of section header 0
        std::uint8_t sh0[64];
        std::uint64_t shoff = load_le64(eh + 0x28);
        if (shoff == 0 || !pread_all(fd, sh0, sizeof sh0, shoff)) return std::nullopt;
        phnum = load_le32(sh0 + 0x2c);
    }
    if (phentsize < 56 || phnum == 0 || phnum * phentsize > kMaxPhdrBytes) return std::nullopt;
    Bytes ph(phnum * phentsize);
    if (!pread_all(fd, ph.data(), ph.size(), phoff)) return std::nullopt;
    Headers h;
    bool have_load = false;
    for (std::uint64_t i = 0; i < phnum; ++i) {
        const std::uint8_t* p = ph.data() + i * phentsize;
        std::uint32_t type = load_le32(p);
        if (type == kPtLoad && !have_load) {
            h.first_load_vaddr = load_le64(p + 16);
            have_load = true;
        } else if (type == kPtNote && h.build_id.empty()) {
            std::uint64_t off = load_le64(p + 8), filesz = load_le64(p + 32),
                          align = load_le64(p + 48);
            if (filesz == 0 || filesz > kMaxNoteBytes) continue;
            Bytes notes(filesz);
            if (!pread_all(fd, notes.data(), notes.size(), off)) continue;
            if (auto id = build_id_in(notes, align)) h.build_id = *id;
        }
    }
    if (!have_load) return std::nullopt;
    return h;
}

bool is_deleted(const std::string& path) {
    static constexpr std::string_view kSuffix = " (deleted)";
    return path.size() >= kSuffix.size() &&
           path.compare(path.size() - kSuffix.size(), kSuffix.size(), kSuffix) == 0;
}

// Opens the file behind a mapping. /proc/PID/map_files gives the file that is really mapped
// (after a package upgrade the path names a different build) but opening it needs
// CAP_SYS_ADMIN (or CAP_CHECKPOINT_RESTORE) in the initial user namespace. Without it, the
// path through /proc/PID/root is used, and only when it still names the very same inode, so
// the answer is the same file or nothing. (map_files exists only at the process level: with
// a zombie main thread it fails with ESRCH and the path is the way too.)
Fd open_mapped(Pid pid, const Mapping& m) {
    std::string mf = fmt::format("/proc/{}/map_files/{:x}-{:x}", pid, m.start, m.end);
    Fd f(::open(mf.c_str(), O_RDONLY | O_CLOEXEC));
    if (f || (errno != EPERM && errno != EACCES && errno != ENOENT && errno != ESRCH) ||
        is_deleted(m.path) || m.inode == 0)
        return f;
    Fd g(::open((mm_dir(pid) + "/root" + m.path).c_str(), O_RDONLY | O_CLOEXEC));
    struct stat st {};
    if (!g) return g;
    if (::fstat(g.get(), &st) != 0 || st.st_ino != m.inode) {
        errno = ESTALE; // the path now names another file
        return Fd();
    }
    // dev is "major:minor" in hex.
    auto colon = m.dev.find(':');
    if (colon != std::string::npos) {
        auto ma = parse_u64(std::string_view(m.dev).substr(0, colon), 16);
        auto mi = parse_u64(std::string_view(m.dev).substr(colon + 1), 16);
        if (ma && mi && st.st_dev != makedev(*ma, *mi)) {
            errno = ESTALE;
            return Fd();
        }
    }
    return g;
}

} // namespace

Instance instance(Pid pid) {
    std::string s;
    if (pid <= 0 || !slurp(pid_dir(pid) + "/stat", s))
        throw Error(ErrorCode::NoSuchProcess, fmt::format("no process {}", pid));
    auto f = stat_fields(s);
    // Field 22 (starttime) is the 20th after the comm; f[0] is field 3.
    if (f.size() < 20)
        throw Error(ErrorCode::Internal, fmt::format("/proc/{}/stat: unexpected format", pid));
    if (is_dead_state(f[0]) && process_gone(pid))
        throw Error(ErrorCode::ProcessExited, fmt::format("process {} exited (zombie)", pid));
    auto st = parse_u64(f[19]);
    if (!st) throw Error(ErrorCode::Internal, fmt::format("/proc/{}/stat: bad start time", pid));
    return Instance{pid, *st};
}

MappingFile::MappingFile(Pid pid, const Mapping& m) : size_(m.end - m.start), offset_(m.offset) {
    if (m.inode == 0 || m.path.empty() || m.path[0] != '/') return;
    fd_ = open_mapped(pid, m).release();
}

MappingFile::~MappingFile() {
    if (fd_ >= 0) ::close(fd_);
}

bool MappingFile::read(std::uint64_t from, std::size_t len, Bytes& out) const {
    if (fd_ < 0 || from > size_) return false;
    out.resize(static_cast<std::size_t>(std::min<std::uint64_t>(len, size_ - from)));
    std::size_t got = 0;
    while (got < out.size()) {
        ssize_t n = ::pread(fd_, out.data() + got, out.size() - got,
                            static_cast<off_t>(offset_ + from + got));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return false;
        if (n == 0) break; // past the end of the file (the mapping's tail)
        got += static_cast<std::size_t>(n);
    }
    out.resize(got);
    return true;
}

std::optional<Bytes> read_mapping_file(Pid pid, const Mapping& m, std::uint64_t from,
                                       std::size_t len) {
    MappingFile f(pid, m);
    Bytes out;
    if (!f.ok() || !f.read(from, len, out)) return std::nullopt;
    return out;
}

std::vector<Mapping> read_maps(Pid pid) {
    std::string s;
    if (!slurp(mm_dir(pid) + "/maps", s)) {
        if (errno == ENOENT || errno == ESRCH)
            throw Error(ErrorCode::NoSuchProcess, fmt::format("no process {}", pid));
        auto code = errno == EACCES || errno == EPERM ? ErrorCode::Permission : ErrorCode::Io;
        throw Error(code, fmt::format("cannot read /proc/{}/maps: {}", pid, std::strerror(errno)));
    }
    std::vector<Mapping> out;
    std::string_view all(s);
    while (!all.empty()) {
        auto nl = all.find('\n');
        std::string_view line = all.substr(0, nl);
        all = nl == std::string_view::npos ? std::string_view() : all.substr(nl + 1);
        if (line.empty()) continue;
        // "start-end perms offset dev inode<spaces>path": five space-separated fields, then
        // the path, which may hold spaces (and ends in " (deleted)" for a removed file).
        std::string_view fields[5];
        std::size_t pos = 0;
        bool ok = true;
        for (auto& fld : fields) {
            while (pos < line.size() && line[pos] == ' ')
                ++pos;
            std::size_t e = line.find(' ', pos);
            if (e == std::string_view::npos) e = line.size();
            if (e == pos) {
                ok = false;
                break;
            }
            fld = line.substr(pos, e - pos);
            pos = e;
        }
        auto dash = fields[0].find('-');
        if (!ok || dash == std::string_view::npos)
            throw Error(ErrorCode::Internal,
                        fmt::format("/proc/{}/maps: cannot parse \"{}\"", pid, line));
        while (pos < line.size() && line[pos] == ' ')
            ++pos;
        Mapping m;
        auto start = parse_u64(fields[0].substr(0, dash), 16),
             end = parse_u64(fields[0].substr(dash + 1), 16);
        auto off = parse_u64(fields[2], 16), inode = parse_u64(fields[4]);
        if (!start || !end || !off || !inode)
            throw Error(ErrorCode::Internal,
                        fmt::format("/proc/{}/maps: cannot parse \"{}\"", pid, line));
        m.start = *start;
        m.end = *end;
        m.offset = *off;
        m.perms = std::string(fields[1]);
        m.dev = std::string(fields[3]);
        m.inode = *inode;
        m.path = std::string(line.substr(pos));
        out.push_back(std::move(m));
    }
    return out;
}

std::vector<Pid> threads(Pid pid) {
    std::string dir = pid_dir(pid) + "/task";
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) throw Error(ErrorCode::NoSuchProcess, fmt::format("no process {}", pid));
    std::vector<Pid> out;
    while (dirent* e = ::readdir(d)) {
        if (auto v = parse_u64(e->d_name); v && *v > 0 && *v <= INT32_MAX)
            out.push_back(static_cast<Pid>(*v));
    }
    ::closedir(d);
    std::sort(out.begin(), out.end());
    return out;
}

char thread_state(Pid pid, Pid tid) {
    std::string s;
    if (!slurp(fmt::format("/proc/{}/task/{}/stat", pid, tid), s)) return 'X';
    auto f = stat_fields(s);
    return f.empty() || f[0].empty() ? 'X' : f[0][0];
}

std::optional<long> thread_syscall(Pid pid, Pid tid) {
    std::string s;
    if (!slurp(fmt::format("/proc/{}/task/{}/syscall", pid, tid), s)) return std::nullopt;
    auto sp = s.find_first_of(" \n");
    return parse_long(std::string_view(s).substr(0, sp)); // "running" -> nullopt
}

std::string comm(Pid pid) {
    std::string s;
    if (!slurp(pid_dir(pid) + "/comm", s)) return "?";
    if (!s.empty() && s.back() == '\n') s.pop_back();
    return s;
}

std::optional<Pid> tracer_pid(Pid pid, Pid tid) {
    std::string s;
    if (!slurp(fmt::format("/proc/{}/task/{}/status", pid, tid == 0 ? pid : tid), s))
        return std::nullopt;
    auto at = s.find("\nTracerPid:");
    if (at == std::string::npos) return std::nullopt;
    std::size_t i = at + 11;
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t'))
        ++i;
    std::size_t j = i;
    while (j < s.size() && s[j] >= '0' && s[j] <= '9')
        ++j;
    auto v = parse_u64(std::string_view(s).substr(i, j - i));
    if (!v) return std::nullopt;
    return static_cast<Pid>(*v);
}

// ---- Memory ----

Memory::Memory(Pid pid, bool writable) : pid_(pid) {
    std::string path = mm_dir(pid) + "/mem";
    fd_ = ::open(path.c_str(), (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (fd_ < 0) {
        int e = errno;
        if (e == ENOENT || e == ESRCH)
            throw Error(ErrorCode::NoSuchProcess, fmt::format("no process {}", pid));
        auto code = e == EACCES || e == EPERM ? ErrorCode::Permission : ErrorCode::Io;
        throw Error(code, fmt::format("cannot open {}: {}", path, std::strerror(e)));
    }
}

Memory::~Memory() {
    if (fd_ >= 0) ::close(fd_);
}

bool Memory::read_fallible(std::uint64_t addr, std::uint8_t* out, std::size_t len) const {
    std::size_t done = 0;
    while (done < len) {
        // /proc/PID/mem offsets are addresses; the upper half needs the full 64-bit off_t,
        // which pread accepts (the kernel's mem_lseek/FMODE_UNSIGNED_OFFSET allow it).
        ssize_t n = ::pread(fd_, out + done, len - done, static_cast<off_t>(addr + done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        done += static_cast<std::size_t>(n);
    }
    return true;
}

Bytes Memory::read(std::uint64_t addr, std::size_t len) const {
    Bytes out(len);
    std::size_t done = 0;
    while (done < len) {
        ssize_t n = ::pread(fd_, out.data() + done, len - done, static_cast<off_t>(addr + done));
        if (n < 0 && errno == EINTR) continue;
        if (n > 0) {
            done += static_cast<std::size_t>(n);
            continue;
        }
        int e = n == 0 ? 0 : errno;
        // mem_rw() returns 0 when the mm is gone: the process exited under us.
        if (e == 0 || e == ESRCH || process_gone(pid_))
            throw Error(ErrorCode::ProcessExited, fmt::format("process {} exited", pid_));
        throw Error(ErrorCode::Io, fmt::format("cannot read {} bytes at {} in process {}: {}", len,
                                               hex_addr(addr), pid_, std::strerror(e)));
    }
    return out;
}

std::uint64_t Memory::read_u64(std::uint64_t addr) const {
    Bytes b = read(addr, 8);
    return load_le64(b.data());
}

void Memory::write(std::uint64_t addr, ByteView data) const {
    if (data.empty()) return;
    ssize_t n;
    do {
        n = ::pwrite(fd_, data.data(), data.size(), static_cast<off_t>(addr));
    } while (n < 0 && errno == EINTR);
    if (n == static_cast<ssize_t>(data.size())) return;
    int e = n < 0 ? errno : 0;
    if (e == ESRCH || (n <= 0 && process_gone(pid_)))
        throw Error(ErrorCode::ProcessExited, fmt::format("process {} exited", pid_));
    std::string why =
        n >= 0 ? fmt::format("only {} bytes written", n) : std::string(std::strerror(e));
    throw Error(ErrorCode::Io, fmt::format("cannot write {} bytes at {} in process {}: {}",
                                           data.size(), hex_addr(addr), pid_, why));
}

// ---- modules ----

std::vector<Module> modules(Pid pid, const std::vector<Mapping>& maps) {
    static const std::uint64_t page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
    std::string exe;
    {
        char buf[4096];
        ssize_t n = ::readlink((mm_dir(pid) + "/exe").c_str(), buf, sizeof buf);
        if (n > 0) exe.assign(buf, static_cast<std::size_t>(n));
    }
    // A module starts at a file mapping with offset 0 (ld.so and the kernel map the first
    // PT_LOAD, which holds the ELF header, there); later mappings of the same file with
    // a non-zero offset belong to the most recent module of that file. Keying on the file
    // (path + inode) rather than the path alone keeps two loads of one file apart
    // (dlmopen namespaces).
    struct Pending {
        Module m;
        const Mapping* first;
        std::uint64_t inode;
    };
    std::vector<Pending> found;
    for (const Mapping& mp : maps) {
        const std::string& p = mp.path;
        // Only regular files: skip anonymous memory, [vdso]/[stack]/[heap], memfd (our own
        // payloads among them), SysV shm, and device nodes (reading one could have effects).
        if (p.empty() || p[0] != '/' || mp.inode == 0 || p.rfind("/memfd:", 0) == 0 ||
            p.rfind("/dev/", 0) == 0 || p.rfind("/SYSV", 0) == 0)
            continue;
        if (mp.offset == 0) {
            Pending pd;
            pd.m.path = p;
            pd.m.start = mp.start;
            pd.m.end = mp.end;
            pd.m.map_file = fmt::format("/proc/{}/map_files/{:x}-{:x}", pid, mp.start, mp.end);
            pd.m.deleted = is_deleted(p);
            pd.first = &mp;
            pd.inode = mp.inode;
            found.push_back(std::move(pd));
            continue;
        }
        for (auto it = found.rbegin(); it != found.rend(); ++it) {
            if (it->m.path == p && it->inode == mp.inode) {
                it->m.start = std::min(it->m.start, mp.start);
                it->m.end = std::max(it->m.end, mp.end);
                break;
            }
        }
    }
    std::vector<Module> out;
    out.reserve(found.size());
    for (Pending& pd : found) {
        Fd f = open_mapped(pid, *pd.first);
        if (!f) continue; // vanished, or not readable: not a module we can describe
        auto h = read_headers(f.get());
        if (!h) continue; // not an ELF file (locale archive, fonts, data files...)
        pd.m.build_id = h->build_id;
        // The kernel and ld.so map the first PT_LOAD at its page-aligned vaddr + bias.
        pd.m.bias = pd.first->start - (h->first_load_vaddr & ~(page - 1));
        // The module's start is its offset-0 mapping: ld.so reserves the whole span there.
        pd.m.start = pd.first->start;
        out.push_back(std::move(pd.m));
    }
    // The executable first (its path is what /proc/PID/exe reads, " (deleted)" included).
    auto it = std::find_if(out.begin(), out.end(), [&](const Module& m) { return m.path == exe; });
    if (it != out.end()) std::rotate(out.begin(), it, it + 1);
    return out;
}

elf::ElfFile open_module(const Module& m) {
    // Through map_files (the file that is mapped) when we may open it; otherwise the path,
    // checked to be the same inode (see open_mapped).
    Pid pid = 0;
    std::uint64_t start = 0, end = 0;
    if (std::sscanf(m.map_file.c_str(), "/proc/%d/map_files/%lx-%lx", &pid, &start, &end) != 3)
        throw Error(ErrorCode::Internal, fmt::format("{}: not a map_files path", m.map_file));
    Mapping mp;
    mp.start = start;
    mp.end = end;
    mp.path = m.path;
    // The inode is needed only for the fallback: look it up from the live maps.
    for (const Mapping& x : read_maps(pid))
        if (x.start == start && x.end == end) {
            mp.inode = x.inode;
            mp.dev = x.dev;
        }
    Fd f = open_mapped(pid, mp);
    if (!f) {
        int e = errno;
        if (process_gone(pid))
            throw Error(ErrorCode::ProcessExited, fmt::format("process {} exited", pid));
        auto code = e == EACCES || e == EPERM ? ErrorCode::Permission : ErrorCode::Io;
        throw Error(code,
                    fmt::format("{} ({}): cannot open: {}", m.map_file, m.path, std::strerror(e)));
    }
    Bytes data;
    struct stat st {};
    if (::fstat(f.get(), &st) == 0 && st.st_size > 0)
        data.reserve(static_cast<std::size_t>(st.st_size));
    std::uint8_t buf[1 << 16];
    for (;;) {
        ssize_t n = ::read(f.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0)
            throw Error(ErrorCode::Io, fmt::format("{} ({}): read failed: {}", m.map_file, m.path,
                                                   std::strerror(errno)));
        if (n == 0) break;
        data.insert(data.end(), buf, buf + n);
    }
    // A module the process has mapped but that does not parse cannot be patched: a clean
    // "no" (exit 1), not bad user input.
    return elf::ElfFile::parse(std::move(data), m.path, ErrorCode::NotEligible);
}

} // namespace hp::proc
