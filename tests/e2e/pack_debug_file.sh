# A stripped target: OLD and the statics the patch uses are found in its separate debug
# file, located by build-id under --debug-dir (DIR/.build-id/xx/yyyy.debug).
source "$(dirname "$0")/lib.sh"
cc_x86 -g -o "$T/victim" "$HP_SRC/tests/targets/victim.c"
cc_x86 -shared -fPIC -o "$T/patch.so" "$HP_SRC/tests/targets/patch.c"
bid=$(readelf -n "$T/victim" | awk '/Build ID/ {print $3}')
mkdir -p "$T/debug/.build-id/${bid:0:2}"
objcopy --only-keep-debug "$T/victim" "$T/debug/.build-id/${bid:0:2}/${bid:2}.debug"
strip "$T/victim"
[[ $(nm "$T/victim" 2>&1) == *"no symbols"* ]] || fail "fixture: victim still has symbols"

# Without the debug file, compute (not exported) cannot be found.
expect_exit 2 hp-pack "$T/patch.so" --target "$T/victim" --replace compute -o "$T/x.hpk"
expect_err "no function 'compute'"
expect_err "found no debug file by build-id"

expect_exit 0 hp-pack "$T/patch.so" --target "$T/victim" --replace compute --debug-dir "$T/debug" -o "$T/d.hpk"
jq_ok '.manifest.targets[0].functions[0].size_source == "debug" and .manifest.targets[0].functions[0].symbol == "compute"'
jq_ok '.manifest.targets[0].local_symbols | map(.name) | sort == ["calls", "scale"]'
