# hp-pack refuses, exit 2, naming file and symbol: OLD not found, OLD ambiguous, OLD not
# a function, NEW missing, NEW not a function, a stripped OLD named by address without NEW,
# a payload symbol or a --description that is not UTF-8.
source "$(dirname "$0")/lib.sh"
cat >"$T/a.c" <<'SRC'
__attribute__((noinline)) static int twin(int x) { return x + 1; }
int use_a(int x) { return twin(x); }
int table[4];
SRC
cat >"$T/b.c" <<'SRC'
__attribute__((noinline)) static int twin(int x) { return x * 2; }
int use_b(int x) { return twin(x); }
int main(int c, char **v) { (void)v; return use_b(c); }
SRC
cc_x86 -fno-inline -o "$T/prog" "$T/a.c" "$T/b.c"
cat >"$T/p.c" <<'SRC'
int use_a(int x) { return x; }
int value = 3;
SRC
cc_x86 -shared -fPIC -o "$T/p.so" "$T/p.c"

expect_exit 2 hp-pack "$T/p.so" --target "$T/prog" --replace nosuch -o "$T/x.hpk"
error_is bad-input
expect_err "hp-pack: error: $T/prog: no function 'nosuch' (looked in .dynsym, .symtab and found no debug file"

expect_exit 2 hp-pack "$T/p.so" --target "$T/prog" --replace twin=use_a -o "$T/x.hpk"
error_is bad-input
expect_err "hp-pack: error: $T/prog: 'twin' is ambiguous: 2 functions of that name in symtab (at 0x"
expect_err "; name the one to replace by address"

expect_exit 2 hp-pack "$T/p.so" --target "$T/prog" --replace table=use_a -o "$T/x.hpk"
error_is bad-input
expect_err "hp-pack: error: $T/prog: 'table' is not a function"

expect_exit 2 hp-pack "$T/p.so" --target "$T/prog" --replace use_b -o "$T/x.hpk"
error_is bad-input
expect_err "hp-pack: error: $T/p.so: has no function 'use_b' to replace 'use_b' of $T/prog"

expect_exit 2 hp-pack "$T/p.so" --target "$T/prog" --replace use_a=value -o "$T/x.hpk"
error_is bad-input
expect_err "hp-pack: error: $T/p.so: replacement 'value' is not a function"

# A symbol name the manifest (JSON, UTF-8 only) cannot hold: the payload needs a Latin-1 one.
cat >"$T/latin1.c" <<'SRC'
extern int ext(int) __asm__("caf\xe9");
int use_a(int x) { return ext(x); }
SRC
cc_x86 -shared -fPIC -o "$T/latin1.so" "$T/latin1.c"
expect_exit 2 hp-pack "$T/latin1.so" --target "$T/prog" --replace use_a -o "$T/x.hpk"
error_is unsupported
expect_err "hp-pack: error: $T/latin1.so: the undefined symbol 'caf\xe9' is not valid UTF-8"

# By address: one of the twins, which has a name of its own in .symtab.
addr=$(nm "$T/prog" | awk '$3 == "twin" && !n++ {print "0x" $1}')
expect_exit 0 hp-pack "$T/p.so" --target "$T/prog" --replace "$addr=use_a" -o "$T/ok.hpk"
jq_ok ".manifest.targets[0].functions[0].symbol == \"twin\" and .manifest.targets[0].functions[0].address == \"$(printf '0x%x' "$addr")\""

# Stripped: the address still works (size from .eh_frame) but NEW must be named.
strip -o "$T/prog-stripped" "$T/prog"
expect_exit 2 hp-pack "$T/p.so" --target "$T/prog-stripped" --replace "$addr" -o "$T/x.hpk"
error_is usage
expect_err "the function has no name"
expect_exit 0 hp-pack "$T/p.so" --target "$T/prog-stripped" --replace "$addr=use_a" -o "$T/ok2.hpk"
jq_ok '.manifest.targets[0].functions[0].size_source == "eh_frame" and .manifest.targets[0].functions[0].symbol == ""'
# An address inside a function is not a function start.
inside=$(printf '0x%x' $((addr + 1)))
expect_exit 2 hp-pack "$T/p.so" --target "$T/prog-stripped" --replace "$inside=use_a" -o "$T/x.hpk"
expect_err "is inside the function at"

# Usage errors: --replace before any --target, no output, bad id.
expect_exit 2 hp-pack "$T/p.so" --replace use_a --target "$T/prog" -o "$T/x.hpk"
error_is usage
expect_err "comes before any --target"
expect_exit 2 hp-pack "$T/p.so" --target "$T/prog" --replace use_a -o "$T/Bad Name.hpk"
error_is usage
expect_err "give --id"
desc=$(printf '%65537s' '')
expect_exit 2 hp-pack "$T/p.so" --target "$T/prog" --replace use_a --description "$desc" -o "$T/x.hpk"
error_is usage
expect_err "hp-pack: error: --description is longer than 64 KiB"
# The manifest is JSON, which holds only UTF-8: a Latin-1 description is a usage error.
expect_exit 2 hp-pack "$T/p.so" --target "$T/prog" --replace use_a --description $'caf\xe9' -o "$T/x.hpk"
error_is usage
expect_err "hp-pack: error: --description is not valid UTF-8"
[ ! -e "$T/x.hpk" ] || fail "a refused pack wrote a package"
