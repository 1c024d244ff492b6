#!/usr/bin/env bash
# Job: build and install docker-credential-ecr and ecr-broker, then point docker (and
# podman/skopeo/buildah) at the helper for the registries given, and fetch a token for each
# to show it works.
#   ./install.sh [REGISTRY ...]      e.g. ./install.sh 123456789012.dkr.ecr.us-east-1.amazonaws.com
# PREFIX: where binaries go (default /usr/local as root, else ~/.local).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ "$(id -u)" -eq 0 ]; then PREFIX="${PREFIX:-/usr/local}"; else PREFIX="${PREFIX:-$HOME/.local}"; fi
BIN="$PREFIX/bin"

command -v cargo >/dev/null || { echo "install.sh: needs Rust's cargo (https://rustup.rs)" >&2; exit 1; }
HELPER="$("$REPO/packaging/build-static.sh" | tail -n 1)"
install -d "$BIN"
install -m 0755 "$HELPER" "$BIN/docker-credential-ecr"
install -m 0755 "$REPO/target/release/ecr-broker" "$BIN/ecr-broker"
ln -sf docker-credential-ecr "$BIN/ecr-credential-provider"
echo "installed docker-credential-ecr, ecr-broker and ecr-credential-provider in $BIN"
case ":$PATH:" in *":$BIN:"*) ;; *) echo "note: add $BIN to your PATH" >&2 ;; esac

[ "$#" -gt 0 ] || { echo "next: $BIN/docker-credential-ecr configure --registry <account>.dkr.ecr.<region>.amazonaws.com"; exit 0; }
args=()
for r in "$@"; do args+=(--registry "$r"); done
"$BIN/docker-credential-ecr" configure --containers "${args[@]}"
for r in "$@"; do
  "$BIN/docker-credential-ecr" get-login-password "$r" >/dev/null
  echo "$r: token fetched; docker pull/push to it now just works"
done
