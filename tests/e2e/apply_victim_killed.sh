# The victim is SIGKILLed while hp-apply holds it (after attaching, before the switch):
# hp-apply exits 3 with a clear message, and does not hang.
source "$(dirname "$0")/lib.sh"
cc_x86 -o "$T/victim" "$HP_SRC/tests/targets/victim.c"
cc_x86 -shared -fPIC -o "$T/patch.so" "$HP_SRC/tests/targets/patch.c"
hp-pack "$T/patch.so" --target "$T/victim" --replace compute -o "$T/k.hpk" >/dev/null
for step in attached prepared; do
    start_victim "v-$step" "$T/victim"
    # hp-apply stops at the step; kill the victim, then release it.
    hold_apply "$step" "held-$step" -p "$VPID" --allow-unsigned "$T/k.hpk"
    kill -9 "$VPID"
    release_apply
    wait_apply
    cp "$T/held-$step.out" "$T/out"
    cp "$T/held-$step.err" "$T/err"
    CHECKS=$((CHECKS + 1))
    [ "$RC" -eq 3 ] || fail "hp-apply exited $RC after the victim died at $step (expected 3)"
    jq_ok '.ok == false and (.error.code == "process-exited" or .error.code == "no-such-process")'
    expect_err "process $VPID"
done
