/* The fix for service.c's check_access(), built as a patch: gcc -shared -fPIC -O2.
 * It calls the service's static audit() and the service's static counter is updated
 * by it: hp-pack resolves both from the service's symbol table. */
#include <string.h>

void audit(const char* user, int granted); /* static in the service */

int check_access(const char* user) {
    int granted = strcmp(user, "admin") == 0;
    audit(user, granted);
    return granted;
}
