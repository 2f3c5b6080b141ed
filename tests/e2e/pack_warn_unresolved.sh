# A payload needing a symbol that no target defines or imports, and that no library the
# patch was linked against provides (typically a static the compiler inlined away): warn,
# and refuse with --strict.
source "$(dirname "$0")/lib.sh"
cat >"$T/v.c" <<'SRC'
static int helper(int x) { return x * 2; }   /* inlined: no symbol survives */
int work(int x) { return helper(x) + 1; }
int main(int c, char **v) { (void)v; return work(c); }
SRC
cc_x86 -o "$T/v" "$T/v.c"
syms=$(nm "$T/v")
grep -qw helper <<<"$syms" && fail "fixture: helper was not inlined"
cat >"$T/p.c" <<'SRC'
int helper(int x);
int work(int x) { return helper(x) + 2; }
SRC
cc_x86 -shared -fPIC -o "$T/p.so" "$T/p.c"
expect_exit 0 hp-pack "$T/p.so" --target "$T/v" --replace work -o "$T/w.hpk"
expect_err "hp-pack: warning: $T/p.so: the payload needs 'helper', which no target defines or imports"
jq_ok '.ok and (.warnings | length == 1)'
expect_exit 2 hp-pack --strict "$T/p.so" --target "$T/v" --replace work -o "$T/s.hpk"
error_is unsupported
[ ! -e "$T/s.hpk" ] || fail "--strict wrote a package"
