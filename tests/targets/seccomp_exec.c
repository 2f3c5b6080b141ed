/* Runs a command under a seccomp filter that makes ptrace, memfd_create, process_vm_readv
 * and process_vm_writev fail with EPERM (as a container's seccomp profile may), for
 * hp-check's host checks. Usage: seccomp_exec COMMAND [ARG...]. Sets no_new_privs (the
 * filter needs it without CAP_SYS_ADMIN), installs the filter, and execs COMMAND. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "seccomp_bpf.h"

int main(int argc, char** argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: seccomp_exec COMMAND [ARG...]\n");
        return 2;
    }
    struct sock_filter insns[] = {
        STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        JUMP(BPF_JMP | BPF_JEQ | BPF_K, NATIVE_ARCH, 1, 0),
        STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW), /* another architecture: not our concern */
        STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_ptrace, 4, 0),
        JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_memfd_create, 3, 0),
        JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_process_vm_readv, 2, 0),
        JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_process_vm_writev, 1, 0),
        STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
    };
    struct sock_fprog prog = {sizeof insns / sizeof insns[0], insns};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
        fprintf(stderr, "seccomp_exec: cannot install the filter: %s\n", strerror(errno));
        return 2;
    }
    execvp(argv[1], argv + 1);
    fprintf(stderr, "seccomp_exec: %s: %s\n", argv[1], strerror(errno));
    return 127;
}
