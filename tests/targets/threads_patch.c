long compute(long x) {
    return x + 9;
}
