/* Replacements for the 20 functions of tests/targets/many.c: f_i_v2(x) = x + 1000 + i. */
#define F(i)                                                                                       \
    long f##i##_v2(long x) {                                                                       \
        return x + 1000 + i;                                                                       \
    }
F(0)
F(1) F(2) F(3) F(4) F(5) F(6) F(7) F(8) F(9) F(10) F(11) F(12) F(13) F(14) F(15) F(16) F(17) F(18)
    F(19)
