#!/usr/bin/env bash
# Job: the broker's memory with many identities (issue 12 §5), against patched moto.
#   1. BENCH_IDENTITIES (1000) profile identities: [identities.pN] profile = "pN", one rule per
#      12-digit account, AWS_CONFIG_FILE/AWS_SHARED_CREDENTIALS_FILE listing that many profiles
#      of static keys (no keys in the broker's environment);
#   2. as many role identities: [identities.rN] role_arn = "arn:aws:iam::<acct>:role/pull",
#      assumed with static keys from the environment (moto answers AssumeRole);
# each account's registry is requested once (16 connections), then the broker's VmRSS and
# VmHWM are read and /v1/status must show one token per identity.
# Goal (reported, never the exit status): under 64 MiB for each. A broken setup exits 1.
# Env: BROKER_BIN (target/release/ecr-broker), BENCH_IDENTITIES (1000),
#      BENCH_OUT (print the markdown table to this file too), BENCH_KEEP=1 keeps the scratch dir.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BROKER_BIN="${BROKER_BIN:-$REPO/target/release/ecr-broker}"
N_IDS="${BENCH_IDENTITIES:-1000}"
GOAL_MIB=64

die() { echo "bench/identities.sh: $*" >&2; exit 1; }
# shellcheck source=tests/peers/lib.sh
source "$REPO/tests/peers/lib.sh"   # PY, SYS_PATH, PIDS, start_moto, stop_started
[ -x "$BROKER_BIN" ] || die "$BROKER_BIN is missing (cargo build --release --workspace)"
command -v jq >/dev/null || die "missing jq"
cargo build --quiet --release --manifest-path "$REPO/bench/broker-load/Cargo.toml" --target-dir "$REPO/target/bench" \
  || die "cannot build bench/broker-load"
LOADGEN="$REPO/target/bench/release/broker-load"

W="$(mktemp -d /tmp/ecr-identities-bench.XXXXXX)"
cleanup() {
  stop_started
  if [ "${BENCH_KEEP:-}" = 1 ]; then echo "bench/identities.sh: scratch kept in $W" >&2; else rm -rf "$W"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

BROKER="$W/ecr-broker"
cp "$BROKER_BIN" "$BROKER"
mkdir -p "$W/logs" "$W/moto-home"
CALLS="$W/calls.log"; : >"$CALLS"
kib() { # FIELD PID -> KiB, or exit 1
  local v; v="$(awk -v k="$1:" '$1 == k {print $2}' "/proc/$2/status")"
  [ -n "$v" ] && [ "$v" -gt 0 ] || die "cannot read $1 of pid $2"
  echo "$v"
}
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
start_moto "$W/moto-home" "$W/logs/moto.log" "$CALLS"
ENDPOINT="http://127.0.0.1:$MOTO_PORT"

# run_case NAME IDENTITY_TEMPLATE ENV... : configure N identities, request each once, measure.
ROWS=()
run_case() {
  local name="$1" kind="$2"; shift 2
  local d="$W/$name"; mkdir -p "$d/home"
  local cfg="$d/config.toml" paths="$d/paths" i acct
  : >"$paths"
  # One slot per identity: room for all of them (the default max_slots is 256).
  printf 'max_slots = %d\n' "$((N_IDS + 16))" >"$cfg"
  for i in $(seq 1 "$N_IDS"); do
    acct="$(printf '2%011d' "$i")"
    if [ "$kind" = profile ]; then
      printf '[identities.p%d]\nprofile = "p%d"\n' "$i" "$i" >>"$cfg"
    else
      printf '[identities.r%d]\nrole_arn = "arn:aws:iam::%s:role/pull"\n' "$i" "$acct" >>"$cfg"
    fi
    printf '/v1/token?registry=%s.dkr.ecr.us-east-1.amazonaws.com\n' "$acct" >>"$paths"
  done
  for i in $(seq 1 "$N_IDS"); do
    printf '[[rules]]\nregistry = "%s"\nidentity = "%s%d"\n' "$(printf '2%011d' "$i")" "${kind:0:1}" "$i" >>"$cfg"
  done
  "$BROKER" --user --check-config --config "$cfg" >/dev/null || die "$name: generated config refused"
  setsid env -i PATH="$SYS_PATH" HOME="$d/home" AWS_ENDPOINT_URL="$ENDPOINT" AWS_REGION=us-east-1 \
    AWS_EC2_METADATA_DISABLED=true "$@" \
    "$BROKER" --user --config "$cfg" --socket "$d/broker.sock" --state "$d/state/state.json" \
    >"$d/broker.log" 2>&1 </dev/null &
  local pid=$!
  PIDS+=("$pid")
  for _ in $(seq 1 200); do
    "$LOADGEN" get --socket "$d/broker.sock" --path /healthz >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || die "$name: broker exited; log: $(cat "$d/broker.log")"
    sleep 0.05
  done
  local start_kib; start_kib=$(kib VmRSS "$pid")
  local once; once="$("$LOADGEN" once --socket "$d/broker.sock" --paths-file "$paths" --clients 16 --threads 1)"
  sleep 2
  local rss hwm status tokens
  rss=$(kib VmRSS "$pid"); hwm=$(kib VmHWM "$pid")
  status="$("$LOADGEN" get --socket "$d/broker.sock" --path /v1/status | tail -n +2)"
  tokens="$(jq '[.tokens[] | select(.expires_at != null)] | length' <<<"$status")"
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  [ "$tokens" = "$N_IDS" ] || die "$name: $tokens tokens held, expected $N_IDS (answers: $once; log: $d/broker.log)"
  local verdict=FAIL; [ "$(awk -v h="$hwm" -v g="$GOAL_MIB" 'BEGIN { print (h < g * 1024) }')" = 1 ] && verdict=pass
  echo "$name: started $(mib "$start_kib") MiB, after $N_IDS tokens $(mib "$rss") MiB (peak $(mib "$hwm") MiB): $verdict"
  ROWS+=("| $N_IDS $name identities, one token each | $(mib "$start_kib") MiB | $(mib "$rss") MiB | $(mib "$hwm") MiB | < $GOAL_MIB MiB | $verdict |")
}

# 1. profiles
AWSCONF="$W/aws-config"; AWSCRED="$W/aws-credentials"; : >"$AWSCONF"; : >"$AWSCRED"
for i in $(seq 1 "$N_IDS"); do
  printf '[profile p%d]\nregion = us-east-1\n' "$i" >>"$AWSCONF"
  printf '[p%d]\naws_access_key_id = AKIABENCH%011d\naws_secret_access_key = bench-secret-%d\n' "$i" "$i" "$i" >>"$AWSCRED"
done
chmod 600 "$AWSCRED"
run_case profile profile AWS_CONFIG_FILE="$AWSCONF" AWS_SHARED_CREDENTIALS_FILE="$AWSCRED"
# 2. roles, assumed with the environment's static keys
run_case role role AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY

{
  echo "Command: \`bench/identities.sh\` (BENCH_IDENTITIES=$N_IDS), $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git -C "$REPO" rev-parse --short HEAD), load average $(cut -d' ' -f1-3 /proc/loadavg)."
  echo
  echo "| broker | RSS after start | RSS after | peak (VmHWM) | goal | |"
  echo "|---|---:|---:|---:|---|---|"
  printf '%s\n' "${ROWS[@]}"
} | tee "${BENCH_OUT:-/dev/null}"
