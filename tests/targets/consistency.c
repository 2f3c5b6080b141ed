/* A victim for the consistency models (hp-apply --consistency entry|stack). Requests on
 * stdin, one answer line each:
 *   "spin"      start a thread that loops inside spin() (its top frame); "spinning"
 *   "unspin"    let it leave spin() and end; "unspun"
 *   "wait"      start a thread blocked in read() called from waiter(), i.e. waiter() is
 *               further down its stack; "waiting" once it is blocked
 *   "deepwait"  the same, the thread in deep_waiter() -> waiter() -> read(): deep_waiter()
 *               waits two frames down; "waiting"
 *   "altwait"   a thread in alt_waiter() signals itself; the handler runs on an alternate
 *               signal stack and blocks in read() there: alt_waiter() is only on the
 *               stack the signal interrupted; "waiting"
 *   "decoy"     a thread blocked in read() under decoy_waiter(), whose frame holds words
 *               that look like the uc_stack of a signal frame (a pointer just below the
 *               stack pointer, 0, a size) with an unmapped "interrupted stack pointer"
 *               where a signal frame keeps it, but no signal frame; "waiting"
 *   "wake"      give it a byte, join it, print "waited R" with R = the result of the
 *               function the thread started in
 *   "badsp"     (x86-64) a thread sets its stack pointer to the unmapped address 0x1000
 *               and loops without touching memory, forever: its stack cannot be read;
 *               "looping"
 *   "quick N"   print "quick R" with R = quick(N), called from the main thread
 * Built a second time with -fno-omit-frame-pointer for the frame-pointer unwinder.
 * Usage: consistency */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static atomic_int spin_on;
static atomic_int spinning;
static int pipefd[2];

__attribute__((noipa)) long spin(long x) {
    atomic_store(&spinning, 1);
    while (atomic_load_explicit(&spin_on, memory_order_relaxed))
        x++;
    return x;
}

__attribute__((noipa)) long waiter(int fd) {
    char c = 0;
    if (read(fd, &c, 1) != 1) return -1;
    return c;
}

__attribute__((noipa)) long deep_waiter(int fd) {
    return waiter(fd) * 2; /* not a tail call: this frame stays on the stack */
}

static volatile long alt_got;

static void on_usr1(int sig) {
    (void)sig;
    char c = 0;
    if (read(pipefd[0], &c, 1) == 1) alt_got = c;
}

__attribute__((noipa)) long alt_waiter(void) {
    pthread_kill(pthread_self(), SIGUSR1); /* delivered before it returns */
    return alt_got + 1000;
}

/* The words, from index 3 on: uc_stack's ss_sp (64 KiB below the array, so at or below
 * the stack pointer while read() blocks), ss_flags 0, ss_size 128 KiB, then at uc_stack +
 * 144 (where x86-64 keeps the interrupted rsp) the unmapped 0x1000. */
__attribute__((noipa)) long decoy_waiter(int fd) {
    volatile unsigned long w[24] = {0};
    w[3] = (unsigned long)w - 65536;
    w[5] = 131072;
    w[3 + 18] = 0x1000;
    char c = 0;
    if (read(fd, &c, 1) != 1) return -1;
    return c + (long)(w[5] >> 16); /* w stays live across the read: + 2 */
}

__attribute__((noipa)) long quick(long x) {
    return x + 1;
}

static void* spin_main(void* arg) {
    (void)arg;
    spin(0);
    return NULL;
}

static void* wait_main(void* arg) {
    return (void*)waiter(*(int*)arg);
}

/* Whether thread `tid` is asleep (state S) - blocked in its read(). */
static int asleep(pid_t tid) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
    FILE* f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char* p = strrchr(buf, ')');
    return p && p[1] == ' ' && p[2] == 'S';
}

static atomic_int wait_tid;

static void* wait_start(void* arg) {
    atomic_store(&wait_tid, gettid());
    return wait_main(arg);
}

static void* alt_start(void* arg) {
    (void)arg;
    stack_t ss = {
        .ss_sp = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
        .ss_size = 1 << 16};
    if (ss.ss_sp == MAP_FAILED || sigaltstack(&ss, NULL) != 0) abort();
    struct sigaction sa = {.sa_handler = on_usr1, .sa_flags = SA_ONSTACK};
    sigaction(SIGUSR1, &sa, NULL);
    atomic_store(&wait_tid, gettid());
    return (void*)alt_waiter();
}

static void* decoy_start(void* arg) {
    atomic_store(&wait_tid, gettid());
    return (void*)decoy_waiter(*(int*)arg);
}

static atomic_int badsp_looping;

static void* badsp_main(void* arg) {
    (void)arg;
#ifdef __x86_64__
    /* The flag is set after the stack pointer changed, through a register: no stack access. */
    __asm__ volatile("mov %0, %%rsp\n\t"
                     "movl $1, (%1)\n\t"
                     "1: jmp 1b"
                     :
                     : "r"(0x1000UL), "r"(&badsp_looping)
                     : "memory");
#endif
    abort();
}

static void* deep_start(void* arg) {
    atomic_store(&wait_tid, gettid());
    return (void*)deep_waiter(*(int*)arg);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (pipe(pipefd) != 0) return 1;
    printf("ready\n");
    pthread_t spinner = 0, waiting = 0;
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        if (strncmp(line, "spin", 4) == 0) {
            atomic_store(&spin_on, 1);
            pthread_create(&spinner, NULL, spin_main, NULL);
            while (!atomic_load(&spinning))
                sched_yield();
            printf("spinning\n");
        } else if (strncmp(line, "unspin", 6) == 0) {
            atomic_store(&spin_on, 0);
            pthread_join(spinner, NULL);
            atomic_store(&spinning, 0);
            printf("unspun\n");
        } else if (strncmp(line, "wait", 4) == 0 || strncmp(line, "deepwait", 8) == 0 ||
                   strncmp(line, "altwait", 7) == 0 || strncmp(line, "decoy", 5) == 0) {
            atomic_store(&wait_tid, 0);
            void* (*start)(void*) = strncmp(line, "deepwait", 8) == 0 ? deep_start
                                    : line[0] == 'a'                  ? alt_start
                                    : strncmp(line, "decoy", 5) == 0  ? decoy_start
                                                                      : wait_start;
            pthread_create(&waiting, NULL, start, &pipefd[0]);
            while (atomic_load(&wait_tid) == 0 || !asleep(atomic_load(&wait_tid)))
                sched_yield();
            printf("waiting\n");
        } else if (strncmp(line, "wake", 4) == 0) {
            void* r;
            if (write(pipefd[1], "\x07", 1) != 1) return 1;
            pthread_join(waiting, &r);
            printf("waited %ld\n", (long)r);
        } else if (strncmp(line, "badsp", 5) == 0) {
            pthread_t t;
            pthread_create(&t, NULL, badsp_main, NULL);
            while (!atomic_load(&badsp_looping))
                sched_yield();
            printf("looping\n");
        } else if (strncmp(line, "quick", 5) == 0) {
            printf("quick %ld\n", quick(atol(line + 6)));
        }
    }
    return 0;
}
