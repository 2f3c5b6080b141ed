/* A victim with 20 patchable functions f0..f19 (f_i(x) = x + i) and N worker threads
 * calling all of them in turn, each call checked: a result that is neither the old
 * (x + i) nor the patched value (x + 1000 + i, tests/targets/many_patch.c) aborts the
 * process, so a torn patch cannot go unnoticed. Requests on stdin:
 *   "state"  print 20 letters, f_i's current behaviour: o (old), n (new), ? (other)
 *   "calls"  print "calls N", the number of checked calls so far
 *   "progress"  print each worker's count of checked calls, space-separated (a test waits
 *            for every count to grow: then no worker is still inside a system call that
 *            a killed tool left it to finish)
 * Usage: many N (N <= 64) */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define F(i)                                                                                       \
    __attribute__((noipa)) long f##i(long x) {                                                     \
        return x + i;                                                                              \
    }
F(0)
F(1)
F(2) F(3) F(4) F(5) F(6) F(7) F(8) F(9) F(10) F(11) F(12) F(13) F(14) F(15) F(16) F(17) F(18) F(19)

    static long (*const fns[20])(long) = {f0,  f1,  f2,  f3,  f4,  f5,  f6,  f7,  f8,  f9,
                                          f10, f11, f12, f13, f14, f15, f16, f17, f18, f19};
static atomic_long calls;
static atomic_long progress[64];
static int nworkers;

static void* worker(void* arg) {
    atomic_long* mine = &progress[(long)arg];
    for (;;) {
        for (long i = 0; i < 20; i++) {
            long r = fns[i](7);
            if (r != 7 + i && r != 1007 + i) {
                fprintf(stderr, "f%ld(7) = %ld\n", i, r);
                abort();
            }
            atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed);
            atomic_fetch_add_explicit(mine, 1, memory_order_relaxed);
            /* Some work outside the functions, so that a stop often finds none inside. */
            for (volatile int k = 0; k < 200; k++) {
            }
        }
    }
    return NULL;
}

int main(int argc, char** argv) {
    int n = argc > 1 ? atoi(argv[1]) : 4;
    if (n < 1 || n > 64) n = 4;
    nworkers = n;
    for (long i = 0; i < n; i++) {
        pthread_t t;
        pthread_create(&t, NULL, worker, (void*)i);
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("ready %d\n", n);
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        if (strncmp(line, "state", 5) == 0) {
            char s[21];
            for (long i = 0; i < 20; i++) {
                long r = fns[i](0);
                s[i] = r == i ? 'o' : r == 1000 + i ? 'n' : '?';
            }
            s[20] = 0;
            printf("%s\n", s);
        } else if (strncmp(line, "calls", 5) == 0) {
            printf("calls %ld\n", atomic_load(&calls));
        } else if (strncmp(line, "progress", 8) == 0) {
            for (int i = 0; i < nworkers; i++)
                printf(i ? " %ld" : "%ld", atomic_load(&progress[i]));
            printf("\n");
        }
    }
    return 0;
}
