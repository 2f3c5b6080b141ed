/* Replacement for compute() in churn.c: a value no unpatched thread can see. */
long compute(long x) {
    return x + 1000000;
}
