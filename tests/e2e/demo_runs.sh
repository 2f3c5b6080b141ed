# The README demo (examples/demo/demo.sh, what ./run demo runs) with the built tools: it
# exits 0, and the one service process it starts answers throughout: an empty user name
# is granted before the apply, denied after it and after the verify, granted again after
# the revert; "admin" is granted every time.
source "$(dirname "$0")/lib.sh"
expect_exit 0 bash "$HP_SRC/examples/demo/demo.sh"
sed 's/\x1b\[[0-9;]*m//g' "$T/out" >"$T/demo.txt"
expect_text() { CHECKS=$((CHECKS + 1)); grep -qF -- "$1" "$T/demo.txt" || fail "the demo does not show '$1'"; }
expect_text "applied 'fix-empty-user' to process"
expect_text "check_access             0x"
expect_text "reverted 'fix-empty-user' in process"
# The answers to the running service, in order: "pid PID  REQUEST -> ANSWER (audit #N)".
awk '$1 == "pid" && $4 == "->" {print $2, $3, $NF}' "$T/demo.txt" >"$T/answers"
CHECKS=$((CHECKS + 1))
[ "$(awk '{print $1}' "$T/answers" | sort -u | wc -l)" -eq 1 ] || fail "more than one service process answered: $(cat "$T/answers")"
pid=$(awk 'NR == 1 {print $1}' "$T/answers")
kill -0 "$pid" 2>/dev/null && fail "the demo left its service $pid running"
CHECKS=$((CHECKS + 1))
want='"admin" granted #1)
"" granted #2)
"admin" granted #3)
"" denied #4)
"" denied #5)
"admin" granted #6)
"" granted #7)'
got=$(grep -o '"[a-z]*" *-> [a-z]*: [a-z]* *(audit #[0-9]*)' "$T/demo.txt" | awk '{print $1, $4, $NF}')
[ "$got" = "$want" ] || fail "the service answered, in order:
$got
expected:
$want"
