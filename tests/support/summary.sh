# summary.sh - the end of a tests/*/run-suite's output, in the one form
# scripts/test reads (scripts/suite-count; docs/testing.md, "Suites in
# other languages"):
#
#   skipped: <test>: <reason>     one line per skipped test (or group)
#   N skipped                     (a suite that cannot skip may leave it out)
#   [label: ]N passed, N failed   always the last line
#
# Sourced by the run-suites (bash). The counts add up over every part a
# suite runs in SUITE_PASSED, SUITE_FAILED and SUITE_SKIPPED; suite_end
# prints the lines. A reason naming a missing tool ("not installed", "could
# not import", "No module named") makes scripts/test fail the run.

SUITE_PASSED=0
SUITE_FAILED=0
SUITE_SKIPPED=0
SUITE_SKIPS=""

# _suite_num WORDS TEXT: the number before WORDS in TEXT (0 when none).
_suite_num() { if [[ $2 =~ ([0-9]+)\ $1 ]]; then echo "${BASH_REMATCH[1]}"; else echo 0; fi; }

# _tap_num WORD LOG: the last "# WORD N" of node's TAP summary (0 when none).
_tap_num() { grep -aE "^# $1 [0-9]+$" "$2" | tail -1 | grep -oE '[0-9]+$' || echo 0; }

suite_skip() { # suite_skip WHAT REASON
  SUITE_SKIPS+="skipped: $1: ${2:-no reason given}"$'\n'
}

# suite_add_tap LOG: adds the counts of a `node --test --test-reporter=tap`
# log (failed = fail + cancelled) and notes each "# SKIP" test with its
# reason. A log without node's summary counts as one failed test.
suite_add_tap() {
  local log=$1 line
  if ! grep -qaE '^# pass [0-9]+$' "$log" || ! grep -qaE '^# fail [0-9]+$' "$log"; then
    echo "node --test printed no summary; the end of its output:"
    tail -30 "$log"
    SUITE_FAILED=$((SUITE_FAILED + 1))
    return
  fi
  SUITE_PASSED=$((SUITE_PASSED + $(_tap_num pass "$log")))
  SUITE_FAILED=$((SUITE_FAILED + $(_tap_num fail "$log") + $(_tap_num cancelled "$log")))
  SUITE_SKIPPED=$((SUITE_SKIPPED + $(_tap_num skipped "$log")))
  while IFS= read -r line; do
    [[ $line =~ ^[[:space:]]*ok\ [0-9]+\ -\ (.*)\ \#\ SKIP\ ?(.*)$ ]] &&
      suite_skip "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}"
  done < <(grep -aE '^[[:space:]]*ok [0-9]+ - .* # SKIP' "$log")
}

# suite_add_pytest LOG: adds the counts of a pytest run made with -rs (its
# "SKIPPED [n] file:line: reason" lines name the skips). A log without
# pytest's final line counts as one failed test.
suite_add_pytest() {
  local log=$1 line
  line=$(grep -aE '^=+ .*(passed|failed|error|skipped|no tests ran).* in [0-9.]+s' "$log" | tail -1)
  if [ -z "$line" ]; then
    echo "pytest printed no summary; the end of its output:"
    tail -30 "$log"
    SUITE_FAILED=$((SUITE_FAILED + 1))
    return
  fi
  SUITE_PASSED=$((SUITE_PASSED + $(_suite_num passed "$line")))
  SUITE_FAILED=$((SUITE_FAILED + $(_suite_num failed "$line") + $(_suite_num 'errors?' "$line")))
  SUITE_SKIPPED=$((SUITE_SKIPPED + $(_suite_num skipped "$line")))
  while IFS= read -r line; do
    [[ $line =~ ^SKIPPED\ \[([0-9]+)\]\ ([^ ]+):\ (.*)$ ]] &&
      suite_skip "${BASH_REMATCH[2]} (${BASH_REMATCH[1]})" "${BASH_REMATCH[3]}"
  done < <(grep -aE '^SKIPPED \[[0-9]+\] ' "$log")
}

# suite_add_line LOG: adds a plain "N passed, N failed" (the last one in
# LOG); none counts as one failed test.
suite_add_line() {
  local line
  line=$(grep -aE '^[0-9]+ passed, [0-9]+ failed$' "$1" | tail -1)
  if [ -z "$line" ]; then
    echo "no \"N passed, N failed\" line; the end of the output:"
    tail -30 "$1"
    SUITE_FAILED=$((SUITE_FAILED + 1))
    return
  fi
  SUITE_PASSED=$((SUITE_PASSED + ${line%% passed*}))
  line=${line#*passed, }
  SUITE_FAILED=$((SUITE_FAILED + ${line%% failed}))
}

# suite_end [LABEL]: prints the skips and the two last lines; its status is
# 0 only when nothing failed.
suite_end() {
  printf '%s' "$SUITE_SKIPS"
  echo "$SUITE_SKIPPED skipped"
  echo "${1:+$1: }$SUITE_PASSED passed, $SUITE_FAILED failed"
  [ "$SUITE_FAILED" -eq 0 ]
}
