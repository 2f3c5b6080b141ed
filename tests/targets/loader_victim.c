/* A victim for the loader's symbol-scope tests: links libc and libm, uses a few IFUNCs
 * (so their GOT slots are bound before it reports), and prints what its own dynamic
 * loader says each symbol named on the command line resolves to:
 *   loader_victim strlen memcpy@GLIBC_2.2.5 ...
 *   -> "ready strlen=0x7f.. memcpy@GLIBC_2.2.5=0x7f..\n"  ("=0" when not found)
 * then waits until its standard input closes. Must be linked with -rdynamic (CMake
 * ENABLE_EXPORTS) so that hp_loader_victim_exported is in its dynamic symbol table. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* volatile: keep every call a real call through the PLT/GOT, not a folded constant. */
static const char* volatile text = "hotpatch loader victim";
static const char* volatile needle = "loader";
static volatile double angle = 0.5;

/* Scratch memory the tests may overwrite (e.g. with a fake link_map node). */
__attribute__((visibility("default"))) unsigned char hp_loader_victim_scratch[256];

__attribute__((noinline, visibility("default"))) long hp_loader_victim_exported(long x) {
    return x * 7 + 1;
}

int main(int argc, char** argv) {
    char buf[64];
    long sink = 0;
    setvbuf(stdout, NULL, _IOLBF, 0);

    /* Bind the GOT slots a lazy-binding process would otherwise leave on the PLT. */
    memcpy(buf, text, strlen(text) + 1);
    sink += (long)strlen(buf) + (strstr(buf, needle) != NULL) + (long)(cos(angle) * 100.0) +
            strcmp(buf, needle) + hp_loader_victim_exported(1);

    printf("ready");
    for (int i = 1; i < argc; ++i) {
        char name[256];
        void* addr;
        const char* at = strchr(argv[i], '@');
        if (at == NULL) {
            addr = dlsym(RTLD_DEFAULT, argv[i]);
        } else {
            size_t n = (size_t)(at - argv[i]);
            if (n >= sizeof name) n = sizeof name - 1;
            memcpy(name, argv[i], n);
            name[n] = '\0';
            addr = dlvsym(RTLD_DEFAULT, name, at + 1);
        }
        printf(" %s=%#lx", argv[i], (unsigned long)addr);
    }
    printf(" sink=%ld\n", sink);

    /* Stay alive for the test; exit when it closes our stdin (or kills us). */
    while (read(0, buf, sizeof buf) > 0) {
    }
    return 0;
}
