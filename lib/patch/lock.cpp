#include "patch/lock.hpp"

#include "doc/error.hpp"

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <fmt/format.h>
#include <optional>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace hp::patch {

// The lock is the abstract unix socket name "hotpatch-PID-STARTTIME", bound for as long
// as the lock is held. Why a socket and not a file:
// - Every caller must take the same lock whoever it runs as: root and the process's owner
//   may both patch it. Abstract names have no owner and no permissions and are one
//   namespace per network namespace, so root and any user agree on the key. Lock files
//   need a directory both can use: /run is root's, and a per-user directory that root
//   also writes to lets that user plant files root then opens.
// - The kernel frees the name when the holder exits, SIGKILL included: nothing stale is
//   left behind and there is no directory to create, own or clean up.
// - bind() is atomic: of two callers exactly one gets the name.
// The cost: the name is visible to every process of the network namespace, and any of
// them could bind it first. So the holder listens, and a loser connects to learn the
// holder's PID, uid and name (SO_PEERCRED) and names it: a squatter is shown, not taken
// for an hp-apply. Callers in different network namespaces do not see each other's
// locks (nor, in different PID namespaces, the same PID); two hp-apply on one process
// from different namespaces are still kept apart by ptrace, whose loser is told `busy`
// too (Tracer: an existing tracer named hp-apply).
namespace {
socklen_t abstract_address(const proc::Instance& inst, sockaddr_un& a, std::string& shown) {
    std::string name = fmt::format("hotpatch-{}-{}", inst.pid, inst.start_time);
    shown = "@" + name;
    a = {};
    a.sun_family = AF_UNIX;
    // sun_path[0] = 0 makes it abstract; the name is the bytes after it, no terminator.
    std::memcpy(a.sun_path + 1, name.data(), name.size());
    return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
}

struct Holder {
    pid_t pid = 0;
    uid_t uid = 0;
    std::string comm;
};
// Who holds the name (SO_PEERCRED of a connection to it); nullopt when it cannot be told.
std::optional<Holder> holder(const sockaddr_un& a, socklen_t len) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return std::nullopt;
    std::optional<Holder> h;
    ucred cred{};
    socklen_t cl = sizeof cred;
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&a), len) == 0 &&
        ::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0 && cred.pid > 0)
        h = Holder{cred.pid, cred.uid, proc::comm(cred.pid)};
    ::close(fd);
    return h;
}
} // namespace

InstanceLock::InstanceLock(const proc::Instance& inst) {
    sockaddr_un a{};
    socklen_t len = abstract_address(inst, a, name_);
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0)
        throw Error(ErrorCode::Io,
                    fmt::format("cannot create the lock socket: {}", std::strerror(errno)));
    if (::bind(fd_, reinterpret_cast<const sockaddr*>(&a), len) == 0) {
        // Listening only lets a loser ask who we are; nobody is ever accepted.
        (void)::listen(fd_, 16);
        return;
    }
    int e = errno;
    ::close(fd_);
    fd_ = -1;
    if (e != EADDRINUSE)
        throw Error(ErrorCode::Io,
                    fmt::format("cannot take the lock {}: {}", name_, std::strerror(e)));
    auto h = holder(a, len);
    if (!h)
        throw Error(
            ErrorCode::Busy,
            fmt::format("another hp-apply is working on process {} (lock {})", inst.pid, name_));
    // hp-check plans under the same lock.
    if (h->comm != "hp-apply" && h->comm != "hp-check")
        throw Error(
            ErrorCode::Busy,
            fmt::format("the lock {} of process {} is held by pid {} ({}, uid {}), which is not "
                        "hp-apply",
                        name_, inst.pid, h->pid, h->comm, h->uid));
    throw Error(
        ErrorCode::Busy,
        fmt::format("another {} is working on process {}: pid {} (uid {}) holds the lock {}",
                    h->comm, inst.pid, h->pid, h->uid, name_));
}

InstanceLock::~InstanceLock() {
    if (fd_ >= 0) ::close(fd_);
}

} // namespace hp::patch
