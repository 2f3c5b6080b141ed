# Wrong build-id, wrong site bytes, a symbol the process cannot provide, an unsigned
# package without --allow-unsigned, --dry-run: the right exit status and error code, and
# every executable mapping of the victim byte-identical before and after.
source "$(dirname "$0")/lib.sh"
cc_x86 -o "$T/victim" "$HP_SRC/tests/targets/victim.c"
cc_x86 -DOTHER_BUILD -o "$T/victim2" "$HP_SRC/tests/targets/victim.c"   # another build-id
cc_x86 -shared -fPIC -o "$T/patch.so" "$HP_SRC/tests/targets/patch.c"
hp-pack "$T/patch.so" --target "$T/victim2" --replace compute -o "$T/other-build.hpk" >/dev/null
hp-pack "$T/patch.so" --target "$T/victim" --replace compute -o "$T/good.hpk" >/dev/null
cat >"$T/missing.c" <<'SRC'
long no_such_function_anywhere(long);
long compute(long x) { return no_such_function_anywhere(x); }
SRC
cc_x86 -shared -fPIC -o "$T/missing.so" "$T/missing.c"
hp-pack "$T/missing.so" --target "$T/victim" --replace compute -o "$T/missing.hpk" >/dev/null 2>&1
# The same package with one expected site byte changed (and the digest recomputed).
python3 - "$T/good.hpk" "$T/badsite.hpk" <<'PY'
import hashlib, json, struct, sys
d = bytearray(open(sys.argv[1], 'rb').read())
msize, psize = struct.unpack_from('<QQ', d, 16)
m = json.loads(d[32:32 + msize])
e = m['targets'][0]['functions'][0]['site']['expected']
m['targets'][0]['functions'][0]['site']['expected'] = ('00' if e[:2] != '00' else '01') + e[2:]
mj = json.dumps(m, separators=(',', ':')).encode()
payload = d[(32 + msize + 15) // 16 * 16:][:psize]
out = bytearray(d[:16]) + struct.pack('<QQ', len(mj), psize) + mj
out += b'\0' * ((-len(out)) % 16) + payload
out += hashlib.sha256(out).digest()
open(sys.argv[2], 'wb').write(out)
PY
start_victim v "$T/victim"
exec_snapshot "$VPID" >"$T/before"

expect_exit 1 hp-apply -p "$VPID" --allow-unsigned "$T/other-build.hpk"
error_is build-id-mismatch
expect_err "module 'victim2'"
expect_err "'compute'"

expect_exit 1 hp-apply -p "$VPID" --allow-unsigned "$T/badsite.hpk"
error_is site-mismatch
expect_err "the site of 'compute' in victim at 0x"

expect_exit 1 hp-apply -p "$VPID" --allow-unsigned "$T/missing.hpk"
error_is not-eligible
expect_err "no_such_function_anywhere"

expect_exit 1 hp-apply -p "$VPID" "$T/good.hpk"
error_is untrusted
expect_err "unsigned"

expect_exit 0 hp-apply -p "$VPID" --allow-unsigned --dry-run "$T/good.hpk"
jq_ok '.ok and .action == "dry-run" and .record.state == "planned" and (.record.sites | length == 1)'
jq_ok '.record.sites[0].new | startswith("e9")'

expect_exit 3 hp-apply -p 999999999 --allow-unsigned "$T/good.hpk"
error_is no-such-process

exec_snapshot "$VPID" >"$T/after"
CHECKS=$((CHECKS + 1))
diff "$T/before" "$T/after" >&2 || fail "executable mappings changed"
grep -q hotpatch "/proc/$VPID/maps" && fail "a patch mapping was left behind"
expect_answer 5 "6 4 1"

# A package for another build is refused before the repair of what a killed apply left:
# the half state (a record still "preparing", its mapping) stays exactly as it was, for
# hp-verify to show, until an hp-apply that goes on, or --revert, repairs it.
killed_apply prepared -p "$VPID" --allow-unsigned "$T/good.hpk"
expect_exit 1 hp-verify -p "$VPID"
jq_ok '.patches | length == 1 and .[0].id == "good" and .[0].state == "preparing"'
cp "/proc/$VPID/maps" "$T/maps.half"
ls -l "/proc/$VPID/fd" | awk '{print $9, $10, $11}' >"$T/fd.half"
exec_snapshot "$VPID" >"$T/half"
expect_exit 1 hp-apply -p "$VPID" --allow-unsigned "$T/other-build.hpk"
error_is build-id-mismatch
jq_ok '.repaired == null or .repaired == []'
CHECKS=$((CHECKS + 1))
diff "$T/maps.half" "/proc/$VPID/maps" >&2 || fail "the refusal changed /proc/PID/maps (a repair ran)"
ls -l "/proc/$VPID/fd" | awk '{print $9, $10, $11}' | diff "$T/fd.half" - >&2 || fail "the refusal changed the descriptors"
exec_snapshot "$VPID" | diff "$T/half" - >&2 || fail "the refusal changed an executable mapping"
expect_exit 1 hp-verify -p "$VPID"
jq_ok '.patches | length == 1 and .[0].state == "preparing"'
expect_exit 0 hp-apply -p "$VPID" --revert good
exec_snapshot "$VPID" >"$T/repaired"
CHECKS=$((CHECKS + 1))
diff "$T/before" "$T/repaired" >&2 || fail "executable mappings differ after the repair"
grep -q hotpatch "/proc/$VPID/maps" && fail "a patch mapping is left after the repair"
expect_answer 5 "6 4 2"
