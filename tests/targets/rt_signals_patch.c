/* Replacement for compute() in rt_signals.c. */
long compute(long x) {
    return x + 1000;
}
