# A victim whose seccomp filter kills the process on an executable mmap, or denies
# memfd_create: hp-apply reads the filter first and refuses (exit 1 not-eligible) naming
# the call, and the victim is intact; a filter that allows everything does not stop it.
source "$(dirname "$0")/lib.sh"
cc_x86 -o "$T/sv" "$HP_SRC/tests/targets/seccomp_victim.c"
cat >"$T/p.c" <<'SRC'
int nothing(void) { return 1; }
SRC
cc_x86 -shared -fPIC -o "$T/p.so" "$T/p.c"
grep -q "ping" "$HP_SRC/tests/targets/seccomp_victim.c" || fail "fixture: victim has no ping request"
for mode in kill-mmap errno-memfd allow-log; do
    start_victim "$mode" "$T/sv" "$mode"
    addr=$(nm "$T/sv" | awk '$3 == "main" {print "0x" $1}')
    hp-pack "$T/p.so" --target "$T/sv" --replace "main=nothing" -o "$T/$mode.hpk" --id "sc-$mode" >/dev/null
    if [ "$mode" = allow-log ]; then
        # main is always on the main thread's stack: --consistency stack would (rightly)
        # refuse; the filter, not the consistency model, is under test here.
        expect_exit 0 hp-apply -p "$VPID" --allow-unsigned --dry-run "$T/$mode.hpk"
        expect_exit 0 hp-apply -p "$VPID" --allow-unsigned --consistency entry "$T/$mode.hpk"
        expect_exit 0 hp-apply -p "$VPID" --revert "sc-$mode"
    else
        expect_exit 1 hp-apply -p "$VPID" --allow-unsigned "$T/$mode.hpk"
        error_is not-eligible
        case $mode in
        kill-mmap) expect_err "kill the process on mmap" ;;
        errno-memfd) expect_err "memfd_create" ;;
        esac
        grep -q hotpatch "/proc/$VPID/maps" && fail "a patch mapping was left behind ($mode)"
    fi
    expect_answer ping pong
done
