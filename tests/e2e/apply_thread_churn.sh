# A victim that starts and ends ~100 threads a second (each calls the patched function
# 20000 times) is patched and reverted 10 times: every apply and revert succeeds, a thread
# born while hp-apply is attached is traced by it at once (PTRACE_O_TRACECLONE), every
# thread started after an apply sees only the new code and after a revert only the old
# one, no thread ever sees a garbage value, the victim never crashes and no thread is
# left stuck. Catches: seize/interrupt/wait races with threads that appear or exit while
# we attach, stop or detach (apply fails, or a thread stays stopped); a newborn thread
# that runs unstopped during the switch; a site written while a thread executes it.
source "$(dirname "$0")/lib.sh"
cc_x86 -pthread -o "$T/churn" "$HP_SRC/tests/targets/churn.c"
cc_x86 -shared -fPIC -o "$T/p.so" "$HP_SRC/tests/targets/churn_patch.c"
hp-pack "$T/p.so" --target "$T/churn" --replace compute -o "$T/churn.hpk" >/dev/null
start_victim c "$T/churn" 100
stats() { ask stats; read -r _ STARTED FINISHED _ _ _ NBAD NFAIL <<<"$REPLY"; }
alive() {
    CHECKS=$((CHECKS + 1))
    kill -0 "$VPID" 2>/dev/null || fail "victim died ($1): $(cat "$T/c.err")"
}
# after_round WANT: threads started after this point see only WANT ("old" or "new").
after_round() {
    ask mark
    ask "after 5"
    read -r word old new mixed bad <<<"$REPLY"
    CHECKS=$((CHECKS + 1))
    [ "$word" = after ] && [ $((old + new + mixed + bad)) -ge 5 ] || fail "churn stalled: '$REPLY'"
    case $1 in
    new) [ "$old" = 0 ] && [ "$mixed" = 0 ] && [ "$bad" = 0 ] ;;
    old) [ "$new" = 0 ] && [ "$mixed" = 0 ] && [ "$bad" = 0 ] ;;
    esac || fail "threads started after the $2 saw old/new/mixed/bad = $old/$new/$mixed/$bad, expected only $1"
}

# Round 1, held right after attaching: a thread born now is traced by hp-apply at once and
# waits in its first ptrace stop (so does its creator, until the tool carries on).
declare -A before=()
for d in /proc/$VPID/task/*; do before[${d##*/}]=1; done
hold_apply attached held -p "$VPID" --allow-unsigned "$T/churn.hpk"
tracer=$(tracer_of "$VPID") # hp-apply itself (APID is the timeout wrapper)
CHECKS=$((CHECKS + 1))
[ "$tracer" != 0 ] && [ "$(cat "/proc/$tracer/comm")" = hp-apply ] || fail "victim not traced by hp-apply"
newborn_traced() { # a thread that did not exist before hp-apply started, stopped and traced by it
    local d k v state tp
    for d in /proc/$VPID/task/*; do
        [ -n "${before[${d##*/}]:-}" ] && continue
        state='' tp=''
        while read -r k v _; do
            case $k in State:) state=$v ;; TracerPid:) tp=$v ;; esac
        done <"$d/status" 2>/dev/null || continue
        [ "$state" = t ] && [ "$tp" = "$tracer" ] && return 0
    done
    return 1
}
wait_until "no thread born while hp-apply was attached is traced by it" newborn_traced
CHECKS=$((CHECKS + 1))
release_apply
wait_apply
CHECKS=$((CHECKS + 1))
[ "$RC" -eq 0 ] || fail "held hp-apply exited $RC: $(cat "$T/held.err")"
jq -e '.ok and .record.state == "applied"' "$T/held.out" >/dev/null || fail "held apply: $(cat "$T/held.out")"
alive "held apply"
after_round new apply
expect_exit 0 hp-apply -p "$VPID" --revert churn
jq_ok '.ok'
alive "revert 1"
after_round old revert

# A revert leaves the code mapped when a thread still uses it (then the id cannot be
# applied again): each round gets a package with its own id.
kept=0
for round in $(seq 2 10); do
    hp-pack "$T/p.so" --target "$T/churn" --replace compute --id "churn-$round" -o "$T/churn-$round.hpk" >/dev/null
    stats; s0=$STARTED
    expect_exit 0 hp-apply -p "$VPID" --allow-unsigned "$T/churn-$round.hpk"
    jq_ok '.ok and .record.state == "applied"'
    stats
    echo "round $round: $((STARTED - s0)) threads started during the apply," \
        "freeze $(jq .timings.freeze_us "$T/out") us" >&2
    alive "apply $round"
    after_round new "apply of round $round"
    expect_exit 0 hp-apply -p "$VPID" --revert "churn-$round"
    jq_ok '.ok'
    jq -e .unmapped "$T/out" >/dev/null || kept=$((kept + 1))
    alive "revert $round"
    after_round old "revert of round $round"
done

echo "reverts that left the code mapped (in use): $kept of 9" >&2
stats
CHECKS=$((CHECKS + 1))
[ "$NBAD" = 0 ] || { ask bad; fail "$NBAD threads saw a garbage value (first: $REPLY)"; }
CHECKS=$((CHECKS + 1))
[ "$NFAIL" = 0 ] || fail "pthread_create failed $NFAIL times"
ask stop
read -r word started finished <<<"$REPLY"
CHECKS=$((CHECKS + 1))
[ "$word" = stopped ] && [ "$started" = "$finished" ] || fail "threads left unfinished: '$REPLY'"
echo "$started threads started and finished" >&2
alive "end"
