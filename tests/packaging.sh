#!/usr/bin/env bash
# tests/packaging.sh: checks of everything under packaging/ that can be checked on Linux
# without a container engine, a cluster or a Mac.
#
#   systemd   `systemd-analyze verify` of the system and user units (on copies whose
#             ExecStart names the freshly built target/release/ecr-broker: verify checks
#             that the command exists and is executable, and /usr/bin/ecr-broker is not
#             installed here), the directives the units promise, the sysusers entry (in a
#             temporary root), and the broker started the way systemd starts it: socket
#             activation through systemd-socket-activate, READY=1/STOPPING=1 on a
#             NOTIFY_SOCKET, SIGHUP reload, SIGTERM exit 0; and under strace, that the
#             syscalls and socket families it uses pass the unit's filters.
#   config    `ecr-broker --check-config` on packaging/config.toml, on the same file with
#             every commented example switched on, and on the Kubernetes ConfigMap's.
#   dist      packaging/dist.sh (one static build -> target/dist/), then every artifact:
#             SHA256SUMS; the docker-credential-ecr .deb (control, no maintainer scripts or
#             systemd, file list) installed by `dpkg --root` into a scratch root with its own
#             dpkg database, run from there (version, `get` of a non-ECR host, the
#             ecr-credential-provider link dispatching by name) and removed by `dpkg -r`; the
#             ecr-broker .deb (control, conffiles, maintainer scripts and their order, file
#             list, unpacked with dpkg-deb -x and compared with packaging/, its binary run);
#             both .rpms (rpm -qp: files, modes, config, requires, scriptlets); both static
#             tarballs (no program interpreter, run); in each package and tarball its
#             program's completions and man page (bash sources the completion and it
#             completes a subcommand, zsh/fish files name the program, the man page is valid
#             gzip and `man -l` renders it); the OCI image (`podman load`, run with
#             --network none as 65532, the broker started by the image's own command passing
#             `ecr-broker healthcheck`, and a name only /etc/hosts knows resolved inside the
#             image by the static helper, which reaches a fake endpoint on the host by it).
#             `--dist-only` runs just these checks on an existing target/dist (release.yml).
#   k8s/helm  every YAML parsed (python3-yaml) and the fields that matter checked with a
#             small Python script (probes are `ecr-broker healthcheck`, the /etc/eks hostPath
#             only for the install-provider init container); `kubectl kustomize` of
#             packaging/kubernetes and packaging/kubernetes-install-provider when kubectl is
#             there; `helm lint` and `helm template` when helm is there (Debian 12 has no helm
#             package), else static checks of the chart (values referenced by templates exist,
#             blocks balance, the conventional values exist, no default image) and values.yaml
#             and ci/roles-values.yaml validated against values.schema.json (python3-jsonschema),
#             which must reject wrong values.
#   other     the Dockerfile's stages and paths, the launchd plist (plistlib), the Homebrew
#             formula (`ruby -c`), and that docs/install.md quotes error texts that the
#             sources still print.
#
# Not checked here: `docker build` of packaging/docker/Dockerfile, a real cluster, macOS,
# installing the ecr-broker .deb with dpkg --root (its maintainer scripts would act on this
# host's systemd), the units under a running systemd (none runs as PID 1 in CI containers),
# DNS lookups inside the image (offline: only /etc/hosts is exercised).
#
# Tools missing are installed (apt: systemd, strace, python3-yaml, python3-jsonschema, ruby,
# rpm, binutils, buildah, podman; cargo: cargo-deb, cargo-generate-rpm);
# a tool that still cannot be had fails the run. Last line: "N passed, N failed"; exit status
# 1 on any failure. Run as root from anywhere: tests/packaging.sh
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
PKG="$REPO/packaging"
BIN="$REPO/target/release"
PY=/usr/bin/python3
# --dist-only: check the release artifacts already in target/dist (as the release workflow
# does after packaging/dist.sh), nothing else.
DIST_ONLY=0
case "${1:-}" in
  --dist-only) DIST_ONLY=1 ;;
  "") ;;
  *) echo "usage: tests/packaging.sh [--dist-only]" >&2; exit 2 ;;
esac

WORK="$(mktemp -d "${TMPDIR:-/tmp}/ecr-packaging.XXXXXX")"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

PASSED=0
FAILED=0
FAILURES=()

die() { echo "tests/packaging.sh: $*" >&2; exit 2; }

# check NAME FUNCTION [ARGS...]: run FUNCTION with `set -e` in a subshell, its output in a log
# shown only on failure.
check() {
  local name="$1" log="$WORK/log.$((PASSED + FAILED))"
  shift
  set +e
  ( set -e; "$@" ) >"$log" 2>&1
  local rc=$?
  set -e
  if [ "$rc" -eq 0 ]; then
    PASSED=$((PASSED + 1))
    printf 'ok    %s\n' "$name"
  else
    FAILED=$((FAILED + 1))
    FAILURES+=("$name")
    printf 'FAIL  %s\n' "$name"
    sed 's/^/      /' "$log" | tail -n 40
  fi
}

# ---------------------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------------------
APT_UPDATED=0
apt_install() {
  if [ "$(id -u)" -ne 0 ]; then die "need root to apt-get install $*"; fi
  if [ "$APT_UPDATED" -eq 0 ]; then apt-get update -qq >/dev/null; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
need_cmd() { # need_cmd COMMAND APT-PACKAGE
  command -v "$1" >/dev/null 2>&1 || apt_install "$2"
  command -v "$1" >/dev/null 2>&1 || die "$1 is missing and apt package $2 did not provide it"
}

need_cmd systemd-analyze systemd
need_cmd systemd-socket-activate systemd
need_cmd systemd-sysusers systemd
need_cmd strace strace
need_cmd dpkg-deb dpkg
need_cmd ruby ruby
need_cmd cargo cargo
[ -x "$PY" ] || apt_install python3
"$PY" -c 'import yaml' 2>/dev/null || apt_install python3-yaml
"$PY" -c 'import yaml' 2>/dev/null || die "python3 cannot import yaml even after installing python3-yaml"
if ! cargo deb --version >/dev/null 2>&1; then
  echo "installing cargo-deb (cargo install --locked cargo-deb)"
  cargo install --locked --quiet cargo-deb
fi
cargo deb --version >/dev/null 2>&1 || die "cargo deb is not available after cargo install cargo-deb"
if ! cargo generate-rpm --version >/dev/null 2>&1; then
  echo "installing cargo-generate-rpm (cargo install --locked cargo-generate-rpm)"
  cargo install --locked --quiet cargo-generate-rpm
fi
cargo generate-rpm --version >/dev/null 2>&1 || die "cargo generate-rpm is not available after cargo install cargo-generate-rpm"
need_cmd rpm rpm
need_cmd readelf binutils
need_cmd buildah buildah
need_cmd podman podman
"$PY" -c 'import jsonschema' 2>/dev/null || apt_install python3-jsonschema
"$PY" -c 'import jsonschema' 2>/dev/null || die "python3 cannot import jsonschema even after installing python3-jsonschema"

VERSION="$(cargo metadata --no-deps --format-version 1 --locked | "$PY" -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"]=="ecr-broker"))')"
if [ "$DIST_ONLY" != 1 ]; then
echo "== building (cargo build --release --workspace)"
cargo build --release --workspace --locked
[ -x "$BIN/ecr-broker" ] && [ -x "$BIN/docker-credential-ecr" ] || die "release binaries missing in $BIN"
fi

# A small HTTP GET over a Unix socket (the image has no curl; here we just avoid needing it).
cat >"$WORK/uget.py" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(sys.argv[1])
s.sendall(("GET %s HTTP/1.1\r\nHost: ecr-broker\r\nConnection: close\r\n\r\n" % sys.argv[2]).encode())
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
head, _, body = data.partition(b"\r\n\r\n")
print(head.split(b"\r\n")[0].decode())
sys.stdout.write(body.decode())
EOF

if [ "$DIST_ONLY" != 1 ]; then
# ---------------------------------------------------------------------------------------
# systemd
# ---------------------------------------------------------------------------------------
# verify_units DIR SCOPE: copy the units, point ExecStart at the built binary, verify; any
# message at all (unknown key, bad value, missing command) is a failure.
verify_units() {
  local src="$1" scope="$2" dir out
  dir="$(mktemp -d "$WORK/units.XXXX")"
  cp "$src"/ecr-broker.socket "$src"/ecr-broker.service "$dir/"
  sed -i "s|/usr/bin/ecr-broker|$BIN/ecr-broker|g" "$dir/ecr-broker.service"
  grep -q "^ExecStart=$BIN/ecr-broker" "$dir/ecr-broker.service"
  if [ "$scope" = user ]; then
    local rt; rt="$(mktemp -d "$WORK/xdg.XXXX")"; chmod 700 "$rt"
    out="$(XDG_RUNTIME_DIR="$rt" systemd-analyze --user verify "$dir/ecr-broker.socket" "$dir/ecr-broker.service" 2>&1)"
  else
    out="$(systemd-analyze verify "$dir/ecr-broker.socket" "$dir/ecr-broker.service" 2>&1)"
  fi
  if [ -n "$out" ]; then echo "$out"; return 1; fi
}

# has_lines FILE LINE...: each LINE is present exactly as written.
has_lines() {
  local f="$1" missing=0; shift
  for l in "$@"; do
    grep -qxF -- "$l" "$f" || { echo "$f: missing line: $l"; missing=1; }
  done
  return "$missing"
}

system_units_promise() {
  has_lines "$PKG/systemd/ecr-broker.socket" \
    "ListenStream=/run/ecr-broker/broker.sock" "SocketMode=0660" "SocketGroup=ecr-broker" "WantedBy=sockets.target"
  has_lines "$PKG/systemd/ecr-broker.service" \
    "Type=notify" "User=ecr-broker" "Group=ecr-broker" "DynamicUser=no" "Requires=ecr-broker.socket" \
    "ExecReload=/bin/kill -HUP \$MAINPID" \
    "ProtectSystem=strict" "ProtectHome=yes" "PrivateTmp=yes" "NoNewPrivileges=yes" \
    "CapabilityBoundingSet=" "AmbientCapabilities=" \
    "StateDirectory=ecr-broker" "ConfigurationDirectory=ecr-broker" \
    "ProtectKernelTunables=yes" "ProtectKernelModules=yes" "ProtectKernelLogs=yes" \
    "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6" "SystemCallFilter=@system-service" \
    "Also=ecr-broker.socket"
  # Not running as root, the broker would pick its user-mode paths: all three must be given.
  grep -q '^ExecStart=/usr/bin/ecr-broker --config /etc/ecr-broker/config.toml --socket /run/ecr-broker/broker.sock --state /var/lib/ecr-broker/state.json$' "$PKG/systemd/ecr-broker.service"
  # SO_PEERCRED must see callers' real uids.
  if grep -q '^PrivateUsers=yes' "$PKG/systemd/ecr-broker.service"; then echo "PrivateUsers=yes hides callers' uids"; return 1; fi
  # A RuntimeDirectory= would delete the socket's directory whenever the service stops.
  if grep -q '^RuntimeDirectory=' "$PKG/systemd/ecr-broker.service"; then echo "RuntimeDirectory= would remove the socket"; return 1; fi
}

user_units_promise() {
  has_lines "$PKG/systemd/user/ecr-broker.socket" "ListenStream=%t/ecr-broker.sock" "SocketMode=0600"
  has_lines "$PKG/systemd/user/ecr-broker.service" "Type=notify" "ExecStart=/usr/bin/ecr-broker --user" \
    "ExecReload=/bin/kill -HUP \$MAINPID" "Requires=ecr-broker.socket"
}

sysusers_creates_user() {
  local root="$WORK/sysusers-root"
  mkdir -p "$root/etc"
  systemd-sysusers --root="$root" "$PKG/sysusers.d/ecr-broker.conf"
  grep -E '^ecr-broker:x:[0-9]+:[0-9]+:[^:]*:/var/lib/ecr-broker:/usr/sbin/nologin$' "$root/etc/passwd"
  grep -E '^ecr-broker:x:[0-9]+:' "$root/etc/group"
}

# The broker as ecr-broker.service runs it: its ExecStart arguments (paths moved into $WORK),
# the socket passed by socket activation, NOTIFY_SOCKET set.
socket_activation_and_notify() {
  local d="$WORK/activate" args
  mkdir -p "$d"
  cp "$PKG/config.toml" "$d/config.toml"
  args="$(sed -n 's|^ExecStart=/usr/bin/ecr-broker ||p' "$PKG/systemd/ecr-broker.service")"
  args="${args//\/etc\/ecr-broker\/config.toml/$d/config.toml}"
  args="${args//\/run\/ecr-broker\/broker.sock/$d/broker.sock}"
  args="${args//\/var\/lib\/ecr-broker\/state.json/$d/state.json}"
  cat >"$d/notify.py" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(30)
with open(sys.argv[2], "a") as out:
    while True:
        try:
            msg = s.recv(4096).decode()
        except socket.timeout:
            break
        out.write(msg + "\n")
        out.flush()
        if "STOPPING=1" in msg:
            break
EOF
  "$PY" "$d/notify.py" "$d/notify.sock" "$d/notify.log" &
  local np=$!
  for _ in $(seq 50); do [ -S "$d/notify.sock" ] && break; sleep 0.1; done
  # shellcheck disable=SC2086 # $args is the unit's argument list, split as systemd splits it
  NOTIFY_SOCKET="$d/notify.sock" HOME="$d" ECR_BROKER_SOCKET=none AWS_EC2_METADATA_DISABLED=true \
    systemd-socket-activate -l "$d/broker.sock" -E NOTIFY_SOCKET -E HOME -E AWS_EC2_METADATA_DISABLED \
    "$BIN/ecr-broker" $args >"$d/broker.log" 2>&1 &
  local bp=$!
  # shellcheck disable=SC2064 # expand the pids now
  trap "kill $bp $np 2>/dev/null || true" EXIT
  for _ in $(seq 50); do [ -S "$d/broker.sock" ] && break; sleep 0.1; done
  # The first connection starts the broker (systemd-socket-activate waits for it, as systemd does).
  "$PY" "$WORK/uget.py" "$d/broker.sock" /healthz | tee "$d/health"
  grep -q '^HTTP/1.1 200' "$d/health"
  for _ in $(seq 50); do grep -q READY=1 "$d/notify.log" 2>/dev/null && break; sleep 0.1; done
  grep -qx READY=1 "$d/notify.log"
  kill -HUP "$bp"
  for _ in $(seq 50); do grep -q 'configuration reloaded' "$d/broker.log" && break; sleep 0.1; done
  grep -q 'configuration reloaded' "$d/broker.log"
  "$PY" "$WORK/uget.py" "$d/broker.sock" /v1/status >"$d/status"
  grep -q '"identities"' "$d/status"
  kill -TERM "$bp"
  local rc=0
  wait "$bp" || rc=$?
  wait "$np" || true
  cat "$d/broker.log"
  [ "$rc" -eq 0 ] || { echo "broker exited $rc on SIGTERM"; return 1; }
  grep -qx STOPPING=1 "$d/notify.log"
  # The state file is written on exit, private.
  [ "$(stat -c %a "$d/state.json")" = 600 ]
}

# The syscall names in the filter groups given (nested @groups expanded).
expand_filter() {
  local seen=" " g item
  local queue=("$@") out=()
  while [ "${#queue[@]}" -gt 0 ]; do
    g="${queue[0]}"; queue=("${queue[@]:1}")
    case "$seen" in *" $g "*) continue ;; esac
    seen="$seen$g "
    while read -r item; do
      case "$item" in
        '' | '#'*) ;;
        @*) queue+=("$item") ;;
        *) out+=("$item") ;;
      esac
    done < <(systemd-analyze syscall-filter "$g" | tail -n +2)
  done
  printf '%s\n' "${out[@]}" | sort -u
}

# Under strace: every syscall and socket family the broker uses while starting (socket
# activation), serving each route (a token request included, failing fast against a closed
# local endpoint), reloading and stopping must pass the unit's SystemCallFilter= and
# RestrictAddressFamilies=. (Paths not exercised here, e.g. a successful TLS fetch, use the
# same network and I/O calls.)
syscalls_within_unit_filters() {
  local d="$WORK/strace" unit="$PKG/systemd/ecr-broker.service"
  mkdir -p "$d"
  cp "$PKG/config.toml" "$d/config.toml"
  local allow deny
  allow="$(sed -n 's/^SystemCallFilter=\([^~].*\)$/\1/p' "$unit" | tr '\n' ' ')"
  deny="$(sed -n 's/^SystemCallFilter=~\(.*\)$/\1/p' "$unit" | tr '\n' ' ')"
  echo "allowed: $allow; denied: $deny"
  # shellcheck disable=SC2086 # group lists
  expand_filter $allow >"$d/allowed"
  # shellcheck disable=SC2086
  if [ -n "$deny" ]; then expand_filter $deny >"$d/denied"; else : >"$d/denied"; fi
  HOME="$d" AWS_EC2_METADATA_DISABLED=true AWS_ACCESS_KEY_ID=AKIDEXAMPLE AWS_SECRET_ACCESS_KEY=example \
    AWS_ENDPOINT_URL=http://127.0.0.1:9 ECR_BROKER_SOCKET=none \
    strace -f -qq -o "$d/trace" systemd-socket-activate -l "$d/broker.sock" \
    -E HOME -E AWS_EC2_METADATA_DISABLED -E AWS_ACCESS_KEY_ID -E AWS_SECRET_ACCESS_KEY -E AWS_ENDPOINT_URL \
    "$BIN/ecr-broker" --config "$d/config.toml" --socket "$d/broker.sock" --state "$d/state.json" >"$d/log" 2>&1 &
  local sp=$!
  # shellcheck disable=SC2064
  trap "kill $sp 2>/dev/null || true" EXIT
  for _ in $(seq 50); do [ -S "$d/broker.sock" ] && break; sleep 0.1; done
  local path n=0
  for path in /healthz /v1/status /metrics '/v1/token?registry=123456789012.dkr.ecr.us-east-1.amazonaws.com'; do
    n=$((n + 1))
    "$PY" "$WORK/uget.py" "$d/broker.sock" "$path" >"$d/answer.$n"
    echo "$path: $(head -n 1 "$d/answer.$n")"
  done
  # The broker's pid (systemd-socket-activate execs it in place, under strace).
  local bp=""
  for _ in $(seq 50); do
    bp="$(sed -n 's/^\([0-9]*\) *execve("[^"]*ecr-broker".*= 0$/\1/p' "$d/trace" | head -n 1)"
    [ -n "$bp" ] && break; sleep 0.1
  done
  [ -n "$bp" ] || { echo "no execve of ecr-broker in the trace"; return 1; }
  # shellcheck disable=SC2064
  trap "kill $bp 2>/dev/null || true; sleep 1; kill $sp 2>/dev/null || true" EXIT
  kill -HUP "$bp"
  sleep 0.5
  kill -TERM "$bp"
  wait "$sp" || { echo "broker exited non-zero"; cat "$d/log"; return 1; }
  sed -n 's/^[0-9]* *\([a-z0-9_]*\)(.*/\1/p' "$d/trace" | sort -u >"$d/used"
  echo "$(wc -l <"$d/used") distinct syscalls used"
  local bad=0
  if [ -n "$(comm -23 "$d/used" "$d/allowed" | grep -vx execve)" ]; then
    echo "used but not allowed by SystemCallFilter=$allow:"; comm -23 "$d/used" "$d/allowed" | grep -vx execve; bad=1
  fi
  if [ -n "$(comm -12 "$d/used" "$d/denied")" ]; then
    echo "used but denied by SystemCallFilter=~$deny:"; comm -12 "$d/used" "$d/denied"; bad=1
  fi
  local families want
  families="$(grep -o 'socket(AF_[A-Z0-9]*' "$d/trace" | sed 's/socket(//' | sort -u | tr '\n' ' ')"
  want="$(sed -n 's/^RestrictAddressFamilies=//p' "$unit")"
  echo "socket families used: $families (allowed: $want)"
  for f in $families; do
    case " $want " in *" $f "*) ;; *) echo "socket family $f is not in RestrictAddressFamilies="; bad=1 ;; esac
  done
  return "$bad"
}

echo "== systemd"
check "systemd-analyze verify: system ecr-broker.socket + .service" verify_units "$PKG/systemd" system
check "systemd-analyze verify: user ecr-broker.socket + .service" verify_units "$PKG/systemd/user" user
check "system units: socket 0660 root:ecr-broker, notify, hardening, explicit paths" system_units_promise
check "user units: %t/ecr-broker.sock, --user" user_units_promise
check "sysusers.d: creates ecr-broker user and group (temporary root)" sysusers_creates_user
check "broker as the unit runs it: socket activation, READY=1, SIGHUP, SIGTERM" socket_activation_and_notify
check "broker's syscalls and socket families pass the unit's SystemCallFilter/RestrictAddressFamilies" syscalls_within_unit_filters

# ---------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------
config_checks() { "$BIN/ecr-broker" --check-config --config "$PKG/config.toml"; }

config_examples_check() {
  # Switch on every commented `key = value` and [table] line: the examples must be valid too.
  sed -E 's/^# ((\[|[a-z_]+ = ).*)$/\1/' "$PKG/config.toml" >"$WORK/config-examples.toml"
  grep -q '^\[\[rules\]\]' "$WORK/config-examples.toml"
  grep -q '^role_arn = ' "$WORK/config-examples.toml"
  "$BIN/ecr-broker" --check-config --config "$WORK/config-examples.toml" | tee "$WORK/cc.out"
  grep -q '(2 identities, 1 rules)' "$WORK/cc.out"
}

echo "== configuration"
check "ecr-broker --check-config packaging/config.toml" config_checks
check "packaging/config.toml: every commented example is valid" config_examples_check

fi # DIST_ONLY

# ---------------------------------------------------------------------------------------
# Release artifacts (packaging/dist.sh -> target/dist/): two .debs, two .rpms, two static
# tarballs, the OCI image archive, SHA256SUMS
# ---------------------------------------------------------------------------------------
DIST="$REPO/target/dist"
dist_one() { # dist_one GLOB: the single artifact matching GLOB in $DIST
  local m=("$DIST"/$1)
  [ "${#m[@]}" -eq 1 ] && [ -f "${m[0]}" ] || { echo "expected one $1 in $DIST, found: ${m[*]}" >&2; return 1; }
  echo "${m[0]}"
}

dist_checksums() {
  (cd "$DIST" && sha256sum -c SHA256SUMS)
  # Every artifact is listed.
  local f
  for f in "$DIST"/*; do
    [ "$(basename "$f")" = SHA256SUMS ] && continue
    grep -q "  $(basename "$f")\$" "$DIST/SHA256SUMS" || { echo "$(basename "$f") is not in SHA256SUMS"; return 1; }
  done
  [ "$(wc -l <"$DIST/SHA256SUMS")" -eq 7 ]
}

# completions_and_man NAME SHARE ZSH-DIR WORD: NAME's completions and man page as installed
# under SHARE (/usr/share of a package root, or a tarball's share/): bash sources the
# completion and it offers WORD (a subcommand or option) for `NAME <TAB>`; the zsh and fish files are those
# programs' completions for NAME; the man page is valid gzip, NAME's page, and `man -l` renders it.
completions_and_man() {
  local n="$1" share="$2" zdir="$3" sub="$4"
  local bc="$share/bash-completion/completions/$n"
  [ -s "$bc" ] || { echo "$bc is missing or empty"; return 1; }
  # shellcheck disable=SC2016 # expanded by the inner bash
  bash -c 'set -e; source "$1"; complete -p "$2" >/dev/null; f="$(complete -p "$2" | sed -n "s/.*-F \([^ ]*\).*/\1/p")"
    COMP_WORDS=("$2" ""); COMP_CWORD=1; COMP_LINE="$2 "; COMP_POINT=${#COMP_LINE}; "$f" "$2" "" "$2"
    printf "%s\n" "${COMPREPLY[@]}"' _ "$bc" "$n" >"$WORK/compreply.$n"
  grep -qx -- "$sub" "$WORK/compreply.$n" || { echo "bash completion of '$n ' does not offer $sub:"; cat "$WORK/compreply.$n"; return 1; }
  grep -q "^#compdef $n\b" "$share/$zdir/_$n" || { echo "$share/$zdir/_$n is not a zsh completion for $n"; return 1; }
  grep -q "^complete -c $n " "$share/fish/vendor_completions.d/$n.fish" || { echo "$n.fish is not a fish completion for $n"; return 1; }
  local man="$share/man/man1/$n.1.gz"
  gzip -t "$man"
  zcat "$man" | grep -q "^\.TH $n 1" || { echo "$man is not $n(1)"; return 1; }
  MANPAGER=cat MANWIDTH=80 man -l "$man" 2>/dev/null >"$WORK/man.$n"
  grep -q "^NAME" "$WORK/man.$n" && grep -q "$n" "$WORK/man.$n" || { echo "man -l $man rendered no NAME section"; return 1; }
  echo "$n: bash offers $sub, zsh, fish, man page ($(wc -l <"$WORK/man.$n") lines rendered) ok"
}

# "mode owner path[ -> target]" for every file and link of a .deb (directories left out).
deb_files() {
  dpkg-deb -c "$1" | awk '$1 !~ /^d/ { line = $1 " " $2; for (i = 6; i <= NF; i++) line = line " " $i; print line }' \
    | sed 's| \./| /|' | sort
}

deb_helper_package() {
  local deb; deb="$(dist_one 'docker-credential-ecr_*.deb')"
  dpkg-deb -f "$deb" Package Version Depends | tee "$WORK/hcontrol"
  grep -qx 'Package: docker-credential-ecr' "$WORK/hcontrol"
  grep -q "^Version: $VERSION-" "$WORK/hcontrol"
  # A laptop's package: no daemon, no system account, no unit, no maintainer script.
  if grep -q systemd "$WORK/hcontrol"; then echo "the helper package depends on systemd"; return 1; fi
  rm -rf "$WORK/hctrl"; dpkg-deb -e "$deb" "$WORK/hctrl"
  for s in preinst postinst prerm postrm; do [ ! -e "$WORK/hctrl/$s" ] || { echo "unexpected $s"; return 1; }; done
  deb_files "$deb" >"$WORK/hfiles.got"
  sort >"$WORK/hfiles.want" <<'EOF'
-rwxr-xr-x 0/0 /usr/bin/docker-credential-ecr
lrwxrwxrwx 0/0 /usr/libexec/ecr-cred/ecr-credential-provider -> ../../bin/docker-credential-ecr
-rw-r--r-- 0/0 /usr/share/ecr-cred/kubernetes/credential-provider-config.yaml
-rw-r--r-- 0/0 /usr/share/doc/docker-credential-ecr/install.md
-rw-r--r-- 0/0 /usr/share/doc/docker-credential-ecr/copyright
-rw-r--r-- 0/0 /usr/share/bash-completion/completions/docker-credential-ecr
-rw-r--r-- 0/0 /usr/share/zsh/vendor-completions/_docker-credential-ecr
-rw-r--r-- 0/0 /usr/share/fish/vendor_completions.d/docker-credential-ecr.fish
-rw-r--r-- 0/0 /usr/share/man/man1/docker-credential-ecr.1.gz
EOF
  diff -u "$WORK/hfiles.want" "$WORK/hfiles.got"
}

# Keep the packaged binaries away from this host's broker, AWS and the user's files.
isolated() {
  env -i PATH=/usr/bin:/bin HOME="$WORK/home" ECR_BROKER_SOCKET=none AWS_EC2_METADATA_DISABLED=true \
    AWS_ACCESS_KEY_ID= AWS_SECRET_ACCESS_KEY= AWS_ECR_DISABLE_CACHE=true "$@"
}

# The helper .deb installed by dpkg into a scratch root (its own dpkg database), run from
# there, then removed by dpkg.
deb_helper_dpkg_root_install() {
  local deb r="$WORK/dpkgroot"; deb="$(dist_one 'docker-credential-ecr_*.deb')"
  mkdir -p "$r/var/lib/dpkg/info" "$r/var/lib/dpkg/updates" "$r/var/lib/dpkg/triggers" "$WORK/home"
  : >"$r/var/lib/dpkg/status"; : >"$r/var/lib/dpkg/available"
  # --force-depends: the scratch root has no libc6 package in its database.
  dpkg --root="$r" --force-depends --force-not-root -i "$deb"
  dpkg --root="$r" -s docker-credential-ecr | grep -qx 'Status: install ok installed'
  isolated "$r/usr/bin/docker-credential-ecr" version | tee "$WORK/version"
  grep -qx "docker-credential-ecr $VERSION" "$WORK/version"
  local out rc=0
  out="$(echo docker.io | isolated "$r/usr/bin/docker-credential-ecr" get)" || rc=$?
  echo "get docker.io -> exit $rc: $out"
  [ "$rc" -eq 1 ] && [ "$out" = "credentials not found in native keychain" ]
  # The provider link dispatches by name: provider errors on stderr, not the helper's usage error.
  rc=0
  echo '{}' | isolated "$r/usr/libexec/ecr-cred/ecr-credential-provider" >"$WORK/prov.out" 2>"$WORK/prov.err" || rc=$?
  echo "provider: exit $rc; stderr: $(cat "$WORK/prov.err")"
  [ "$rc" -ne 0 ] && grep -q '^ecr-credential-provider: ' "$WORK/prov.err"
  if grep -q 'unknown action\|no action given' "$WORK/prov.out" "$WORK/prov.err"; then echo "ran as the helper"; return 1; fi
  cmp "$r/usr/share/ecr-cred/kubernetes/credential-provider-config.yaml" "$PKG/kubernetes/credential-provider-config.yaml"
  completions_and_man docker-credential-ecr "$r/usr/share" zsh/vendor-completions get-login-password
  dpkg --root="$r" --force-not-root -r docker-credential-ecr
  [ ! -e "$r/usr/bin/docker-credential-ecr" ] && [ ! -L "$r/usr/libexec/ecr-cred/ecr-credential-provider" ]
  [ ! -e "$r/usr/share/bash-completion/completions/docker-credential-ecr" ] && [ ! -e "$r/usr/share/man/man1/docker-credential-ecr.1.gz" ]
}

deb_broker_package() {
  local deb; deb="$(dist_one 'ecr-broker_*.deb')"
  dpkg-deb -f "$deb" Package Version Depends Recommends | tee "$WORK/control"
  grep -qx 'Package: ecr-broker' "$WORK/control"
  grep -q "^Version: $VERSION-" "$WORK/control"
  grep -q '^Depends: .*systemd' "$WORK/control"
  grep -qx 'Recommends: docker-credential-ecr' "$WORK/control"
  rm -rf "$WORK/ctrl"
  dpkg-deb -e "$deb" "$WORK/ctrl"
  grep -qx /etc/ecr-broker/config.toml "$WORK/ctrl/conffiles"
  # The user (for the socket's group) before the units are enabled and started.
  local su en st
  su="$(grep -n 'systemd-sysusers' "$WORK/ctrl/postinst" | head -1 | cut -d: -f1)"
  en="$(grep -n 'deb-systemd-helper enable ecr-broker.socket' "$WORK/ctrl/postinst" | head -1 | cut -d: -f1)"
  st="$(grep -n 'deb-systemd-invoke .*ecr-broker.socket' "$WORK/ctrl/postinst" | head -1 | cut -d: -f1)"
  echo "postinst lines: sysusers $su, enable $en, start $st"
  if ! { [ -n "$su" ] && [ -n "$en" ] && [ -n "$st" ] && [ "$su" -lt "$en" ] && [ "$en" -lt "$st" ]; }; then
    echo "postinst must create the user, then enable, then start"; return 1
  fi
  grep -q 'ecr-broker.conf' "$WORK/ctrl/postinst"
  grep -q 'deb-systemd-invoke stop ecr-broker.service ecr-broker.socket' "$WORK/ctrl/prerm"
  grep -q 'deb-systemd-helper purge' "$WORK/ctrl/postrm"
  for s in postinst prerm postrm; do sh -n "$WORK/ctrl/$s"; done
  deb_files "$deb" >"$WORK/files.got"
  sort >"$WORK/files.want" <<'EOF'
-rwxr-xr-x 0/0 /usr/bin/ecr-broker
-rw-r--r-- 0/0 /etc/ecr-broker/config.toml
-rw-r--r-- 0/0 /usr/lib/sysusers.d/ecr-broker.conf
-rw-r--r-- 0/0 /usr/lib/systemd/system/ecr-broker.service
-rw-r--r-- 0/0 /usr/lib/systemd/system/ecr-broker.socket
-rw-r--r-- 0/0 /usr/lib/systemd/user/ecr-broker.service
-rw-r--r-- 0/0 /usr/lib/systemd/user/ecr-broker.socket
-rw-r--r-- 0/0 /usr/share/doc/ecr-broker/install.md
-rw-r--r-- 0/0 /usr/share/doc/ecr-broker/copyright
-rw-r--r-- 0/0 /usr/share/bash-completion/completions/ecr-broker
-rw-r--r-- 0/0 /usr/share/zsh/vendor-completions/_ecr-broker
-rw-r--r-- 0/0 /usr/share/fish/vendor_completions.d/ecr-broker.fish
-rw-r--r-- 0/0 /usr/share/man/man1/ecr-broker.1.gz
EOF
  diff -u "$WORK/files.want" "$WORK/files.got"
  # Unpacked: the files are packaging/'s, the binary checks the packaged config.
  local r="$WORK/debroot"
  mkdir -p "$r"; dpkg-deb -x "$deb" "$r"
  cmp "$r/usr/lib/systemd/system/ecr-broker.service" "$PKG/systemd/ecr-broker.service"
  cmp "$r/usr/lib/systemd/system/ecr-broker.socket" "$PKG/systemd/ecr-broker.socket"
  cmp "$r/usr/lib/systemd/user/ecr-broker.service" "$PKG/systemd/user/ecr-broker.service"
  cmp "$r/etc/ecr-broker/config.toml" "$PKG/config.toml"
  cmp "$r/usr/lib/sysusers.d/ecr-broker.conf" "$PKG/sysusers.d/ecr-broker.conf"
  "$r/usr/bin/ecr-broker" --check-config --config "$r/etc/ecr-broker/config.toml"
  "$r/usr/bin/ecr-broker" --version | grep -q "$VERSION"
  completions_and_man ecr-broker "$r/usr/share" zsh/vendor-completions --check-config
}

# "mode owner:group path" of an rpm's files.
rpm_files() { rpm -qplv "$1" | awk '{ print $1, $3 ":" $4, $NF }' | sort; }

rpm_packages() {
  local h b
  h="$(dist_one 'docker-credential-ecr-*.rpm')"; b="$(dist_one 'ecr-broker-*.rpm')"
  rpm -qp --queryformat '%{NAME} %{VERSION}\n' "$h" "$b" | tee "$WORK/rpm.nv"
  grep -qx "docker-credential-ecr $VERSION" "$WORK/rpm.nv"
  grep -qx "ecr-broker $VERSION" "$WORK/rpm.nv"
  rpm_files "$h" >"$WORK/hrpm.got"
  sort >"$WORK/hrpm.want" <<'WANT'
-rwxr-xr-x root:root /usr/bin/docker-credential-ecr
-rw-r--r-- root:root /usr/share/ecr-cred/kubernetes/credential-provider-config.yaml
-rw-r--r-- root:root /usr/share/doc/docker-credential-ecr/install.md
-rw-r--r-- root:root /usr/share/bash-completion/completions/docker-credential-ecr
-rw-r--r-- root:root /usr/share/zsh/site-functions/_docker-credential-ecr
-rw-r--r-- root:root /usr/share/fish/vendor_completions.d/docker-credential-ecr.fish
-rw-r--r-- root:root /usr/share/man/man1/docker-credential-ecr.1.gz
WANT
  diff -u "$WORK/hrpm.want" "$WORK/hrpm.got"
  rpm_files "$b" >"$WORK/rpm.got"
  sort >"$WORK/rpm.want" <<'WANT'
-rwxr-xr-x root:root /usr/bin/ecr-broker
-rw-r--r-- root:root /etc/ecr-broker/config.toml
-rw-r--r-- root:root /usr/lib/sysusers.d/ecr-broker.conf
-rw-r--r-- root:root /usr/lib/systemd/system/ecr-broker.service
-rw-r--r-- root:root /usr/lib/systemd/system/ecr-broker.socket
-rw-r--r-- root:root /usr/lib/systemd/user/ecr-broker.service
-rw-r--r-- root:root /usr/lib/systemd/user/ecr-broker.socket
-rw-r--r-- root:root /usr/share/doc/ecr-broker/install.md
-rw-r--r-- root:root /usr/share/bash-completion/completions/ecr-broker
-rw-r--r-- root:root /usr/share/zsh/site-functions/_ecr-broker
-rw-r--r-- root:root /usr/share/fish/vendor_completions.d/ecr-broker.fish
-rw-r--r-- root:root /usr/share/man/man1/ecr-broker.1.gz
WANT
  diff -u "$WORK/rpm.want" "$WORK/rpm.got"
  rpm -qpc "$b" | grep -qx /etc/ecr-broker/config.toml
  rpm -qp --requires "$b" | grep -qx systemd
  if rpm -qp --requires "$h" | grep -qx systemd; then echo "the helper rpm requires systemd"; return 1; fi
  # cargo-generate-rpm takes a script path it cannot find as the script's text: make sure the
  # files were read.
  rpm -qp --scripts "$h" >"$WORK/hrpm.scripts"
  grep -q 'ln -sfn ../../bin/docker-credential-ecr /usr/libexec/ecr-cred/ecr-credential-provider' "$WORK/hrpm.scripts"
  grep -q 'rm -f /usr/libexec/ecr-cred/ecr-credential-provider' "$WORK/hrpm.scripts"
  rpm -qp --scripts "$b" >"$WORK/rpm.scripts"
  grep -q 'systemd-sysusers /usr/lib/sysusers.d/ecr-broker.conf' "$WORK/rpm.scripts"
  grep -q 'disable --now ecr-broker.service ecr-broker.socket' "$WORK/rpm.scripts"
  grep -q 'try-restart ecr-broker.service' "$WORK/rpm.scripts"
  for f in "$PKG"/rpm/*/*.sh; do sh -n "$f"; done
}

tarballs() {
  local h b t="$WORK/tar"
  h="$(dist_one 'docker-credential-ecr-*.tar.gz')"; b="$(dist_one 'ecr-broker-*.tar.gz')"
  mkdir -p "$t" "$WORK/home"
  tar -C "$t" -xzf "$h"; tar -C "$t" -xzf "$b"
  local hd bd
  hd="$t/$(basename "$h" .tar.gz)"; bd="$t/$(basename "$b" .tar.gz)"
  [ "$(readlink "$hd/ecr-credential-provider")" = docker-credential-ecr ]
  cmp "$hd/credential-provider-config.yaml" "$PKG/kubernetes/credential-provider-config.yaml"
  cmp "$bd/systemd/ecr-broker.service" "$PKG/systemd/ecr-broker.service"
  cmp "$bd/config.toml" "$PKG/config.toml"
  for x in "$hd/docker-credential-ecr" "$bd/ecr-broker"; do
    # Static: no program interpreter, so they run on any glibc or none (AL2, scratch images).
    if readelf -l "$x" | grep -q 'program interpreter'; then echo "$x is dynamically linked"; return 1; fi
  done
  isolated "$hd/docker-credential-ecr" version | grep -qx "docker-credential-ecr $VERSION"
  "$bd/ecr-broker" --check-config --config "$bd/config.toml"
  completions_and_man docker-credential-ecr "$hd/share" zsh/site-functions get-login-password
  completions_and_man ecr-broker "$bd/share" zsh/site-functions --check-config
}

# The static binaries never load an NSS module: they read /etc/passwd and /etc/group
# themselves (src/users.rs). Each lookup that crashed them with SIGSEGV in libnss_systemd.so.2
# on Debian 12 (docs/install-walkthrough.md) now answers, here with the tarballs' binaries:
# the helper as a uid without an entry and without HOME; the helper as root before a socket
# of uid 65532 with no ecr-broker user (and, with ECR_BROKER_UID=65532, asking that broker);
# the broker with allow_gids asked by a uid without an entry. Needs uids 4242 and 65532
# without an /etc/passwd entry and no ecr-broker user; a host where that is not so fails.
static_lookups_without_nss() { # static_lookups_without_nss HELPER BROKER
  local h="$1" b="$2" d="$WORK/nss" rc reg=123456789012.dkr.ecr.us-east-1.amazonaws.com
  local u
  for u in 4242 65532; do
    if awk -F: -v u="$u" '$3 == u { f = 1 } END { exit !f }' /etc/passwd; then echo "uid $u has an /etc/passwd entry here"; return 1; fi
  done
  if grep -q '^ecr-broker:' /etc/passwd; then echo "this host has an ecr-broker user"; return 1; fi
  grep -E '^(passwd|group):' /etc/nsswitch.conf || true
  mkdir -p "$d/home" "$d/run" "$d/b1"
  # uids 4242 and 65532 must reach the binaries and sockets under $WORK (mktemp: 0700).
  chmod 0711 "$WORK"; chmod 0755 "$d" "$d/b1"
  : >"$d/empty.toml"; chmod 0644 "$d/empty.toml"
  local aws=(AWS_EC2_METADATA_DISABLED=true AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID= AWS_SECRET_ACCESS_KEY= AWS_ECR_DISABLE_CACHE=true)

  # 1. The helper as uid 4242 (no entry), HOME unset.
  rc=0
  env -i PATH=/usr/bin:/bin ECR_BROKER_SOCKET=none "${aws[@]}" setpriv --reuid 4242 --regid 4242 --clear-groups \
    "$h" get <<<"$reg" >"$d/1.out" 2>&1 || rc=$?
  echo "1. helper as uid 4242 without HOME: exit $rc"; cat "$d/1.out"
  [ "$rc" -eq 1 ]
  grep -q 'no usable AWS credentials' "$d/1.out"

  # 2. A broker running as 65532 on a socket in a 0750 folder of 65532 (the container's and
  # the DaemonSet's); the helper as root, no ecr-broker user here.
  chown 65532:65532 "$d/run"; chmod 0750 "$d/run"
  env -i PATH=/usr/bin:/bin HOME=/nonexistent "${aws[@]}" setpriv --reuid 65532 --regid 65532 --clear-groups \
    "$b" --config "$d/empty.toml" --socket "$d/run/broker.sock" --state "$d/run/state.json" >"$d/b2.log" 2>&1 &
  local bp=$!
  for _ in $(seq 50); do [ -S "$d/run/broker.sock" ] && break; sleep 0.1; done
  [ -S "$d/run/broker.sock" ] || { echo "the broker as 65532 did not start"; cat "$d/b2.log"; return 1; }
  rc=0
  env -i PATH=/usr/bin:/bin HOME="$d/home" ECR_BROKER_SOCKET="$d/run/broker.sock" "${aws[@]}" "$h" get <<<"$reg" >"$d/2.out" 2>&1 || rc=$?
  echo "2. helper as root, socket of uid 65532: exit $rc"; cat "$d/2.out"
  [ "$rc" -eq 1 ]
  grep -q 'not asking this ecr-broker: it belongs to uid 65532' "$d/2.out"
  grep -q 'no usable AWS credentials' "$d/2.out"
  rc=0
  env -i PATH=/usr/bin:/bin HOME="$d/home" ECR_BROKER_SOCKET="$d/run/broker.sock" ECR_BROKER_UID=65532 "${aws[@]}" \
    "$h" get <<<"$reg" >"$d/2b.out" 2>&1 || rc=$?
  echo "2b. the same with ECR_BROKER_UID=65532: exit $rc"; cat "$d/2b.out"
  [ "$rc" -eq 1 ]
  grep -q 'the ecr-broker could not get a token' "$d/2b.out"
  if grep -q 'not asking' "$d/2b.out"; then echo "ECR_BROKER_UID=65532 did not make the socket trusted"; return 1; fi
  kill "$bp"; wait "$bp" || true

  # 3. The broker (root) with allow_gids, asked by uid/gid 4242 (no entry) over a 0666 socket.
  printf 'allow_gids = [4243]\nsocket_mode = "0666"\n' >"$d/b1/config.toml"
  env -i PATH=/usr/bin:/bin HOME="$d/home" "${aws[@]}" \
    "$b" --config "$d/b1/config.toml" --socket "$d/b1/broker.sock" --state "$d/b1/state.json" >"$d/b1.log" 2>&1 &
  bp=$!
  for _ in $(seq 50); do [ -S "$d/b1/broker.sock" ] && break; sleep 0.1; done
  [ -S "$d/b1/broker.sock" ] || { echo "the broker with allow_gids did not start"; cat "$d/b1.log"; return 1; }
  rc=0
  env -i PATH=/usr/bin:/bin HOME=/nonexistent ECR_BROKER_SOCKET="$d/b1/broker.sock" "${aws[@]}" \
    setpriv --reuid 4242 --regid 4242 --clear-groups "$h" get <<<"$reg" >"$d/3.out" 2>&1 || rc=$?
  echo "3. uid 4242 asks the broker with allow_gids: exit $rc"; cat "$d/3.out"
  local alive=0; kill -0 "$bp" 2>/dev/null || alive=$?
  kill "$bp" 2>/dev/null || true
  local rc2=0; wait "$bp" || rc2=$?
  echo "broker: alive after the request: $([ "$alive" = 0 ] && echo yes || echo no), exit $rc2"; tail -n 5 "$d/b1.log"
  [ "$alive" -eq 0 ]
  [ "$rc2" -ne 139 ]
  [ "$rc" -eq 1 ]
  # gid 4243 is not the caller's: the broker looks up uid 4242's groups (none) and refuses.
  grep -q 'the ecr-broker refused this request: uid 4242 may use no identity' "$d/3.out"
}

# The image: `podman load` accepts the archive; it runs with no network; the helper inside
# resolves a name through /etc/hosts (nsswitch `files`) and reaches a server by it.
IMAGE_REF=""
# podman_run ARGS...: `podman run` with the options this host needs to start a container at all,
# found once by running the image's --version and kept in $WORK/podman.opts: none on an
# ordinary host; in a sandbox without CAP_SYS_RESOURCE, where crun/runc cannot raise
# RLIMIT_NOFILE/NPROC to podman's defaults ("setrlimit RLIMIT_NOFILE: Operation not
# permitted"), explicit limits at or below this shell's hard limits (--ulimit host is not
# enough: podman still sets them); and where crun also refuses the host's hybrid cgroup
# layout ("cgroups in hybrid mode not supported"), runc. The image itself is the same.
podman_run() {
  local opts=()
  if [ ! -f "$WORK/podman.opts" ]; then
    local n p cand found=0
    n="$(ulimit -Hn)"; p="$(ulimit -Hu)"
    [ "$n" = unlimited ] || [ "$n" -gt 4096 ] && n=4096
    [ "$p" = unlimited ] || [ "$p" -gt 4096 ] && p=4096
    for cand in "" "--ulimit nofile=$n:$n --ulimit nproc=$p:$p" "--runtime runc --ulimit nofile=$n:$n --ulimit nproc=$p:$p"; do
      # shellcheck disable=SC2086 # an option list
      if podman run --rm --network none $cand "$IMAGE_REF" --version >"$WORK/podman.probe" 2>&1; then
        echo "$cand" >"$WORK/podman.opts"; found=1; break
      fi
      echo "podman run ${cand:-(no options)}: $(tail -n 1 "$WORK/podman.probe")" >&2
    done
    [ "$found" = 1 ] || { echo "podman cannot run a container on this host" >&2; return 1; }
    echo "podman run options for this host: $(cat "$WORK/podman.opts")" >&2
  fi
  read -r -a opts <"$WORK/podman.opts" || true
  podman run "${opts[@]}" "$@"
}

image_loads_and_runs() {
  local a; a="$(dist_one 'ecr-broker-*.oci.tar')"
  podman load -i "$a" | tee "$WORK/load.out"
  IMAGE_REF="$(sed -n 's/^Loaded image: //p' "$WORK/load.out" | tail -n 1)"
  [ -n "$IMAGE_REF" ] || { echo "podman load named no image"; return 1; }
  echo "$IMAGE_REF" >"$WORK/image.ref"
  podman_run --rm --network none "$IMAGE_REF" --version | tee "$WORK/img.version"
  grep -q "ecr-broker $VERSION" "$WORK/img.version"
  # The provider link dispatches by name inside the image too: a provider error on stderr.
  local rc=0
  echo '{}' | podman_run -i --rm --network none --entrypoint /usr/bin/ecr-credential-provider "$IMAGE_REF" \
    >"$WORK/img-prov.out" 2>"$WORK/img-prov.err" || rc=$?
  echo "provider in the image: exit $rc; stderr: $(cat "$WORK/img-prov.err")"
  [ "$rc" -ne 0 ] && grep -q '^ecr-credential-provider: ' "$WORK/img-prov.err"
  podman_run --rm --network none --entrypoint /usr/bin/docker-credential-ecr "$IMAGE_REF" version | grep -qx "docker-credential-ecr $VERSION"
  # The shipped config checks inside; it runs as 65532.
  podman_run --rm --network none "$IMAGE_REF" --check-config --config /etc/ecr-broker/config.toml
  [ "$(podman image inspect --format '{{.Config.User}}' "$IMAGE_REF")" = 65532:65532 ]
  # The broker starts as the image says and its healthcheck (the probes' command) passes.
  local c
  c="$(podman_run -d --network none "$IMAGE_REF")"
  local ok=1
  for _ in $(seq 50); do
    if podman exec "$c" /usr/bin/ecr-broker healthcheck --socket /run/ecr-broker/broker.sock; then ok=0; break; fi
    sleep 0.2
  done
  podman logs "$c" 2>&1 | tail -n 5
  podman rm -f "$c" >/dev/null
  return "$ok"
}

image_resolves_names() {
  IMAGE_REF="$(cat "$WORK/image.ref")"
  # A fake AWS endpoint on the host; the helper in the container reaches it by a name that
  # only the container's /etc/hosts knows (the image's nsswitch.conf: `hosts: files dns`).
  local port log="$WORK/fakeaws.log"
  port="$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  "$PY" - "$port" "$log" <<'EOF' &
import http.server, sys
port, log = int(sys.argv[1]), sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        with open(log, "a") as f:
            f.write("%s %s\n" % (self.command, self.headers.get("Host")))
        self.send_response(500); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
EOF
  local sp=$!
  # shellcheck disable=SC2064
  trap "kill $sp 2>/dev/null || true" EXIT
  sleep 0.5
  local rc=0
  printf '127.0.0.1 localhost\n127.0.0.1 fake-aws.test\n' >"$WORK/img-hosts"
  podman_run --rm --network host -v "$WORK/img-hosts:/etc/hosts:ro" --entrypoint /usr/bin/docker-credential-ecr \
    -e AWS_ENDPOINT_URL="http://fake-aws.test:$port" -e AWS_ACCESS_KEY_ID=AKIDEXAMPLE -e AWS_SECRET_ACCESS_KEY=example \
    -e AWS_REGION=us-east-1 -e ECR_BROKER_SOCKET=none -e AWS_ECR_DISABLE_CACHE=1 -e AWS_EC2_METADATA_DISABLED=true \
    "$IMAGE_REF" get-login-password 123456789012.dkr.ecr.us-east-1.amazonaws.com >"$WORK/img.out" 2>&1 || rc=$?
  cat "$WORK/img.out"; cat "$log" 2>/dev/null || true
  [ "$rc" -ne 0 ]
  grep -q "^POST fake-aws.test:$port\$" "$log"
}

echo "== release artifacts (packaging/dist.sh -> target/dist)"
if [ "$DIST_ONLY" = 1 ]; then
  echo "note  --dist-only: checking the artifacts already in $DIST"
elif DISTOUT="$("$PKG/dist.sh" 2>&1)"; then
  PASSED=$((PASSED + 1)); echo "ok    packaging/dist.sh"; echo "$DISTOUT" | grep '^static build: ' | sed 's/^/      /'
else
  FAILED=$((FAILED + 1)); FAILURES+=("packaging/dist.sh"); echo "FAIL  packaging/dist.sh"; echo "$DISTOUT" | tail -n 40 | sed 's/^/      /'
fi
check "SHA256SUMS lists and verifies every artifact" dist_checksums
check "docker-credential-ecr .deb: control, no scripts, no systemd, file list" deb_helper_package
check "docker-credential-ecr .deb: dpkg --root install, run, provider link, completions, man page, dpkg -r" deb_helper_dpkg_root_install
check "ecr-broker .deb: control, conffiles, maintainer scripts in order, files, unpacked run, completions, man page" deb_broker_package
check ".rpm x2: names, versions, file lists, config, requires, scriptlets" rpm_packages
check "static tarballs: contents, no interpreter, run, completions and man pages" tarballs
static_nss() {
  local t="$WORK/nss-tar" h b
  mkdir -p "$t"
  h="$(dist_one 'docker-credential-ecr-*.tar.gz')"; b="$(dist_one 'ecr-broker-*.tar.gz')"
  tar -C "$t" -xzf "$h"; tar -C "$t" -xzf "$b"
  static_lookups_without_nss "$t/$(basename "$h" .tar.gz)/docker-credential-ecr" "$t/$(basename "$b" .tar.gz)/ecr-broker"
}
check "static binaries: no NSS module loaded (uid without an entry, socket of uid 65532, ECR_BROKER_UID, allow_gids)" static_nss
check "OCI image: podman load, runs offline as 65532, broker healthcheck passes" image_loads_and_runs
check "OCI image: a name from /etc/hosts resolves inside (static glibc, nsswitch files)" image_resolves_names

if [ "$DIST_ONLY" != 1 ]; then
# ---------------------------------------------------------------------------------------
# Kubernetes manifests and Helm chart
# ---------------------------------------------------------------------------------------
cat >"$WORK/k8s_check.py" <<'EOF'
"""Checks of Kubernetes manifests: python3 k8s_check.py MODE FILE... (MODE: static|rendered).
Prints one line per problem; exit 1 if any. Writes the ConfigMap's config.toml to $CONFIG_OUT."""
import os, sys, yaml

mode, files = sys.argv[1], sys.argv[2:]
problems = []
objs = []
for f in files:
    with open(f) as fh:
        for i, doc in enumerate(yaml.safe_load_all(fh)):
            if doc is None:
                continue
            objs.append((f"{os.path.basename(f)}#{i}", doc))

def p(where, msg):
    problems.append(f"{where}: {msg}")

by_kind = {}
for where, o in objs:
    if not isinstance(o, dict):
        p(where, "not a mapping"); continue
    for k in ("apiVersion", "kind"):
        if not o.get(k):
            p(where, f"no {k}")
    kind = o.get("kind")
    if kind == "CredentialProviderConfig":
        if o.get("apiVersion") != "kubelet.config.k8s.io/v1":
            p(where, "CredentialProviderConfig apiVersion is not kubelet.config.k8s.io/v1")
        provs = o.get("providers") or []
        names = [x.get("name") for x in provs]
        if "ecr-credential-provider" not in names:
            p(where, f"no provider named ecr-credential-provider (the packaged symlink's name): {names}")
        for x in provs:
            for k in ("name", "apiVersion", "matchImages", "defaultCacheDuration"):
                if not x.get(k):
                    p(where, f"provider {x.get('name')}: no {k}")
        continue
    if kind == "Kustomization":
        for r in o.get("resources", []):
            if not os.path.exists(os.path.join(os.path.dirname(files[0]), r)):
                p(where, f"kustomization resource {r} does not exist")
        continue
    md = o.get("metadata") or {}
    if not md.get("name"):
        p(where, "no metadata.name")
    if md.get("namespace") != "kube-system":
        p(where, f"namespace is {md.get('namespace')!r}, expected kube-system")
    by_kind.setdefault(kind, []).append((where, o))

for kind in ("DaemonSet", "ConfigMap", "ServiceAccount"):
    if len(by_kind.get(kind, [])) != 1:
        p("manifests", f"expected exactly one {kind}, found {len(by_kind.get(kind, []))}")

cms = {o["metadata"]["name"]: o for _, o in by_kind.get("ConfigMap", [])}
sas = {o["metadata"]["name"] for _, o in by_kind.get("ServiceAccount", [])}
for where, ds in by_kind.get("DaemonSet", []):
    if ds.get("apiVersion") != "apps/v1":
        p(where, "DaemonSet apiVersion is not apps/v1")
    spec = ds.get("spec") or {}
    sel = (spec.get("selector") or {}).get("matchLabels") or {}
    tmpl = spec.get("template") or {}
    labels = (tmpl.get("metadata") or {}).get("labels") or {}
    if not sel:
        p(where, "no spec.selector.matchLabels")
    for k, v in sel.items():
        if labels.get(k) != v:
            p(where, f"selector {k}={v} does not match the template's labels {labels}")
    pod = tmpl.get("spec") or {}
    if pod.get("serviceAccountName") not in sas:
        p(where, f"serviceAccountName {pod.get('serviceAccountName')!r} is not a ServiceAccount here ({sas})")
    psc = pod.get("securityContext") or {}
    if psc.get("runAsNonRoot") is not True or not psc.get("runAsUser"):
        p(where, "pod securityContext must set runAsNonRoot: true and a non-zero runAsUser")
    if (psc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        p(where, "pod seccompProfile is not RuntimeDefault")
    vols = {v["name"]: v for v in pod.get("volumes") or []}
    hp = [v for v in vols.values() if "hostPath" in v and v["hostPath"].get("path") != "/etc/eks"]
    if len(hp) != 1 or hp[0]["hostPath"].get("path") != "/run/ecr-broker" or hp[0]["hostPath"].get("type") != "DirectoryOrCreate":
        p(where, f"expected one hostPath volume /run/ecr-broker (DirectoryOrCreate), got {[v.get('hostPath') for v in hp]}")
    # The only other host folder: /etc/eks, for the provider install init container alone.
    eks = [n for n, v in vols.items() if (v.get("hostPath") or {}).get("path") == "/etc/eks"]
    for n in eks:
        if vols[n]["hostPath"].get("type") != "Directory":
            p(where, "the /etc/eks hostPath must be type Directory (never created on a non-EKS node)")
        users = [c.get("name") for c in (pod.get("containers") or []) + (pod.get("initContainers") or [])
                 if any(m["name"] == n for m in c.get("volumeMounts") or [])]
        if users != ["install-provider"]:
            p(where, f"/etc/eks is mounted by {users}, expected only install-provider")
    for c in pod.get("initContainers") or []:
        if c.get("name") == "install-provider":
            if c.get("command") != ["/usr/bin/docker-credential-ecr", "kubelet", "install", "--root", "/host", "--broker-uid", "65532"]:
                p(where, f"install-provider runs {c.get('command')}")
            if [m["mountPath"] for m in c.get("volumeMounts") or []] != ["/host/etc/eks"]:
                p(where, "install-provider must mount the host's /etc/eks at /host/etc/eks, and nothing else")
            if (c.get("securityContext") or {}).get("capabilities", {}).get("add"):
                p(where, "install-provider needs no capability")
    if os.environ.get("EXPECT_INSTALL") and not eks:
        p(where, "no install-provider init container")
    for v in vols.values():
        if "configMap" in v and v["configMap"].get("name") not in cms:
            p(where, f"volume {v['name']} names ConfigMap {v['configMap'].get('name')!r}, not defined here")
    containers = pod.get("containers") or []
    if len(containers) != 1:
        p(where, f"expected one container, got {len(containers)}")
    for c in containers + (pod.get("initContainers") or []):
        cn = c.get("name")
        sc = c.get("securityContext") or {}
        if sc.get("allowPrivilegeEscalation") is not False:
            p(where, f"{cn}: allowPrivilegeEscalation is not false")
        if sc.get("readOnlyRootFilesystem") is not True:
            p(where, f"{cn}: readOnlyRootFilesystem is not true")
        if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
            p(where, f"{cn}: capabilities do not drop ALL")
        res = c.get("resources") or {}
        if not (res.get("requests") and (res.get("limits") or {}).get("memory")):
            p(where, f"{cn}: needs resource requests and a memory limit")
        for m in c.get("volumeMounts") or []:
            if m["name"] not in vols:
                p(where, f"{cn}: mounts undefined volume {m['name']}")
    for c in containers:
        if (c.get("securityContext") or {}).get("runAsUser") == 0 or (c.get("securityContext") or {}).get("privileged"):
            p(where, f"{c.get('name')}: the broker must not run as root or privileged")
        if not c.get("image"):
            p(where, "container has no image")
        for probe in ("readinessProbe", "livenessProbe"):
            cmd = ((c.get(probe) or {}).get("exec") or {}).get("command") or []
            if cmd[:4] != ["/usr/bin/ecr-broker", "healthcheck", "--socket", "/run/ecr-broker/broker.sock"]:
                p(where, f"{probe} is not `ecr-broker healthcheck --socket /run/ecr-broker/broker.sock`: {cmd}")
        img = c.get("image") or ""
        if "ghcr.io/ecr-cred" in img or img.startswith("docker.io/ecr-cred"):
            p(where, f"image {img} looks published; none is")
        args = c.get("args") or []
        opts = {args[i]: args[i + 1] for i in range(len(args) - 1) if args[i].startswith("--")}
        if opts.get("--socket") != "/run/ecr-broker/broker.sock":
            p(where, f"--socket is {opts.get('--socket')!r}, expected /run/ecr-broker/broker.sock")
        mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts") or []}
        if hp and mounts.get("/run/ecr-broker") != hp[0]["name"]:
            p(where, "the hostPath socket directory is not mounted at /run/ecr-broker")
        cfg = opts.get("--config", "")
        cfg_dir, cfg_file = os.path.split(cfg)
        vol = vols.get(mounts.get(cfg_dir, ""), {})
        cm = cms.get((vol.get("configMap") or {}).get("name"))
        if not cm or cfg_file not in (cm.get("data") or {}):
            p(where, f"--config {cfg!r} is not a key of a mounted ConfigMap")
        elif os.environ.get("CONFIG_OUT"):
            with open(os.environ["CONFIG_OUT"], "w") as out:
                out.write(cm["data"][cfg_file])
        if not opts.get("--state", "").startswith(tuple(k + "/" for k in mounts)):
            p(where, f"--state {opts.get('--state')!r} is not on a mounted volume (the root filesystem is read-only)")

for x in problems:
    print(x)
sys.exit(1 if problems else 0)
EOF

k8s_yaml_parses() {
  local f
  for f in "$PKG"/kubernetes/*.yaml "$PKG"/kubernetes-install-provider/*.yaml "$PKG"/helm/ecr-broker/Chart.yaml "$PKG"/helm/ecr-broker/values.yaml "$PKG"/helm/ecr-broker/ci/*.yaml; do
    "$PY" -c 'import sys, yaml; list(yaml.safe_load_all(open(sys.argv[1]))); print("parsed", sys.argv[1])' "$f"
  done
}

k8s_manifests_fields() {
  CONFIG_OUT="$WORK/cm-config.toml" "$PY" "$WORK/k8s_check.py" static \
    "$PKG/kubernetes/kustomization.yaml" "$PKG/kubernetes/configmap.yaml" "$PKG/kubernetes/daemonset.yaml" \
    "$PKG/kubernetes/credential-provider-config.yaml"
  "$BIN/ecr-broker" --check-config --config "$WORK/cm-config.toml"
}

k8s_kustomize() {
  kubectl kustomize "$PKG/kubernetes" >"$WORK/kustomized.yaml"
  CONFIG_OUT="$WORK/k-config.toml" "$PY" "$WORK/k8s_check.py" rendered "$WORK/kustomized.yaml"
  kubectl kustomize "$PKG/kubernetes-install-provider" >"$WORK/kustomized-install.yaml"
  EXPECT_INSTALL=1 CONFIG_OUT="$WORK/ki-config.toml" "$PY" "$WORK/k8s_check.py" rendered "$WORK/kustomized-install.yaml"
}

helm_static() {
  "$PY" - "$PKG/helm/ecr-broker" <<'EOF'
import os, re, sys, yaml
chart = sys.argv[1]
problems = []
meta = yaml.safe_load(open(os.path.join(chart, "Chart.yaml")))
if meta.get("apiVersion") != "v2": problems.append("Chart.yaml: apiVersion is not v2")
if meta.get("name") != os.path.basename(chart): problems.append("Chart.yaml: name differs from the directory")
if not re.fullmatch(r"\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?", str(meta.get("version", ""))): problems.append("Chart.yaml: version is not SemVer")
values = yaml.safe_load(open(os.path.join(chart, "values.yaml")))
ci = yaml.safe_load(open(os.path.join(chart, "ci", "roles-values.yaml")))
roles = ci.get("rolesPerRegistry") or []
if not roles or not all(r.get("registry") and r.get("roleArn") for r in roles):
    problems.append("ci/roles-values.yaml: rolesPerRegistry needs registry and roleArn in each entry")
if values.get("rolesPerRegistry") != []:
    problems.append("values.yaml: rolesPerRegistry should default to []")
def has(path):
    v = values
    for part in path.split("."):
        if not isinstance(v, dict) or part not in v: return False
        v = v[part]
    return True
tdir = os.path.join(chart, "templates")
for name in sorted(os.listdir(tdir)):
    text = open(os.path.join(tdir, name)).read()
    for ref in sorted(set(re.findall(r"\.Values\.([A-Za-z0-9_.]+)", text))):
        if not has(ref): problems.append(f"{name}: .Values.{ref} is not in values.yaml")
    actions = re.findall(r"\{\{-?\s*(if|range|with|define|end)\b", text)
    opened = sum(1 for a in actions if a != "end"); closed = actions.count("end")
    if opened != closed: problems.append(f"{name}: {opened} blocks opened, {closed} closed")
    if text.count("{{") != text.count("}}"): problems.append(f"{name}: unbalanced {{{{ }}}}")
    if name.endswith(".yaml") and not re.search(r"^kind: ", text, re.M): problems.append(f"{name}: no kind")
for k in ("DaemonSet", "ConfigMap", "ServiceAccount"):
    if not any(re.search(rf"^kind: {k}$", open(os.path.join(tdir, n)).read(), re.M) for n in os.listdir(tdir)):
        problems.append(f"templates: no {k}")
for k in ("nameOverride", "fullnameOverride", "podSecurityContext", "securityContext", "extraEnv", "extraVolumes",
          "extraVolumeMounts", "readinessProbe", "livenessProbe", "installProvider"):
    if k not in values: problems.append(f"values.yaml: no {k}")
if set(values.get("image") or {}) != {"repository", "tag", "pullPolicy"}: problems.append("values.yaml: image is not repository/tag/pullPolicy")
if values["image"]["repository"]: problems.append("values.yaml: image.repository has a default: no image is published")
if "required" not in open(os.path.join(tdir, "_helpers.tpl")).read(): problems.append("_helpers.tpl: image.repository is not required")
if not os.path.exists(os.path.join(chart, "README.md")): problems.append("no chart README.md")
# values.schema.json: the defaults and the ci values pass, wrong ones fail.
import json, jsonschema
schema = json.load(open(os.path.join(chart, "values.schema.json")))
jsonschema.Draft7Validator.check_schema(schema)
def merged(base, over):
    out = dict(base)
    for k, v in over.items():
        out[k] = merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
for name, v in (("values.yaml", values), ("ci/roles-values.yaml", merged(values, ci))):
    for e in jsonschema.Draft7Validator(schema).iter_errors(v):
        problems.append(f"{name} does not pass values.schema.json: {e.message}")
for bad in ({"image": {"repository": "x", "tag": "", "pullPolicy": "Sometimes"}}, {"installProvider": {"enabled": "yes"}},
            {"rolesPerRegistry": [{"registry": "*", "roleArn": "not-an-arn"}]}, {"unknownKey": 1}):
    if jsonschema.Draft7Validator(schema).is_valid(merged(values, bad)):
        problems.append(f"values.schema.json accepts {bad}")
print("\n".join(problems) or "chart static checks ok, values.yaml and ci values pass values.schema.json (helm is not installed: templates not rendered)")
sys.exit(1 if problems else 0)
EOF
}

helm_render() {
  helm lint "$PKG/helm/ecr-broker" -f "$PKG/helm/ecr-broker/ci/roles-values.yaml"
  helm template ecr-broker "$PKG/helm/ecr-broker" -n kube-system -f "$PKG/helm/ecr-broker/ci/roles-values.yaml" >"$WORK/helm.yaml"
  EXPECT_INSTALL=1 CONFIG_OUT="$WORK/helm-config.toml" "$PY" "$WORK/k8s_check.py" rendered "$WORK/helm.yaml"
  "$BIN/ecr-broker" --check-config --config "$WORK/helm-config.toml" | tee "$WORK/helm-cc"
  grep -q '(3 identities, 2 rules)' "$WORK/helm-cc"
  # No image is published: the chart refuses to render without one.
  if helm template ecr-broker "$PKG/helm/ecr-broker" -n kube-system >/dev/null 2>"$WORK/helm-noimage"; then
    echo "rendered without image.repository"; return 1
  fi
  grep -q 'image.repository is required' "$WORK/helm-noimage"
  helm template ecr-broker "$PKG/helm/ecr-broker" -n kube-system --set image.repository=registry.example/ecr-broker >"$WORK/helm-default.yaml"
  CONFIG_OUT="$WORK/helm-default.toml" "$PY" "$WORK/k8s_check.py" rendered "$WORK/helm-default.yaml"
  "$BIN/ecr-broker" --check-config --config "$WORK/helm-default.toml"
}

echo "== kubernetes"
check "every YAML under packaging/kubernetes and packaging/helm parses" k8s_yaml_parses
check "manifests: fields, selector/labels, hostPath, securityContext; ConfigMap config checks" k8s_manifests_fields
if command -v kubectl >/dev/null 2>&1; then
  check "kubectl kustomize packaging/kubernetes (offline render) + field checks" k8s_kustomize
else
  echo "note  kubectl not installed (Debian 12 ships only kubernetes-client 1.20): kustomize render not run"
fi
if command -v helm >/dev/null 2>&1; then
  check "helm lint + helm template (default and ci values) + field and config checks" helm_render
else
  echo "note  helm not installed (no Debian 12 package): chart checked statically, not rendered"
fi
check "helm chart: Chart.yaml, values referenced exist, blocks balance, conventions, values.schema.json" helm_static

# ---------------------------------------------------------------------------------------
# Dockerfile, macOS, docs
# ---------------------------------------------------------------------------------------
dockerfile_static() {
  local f="$PKG/docker/Dockerfile"
  grep -qE '^FROM rust:[^ ]*bookworm AS build$' "$f"
  grep -qE '^FROM gcr\.io/distroless/cc-debian12(:[a-z0-9]+)?$' "$f"
  grep -qxF 'ENTRYPOINT ["/usr/bin/ecr-broker"]' "$f"
  grep -q 'cargo build --release --locked --workspace' "$f"
  grep -q 'target/release/ecr-broker target/release/docker-credential-ecr' "$f"
  grep -q 'ln -s docker-credential-ecr /out/usr/bin/ecr-credential-provider' "$f"
  [ -f "$PKG/config.toml" ]
  # The image's default command is the Kubernetes manifests' argument list.
  grep -qxF 'CMD ["--socket", "/run/ecr-broker/broker.sock", "--config", "/etc/ecr-broker/config.toml", "--state", "/var/lib/ecr-broker/state.json"]' "$f"
  grep -qx 'target/' "$PKG/docker/Dockerfile.dockerignore"
}

macos_plist() {
  "$PY" - "$PKG/macos/com.github.ecr-cred.ecr-broker.plist" <<'EOF'
import os, plistlib, sys
path = sys.argv[1]
with open(path, "rb") as fh:
    pl = plistlib.load(fh)
assert pl["Label"] + ".plist" == os.path.basename(path), "Label does not match the file name"
cmd = " ".join(pl["ProgramArguments"])
assert "ecr-broker --user" in cmd and "Library/Caches/ecr-broker/broker.sock" in cmd, cmd
assert pl["RunAtLoad"] is True
print("plist ok:", cmd)
EOF
}

homebrew_formula() {
  ruby -c "$PKG/homebrew/ecr-cred.rb"
  grep -q 'std_cargo_args(path: "helper")' "$PKG/homebrew/ecr-cred.rb"
  grep -q 'std_cargo_args(path: "daemon")' "$PKG/homebrew/ecr-cred.rb"
  grep -q '^  service do$' "$PKG/homebrew/ecr-cred.rb"
}

docs_quote_real_errors() {
  local doc="$REPO/docs/install.md"
  # text in the docs => the source file that prints it
  local pairs=(
    "credentials not found in native keychain|helper/src/protocol.rs"
    "no usable AWS credentials|src/aws.rs"
    "could not reach|src/aws.rs"
    "the ecr-broker refused this request|helper/src/credentials.rs"
    "may not get tokens for|src/config.rs"
    "AccessDeniedException|src/aws.rs"
    "ExpiredToken|src/aws.rs"
  )
  local bad=0 pair text src
  for pair in "${pairs[@]}"; do
    text="${pair%%|*}"; src="${pair#*|}"
    grep -qF -- "$text" "$doc" || { echo "docs/install.md does not mention: $text"; bad=1; }
    grep -qF -- "$text" "$REPO/$src" || { echo "$src no longer contains: $text (update docs/install.md)"; bad=1; }
  done
  return "$bad"
}

echo "== container, macOS, docs"
check "Dockerfile: rust bookworm builder, distroless cc-debian12, entrypoint, paths" dockerfile_static
check "launchd plist parses; user broker on ~/Library/Caches socket" macos_plist
check "Homebrew formula: ruby -c, both crates, service block" homebrew_formula
check "docs/install.md troubleshooting quotes texts the sources print" docs_quote_real_errors

fi # DIST_ONLY

echo
if [ "$FAILED" -gt 0 ]; then
  printf 'failed: %s\n' "${FAILURES[@]}"
fi
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
