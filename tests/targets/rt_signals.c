/* Real-time signals while the process is patched. One worker thread calls compute() in a
 * loop and is the only thread that takes SIGRTMIN (the others block it), so the handler
 * runs in one thread, one signal at a time, in the order the kernel dequeues them: with
 * queued signals that is the order they were sent. The handler interrupts the worker
 * wherever it is (often inside compute()) and calls compute() itself.
 *
 * Sequence signals (rt_sender.c) carry si_code SI_QUEUE and si_value 1, 2, 3, ...; the
 * handler counts them, and notes duplicates, values that come after a higher one (out of
 * order), and any SIGRTMIN whose siginfo is not such a signal (SI_TKILL, a value out of
 * range: a signal re-sent without its siginfo). Probe signals (value PROBE) are sent by
 * the victim itself for "park".
 *
 * compute(x) is x + 1, patched x + 1000 (rt_signals_patch.c); any other value is "bad".
 * Requests on stdin:
 *   "count"      print "count RECEIVED"
 *   "report N"   wait (at most 10 s) until N sequence signals arrived, then print
 *                "report RECEIVED MISSING DUP OOO BADINFO HBAD WBAD" where MISSING counts
 *                the values 1..N never seen, HBAD/WBAD the bad compute() results seen by
 *                the handler / the worker
 *   "worker"     print "worker old|new|bad": what the worker's next compute() call returns
 *   "compute N"  print compute(N)
 *   "park"       send probe signals to the worker until one interrupts it inside the first
 *                5 bytes of compute() (not at its entry: at an instruction boundary after
 *                it, where a jump written over the entry would land mid-instruction); that
 *                handler then blocks until "unpark". Prints "parked OFFSET" (or "unparked"
 *                after 10 s without luck)
 *   "unpark"     let the parked handler return; prints "resumed" once the worker has
 *                completed another compute() call after it
 * Prints "ready" once the worker runs. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#define MAXSEQ (1 << 22)
#define PROBE 0x7fff0001

/* The pause (2 bytes, and slow) comes first so that an interrupt often lands right after
 * it: inside the 5 bytes a patch overwrites, which "park" needs. */
__attribute__((noipa)) long compute(long x) {
    __asm__ volatile("pause");
    return x + 1;
}

static unsigned char seen[MAXSEQ];
static atomic_long received, dups, ooo, badinfo, hbad, wbad, last_seq;
static atomic_long probes_handled, worker_iter;
static atomic_int park_armed, parked, want_report, report_kind;
static atomic_long park_offset;
static int park_pipe[2];
static pthread_t worker_thread;

static int kind_of(long x, long r) {
    return r == x + 1 ? 1 : r == x + 1000 ? 2 : 3;
}

static void on_rt(int sig, siginfo_t* si, void* ctx) {
    (void)sig;
    for (long i = 0; i < 200; i++)
        if (kind_of(i, compute(i)) == 3) atomic_fetch_add(&hbad, 1);
    if (si->si_code != SI_QUEUE) {
        atomic_fetch_add(&badinfo, 1);
        return;
    }
    long v = si->si_value.sival_int;
    if (v == PROBE) {
        if (atomic_load(&park_armed)) {
            uintptr_t ip = (uintptr_t)((ucontext_t*)ctx)->uc_mcontext.gregs[REG_RIP];
            uintptr_t f = (uintptr_t)&compute;
            if (ip > f && ip < f + 5) {
                atomic_store(&park_armed, 0);
                atomic_store(&park_offset, (long)(ip - f));
                atomic_store(&parked, 1);
                char c;
                while (read(park_pipe[0], &c, 1) < 0 && errno == EINTR) {
                }
                atomic_store(&parked, 0);
            }
        }
        atomic_fetch_add(&probes_handled, 1);
        return;
    }
    if (v <= 0 || v >= MAXSEQ) {
        atomic_fetch_add(&badinfo, 1);
        return;
    }
    if (seen[v]) atomic_fetch_add(&dups, 1);
    seen[v] = 1;
    long last = atomic_load(&last_seq);
    if (v < last)
        atomic_fetch_add(&ooo, 1);
    else
        atomic_store(&last_seq, v);
    atomic_fetch_add(&received, 1);
}

static void* worker(void* arg) {
    (void)arg;
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGRTMIN);
    pthread_sigmask(SIG_UNBLOCK, &s, NULL);
    for (long i = 0;; i++) {
        long x = i & 0xffff;
        long r = compute(x);
        int k = kind_of(x, r);
        if (k == 3) atomic_fetch_add(&wbad, 1);
        if (atomic_load(&want_report)) {
            atomic_store(&report_kind, k);
            atomic_store(&want_report, 0);
        }
        atomic_fetch_add_explicit(&worker_iter, 1, memory_order_relaxed);
    }
    return NULL;
}

/* A bounded wait (10 s watchdog) for a condition, not a timing check. */
#define WAIT_FOR(cond)                                                                             \
    ({                                                                                             \
        struct timespec s_, n_;                                                                    \
        int ok_ = 0;                                                                               \
        clock_gettime(CLOCK_MONOTONIC, &s_);                                                       \
        for (;;) {                                                                                 \
            if (cond) {                                                                            \
                ok_ = 1;                                                                           \
                break;                                                                             \
            }                                                                                      \
            clock_gettime(CLOCK_MONOTONIC, &n_);                                                   \
            if (n_.tv_sec - s_.tv_sec > 10) break;                                                 \
            struct timespec d_ = {0, 200000};                                                      \
            nanosleep(&d_, NULL);                                                                  \
        }                                                                                          \
        ok_;                                                                                       \
    })

static const char* kind_name(int k) {
    return k == 1 ? "old" : k == 2 ? "new" : "bad";
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (pipe(park_pipe) != 0) return 1;
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGRTMIN);
    pthread_sigmask(SIG_BLOCK, &s, NULL); /* inherited: only the worker unblocks it */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_rt;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGRTMIN, &sa, NULL) != 0) return 1;
    if (pthread_create(&worker_thread, NULL, worker, NULL) != 0) return 1;
    WAIT_FOR(atomic_load(&worker_iter) > 1000);
    printf("ready\n");
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        if (strncmp(line, "count", 5) == 0) {
            printf("count %ld\n", atomic_load(&received));
        } else if (strncmp(line, "report", 6) == 0) {
            long n = atol(line + 7);
            if (n < 0 || n >= MAXSEQ) n = 0;
            WAIT_FOR(atomic_load(&received) >= n);
            long missing = 0;
            for (long v = 1; v <= n; v++)
                missing += !seen[v];
            printf("report %ld %ld %ld %ld %ld %ld %ld\n", atomic_load(&received), missing,
                   atomic_load(&dups), atomic_load(&ooo), atomic_load(&badinfo), atomic_load(&hbad),
                   atomic_load(&wbad));
        } else if (strncmp(line, "worker", 6) == 0) {
            atomic_store(&report_kind, 0);
            atomic_store(&want_report, 1);
            if (WAIT_FOR(atomic_load(&want_report) == 0))
                printf("worker %s\n", kind_name(atomic_load(&report_kind)));
            else
                printf("worker stuck\n");
        } else if (strncmp(line, "compute", 7) == 0) {
            printf("%ld\n", compute(atol(line + 8)));
        } else if (strncmp(line, "park", 4) == 0) {
            atomic_store(&park_armed, 1);
            struct timespec st, now;
            clock_gettime(CLOCK_MONOTONIC, &st);
            for (;;) {
                long before = atomic_load(&probes_handled);
                union sigval v = {.sival_int = PROBE};
                pthread_sigqueue(worker_thread, SIGRTMIN, v);
                /* the handler either returns (counted) or parks */
                WAIT_FOR(atomic_load(&probes_handled) > before || atomic_load(&parked));
                if (atomic_load(&parked)) break;
                clock_gettime(CLOCK_MONOTONIC, &now);
                if (now.tv_sec - st.tv_sec > 10) break;
                /* let the worker run on to a different instruction */
                long it = atomic_load(&worker_iter);
                WAIT_FOR(atomic_load(&worker_iter) > it + 1);
            }
            atomic_store(&park_armed, 0);
            if (atomic_load(&parked))
                printf("parked %ld\n", atomic_load(&park_offset));
            else
                printf("unparked\n");
        } else if (strncmp(line, "unpark", 6) == 0) {
            long h = atomic_load(&probes_handled);
            if (write(park_pipe[1], "x", 1) != 1) return 1;
            WAIT_FOR(atomic_load(&probes_handled) > h);
            long it = atomic_load(&worker_iter);
            if (WAIT_FOR(atomic_load(&worker_iter) > it + 1))
                printf("resumed\n");
            else
                printf("worker stuck\n");
        }
    }
    return 0;
}
