/* Load generator for rt_signals.c: queues SIGRTMIN to process PID at RATE signals a second
 * (default 1000) with sigqueue(), si_value 1, 2, 3, ... Pacing is clock_nanosleep on an
 * absolute clock (load generation, not synchronisation). A full queue (EAGAIN) is retried
 * with the same value, so the values that were sent are exactly 1..SENT. Requests on stdin:
 *   "count"  print "count SENT"
 *   "stop"   stop sending and print "sent SENT ERRNO" (ERRNO 0, or why sigqueue failed)
 * Usage: rt_sender PID [RATE] */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static pid_t target;
static long period_ns;
static atomic_long sent;
static atomic_int stop, failure;

static void* sender(void* arg) {
    (void)arg;
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    while (!atomic_load(&stop)) {
        union sigval v = {.sival_int = (int)(atomic_load(&sent) + 1)};
        if (sigqueue(target, SIGRTMIN, v) == 0) {
            atomic_fetch_add(&sent, 1);
        } else if (errno != EAGAIN) {
            atomic_store(&failure, errno);
            break;
        }
        next.tv_nsec += period_ns;
        while (next.tv_nsec >= 1000000000L) {
            next.tv_nsec -= 1000000000L;
            next.tv_sec++;
        }
        /* Behind by more than 100 periods (descheduled): do not burst to catch up. */
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((now.tv_sec - next.tv_sec) * 1000000000L + (now.tv_nsec - next.tv_nsec) >
            100 * period_ns)
            next = now;
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR) {
        }
    }
    return NULL;
}

int main(int argc, char** argv) {
    if (argc < 2) return 2;
    target = (pid_t)atol(argv[1]);
    long rate = argc > 2 ? atol(argv[2]) : 1000;
    if (target <= 0 || rate < 1 || rate > 1000000) return 2;
    period_ns = 1000000000L / rate;
    setvbuf(stdout, NULL, _IOLBF, 0);
    pthread_t t;
    if (pthread_create(&t, NULL, sender, NULL) != 0) return 1;
    printf("ready\n");
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        if (strncmp(line, "count", 5) == 0) {
            printf("count %ld\n", atomic_load(&sent));
        } else if (strncmp(line, "stop", 4) == 0) {
            atomic_store(&stop, 1);
            pthread_join(t, NULL);
            printf("sent %ld %d\n", atomic_load(&sent), atomic_load(&failure));
        }
    }
    return 0;
}
