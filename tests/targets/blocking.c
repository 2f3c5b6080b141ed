/* Threads blocked in system calls while the process is patched. Requests on stdin:
 *   "tids"   print "tids READER SLEEPER FUTEX" (thread ids)
 *   "feed"   write "hello" into the reader's pipe; the reader prints what read() returned
 *   "wake"   wake the futex waiter; it prints what the futex call returned
 *   "compute N"  print compute(N)
 * The sleeper sleeps 2 s once, then prints the elapsed time: a sleep the kernel did not
 * restart correctly would come back early (or with EINTR). */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int pipefd[2];
static atomic_int futex_word;
static atomic_int tids[3];

__attribute__((noipa)) long compute(long x) {
    return x + 1;
}

static void* reader(void* arg) {
    (void)arg;
    atomic_store(&tids[0], (int)gettid());
    char buf[16];
    ssize_t n = read(pipefd[0], buf, sizeof buf);
    int e = errno;
    printf("read %zd %.*s %s\n", n, n > 0 ? (int)n : 0, buf, n < 0 ? strerror(e) : "ok");
    return NULL;
}

static void* sleeper(void* arg) {
    (void)arg;
    atomic_store(&tids[1], (int)gettid());
    struct timespec req = {2, 0}, rem = {0, 0}, a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    int r = nanosleep(&req, &rem);
    int e = errno;
    clock_gettime(CLOCK_MONOTONIC, &b);
    long long ns = (b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec);
    printf("slept %lld %s\n", ns, r == 0 ? "ok" : strerror(e));
    return NULL;
}

static void* waiter(void* arg) {
    (void)arg;
    atomic_store(&tids[2], (int)gettid());
    long r;
    do {
        r = syscall(SYS_futex, &futex_word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
    } while (r == -1 && errno == EAGAIN && atomic_load(&futex_word) == 0);
    printf("futex %ld %s\n", r, r == 0 ? "ok" : strerror(errno));
    return NULL;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (pipe(pipefd) != 0) return 1;
    pthread_t t[3];
    pthread_create(&t[0], NULL, reader, NULL);
    pthread_create(&t[1], NULL, sleeper, NULL);
    pthread_create(&t[2], NULL, waiter, NULL);
    while (!atomic_load(&tids[0]) || !atomic_load(&tids[1]) || !atomic_load(&tids[2]))
        sched_yield();
    printf("ready\n");
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        if (strncmp(line, "tids", 4) == 0) {
            printf("tids %d %d %d\n", tids[0], tids[1], tids[2]);
        } else if (strncmp(line, "feed", 4) == 0) {
            if (write(pipefd[1], "hello", 5) != 5) return 1;
        } else if (strncmp(line, "wake", 4) == 0) {
            atomic_store(&futex_word, 1);
            syscall(SYS_futex, &futex_word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
        } else if (strncmp(line, "compute", 7) == 0) {
            printf("%ld\n", compute(atol(line + 8)));
        }
    }
    return 0;
}
