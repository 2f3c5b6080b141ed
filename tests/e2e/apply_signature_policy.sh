# Signature policy: a package signed by a key that is not trusted needs --allow-unsigned;
# with its public key in $HOTPATCH_KEYS it applies without it.
source "$(dirname "$0")/lib.sh"
cc_x86 -o "$T/victim" "$HP_SRC/tests/targets/victim.c"
cc_x86 -shared -fPIC -o "$T/patch.so" "$HP_SRC/tests/targets/patch.c"
mkdir "$T/keys" "$T/trusted"
hp-pack --keygen ops --key-dir "$T/keys" >/dev/null
hp-pack "$T/patch.so" --target "$T/victim" --replace compute --sign "$T/keys/ops.key" -o "$T/signed.hpk" >/dev/null
start_victim v "$T/victim"
HOTPATCH_KEYS="$T/trusted" expect_exit 1 hp-apply -p "$VPID" "$T/signed.hpk"
error_is untrusted
expect_err "which is not in the trusted keys"
cp "$T/keys/ops.pub" "$T/trusted/"
HOTPATCH_KEYS="$T/trusted" expect_exit 0 hp-apply -p "$VPID" "$T/signed.hpk"
expect_answer 5 "22 4 1"
expect_exit 0 hp-apply -p "$VPID" --revert signed
