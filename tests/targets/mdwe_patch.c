/* Replacement for compute() in mdwe.c. */
long compute(long x) {
    return x * 2 + 1000;
}
