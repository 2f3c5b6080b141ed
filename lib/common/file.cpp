#include "common/file.hpp"

#include "doc/error.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

namespace hp {

namespace {

struct Fd {
    int fd;
    explicit Fd(int f) : fd(f) {}
    ~Fd() {
        if (fd >= 0) ::close(fd);
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
};

Bytes read_all(int fd, const std::string& what, std::size_t limit) {
    Bytes out;
    std::uint8_t buf[65536];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            throw Error(ErrorCode::Io,
                        fmt::format("{}: read failed: {}", what, std::strerror(errno)));
        }
        if (n == 0) break;
        if (out.size() + static_cast<std::size_t>(n) > limit)
            throw Error(ErrorCode::BadInput, fmt::format("{}: larger than {} bytes", what, limit));
        out.insert(out.end(), buf, buf + n);
    }
    return out;
}

} // namespace

Bytes read_file(const std::string& path, std::size_t limit) {
    Fd f(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (f.fd < 0) {
        auto code = errno == EACCES || errno == EPERM ? ErrorCode::Permission : ErrorCode::Io;
        throw Error(code, fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
    }
    struct stat st {};
    if (::fstat(f.fd, &st) == 0 && S_ISDIR(st.st_mode))
        throw Error(ErrorCode::Io, fmt::format("{}: is a directory", path));
    return read_all(f.fd, path, limit);
}

Bytes read_stdin(std::size_t limit) {
    return read_all(0, "<stdin>", limit);
}

void write_file_atomic(const std::string& path, ByteView data, unsigned mode) {
    std::string tmp = path + ".tmp." + std::to_string(::getpid());
    Fd f(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
    if (f.fd < 0)
        throw Error(ErrorCode::Io, fmt::format("{}: cannot create: {}", tmp, std::strerror(errno)));
    std::size_t done = 0;
    while (done < data.size()) {
        ssize_t n = ::write(f.fd, data.data() + done, data.size() - done);
        if (n < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            ::unlink(tmp.c_str());
            throw Error(ErrorCode::Io, fmt::format("{}: write failed: {}", tmp, std::strerror(e)));
        }
        done += static_cast<std::size_t>(n);
    }
    ::fchmod(f.fd, mode);
    if (::fsync(f.fd) != 0 || ::rename(tmp.c_str(), path.c_str()) != 0) {
        int e = errno;
        ::unlink(tmp.c_str());
        throw Error(ErrorCode::Io, fmt::format("{}: cannot write: {}", path, std::strerror(e)));
    }
}

} // namespace hp
