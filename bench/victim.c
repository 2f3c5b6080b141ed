/* The benchmark victim (bench/run). Linked with a generated funcs.c (bench/bench.py):
 * bench_fns[0..bench_nfunc-1] are the patchable functions f_i(x) = x + 1000000 + i
 * (patched: x + 2000000 + i), alt0 the same change as f0's replacement inside the
 * binary (the gdb baseline jumps there), work() a function with a body (24 multiplies) for
 * the per-call cost.
 * f_i's first instruction is one 7-byte lea, so a 5-byte jump written over it (by gdb,
 * which checks nothing) can never cut an instruction a stopped thread is about to run.
 *
 * Usage: victim THREADS
 * THREADS in all: the main thread is the one worker, calling f_0, f_1, ... in turn in a
 * loop that timestamps itself (CLOCK_MONOTONIC) and keeps the longest gap between two
 * iterations; the THREADS-1 others block in system calls (read of a pipe, a condition
 * variable's futex, nanosleep of an hour, poll), each on a 64 KiB stack, never spinning.
 *
 * The worker reads requests on stdin without blocking every 1024 iterations and answers
 * on stdout, one line each:
 *   reset            start a new window: "ok"
 *   gap              "gap MAX_NS ITERATIONS N_OVER_50US SUM_OVER_50US_NS WINDOW_NS"
 *   gaps             "gaps START_NS:LEN_NS ..." (gaps over 50 us of the window, at most 256)
 *   check            "check NEW OLD OTHER": how many f_i behave patched, original, neither
 *   addr             "addr F0 ALT0 WORK" (hex)
 *   direct A B       call A and B (hex: the replacements of f0 and work, from the record of
 *                    hp-apply) directly in "overhead": "ok"
 *   overhead N R     R rounds, each timing N calls of f0 (through its entry: patched, a jump
 *                    to its replacement), of f0's replacement called directly, of work and of
 *                    work's replacement called directly, all through the same loop, in
 *                    the reverse order every other round:
 *                    R lines "r F0_NS DIRECT_F0_NS WORK_NS DIRECT_WORK_NS", then "end"
 * It exits on end of input, and when its parent dies (PR_SET_PDEATHSIG). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

extern long (*const bench_fns[])(long);
extern const int bench_nfunc;
long alt0(long x);
long work(long x);
long bench_touch_libs(void);

static int block_pipe[2];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static atomic_int started;
static long (*direct_f0)(long), (*direct_work)(long);

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void* blocker(void* arg) {
    long kind = (long)arg % 4;
    atomic_fetch_add(&started, 1);
    for (;;) {
        if (kind == 0) {
            char b;
            if (read(block_pipe[0], &b, 1) <= 0 && errno != EINTR) pause();
        } else if (kind == 1) {
            pthread_mutex_lock(&mu);
            pthread_cond_wait(&cv, &mu);
            pthread_mutex_unlock(&mu);
        } else if (kind == 2) {
            struct timespec t = {3600, 0};
            nanosleep(&t, NULL);
        } else {
            struct pollfd p = {.fd = block_pipe[0], .events = POLLIN};
            poll(&p, 1, -1);
        }
    }
    return NULL;
}

/* One loop for both sides of the per-call comparison: only the callee differs. */
__attribute__((noipa)) static long run_calls(long (*fp)(long), long n) {
    long s = 0;
    for (long i = 0; i < n; i++)
        s += fp(i);
    return s;
}

static long long time_calls(long (*fp)(long), long n) {
    long long a = now_ns();
    volatile long sink = run_calls(fp, n);
    (void)sink;
    return now_ns() - a;
}

#define MAX_EVENTS 256
static long long win_start, max_gap, n_over, sum_over, iters;
static long long ev_start[MAX_EVENTS], ev_len[MAX_EVENTS];
static int n_ev;

static void reset_window(long long now) {
    win_start = now;
    max_gap = n_over = sum_over = iters = 0;
    n_ev = 0;
}

static void answer(const char* line) {
    char out[8192];
    int n = 0;
    if (strcmp(line, "reset") == 0) {
        reset_window(now_ns());
        n = snprintf(out, sizeof out, "ok\n");
    } else if (strcmp(line, "gap") == 0) {
        n = snprintf(out, sizeof out, "gap %lld %lld %lld %lld %lld\n", max_gap, iters, n_over,
                     sum_over, now_ns() - win_start);
    } else if (strcmp(line, "gaps") == 0) {
        n = snprintf(out, sizeof out, "gaps");
        for (int i = 0; i < n_ev && n < (int)sizeof out - 64; i++)
            n += snprintf(out + n, sizeof out - n, " %lld:%lld", ev_start[i], ev_len[i]);
        n += snprintf(out + n, sizeof out - n, "\n");
    } else if (strcmp(line, "check") == 0) {
        int nw = 0, old = 0, other = 0;
        for (int i = 0; i < bench_nfunc; i++) {
            long r = bench_fns[i](0);
            if (r == 2000000 + i)
                nw++;
            else if (r == 1000000 + i)
                old++;
            else
                other++;
        }
        n = snprintf(out, sizeof out, "check %d %d %d\n", nw, old, other);
    } else if (strcmp(line, "addr") == 0) {
        n = snprintf(out, sizeof out, "addr %p %p %p\n", (void*)bench_fns[0], (void*)alt0,
                     (void*)work);
    } else if (strncmp(line, "direct ", 7) == 0) {
        unsigned long a = 0, b = 0;
        if (sscanf(line + 7, "%lx %lx", &a, &b) == 2) {
            direct_f0 = (long (*)(long))a;
            direct_work = (long (*)(long))b;
            n = snprintf(out, sizeof out, "ok\n");
        } else {
            n = snprintf(out, sizeof out, "error direct needs two hex addresses\n");
        }
    } else if (strncmp(line, "overhead ", 9) == 0) {
        long calls = 0, rounds = 0;
        if (sscanf(line + 9, "%ld %ld", &calls, &rounds) != 2 || !direct_f0 || !direct_work) {
            n = snprintf(out, sizeof out, "error overhead needs N R, after direct\n");
        } else {
            for (long r = 0; r < rounds; r++) {
                long long a, b, c, d;
                if (r % 2 == 0) { /* ABBA: a drift of the machine's speed cancels out */
                    a = time_calls(bench_fns[0], calls);
                    b = time_calls(direct_f0, calls);
                    c = time_calls(work, calls);
                    d = time_calls(direct_work, calls);
                } else {
                    d = time_calls(direct_work, calls);
                    c = time_calls(work, calls);
                    b = time_calls(direct_f0, calls);
                    a = time_calls(bench_fns[0], calls);
                }
                n = snprintf(out, sizeof out, "r %lld %lld %lld %lld\n", a, b, c, d);
                if (write(1, out, n) != n) exit(1);
            }
            n = snprintf(out, sizeof out, "end\n");
        }
    } else {
        n = snprintf(out, sizeof out, "error unknown request '%s'\n", line);
    }
    if (write(1, out, n) != n) exit(1);
}

/* Reads what stdin holds without blocking and answers each complete line; returns
 * whether it answered (then the time spent answering is no gap of the next window). */
static int service_stdin(void) {
    static char buf[512];
    static size_t len;
    int answered = 0;
    for (;;) {
        ssize_t r = read(0, buf + len, sizeof buf - 1 - len);
        if (r == 0) exit(0);
        if (r < 0) {
            if (errno == EAGAIN || errno == EINTR) return answered;
            exit(1);
        }
        len += (size_t)r;
        char* nl;
        while ((nl = memchr(buf, '\n', len)) != NULL) {
            *nl = 0;
            answer(buf);
            size_t used = (size_t)(nl + 1 - buf);
            memmove(buf, nl + 1, len - used);
            len -= used;
            answered = 1;
        }
        if (len == sizeof buf - 1) len = 0; /* an overlong line: drop it */
    }
}

int main(int argc, char** argv) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1) return 1;
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    if (threads < 1 || threads > 4096) return 2;
    if (pipe(block_pipe) != 0) return 1;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    for (long i = 0; i < threads - 1; i++) {
        pthread_t t;
        if (pthread_create(&t, &attr, blocker, (void*)i) != 0) {
            perror("pthread_create");
            return 1;
        }
    }
    while (atomic_load(&started) < threads - 1)
        usleep(1000);
    fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
    volatile long sink = bench_touch_libs();
    char ready[64];
    int rn = snprintf(ready, sizeof ready, "ready %d %d\n", threads, bench_nfunc);
    if (write(1, ready, rn) != rn) return 1;

    long long prev = now_ns();
    reset_window(prev);
    int k = 0;
    for (long i = 0;; i++) {
        sink += bench_fns[k](i);
        if (++k == bench_nfunc) k = 0;
        for (volatile int s = 0; s < 16; s++) {
        }
        long long t = now_ns();
        long long g = t - prev;
        prev = t;
        iters++;
        if (g > max_gap) max_gap = g;
        if (g > 50000) {
            n_over++;
            sum_over += g;
            if (n_ev < MAX_EVENTS) {
                ev_start[n_ev] = t - g - win_start;
                ev_len[n_ev++] = g;
            }
        }
        /* A stop that lands in this read() still counts: prev moves only after answers. */
        if ((i & 1023) == 0 && service_stdin()) prev = now_ns();
    }
}
