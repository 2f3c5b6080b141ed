#include "common/fault.hpp"

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <unistd.h>

namespace hp {

namespace {

// Whether $VAR names this occurrence of `step` ("step" or "step:N").
bool selected(const char* var, const char* step, unsigned occurrence) {
    const char* want = std::getenv(var);
    if (want == nullptr) return false;
    std::string w(want);
    auto colon = w.find(':');
    unsigned n = 1;
    if (colon != std::string::npos) {
        n = static_cast<unsigned>(std::strtoul(w.c_str() + colon + 1, nullptr, 10));
        w.resize(colon);
    }
    return w == step && n == occurrence;
}

} // namespace

void fault_point(const char* step) {
    if (std::getenv("HOTPATCH_TEST_FAULT") == nullptr &&
        std::getenv("HOTPATCH_TEST_HOLD") == nullptr)
        return;
    static std::map<std::string, unsigned> seen;
    unsigned occurrence = ++seen[step];
    if (selected("HOTPATCH_TEST_FAULT", step, occurrence)) ::raise(SIGKILL);
    // HOTPATCH_TEST_HOLD=STEP: announce the step on stderr and wait until one byte can be
    // read from the descriptor $HOTPATCH_TEST_HOLD_FD (default 0), so a test can act on the
    // target at an exact point (kill it, signal it) without sleeping.
    if (selected("HOTPATCH_TEST_HOLD", step, occurrence)) {
        const char* fd_text = std::getenv("HOTPATCH_TEST_HOLD_FD");
        int fd = fd_text != nullptr ? std::atoi(fd_text) : 0;
        std::fprintf(stderr, "hp: test: holding at %s\n", step);
        std::fflush(stderr);
        char c;
        while (::read(fd, &c, 1) < 0 && errno == EINTR) {
        }
    }
}

} // namespace hp
