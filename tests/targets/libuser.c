/* A victim that loads libvictim.so.1: answers "N" with "compute(N) lib_answer(N) lib_count()". */
#include <stdio.h>
#include <stdlib.h>

int lib_answer(int x);
int lib_count(void);

__attribute__((noipa)) int compute(int x) {
    return x * x + 1;
}

int main(void) {
    char line[64];
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("ready\n");
    while (fgets(line, sizeof line, stdin)) {
        int n = atoi(line);
        int a = compute(n), b = lib_answer(n), c = lib_count(); /* in this order */
        printf("%d %d %d\n", a, b, c);
    }
    return 0;
}
