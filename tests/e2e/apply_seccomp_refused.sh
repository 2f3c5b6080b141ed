# A victim whose seccomp filter kills the process on an executable mmap, denies
# memfd_create, or denies an executable mmap (EPERM): hp-apply reads the filter first and
# refuses (exit 1 not-eligible), the message saying what the filter would do to which
# call, before any remote system call ran: the fault point inside each one is never
# reached, no patch mapping or descriptor appears, the code is unchanged, hp-apply has
# detached. The victim is intact and serves on. A filter that allows everything does not
# stop it.
source "$(dirname "$0")/lib.sh"
cc_x86 -o "$T/sv" "$HP_SRC/tests/targets/seccomp_victim.c"
cat >"$T/p.c" <<'SRC'
int nothing(void) { return 1; }
SRC
cc_x86 -shared -fPIC -o "$T/p.so" "$T/p.c"
grep -q "ping" "$HP_SRC/tests/targets/seccomp_victim.c" || fail "fixture: victim has no ping request"
for mode in kill-mmap errno-memfd errno-mmap allow-log; do
    start_victim "$mode" "$T/sv" "$mode"
    hp-pack "$T/p.so" --target "$T/sv" --replace "main=nothing" -o "$T/$mode.hpk" --id "sc-$mode" >/dev/null
    if [ "$mode" = allow-log ]; then
        # main is always on the main thread's stack: --consistency stack would (rightly)
        # refuse; the filter, not the consistency model, is under test here.
        expect_exit 0 hp-apply -p "$VPID" --allow-unsigned --dry-run "$T/$mode.hpk"
        expect_exit 0 hp-apply -p "$VPID" --allow-unsigned --consistency entry "$T/$mode.hpk"
        expect_exit 0 hp-apply -p "$VPID" --revert "sc-$mode"
    else
        exec_snapshot "$VPID" >"$T/before"
        fds_before=$(ls "/proc/$VPID/fd" | sort)
        # The fault point inside every remote system call (man hp-apply) would kill hp-apply
        # (exit 137) had one begun: the refusal comes first.
        expect_exit 1 env HOTPATCH_TEST_FAULT=in-syscall hp-apply -p "$VPID" --allow-unsigned \
            --consistency entry "$T/$mode.hpk"
        error_is not-eligible
        # The prediction from the filter, made before any call was injected.
        expect_err "refusing to inject system calls"
        case $mode in
        kill-mmap) expect_err "seccomp filter would kill the process on mmap" ;;
        errno-memfd) expect_err "seccomp filter would return EPERM on memfd_create" ;;
        errno-mmap) expect_err "seccomp filter would return EPERM on mmap" ;;
        esac
        CHECKS=$((CHECKS + 1))
        ! grep -q hotpatch "/proc/$VPID/maps" || fail "a patch mapping was left behind ($mode)"
        [ "$(ls "/proc/$VPID/fd" | sort)" = "$fds_before" ] || fail "the victim's descriptors changed ($mode)"
        exec_snapshot "$VPID" >"$T/after"
        diff "$T/before" "$T/after" >&2 || fail "executable mappings changed ($mode)"
        is_untraced "$VPID" || fail "hp-apply is still attached ($mode)"
        expect_exit 0 hp-verify -p "$VPID"
        jq_ok '.patches == []'
    fi
    expect_answer ping pong
    # The filter is really there: the kernel does what hp-apply predicted.
    case $mode in
    errno-memfd) expect_answer memfd "memfd err 1" ;;
    errno-mmap) expect_answer mmap-exec "mmap-exec err 1" ;;
    esac
done
