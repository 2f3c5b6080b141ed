# A target with compiler clones of the replaced function: hp-pack warns, listing every
# clone and nothing else (and still packs); with --strict it refuses.
source "$(dirname "$0")/lib.sh"
cat >"$T/c.c" <<'SRC'
__attribute__((noinline)) int work(int x) { return x * 7 + 1; }
__attribute__((noinline)) int worker(int x) { return x * 5; }
/* What gcc emits for constant-propagated, IPA-SRA'd, split or cold copies of work(). */
#define COPY(fn, name, body) \
    __attribute__((noinline, used)) static int fn(int x) __asm__(name); \
    static int fn(int x) { return body; }
COPY(c1, "work.constprop.0", x * 7 + 2)
COPY(c2, "work.cold", x - 1)
COPY(c3, "work.isra.0", x * 7 + 3)
COPY(c4, "work.part.0", x * 7 + 4)
COPY(c5, "work.constprop.0.isra.0", x * 7 + 5)
/* Not clones of work(): a clone of another function, an unknown suffix, a longer name. */
COPY(n1, "worker.cold", x - 2)
COPY(n2, "work.foo", x - 3)
COPY(n3, "workx", x - 4)
int main(int c, char **v) {
    (void)v;
    return work(c) + worker(c) + c1(c) + c2(c) + c3(c) + c4(c) + c5(c) + n1(c) + n2(c) + n3(c);
}
SRC
cc_x86 -o "$T/c" "$T/c.c"
cat >"$T/p.c" <<'SRC'
int work(int x) { return x * 7; }
SRC
cc_x86 -shared -fPIC -o "$T/p.so" "$T/p.c"
for n in work.constprop.0 work.cold work.isra.0 work.part.0 work.constprop.0.isra.0 worker.cold work.foo workx; do
    nm "$T/c" | awk -v n="$n" '$3 == n {found = 1} END {exit !found}' || fail "the target has no symbol $n"
done

expect_exit 0 hp-pack "$T/p.so" --target "$T/c" --replace work -o "$T/w.hpk"
clones="work.cold, work.constprop.0, work.constprop.0.isra.0, work.isra.0, work.part.0"
expect_err "hp-pack: warning: $T/c: 'work' has compiler clones ($clones) that callers may call instead"
jq_ok ".ok == true and (.warnings | length == 1) and (.warnings[0] | contains(\"($clones)\"))"
for n in worker.cold work.foo workx; do
    CHECKS=$((CHECKS + 1))
    ! grep -qE "[(, ]${n//./\\.}[,)]" "$T/err" || fail "$n is listed as a clone of work"
done
[ -s "$T/w.hpk" ] || fail "no package written despite a warning only"

# worker has a clone of its own (worker.cold), but no work.* name is one of worker's.
expect_exit 0 hp-pack "$T/p.so" --target "$T/c" --replace worker=work -o "$T/w2.hpk"
expect_err "hp-pack: warning: $T/c: 'worker' has compiler clones (worker.cold) that"

expect_exit 2 hp-pack --strict "$T/p.so" --target "$T/c" --replace work -o "$T/s.hpk"
error_is unsupported
expect_err "$T/c: 'work' has compiler clones ($clones)"
expect_err "(refused: --strict)"
[ ! -e "$T/s.hpk" ] || fail "--strict wrote a package"
