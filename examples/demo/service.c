/* A tiny "access service": one request per line on stdin (a user name), one answer per
 * line on stdout. It has a security bug in check_access(): an empty user name is let in.
 * The fixed function lives in fix.c; hotpatch moves it into the running service. */
#include <stdio.h>
#include <string.h>

/* noipa on the functions a patch replaces: with inter-procedural register allocation
 * (gcc -O2 -fipa-ra) a caller in the same file may keep values in registers the callee is
 * known not to clobber, and inter-procedural constant propagation may specialise a
 * callee for its only caller: a replacement compiled separately honours neither. */
static unsigned long requests; /* not exported: the patch finds it through .symtab */

__attribute__((noipa)) static void audit(const char* user, int granted) /* not exported */
{
    requests++;
    fprintf(stderr, "audit: #%lu user=\"%s\" %s\n", requests, user, granted ? "granted" : "denied");
}

__attribute__((noipa)) int check_access(const char* user) {
    /* BUG: strncmp with the length of the user's input: "" matches "admin" */
    int granted = strncmp(user, "admin", strlen(user)) == 0;
    audit(user, granted);
    return granted;
}

int main(void) {
    char line[256];
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("ready\n");
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\n")] = 0;
        printf("%s: %s\n", line, check_access(line) ? "granted" : "denied");
    }
    return 0;
}
