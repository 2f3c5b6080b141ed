/* A victim under PR_SET_MDWE (memory-deny-write-execute, Linux >= 6.3): it asks for
 * PR_MDWE_REFUSE_EXEC_GAIN before printing ready, so from then on no mapping of the
 * process may gain PROT_EXEC (mprotect) or be writable and executable at once. It proves
 * the setting took effect by trying both itself. Prints
 *   "ready mdwe FLAGS MPROTECT_EXEC MMAP_WX"
 * with FLAGS from PR_GET_MDWE and each attempt's outcome ("refused" or "allowed"), or
 * "ready nomdwe EINVAL" when the kernel lacks PR_SET_MDWE (another error: its text).
 * Requests on stdin:
 *   "compute N"  print compute(N)
 *   "mdwe"       print "mdwe FLAGS MPROTECT_EXEC MMAP_WX" again (is it still in force?) */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#ifndef PR_SET_MDWE
#define PR_SET_MDWE 65
#endif
#ifndef PR_GET_MDWE
#define PR_GET_MDWE 66
#endif
#ifndef PR_MDWE_REFUSE_EXEC_GAIN
#define PR_MDWE_REFUSE_EXEC_GAIN 1
#endif

__attribute__((noipa)) long compute(long x) {
    return x * 2 + 1;
}

/* An anonymous read-write page made executable: MDWE refuses with EACCES. */
static const char* try_mprotect_exec(void) {
    long pg = sysconf(_SC_PAGESIZE);
    void* p = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return "mmap-failed";
    int r = mprotect(p, pg, PROT_READ | PROT_EXEC);
    int e = errno;
    munmap(p, pg);
    return r == 0 ? "allowed" : e == EACCES ? "refused" : "error";
}

/* A new writable and executable mapping: MDWE refuses with EACCES. */
static const char* try_mmap_wx(void) {
    long pg = sysconf(_SC_PAGESIZE);
    void* p =
        mmap(NULL, pg, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p != MAP_FAILED) {
        munmap(p, pg);
        return "allowed";
    }
    return errno == EACCES ? "refused" : "error";
}

static void report(const char* word) {
    long flags = prctl(PR_GET_MDWE, 0, 0, 0, 0);
    const char* mp = try_mprotect_exec();
    const char* wx = try_mmap_wx();
    printf("%s %ld %s %s\n", word, flags, mp, wx);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0) {
        int e = errno;
        printf("ready nomdwe %s\n", e == EINVAL ? "EINVAL" : strerror(e));
    } else {
        report("ready mdwe");
    }
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        if (strncmp(line, "compute", 7) == 0)
            printf("%ld\n", compute(atol(line + 8)));
        else if (strncmp(line, "mdwe", 4) == 0)
            report("mdwe");
    }
    return 0;
}
