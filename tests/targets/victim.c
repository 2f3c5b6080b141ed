/* A test victim: answers "compute N" requests, one per line, with compute(N).
 * Holds a static function and a static counter that only .symtab names, and a
 * compiler clone candidate, so packing has something real to resolve.
 * `victim fill-reach` first reserves every free address range within 2 GiB of its
 * executable (PROT_NONE, MAP_NORESERVE): no patch code can be placed within branch reach. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* noipa on the functions a patch replaces: with inter-procedural register allocation
 * (gcc -O2 -fipa-ra) a caller in the same file may keep values in registers the callee is
 * known not to clobber, and inter-procedural constant propagation may specialise a
 * callee for its only caller: a replacement compiled separately honours neither. */
static long calls; /* non-exported data */
#ifdef OTHER_BUILD
const char other_build[] = "another build of the victim";
#endif

__attribute__((noipa)) static long scale(long x) /* non-exported function */
{
    return x * 3;
}

__attribute__((noipa)) long compute(long x) {
    calls++;
    return x + 1;
}

__attribute__((noipa)) long other(long x) {
    return x - 1;
}

extern char __executable_start[], _end[];

/* Reserves the holes of /proc/self/maps within 2 GiB of the executable; exits 2 when one
 * cannot be reserved. */
static void fill_reach(void) {
    const uint64_t span = (uint64_t)2 << 30, min_addr = 1 << 16;
    uint64_t lo = (uint64_t)(uintptr_t)__executable_start, hi = (uint64_t)(uintptr_t)_end;
    lo = lo > span + min_addr ? lo - span : min_addr;
    hi += span;
    uint64_t starts[512], ends[512];
    int n = 0;
    char buf[512];
    FILE* f = fopen("/proc/self/maps", "r");
    if (!f) exit(2);
    while (n < 512 && fgets(buf, sizeof buf, f))
        if (sscanf(buf, "%lx-%lx", &starts[n], &ends[n]) == 2) n++;
    fclose(f);
    uint64_t at = lo;
    for (int i = 0; i <= n && at < hi; i++) {
        uint64_t next = i < n ? starts[i] : hi; /* maps is sorted by address */
        if (next > hi) next = hi;
        if (next > at && mmap((void*)(uintptr_t)at, next - at, PROT_NONE,
                              MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1,
                              0) != (void*)(uintptr_t)at) {
            perror("victim: fill-reach: mmap");
            exit(2);
        }
        if (i < n && ends[i] > at) at = ends[i];
    }
}

int main(int argc, char** argv) {
    char line[128];
    if (argc > 1 && strcmp(argv[1], "fill-reach") == 0) fill_reach();
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("ready %d\n", (int)scale(1));
    while (fgets(line, sizeof line, stdin)) {
        long n = strtol(line, NULL, 10);
        long a = compute(n), b = other(n); /* in this order, before calls is read */
        printf("%ld %ld %ld\n", a, b, calls);
    }
    return 0;
}
