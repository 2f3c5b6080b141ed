/* Thread churn while the process is patched: a spawner thread starts about RATE short-lived
 * threads a second (paced with clock_nanosleep on an absolute clock: load generation, not
 * synchronisation). Thread number S calls compute(S) LOOPS times and records what it saw:
 *   compute(S) == S + 1        "old" (the original code)
 *   compute(S) == S + 1000000  "new" (churn_patch.c)
 *   anything else              "bad" (a garbage value: the first one is remembered)
 * A thread that saw both old and new counts as "mixed" (legal while a switch happens, but
 * never for a thread started after an apply or revert returned). Requests on stdin:
 *   "mark"        from now on, threads started after this request are counted apart
 *   "after N"     wait (at most 10 s) until N threads started after the last mark have
 *                 finished; print "after OLD NEW MIXED BAD" for those threads
 *   "stats"       print "stats STARTED FINISHED OLD NEW MIXED BAD CREATE_FAILURES" (all)
 *   "stop"        stop spawning, wait (at most 10 s) until every started thread finished,
 *                 then print "stopped STARTED FINISHED"
 *   "bad"         print "bad VALUE SEQ" for the first garbage value (or "bad none")
 * Usage: churn [RATE [LOOPS]]  (defaults 100 threads/s, 20000 calls each) */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

__attribute__((noipa)) long compute(long x) {
    return x + 1;
}

static long loops = 20000;
static atomic_long next_seq;      /* sequence number of the next thread */
static atomic_long mark_seq = -1; /* threads with seq >= mark_seq count as "after" */
static atomic_long started, finished, create_failures;
static atomic_long n_old, n_new, n_mixed, n_bad;
static atomic_long a_done, a_old, a_new, a_mixed, a_bad; /* since the last mark */
static atomic_long bad_value, bad_seq = -1;
static atomic_int stop_spawning;
static pthread_mutex_t account = PTHREAD_MUTEX_INITIALIZER; /* a mark vs a thread's tally */

static void* short_lived(void* arg) {
    long seq = (long)arg;
    int saw_old = 0, saw_new = 0, saw_bad = 0;
    for (long i = 0; i < loops; i++) {
        long r = compute(seq);
        if (r == seq + 1)
            saw_old = 1;
        else if (r == seq + 1000000)
            saw_new = 1;
        else {
            saw_bad = 1;
            long none = -1;
            if (atomic_compare_exchange_strong(&bad_seq, &none, seq)) atomic_store(&bad_value, r);
        }
    }
    pthread_mutex_lock(&account);
    int after = atomic_load(&mark_seq) >= 0 && seq >= atomic_load(&mark_seq);
    if (saw_bad) {
        atomic_fetch_add(&n_bad, 1);
        if (after) atomic_fetch_add(&a_bad, 1);
    } else if (saw_old && saw_new) {
        atomic_fetch_add(&n_mixed, 1);
        if (after) atomic_fetch_add(&a_mixed, 1);
    } else if (saw_new) {
        atomic_fetch_add(&n_new, 1);
        if (after) atomic_fetch_add(&a_new, 1);
    } else {
        atomic_fetch_add(&n_old, 1);
        if (after) atomic_fetch_add(&a_old, 1);
    }
    if (after) atomic_fetch_add(&a_done, 1);
    atomic_fetch_add(&finished, 1);
    pthread_mutex_unlock(&account);
    return NULL;
}

static void* spawner(void* arg) {
    long rate = (long)arg;
    long period_ns = 1000000000L / rate;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    while (!atomic_load(&stop_spawning)) {
        long seq = atomic_fetch_add(&next_seq, 1);
        pthread_t t;
        atomic_fetch_add(&started, 1);
        int e = pthread_create(&t, &attr, short_lived, (void*)seq);
        if (e != 0) {
            atomic_fetch_sub(&started, 1);
            atomic_fetch_add(&create_failures, 1);
        }
        next.tv_nsec += period_ns;
        while (next.tv_nsec >= 1000000000L) {
            next.tv_nsec -= 1000000000L;
            next.tv_sec++;
        }
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR) {
        }
    }
    return NULL;
}

#include "wait_for.h"

int main(int argc, char** argv) {
    long rate = argc > 1 ? atol(argv[1]) : 100;
    if (argc > 2) loops = atol(argv[2]);
    if (rate < 1 || rate > 100000 || loops < 1) return 2;
    setvbuf(stdout, NULL, _IOLBF, 0);
    pthread_t sp;
    if (pthread_create(&sp, NULL, spawner, (void*)rate) != 0) return 1;
    WAIT_FOR(atomic_load(&finished) >= 3, 10); /* the churn is under way */
    printf("ready %ld\n", rate);
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        if (strncmp(line, "mark", 4) == 0) {
            pthread_mutex_lock(&account);
            atomic_store(&a_done, 0);
            atomic_store(&a_old, 0);
            atomic_store(&a_new, 0);
            atomic_store(&a_mixed, 0);
            atomic_store(&a_bad, 0);
            atomic_store(&mark_seq, atomic_load(&next_seq));
            pthread_mutex_unlock(&account);
            printf("marked %ld\n", atomic_load(&mark_seq));
        } else if (strncmp(line, "after", 5) == 0) {
            long n = atol(line + 6);
            WAIT_FOR(atomic_load(&a_done) >= n, 10);
            printf("after %ld %ld %ld %ld\n", atomic_load(&a_old), atomic_load(&a_new),
                   atomic_load(&a_mixed), atomic_load(&a_bad));
        } else if (strncmp(line, "stats", 5) == 0) {
            printf("stats %ld %ld %ld %ld %ld %ld %ld\n", atomic_load(&started),
                   atomic_load(&finished), atomic_load(&n_old), atomic_load(&n_new),
                   atomic_load(&n_mixed), atomic_load(&n_bad), atomic_load(&create_failures));
        } else if (strncmp(line, "stop", 4) == 0) {
            atomic_store(&stop_spawning, 1);
            pthread_join(sp, NULL);
            WAIT_FOR(atomic_load(&finished) == atomic_load(&started), 10);
            printf("stopped %ld %ld\n", atomic_load(&started), atomic_load(&finished));
        } else if (strncmp(line, "bad", 3) == 0) {
            if (atomic_load(&bad_seq) < 0)
                printf("bad none\n");
            else
                printf("bad %ld %ld\n", atomic_load(&bad_value), atomic_load(&bad_seq));
        }
    }
    return 0;
}
