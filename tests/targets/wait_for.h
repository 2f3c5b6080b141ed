/* Shared by test victims: a bounded wait for a condition on their own state (a 1 ms poll
 * with a watchdog of `secs` seconds), never a timing check. */
#pragma once
#include <time.h>

#define WAIT_FOR(cond, secs)                                                                       \
    do {                                                                                           \
        struct timespec s_, n_;                                                                    \
        clock_gettime(CLOCK_MONOTONIC, &s_);                                                       \
        for (;;) {                                                                                 \
            if (cond) break;                                                                       \
            clock_gettime(CLOCK_MONOTONIC, &n_);                                                   \
            if (n_.tv_sec - s_.tv_sec > (secs)) break;                                             \
            struct timespec d_ = {0, 1000000};                                                     \
            nanosleep(&d_, NULL);                                                                  \
        }                                                                                          \
    } while (0)
