#!/usr/bin/env bash
# Job: build every release artifact into target/dist/, from ONE static build of both programs
# (glibc crt-static, not position-independent: see packaging/build-static.sh), reused for all:
#
#   docker-credential-ecr-<version>-<triple>.tar.gz   the helper, the ecr-credential-provider
#                                                     link, the kubelet provider config
#   ecr-broker-<version>-<triple>.tar.gz              the broker, default config, systemd
#                                                     units, sysusers entry
#   docker-credential-ecr_<version>-1_<arch>.deb, ecr-broker_<version>-1_<arch>.deb
#   docker-credential-ecr-<version>-1.<arch>.rpm, ecr-broker-<version>-1.<arch>.rpm
#   ecr-broker-<version>-<triple>.oci.tar             an OCI image archive (`podman load -i`),
#                                                     built with `buildah from scratch`: no base
#                                                     image is downloaded
#   SHA256SUMS                                        of all the above
#
# The image holds the two static binaries, the ecr-credential-provider link, the host's CA
# certificates (/etc/ssl/certs/ca-certificates.crt), /etc/nsswitch.conf (`files dns`, the
# name services built into glibc itself, which a static binary can use without loading
# modules), /etc/passwd and /etc/group with `nonroot` (65532), the default config, and
# /run/ecr-broker and /var/lib/ecr-broker owned by 65532. Entrypoint and command are those of
# packaging/docker/Dockerfile, so the Kubernetes manifests run either image.
#
# Needs: cargo, cargo-deb, cargo-generate-rpm (`cargo install --locked cargo-deb
# cargo-generate-rpm`), buildah and root for the image, ca-certificates, readelf (binutils),
# sha256sum. DIST_SKIP_IMAGE=1 skips the image (where there is no buildah); the run says so.
# Prints the artifacts' paths. Usage: packaging/dist.sh
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

die() { echo "packaging/dist.sh: $*" >&2; exit 1; }
for c in cargo rustc sha256sum tar; do command -v "$c" >/dev/null || die "$c is missing"; done
cargo deb --version >/dev/null 2>&1 || die "cargo-deb is missing: cargo install --locked cargo-deb"
cargo generate-rpm --version >/dev/null 2>&1 || die "cargo-generate-rpm is missing: cargo install --locked cargo-generate-rpm"
if [ "${DIST_SKIP_IMAGE:-0}" != 1 ]; then
  command -v buildah >/dev/null || die "buildah is missing (apt install buildah), or set DIST_SKIP_IMAGE=1"
  [ "$(id -u)" -eq 0 ] || die "the image needs root (buildah, and files owned by 65532 in it): sudo, or set DIST_SKIP_IMAGE=1"
  [ -s /etc/ssl/certs/ca-certificates.crt ] || die "/etc/ssl/certs/ca-certificates.crt is missing (apt install ca-certificates)"
fi

TRIPLE="$(rustc -vV | sed -n 's/^host: //p')"
VERSION="$(cargo metadata --no-deps --format-version 1 --locked |
  sed -n 's/.*"name":"ecr-broker","version":"\([^"]*\)".*/\1/p' | head -n 1)"
[ -n "$VERSION" ] || die "cannot read the version from cargo metadata"
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
BIN="$TARGET_DIR/$TRIPLE/release"
DIST="$TARGET_DIR/dist"
rm -rf "$DIST"
mkdir -p "$DIST"

# 1. The one build. RUSTFLAGS apply to the --target artifacts only, not build scripts.
echo "== static build ($TRIPLE)"
start=$(date +%s)
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static -C relocation-model=static" \
  cargo build --release --locked -p docker-credential-ecr -p ecr-broker --target "$TRIPLE"
echo "static build: $(($(date +%s) - start)) s"
for b in docker-credential-ecr ecr-broker; do
  [ -x "$BIN/$b" ] || die "$BIN/$b was not built"
  # A static executable has no program interpreter.
  if readelf -l "$BIN/$b" 2>/dev/null | grep -q 'Requesting program interpreter'; then die "$BIN/$b is not static"; fi
done
"$BIN/docker-credential-ecr" version

# Completions and man pages, once packaging/gen-completions.sh exists (see helper/Cargo.toml).
if [ -x "$REPO/packaging/gen-completions.sh" ]; then "$REPO/packaging/gen-completions.sh"; fi

# 2. Tarballs.
echo "== tarballs"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
h="$stage/docker-credential-ecr-$VERSION-$TRIPLE"
mkdir -p "$h"
install -m 0755 "$BIN/docker-credential-ecr" "$h/"
ln -s docker-credential-ecr "$h/ecr-credential-provider"
install -m 0644 packaging/kubernetes/credential-provider-config.yaml README.md "$h/"
b="$stage/ecr-broker-$VERSION-$TRIPLE"
mkdir -p "$b/systemd/user" "$b/sysusers.d"
install -m 0755 "$BIN/ecr-broker" "$b/"
install -m 0644 packaging/config.toml "$b/config.toml"
install -m 0644 packaging/systemd/ecr-broker.service packaging/systemd/ecr-broker.socket "$b/systemd/"
install -m 0644 packaging/systemd/user/ecr-broker.service packaging/systemd/user/ecr-broker.socket "$b/systemd/user/"
install -m 0644 packaging/sysusers.d/ecr-broker.conf "$b/sysusers.d/"
install -m 0644 docs/install.md "$b/"
for d in "$h" "$b"; do
  tar -C "$stage" --owner=0 --group=0 --numeric-owner --sort=name -czf "$DIST/$(basename "$d").tar.gz" "$(basename "$d")"
done

# 3. Packages, from the same binaries (--target: target/release/ in the assets means
#    target/<triple>/release/).
echo "== .deb and .rpm"
cargo deb -p docker-credential-ecr --no-build --no-strip --target "$TRIPLE" --output "$DIST/"
cargo deb -p ecr-broker --no-build --no-strip --target "$TRIPLE" --output "$DIST/"
cargo generate-rpm -p helper --target "$TRIPLE" -o "$DIST/"
cargo generate-rpm -p daemon --target "$TRIPLE" -o "$DIST/"

# 4. The OCI image.
if [ "${DIST_SKIP_IMAGE:-0}" = 1 ]; then
  echo "== image SKIPPED (DIST_SKIP_IMAGE=1)"
else
  echo "== OCI image (buildah from scratch)"
  root="$stage/image"
  mkdir -p "$root/usr/bin" "$root/etc/ssl/certs" "$root/etc/ecr-broker" "$root/run/ecr-broker" "$root/var/lib/ecr-broker" "$root/tmp"
  chmod 1777 "$root/tmp"
  install -m 0755 "$BIN/docker-credential-ecr" "$BIN/ecr-broker" "$root/usr/bin/"
  ln -s docker-credential-ecr "$root/usr/bin/ecr-credential-provider"
  install -m 0644 /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
  install -m 0644 packaging/config.toml "$root/etc/ecr-broker/config.toml"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$root/etc/group"
  # Only the services built into glibc: a static binary loads no NSS modules for these.
  printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$root/etc/nsswitch.conf"
  chown 65532:65532 "$root/run/ecr-broker" "$root/var/lib/ecr-broker"
  chmod 0750 "$root/run/ecr-broker" "$root/var/lib/ecr-broker"
  ctr="$(buildah from scratch)"
  # shellcheck disable=SC2064
  trap "buildah rm '$ctr' >/dev/null 2>&1 || true; rm -rf '$stage'" EXIT
  # tar keeps owners, modes and the link.
  tar -C "$root" --numeric-owner -cf "$stage/rootfs.tar" .
  buildah add "$ctr" "$stage/rootfs.tar" /
  buildah config --user 65532:65532 --env ECR_LOG=info --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    --volume /run/ecr-broker --volume /var/lib/ecr-broker \
    --entrypoint '["/usr/bin/ecr-broker"]' \
    --cmd '["--socket", "/run/ecr-broker/broker.sock", "--config", "/etc/ecr-broker/config.toml", "--state", "/var/lib/ecr-broker/state.json"]' \
    --label "org.opencontainers.image.version=$VERSION" \
    --label "org.opencontainers.image.source=https://github.com/ecr-cred/ecr-cred" \
    --label "org.opencontainers.image.title=ecr-broker" "$ctr"
  image="localhost/ecr-broker:$VERSION"
  buildah commit --quiet --rm "$ctr" "$image" >/dev/null
  buildah push --quiet "$image" "oci-archive:$DIST/ecr-broker-$VERSION-$TRIPLE.oci.tar:ecr-broker:$VERSION"
  buildah rmi "$image" >/dev/null 2>&1 || true
fi

# 5. Checksums.
(cd "$DIST" && find . -maxdepth 1 -type f ! -name SHA256SUMS -printf '%f\n' | sort | xargs sha256sum >SHA256SUMS)
echo "== $DIST"
ls -l "$DIST"
