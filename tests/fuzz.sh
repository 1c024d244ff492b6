#!/usr/bin/env bash
# Job: build the cargo-fuzz targets in fuzz/ (stable toolchain + RUSTC_BOOTSTRAP=1, since
# cargo-fuzz passes nightly-only -Z flags) and run each for a bounded time on a scratch copy
# of its seed corpus (fuzz/corpus/<target>/, which stays as committed). A target fails if
# libFuzzer finds a crash, leak, timeout or OOM (it exits non-zero and writes an artifact)
# or does not build; the artifact is kept in target/fuzz-artifacts/<target>/.
# Prints one line per target and `N passed, N failed` last; exits 1 if any failed.
# Env: FUZZ_SECONDS (30: -max_total_time per target), FUZZ_TARGETS (all targets in
#      fuzz/Cargo.toml), FUZZ_SANITIZER (address; `none` builds faster), FUZZ_JOBS
#      (1: libFuzzer -fork jobs), FUZZ_ARGS (extra libFuzzer flags).
# Needs: cargo-fuzz (cargo install --locked cargo-fuzz).
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FUZZ_SECONDS="${FUZZ_SECONDS:-30}"
SANITIZER="${FUZZ_SANITIZER:-address}"
TARGET_DIR="$REPO/target/fuzz"
ARTIFACTS="$REPO/target/fuzz-artifacts"
export RUSTC_BOOTSTRAP=1

command -v cargo-fuzz >/dev/null || { echo "fuzz.sh: cargo-fuzz is missing: cargo install --locked cargo-fuzz" >&2; exit 2; }
cd "$REPO/fuzz" || exit 2
if [ -n "${FUZZ_TARGETS:-}" ]; then
  read -r -a TARGETS <<<"$FUZZ_TARGETS"
else
  mapfile -t TARGETS < <(cargo fuzz list)
fi
[ "${#TARGETS[@]}" -gt 0 ] || { echo "fuzz.sh: no fuzz targets found" >&2; exit 2; }

PASSED=0; FAILED=0
echo "fuzz.sh: building ${TARGETS[*]} (sanitizer $SANITIZER, -O)"
mkdir -p "$REPO/target"
if ! cargo fuzz build -O --sanitizer "$SANITIZER" --target-dir "$TARGET_DIR" >"$TARGET_DIR.build.log" 2>&1; then
  tail -30 "$TARGET_DIR.build.log"
  echo "fuzz.sh: build failed (log: $TARGET_DIR.build.log)"
  echo "0 passed, ${#TARGETS[@]} failed"
  exit 1
fi

SCRATCH="$(mktemp -d /tmp/ecr-fuzz.XXXXXX)"
trap 'rm -rf "$SCRATCH"' EXIT
# broker_http binds a Unix socket under the temp dir: keep it in the scratch dir.
mkdir -p "$SCRATCH/tmp"; export TMPDIR="$SCRATCH/tmp"
for t in "${TARGETS[@]}"; do
  mkdir -p "$SCRATCH/$t" "$ARTIFACTS/$t"
  [ -d "corpus/$t" ] && cp -r "corpus/$t/." "$SCRATCH/$t/"
  log="$ARTIFACTS/$t/fuzz.log"
  start=$(date +%s)
  # Runs the already-built binary (same flags as the build, so nothing is rebuilt).
  cargo fuzz run -O --sanitizer "$SANITIZER" --target-dir "$TARGET_DIR" "$t" "$SCRATCH/$t" -- \
    -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
    -artifact_prefix="$ARTIFACTS/$t/" -print_final_stats=1 ${FUZZ_JOBS:+-fork=$FUZZ_JOBS} ${FUZZ_ARGS:-} >"$log" 2>&1
  rc=$?
  secs=$(( $(date +%s) - start ))
  runs="$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1)"
  cov="$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+')"
  if [ "$rc" = 0 ]; then
    PASSED=$((PASSED + 1))
    echo "PASS $t: ${runs:-?} runs in ${secs}s, coverage ${cov:-?} edges, corpus $(ls "$SCRATCH/$t" | wc -l) inputs"
  else
    FAILED=$((FAILED + 1))
    echo "FAIL $t (exit $rc after ${secs}s): log $log"
    grep -E 'panicked|ERROR: |SUMMARY|Test unit written|^artifact_prefix' "$log" | head -8 | sed 's/^/    /'
  fi
done
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
