/* Answers "ping" with "pong"; with argv[1] == "undumpable" it first sets
 * PR_SET_DUMPABLE 0, which takes ptrace away from its own (non-root) user. */
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>

int main(int argc, char** argv) {
    if (argc > 1 && strcmp(argv[1], "undumpable") == 0 && prctl(PR_SET_DUMPABLE, 0) != 0) return 1;
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("ready\n");
    char line[64];
    while (fgets(line, sizeof line, stdin))
        printf("pong\n");
    return 0;
}
