/* N worker threads call compute() in a tight loop and remember the last result; the main
 * thread answers requests on stdin:
 *   "switched"  wait (at most 10 s) until every worker has seen compute(1) == 10 (the
 *               patched value) and print "switched N" (N = workers that did)
 *   "calls"     print the total number of calls so far
 * Usage: threads N */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

__attribute__((noipa)) long compute(long x) {
    return x + 1;
}

static atomic_long total;
static atomic_int seen_new[1024];

static void* worker(void* arg) {
    int idx = (int)(long)arg;
    for (;;) {
        long r = compute(1);
        atomic_fetch_add_explicit(&total, 1, memory_order_relaxed);
        if (r == 10)
            atomic_store(&seen_new[idx], 1);
        else if (r != 2) {
            fprintf(stderr, "worker %d: compute(1) = %ld\n", idx, r);
            abort();
        }
    }
    return NULL;
}

int main(int argc, char** argv) {
    int n = argc > 1 ? atoi(argv[1]) : 8;
    if (n < 1 || n > 1024) return 2;
    for (int i = 0; i < n; i++) {
        pthread_t t;
        pthread_create(&t, NULL, worker, (void*)(long)i);
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("ready %d\n", n);
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        if (strncmp(line, "switched", 8) == 0) {
            struct timespec start, now;
            clock_gettime(CLOCK_MONOTONIC, &start);
            int k;
            for (;;) { /* a bounded wait for the workers' next iteration, not a timing check */
                k = 0;
                for (int i = 0; i < n; i++)
                    k += atomic_load(&seen_new[i]);
                clock_gettime(CLOCK_MONOTONIC, &now);
                if (k == n || now.tv_sec - start.tv_sec > 10) break;
                sched_yield();
            }
            printf("switched %d\n", k);
        } else if (strncmp(line, "calls", 5) == 0) {
            printf("calls %ld\n", atomic_load(&total));
        }
    }
    return 0;
}
