#!/usr/bin/env bash
# Job: start/stop a local TLS + htpasswd docker-registry that answers for
# ECR-shaped host names (127.0.0.1:443 and :5443), and seed e2e/hello:1 into it.
#   registry.sh start   - certs, /etc/hosts, certs.d, two registry instances, seed image
#   registry.sh stop    - kill them, restore /etc/hosts, remove the certs.d entries added
#   registry.sh hosts   - print the ECR-shaped host names, one a line
# Env: REGISTRY_PASSWORD (default 123456789012-auth-token: what moto hands out for
# account 123456789012). State lives in $REPO/.test-work/e2e/registry. Run as root.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
ST="$REPO/.test-work/e2e/registry"
PASSWORD="${REGISTRY_PASSWORD:-123456789012-auth-token}"
HOSTS=(123456789012.dkr.ecr.us-east-1.amazonaws.com
       123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com
       123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn
       123456789012.dkr-ecr.eu-west-1.on.aws)
PORTS=(443 5443)
MARK="# e2e-registry (tests/e2e/registry.sh)"
CLEAN=(env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$ST/home" LANG=C.UTF-8)

die() { echo "registry.sh: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null || die "missing peer '$1' (run tests/peers/install.sh)"; }

make_certs() {
  local d="$ST/tls" san="" i=1
  mkdir -p "$d"
  for h in "${HOSTS[@]}"; do san+="DNS.$i = $h"$'\n'; i=$((i + 1)); done
  san+="DNS.$i = localhost"$'\n'"IP.1 = 127.0.0.1"$'\n'
  "${CLEAN[@]}" openssl req -x509 -newkey rsa:2048 -nodes -days 3 -subj "/CN=ecr-e2e-test-ca" \
    -keyout "$d/ca.key" -out "$d/ca.crt" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  "${CLEAN[@]}" openssl req -newkey rsa:2048 -nodes -subj "/CN=${HOSTS[0]}" \
    -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null
  printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
    "extendedKeyUsage=serverAuth" "subjectAltName=@alt" "[alt]" "$san" >"$d/server.ext"
  "${CLEAN[@]}" openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" \
    -CAcreateserial -days 3 -extfile "$d/server.ext" -out "$d/server.crt" 2>/dev/null
}

write_config() { # port
  cat >"$ST/config-$1.yml" <<EOF
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $ST/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$1
  secret: e2e-shared-secret
  tls:
    certificate: $ST/tls/server.crt
    key: $ST/tls/server.key
auth:
  htpasswd:
    realm: e2e-registry
    path: $ST/htpasswd
EOF
}

add_hosts() {
  [ -e "$ST/hosts.bak" ] && die "$ST/hosts.bak exists: a previous run did not stop; run '$0 stop' first"
  cp -p /etc/hosts "$ST/hosts.bak"
  { echo "$MARK"; for h in "${HOSTS[@]}"; do echo "127.0.0.1 $h"; done; } >>/etc/hosts
}

add_certsd() {
  : >"$ST/certsd.added"
  local base h p dir
  for base in /etc/containers/certs.d /etc/docker/certs.d; do
    [ -d "$base" ] || { mkdir -p "$base"; echo "dir $base" >>"$ST/certsd.added"; }
    for h in "${HOSTS[@]}"; do
      for p in "" ":5443"; do
        dir="$base/$h$p"
        [ -e "$dir/ca.crt" ] && die "$dir/ca.crt already exists and is not ours; remove it first"
        [ -d "$dir" ] || echo "dir $dir" >>"$ST/certsd.added"
        mkdir -p "$dir"
        cp "$ST/tls/ca.crt" "$dir/ca.crt"
        echo "file $dir/ca.crt" >>"$ST/certsd.added"
      done
    done
  done
}

wait_401() { # host port
  local code="" i
  for i in $(seq 1 50); do
    code="$("${CLEAN[@]}" curl -s -o /dev/null -w '%{http_code}' --cacert "$ST/tls/ca.crt" \
      "https://$1:$2/v2/" || true)"
    [ "$code" = 401 ] && return 0
    sleep 0.2
  done
  die "registry at https://$1:$2/v2/ answered '$code', not 401; log: $ST/registry-$2.log"
}

seed() { # build a one-layer OCI layout by hand and push it as e2e/hello:1
  local o="$ST/oci" b="$ST/oci-build"
  rm -rf "$o" "$b"; mkdir -p "$o/blobs/sha256" "$b/root"
  echo "hello from the ecr e2e test registry" >"$b/root/hello.txt"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$b/root" -cf "$b/layer.tar" hello.txt
  gzip -n -c "$b/layer.tar" >"$b/layer.tar.gz"
  local diff_id layer lsize cfg csize man msize
  diff_id="$(sha256sum "$b/layer.tar" | cut -d' ' -f1)"
  layer="$(sha256sum "$b/layer.tar.gz" | cut -d' ' -f1)"; lsize="$(stat -c %s "$b/layer.tar.gz")"
  cp "$b/layer.tar.gz" "$o/blobs/sha256/$layer"
  printf '{"architecture":"amd64","os":"linux","config":{"Cmd":["/hello.txt"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
    "$diff_id" >"$b/config.json"
  cfg="$(sha256sum "$b/config.json" | cut -d' ' -f1)"; csize="$(stat -c %s "$b/config.json")"
  cp "$b/config.json" "$o/blobs/sha256/$cfg"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' \
    "$cfg" "$csize" "$layer" "$lsize" >"$b/manifest.json"
  man="$(sha256sum "$b/manifest.json" | cut -d' ' -f1)"; msize="$(stat -c %s "$b/manifest.json")"
  cp "$b/manifest.json" "$o/blobs/sha256/$man"
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"1"}}]}' \
    "$man" "$msize" >"$o/index.json"
  echo '{"imageLayoutVersion":"1.0.0"}' >"$o/oci-layout"
  echo '{"default":[{"type":"insecureAcceptAnything"}]}' >"$ST/policy.json"
  "${CLEAN[@]}" skopeo --policy "$ST/policy.json" copy -q "oci:$o:1" \
    "docker://${HOSTS[0]}/e2e/hello:1" --dest-creds "AWS:$PASSWORD" \
    || die "seeding e2e/hello:1 failed"
  echo "seeded ${HOSTS[0]}/e2e/hello:1 (manifest sha256:$man)"
}

start() {
  for c in docker-registry openssl htpasswd curl skopeo sha256sum; do need "$c"; done
  [ "$(id -u)" = 0 ] || die "must run as root (port 443, /etc/hosts, certs.d)"
  if [ -e "$ST/hosts.bak" ] || ls "$ST"/registry-*.pid >/dev/null 2>&1; then stop; fi
  rm -rf "$ST"; mkdir -p "$ST/data" "$ST/home"
  make_certs
  "${CLEAN[@]}" htpasswd -Bbn AWS "$PASSWORD" >"$ST/htpasswd"
  add_hosts
  add_certsd
  local p
  for p in "${PORTS[@]}"; do
    write_config "$p"
    "${CLEAN[@]}" setsid /usr/bin/docker-registry serve "$ST/config-$p.yml" \
      >"$ST/registry-$p.log" 2>&1 </dev/null &
    echo $! >"$ST/registry-$p.pid"
  done
  for p in "${PORTS[@]}"; do for h in "${HOSTS[@]}"; do wait_401 "$h" "$p"; done; done
  echo "registry up on 127.0.0.1:443 and :5443 (CA $ST/tls/ca.crt)"
  seed
}

stop() {
  local f pid kind path
  for f in "$ST"/registry-*.pid; do
    [ -e "$f" ] || continue
    pid="$(cat "$f")"
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" || true
      for _ in $(seq 1 25); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$f"
  done
  if [ -e "$ST/hosts.bak" ]; then
    cat "$ST/hosts.bak" >/etc/hosts   # keep the inode: /etc/hosts may be a bind mount
    rm -f "$ST/hosts.bak"
  fi
  if [ -e "$ST/certsd.added" ]; then
    tac "$ST/certsd.added" | while read -r kind path; do
      case "$kind" in
        file) rm -f "$path" ;;
        dir) rmdir "$path" 2>/dev/null || true ;;
      esac
    done
    rm -f "$ST/certsd.added"
  fi
  echo "registry stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  seed) seed ;;
  hosts) printf '%s\n' "${HOSTS[@]}" ;;
  *) die "usage: $0 start|stop|seed|hosts" ;;
esac
