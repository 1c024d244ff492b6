#!/usr/bin/env bash
# Job: install every peer program the e2e tests run against (Debian packages
# plus a Python venv with a pinned moto[server]), idempotently, as root.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$REPO/.test-work/venv"
MOTO_VERSION="5.2.5"
PKGS=(skopeo podman buildah docker-registry containerd docker.io
      amazon-ecr-credential-helper hyperfine time faketime apache2-utils openssl uidmap
      fuse-overlayfs iproute2 curl jq ca-certificates python3 python3-venv
      procps nodejs gnome-keyring dbus-daemon dbus-bin libsecret-tools golang-docker-credential-helpers
      ruby rpm)

die() { echo "install.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root"

export DEBIAN_FRONTEND=noninteractive
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}"
  if ! apt-get install -y --no-install-recommends "${missing[@]}"; then
    apt-get update
    apt-get install -y --no-install-recommends "${missing[@]}"
  fi
fi

# Clean environment for pip: no inherited CA/proxy settings except the system bundle.
PENV=(env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="${HOME:-/root}" LANG=C.UTF-8
      PIP_DISABLE_PIP_VERSION_CHECK=1 SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
      PIP_CERT=/etc/ssl/certs/ca-certificates.crt)
[ -x "$VENV/bin/python" ] || "${PENV[@]}" python3 -m venv "$VENV"
have="$("${PENV[@]}" "$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("moto"))' 2>/dev/null || true)"
if [ "$have" != "$MOTO_VERSION" ] || [ ! -x "$VENV/bin/moto_proxy" ]; then
  "${PENV[@]}" "$VENV/bin/pip" install -q "moto[server]==$MOTO_VERSION"
fi

ver() { # name, command... : print "name version" or fail
  local n="$1"; shift
  local v; v="$("$@" 2>&1)" || die "peer $n missing or broken: $v"
  printf '%-28s %s\n' "$n" "${v%%$'\n'*}"
}
dpkgv() { dpkg-query -W -f='${Version}' "$1"; }
echo "--- peers ---"
# cargo-fuzz for tests/fuzz.sh (from crates.io, built once into ~/.cargo/bin).
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz
# cargo-mutants for tests/mutants.sh (mutation testing of the core library).
command -v cargo-mutants >/dev/null 2>&1 || cargo install --locked cargo-mutants --version 27.1.0
# cargo-deb and cargo-generate-rpm for packaging/dist.sh and tests/packaging.sh (the .deb and .rpm).
command -v cargo-deb >/dev/null 2>&1 || cargo install --locked cargo-deb
command -v cargo-generate-rpm >/dev/null 2>&1 || cargo install --locked cargo-generate-rpm

ver skopeo               skopeo --version
ver podman               podman --version
ver buildah              buildah --version
ver docker-registry      dpkgv docker-registry
ver containerd           containerd --version
ver ctr                  ctr --version
ver docker               /usr/bin/docker --version
ver dockerd              dockerd --version
ver docker-credential-ecr-login dpkgv amazon-ecr-credential-helper
ver hyperfine            hyperfine --version
ver htpasswd             dpkgv apache2-utils
ver openssl              openssl version
ver curl                 curl --version
ver jq                   jq --version
ver node                 node --version
ver gnome-keyring        dpkgv gnome-keyring
ver dbus-run-session     dpkgv dbus-daemon
ver docker-credential-secretservice dpkgv golang-docker-credential-helpers
ver faketime             dpkgv faketime
ver cargo-fuzz           cargo fuzz --version
ver cargo-mutants        cargo mutants --version
ver cargo-deb            cargo deb --version
ver cargo-generate-rpm   cargo generate-rpm --version
ver ruby                 ruby --version
ver rpm                  rpm --version
ver moto                 "$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("moto"))'
ver boto3                "$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("boto3"))'
