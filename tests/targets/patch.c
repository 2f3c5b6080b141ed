/* Replacement for victim.c's compute(): uses the victim's static scale() and static
 * counter, and libc. */
#include <string.h>

extern long calls;
long scale(long x);

static const char* volatile label = "patched"; /* volatile: strlen stays a libc call */

long compute(long x) {
    calls++;
    return scale(x) + (long)strlen(label);
}

long other_v2(long x) {
    return x - 2;
}
