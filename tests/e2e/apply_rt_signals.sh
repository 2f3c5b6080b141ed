# A victim takes real-time signals at 1 kHz (sigqueue from another process, si_value a
# sequence number) while it is patched and reverted 20 times: every apply and revert
# succeeds and switches the code, and once the sender stops, the victim has received
# exactly what was sent: nothing lost, duplicated, reordered or re-sent without its
# siginfo (a signal that stopped a thread in a signal-delivery-stop must be re-injected
# as it was, not dropped or re-sent with tgkill). The handler calls the patched function
# and interrupts the worker inside it: no call ever returns garbage. Then a handler that
# interrupted the worker just after the entry of compute() (inside the bytes a patch
# overwrites) is held while hp-apply runs, in both consistency modes: whatever hp-apply
# decides (apply, or refuse with "unsafe"), the worker returns into compute() without a
# crash or a wrong result.
source "$(dirname "$0")/lib.sh"
cc_x86 -pthread -o "$T/rt" "$HP_SRC/tests/targets/rt_signals.c"
cc_x86 -pthread -o "$T/sender" "$HP_SRC/tests/targets/rt_sender.c"
cc_x86 -shared -fPIC -o "$T/p.so" "$HP_SRC/tests/targets/rt_signals_patch.c"

start_victim r "$T/rt"
RPID=$VPID RIN=$VIN ROUT=$VOUT
start_victim s "$T/sender" "$RPID" 1000
SPID=$VPID SIN=$VIN SOUT=$VOUT
victim() { VPID=$RPID VIN=$RIN VOUT=$ROUT; }
sender() { VPID=$SPID VIN=$SIN VOUT=$SOUT; }
victim
alive() {
    CHECKS=$((CHECKS + 1))
    kill -0 "$RPID" 2>/dev/null || fail "victim died ($1): $(cat "$T/r.err")"
}
# Signals are flowing before the first apply (a state, polled).
flowing() { ask count; [ "${REPLY#count }" -gt 10 ]; }
wait_until "no signal arrived" flowing

# A revert leaves the code mapped while a thread uses it (the handler often interrupts
# the new compute()), and such an id cannot be applied again: one id per round.
for round in $(seq 1 20); do
    hp-pack "$T/p.so" --target "$T/rt" --replace compute --id "rt-$round" -o "$T/rt-$round.hpk" >/dev/null
done
kept=0
for round in $(seq 1 20); do
    expect_exit 0 hp-apply -p "$RPID" --allow-unsigned "$T/rt-$round.hpk"
    jq_ok '.ok and .record.state == "applied"'
    alive "apply $round"
    expect_answer worker "worker new"
    expect_answer "compute 5" 1005
    expect_exit 0 hp-apply -p "$RPID" --revert "rt-$round"
    jq_ok '.ok'
    jq -e .unmapped "$T/out" >/dev/null || kept=$((kept + 1))
    alive "revert $round"
    expect_answer worker "worker old"
    expect_answer "compute 5" 6
done
ask count
echo "signals received during the rounds: ${REPLY#count }; reverts that left the code mapped: $kept of 20" >&2

sender
ask stop
read -r word sent err <<<"$REPLY"
CHECKS=$((CHECKS + 1))
[ "$word" = sent ] && [ "$err" = 0 ] && [ "$sent" -gt 0 ] || fail "sender: '$REPLY'"
victim
ask "report $sent"
read -r word received missing dup ooo badinfo hbad wbad <<<"$REPLY"
echo "sent $sent; victim: $REPLY" >&2
CHECKS=$((CHECKS + 1))
[ "$word" = report ] || fail "victim: '$REPLY'"
CHECKS=$((CHECKS + 1))
[ "$received" = "$sent" ] && [ "$missing" = 0 ] && [ "$dup" = 0 ] && [ "$ooo" = 0 ] && [ "$badinfo" = 0 ] ||
    fail "sent $sent, received $received: missing $missing, duplicated $dup, out of order $ooo, siginfo lost $badinfo"
CHECKS=$((CHECKS + 1))
[ "$hbad" = 0 ] && [ "$wbad" = 0 ] || fail "garbage from compute(): $hbad in the handler, $wbad in the worker"
alive "report"

# A handler holds the worker interrupted inside the site of compute() (its signal frame
# will return there) while hp-apply runs, in each consistency mode: hp-apply may refuse
# (exit 1 unsafe) or apply, but the worker must come back from the handler into working
# code. A tool that looks only at each thread's current instruction pointer writes the
# site under it: the worker then resumes in the middle of the jump (SIGILL or SIGSEGV).
for mode in stack entry; do
    hp-pack "$T/p.so" --target "$T/rt" --replace compute --id "parked-$mode" -o "$T/parked-$mode.hpk" >/dev/null
    ask park
    case "$REPLY" in parked\ *) ;; *) fail "could not park the handler inside compute(): '$REPLY'" ;; esac
    echo "handler parked with the worker at compute+${REPLY#parked }" >&2
    rc=0
    hp-apply -p "$RPID" --allow-unsigned --consistency "$mode" --timeout 3000 "$T/parked-$mode.hpk" \
        >"$T/out" 2>"$T/err" || rc=$?
    echo "hp-apply --consistency $mode with the handler parked exited $rc" >&2
    CHECKS=$((CHECKS + 1))
    case $rc in
    0) jq_ok '.ok and .record.state == "applied"'; want=new ;;
    1) error_is unsafe; want=old ;;
    *) fail "hp-apply --consistency $mode with a parked handler exited $rc" ;;
    esac
    echo unpark >&"$VIN"
    read -t 10 -r REPLY <&"$VOUT" ||
        fail "the worker did not survive returning from the handler into compute() after hp-apply" \
            "--consistency $mode exited $rc (victim: $(cat "$T/r.err"))"
    CHECKS=$((CHECKS + 1))
    [ "$REPLY" = resumed ] || fail "worker after the parked handler returned: '$REPLY'"
    alive "parked apply, $mode"
    expect_answer worker "worker $want"
    ask "report 0"
    read -r word _ _ _ _ _ hbad wbad <<<"$REPLY"
    CHECKS=$((CHECKS + 1))
    [ "$hbad" = 0 ] && [ "$wbad" = 0 ] || fail "garbage from compute() after the parked handler ($mode): '$REPLY'"
    if [ "$rc" = 1 ]; then
        expect_exit 0 hp-apply -p "$RPID" --allow-unsigned --consistency "$mode" "$T/parked-$mode.hpk"
        expect_answer worker "worker new"
    fi
    expect_exit 0 hp-apply -p "$RPID" --revert "parked-$mode"
    expect_answer worker "worker old"
done
alive "end"
