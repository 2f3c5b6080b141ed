// Test-only fault points (DESIGN §9): when $HOTPATCH_TEST_FAULT equals `step`, the tool
// SIGKILLs itself there, so tests can check that every prefix of an apply or a revert is
// recoverable; when $HOTPATCH_TEST_HOLD equals `step`, it waits there for a byte on
// $HOTPATCH_TEST_HOLD_FD. Steps, in the order an apply meets them: attached, in-syscall and
// after-syscall (inside every remote system call: registers set, and the call done but
// the thread not yet restored), borrowed, prepared, retry (a stop-the-world attempt found
// the process busy and resumed it), site (after each site written), first-site, applied.
// A revert, or the repair of what a killed run left: restored (after each site
// restored), unmapping (before the code is unmapped; its munmap is an in-syscall), debris
// (before the remains of a killed apply are removed). A step name may carry a count,
// `in-syscall:3`, meaning its third occurrence.
#pragma once

namespace hp {

void fault_point(const char* step);

} // namespace hp
