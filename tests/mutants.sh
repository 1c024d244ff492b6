#!/usr/bin/env bash
# Job: mutation testing of the core library's pure modules with cargo-mutants: change the code
# in small ways (a `<` for a `<=`, a function that returns a default, a `!` removed) and check
# that the library's unit tests (`cargo test --lib`) fail for each change.
#   tests/mutants.sh                    every mutant of MUTANTS_FILES
#   tests/mutants.sh --diff [--base REV] only mutants on lines changed since REV (HEAD~1), in
#                                        those files: fast enough for every change
# Builds without the AWS SDK (--no-default-features: these modules do not use it), one job at
# a time, in a scratch copy of the tree (cargo-mutants' default), so the work tree is untouched;
# the copy builds into MUTANTS_OUT/build, kept between runs, so only the first run builds the
# dependencies.
# Exclusions of equivalent mutants, each with its reason: .cargo/mutants.toml.
# Prints caught / missed / timeouts / unviable and caught/viable as a percentage
# (viable = caught + missed + timeouts); exits 1 below MUTANTS_THRESHOLD (95) or when
# cargo-mutants itself fails (the unmutated tests fail, no base revision, ...).
# Env: MUTANTS_THRESHOLD (95), MUTANTS_JOBS (1), MUTANTS_FILES (the four files below),
#      MUTANTS_OUT (target/mutants: cargo-mutants writes mutants.out/ there).
# Needs: cargo-mutants (cargo install --locked cargo-mutants; tests/peers/install.sh does it).
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO" || exit 2
THRESHOLD="${MUTANTS_THRESHOLD:-95}"
JOBS="${MUTANTS_JOBS:-1}"
OUT="${MUTANTS_OUT:-$REPO/target/mutants}"
read -r -a FILES <<<"${MUTANTS_FILES:-src/registry.rs src/token.rs src/cache.rs src/principal.rs}"

die() { echo "mutants.sh: $*" >&2; exit 1; }

DIFF=0
BASE="HEAD~1"
while [ $# -gt 0 ]; do
  case "$1" in
    --diff) DIFF=1 ;;
    --base) [ $# -ge 2 ] || die "--base needs a revision"; BASE="$2"; DIFF=1; shift ;;
    --base=*) BASE="${1#--base=}"; DIFF=1 ;;
    -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
  shift
done

command -v cargo-mutants >/dev/null || die "cargo-mutants is missing: cargo install --locked cargo-mutants (tests/peers/install.sh installs it)"
mkdir -p "$OUT"
export CARGO_TARGET_DIR="$OUT/build"

ARGS=(--no-default-features --package ecr-cred -j "$JOBS" --no-shuffle --output "$OUT")
for f in "${FILES[@]}"; do
  [ -f "$f" ] || die "no such file $f (MUTANTS_FILES)"
  ARGS+=(--file "$f")
done

if [ "$DIFF" = 1 ]; then
  # A missing base (a shallow clone, a first commit, a typo) is an error, never "nothing changed".
  git rev-parse --verify --quiet "$BASE^{commit}" >/dev/null \
    || die "base revision $BASE not found (a shallow clone needs: git fetch --deepen=1); pass --base REV"
  PATCH="$OUT/change.diff"
  git diff "$BASE" -- "${FILES[@]}" >"$PATCH" || die "git diff $BASE failed"
  if [ ! -s "$PATCH" ]; then
    echo "mutants.sh: no change to ${FILES[*]} since $BASE: nothing to mutate"
    echo "caught 0, missed 0, timeouts 0, unviable 0: 0 viable mutants"
    exit 0
  fi
  echo "mutants.sh: mutating the lines of ${FILES[*]} changed since $BASE ($(git rev-parse --short "$BASE"))"
  ARGS+=(--in-diff "$PATCH")
else
  echo "mutants.sh: mutating ${FILES[*]}"
fi

start=$(date +%s)
# --lib goes to the build (`cargo test --no-run`) as well as to the test run: without the
# `aws` feature only the library's unit tests build (the integration tests need the SDK).
cargo mutants "${ARGS[@]}" --cargo-arg=--lib
rc=$?
secs=$(($(date +%s) - start))
# cargo-mutants: 0 all caught, 2 some missed, 3 some timed out; anything else is a failure
# of the run itself (1 usage, 4 the unmutated tree does not build or pass its tests).
case "$rc" in
  0 | 2 | 3) ;;
  *) die "cargo mutants failed (exit $rc); see $OUT/mutants.out/ (debug.log, log/)" ;;
esac

count() { # lines in mutants.out/NAME.txt, 0 if it is missing
  local n=0
  [ -f "$OUT/mutants.out/$1.txt" ] && n="$(grep -c . "$OUT/mutants.out/$1.txt" || true)"
  echo "${n:-0}"
}
CAUGHT=$(count caught)
MISSED=$(count missed)
TIMEOUTS=$(count timeout)
UNVIABLE=$(count unviable)
VIABLE=$((CAUGHT + MISSED + TIMEOUTS))
if [ "$MISSED" -gt 0 ]; then
  echo "missed mutants (the unit tests pass with these changes):"
  sed 's/^/    /' "$OUT/mutants.out/missed.txt"
fi
if [ "$TIMEOUTS" -gt 0 ]; then
  echo "timed out:"
  sed 's/^/    /' "$OUT/mutants.out/timeout.txt"
fi
if [ "$VIABLE" = 0 ]; then
  echo "caught 0, missed 0, timeouts $TIMEOUTS, unviable $UNVIABLE: 0 viable mutants (${secs}s)"
  exit 0
fi
PCT10=$((CAUGHT * 1000 / VIABLE))
echo "caught $CAUGHT, missed $MISSED, timeouts $TIMEOUTS, unviable $UNVIABLE: caught/viable = $CAUGHT/$VIABLE = $((PCT10 / 10)).$((PCT10 % 10))% (threshold ${THRESHOLD}%, ${secs}s)"
[ "$((CAUGHT * 100))" -ge "$((THRESHOLD * VIABLE))" ] || die "below the threshold of ${THRESHOLD}%"
