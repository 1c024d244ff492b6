#!/usr/bin/env bash
# Job: the fleet simulation (issue 12 §6). Builds and runs daemon/examples/fleet.rs: N brokers
# (default 10,000) in one account and region, in virtual time, with the real token store,
# refresher and refresh policy, against a fake ECR enforcing GetAuthorizationToken's token bucket
# (20/s, burst 200): a boot storm, 7 days of kubelet-like demand, a 2-hour outage and a
# 10-minute throttling episode. Runs it with today's policy and with the policy as it was before
# this simulation (`--policy before`), for FLEET_NODES and for the FLEET_SIZES, prints each
# run's JSON on stderr and writes docs/fleet.md and docs/fleet-storm.svg.
#   bench/fleet.sh --json    ... then one JSON object (today's policy, FLEET_NODES) on stdout
# Env: FLEET_NODES (10000), FLEET_SIZES ("2000 20000"), FLEET_DAYS (7 days after the storm's
#      hour), FLEET_REPORT=0 skips writing docs/. About 3 minutes on 2 cores.
# Goals (reported, never the exit status): all ready within 900 s, no token expired in use, at
# most 3 upstream calls per node per day, at most half of all upstream calls throttled.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
JSON=0
for a in "$@"; do
  case "$a" in
    --json) JSON=1 ;;
    *) echo "usage: bench/fleet.sh [--json]" >&2; exit 2 ;;
  esac
done
cargo build --quiet --release --locked -p ecr-broker --example fleet >&2
SIM="${CARGO_TARGET_DIR:-$REPO/target}/release/examples/fleet"
W="$(mktemp -d /tmp/ecr-fleet.XXXXXX)"
trap 'rm -rf "$W"' EXIT
NODES="${FLEET_NODES:-10000}"
# The main size with the storm's per-second calls, then smaller and larger fleets.
for n in "$NODES" ${FLEET_SIZES-2000 20000}; do
  for policy in now before; do
    csv=(); [ "$n" = "$NODES" ] && csv=(--storm-csv "$W/$policy-$n.csv")
    "$SIM" --nodes "$n" --days "${FLEET_DAYS:-7}" --policy "$policy" --json "${csv[@]}" >"$W/$policy-$n.json"
    echo "$n nodes, policy $policy: $(cat "$W/$policy-$n.json")" >&2
  done
done
if [ "${FLEET_REPORT:-1}" = 1 ]; then
  python3 "$REPO/bench/fleet_report.py" "$REPO/docs" "$W" "$NODES" \
    "FLEET_NODES=$NODES FLEET_DAYS=${FLEET_DAYS:-7} bench/fleet.sh"
  echo "wrote docs/fleet.md and docs/fleet-storm.svg" >&2
fi
if [ "$JSON" = 1 ]; then
  cat "$W/now-$NODES.json"
fi
