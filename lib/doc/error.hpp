// The one error type of hotpatch, and the table of error codes and exit statuses
// that every tool shares (DESIGN §3).
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace hp {

enum class ErrorCode {
    // exit 1: a clean "no"; nothing was changed
    NotEligible,
    BuildIdMismatch,
    SiteMismatch,
    AlreadyApplied,
    NotApplied,
    Busy,
    Traced,
    Unsafe,
    Untrusted,
    VerifyMismatch,
    CheckFailed,
    // exit 2: usage or bad input
    Usage,
    BadPackage,
    BadInput,
    Unsupported,
    // exit 3: the environment stopped us
    Permission,
    NoSuchProcess,
    ProcessExited,
    Io,
    Internal,
};

// "not-eligible", "bad-package", ...: the spelling in JSON documents.
std::string_view code_name(ErrorCode code);
// 1, 2 or 3, per the table in DESIGN §3.
int exit_status(ErrorCode code);

// Every fallible operation in lib/ reports failure by throwing this; the tools turn it
// into the JSON error object and the exit status.
class Error : public std::runtime_error {
  public:
    Error(ErrorCode code, std::string message)
        : std::runtime_error(std::move(message)), code_(code) {}
    ErrorCode code() const { return code_; }

  private:
    ErrorCode code_;
};

} // namespace hp
