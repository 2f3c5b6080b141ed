# Signed packages: --keygen, --sign, hp-inspect reports valid + trusted (key in the trusted
# directory) or valid + not trusted; a damaged signature or payload is exit 2 bad-package.
source "$(dirname "$0")/lib.sh"
cc_x86 -o "$T/victim" "$HP_SRC/tests/targets/victim.c"
cc_x86 -shared -fPIC -o "$T/patch.so" "$HP_SRC/tests/targets/patch.c"
mkdir "$T/keys" "$T/trusted"

expect_exit 0 hp-pack --keygen ops --key-dir "$T/keys"
jq_ok '.ok and .keygen.name == "ops" and (.keygen.key_id | test("^[0-9a-f]{16}$"))'
kid=$(jq -r .keygen.key_id "$T/out")
[ "$(stat -c %a "$T/keys/ops.key")" = 600 ] || fail "secret key file is not mode 600"
read -r header <"$T/keys/ops.pub"
[ "$header" = "hotpatch-public-key-v1 ed25519" ] || fail "public key header"
expect_exit 2 hp-pack --keygen ops --key-dir "$T/keys"
error_is usage
expect_err "already exists"

expect_exit 0 hp-pack "$T/patch.so" --target "$T/victim" --replace compute --sign "$T/keys/ops.key" -o "$T/s.hpk"
jq_ok ".signature.status == \"signed\" and .signature.key_id == \"$kid\""

HOTPATCH_KEYS="$T/trusted" expect_exit 0 hp-inspect "$T/s.hpk"
jq_ok ".signature.status == \"valid\" and .signature.key_id == \"$kid\" and .signature.trusted == false"
cp "$T/keys/ops.pub" "$T/trusted/"
HOTPATCH_KEYS="$T/trusted" expect_exit 0 hp-inspect "$T/s.hpk"
jq_ok '.signature.status == "valid" and .signature.trusted == true and .signature.key_name == "ops"'
expect_exit 0 hp-inspect --keys "$T/trusted" --format text "$T/s.hpk"
grep -q "signed   valid, key $kid (trusted)" "$T/out" || fail "text form of a trusted signature"

# The last byte belongs to the signature: flip it.
python3 -c "import sys; d=bytearray(open(sys.argv[1],'rb').read()); d[-1]^=1; open(sys.argv[2],'wb').write(d)" "$T/s.hpk" "$T/badsig.hpk"
expect_exit 2 hp-inspect "$T/badsig.hpk"
error_is bad-package
expect_err "$T/badsig.hpk: invalid signature at offset 0x"
# A byte of the payload: the digest no longer matches.
python3 -c "import sys; d=bytearray(open(sys.argv[1],'rb').read()); d[len(d)//2]^=0x40; open(sys.argv[2],'wb').write(d)" "$T/s.hpk" "$T/badpay.hpk"
expect_exit 2 hp-inspect "$T/badpay.hpk"
error_is bad-package
# The digest sits before the 104-byte signature block: its offset is named.
digest_off=$(printf '0x%x' $(($(stat -c %s "$T/badpay.hpk") - 104 - 32)))
expect_err "digest mismatch: the sha256 at offset $digest_off does not match"
# A malformed secret key file is refused by name.
echo "garbage" >"$T/keys/bad.key"
expect_exit 2 hp-pack "$T/patch.so" --target "$T/victim" --replace compute --sign "$T/keys/bad.key" -o "$T/x.hpk"
expect_err "$T/keys/bad.key: not a hotpatch key file"
