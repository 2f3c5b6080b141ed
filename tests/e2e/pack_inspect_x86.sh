# hp-pack builds a package for an x86-64 victim; hp-inspect describes it, and every
# field scripts rely on is checked against the binaries themselves.
source "$(dirname "$0")/lib.sh"
cc_x86 -o "$T/victim" "$HP_SRC/tests/targets/victim.c"
cc_x86 -shared -fPIC -o "$T/patch.so" "$HP_SRC/tests/targets/patch.c"

expect_exit 0 hp-pack "$T/patch.so" --target "$T/victim" --replace compute --replace other=other_v2 \
    --description "test fix" -o "$T/fix-1.hpk"
jq_ok '.schema == "hotpatch.pack/1" and .tool == "hp-pack" and .ok == true and .id == "fix-1"'
jq_ok '.functions == 2 and .signature.status == "unsigned"'
jq_ok '.sha256 | test("^[0-9a-f]{64}$")'
[ -s "$T/fix-1.hpk" ] || fail "no package written"

expect_exit 0 hp-inspect "$T/fix-1.hpk"
cp "$T/out" "$T/inspect.json"
jq_ok '.schema == "hotpatch.inspect/1" and .ok == true and .integrity.status == "ok"'
jq_ok '.signature.status == "unsigned"'
jq_ok '.manifest.id == "fix-1" and .manifest.description == "test fix" and .manifest.arch == "x86_64"'
jq_ok '.manifest.created | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z$")'

# The build-id is the victim's own (as readelf prints it).
bid=$(readelf -n "$T/victim" | awk '/Build ID/ {print $3}')
jq_ok ".manifest.targets[0].build_id == \"$bid\" and .manifest.targets[0].module == \"victim\""

# The old function's address and size are nm's; the expected bytes are the file's bytes.
read -r addr size < <(nm -S "$T/victim" | awk '$4 == "compute" {print $1, $2}')
want_addr=$(printf '0x%x' "0x$addr")
jq_ok ".functions[0].address == \"$want_addr\" and .functions[0].size == $((16#$size))"
site=$(jq -r '.functions[0].site.address' "$T/inspect.json")
len=$(jq -r '.functions[0].site.expected | length / 2' "$T/inspect.json")
bytes=$(objdump -d --start-address="$site" --stop-address=$((site + len)) "$T/victim" |
    awk -F'\t' '/^ *[0-9a-f]+:/ {gsub(/ /, "", $2); printf "%s", $2}')
jq_ok ".functions[0].site.expected == \"$bytes\""
jq_ok '.functions[0].site.length >= 5 and .functions[0].replacement == "compute"'
jq_ok '.functions[1].symbol == "other" and .functions[1].replacement == "other_v2"'
# sha256 of the whole old function.
off=$(python3 -c "
import sys
data=open('$T/victim','rb').read()
import struct
phoff=struct.unpack_from('<Q',data,32)[0]; n=struct.unpack_from('<H',data,56)[0]
a=int('$want_addr',16)
for i in range(n):
    t,f,o,v,p,fs,ms,al=struct.unpack_from('<IIQQQQQQ',data,phoff+56*i)
    if t==1 and v<=a<v+fs: print(o+a-v)
")
# (dd, not tail | head: under pipefail, head closing early can SIGPIPE tail.)
fsha=$(dd if="$T/victim" bs=1 skip="$off" count=$((16#$size)) status=none | sha256sum | cut -d' ' -f1)
jq_ok ".functions[0].sha256 == \"$fsha\""

# Undefined symbols: the victim's statics were resolved to its addresses at pack time;
# libc's strlen is left for the process.
calls_addr=$(printf '0x%x' "0x$(nm "$T/victim" | awk '$3 == "calls" {print $1}')")
jq_ok ".payload.undefined[] | select(.name == \"calls\") | .provider == \"target:0\" and .address == \"$calls_addr\""
jq_ok '.payload.undefined[] | select(.name == "scale") | .provider == "target:0"'
jq_ok '.payload.undefined[] | select(.name == "strlen") | .provider == "process"'
jq_ok '.manifest.targets[0].local_symbols | map(.name) | sort == ["calls", "scale"]'
jq_ok '.payload.segments | map(select(.flags == "r-x")) | length == 1'
jq_ok '[.functions[] | has("site_disasm")] | any | not'

# --disasm: Zydis text for the expected site and the replacement.
expect_exit 0 hp-inspect --disasm "$T/fix-1.hpk"
jq_ok '.functions[0].site_disasm | length >= 1'
jq_ok '[.functions[0].replacement_disasm[].text] | any(test("^ret"))'
first=$(objdump -d -M intel --start-address="$site" --stop-address=$((site + len)) "$T/victim" |
    awk -F'\t' '/^ *[0-9a-f]+:/ && !n++ {print $3}' | awk '{print $1}')
jq_ok ".functions[0].site_disasm[0].text | startswith(\"$first\")"

# The text form for a terminal.
expect_exit 0 hp-inspect --disasm --format text "$T/fix-1.hpk"
grep -q "^id       fix-1" "$T/out" || fail "text form lacks the id"
grep -q "compute" "$T/out" || fail "text form lacks the function"

# Without --format, a terminal on stdout gets the text form (run under a pseudo-terminal
# by script(1); its output has CR LF line ends) and a pipe gets JSON.
on_tty() { # on_tty CMD...: stdout+stderr of CMD run on a pseudo-terminal -> $T/tty
    local cmd
    printf -v cmd '%q ' "$@"
    CHECKS=$((CHECKS + 1))
    script -qec "$cmd" /dev/null </dev/null >"$T/tty" || fail "'$*' on a terminal exited $?"
    tr -d '\r' <"$T/tty" >"$T/tty.txt"
}
on_tty hp-inspect "$T/fix-1.hpk"
grep -q "^id       fix-1$" "$T/tty.txt" || fail "hp-inspect on a terminal: no text line 'id       fix-1': $(cat "$T/tty.txt")"
grep -q "compute" "$T/tty.txt" || fail "hp-inspect on a terminal: the function is not named"
! grep -q '"schema"' "$T/tty.txt" || fail "hp-inspect on a terminal printed JSON"
on_tty hp-pack "$T/patch.so" --target "$T/victim" --replace compute -o "$T/tty-fix.hpk"
grep -q "^wrote $T/tty-fix.hpk ([0-9]* bytes): patch 'tty-fix', 1 function(s), unsigned$" "$T/tty.txt" ||
    fail "hp-pack on a terminal: no 'wrote ...' line: $(cat "$T/tty.txt")"
! grep -q '"schema"' "$T/tty.txt" || fail "hp-pack on a terminal printed JSON"
[ -s "$T/tty-fix.hpk" ] || fail "hp-pack on a terminal wrote no package"

# The package can come from stdin.
set +e; hp-inspect - <"$T/fix-1.hpk" >"$T/out" 2>"$T/err"; rc=$?; set -e
[ $rc -eq 0 ] || fail "hp-inspect - exited $rc"
jq_ok '.manifest.id == "fix-1"'
