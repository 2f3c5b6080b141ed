#include "patch/lock.hpp"

#include "doc/error.hpp"

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace hp::patch {

namespace {
std::string lock_dir() {
    if (const char* d = std::getenv("HOTPATCH_LOCK_DIR"); d && *d) return d;
    // /run is root's; others (patching their own processes) use a per-user directory.
    if (::geteuid() == 0) return "/run/hotpatch";
    return fmt::format("/tmp/hotpatch-{}", ::geteuid());
}
} // namespace

InstanceLock::InstanceLock(const proc::Instance& inst) {
    std::string dir = lock_dir();
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
        throw Error(ErrorCode::Io, fmt::format("{}: cannot create the lock directory: {}", dir, std::strerror(errno)));
    struct stat dst {};
    if (::lstat(dir.c_str(), &dst) != 0 || !S_ISDIR(dst.st_mode) || dst.st_uid != ::geteuid() ||
        (dst.st_mode & 022) != 0)
        throw Error(ErrorCode::Permission,
                    fmt::format("{}: the lock directory must be a directory owned by uid {} and writable only by it",
                                dir, ::geteuid()));
    path_ = fmt::format("{}/{}-{}.lock", dir, inst.pid, inst.start_time);
    // The holder unlinks the file when done; a peer that opened the old file before the
    // unlink would lock an orphan, so after locking check that the path still names our
    // file, and start over if not.
    for (int tries = 0; tries < 100; ++tries) {
        fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd_ < 0) throw Error(ErrorCode::Io, fmt::format("{}: cannot open: {}", path_, std::strerror(errno)));
        if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
            int e = errno;
            ::close(fd_);
            fd_ = -1;
            if (e == EWOULDBLOCK)
                throw Error(ErrorCode::Busy,
                            fmt::format("another hp-apply is working on process {} (lock {})", inst.pid, path_));
            throw Error(ErrorCode::Io, fmt::format("{}: cannot lock: {}", path_, std::strerror(e)));
        }
        struct stat a {}, b {};
        if (::fstat(fd_, &a) == 0 && ::stat(path_.c_str(), &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev)
            return;
        ::close(fd_);
        fd_ = -1;
    }
    throw Error(ErrorCode::Busy, fmt::format("could not take the lock {} (it kept changing)", path_));
}

InstanceLock::~InstanceLock() {
    if (fd_ < 0) return;
    // Unlink while still holding the lock, so a waiting peer never locks a removed file
    // that a third process would not see.
    ::unlink(path_.c_str());
    ::close(fd_);
}


} // namespace hp::patch
