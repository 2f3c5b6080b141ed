# hp-check's package checks, each failing where this machine can produce it and passing
# otherwise, asserted by id and status: package.signature (unsigned, signed by a trusted
# key, by an untrusted one), package.sites (one byte of a site changed behind our back),
# package.applied (applied already; an interrupted apply left a "preparing" record), and
# process.patches listing what is applied, package.arch (an ARM64 package). A check the
# plan did not reach check_is "skip".
source "$(dirname "$0")/lib.sh"
cc_x86 -o "$T/victim" "$HP_SRC/tests/targets/victim.c"
cc_x86 -shared -fPIC -o "$T/patch.so" "$HP_SRC/tests/targets/patch.c"
mkdir "$T/keys" "$T/trusted" "$T/none"
hp-pack --keygen ops --key-dir "$T/keys" >/dev/null
hp-pack "$T/patch.so" --target "$T/victim" --replace compute -o "$T/fix.hpk" >/dev/null
hp-pack "$T/patch.so" --target "$T/victim" --replace compute --sign "$T/keys/ops.key" -o "$T/signed.hpk" >/dev/null
cp "$T/keys/ops.pub" "$T/trusted/"
plan_passes() {
    local id
    for id in package.arch package.busy package.applied package.modules package.sites package.reach \
        package.symbols package.plan; do
        check_is "$id" pass
    done
}
export HOTPATCH_KEYS="$T/none"
start_victim v "$T/victim"

# package.signature: unsigned, without --allow-unsigned: fails; everything else passes.
expect_exit 1 hp-check -p "$VPID" "$T/fix.hpk"
check_is package.signature fail
jq_ok '.ok == false and (.checks[] | select(.id == "package.signature") | .hint | contains("--allow-unsigned"))'
plan_passes
# Signed by a key that is trusted: passes without --allow-unsigned.
HOTPATCH_KEYS="$T/trusted" expect_exit 0 hp-check -p "$VPID" "$T/signed.hpk"
check_is package.signature pass
jq_ok '.ok and (.checks[] | select(.id == "package.signature") | .detail | contains("trusted key"))'
plan_passes
# Signed by a key that is not trusted: fails; --allow-unsigned makes it a warning.
expect_exit 1 hp-check -p "$VPID" "$T/signed.hpk"
check_is package.signature fail
jq_ok ".checks[] | select(.id == \"package.signature\") | .detail | contains(\"not in $T/none\")"
expect_exit 0 hp-check -p "$VPID" --allow-unsigned "$T/signed.hpk"
check_is package.signature warn

# package.sites: one byte of compute's site changed through /proc/PID/mem (the victim
# is not asked anything while it is changed).
expect_exit 0 hp-apply -p "$VPID" --allow-unsigned --dry-run "$T/fix.hpk"
site=$(jq -r '.record.sites[0].address' "$T/out")
poke() {
    python3 - "$VPID" "$site" "$1" <<'PY'
import sys
pid, addr, val = int(sys.argv[1]), int(sys.argv[2], 16), sys.argv[3]
f = open(f"/proc/{pid}/mem", "r+b", 0)
f.seek(addr + 1)
old = f.read(1)
f.seek(addr + 1)
f.write(bytes([old[0] ^ 0xff]) if val == "flip" else bytes.fromhex(val))
print(old.hex())
PY
}
orig=$(poke flip)
expect_exit 1 hp-check -p "$VPID" --allow-unsigned "$T/fix.hpk"
check_is package.sites fail
jq_ok ".checks[] | select(.id == \"package.sites\") | .detail | contains(\"$site\")"
check_is package.modules pass
check_is package.applied pass
check_is package.reach skip
check_is package.symbols skip
check_is package.plan pass
poke "$orig" >/dev/null
expect_exit 0 hp-check -p "$VPID" --allow-unsigned "$T/fix.hpk"
check_is package.sites pass
expect_answer 5 "6 4 1"

# package.applied: applied already. process.patches lists it with its state.
expect_exit 0 hp-apply -p "$VPID" --allow-unsigned "$T/fix.hpk"
expect_exit 1 hp-check -p "$VPID" --allow-unsigned "$T/fix.hpk"
check_is package.applied fail
jq_ok ".checks[] | select(.id == \"package.applied\") | (.detail | contains(\"already applied\")) and .hint == \"hp-verify -p $VPID lists the patches applied\""
check_is package.busy pass
check_is package.modules skip
check_is process.patches pass
jq_ok '.checks[] | select(.id == "process.patches") | .detail | startswith("patch '"'"'fix'"'"' applied (1 sites")'
expect_answer 5 "22 4 2"
expect_exit 0 hp-apply -p "$VPID" --revert fix
jq_ok '.unmapped'
expect_exit 0 hp-check -p "$VPID"
check_is process.patches pass
jq_ok '[.checks[] | select(.id == "process.patches") | .detail] == ["no patches applied"]'

# An apply killed after its prepare step left a "preparing" record: process.patches
# warns with the repair command, and package.applied fails until it is repaired.
start_victim w "$T/victim"
killed_apply prepared -p "$VPID" --allow-unsigned "$T/fix.hpk"
expect_exit 1 hp-check -p "$VPID" --allow-unsigned "$T/fix.hpk"
check_is process.patches warn
jq_ok ".checks[] | select(.id == \"process.patches\") | (.detail | contains(\"'fix' preparing\") and contains(\"interrupted\"))
       and .hint == \"hp-apply -p $VPID --revert fix\""
check_is package.applied fail
jq_ok '.checks[] | select(.id == "package.applied") | .detail | contains("did not finish")'
expect_exit 0 hp-apply -p "$VPID" --revert fix
expect_exit 0 hp-check -p "$VPID" --allow-unsigned "$T/fix.hpk"
plan_passes
expect_answer 5 "6 4 1"

# package.arch: a package for ARM64 (cross-compiled) checked against this x86-64 process:
# it fails, and the plan's later checks are skipped.
cc_arm64 -o "$T/arm-victim" "$HP_SRC/tests/targets/victim.c"
cc_arm64 -shared -fPIC -o "$T/arm-patch.so" "$HP_SRC/tests/targets/patch.c"
hp-pack "$T/arm-patch.so" --target "$T/arm-victim" --replace compute -o "$T/arm.hpk" >/dev/null
expect_exit 1 hp-check -p "$VPID" --allow-unsigned "$T/arm.hpk"
check_is package.arch fail
jq_ok '.checks[] | select(.id == "package.arch") | .detail | contains("aarch64")'
for id in package.busy package.applied package.modules package.sites package.reach package.symbols; do
    check_is "$id" skip
done
check_is package.plan pass
