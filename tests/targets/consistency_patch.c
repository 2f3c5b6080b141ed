/* Replacements for tests/targets/consistency.c. */
#include <unistd.h>

long spin_v2(long x)
{
    return x - 1;
}

long waiter_v2(int fd)
{
    char c = 0;
    if (read(fd, &c, 1) != 1) return -1;
    return c + 100;
}

long quick_v2(long x)
{
    return x + 10;
}
