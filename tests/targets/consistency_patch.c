/* Replacements for tests/targets/consistency.c. */
#include <unistd.h>

long spin_v2(long x) {
    return x - 1;
}

long waiter_v2(int fd) {
    char c = 0;
    if (read(fd, &c, 1) != 1) return -1;
    return c + 100;
}

long deep_waiter_v2(int fd) {
    char c = 0;
    if (read(fd, &c, 1) != 1) return -1;
    return (c + 100) * 2;
}

long alt_waiter_v2(void) {
    return 2000;
}

long quick_v2(long x) {
    return x + 10;
}
