#!/usr/bin/env bash
# Runs Shoal's micro-benchmarks (ordo-one/benchmark) and checks them against the checked-in
# Thresholds/ (docs/micro-benchmarks.md). Not part of scripts/test.sh: the first build of this
# package compiles ordo-one/benchmark and swift-crypto in its own .build (minutes).
#
#   ./run.sh                 run every benchmark, check against Thresholds/; exit 2 on a regression
#   ./run.sh run             run and print the figures only (no check)
#   ./run.sh update          run and rewrite Thresholds/ from this run (review the diff before committing)
#   ./run.sh check --strict  also fail (exit 4) when a metric improved beyond its tolerance, i.e. the
#                            thresholds are stale (e.g. an allocation was removed: lower the count)
#
# Extra arguments go to the plugin, e.g. ./run.sh check --filter 'MessageReader.*'
set -uo pipefail
cd "$(dirname "$0")"
if ! command -v swift >/dev/null && [ -x /opt/swift/usr/bin/swift ]; then
    export PATH=/opt/swift/usr/bin:$PATH
fi

mode=${1:-check}
[ $# -gt 0 ] && shift
strict=0
args=()
for arg in "$@"; do
    if [ "$arg" = --strict ]; then strict=1; else args+=("$arg"); fi
done

case $mode in
run)
    exec swift package benchmark run --no-progress "${args[@]}"
    ;;
update)
    exec swift package --allow-writing-to-package-directory benchmark thresholds update --no-progress "${args[@]}"
    ;;
check)
    # The plugin turns BenchmarkTool's exit codes (2 regression, 4 improvement) into a plain failure
    # of `swift package`, so the verdict is read from the tool's own last line.
    log=$(mktemp)
    trap 'rm -f "$log"' EXIT
    swift package benchmark thresholds check --no-progress "${args[@]}" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    if [ "$rc" = 0 ] && grep -q "is EQUAL to the defined thresholds" "$log"; then
        echo "micro-benchmarks: within thresholds"
        exit 0
    elif grep -q "is WORSE than the defined thresholds" "$log"; then
        echo "micro-benchmarks: REGRESSION against Thresholds/ (see the tables above)" >&2
        exit 2
    elif grep -q "is BETTER than the defined thresholds" "$log"; then
        echo "micro-benchmarks: only improvements beyond tolerance; Thresholds/ are stale:" \
            "run ./run.sh update and commit the new figures" >&2
        [ $strict = 1 ] && exit 4
        exit 0
    else
        echo "micro-benchmarks: the benchmark run itself failed (exit $rc)" >&2
        [ "$rc" = 0 ] && rc=1
        exit "$rc"
    fi
    ;;
*)
    echo "usage: $0 [check|run|update] [--strict] [plugin options]" >&2
    exit 64
    ;;
esac
