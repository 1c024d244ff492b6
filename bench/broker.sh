#!/usr/bin/env bash
# Job: benchmark the ecr-broker daemon against patched moto and write bench/broker-results.md:
#   1. `ecr-broker --user`, environment cleared (PATH, HOME, AWS_ENDPOINT_URL=moto, static
#      example keys, AWS_REGION, AWS_EC2_METADATA_DISABLED=true), one token warmed;
#      VmRSS right after start (no token), after the warm-up, and after the load runs;
#   2. requests/s and p50/p90/p99 latency of GET /v1/token?registry=HOST at 1, 64 and 1,000
#      concurrent clients (each a keep-alive connection doing sequential requests for
#      BENCH_SECONDS: closed loop), with bench/broker-load (tokio, raw HTTP/1.1 on
#      UnixStream); then 1,000 clients open loop at BENCH_OPEN_RATE req/s in total (latency
#      from the scheduled send time); moto's call log must not grow (every request a hit);
#   3. a second broker with 1,000 identities ([identities.idN] profile = "pN") and 1,000 rules
#      (one 12-digit account each), AWS_CONFIG_FILE/AWS_SHARED_CREDENTIALS_FILE with 1,000
#      profiles of static keys (no keys in its environment: the default chain would prefer
#      them over any profile); each account's registry requested once; then VmRSS, and the
#      upstream call count and token count from /v1/status.
# Goals (reported pass/fail, never the exit status): >= 20,000 req/s and p99 < 5 ms at 1,000
# clients, RSS < 20 MiB idle. A broken setup (no moto, broker not starting, wrong answers)
# exits 1. The load generator shares the machine's cores with the broker.
# Env: BROKER_BIN (target/release/ecr-broker), BENCH_SECONDS (10), BENCH_CLIENTS ("1 64 1000"),
#      BENCH_LOAD_THREADS (1: load-generator threads), BENCH_IDENTITIES (1000),
#      BENCH_OPEN_RATE (20000: total req/s of the extra open-loop run at the largest client
#      count, 0 = skip),
#      BENCH_IDLE_WAIT (300: seconds to wait for running cargo/rustc to finish first),
#      BENCH_OUT (bench/broker-results.md), BENCH_KEEP=1 keeps the scratch dir.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BROKER_BIN="${BROKER_BIN:-$REPO/target/release/ecr-broker}"
SECONDS_PER_RUN="${BENCH_SECONDS:-10}"
CLIENTS="${BENCH_CLIENTS:-1 64 1000}"
LOAD_THREADS="${BENCH_LOAD_THREADS:-1}"
N_IDS="${BENCH_IDENTITIES:-1000}"
OPEN_RATE="${BENCH_OPEN_RATE:-20000}"
IDLE_WAIT="${BENCH_IDLE_WAIT:-300}"
OUT="${BENCH_OUT:-$REPO/bench/broker-results.md}"
AK=AKIAIOSFODNN7EXAMPLE
SK=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
HOST=123456789012.dkr.ecr.us-east-1.amazonaws.com
PASSWORD=123456789012-auth-token

die() { echo "bench/broker.sh: $*" >&2; exit 1; }
# shellcheck source=tests/peers/lib.sh
source "$REPO/tests/peers/lib.sh"   # PY, SYS_PATH, PIDS, start_moto, stop_started
[ -x "$BROKER_BIN" ] || die "$BROKER_BIN is missing (cargo build --release --workspace)"
command -v jq >/dev/null || die "missing jq"

echo "building bench/broker-load (target/bench)..."
cargo build --quiet --release --manifest-path "$REPO/bench/broker-load/Cargo.toml" --target-dir "$REPO/target/bench" \
  || die "cannot build bench/broker-load"
LOADGEN="$REPO/target/bench/release/broker-load"

W="$(mktemp -d /tmp/ecr-broker-bench.XXXXXX)"
cleanup() {
  stop_started
  if [ "${BENCH_KEEP:-}" = 1 ]; then echo "bench/broker.sh: scratch kept in $W" >&2; else rm -rf "$W"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A private copy: a rebuild during the run does not matter.
BROKER="$W/ecr-broker"
cp "$BROKER_BIN" "$BROKER"
mkdir -p "$W/logs" "$W/moto-home" "$W/b1/home" "$W/b2/home"
CALLS="$W/calls.log"; : >"$CALLS"
gat() { grep -c '^GetAuthorizationToken ' "$CALLS" || true; }

busy() { pgrep -x 'rustc|cargo|cc|ld|cc1|lld|ld.lld' 2>/dev/null | wc -l; }
wait_idle() {
  local waited=0
  while [ "$(busy)" -gt 0 ] && [ "$waited" -lt "$IDLE_WAIT" ]; do
    [ "$waited" = 0 ] && echo "waiting up to ${IDLE_WAIT}s for $(busy) build processes to finish..."
    sleep 5; waited=$((waited + 5))
  done
}
machine_state() { echo "load average $(cut -d' ' -f1-3 /proc/loadavg), $(busy) cargo/rustc/cc/ld processes running"; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

# --- moto
start_moto "$W/moto-home" "$W/logs/moto.log" "$CALLS"
ENDPOINT="http://127.0.0.1:$MOTO_PORT"

start_broker() { # dir env... -> BROKER_PID; socket dir/broker.sock
  local dir="$1"; shift
  [ -f "$dir/config.toml" ] || : >"$dir/config.toml"
  setsid env -i PATH="$SYS_PATH" HOME="$dir/home" AWS_ENDPOINT_URL="$ENDPOINT" AWS_REGION=us-east-1 \
    AWS_EC2_METADATA_DISABLED=true "$@" \
    "$BROKER" --user --config "$dir/config.toml" --socket "$dir/broker.sock" --state "$dir/state/state.json" \
    >"$dir/broker.log" 2>&1 </dev/null &
  BROKER_PID=$!
  PIDS+=("$BROKER_PID")
  for _ in $(seq 1 200); do
    "$LOADGEN" get --socket "$dir/broker.sock" --path /healthz >/dev/null 2>&1 && return 0
    kill -0 "$BROKER_PID" 2>/dev/null || die "broker exited; log: $(cat "$dir/broker.log")"
    sleep 0.05
  done
  die "broker did not answer /healthz; log: $dir/broker.log"
}
get() { "$LOADGEN" get --socket "$1" --path "$2"; }

wait_idle
STATE_START="$(machine_state)"

# --- 1. one identity, static keys
start_broker "$W/b1" AWS_ACCESS_KEY_ID="$AK" AWS_SECRET_ACCESS_KEY="$SK"
B1=$BROKER_PID; S1="$W/b1/broker.sock"
sleep 1
RSS_START=$(rss_kib "$B1")
ANS="$(get "$S1" "/v1/token?registry=$HOST")"
[ "$(head -1 <<<"$ANS")" = 200 ] || die "warm-up token request failed: $ANS"
[ "$(tail -n +2 <<<"$ANS" | jq -r .password)" = "$PASSWORD" ] || die "unexpected token answer"
sleep 1
RSS_WARM=$(rss_kib "$B1")
CALLS_BEFORE=$(gat)
echo "broker 1: RSS after start $(mib "$RSS_START") MiB, after one token $(mib "$RSS_WARM") MiB"

RUNS=()
for n in $CLIENTS; do
  wait_idle
  echo "load: $n clients x ${SECONDS_PER_RUN}s..."
  line="$("$LOADGEN" load --socket "$S1" --path "/v1/token?registry=$HOST" --clients "$n" \
          --seconds "$SECONDS_PER_RUN" --warmup 1 --threads "$LOAD_THREADS")"
  echo "  $line"
  RUNS+=("$line")
done
OPEN=""
if [ "$OPEN_RATE" != 0 ]; then
  n="${CLIENTS##* }"
  wait_idle
  echo "load: $n clients open loop at $OPEN_RATE req/s x ${SECONDS_PER_RUN}s..."
  OPEN="$("$LOADGEN" load --socket "$S1" --path "/v1/token?registry=$HOST" --clients "$n" --rate "$OPEN_RATE" \
          --seconds "$SECONDS_PER_RUN" --warmup 1 --threads "$LOAD_THREADS")"
  echo "  $OPEN"
fi
CALLS_AFTER=$(gat)
[ "$CALLS_AFTER" = "$CALLS_BEFORE" ] || echo "WARNING: $((CALLS_AFTER - CALLS_BEFORE)) upstream calls during the load runs"
sleep 2
RSS_AFTER=$(rss_kib "$B1"); HWM_1=$(hwm_kib "$B1")
STATUS1="$(get "$S1" /v1/status | tail -n +2)"
kill -TERM "$B1"; wait "$B1" 2>/dev/null || true

# --- 2. 1,000 identities
CFG="$W/b2/config.toml"; AWSCONF="$W/b2/aws-config"; AWSCRED="$W/b2/aws-credentials"; PATHS="$W/b2/paths"
: >"$CFG"; : >"$AWSCONF"; : >"$AWSCRED"; : >"$PATHS"
for i in $(seq 1 "$N_IDS"); do
  acct="$(printf '2%011d' "$i")"
  printf '[identities.id%d]\nprofile = "p%d"\n' "$i" "$i" >>"$CFG"
  printf '[profile p%d]\nregion = us-east-1\n' "$i" >>"$AWSCONF"
  printf '[p%d]\naws_access_key_id = AKIABENCH%011d\naws_secret_access_key = bench-secret-%d\n' "$i" "$i" "$i" >>"$AWSCRED"
  printf '/v1/token?registry=%s.dkr.ecr.us-east-1.amazonaws.com\n' "$acct" >>"$PATHS"
done
for i in $(seq 1 "$N_IDS"); do
  printf '[[rules]]\nregistry = "%s"\nidentity = "id%d"\n' "$(printf '2%011d' "$i")" "$i" >>"$CFG"
done
chmod 600 "$AWSCRED"
"$BROKER" --user --check-config --config "$CFG" >/dev/null || die "generated config refused"
wait_idle
: >"$CALLS"
start_broker "$W/b2" AWS_CONFIG_FILE="$AWSCONF" AWS_SHARED_CREDENTIALS_FILE="$AWSCRED"
B2=$BROKER_PID; S2="$W/b2/broker.sock"
sleep 1
RSS2_START=$(rss_kib "$B2")
echo "broker 2: $N_IDS identities, RSS after start $(mib "$RSS2_START") MiB; requesting each account once..."
ONCE="$("$LOADGEN" once --socket "$S2" --paths-file "$PATHS" --clients 16 --threads "$LOAD_THREADS")"
echo "  $ONCE"
sleep 2
RSS2=$(rss_kib "$B2"); HWM_2=$(hwm_kib "$B2")
STATUS2="$(get "$S2" /v1/status | tail -n +2)"
UP2="$(jq .upstream_calls <<<"$STATUS2")"; ERR2="$(jq .upstream_errors <<<"$STATUS2")"
TOK2="$(jq '[.tokens[] | select(.expires_at != null)] | length' <<<"$STATUS2")"
KEYS2="$(awk '$1 == "GetAuthorizationToken" {print $3}' "$CALLS" | sort -u | wc -l)"
GAT2=$(gat)
echo "broker 2: RSS $(mib "$RSS2") MiB, upstream_calls $UP2 (errors $ERR2), tokens held $TOK2, moto saw $GAT2 GetAuthorizationToken from $KEYS2 access keys"
kill -TERM "$B2"; wait "$B2" 2>/dev/null || true
STATE_END="$(machine_state)"

# --- results
field() { jq -r ".$2" <<<"$1"; }
last_run="${RUNS[${#RUNS[@]}-1]}"
RPS_1000="$(field "$last_run" req_per_s)"; P99_1000="$(field "$last_run" p99_ms)"; N_LAST="$(field "$last_run" clients)"
verdict() { if awk "BEGIN { exit !($1) }"; then echo pass; else echo FAIL; fi; }
G_RPS="$(verdict "$RPS_1000 >= 20000")"
G_P99="$(verdict "$P99_1000 < 5")"
if [ -n "$OPEN" ]; then
  P99_OPEN="$(field "$OPEN" p99_ms)"; RPS_OPEN="$(field "$OPEN" req_per_s)"
  G_P99_OPEN="$(verdict "$P99_OPEN < 5")"
fi
G_RSS="$(verdict "$RSS_START < 20480 && $RSS_WARM < 20480")"
G_RSS_AFTER="$(verdict "$RSS_AFTER < 20480")"
{
  echo "# ecr-broker benchmark"
  echo
  echo "Generated by \`bench/broker.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC')."
  echo
  echo "## Command and machine"
  echo
  echo '```'
  echo "BENCH_SECONDS=$SECONDS_PER_RUN BENCH_CLIENTS=\"$CLIENTS\" BENCH_LOAD_THREADS=$LOAD_THREADS BENCH_IDENTITIES=$N_IDS bench/broker.sh"
  echo '```'
  echo
  echo "- CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores; memory $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo); kernel $(uname -r)"
  echo "- $(rustc --version 2>/dev/null || echo rustc ?); broker: \`$BROKER_BIN\` (copied), $("$BROKER" --version 2>/dev/null || echo '?')"
  echo "- At start: $STATE_START. At end: $STATE_END."
  echo "- Upstream: patched moto (\`tests/peers/moto_patched.py\`) on 127.0.0.1."
  echo "- Load generator: \`bench/broker-load\` (tokio $( [ "$LOAD_THREADS" -le 1 ] && echo current-thread || echo "$LOAD_THREADS-thread") runtime; raw HTTP/1.1 with keep-alive on \`tokio::net::UnixStream\`: a fixed request, the answer read by its content-length). **It shares the $(nproc) cores with the broker**, so these numbers are a lower bound for the broker alone."
  echo "- Each client is one connection doing sequential \`GET /v1/token?registry=$HOST\` for ${SECONDS_PER_RUN}s after 1s of unmeasured warm-up; latency is per request, from write to the end of the body."
  echo
  echo "## Throughput and latency (one warm token, every request a cache hit)"
  echo
  echo "| clients | load | requests | req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | errors | non-200 |"
  echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for r in "${RUNS[@]}" ${OPEN:+"$OPEN"}; do
    kind="closed loop"; [ "$(field "$r" rate)" != 0 ] && kind="open loop, $(field "$r" rate) req/s offered"
    echo "| $(field "$r" clients) | $kind | $(field "$r" requests) | $(field "$r" req_per_s) | $(field "$r" p50_ms) | $(field "$r" p90_ms) | $(field "$r" p99_ms) | $(field "$r" p999_ms) | $(field "$r" max_ms) | $(field "$r" errors) | $(field "$r" non_200) |"
  done
  echo
  echo "Closed loop: each client sends its next request as soon as the answer is in, so the mean latency is"
  echo "clients / throughput (Little's law): at 1,000 clients a p99 under 5 ms would need more than 200,000 req/s."
  echo "The open-loop row offers a fixed total rate over the same 1,000 connections and measures latency from each"
  echo "request's send (or its scheduled time, if the previous answer made it late); it is the one that answers \"p99 with 1,000 clients connected at a given load\"."
  echo
  echo "Upstream GetAuthorizationToken calls during the load runs: $((CALLS_AFTER - CALLS_BEFORE)) (broker status: $(jq -c '{requests, cache_hits, upstream_calls}' <<<"$STATUS1"))."
  echo
  echo "## Memory"
  echo
  echo "| broker | VmRSS |"
  echo "|---|---:|"
  echo "| 1 identity, just started (no token) | $(mib "$RSS_START") MiB |"
  echo "| 1 identity, one token warmed | $(mib "$RSS_WARM") MiB |"
  echo "| 1 identity, after the load runs | $(mib "$RSS_AFTER") MiB (peak VmHWM $(mib "$HWM_1") MiB) |"
  echo "| $N_IDS identities configured, just started | $(mib "$RSS2_START") MiB |"
  echo "| $N_IDS identities, each account's registry requested once | $(mib "$RSS2") MiB (peak VmHWM $(mib "$HWM_2") MiB) |"
  echo
  echo "$N_IDS-identity run: answers by status $(jq -c .by_status <<<"$ONCE") in $(jq .seconds <<<"$ONCE") s (16 connections);"
  echo "/v1/status: upstream_calls $UP2, upstream_errors $ERR2, tokens held $TOK2; moto saw $GAT2 GetAuthorizationToken calls from $KEYS2 distinct access key ids."
  echo
  echo "## Goals"
  echo
  echo "| goal | measured | result |"
  echo "|---|---|---|"
  echo "| >= 20,000 req/s at $N_LAST clients | $RPS_1000 req/s | $G_RPS |"
  echo "| p99 < 5 ms at $N_LAST clients, closed loop (saturated) | $P99_1000 ms | $G_P99 |"
  [ -n "$OPEN" ] && echo "| p99 < 5 ms at $N_LAST clients, open loop at $OPEN_RATE req/s offered ($RPS_OPEN served) | $P99_OPEN ms | $G_P99_OPEN |"
  echo "| RSS < 20 MiB idle, after start | $(mib "$RSS_START") MiB started, $(mib "$RSS_WARM") MiB with one token | $G_RSS |"
  echo "| RSS < 20 MiB idle, after the load runs | $(mib "$RSS_AFTER") MiB | $G_RSS_AFTER |"
  echo "| (no goal) RSS with $N_IDS identities, one token each | $(mib "$RSS2") MiB, $(awk -v a="$RSS2" -v b="$RSS2_START" -v n="$N_IDS" 'BEGIN { printf "%.0f", (a - b) / n }') KiB per identity | - |"
} >"$OUT"
echo
cat "$OUT"
