/* Replacement for victim.c's compute() that calls printf, strlen and memcpy (glibc
 * IFUNCs among them), reads and writes the victim's static counter and calls its static
 * function scale(). Prints to the victim's stderr. */
#include <stdio.h>
#include <string.h>

extern long calls;
long scale(long x);

long compute(long x) {
    char buf[32];
    static const char* volatile word = "patched-by-hotpatch";
    memcpy(buf, (const char*)word, strlen((const char*)word) + 1);
    calls += 1000;
    fprintf(stderr, "compute(%ld) via %s\n", x, buf);
    return scale(x) + (long)strlen(buf);
}
