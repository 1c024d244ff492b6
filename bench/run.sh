#!/usr/bin/env bash
# Job: benchmark our helper (docker-credential-ecr) side by side with Debian's Go
# helper (docker-credential-ecr-login) against patched moto, in one run:
#   1. cache-hit `get` (warm cache, verified by moto's call log): ours, Go, /bin/true
#   2. cold `get` (AWS_ECR_DISABLE_CACHE=1: one GetAuthorizationToken per run): ours, Go
#   3. peak RSS of one cache-hit `get` (/usr/bin/time -f %M)
# writes bench/results.md (date, machine, versions, commands, mean +- stddev,
# ratios, RSS, goals pass/fail) and prints it. A missed goal is reported, never
# an exit status; a missing peer or a broken setup (cache not hit, cache not
# disabled, wrong output) exits 1. Run as root after tests/peers/install.sh.
# Env: HELPER_BIN, GO_HELPER_BIN, BENCH_WARM_RUNS (300), BENCH_COLD_RUNS (30),
#      BENCH_IDLE_WAIT (600: seconds to wait before each timed phase for concurrent
#      cargo/rustc/cc/ld processes to finish), BENCH_KEEP=1 keeps the scratch dir.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# What we ship: the static build from packaging/build-static.sh (built here if absent).
if [ -z "${HELPER_BIN:-}" ]; then
  HELPER_BIN="$("$REPO/packaging/build-static.sh" | tail -n 1)"
fi
GO_HELPER_BIN="${GO_HELPER_BIN:-/usr/bin/docker-credential-ecr-login}"
WARM_RUNS="${BENCH_WARM_RUNS:-300}"
COLD_RUNS="${BENCH_COLD_RUNS:-30}"
OUT="$REPO/bench/results.md"
AK=AKIAIOSFODNN7EXAMPLE
SK=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
HOST=123456789012.dkr.ecr.us-east-1.amazonaws.com
PASSWORD="${REGISTRY_PASSWORD:-123456789012-auth-token}"

die() { echo "bench/run.sh: $*" >&2; exit 1; }
# shellcheck source=tests/peers/lib.sh
source "$REPO/tests/peers/lib.sh"   # PY, SYS_PATH, PIDS, start_moto, stop_started
need() { command -v "$1" >/dev/null || die "missing peer '$1' (run tests/peers/install.sh)"; }
[ "$(id -u)" = 0 ] || die "must run as root"
for c in hyperfine jq setsid /usr/bin/python3; do need "$c"; done
[ -x /usr/bin/time ] || die "missing /usr/bin/time (GNU time, Debian package 'time'): apt-get install time; it should be added to PKGS in tests/peers/install.sh"
[ -x "$GO_HELPER_BIN" ] || die "missing peer Go helper $GO_HELPER_BIN (run tests/peers/install.sh: amazon-ecr-credential-helper)"
[ -x "$HELPER_BIN" ] || die "our helper $HELPER_BIN is missing (cargo build --release)"

W="$(mktemp -d /tmp/ecr-bench.XXXXXX)"
cleanup() {
  stop_started
  if [ "${BENCH_KEEP:-}" = 1 ]; then echo "bench/run.sh: scratch kept in $W" >&2; else rm -rf "$W"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The release binary may be rebuilt while we run: benchmark a private copy.
OURS="$W/docker-credential-ecr"
cp "$HELPER_BIN" "$OURS"
GO="$GO_HELPER_BIN"
mkdir -p "$W/logs" "$W/home-ours/cache" "$W/home-go" "$W/home-moto"
printf '%s' "$HOST" >"$W/host"         # stdin of every benchmarked command (no newline, like echo -n)
CALLS="$W/calls.log"; : >"$CALLS"
calls() { grep -c '^GetAuthorizationToken ' "$CALLS" || true; }
gci() { grep -c '^GetCallerIdentity ' "$CALLS" || true; }
allcalls() { wc -l <"$CALLS"; }

# --- peers: patched moto (ours talks to it directly), patched moto_proxy (Go helper)
start_moto "$W/home-moto" "$W/logs/moto.log" "$CALLS"
start_moto_proxy "$W/home-moto" "$W/logs/moto_proxy.log" "$CALLS"
echo "moto on :$MOTO_PORT, moto_proxy on :$PROXY_PORT, scratch $W"

# --- each program's whole environment, spelled out (hyperfine itself runs under env -i
# PATH=$SYS_PATH, and each command is `sh -c 'VARS exec PROG ARGS < host'`).
COMMON="LANG=C.UTF-8 AWS_ACCESS_KEY_ID=$AK AWS_SECRET_ACCESS_KEY=$SK AWS_REGION=us-east-1"
ENV_OURS="HOME=$W/home-ours XDG_CACHE_HOME=$W/home-ours/cache $COMMON AWS_ENDPOINT_URL=http://127.0.0.1:$MOTO_PORT ECR_BROKER_SOCKET=none"
# Go helper ignores AWS_ENDPOINT_URL: it reaches moto through moto_proxy. Only runs that
# must talk to AWS get the proxy CA; cache-hit runs do not, so an unexpected network call
# fails TLS and hyperfine aborts (and real users carry no extra CA bundle either).
ENV_GO_HIT="HOME=$W/home-go $COMMON HTTPS_PROXY=http://127.0.0.1:$PROXY_PORT"
ENV_GO_NET="$ENV_GO_HIT AWS_CA_BUNDLE=$PROXY_CA"
# hyperfine 1.15 has no --input (its children get /dev/null on stdin), so every command,
# /bin/true included, is the same `sh -c '... exec PROG < FILE'` shape: same fork+exec of
# dash, same redirect, then exec of the program (no second fork).
cmd() { printf "sh -c '%s exec %s < %s'" "$1" "$2" "$W/host"; }
HIT_OURS="$(cmd "$ENV_OURS" "$OURS get")"
HIT_GO="$(cmd "$ENV_GO_HIT" "$GO get")"
HIT_TRUE="$(cmd "" /bin/true)"
COLD_OURS="$(cmd "$ENV_OURS AWS_ECR_DISABLE_CACHE=1" "$OURS get")"
COLD_GO="$(cmd "$ENV_GO_NET AWS_ECR_DISABLE_CACHE=1" "$GO get")"
WARM_OURS="$(cmd "$ENV_OURS" "$OURS get")"
WARM_GO="$(cmd "$ENV_GO_NET" "$GO get")"

run_cmd() { # command-string: run it exactly as hyperfine -N would (no shell of ours around it)
  eval "env -i PATH=$SYS_PATH $1"
}
check_get() { # label command-string: run once, check the credential JSON
  local out
  out="$(run_cmd "$2" 2>"$W/logs/check.err")" || die "$1 failed: $(head -c 600 "$W/logs/check.err")"
  jq -e --arg u "$HOST" --arg p "$PASSWORD" \
    '(.ServerURL | sub("^https://"; "") | startswith($u)) and .Username == "AWS" and .Secret == $p' \
    <<<"$out" >/dev/null || die "$1 printed unexpected output: $out"
}
expect_calls() { # label before want(=N|>=N) [counter, default calls]
  local got=$(( $(${4:-calls}) - $2 ))
  case "$3" in
    ">="*) [ "$got" -ge "${3#>=}" ] || die "$1: expected >= ${3#>=} GetAuthorizationToken calls, got $got" ;;
    *) [ "$got" = "$3" ] || die "$1: expected $3 GetAuthorizationToken calls, got $got" ;;
  esac
  local what=GetAuthorizationToken; [ "${4:-}" = allcalls ] && what="AWS (any operation)"
  echo "ok: $1 ($got $what calls)"
}
busy() { ps -eo comm= | grep -cE '^(cargo|rustc|cc|ld|ld\.lld|c\+\+|cc1|cc1plus)$' || true; }
wait_idle() { # phase: wait (bounded) until no build runs; record what the phase saw
  local t=0 max="${BENCH_IDLE_WAIT:-600}"
  while [ "$(busy)" != 0 ] && [ "$t" -lt "$max" ]; do
    [ "$t" = 0 ] && echo "waiting up to ${max}s for concurrent build processes to finish before $1 ..."
    sleep 2; t=$((t + 2))
  done
  echo "$1: start: $(busy) build processes, loadavg $(cut -d' ' -f1-3 /proc/loadavg), waited ${t}s" >>"$W/load.txt"
}
phase_end() { echo "$1: end: $(busy) build processes, loadavg $(cut -d' ' -f1-3 /proc/loadavg)" >>"$W/load.txt"; }
hf() { # json-file hyperfine-args...
  local j="$1"; shift
  env -i PATH="$SYS_PATH" hyperfine -N --style basic --export-json "$j" "$@"
}

# --- 1. cache hit
c0="$(calls)"; check_get "ours warm-up get" "$WARM_OURS"; expect_calls "ours warm-up fetched a token" "$c0" 1
c0="$(calls)"; check_get "Go warm-up get" "$WARM_GO"; expect_calls "Go warm-up fetched a token" "$c0" ">=1"
[ -s "$W/home-go/.ecr/cache.json" ] || die "Go helper cache $W/home-go/.ecr/cache.json missing after warm-up"
c0="$(allcalls)"
check_get "ours cache-hit get" "$HIT_OURS"; check_get "Go cache-hit get" "$HIT_GO"
expect_calls "cache-hit gets make no AWS call" "$c0" 0 allcalls
echo "== 1. cache-hit get: --warmup 20 --runs $WARM_RUNS =="
wait_idle "cache-hit"; c0="$(allcalls)"
hf "$W/hit.json" --warmup 20 --runs "$WARM_RUNS" \
  -n ours "$HIT_OURS" -n go "$HIT_GO" -n true "$HIT_TRUE"
phase_end "cache-hit"
expect_calls "cache hit during the timed runs (moto call log did not grow)" "$c0" 0 allcalls

# --- 3. peak RSS of one cache-hit get (median of 5, KiB)
rss() { # command-string
  local i; for i in 1 2 3 4 5; do
    run_cmd "${1/exec /exec /usr/bin/time -f %M -o $W/rss.txt }" >/dev/null
    cat "$W/rss.txt"
  done | sort -n | sed -n 3p
}
c0="$(allcalls)"
RSS_OURS="$(rss "$HIT_OURS")"; RSS_GO="$(rss "$HIT_GO")"; RSS_TRUE="$(rss "$HIT_TRUE")"
expect_calls "RSS runs were cache hits" "$c0" 0 allcalls

# --- 2. cold get (cache disabled: both must call GetAuthorizationToken every run, even
# though a valid cached token sits in their cache dirs)
c0="$(calls)"; g0="$(gci)"; check_get "ours cold get" "$COLD_OURS"; expect_calls "ours honours AWS_ECR_DISABLE_CACHE" "$c0" 1
COLD_CALLS_OURS="$(( $(calls) - c0 )) GetAuthorizationToken + $(( $(gci) - g0 )) GetCallerIdentity"
c0="$(calls)"; g0="$(gci)"; check_get "Go cold get" "$COLD_GO"; expect_calls "Go honours AWS_ECR_DISABLE_CACHE" "$c0" ">=1"
COLD_CALLS_GO="$(( $(calls) - c0 )) GetAuthorizationToken + $(( $(gci) - g0 )) GetCallerIdentity"
echo "== 2. cold get: --warmup 3 --runs $COLD_RUNS =="
wait_idle "cold"; c0="$(calls)"
hf "$W/cold.json" --warmup 3 --runs "$COLD_RUNS" -n ours "$COLD_OURS" -n go "$COLD_GO"
phase_end "cold"
expect_calls "every cold run fetched a token" "$c0" ">=$(( 2 * (COLD_RUNS + 3) ))"

# --- report
OURS_VER="$(env -i "$OURS" version 2>&1 | head -1)"
GO_VER="$(env -i HOME="$W/home-go" "$GO" version 2>&1 | head -1) (Debian package amazon-ecr-credential-helper $(dpkg-query -W -f='${Version}' amazon-ecr-credential-helper 2>/dev/null || echo '?'))"
HF_VER="$(hyperfine --version)"
CPU="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
LOAD="$(paste -sd';' "$W/load.txt" | sed 's/;/; /g')"
DIRTY="$(grep -vE ': (start|end): 0 build' "$W/load.txt" | cut -d: -f1 | sort -u | paste -sd, || true)"
env -i PATH="$SYS_PATH" /usr/bin/python3 - "$W/hit.json" "$W/cold.json" "$OUT" \
  "$HIT_OURS" "$HIT_GO" "$HIT_TRUE" "$COLD_OURS" "$COLD_GO" <<PYEOF
import json, math, sys
hit = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
cold = {r["command"]: r for r in json.load(open(sys.argv[2]))["results"]}
ms = lambda r: f'{r["mean"]*1e3:.2f} ± {r["stddev"]*1e3:.2f}'
def ratio(a, b):
    q = a["mean"] / b["mean"]
    return q, q * math.hypot(a["stddev"] / a["mean"], b["stddev"] / b["mean"])
def row(name, r):
    return f'| {name} | {ms(r)} | {r["median"]*1e3:.2f} | {r["min"]*1e3:.2f} | {r["max"]*1e3:.2f} | {len(r["times"])} |'
rss = {"ours": int("$RSS_OURS"), "go": int("$RSS_GO"), "true": int("$RSS_TRUE")}
q_go, e_go = ratio(hit["ours"], hit["go"])
q_true, e_true = ratio(hit["ours"], hit["true"])
q_cold, e_cold = ratio(cold["ours"], cold["go"])
net = (hit["ours"]["mean"] - hit["true"]["mean"]) / (hit["go"]["mean"] - hit["true"]["mean"])
ok = lambda b: "**PASS**" if b else "**FAIL**"
L = []
L += ["# Benchmark: docker-credential-ecr vs docker-credential-ecr-login", ""]
L += ["Generated by \`bench/run.sh\` (see \`bench/README.md\`).", ""]
L += ["| | |", "| --- | --- |"]
L += ["| date | $(date -u '+%Y-%m-%d %H:%M:%S UTC') |"]
L += ["| machine | $(nproc) cores, $CPU, $(uname -sr) |"]
L += ["| load (build processes = cargo/rustc/cc/ld) | $LOAD |"]
if "$DIRTY":
    L += ["", "**WARNING: build processes were running at the start or end of a timed phase ($DIRTY); its numbers are noisy, rerun on an idle machine.**"]
L += ["| ours | $OURS_VER (\`$HELPER_BIN\`, copied to a temp path) |"]
L += ["| Go helper | $GO_VER (\`$GO_HELPER_BIN\`) |"]
L += ["| hyperfine | $HF_VER |"]
L += ["", "## 1. Cache-hit \`get\` (hyperfine -N --warmup 20 --runs $WARM_RUNS)", ""]
L += ["| command | mean ± σ (ms) | median (ms) | min (ms) | max (ms) | runs |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
L += [row(n, hit[n]) for n in ("ours", "go", "true")]
L += ["", f"* ours / Go = **{q_go:.3f}** ± {e_go:.3f} (Go is {1/q_go:.1f}x slower)"]
L += [f"* ours / /bin/true = **{q_true:.2f}** ± {e_true:.2f}"]
L += [f"* net of the shared wrapper cost: (ours − true) / (Go − true) = {net:.3f}"]
med = lambda a, b: a["median"] / b["median"]
L += [f"* on medians (robust to a build starting mid-run): ours/Go = {med(hit['ours'], hit['go']):.3f}, ours/true = {med(hit['ours'], hit['true']):.2f}"]
L += ["* moto call log: no call at all (GetAuthorizationToken or GetCallerIdentity) during the timed runs (checked)."]
L += ["", "## 2. Cold \`get\`, cache disabled (hyperfine -N --warmup 3 --runs $COLD_RUNS)", ""]
L += ["| command | mean ± σ (ms) | median (ms) | min (ms) | max (ms) | runs |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
L += [row(n, cold[n]) for n in ("ours", "go")]
L += ["", f"* ours / Go = {q_cold:.3f} ± {e_cold:.3f} — indicative only: the Go helper reaches moto through"]
L += ["  moto_proxy (an extra HTTPS-intercepting hop, TLS to the proxy), ours talks plain HTTP to moto directly,"]
L += ["  and both are dominated by moto (Python) answering GetAuthorizationToken."]
L += ["* AWS calls per cold \`get\` (moto call log, one checked run each): ours $COLD_CALLS_OURS; Go $COLD_CALLS_GO."]
L += ["* Both honour \`AWS_ECR_DISABLE_CACHE=1\` (checked: every run added a GetAuthorizationToken call to the moto log)."]
L += ["", "## 3. Peak RSS of one cache-hit \`get\` (/usr/bin/time -f %M, median of 5)", ""]
L += ["| command | max RSS (KiB) | max RSS (MiB) |", "| --- | ---: | ---: |"]
L += [f"| {n} | {rss[n]} | {rss[n]/1024:.1f} |" for n in ("ours", "go", "true")]
L += ["", "## Goals (reported only; a miss does not fail the script)", ""]
L += ["| goal | measured | result |", "| --- | --- | --- |"]
L += [f"| cache-hit ours ≤ 1/3 of Go | ours/Go = {q_go:.3f} | {ok(q_go <= 1/3)} |"]
L += [f"| cache-hit ours ≤ 2x /bin/true | ours/true = {q_true:.2f} | {ok(q_true <= 2)} |"]
L += ["", "## Commands", ""]
L += ["hyperfine 1.15 has no \`--input\`, so every command (including /bin/true) is wrapped the same way:",
      "\`sh -c 'VARS exec PROG get < FILE'\` (dash, one fork+exec, then exec into the program); hyperfine runs",
      "under \`env -i PATH=$SYS_PATH\` with \`-N\` (no extra shell). Both \`true\` and the helpers pay the wrapper.", ""]
L += ["\`\`\`"]
for lab, c in zip(("cache hit, ours", "cache hit, Go", "cache hit, /bin/true", "cold, ours", "cold, Go"), sys.argv[4:9]):
    L += [f"# {lab}", c]
L += ["\`\`\`", ""]
open(sys.argv[3], "w").write("\n".join(L))
PYEOF
echo
cat "$OUT"
