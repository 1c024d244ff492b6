#!/usr/bin/env bash
# Job: run every test of the project on this machine, installing the real peers first.
#   1. tests/peers/install.sh   Debian's skopeo, podman, buildah, containerd, docker.io,
#                               docker-registry, amazon-ecr-credential-helper; moto in a venv
#   2. cargo fmt --check, cargo clippy -D warnings (every target of the workspace)
#   3. cargo build --release    once; every later step reuses target/release
#   4. cargo test --release     unit tests and the integration tests (tests/integration/), with
#                               the ignored ones that need peers or root (--include-ignored)
#   5. tests/fuzz.sh            four libFuzzer targets, FUZZ_SECONDS (20) each
#   6. tests/mutants.sh --diff  mutation testing of the core library's lines changed since
#                               HEAD~1 (docs/testing.md); fails without a parent commit
#   7. tests/packaging.sh       systemd units, socket activation, release artifacts, Kubernetes
#   8. tests/e2e/run.sh         real clients against a TLS registry under ECR names (matrix)
# Needs root (apt, /etc/hosts, port 443). Any failure fails the run.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

if [ "$(id -u)" -ne 0 ]; then
  echo "tests/run-all.sh must run as root (it installs packages and edits /etc/hosts); try: sudo $0" >&2
  exit 1
fi

step() { printf '\n==> %s\n' "$*"; }

step "installing test peers"
tests/peers/install.sh

step "formatting and lints"
cargo fmt --all --check
cargo clippy --release --workspace --all-targets --locked -- -D warnings

step "building (release)"
cargo build --release --workspace --locked

step "unit and integration tests"
# Every test, also those ignored in a plain `cargo test` because they need a peer or root; in
# this run a missing peer or privilege fails its test (ECR_CRED_FULL_RUN=1), never skips it.
ECR_CRED_FULL_RUN=1 cargo test --release --workspace --locked -- --include-ignored

step "fuzzing"
FUZZ_SECONDS="${FUZZ_SECONDS:-20}" tests/fuzz.sh

step "mutation testing of the last commit's core library changes"
if git rev-parse --verify --quiet HEAD~1 >/dev/null; then
  tests/mutants.sh --diff
else
  # A clone without the parent commit (shallow): nothing to diff against, so mutate everything.
  echo "run-all.sh: HEAD~1 is not in this clone; running the full mutation test instead" >&2
  tests/mutants.sh
fi

step "packaging"
tests/packaging.sh

step "end-to-end matrix"
HELPER_BIN="$REPO/target/release/docker-credential-ecr" BROKER_BIN="$REPO/target/release/ecr-broker" tests/e2e/run.sh
