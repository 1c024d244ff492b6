#!/usr/bin/env bash
# Job: run the end-to-end matrix: real registry clients (skopeo, podman, buildah,
# docker, ctr) x credential helpers (ours, the Go docker-credential-ecr-login)
# against tests/e2e/registry.sh with patched moto standing in for ECR/STS;
# print one line per row and a final `client | helper | result` table; exit 1
# if any row failed. Run as root after tests/peers/install.sh.
# Helpers: "ours" (our helper with AWS credentials, fetching itself), "broker" (our helper
# with NO AWS credentials, served by a running ecr-broker that has them), "go" (Debian's Go
# helper through moto_proxy).
# Env: HELPER_BIN, BROKER_BIN, GO_HELPER_BIN, E2E_HELPERS ("ours broker go"),
#      E2E_STRETCH ("push podman buildah docker ctr"; "" = only inspect/cache rows).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HELPER_BIN="${HELPER_BIN:-$REPO/target/release/docker-credential-ecr}"
GO_HELPER_BIN="${GO_HELPER_BIN:-/usr/bin/docker-credential-ecr-login}"
BROKER_BIN="${BROKER_BIN:-$REPO/target/release/ecr-broker}"
E2E_HELPERS="${E2E_HELPERS:-ours broker go}"
BROKER_AK=AKIABROKEREXAMPLE0001   # the broker's own key: its calls are counted apart
E2E_STRETCH="${E2E_STRETCH-push podman buildah docker ctr}"
E2E="$REPO/.test-work/e2e"
T="$E2E/run"                      # per-run scratch (homes, auth files, logs)
S="$E2E/storage"                  # podman/buildah/docker/containerd storage
RUN=/run/ecr-e2e                  # short paths for unix sockets and exec roots
REG="$REPO/tests/e2e/registry.sh"
CA="$E2E/registry/tls/ca.crt"
AK=AKIAIOSFODNN7EXAMPLE
SK=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
mapfile -t HOSTS < <("$REG" hosts)
H0="${HOSTS[0]}"

die() { echo "run.sh: $*" >&2; exit 1; }
# shellcheck source=../peers/lib.sh
source "$REPO/tests/peers/lib.sh"   # PY, SYS_PATH, PIDS, start_moto, stop_started
need() { command -v "$1" >/dev/null || die "missing peer '$1' (run tests/peers/install.sh)"; }
[ "$(id -u)" = 0 ] || die "must run as root"
for c in skopeo podman buildah /usr/bin/docker dockerd containerd ctr curl jq timeout setsid; do need "$c"; done

cleanup() {
  local pid
  stop_started
  pid="$(cat "$RUN/docker/containerd/containerd.pid" 2>/dev/null || true)"
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  mountpoint -q "$S/docker" 2>/dev/null && umount "$S/docker" || true
  "$REG" stop >/dev/null 2>&1 || echo "run.sh: WARNING: registry.sh stop failed" >&2
}
trap cleanup EXIT
trap 'exit 130' INT TERM

calls() { grep -c '^GetAuthorizationToken ' "$T/calls.log" 2>/dev/null || true; }
gci() { grep -c '^GetCallerIdentity ' "$T/calls.log" 2>/dev/null || true; }

mountpoint -q "$S/docker" 2>/dev/null && umount "$S/docker"
rm -rf "$T" "$S" "$RUN"; mkdir -p "$T/logs" "$T/home" "$S" "$RUN"
: >"$T/calls.log"
echo '{"default":[{"type":"insecureAcceptAnything"}]}' >"$T/policy.json"

# --- peers: patched moto (for our helper), patched moto_proxy (for the Go helper), registry
start_moto "$T/home" "$T/logs/moto.log" "$T/calls.log"
start_moto_proxy "$T/home" "$T/logs/moto_proxy.log" "$T/calls.log"
echo "moto on :$MOTO_PORT, moto_proxy on :$PROXY_PORT"
"$REG" start

# --- the broker (for the "broker" helper kind): its own credentials, the helpers have none
case " $E2E_HELPERS " in *" broker "*)
  [ -x "$BROKER_BIN" ] || die "broker binary missing: $BROKER_BIN (cargo build --release --workspace)"
  mkdir -p "$T/broker-home"
  setsid env -i PATH="$SYS_PATH" HOME="$T/broker-home" LANG=C.UTF-8 \
    AWS_ACCESS_KEY_ID="$BROKER_AK" AWS_SECRET_ACCESS_KEY="$SK" AWS_REGION=us-east-1 \
    AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT" AWS_EC2_METADATA_DISABLED=true \
    "$BROKER_BIN" --user --socket "$RUN/broker.sock" --state "$T/broker-state.json" \
    >"$T/logs/broker.log" 2>&1 </dev/null &
  PIDS+=($!)
  for _ in $(seq 1 100); do [ -S "$RUN/broker.sock" ] && break; sleep 0.1; done
  [ -S "$RUN/broker.sock" ] || die "ecr-broker did not start; log: $T/logs/broker.log"
  echo "ecr-broker on $RUN/broker.sock"
;; esac

# --- helpers: one bin dir each, put first on PATH of the client
mkdir -p "$T/bin-ours" "$T/bin-broker" "$T/bin-go"
ln -sf "$HELPER_BIN" "$T/bin-ours/docker-credential-ecr"
ln -sf "$HELPER_BIN" "$T/bin-broker/docker-credential-ecr"
cat >"$T/bin-go/docker-credential-ecr-login" <<EOF
#!/bin/sh
# Only the Go helper goes through moto_proxy; the client's registry traffic does not.
exec env HTTPS_PROXY=http://127.0.0.1:$PROXY_PORT AWS_CA_BUNDLE=$PROXY_CA "$GO_HELPER_BIN" "\$@"
EOF
chmod +x "$T/bin-go/docker-credential-ecr-login"
hname() { [ "$1" = go ] && echo docker-credential-ecr-login || echo docker-credential-ecr; }
hval() { [ "$1" = go ] && echo ecr-login || echo ecr; }
check_helper() { # kind: fail the row clearly when the helper binary is missing
  local b="$HELPER_BIN"; [ "$1" = go ] && b="$GO_HELPER_BIN"
  [ -x "$b" ] || { echo "helper binary missing or not executable: $b"; return 1; }
}
henv() { # kind home -> ENVV: the whole environment the client (and so the helper) gets
  mkdir -p "$2"
  ENVV=(timeout 180 env -i PATH="$T/bin-$1:$SYS_PATH" HOME="$2" LANG=C.UTF-8)
  case "$1" in
    ours) ENVV+=(AWS_ACCESS_KEY_ID="$AK" AWS_SECRET_ACCESS_KEY="$SK" AWS_REGION=us-east-1
                 AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT" XDG_CACHE_HOME="$2/cache" ECR_BROKER_SOCKET=none) ;;
    broker) ENVV+=(ECR_BROKER_SOCKET="$RUN/broker.sock" XDG_CACHE_HOME="$2/cache" AWS_EC2_METADATA_DISABLED=true) ;;
    go) ENVV+=(AWS_ACCESS_KEY_ID="$AK" AWS_SECRET_ACCESS_KEY="$SK" AWS_REGION=us-east-1) ;;
  esac
}
authfile() { # kind file host... : {"credHelpers": {host: ecr|ecr-login}}
  local k="$1" f="$2"; shift 2
  printf '%s\n' "$@" | jq -R . | jq -s --arg v "$(hval "$k")" '{credHelpers: (map({(.): $v}) | add)}' >"$f"
}

# --- rows
RESULTS=(); FAILS=0; N=0
row() { # client helper expect(pass|fail) cmd...
  local client="$1" helper="$2" expect="$3" rc res c0; shift 3
  N=$((N + 1)); local log="$T/logs/row-$N.log"
  c0="$(calls)"
  set +e; (set -e; "$@") >"$log" 2>&1; rc=$?; set -e
  if [ "$rc" = 0 ]; then res=pass; else res=FAIL; fi
  if [ "$expect" = fail ]; then
    if [ "$rc" = 0 ]; then res="pass (expected fail)"; else res="xfail (expected)"; fi
  fi
  [ "$res" = FAIL ] && FAILS=$((FAILS + 1))
  printf 'row %2d | %-50s | %-5s | %-18s | +%s GetAuthorizationToken | %s\n' \
    "$N" "$client" "$helper" "$res" "$(( $(calls) - c0 ))" "$log"
  if [ "$res" != pass ]; then sed -n '1,25p' "$log" | sed 's/^/        /'; fi
  RESULTS+=("$client|$helper|$res")
}

get_row() { # kind host: the credential-helper protocol by hand, checked field by field
  check_helper "$1"
  local h="$T/home/get-$1" out; henv "$1" "$h"
  out="$(echo "$2" | "${ENVV[@]}" "$(hname "$1")" get)"
  echo "stdout: $out"
  [ -n "$out" ] || { echo "helper printed nothing on stdout"; return 1; }
  jq -e --arg u "$2" --arg p "${REGISTRY_PASSWORD:-123456789012-auth-token}" \
    '(.ServerURL | sub("^https://"; "") | startswith($u)) and .Username == "AWS" and .Secret == $p' <<<"$out"
}
inspect_row() { # kind host[:port]
  check_helper "$1"
  local h="$T/home/inspect-$1-$2"; henv "$1" "$h"; authfile "$1" "$h/auth.json" "$2"
  "${ENVV[@]}" skopeo inspect --authfile "$h/auth.json" "docker://$2/e2e/hello:1" | jq -e '.Digest'
}
cache_row() { # kind: two inspects, one HOME: the second must not call GetAuthorizationToken
  check_helper "$1"
  local h="$T/home/cache-$1" c0 c1 c2 g0 g1 g2; henv "$1" "$h"; authfile "$1" "$h/auth.json" "$H0"
  c0="$(calls)"; g0="$(gci)"; "${ENVV[@]}" skopeo inspect --authfile "$h/auth.json" "docker://$H0/e2e/hello:1" >/dev/null
  c1="$(calls)"; g1="$(gci)"; "${ENVV[@]}" skopeo inspect --authfile "$h/auth.json" "docker://$H0/e2e/hello:1" >/dev/null
  c2="$(calls)"; g2="$(gci)"
  echo "GetAuthorizationToken calls: first inspect $((c1 - c0)), second inspect $((c2 - c1))"
  echo "GetCallerIdentity calls (info only): first inspect $((g1 - g0)), second inspect $((g2 - g1))"
  # Through the broker the first inspect may already be served from the broker's cache.
  { [ "$1" = broker ] || [ "$((c1 - c0))" -ge 1 ]; } && [ "$((c2 - c1))" = 0 ]
}
push_row() { # kind
  check_helper "$1"
  local h="$T/home/push-$1"; henv "$1" "$h"; authfile "$1" "$h/auth.json" "$H0"
  "${ENVV[@]}" skopeo --policy "$T/policy.json" copy --authfile "$h/auth.json" \
    "docker://$H0/e2e/hello:1" "docker://$H0/e2e/hello:pushed-$1"
  "${ENVV[@]}" skopeo inspect --authfile "$h/auth.json" "docker://$H0/e2e/hello:pushed-$1" | jq -e '.Digest'
}
podman_row() { # kind
  check_helper "$1"
  local h="$T/home/podman-$1"; henv "$1" "$h"; authfile "$1" "$h/auth.json" "$H0"
  "${ENVV[@]}" podman --root "$S/podman-$1/root" --runroot "$RUN/podman-$1" --storage-driver vfs \
    --cgroup-manager cgroupfs --events-backend file --tmpdir "$RUN/podman-$1-tmp" \
    pull --authfile "$h/auth.json" "$H0/e2e/hello:1"
}
buildah_row() { # kind
  check_helper "$1"
  local h="$T/home/buildah-$1"; henv "$1" "$h"; authfile "$1" "$h/auth.json" "$H0"
  "${ENVV[@]}" buildah --root "$S/buildah-$1/root" --runroot "$RUN/buildah-$1" --storage-driver vfs \
    pull --authfile "$h/auth.json" "$H0/e2e/hello:1"
}
DOCKERD_ERR="not started"
start_dockerd() { # top level (not in a row subshell) so cleanup knows the pid
  echo '{}' >"$T/daemon.json"
  setsid env -i PATH="$SYS_PATH" HOME="$T/home" LANG=C.UTF-8 dockerd --config-file "$T/daemon.json" \
    --storage-driver=vfs --iptables=false --ip6tables=false --bridge=none \
    --data-root "$S/docker" --exec-root "$RUN/docker" --pidfile "$RUN/docker.pid" \
    -H "unix://$RUN/docker.sock" >"$T/logs/dockerd.log" 2>&1 </dev/null &
  PIDS+=($!)
  for _ in $(seq 1 100); do
    env -i PATH="$SYS_PATH" /usr/bin/docker -H "unix://$RUN/docker.sock" version >/dev/null 2>&1 && { DOCKERD_ERR=""; return 0; }
    sleep 0.3
  done
  DOCKERD_ERR="dockerd did not come up; log $T/logs/dockerd.log: $(tail -5 "$T/logs/dockerd.log")"
}
docker_row() { # kind
  check_helper "$1"
  [ -z "$DOCKERD_ERR" ] || { echo "$DOCKERD_ERR"; return 1; }
  local h="$T/home/docker-$1"; henv "$1" "$h"; mkdir -p "$h/docker"
  authfile "$1" "$h/docker/config.json" "$H0"
  "${ENVV[@]}" DOCKER_CONFIG="$h/docker" /usr/bin/docker -H "unix://$RUN/docker.sock" pull "$H0/e2e/hello:1"
}
CONTAINERD_ERR="not started"
start_containerd() { # top level, like start_dockerd
  cat >"$T/containerd.toml" <<EOF
version = 2
root = "$S/containerd"
state = "$RUN/containerd-state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$RUN/containerd.sock"
EOF
  setsid env -i PATH="$SYS_PATH" HOME="$T/home" LANG=C.UTF-8 containerd --config "$T/containerd.toml" \
    >"$T/logs/containerd.log" 2>&1 </dev/null &
  PIDS+=($!)
  for _ in $(seq 1 100); do
    env -i PATH="$SYS_PATH" ctr -a "$RUN/containerd.sock" version >/dev/null 2>&1 && { CONTAINERD_ERR=""; return 0; }
    sleep 0.3
  done
  CONTAINERD_ERR="containerd did not come up; log $T/logs/containerd.log: $(tail -5 "$T/logs/containerd.log")"
}
ctr_row() { # kind: ctr has no helper support: password from the helper, then --user
  check_helper "$1"
  [ -z "$CONTAINERD_ERR" ] || { echo "$CONTAINERD_ERR"; return 1; }
  local h="$T/home/ctr-$1" pw=""; henv "$1" "$h"
  if [ "$1" != go ]; then
    pw="$("${ENVV[@]}" docker-credential-ecr get-login-password "$H0" 2>"$h/glp.err")" || pw=""
    if [ -n "$pw" ]; then echo "password via: docker-credential-ecr get-login-password"
    else echo "get-login-password unavailable ($(head -c 200 "$h/glp.err")); using get"; fi
  fi
  if [ -z "$pw" ]; then
    pw="$(echo "$H0" | "${ENVV[@]}" "$(hname "$1")" get | jq -r .Secret)"
  fi
  [ -n "$pw" ] && [ "$pw" != null ] || { echo "helper gave no password"; return 1; }
  env -i PATH="$SYS_PATH" HOME="$h" timeout 180 ctr -a "$RUN/containerd.sock" -n "e2e-$1" images pull \
    --snapshotter native --tlscacert "$CA" --user "AWS:$pw" "$H0/e2e/hello:1"
}

case " $E2E_STRETCH " in *" docker "*) start_dockerd ;; esac
case " $E2E_STRETCH " in *" ctr "*) start_containerd ;; esac

for k in $E2E_HELPERS; do
  row "$(hname "$k") get (stdin $H0)" "$k" pass get_row "$k" "$H0"
  for host in "${HOSTS[@]}" "$H0:5443"; do
    expect=pass
    # Go helper 0.6.0 (Debian 12) does not recognise dual-stack *.on.aws names.
    [ "$k" = go ] && [[ "$host" == *.on.aws ]] && expect=fail
    row "skopeo inspect $host" "$k" "$expect" inspect_row "$k" "$host"
  done
  row "skopeo inspect x2 (cache: 2nd makes no call)" "$k" pass cache_row "$k"
done
for c in $E2E_STRETCH; do
  for k in $E2E_HELPERS; do
    case "$c" in
      push) row "skopeo copy (push) $H0" "$k" pass push_row "$k" ;;
      podman) row "podman pull $H0" "$k" pass podman_row "$k" ;;
      buildah) row "buildah pull $H0" "$k" pass buildah_row "$k" ;;
      docker) row "docker pull (dockerd vfs) $H0" "$k" pass docker_row "$k" ;;
      ctr) row "ctr images pull --user $H0" "$k" pass ctr_row "$k" ;;
      *) die "unknown E2E_STRETCH entry '$c'" ;;
    esac
  done
done

broker_calls_row() { # every broker-mode request above cost the broker one call per token slot
  local n slots
  n="$(grep -c "^GetAuthorizationToken .* $BROKER_AK\$" "$T/calls.log" || true)"
  # identity x region x variant: us-east-1, us-gov-west-1 (FIPS), cn-north-1, eu-west-1 (dual-stack)
  slots="$(printf '%s\n' "${HOSTS[@]}" | awk -F. '{print $2"."$3"."$4}' | sort -u | wc -l)"
  echo "broker GetAuthorizationToken calls: $n, token slots used: $slots"
  grep -h 'requests' "$T/logs/broker.log" | tail -n 1 || true
  [ "$n" = "$slots" ]
}
case " $E2E_HELPERS " in *" broker "*)
  row "ecr-broker: one upstream call per token slot" broker pass broker_calls_row ;;
esac

echo
echo "== matrix =="
W=6; for r in "${RESULTS[@]}"; do c="${r%%|*}"; [ "${#c}" -gt "$W" ] && W="${#c}"; done
printf "%-${W}s | %-6s | %s\n" client helper result
printf "%-${W}s | %-6s | %s\n" "$(printf '%*s' "$W" '' | tr ' ' -)" ------ ------
for r in "${RESULTS[@]}"; do
  IFS='|' read -r c k res <<<"$r"
  printf "%-${W}s | %-6s | %s\n" "$c" "$k" "$res"
done
echo "$((${#RESULTS[@]} - FAILS)) passed, $FAILS failed"
[ "$FAILS" = 0 ]
