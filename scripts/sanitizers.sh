#!/usr/bin/env bash
# Runs the unit tests under AddressSanitizer (LeakSanitizer included) and/or ThreadSanitizer.
#
#   scripts/sanitizers.sh              both, AddressSanitizer first
#   scripts/sanitizers.sh --address    AddressSanitizer only (scratch path .build-asan)
#   scripts/sanitizers.sh --thread     ThreadSanitizer only  (scratch path .build-tsan)
#
# Each sanitizer builds in its own scratch path (the first build takes about 10 minutes, BoringSSL
# included; later ones only rebuild what changed) and runs `swift test --disable-xctest`, niced.
# Only Swift Testing runs: the package has no XCTest tests, and the empty XCTest pass leaks its own
# suite objects at exit (LeakSanitizer, inside libXCTest). The script refuses to run if a test
# imports XCTest, so nothing is skipped silently.
#
# Waits in the tests are bounded; SHOAL_TEST_TIME_SCALE stretches every bound (and the timings a
# test is built on) because sanitized code runs several times slower. Default here: 3 under
# AddressSanitizer, 5 under ThreadSanitizer; set it to override both.
# ASAN_OPTIONS / TSAN_OPTIONS are passed through (defaults: leaks detected, TSan does not halt).
#
# Last line: "N passed, M failed", tests summed over the runs; a run that reports anything
# ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "WARNING: ThreadSanitizer") counts one more
# failure, as does a run that ends without a test summary (build failure, crash).
# Exit 0 only if every test passed and no sanitizer reported anything. Logs: .build-asan/sanitizer.log,
# .build-tsan/sanitizer.log. No suppression file is used.
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
if ! command -v swift >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then
  export PATH="/opt/swift/usr/bin:$PATH"
fi

RUNS=()
for arg in "$@"; do
  case "$arg" in
    --address) RUNS+=(address) ;;
    --thread) RUNS+=(thread) ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "sanitizers.sh: unknown argument '$arg' (use --address, --thread or nothing for both)" >&2; exit 64 ;;
  esac
done
[ ${#RUNS[@]} -gt 0 ] || RUNS=(address thread)

if grep -rlq "^import XCTest" Tests; then
  echo "sanitizers.sh: a test imports XCTest, but this script runs Swift Testing only (--disable-xctest)" >&2
  exit 2
fi

PASSED=0
FAILED=0
SUMMARY=()

# run_sanitizer NAME: build and test under -sanitize=NAME; adds to PASSED/FAILED.
run_sanitizer() {
  local name=$1 scratch scale log rc started seconds total failed reports
  case "$name" in
    address) scratch=.build-asan; scale=3 ;;
    thread) scratch=.build-tsan; scale=5 ;;
  esac
  mkdir -p "$scratch"
  log="$scratch/sanitizer.log"
  echo
  echo "=== swift test --sanitize=$name (scratch path $scratch, SHOAL_TEST_TIME_SCALE=${SHOAL_TEST_TIME_SCALE:-$scale}) ==="
  started=$(date +%s)
  SHOAL_TEST_TIME_SCALE="${SHOAL_TEST_TIME_SCALE:-$scale}" \
  ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}" \
    timeout -k 30 5400 nice -n 10 swift test --disable-xctest --sanitize="$name" --scratch-path "$scratch" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  seconds=$(( $(date +%s) - started ))

  # Swift Testing's summary: "Test run with N tests in M suites passed|failed after ...";
  # each failed test (or test case set) ends with its own "✘ Test NAME ... failed after" line.
  total=$(sed -n 's/^.*Test run with \([0-9]*\) tests\{0,1\} .*$/\1/p' "$log" | tail -n1)
  failed=$(grep -E '^✘ Test .* failed after' "$log" | grep -vcE '^✘ Test (run with|case )')
  reports=$(grep -cE 'ERROR: AddressSanitizer|ERROR: LeakSanitizer|WARNING: ThreadSanitizer' "$log")
  if [ -z "$total" ]; then
    echo "sanitizers.sh: no test summary from the $name run (exit status $rc): counted as one failure"
    total=0; failed=1
  elif [ "$rc" != 0 ] && [ "$failed" = 0 ] && [ "$reports" = 0 ]; then
    echo "sanitizers.sh: the $name run exited with status $rc without a failed test or report: counted as one failure"
    failed=1
  fi
  local passed=$(( total > failed ? total - failed : 0 ))
  if [ "$reports" != 0 ]; then
    echo "sanitizers.sh: $reports sanitizer report(s) in the $name run (see $log)"
    failed=$(( failed + 1 ))
  fi
  PASSED=$(( PASSED + passed )); FAILED=$(( FAILED + failed ))
  SUMMARY+=("$(printf '%-8s %4d passed, %d failed, %d sanitizer report(s), %d s' "$name" "$passed" "$failed" "$reports" "$seconds")")
}

for run in "${RUNS[@]}"; do run_sanitizer "$run"; done

echo
echo "=== summary ==="
printf '%s\n' "${SUMMARY[@]}"
echo "$PASSED passed, $FAILED failed"
exit $(( FAILED == 0 && PASSED > 0 ? 0 : 1 ))
