/* A victim under a seccomp filter, for tests/unit/test_seccomp.cpp.
 *
 * Usage: seccomp_victim MODE. It installs the filter of MODE with a hand-written classic BPF
 * program, prints "ready" (mode thread-kill: "ready TID") and serves commands read line by
 * line from stdin until end of file:
 *   ping      -> "pong"
 *   mmap-rw   -> "mmap-rw ok" | "mmap-rw err ERRNO"  (an anonymous read+write page)
 *   mmap-exec -> "mmap-exec ok" | "mmap-exec err ERRNO" (read+exec: killed in kill-mmap)
 *   memfd     -> "memfd ok" | "memfd err ERRNO"
 * The last three let the test compare its prediction with what the kernel really does.
 * Modes:
 *   none         no filter
 *   kill-mmap    SECCOMP_RET_KILL_PROCESS on mmap when prot has PROT_EXEC; any other
 *                architecture is killed too; everything else allowed (malloc keeps working)
 *   errno-memfd  SECCOMP_RET_ERRNO(EPERM) on memfd_create, with the same architecture check
 *   errno-mmap   SECCOMP_RET_ERRNO(EPERM) on mmap when prot has PROT_EXEC, the same check
 *   allow-log    two filters: allow everything, then (newest) SECCOMP_RET_LOG on mmap
 *   strict       SECCOMP_MODE_STRICT: only read, write, _exit and sigreturn; served with
 *                raw read/write (no stdio, which may allocate)
 *   thread-kill  no filter on the main thread; a worker thread installs kill-mmap on itself
 *                only (no SECCOMP_FILTER_FLAG_TSYNC) and blocks in read() on a pipe
 * Core dumps are disabled: a kill by seccomp must not leave a core file behind. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "seccomp_bpf.h"

/* The low 32 bits of argument i (little-endian: the first word). */
#define ARG_LO(i) ((unsigned)offsetof(struct seccomp_data, args[i]))

static void die(const char* what) {
    fprintf(stderr, "seccomp_victim: %s: %s\n", what, strerror(errno));
    exit(2);
}

static void install(struct sock_filter* insns, unsigned short len) {
    struct sock_fprog prog = {len, insns};
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) die("PR_SET_SECCOMP");
}

static struct sock_filter kill_mmap[] = {
    STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
    JUMP(BPF_JMP | BPF_JEQ | BPF_K, NATIVE_ARCH, 1, 0),
    STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
    STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
    JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_mmap, 0, 3),
    STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LO(2)), /* prot */
    JUMP(BPF_JMP | BPF_JSET | BPF_K, PROT_EXEC, 0, 1),
    STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
    STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
};

static struct sock_filter errno_memfd[] = {
    STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
    JUMP(BPF_JMP | BPF_JEQ | BPF_K, NATIVE_ARCH, 1, 0),
    STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
    STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
    JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_memfd_create, 0, 1),
    STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
    STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
};

static struct sock_filter errno_mmap[] = {
    STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
    JUMP(BPF_JMP | BPF_JEQ | BPF_K, NATIVE_ARCH, 1, 0),
    STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
    STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
    JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_mmap, 0, 3),
    STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LO(2)), /* prot */
    JUMP(BPF_JMP | BPF_JSET | BPF_K, PROT_EXEC, 0, 1),
    STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
    STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
};

static struct sock_filter allow_all[] = {
    STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
};

static struct sock_filter log_mmap[] = {
    STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
    JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_mmap, 0, 1),
    STMT(BPF_RET | BPF_K, SECCOMP_RET_LOG),
    STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
};

#define LEN(a) ((unsigned short)(sizeof(a) / sizeof((a)[0])))

/* One line to the test, at once: stdout is a pipe, hence fully buffered. */
static void say(const char* line) {
    fputs(line, stdout);
    fflush(stdout);
}

static void try_mmap(const char* name, int prot) {
    void* p = mmap(NULL, 4096, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        printf("%s err %d\n", name, errno);
    } else {
        munmap(p, 4096);
        printf("%s ok\n", name);
    }
    fflush(stdout);
}

static void serve(void) {
    char line[256];
    while (fgets(line, sizeof line, stdin) != NULL) {
        line[strcspn(line, "\n")] = 0;
        if (strcmp(line, "ping") == 0) {
            say("pong\n");
        } else if (strcmp(line, "mmap-rw") == 0) {
            try_mmap("mmap-rw", PROT_READ | PROT_WRITE);
        } else if (strcmp(line, "mmap-exec") == 0) {
            try_mmap("mmap-exec", PROT_READ | PROT_EXEC);
        } else if (strcmp(line, "memfd") == 0) {
            long fd = syscall(SYS_memfd_create, "seccomp-victim", 1 /* MFD_CLOEXEC */);
            if (fd < 0) {
                printf("memfd err %d\n", errno);
                fflush(stdout);
            } else {
                close((int)fd);
                say("memfd ok\n");
            }
        } else {
            say("unknown command\n");
        }
    }
}

/* Strict mode allows read and write only (and exit, not exit_group): raw calls, no stdio. */
static void serve_strict(void) {
    static const char ready[] = "ready\n", pong[] = "pong\n";
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT) != 0) die("PR_SET_SECCOMP strict");
    syscall(SYS_write, 1, ready, sizeof ready - 1);
    char c;
    char cmd[16];
    size_t n = 0;
    while (syscall(SYS_read, 0, &c, 1) == 1) {
        if (c != '\n') {
            if (n < sizeof cmd) cmd[n++] = c;
            continue;
        }
        if (n == 4 && memcmp(cmd, "ping", 4) == 0) syscall(SYS_write, 1, pong, sizeof pong - 1);
        n = 0;
    }
    syscall(SYS_exit, 0);
}

static int worker_pipe[2];
static pthread_mutex_t worker_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t worker_cond = PTHREAD_COND_INITIALIZER;
static pid_t worker_tid;

static void* worker(void* arg) {
    (void)arg;
    /* This thread only: without SECCOMP_FILTER_FLAG_TSYNC the main thread stays unfiltered. */
    install(kill_mmap, LEN(kill_mmap));
    pthread_mutex_lock(&worker_lock);
    worker_tid = (pid_t)syscall(SYS_gettid);
    pthread_cond_signal(&worker_cond);
    pthread_mutex_unlock(&worker_lock);
    char c;
    while (read(worker_pipe[0], &c, 1) != 0) {
    }
    return NULL;
}

int main(int argc, char** argv) {
    if (argc != 2) {
        fprintf(stderr,
                "usage: seccomp_victim none|kill-mmap|errno-memfd|errno-mmap|allow-log|strict|"
                "thread-kill\n");
        return 2;
    }
    const char* mode = argv[1];
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    /* Unprivileged filters need no_new_privs; set it in every filter mode. */
    if (strcmp(mode, "none") != 0 && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        die("PR_SET_NO_NEW_PRIVS");

    if (strcmp(mode, "none") == 0) {
    } else if (strcmp(mode, "kill-mmap") == 0) {
        install(kill_mmap, LEN(kill_mmap));
    } else if (strcmp(mode, "errno-memfd") == 0) {
        install(errno_memfd, LEN(errno_memfd));
    } else if (strcmp(mode, "errno-mmap") == 0) {
        install(errno_mmap, LEN(errno_mmap));
    } else if (strcmp(mode, "allow-log") == 0) {
        install(allow_all, LEN(allow_all));
        install(log_mmap, LEN(log_mmap));
    } else if (strcmp(mode, "strict") == 0) {
        serve_strict();
    } else if (strcmp(mode, "thread-kill") == 0) {
        if (pipe(worker_pipe) != 0) die("pipe");
        pthread_t t;
        if (pthread_create(&t, NULL, worker, NULL) != 0) die("pthread_create");
        pthread_mutex_lock(&worker_lock);
        while (worker_tid == 0)
            pthread_cond_wait(&worker_cond, &worker_lock);
        pthread_mutex_unlock(&worker_lock);
        printf("ready %d\n", (int)worker_tid);
        fflush(stdout);
        serve();
        return 0;
    } else {
        fprintf(stderr, "seccomp_victim: unknown mode %s\n", mode);
        return 2;
    }
    say("ready\n");
    serve();
    return 0;
}
