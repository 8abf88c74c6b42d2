#!/usr/bin/env bash
# Runs the unit tests, then the integration tests (real FUSE mounts, real
# s3rver), and prints one summary line: "tests: N passed, N failed".
#   tests/run.sh BUILD_DIR [CATCH2 FILTER]
set -uo pipefail
build=${1:-build}
filter=${2:-}
cd "$(dirname "$0")/.."

passed=0 failed=0 status=0
run_suite() {
  local name=$1 bin=$2
  echo "== $name"
  local out
  out=$(mktemp)
  # shellcheck disable=SC2086
  "$bin" ${filter:+"$filter"} --reporter console --durations no 2>&1 | tee "$out"
  local rc=${PIPESTATUS[0]}
  # Catch2's summary: "All tests passed (A assertions in N test cases)" or
  # "test cases: N | P passed | F failed".
  local line p f
  line=$(grep -E '^(All tests passed|test cases:)' "$out" | tail -n 1)
  if [[ $line =~ in\ ([0-9]+)\ test\ case ]]; then
    p=${BASH_REMATCH[1]} f=0
  elif [[ $line =~ test\ cases:\ +([0-9]+)\ \|\ +([0-9]+)\ passed\ \|\ +([0-9]+)\ failed ]]; then
    p=${BASH_REMATCH[2]} f=${BASH_REMATCH[3]}
  elif [[ $line =~ test\ cases:\ +([0-9]+)\ \|\ +([0-9]+)\ failed ]]; then
    p=0 f=${BASH_REMATCH[2]}
  else
    p=0 f=1  # crashed before its summary
  fi
  passed=$((passed + p)) failed=$((failed + f))
  [ "$rc" -eq 0 ] || status=1
  rm -f "$out"
}

run_suite "unit tests" "$build/unit_tests"
if [ "$(id -u)" -eq 0 ] && [ -e /dev/fuse ]; then
  # Left over from an interrupted run: stale mounts of earlier test agents.
  grep -o '/tmp/strata-it-[^ ]*' /proc/self/mounts 2>/dev/null | sort -r | xargs -r -n1 umount -l 2>/dev/null
  run_suite "integration tests" "$build/integration_tests"
else
  echo "== integration tests need root and /dev/fuse: counted as failed"
  failed=$((failed + 1)) status=1
fi
echo "tests: $passed passed, $failed failed"
exit $status
