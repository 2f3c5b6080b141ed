# hp-check -p PID PKG | hp-apply -: applies exactly what was checked, to the process the
# document names. Refused (exit 1 check-failed): a failed check document, a document
# given to another process with -p, a document about an earlier instance of the PID (its
# start time differs), a package file changed since the check. hp-apply still needs its
# own --allow-unsigned (exit 1 untrusted).
source "$(dirname "$0")/lib.sh"
cc_x86 -o "$T/victim" "$HP_SRC/tests/targets/victim.c"
cc_x86 -DOTHER_BUILD -o "$T/victim2" "$HP_SRC/tests/targets/victim.c"
cc_x86 -shared -fPIC -o "$T/patch.so" "$HP_SRC/tests/targets/patch.c"
hp-pack "$T/patch.so" --target "$T/victim" --replace compute -o "$T/fix.hpk" >/dev/null
hp-pack "$T/patch.so" --target "$T/victim2" --replace compute -o "$T/other.hpk" >/dev/null
start_victim b "$T/victim"
BPID=$VPID BIN=$VIN BOUT=$VOUT
start_victim v "$T/victim"
expect_answer 5 "6 4 1"

# The real pipe, no -p on hp-apply: the document names the process.
check_then_apply() { hp-check -p "$VPID" --allow-unsigned "$T/fix.hpk" | hp-apply --allow-unsigned -; }
expect_exit 0 check_then_apply
jq_ok ".ok and .pid == $VPID and .record.state == \"applied\" and .package.path == \"$T/fix.hpk\""
expect_answer 5 "22 4 2"
expect_exit 0 hp-apply -p "$VPID" --revert fix
expect_answer 5 "6 4 3"

# The check document itself, every check of the ok case passing.
expect_exit 0 hp-check -p "$VPID" --allow-unsigned "$T/fix.hpk"
jq_ok ".schema == \"hotpatch.check/1\" and .ok and .process.pid == $VPID and (.process.start_time | type == \"number\")"
jq_ok ".package.path == \"$T/fix.hpk\" and (.package.sha256 | length == 64)"
jq_ok '[.checks[] | select(.status == "fail")] | length == 0'
for id in process.exists process.kind process.arch process.traced process.ptrace process.seccomp \
    process.no-new-privs package.modules package.sites package.reach package.symbols package.applied; do
    check_is "$id" pass
done
check_is package.signature warn # unsigned, allowed by --allow-unsigned
cp "$T/out" "$T/check.json"
# With -p naming the same process, as before.
expect_exit 0 hp-apply -p "$VPID" --allow-unsigned - <"$T/check.json"
jq_ok '.ok and .record.state == "applied"'
expect_answer 5 "22 4 4"
expect_exit 0 hp-apply -p "$VPID" --revert fix

# A package file needs -p.
expect_exit 2 hp-apply --allow-unsigned "$T/fix.hpk"
error_is usage

# The document of victim v given to another process (b) with -p.
expect_exit 1 hp-apply -p "$BPID" --allow-unsigned - <"$T/check.json"
error_is check-failed
expect_err "the check document is about process $VPID, not $BPID"
# The same PID, but an earlier instance (its start time differs from the document's).
jq '.process.start_time -= 1' "$T/check.json" >"$T/earlier.json"
expect_exit 1 hp-apply --allow-unsigned - <"$T/earlier.json"
error_is check-failed
expect_err "not the instance that was checked"
# An ok check document does not lift hp-apply's own signature policy.
expect_exit 1 env HOTPATCH_KEYS="$T" hp-apply - <"$T/check.json"
error_is untrusted
expect_answer 5 "6 4 5"
echo 5 >&"$BIN"
read -t 10 -r REPLY <&"$BOUT" || fail "victim b did not answer"
[ "$REPLY" = "6 4 1" ] || fail "victim b answered '$REPLY': it was changed"

# A failed check (another build of the binary) is refused.
expect_exit 1 hp-check -p "$VPID" --allow-unsigned "$T/other.hpk"
jq_ok '.ok == false and .error.code == "not-eligible"'
jq_ok '.checks[] | select(.id == "package.modules") | .status == "fail" and (.detail | contains("victim2"))'
cp "$T/out" "$T/failed.json"
expect_exit 1 hp-apply --allow-unsigned - <"$T/failed.json"
error_is check-failed
# The same through a real pipe: hp-check says no (1), hp-apply refuses (1 check-failed).
refused_pipe() {
    hp-check -p "$VPID" --allow-unsigned "$T/other.hpk" | hp-apply --allow-unsigned -
    local st=("${PIPESTATUS[@]}")
    [ "${st[0]}" -eq 1 ] || { echo "hp-check exited ${st[0]}" >&2; return 9; }
    return "${st[1]}"
}
expect_exit 1 refused_pipe
error_is check-failed
expect_err "the check document says the package is not eligible"
expect_answer 5 "6 4 6"

# Usage and bad input: exit 2.
expect_exit 2 hp-check --allow-unsigned "$T/fix.hpk"
error_is usage
expect_err "give -p PID"
expect_exit 2 hp-check --no-such-option
error_is usage
expect_exit 2 hp-check -p 0
error_is usage
head -c 200 "$T/fix.hpk" >"$T/truncated.hpk"
expect_exit 2 hp-check -p "$VPID" --allow-unsigned "$T/truncated.hpk"
error_is bad-package
expect_err "$T/truncated.hpk"

# The package changed between check and apply.
expect_exit 0 hp-check -p "$VPID" --allow-unsigned "$T/fix.hpk"
cp "$T/out" "$T/check2.json"
hp-pack "$T/patch.so" --target "$T/victim" --replace compute --description changed -o "$T/fix.hpk" >/dev/null
expect_exit 1 hp-apply --allow-unsigned - <"$T/check2.json"
error_is check-failed
expect_err "changed since it was checked"
expect_answer 5 "6 4 7"
