/* Replacement for compute() in thousand.c. */
long compute(long x) {
    return x + 100;
}
