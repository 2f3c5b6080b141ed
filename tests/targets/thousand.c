/* A thousand threads while the process is patched: WORKERS threads call compute() in a
 * loop, and BLOCKED threads of each of four kinds wait in a system call, each on a 64 KiB
 * stack:
 *   reader i   read() of one byte from its own pipe (it must get exactly byte(i))
 *   poller     poll() without a timeout on a shared pipe (it must return 1, POLLIN)
 *   waiter     pthread_cond_wait() (a futex) until a flag is set (it must return 0)
 *   sleeper    nanosleep(SLEEP seconds) once (it must return 0 after >= SLEEP seconds)
 * A call that the stops of hp-apply broke (EINTR, a short or wrong read, a shortened
 * sleep) is counted as bad. compute(x) is x + 1, patched x + 100 (thousand_patch.c).
 * Requests on stdin:
 *   "switched old|new"  wait (at most 10 s) until every worker has seen that behaviour
 *                       after this request; print "switched K" (K workers that did)
 *   "compute N"   print compute(N)
 *   "awake"       print "awake N MIN_NS": sleepers that have returned so far, and the
 *                 shortest time one of them slept (-1: none returned)
 *   "feed"        wake the readers (one byte each), the pollers and the waiters; print "fed"
 *   "results"     wait (at most 10 s) for them, print "results RD ROK PD POK WD WOK"
 *                 (done and ok per kind) and, for the first bad reader, "(reader I: ...)"
 *   "sleepers"    wait (at most 60 s) for the sleepers, print "sleepers DONE OK MIN_NS"
 * Prints "ready N" (N threads) once every thread has been started.
 * Usage: thousand [WORKERS [BLOCKED [SLEEP]]]  (defaults 4, 249 per kind, 8 s) */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

__attribute__((noipa)) long compute(long x) {
    return x + 1;
}

#define MAXN 1024
static int workers = 4, blocked = 249, sleep_s = 8;
static int reader_pipe[MAXN][2], poll_pipe[2];
static atomic_int started;
static atomic_int want_kind, seen_kind[MAXN];
static atomic_int r_done, r_ok, p_done, p_ok, w_done, w_ok, s_done, s_ok;
static atomic_llong s_min_ns = -1;
static atomic_int first_bad_reader = -1;
static ssize_t reader_n[MAXN];
static int reader_errno[MAXN];
static unsigned char reader_byte[MAXN];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int go;

static unsigned char byte_for(int i) {
    return (unsigned char)(i * 7 + 1);
}

static void* worker(void* arg) {
    int idx = (int)(long)arg;
    atomic_fetch_add(&started, 1);
    for (long i = 0;; i++) {
        long x = i & 0xfff;
        long r = compute(x);
        int k = r == x + 1 ? 1 : r == x + 100 ? 2 : 3;
        if (k == 3) {
            fprintf(stderr, "worker %d: compute(%ld) = %ld\n", idx, x, r);
            abort();
        }
        if (k == atomic_load_explicit(&want_kind, memory_order_relaxed))
            atomic_store_explicit(&seen_kind[idx], 1, memory_order_relaxed);
    }
    return NULL;
}

static void* reader(void* arg) {
    int i = (int)(long)arg;
    unsigned char b = 0;
    atomic_fetch_add(&started, 1);
    ssize_t n = read(reader_pipe[i][0], &b, 1);
    reader_n[i] = n;
    reader_errno[i] = n < 0 ? errno : 0;
    reader_byte[i] = b;
    if (n == 1 && b == byte_for(i)) {
        atomic_fetch_add(&r_ok, 1);
    } else {
        int none = -1;
        atomic_compare_exchange_strong(&first_bad_reader, &none, i);
    }
    atomic_fetch_add(&r_done, 1);
    return NULL;
}

static void* poller(void* arg) {
    (void)arg;
    struct pollfd p = {.fd = poll_pipe[0], .events = POLLIN};
    atomic_fetch_add(&started, 1);
    int r = poll(&p, 1, -1);
    if (r == 1 && (p.revents & POLLIN)) atomic_fetch_add(&p_ok, 1);
    atomic_fetch_add(&p_done, 1);
    return NULL;
}

static void* waiter(void* arg) {
    (void)arg;
    int rc = 0;
    pthread_mutex_lock(&mu);
    atomic_fetch_add(&started, 1);
    while (!go && rc == 0)
        rc = pthread_cond_wait(&cv, &mu);
    int ok = rc == 0 && go;
    pthread_mutex_unlock(&mu);
    if (ok) atomic_fetch_add(&w_ok, 1);
    atomic_fetch_add(&w_done, 1);
    return NULL;
}

static void* sleeper(void* arg) {
    (void)arg;
    struct timespec req = {sleep_s, 0}, rem = {0, 0}, a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    atomic_fetch_add(&started, 1);
    int r = nanosleep(&req, &rem);
    clock_gettime(CLOCK_MONOTONIC, &b);
    long long ns = (b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec);
    if (r == 0 && ns >= (long long)sleep_s * 1000000000LL) atomic_fetch_add(&s_ok, 1);
    long long cur = atomic_load(&s_min_ns);
    while ((cur < 0 || ns < cur) && !atomic_compare_exchange_weak(&s_min_ns, &cur, ns)) {
    }
    atomic_fetch_add(&s_done, 1);
    return NULL;
}

#include "wait_for.h"

static void spawn(void* (*fn)(void*), long arg, pthread_attr_t* attr) {
    pthread_t t;
    if (pthread_create(&t, attr, fn, (void*)arg) != 0) {
        perror("pthread_create");
        exit(1);
    }
}

int main(int argc, char** argv) {
    if (argc > 1) workers = atoi(argv[1]);
    if (argc > 2) blocked = atoi(argv[2]);
    if (argc > 3) sleep_s = atoi(argv[3]);
    if (workers < 1 || workers > MAXN || blocked < 1 || blocked > MAXN || sleep_s < 1) return 2;
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (pipe(poll_pipe) != 0) return 1;
    for (int i = 0; i < blocked; i++)
        if (pipe(reader_pipe[i]) != 0) {
            perror("pipe");
            return 1;
        }
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    for (int i = 0; i < blocked; i++) {
        spawn(reader, i, &attr);
        spawn(poller, i, &attr);
        spawn(waiter, i, &attr);
        spawn(sleeper, i, &attr);
    }
    for (int i = 0; i < workers; i++)
        spawn(worker, i, &attr);
    int total = workers + 4 * blocked;
    WAIT_FOR(atomic_load(&started) == total, 10);
    printf("ready %d\n", atomic_load(&started));
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        if (strncmp(line, "switched", 8) == 0) {
            int k = strstr(line, "new") ? 2 : 1;
            for (int i = 0; i < workers; i++)
                atomic_store(&seen_kind[i], 0);
            atomic_store(&want_kind, k);
            int n = 0;
            WAIT_FOR(({
                         n = 0;
                         for (int i = 0; i < workers; i++)
                             n += atomic_load(&seen_kind[i]);
                         n == workers;
                     }),
                     10);
            atomic_store(&want_kind, 0);
            printf("switched %d\n", n);
        } else if (strncmp(line, "compute", 7) == 0) {
            printf("%ld\n", compute(atol(line + 8)));
        } else if (strncmp(line, "awake", 5) == 0) {
            printf("awake %d %lld\n", atomic_load(&s_done), atomic_load(&s_min_ns));
        } else if (strncmp(line, "feed", 4) == 0) {
            for (int i = 0; i < blocked; i++) {
                unsigned char b = byte_for(i);
                if (write(reader_pipe[i][1], &b, 1) != 1) return 1;
            }
            if (write(poll_pipe[1], "p", 1) != 1) return 1;
            pthread_mutex_lock(&mu);
            go = 1;
            pthread_cond_broadcast(&cv);
            pthread_mutex_unlock(&mu);
            printf("fed\n");
        } else if (strncmp(line, "results", 7) == 0) {
            WAIT_FOR(atomic_load(&r_done) == blocked && atomic_load(&p_done) == blocked &&
                         atomic_load(&w_done) == blocked,
                     10);
            printf("results %d %d %d %d %d %d", atomic_load(&r_done), atomic_load(&r_ok),
                   atomic_load(&p_done), atomic_load(&p_ok), atomic_load(&w_done),
                   atomic_load(&w_ok));
            int b = atomic_load(&first_bad_reader);
            if (b >= 0)
                printf(" (reader %d: read returned %zd, %s, byte %u, expected %u)", b, reader_n[b],
                       reader_errno[b] ? strerror(reader_errno[b]) : "no error", reader_byte[b],
                       byte_for(b));
            printf("\n");
        } else if (strncmp(line, "sleepers", 8) == 0) {
            WAIT_FOR(atomic_load(&s_done) == blocked, 60);
            printf("sleepers %d %d %lld\n", atomic_load(&s_done), atomic_load(&s_ok),
                   atomic_load(&s_min_ns));
        }
    }
    return 0;
}
