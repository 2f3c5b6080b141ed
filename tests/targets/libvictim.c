/* A shared library the victims load: a function to patch, a static it uses. */
static int lib_calls; /* not exported */

__attribute__((noinline)) int lib_answer(int x) {
    lib_calls++;
    return x * 10;
}

int lib_count(void) {
    return lib_calls;
}
