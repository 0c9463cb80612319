#!/usr/bin/env bash
# Builds the libFuzzer targets of Fuzz/ (release, -sanitize=fuzzer,address) and runs them one after another,
# each on a copy of its corpus (Fuzz/Corpus/<target>), niced, then prints execs/s and corpus size per target.
#
#   scripts/fuzz.sh [target|all] [seconds] [--merge] [--no-build]
#     target     upgrade | frames | bus | proxy | all (default all)
#     seconds    -max_total_time per target (default 600)
#     --merge    afterwards, merge the inputs that add coverage back into Fuzz/Corpus/<target> (libFuzzer -merge=1);
#                without it the repository's corpus is never written
#     --no-build use the binaries already in the scratch path
# Environment: SHOAL_FUZZ_WORK work directory (default: a new mktemp dir, kept: logs, corpus copies, crash
# artifacts); SHOAL_FUZZ_SCRATCH build directory (default .build-fuzz); SHOAL_FUZZ_ARGS extra libFuzzer arguments.
# Exit status: 0 when no target found a crash, 1 when one did (its reproducer is in <work>/<target>/artifacts/),
# 2 for a usage or build error. One fuzz process at a time: the machine's cores are shared.
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if ! command -v swift >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then
  export PATH="/opt/swift/usr/bin:$PATH"
fi
ALL_TARGETS=(upgrade frames bus proxy)
binary_name() {
  case "$1" in upgrade) echo FuzzUpgrade ;; frames) echo FuzzFrames ;; bus) echo FuzzBus ;; proxy) echo FuzzProxy ;; *) return 1 ;; esac
}

TARGET=all SECONDS_EACH=600 MERGE=0 BUILD=1
POSITIONAL=()
for arg in "$@"; do
  case "$arg" in
    --merge) MERGE=1 ;;
    --no-build) BUILD=0 ;;
    -h|--help) sed -n '2,14p' "${BASH_SOURCE[0]}"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $arg" >&2; exit 2 ;;
    *) POSITIONAL+=("$arg") ;;
  esac
done
[ "${#POSITIONAL[@]}" -ge 1 ] && TARGET="${POSITIONAL[0]}"
[ "${#POSITIONAL[@]}" -ge 2 ] && SECONDS_EACH="${POSITIONAL[1]}"
if [ "$TARGET" = all ]; then
  TARGETS=("${ALL_TARGETS[@]}")
elif binary_name "$TARGET" >/dev/null; then
  TARGETS=("$TARGET")
else
  echo "fuzz.sh: unknown target '$TARGET' (upgrade, frames, bus, proxy or all)" >&2; exit 2
fi
case "$SECONDS_EACH" in ''|*[!0-9]*) echo "fuzz.sh: seconds must be a number" >&2; exit 2 ;; esac

SCRATCH="${SHOAL_FUZZ_SCRATCH:-$REPO/.build-fuzz}"
WORK="${SHOAL_FUZZ_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/shoal-fuzz.XXXXXX")}"
mkdir -p "$WORK"
# -parse-as-library: the targets have no main of their own, libFuzzer's calls LLVMFuzzerTestOneInput (and the
# package's tools version keeps SwiftPM from renaming it, see Fuzz/Package.swift). The flags apply to every Swift
# module, so ShoalWire and ShoalCluster get coverage counters and ASan; C code (BoringSSL) gets neither.
BUILD_FLAGS=(-c release --package-path "$REPO/Fuzz" --scratch-path "$SCRATCH"
  -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library)

if [ "$BUILD" = 1 ]; then
  echo "=== building the fuzz targets (swift build ${BUILD_FLAGS[*]}) ==="
  if ! nice -n 19 swift build "${BUILD_FLAGS[@]}"; then
    echo "fuzz.sh: build failed" >&2; exit 2
  fi
fi
BIN="$(swift build "${BUILD_FLAGS[@]}" --show-bin-path)"

CRASHED=0
SUMMARY=()
for target in "${TARGETS[@]}"; do
  exe="$BIN/$(binary_name "$target")"
  [ -x "$exe" ] || { echo "fuzz.sh: $exe is missing (build first)" >&2; exit 2; }
  dir="$WORK/$target"
  rm -rf "$dir"; mkdir -p "$dir/corpus" "$dir/artifacts"
  if ! compgen -G "$REPO/Fuzz/Corpus/$target/*" >/dev/null; then
    echo "fuzz.sh: Fuzz/Corpus/$target is empty or missing" >&2; exit 2
  fi
  cp "$REPO/Fuzz/Corpus/$target/"* "$dir/corpus/"
  seeds=$(find "$dir/corpus" -type f | wc -l)
  echo "=== $target: ${SECONDS_EACH}s from $seeds corpus files, log $dir/fuzz.log ==="
  start=$(date +%s)
  # -timeout: an input that runs 25 s is a hang, saved like a crash.
  # shellcheck disable=SC2086
  nice -n 19 "$exe" -max_total_time="$SECONDS_EACH" -timeout=25 -print_final_stats=1 \
    -artifact_prefix="$dir/artifacts/" ${SHOAL_FUZZ_ARGS:-} "$dir/corpus" >"$dir/fuzz.log" 2>&1
  rc=$?
  elapsed=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/fuzz.log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/fuzz.log" | tail -1)
  corp=$(grep -o 'corp: [0-9]*/[0-9a-zA-Z]*' "$dir/fuzz.log" | tail -1 | cut -d' ' -f2)
  cov=$(grep -o 'cov: [0-9]*' "$dir/fuzz.log" | tail -1 | cut -d' ' -f2)
  files=$(find "$dir/corpus" -type f | wc -l)
  # crash-, timeout-, oom- and leak- files are findings; slow-unit- files only say the machine was busy.
  crashes=$(find "$dir/artifacts" -type f ! -name 'slow-unit-*' | wc -l)
  if [ "$rc" != 0 ] || [ "$crashes" != 0 ]; then
    CRASHED=1
    echo "fuzz.sh: $target stopped with status $rc; artifacts:" >&2
    ls -l "$dir/artifacts" >&2
    grep -m1 -A40 -E '==ERROR|Fatal error|deadly signal|ALARM' "$dir/fuzz.log" >&2
  fi
  if [ "$MERGE" = 1 ]; then
    before=$(find "$REPO/Fuzz/Corpus/$target" -type f | wc -l)
    nice -n 19 "$exe" -merge=1 "$REPO/Fuzz/Corpus/$target" "$dir/corpus" >"$dir/merge.log" 2>&1 \
      || echo "fuzz.sh: merge for $target failed (see $dir/merge.log)" >&2
    after=$(find "$REPO/Fuzz/Corpus/$target" -type f | wc -l)
    echo "merged $((after - before)) new inputs into Fuzz/Corpus/$target"
  fi
  SUMMARY+=("$(printf '%-8s %6ss %12s execs %8s execs/s  cov %6s  corpus %6s (%s files, %s seeds)  crashes %s  slowest %ss' \
    "$target" "$elapsed" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${corp:-?}" "$files" "$seeds" "$crashes" \
    "$(sed -n 's/^stat::slowest_unit_time_sec: *//p' "$dir/fuzz.log" | tail -1)")")
done

echo
echo "=== fuzz summary (work dir $WORK) ==="
printf '%s\n' "${SUMMARY[@]}"
exit "$CRASHED"
