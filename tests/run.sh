#!/usr/bin/env bash
# Runs the unit tests, then the integration tests (real FUSE mounts) twice:
# on s3rver, then the [s3] ones again on a one-node Ceph RADOS Gateway
# (tests/rgw/rgw.sh), and prints one summary line: "tests: N passed, N failed".
# The RGW pass leaves out the cluster and gateway tests (what they test is
# the agents and the gateway, the same on any store; make test's 20-minute
# budget); the chaos test, which goes through the gateway as well, stays.
#   tests/run.sh BUILD_DIR [CATCH2 FILTER]     (a filter applies to every pass)
#   STRATA_SKIP_RGW=1 tests/run.sh ...         the s3rver pass only
set -uo pipefail
build=${1:-build}
filter=${2:-}
cd "$(dirname "$0")/.."

passed=0 failed=0 status=0
# What failed, repeated at the end: CI keeps only the tail of the output.
failures=$(mktemp)
trap 'rm -f "$failures"' EXIT
run_suite() {
  local name=$1 bin=$2 spec=${3:-}
  [ -n "$filter" ] && spec=$filter
  echo "== $name"
  local out
  out=$(mktemp)
  "$bin" ${spec:+"$spec"} --reporter console --durations no 2>&1 | tee "$out"
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
  if [ "$rc" -ne 0 ]; then
    status=1
    # Catch2's console reporter: a test case's name follows a line of
    # dashes; each failure is "file:line: FAILED:" and its expansion.
    awk -v suite="$name" '
      /^--------------------+$/ { if (!inhead) { inhead = 1; name = ""; next } else { inhead = 0; next } }
      inhead { name = name (name == "" ? "" : " / ") $0; next }
      /: FAILED:$/ { print "FAILED in " suite ": " name; print "  " $0; grab = 8; next }
      grab > 0 { print "  " $0; grab-- }
    ' "$out" >>"$failures"
    [ "$f" -gt 0 ] || echo "FAILED in $name: exit $rc before its summary" >>"$failures"
  fi
  rm -f "$out"
}

run_suite "unit tests" "$build/unit_tests"
for fuzzer in gossip_fuzz gateway_fuzz parsers_fuzz sigv4_fuzz policy_fuzz; do
  [ -x "$build/$fuzzer" ] && [ -z "$filter" ] || continue
  # The decoders of outside input under libFuzzer for a bounded time (make
  # fuzz: longer), from the seeds kept in the tree (and, for policies, the
  # shipped ones).
  seconds=${FUZZ_SECONDS:-8}
  echo "== fuzzing with $fuzzer ($seconds s)"
  corpus=$(mktemp -d)
  [ -d "tests/fuzz/corpus/$fuzzer" ] && cp tests/fuzz/corpus/$fuzzer/* "$corpus/"
  [ "$fuzzer" = policy_fuzz ] && cp policies/*.lua "$corpus/"
  if "$build/$fuzzer" -max_total_time="$seconds" -max_len=4096 "$corpus" >"$corpus.log" 2>&1; then
    passed=$((passed + 1)); tail -n 2 "$corpus.log"
  else
    failed=$((failed + 1)) status=1; tail -n 40 "$corpus.log"
    { echo "FAILED: $fuzzer found a crash"; grep -m 3 -E 'ERROR|SUMMARY' "$corpus.log"; } >>"$failures"
  fi
  rm -rf "$corpus" "$corpus.log"
done
if [ "$(id -u)" -eq 0 ] && [ -e /dev/fuse ]; then
  # Left over from an interrupted run: stale mounts of earlier test agents.
  grep -o '/tmp/strata-it-[^ ]*' /proc/self/mounts 2>/dev/null | sort -r | xargs -r -n1 umount -l 2>/dev/null
  run_suite "integration tests (s3rver)" "$build/integration_tests" "~[rgw]~[.]"
  if [ -z "${STRATA_SKIP_RGW:-}" ]; then
    rgw_dir=$(mktemp -d /tmp/strata-rgw-XXXXXX)
    rgw_port=$((20000 + RANDOM % 20000))
    echo "== starting a Ceph RADOS Gateway on 127.0.0.1:$rgw_port"
    if rgw_ep=$(bash tests/rgw/rgw.sh start "$rgw_dir" "$rgw_port"); then
      STRATA_TEST_RGW=$rgw_ep run_suite "integration tests (Ceph RGW)" "$build/integration_tests" "[s3]~[s3rver]~[cluster]~[gateway],[rgw]"
    else
      echo "== the Ceph RADOS Gateway did not start (logs above and in $rgw_dir/log): counted as failed"
      failed=$((failed + 1)) status=1
      echo "FAILED: the Ceph RADOS Gateway did not start" >>"$failures"
    fi
    bash tests/rgw/rgw.sh stop "$rgw_dir"
    rm -rf "$rgw_dir"
  fi
else
  echo "== integration tests need root and /dev/fuse: counted as failed"
  failed=$((failed + 1)) status=1
fi
if [ -s "$failures" ]; then
  echo "== what failed"
  cat "$failures"
fi
echo "tests: $passed passed, $failed failed"
exit $status
