#include "doc/error.hpp"

namespace hp {

std::string_view code_name(ErrorCode code) {
    switch (code) {
    case ErrorCode::NotEligible:
        return "not-eligible";
    case ErrorCode::BuildIdMismatch:
        return "build-id-mismatch";
    case ErrorCode::SiteMismatch:
        return "site-mismatch";
    case ErrorCode::AlreadyApplied:
        return "already-applied";
    case ErrorCode::NotApplied:
        return "not-applied";
    case ErrorCode::Busy:
        return "busy";
    case ErrorCode::Traced:
        return "traced";
    case ErrorCode::Unsafe:
        return "unsafe";
    case ErrorCode::Untrusted:
        return "untrusted";
    case ErrorCode::VerifyMismatch:
        return "verify-mismatch";
    case ErrorCode::CheckFailed:
        return "check-failed";
    case ErrorCode::Usage:
        return "usage";
    case ErrorCode::BadPackage:
        return "bad-package";
    case ErrorCode::BadInput:
        return "bad-input";
    case ErrorCode::Unsupported:
        return "unsupported";
    case ErrorCode::Permission:
        return "permission";
    case ErrorCode::NoSuchProcess:
        return "no-such-process";
    case ErrorCode::ProcessExited:
        return "process-exited";
    case ErrorCode::Io:
        return "io";
    case ErrorCode::Internal:
        return "internal";
    }
    return "internal";
}

int exit_status(ErrorCode code) {
    switch (code) {
    case ErrorCode::NotEligible:
    case ErrorCode::BuildIdMismatch:
    case ErrorCode::SiteMismatch:
    case ErrorCode::AlreadyApplied:
    case ErrorCode::NotApplied:
    case ErrorCode::Busy:
    case ErrorCode::Traced:
    case ErrorCode::Unsafe:
    case ErrorCode::Untrusted:
    case ErrorCode::VerifyMismatch:
    case ErrorCode::CheckFailed:
        return 1;
    case ErrorCode::Usage:
    case ErrorCode::BadPackage:
    case ErrorCode::BadInput:
    case ErrorCode::Unsupported:
        return 2;
    case ErrorCode::Permission:
    case ErrorCode::NoSuchProcess:
    case ErrorCode::ProcessExited:
    case ErrorCode::Io:
    case ErrorCode::Internal:
        return 3;
    }
    return 3;
}

} // namespace hp
