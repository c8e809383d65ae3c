#!/usr/bin/env bash
# OIDC token-endpoint benchmark (issue: ≥ 5,000 refreshes/s on 2 cores): refresh_token grants
# on rotating chains (each refresh uses the token the last one returned, as an RP does),
# authorization-code logins (authorize + code exchange) and userinfo, for an ES256 and an RS256
# provider, against the release build on SQLite.
#   bench/oidc.sh            # SECONDS=10 CHAINS=32 by default
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SECONDS_RUN=${SECONDS_RUN:-10}
CHAINS=${CHAINS:-32}
cargo build --release -q -p gatehouse -p gatehouse-bench
tmp=$(mktemp -d)
cleanup() {
    status=$?
    [ "$status" = 0 ] || { echo "server log (last lines):"; tail -n 20 "$tmp/log"; }
    kill "$pid" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
GATEHOUSE_BOOTSTRAP_TOKEN=bench-token-0123456789abcdef0123456789 GATEHOUSE_DATA_DIR=$tmp GATEHOUSE_LOG=warn \
    target/release/gatehouse serve --listen "127.0.0.1:$port" --metrics-listen off >"$tmp/log" 2>&1 &
pid=$!
for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/-/health/ready/" && break; sleep 0.1; done
for algorithm in ES256 RS256; do
    target/release/gatehouse-bench oidc "http://127.0.0.1:$port" bench-token-0123456789abcdef0123456789 "$SECONDS_RUN" "$CHAINS" "$algorithm"
done
