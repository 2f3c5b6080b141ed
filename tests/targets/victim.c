/* A test victim: answers "compute N" requests, one per line, with compute(N).
 * Holds a static function and a static counter that only .symtab names, and a
 * compiler clone candidate, so packing has something real to resolve. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

__attribute__((noipa)) long compute(long x)
{
    calls++;
    return x + 1;
}

__attribute__((noipa)) long other(long x)
{
    return x - 1;
}

int main(void)
{
    char line[128];
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("ready %d\n", (int)scale(1));
    while (fgets(line, sizeof line, stdin)) {
        long n = strtol(line, NULL, 10);
        long a = compute(n), b = other(n); /* in this order, before calls is read */
        printf("%ld %ld %ld\n", a, b, calls);
    }
    return 0;
}
