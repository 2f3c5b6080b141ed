# hp-verify notices a site overwritten behind its back (one byte poked through
# /proc/PID/mem): exit 1 verify-mismatch, naming the site.
source "$(dirname "$0")/lib.sh"
cc_x86 -o "$T/victim" "$HP_SRC/tests/targets/victim.c"
cc_x86 -shared -fPIC -o "$T/patch.so" "$HP_SRC/tests/targets/patch.c"
hp-pack "$T/patch.so" --target "$T/victim" --replace compute -o "$T/poke.hpk" >/dev/null
start_victim v "$T/victim"
expect_exit 0 hp-apply -p "$VPID" --allow-unsigned "$T/poke.hpk"
cp "$T/out" "$T/apply.json"
site=$(jq -r '.record.sites[0].address' "$T/apply.json")
expect_exit 0 hp-verify -p "$VPID"
# inspect | verify: per site "patched" by this package.
hp-inspect "$T/poke.hpk" >"$T/inspect.json"
expect_exit 0 hp-verify -p "$VPID" - <"$T/inspect.json"
jq_ok '.ok and .package.state == "applied" and .sites[0].status == "patched"'

python3 -c "
import sys
f = open('/proc/$VPID/mem', 'r+b', 0); f.seek($site + 1); f.write(b'\x90')" # one byte, behind our back
expect_exit 1 hp-verify -p "$VPID"
error_is verify-mismatch
expect_err "site of compute at $site"
jq_ok '.patches[0].sites[0].status == "other" and .patches[0].sites[0].ok == false'
expect_exit 1 hp-verify -p "$VPID" - <"$T/apply.json"
error_is verify-mismatch
expect_exit 1 hp-verify -p "$VPID" - <"$T/inspect.json"
error_is verify-mismatch
jq_ok '.sites[0].status == "other"'
# Malformed input: exit 2.
echo '{"schema": "hotpatch.apply/1", "ok": true, "record": {"sites": 3}}' >"$T/bad.json"
expect_exit 2 hp-verify -p "$VPID" - <"$T/bad.json"
error_is bad-input
echo 'not json' >"$T/bad2.json"
expect_exit 2 hp-verify -p "$VPID" - <"$T/bad2.json"
error_is bad-input
