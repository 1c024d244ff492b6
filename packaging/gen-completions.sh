#!/bin/sh
# packaging/gen-completions.sh [BIN_DIR] [OUT_DIR]: the shell completions (bash, zsh, fish) and
# man pages of docker-credential-ecr and ecr-broker, printed by the built binaries themselves
# (`completions SHELL` / `man`, `--completions SHELL` / `--man`), laid out as they install:
#   OUT_DIR/bash-completion/completions/NAME
#   OUT_DIR/zsh/vendor-completions/_NAME
#   OUT_DIR/fish/vendor_completions.d/NAME.fish
#   OUT_DIR/man/man1/NAME.1.gz
# BIN_DIR defaults to target/release, OUT_DIR to BIN_DIR/share (the .deb and .rpm metadata in
# helper/Cargo.toml and daemon/Cargo.toml take them from target/release/share, which under
# --target is target/<triple>/release/share). packaging/dist.sh runs it on the static build,
# BIN_DIR target/<triple>/release, before `cargo deb` / `cargo generate-rpm` and the tarballs.
set -eu
REPO="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${1:-$REPO/target/release}"
OUT="${2:-$BIN/share}"
for b in docker-credential-ecr ecr-broker; do
  [ -x "$BIN/$b" ] || { echo "gen-completions.sh: $BIN/$b is missing: build first" >&2; exit 1; }
done
mkdir -p "$OUT/bash-completion/completions" "$OUT/zsh/vendor-completions" "$OUT/fish/vendor_completions.d" "$OUT/man/man1"
gen() { # gen NAME COMPLETIONS-ARG MAN-ARG
  for shell in bash zsh fish; do
    case "$shell" in
      bash) dest="$OUT/bash-completion/completions/$1" ;;
      zsh) dest="$OUT/zsh/vendor-completions/_$1" ;;
      fish) dest="$OUT/fish/vendor_completions.d/$1.fish" ;;
    esac
    "$BIN/$1" "$2" "$shell" >"$dest.tmp"
    [ -s "$dest.tmp" ] || { echo "gen-completions.sh: $1 $2 $shell printed nothing" >&2; exit 1; }
    mv "$dest.tmp" "$dest"
  done
  "$BIN/$1" "$3" >"$OUT/man/man1/$1.1.tmp"
  grep -q "^\.TH $1 1" "$OUT/man/man1/$1.1.tmp" || { echo "gen-completions.sh: $1 $3 is not a man page" >&2; exit 1; }
  gzip -9nc "$OUT/man/man1/$1.1.tmp" >"$OUT/man/man1/$1.1.gz"
  rm -f "$OUT/man/man1/$1.1.tmp"
}
gen docker-credential-ecr completions man
gen ecr-broker --completions --man
chmod 644 "$OUT"/bash-completion/completions/* "$OUT"/zsh/vendor-completions/* "$OUT"/fish/vendor_completions.d/* "$OUT"/man/man1/*
echo "$OUT"
