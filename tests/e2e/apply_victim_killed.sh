# The victim is SIGKILLed while hp-apply holds it (after attaching, before the switch):
# hp-apply exits 3 with a clear message, and does not hang.
source "$(dirname "$0")/lib.sh"
cc_x86 -o "$T/victim" "$HP_SRC/tests/targets/victim.c"
cc_x86 -shared -fPIC -o "$T/patch.so" "$HP_SRC/tests/targets/patch.c"
hp-pack "$T/patch.so" --target "$T/victim" --replace compute -o "$T/k.hpk" >/dev/null
for step in attached prepared; do
    start_victim "v-$step" "$T/victim"
    mkfifo "$T/hold-$step"
    # hp-apply stops at the step and waits for a byte on fd 3 (the fifo).
    HOTPATCH_TEST_HOLD=$step HOTPATCH_TEST_HOLD_FD=3 timeout 30 hp-apply -p "$VPID" --allow-unsigned "$T/k.hpk" \
        3<"$T/hold-$step" >"$T/out" 2>"$T/err" &
    apid=$!
    HP_PIDS+=("$apid")
    exec {hold}>"$T/hold-$step"
    # Wait for the announcement on stderr (bounded), then kill the victim and release.
    wait_until "hp-apply never reached $step" grep -q "holding at $step" "$T/err"
    track_child "$apid"
    kill -9 "$VPID"
    echo x >&"$hold"
    set +e
    wait "$apid"
    rc=$?
    set -e
    exec {hold}>&-
    CHECKS=$((CHECKS + 1))
    [ "$rc" -eq 3 ] || fail "hp-apply exited $rc after the victim died at $step (expected 3)"
    jq_ok '.ok == false and (.error.code == "process-exited" or .error.code == "no-such-process")'
    expect_err "process $VPID"
done
