/* A victim for the ptrace/proc unit tests (tests/unit/test_ptrace.cpp).
 *
 * Usage: ptrace_victim MODE. Every mode prints one "ready ..." line on stdout when it is set
 * up, then serves commands read line by line from stdin (the test's pipe):
 *   ping   -> "pong"
 *   wake   -> wakes the futex waiter (mode futex)
 *   report -> "rt N v1 v2 ..." the values of the real-time signals received (mode signals)
 * Modes:
 *   threads  8 workers: spinning, blocked in read() on a pipe, sleeping in short
 *            nanosleep() loops, blocked in a futex; prints "thread TID ROLE" for each
 *   read     single thread blocked in read(0); prints "read RET ERRNO DATA" when it returns
 *   sleep    single thread in nanosleep(2 s); prints "slept NS RC ERRNO"
 *   futex    a worker blocked in FUTEX_WAIT ("ready TID"); prints "futex RC ERRNO" on return
 *   proc     comm set to "hp v) (x y"; a deleted file with spaces in its name mapped;
 *            "ready MARKER_ADDR MAP_ADDR"
 *   churn    a worker creates and joins short-lived threads without pause
 *   signals  a SIGRTMIN handler records si_value (only the main thread takes it)
 *   zombie   the main thread exits (pthread_exit); a worker serves; "ready TID"
 *   vfork    a worker vforks a child that never execs, so the worker waits in an
 *            uninterruptible (killable) sleep that no ptrace stop can break; "ready TID"
 * The tests synchronise on state (ready lines, /proc/PID/task/TID/syscall), never on time. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* A function whose runtime address the proc test compares with its file address + bias. */
__attribute__((noinline)) void ptrace_victim_marker(void) {
    __asm__ volatile("" ::: "memory");
}

static pid_t gettid_(void) {
    return (pid_t)syscall(SYS_gettid);
}

static long futex(_Atomic int* word, int op, int val) {
    return syscall(SYS_futex, word, op, val, NULL, NULL, 0);
}

static _Atomic int futex_word;
static _Atomic int started;
static int block_pipe[2];

static void wait_started(int n) {
    while (atomic_load(&started) < n)
        sched_yield();
}

/* ---- threads ---- */

static void* spin(void* arg) {
    (void)arg;
    printf("thread %d spin\n", (int)gettid_());
    atomic_fetch_add(&started, 1);
    for (volatile unsigned long i = 0;; ++i)
        ;
    return NULL;
}

static void* blocked_read(void* arg) {
    char c;
    (void)arg;
    printf("thread %d read\n", (int)gettid_());
    atomic_fetch_add(&started, 1);
    for (;;)
        if (read(block_pipe[0], &c, 1) <= 0 && errno != EINTR) break;
    return NULL;
}

static void* sleeper(void* arg) {
    (void)arg;
    printf("thread %d sleep\n", (int)gettid_());
    atomic_fetch_add(&started, 1);
    for (;;) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static void* futex_forever(void* arg) {
    static _Atomic int never;
    (void)arg;
    printf("thread %d futex\n", (int)gettid_());
    atomic_fetch_add(&started, 1);
    for (;;)
        futex(&never, FUTEX_WAIT, 0);
    return NULL;
}

/* ---- futex ---- */

static void* futex_waiter(void* arg) {
    (void)arg;
    printf("ready %d\n", (int)gettid_());
    long rc = futex(&futex_word, FUTEX_WAIT, 0);
    printf("futex %ld %d\n", rc, rc < 0 ? errno : 0);
    return NULL;
}

/* ---- churn ---- */

static void* nothing(void* arg) {
    return arg;
}

static void* churn(void* arg) {
    (void)arg;
    atomic_fetch_add(&started, 1);
    for (;;) {
        pthread_t t;
        if (pthread_create(&t, NULL, nothing, NULL) == 0) pthread_join(t, NULL);
    }
    return NULL;
}

/* ---- signals ---- */

static _Atomic int rt_count;
static int rt_values[64];

static void on_rt(int sig, siginfo_t* si, void* ctx) {
    (void)sig;
    (void)ctx;
    int n = atomic_fetch_add(&rt_count, 1);
    if (n < 64) rt_values[n] = si->si_value.sival_int;
}

/* ---- zombie leader, vfork ---- */

static int serve(void);

static void* serving(void* arg) {
    (void)arg;
    printf("ready %d\n", (int)gettid_());
    serve();
    exit(0);
}

static void* vforker(void* arg) {
    (void)arg;
    printf("ready %d\n", (int)gettid_());
    pid_t c = vfork();
    if (c == 0) {
        /* The child borrows our memory and stack: raw system calls only. It dies with the
         * thread that made it. */
        syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL);
        for (;;)
            syscall(SYS_ppoll, NULL, 0, NULL, NULL, 0);
    }
    return NULL;
}

static void start(void* (*fn)(void*)) {
    pthread_t t;
    if (pthread_create(&t, NULL, fn, NULL) != 0) {
        perror("pthread_create");
        exit(1);
    }
}

static int serve(void) {
    char line[256];
    while (fgets(line, sizeof line, stdin)) {
        if (strncmp(line, "ping", 4) == 0) {
            printf("pong\n");
        } else if (strncmp(line, "wake", 4) == 0) {
            atomic_store(&futex_word, 1);
            futex(&futex_word, FUTEX_WAKE, 1);
        } else if (strncmp(line, "report", 6) == 0) {
            int n = atomic_load(&rt_count);
            printf("rt %d", n);
            for (int i = 0; i < n && i < 64; ++i)
                printf(" %d", rt_values[i]);
            printf("\n");
        }
    }
    return 0;
}

int main(int argc, char** argv) {
    const char* mode = argc > 1 ? argv[1] : "threads";
    setvbuf(stdout, NULL, _IOLBF, 0);

    if (strcmp(mode, "threads") == 0) {
        if (pipe(block_pipe) != 0) return 1;
        void* (*roles[4])(void*) = {spin, blocked_read, sleeper, futex_forever};
        for (int i = 0; i < 8; ++i)
            start(roles[i % 4]);
        wait_started(8);
        printf("ready %d\n", (int)getpid());
        return serve();
    }
    if (strcmp(mode, "read") == 0) {
        char buf[128];
        printf("ready %d\n", (int)getpid());
        ssize_t n = read(0, buf, sizeof buf - 1);
        int e = n < 0 ? errno : 0;
        buf[n > 0 ? n : 0] = 0;
        buf[strcspn(buf, "\n")] = 0;
        printf("read %zd %d %s\n", n, e, buf);
        return serve();
    }
    if (strcmp(mode, "sleep") == 0) {
        struct timespec a, b, req = {2, 0};
        printf("ready %d\n", (int)getpid());
        clock_gettime(CLOCK_MONOTONIC, &a);
        int rc = nanosleep(&req, NULL);
        int e = rc != 0 ? errno : 0;
        clock_gettime(CLOCK_MONOTONIC, &b);
        long long ns = (long long)(b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec);
        printf("slept %lld %d %d\n", ns, rc, e);
        return serve();
    }
    if (strcmp(mode, "futex") == 0) {
        start(futex_waiter);
        return serve();
    }
    if (strcmp(mode, "proc") == 0) {
        char path[] = "/tmp/hp victim (map) XXXXXX";
        int fd = mkstemp(path);
        if (fd < 0 || ftruncate(fd, 4096) != 0) return 1;
        void* p = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) return 1;
        unlink(path);
        close(fd);
        prctl(PR_SET_NAME, "hp v) (x y");
        ptrace_victim_marker();
        printf("ready %#jx %p\n", (uintmax_t)(uintptr_t)&ptrace_victim_marker, p);
        return serve();
    }
    if (strcmp(mode, "churn") == 0) {
        start(churn);
        wait_started(1);
        printf("ready %d\n", (int)getpid());
        return serve();
    }
    if (strcmp(mode, "signals") == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_rt;
        sa.sa_flags = SA_SIGINFO | SA_RESTART;
        sigaction(SIGRTMIN, &sa, NULL);
        /* Workers block SIGRTMIN (inherited mask), so the main thread takes every one, in
         * queue order. */
        sigset_t rt, old;
        sigemptyset(&rt);
        sigaddset(&rt, SIGRTMIN);
        pthread_sigmask(SIG_BLOCK, &rt, &old);
        if (pipe(block_pipe) != 0) return 1;
        start(spin);
        start(blocked_read);
        wait_started(2);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        printf("ready %d\n", (int)getpid());
        return serve();
    }
    if (strcmp(mode, "zombie") == 0) {
        start(serving);
        pthread_exit(NULL);
    }
    if (strcmp(mode, "vfork") == 0) {
        start(vforker);
        return serve();
    }
    fprintf(stderr, "ptrace_victim: unknown mode %s\n", mode);
    return 2;
}
