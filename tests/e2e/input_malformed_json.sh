# Malformed JSON on standard input of hp-apply -p PID - and hp-verify -p PID -: exit 2,
# bad-input, a message naming the problem, never a crash — and the victim untouched (its
# executable memory byte for byte) and still answering. A check document that says no is
# refused as check-failed (exit 1), as the contract says.
source "$(dirname "$0")/lib.sh"
cc_x86 -o "$T/victim" "$HP_SRC/tests/targets/victim.c"
cc_x86 -shared -fPIC -o "$T/patch.so" "$HP_SRC/tests/targets/patch.c"
hp-pack "$T/patch.so" --target "$T/victim" --replace compute --replace other=other_v2 -o "$T/fix.hpk" >/dev/null
start_victim v "$T/victim"
expect_answer 5 "6 4 1"
calls=1

# Real documents to break: a check, a dry-run apply (its record has every site), an inspect.
expect_exit 0 hp-check -p "$VPID" --allow-unsigned "$T/fix.hpk"
jq -c . "$T/out" >"$T/check.json"
expect_exit 0 hp-apply -p "$VPID" --allow-unsigned --dry-run "$T/fix.hpk"
jq -c . "$T/out" >"$T/apply.json"
jq_ok '.record.sites | length == 2'
hp-inspect "$T/fix.hpk" | jq -c . >"$T/inspect.json"
exec_snapshot "$VPID" >"$T/exec.before"

# still_untouched: the victim answers, and no tracer is left on it.
still_untouched() {
    calls=$((calls + 1))
    expect_answer 5 "6 4 $calls"
    CHECKS=$((CHECKS + 1))
    is_untraced "$VPID" || fail "a tracer is still attached to the victim"
}
# refused TOOL INPUT_FILE CODE MESSAGE: TOOL -p VPID - < INPUT_FILE exits with CODE's
# status, the document says CODE, and stderr names MESSAGE.
refused() {
    local tool=$1 file=$2 code=$3 msg=$4 status=2
    [ "$code" = check-failed ] && status=1
    case "$tool" in
    hp-apply) expect_exit "$status" hp-apply -p "$VPID" --allow-unsigned - <"$file" ;;
    hp-verify) expect_exit "$status" hp-verify -p "$VPID" - <"$file" ;;
    esac
    error_is "$code"
    expect_err "$tool: error: "
    expect_err "$msg"
}
# both NAME APPLY_MESSAGE VERIFY_MESSAGE: $T/NAME.json is bad input to both tools.
both() {
    refused hp-apply "$T/$1.json" bad-input "$2"
    refused hp-verify "$T/$1.json" bad-input "$3"
    still_untouched
}
# edit_check NAME JQ / edit_apply NAME JQ / edit_inspect NAME JQ: a real document, broken.
edit_check() { jq -c "$2" "$T/check.json" >"$T/$1.json"; }
edit_apply() { jq -c "$2" "$T/apply.json" >"$T/$1.json"; }
edit_inspect() { jq -c "$2" "$T/inspect.json" >"$T/$1.json"; }
not_json="standard input is not valid JSON"

# Not JSON at all, or not one JSON text.
: >"$T/empty.json"
both empty "standard input is empty" "standard input is empty"
printf ' \n\t\n' >"$T/blank.json"
both blank "$not_json: parse error at line" "$not_json: parse error at line"
echo 'not json' >"$T/garbage.json"
both garbage "$not_json: parse error at line 1, column 2" "$not_json"
{ cat "$T/check.json"; echo ' x'; } >"$T/trailing.json"
both trailing "expected end of input" "expected end of input"
cat "$T/apply.json" "$T/apply.json" >"$T/two.json"
both two "expected end of input" "expected end of input"
head -c 200 "$T/apply.json" >"$T/truncated.json"
both truncated "$not_json" "$not_json"
# nlohmann's lexer alone would take the NUL byte for the end of the input.
{ cat "$T/check.json"; printf '\0trailing'; } >"$T/nul.json"
both nul "$not_json: a NUL byte at offset" "$not_json: a NUL byte at offset"
printf '{"schema":"hotpatch.apply/1","ok":true,"record":{"id":"\xff\xfe"}}' >"$T/utf8.json"
both utf8 "ill-formed UTF-8 byte" "ill-formed UTF-8 byte"
CHECKS=$((CHECKS + 1))
LC_ALL=C grep -qP '[^\x09\x0a\x20-\x7e]' "$T/err" && fail "stderr holds raw bytes of the input"
echo '{"schema":"hotpatch.check/1","ok":true,"process":{"pid":1e400}}' >"$T/overflow.json"
both overflow "number overflow parsing '1e400'" "number overflow parsing '1e400'"

# Within the limits of the reader: nesting, values, size.
python3 - "$T" <<'PY'
import sys
t = sys.argv[1]
open(f"{t}/deep.json", "w").write("[" * 100000 + "]" * 100000)
open(f"{t}/values.json", "w").write("[" + "0," * 5000000 + "0]")
open(f"{t}/million.json", "w").write("[" + "0," * 999999 + "0]")
PY
both deep "nested deeper than 64 levels" "nested deeper than 64 levels"
both values "more than 4194304 JSON values" "more than 4194304 JSON values"
head -c $((64 * 1024 * 1024 + 1)) /dev/zero | tr '\0' ' ' >"$T/huge.json"
both huge "larger than 67108864 bytes" "larger than 67108864 bytes"
both million "upstream document: not a JSON object" "upstream document: not a JSON object"
echo '42' >"$T/scalar.json"
both scalar "upstream document: not a JSON object" "upstream document: not a JSON object"
edit_apply million-sites '.record.sites = [range(1000000)]'
both million-sites 'schema "hotpatch.apply/1" is not hotpatch.check/1' \
    "upstream document: record.sites: 1000000 entries (limit 100000)"

# A check document whose fields have the wrong types or values. hp-verify refuses each for
# its schema already.
no_sites='schema "hotpatch.check/1" is not hotpatch.apply/1 or hotpatch.inspect/1'
edit_check pid-string '.process.pid |= tostring'
both pid-string "upstream document: process.pid: not an integer" "$no_sites"
# get<int>() would have cut this one down to the victim's own PID.
edit_check pid-wraps ".process.pid += 4294967296"
both pid-wraps "upstream document: process.pid: $((VPID + 4294967296)) is out of range" "$no_sites"
edit_check pid-negative '.process.pid = -.process.pid'
both pid-negative "upstream document: process.pid: -$VPID is out of range" "$no_sites"
edit_check pid-float '.process.pid += 0.5'
both pid-float "upstream document: process.pid: not an integer" "$no_sites"
edit_check start-negative '.process.start_time = -1'
both start-negative "upstream document: process.start_time: -1 is negative" "$no_sites"
sed 's/"start_time":[0-9]*/"start_time":18446744073709551616/' "$T/check.json" >"$T/start-huge.json"
both start-huge "upstream document: process.start_time: not a non-negative integer" "$no_sites"
edit_check sha-number '.package.sha256 = 5'
both sha-number "upstream document: package.sha256: not a string" "$no_sites"
edit_check sha-empty '.package.sha256 = ""'
both sha-empty "upstream document: package.sha256: not a sha256" "$no_sites"
edit_check path-nul '.package.path += "\u0000.evil"'
both path-nul "upstream document: package.path: holds a NUL byte" "$no_sites"
edit_check ok-string '.ok = "true"'
both ok-string "upstream document: ok: not a boolean" "$no_sites"
edit_check no-process 'del(.process)'
both no-process 'upstream document: missing "process"' "$no_sites"
edit_check nested-garbage '.package = [[[{"path": {"path": []}}]]]'
both nested-garbage "upstream document: package: not an object" "$no_sites"
edit_check schema-number '.schema = 1'
both schema-number "upstream document: schema: not a string" "upstream document: schema: not a string"

# A valid hotpatch.apply/1 whose record.sites entries are broken, and an inspect document
# with a broken function. hp-apply refuses each for its schema.
no_check='schema "hotpatch.apply/1" is not hotpatch.check/1'
edit_apply site-address-number '.record.sites[1].address = 4198400'
both site-address-number "$no_check" "upstream document: record.sites[1].address: not a string"
edit_apply site-address-bad '.record.sites[0].address = "0x10000000000000000"'
both site-address-bad "$no_check" "upstream document: record.sites[0].address: not an address"
edit_apply site-bytes-missing 'del(.record.sites[1].original)'
both site-bytes-missing "$no_check" 'upstream document: record.sites[1]: missing "original"'
edit_apply site-bytes-odd '.record.sites[0].original = "e9d"'
both site-bytes-odd "$no_check" "upstream document: record.sites[0].original: not hex bytes (1..64)"
edit_apply site-null '.record.sites[0] = null'
both site-null "$no_check" "upstream document: record.sites[0]: not an object"
edit_apply sites-object '.record.sites = {"0": .record.sites[0]}'
both sites-object "$no_check" "upstream document: record.sites: not an array"
edit_apply apply-pid-wraps '.pid += 4294967296'
both apply-pid-wraps "$no_check" "upstream document: pid: $((VPID + 4294967296)) is out of range"
edit_apply apply-other-pid '.pid = 1'
both apply-other-pid "$no_check" "upstream document: the document is about process 1, not $VPID"
edit_inspect function-site '.functions[0].site.expected = 12'
both function-site 'schema "hotpatch.inspect/1" is not hotpatch.check/1' \
    "upstream document: functions[0].site.expected: not a string"

# A well-formed check document that says no: check-failed, the contract for it.
edit_check check-says-no '.ok = false'
refused hp-apply "$T/check-says-no.json" check-failed "the check document says the package is not eligible"
still_untouched

# Nothing of all that reached the victim's code; good input still works after it.
exec_snapshot "$VPID" >"$T/exec.after"
CHECKS=$((CHECKS + 1))
diff "$T/exec.before" "$T/exec.after" >&2 || fail "the victim's executable memory changed"
expect_exit 0 hp-verify -p "$VPID" - <"$T/apply.json"
jq_ok '.ok and (.sites | length == 2) and all(.sites[]; .status == "planned")'
