#!/usr/bin/env bash
# Job: run every benchmark in one go and write the one report, docs/benchmarks.md:
#   bench/run.sh     cache-hit and cold `get` against Debian's Go helper and /bin/true, RSS
#   bench/broker.sh  broker req/s and p50/p99 at 1, 64 and 1,000 clients, RSS idle and with
#                    1,000 identities, upstream calls
# Run as root after tests/peers/install.sh, on an otherwise idle machine.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
bench/run.sh
bench/broker.sh
mkdir -p docs
{
  echo "# Benchmarks"
  echo
  echo "Produced by \`bench/all.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'): the helper against Debian's"
  echo "Go helper side by side in one run, then the broker. Upstream calls per 1,000 cold clients"
  echo "of one identity and region: exactly 1 (tests/integration/broker_daemon.rs asserts it on every run)."
  echo
  sed 's/^#/##/' bench/results.md
  echo
  sed 's/^#/##/' bench/broker-results.md
} > docs/benchmarks.md
echo "wrote docs/benchmarks.md"
