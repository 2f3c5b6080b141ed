# A target with compiler clones of the replaced function: hp-pack warns (and still
# packs); with --strict it refuses.
source "$(dirname "$0")/lib.sh"
cat >"$T/c.c" <<'SRC'
__attribute__((noinline)) int work(int x) { return x * 7 + 1; }
/* What gcc emits for a constant-propagated or split copy of work(). */
__attribute__((noinline, used)) static int work_clone(int x) __asm__("work.constprop.0");
static int work_clone(int x) { return x * 7 + 2; }
__attribute__((noinline, used)) static int work_cold(int x) __asm__("work.cold");
static int work_cold(int x) { return x - 1; }
int main(int c, char **v) { (void)v; return work(c) + work_clone(c) + work_cold(c); }
SRC
cc_x86 -o "$T/c" "$T/c.c"
cat >"$T/p.c" <<'SRC'
int work(int x) { return x * 7; }
SRC
cc_x86 -shared -fPIC -o "$T/p.so" "$T/p.c"

expect_exit 0 hp-pack "$T/p.so" --target "$T/c" --replace work -o "$T/w.hpk"
expect_err "hp-pack: warning: $T/c: 'work' has compiler clones (work.cold, work.constprop.0)"
jq_ok '.ok == true and (.warnings | length == 1) and (.warnings[0] | contains("work.constprop.0"))'
[ -s "$T/w.hpk" ] || fail "no package written despite a warning only"

expect_exit 2 hp-pack --strict "$T/p.so" --target "$T/c" --replace work -o "$T/s.hpk"
error_is unsupported
expect_err "(refused: --strict)"
[ ! -e "$T/s.hpk" ] || fail "--strict wrote a package"
