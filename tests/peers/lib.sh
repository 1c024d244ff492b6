# Job: what every test and benchmark script needs to run the peers, sourced by
# tests/e2e/run.sh, bench/run.sh and bench/broker.sh:
#   free_port                        a free TCP port on 127.0.0.1
#   wait_tcp PORT WHAT LOG           wait until something listens there, else die
#   start_moto HOME LOG CALLS        patched moto_server in the background -> MOTO_PORT
#   start_moto_proxy HOME LOG CALLS  patched moto_proxy in the background -> PROXY_PORT, PROXY_CA
#   stop_started                     stop everything in PIDS, newest first (TERM, then KILL)
# Each program gets an explicit environment: the machine's AWS_*/SSL_* settings never leak in.
# The sourcing script defines `die` and may add its own pids to PIDS.

PEERS_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PY="$PEERS_REPO/.test-work/venv/bin/python"
SYS_PATH=/usr/sbin:/usr/bin:/sbin:/bin
PIDS=()

[ -x "$PY" ] || die "missing peer moto venv $PY (run tests/peers/install.sh)"

free_port() { env -i "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_tcp() { # port what log
  for _ in $(seq 1 150); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.2
  done
  die "$2 did not listen on 127.0.0.1:$1; log: $3"
}

start_moto() { # home log calls -> MOTO_PORT
  MOTO_PORT="$(free_port)"
  setsid env -i PATH="$SYS_PATH" HOME="$1" LANG=C.UTF-8 MOTO_CALL_LOG="$3" \
    "$PY" "$PEERS_REPO/tests/peers/moto_patched.py" -H 127.0.0.1 -p "$MOTO_PORT" >"$2" 2>&1 </dev/null &
  PIDS+=($!)
  wait_tcp "$MOTO_PORT" moto "$2"
}

start_moto_proxy() { # home log calls -> PROXY_PORT, PROXY_CA
  PROXY_PORT="$(free_port)"
  setsid env -i PATH="$SYS_PATH" HOME="$1" LANG=C.UTF-8 MOTO_CALL_LOG="$3" \
    "$PY" "$PEERS_REPO/tests/peers/moto_proxy_patched.py" -H 127.0.0.1 -p "$PROXY_PORT" >"$2" 2>&1 </dev/null &
  PIDS+=($!)
  PROXY_CA="$(env -i "$PY" "$PEERS_REPO/tests/peers/moto_proxy_patched.py" --ca-path)"
  [ -r "$PROXY_CA" ] || die "moto_proxy CA not found at '$PROXY_CA'"
  wait_tcp "$PROXY_PORT" moto_proxy "$2"
}

stop_started() {
  local i pid
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    pid="${PIDS[$i]}"
    kill "$pid" 2>/dev/null || continue
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
}
