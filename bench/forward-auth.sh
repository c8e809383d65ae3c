#!/usr/bin/env bash
# Forward-auth benchmark (SPEC §4). Measures, in one run and with one load tool (wrk):
#   1. a minimal hyper server answering 200 (the baseline) vs. Gatehouse's auth/nginx decision
#      for a cached, valid outpost session;
#   2. nginx auth_request to a static `return 200` location vs. nginx auth_request to Gatehouse.
# Prints requests/s, p99 latency and the ratios. Then, since wrk cannot hold a rate, measures the
# p99 of both (1.) at half their peak with `gatehouse-bench rate` (open loop, fixed rate, latency
# from the scheduled time like wrk2). Release build; a few minutes in all.
#   bench/forward-auth.sh            # D=10s C=64 by default
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

D=${D:-10s}
C=${C:-64}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
command -v nginx >/dev/null || { apt-get update -qq && apt-get install -y -qq nginx >/dev/null; }
cargo build --release -q -p gatehouse -p gatehouse-bench

tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
GH=$(port); HELLO=$(port); NGX_GH=$(port); NGX_STATIC=$(port)

GATEHOUSE_BOOTSTRAP_TOKEN=bench-token GATEHOUSE_DATA_DIR=$tmp/data GATEHOUSE_LOG=warn \
    target/release/gatehouse serve --listen "127.0.0.1:$GH" --metrics-listen off >"$tmp/gatehouse.log" 2>&1 &
pids+=($!)
target/release/gatehouse-bench hello "127.0.0.1:$HELLO" &
pids+=($!)
for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$GH/-/health/ready/" && break; sleep 0.1; done
cookie=$(target/release/gatehouse-bench session "http://127.0.0.1:$GH" bench-token app.bench.test)

cat >"$tmp/nginx.conf" <<NGINX
user root;
worker_processes 1;
error_log $tmp/nginx-error.log;
pid $tmp/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $tmp/body; proxy_temp_path $tmp/proxy; fastcgi_temp_path $tmp/fcgi;
  uwsgi_temp_path $tmp/uwsgi; scgi_temp_path $tmp/scgi;
  upstream gatehouse { server 127.0.0.1:$GH; keepalive 64; }
  upstream app { server 127.0.0.1:$HELLO; keepalive 64; }
  server {
    listen 127.0.0.1:$NGX_GH;
    location = /outpost.goauthentik.io/auth/nginx {
      internal;
      proxy_pass http://gatehouse;
      proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_pass_request_body off; proxy_set_header Content-Length "";
      proxy_set_header Host app.bench.test; proxy_set_header X-Original-URI \$request_uri;
    }
    location / {
      auth_request /outpost.goauthentik.io/auth/nginx;
      proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection "";
    }
  }
  server {
    listen 127.0.0.1:$NGX_STATIC;
    location = /auth { internal; return 200; }
    location / {
      auth_request /auth;
      proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection "";
    }
  }
}
NGINX
nginx -p "$tmp" -c "$tmp/nginx.conf" -g 'daemon off;' &
pids+=($!)
sleep 0.5

# measure NAME wrk-args... → prints "NAME rps p99"
measure() {
    local name=$1; shift
    local out rps p99
    out=$(wrk -t2 -c"$C" -d"$D" --latency "$@")
    rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    printf '%-34s %12s req/s   p99 %s\n' "$name" "$rps" "$p99" >&2
    echo "$rps"
}
ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
# at_rate NAME RPS rate-args... → prints "NAME rps p99 (rate's line)", echoes the p99 in ms
at_rate() {
    local name=$1 rps=$2; shift 2
    local out p99
    out=$(target/release/gatehouse-bench rate --rps "$rps" --duration "$D" --connections "$C" "$@")
    p99=$(awk '{for (i = 1; i <= NF; i++) if ($i ~ /^p99_us=/) printf "%.2f", substr($i, 8) / 1000}' <<<"$out")
    printf '%-34s %12s req/s   p99 %sms   (%s)\n' "$name" "$rps" "$p99" "$out" >&2
    echo "$p99"
}

echo "wrk -t2 -c$C -d$D on $(nproc) cores" >&2
hello=$(measure "hyper hello world (baseline)" "http://127.0.0.1:$HELLO/")
auth=$(measure "gatehouse auth/nginx (cached)" -H "Host: app.bench.test" -H "X-Original-URI: /" -H "Cookie: $cookie" \
    "http://127.0.0.1:$GH/outpost.goauthentik.io/auth/nginx")
static=$(measure "nginx auth_request → return 200" "http://127.0.0.1:$NGX_STATIC/")
edge=$(measure "nginx auth_request → gatehouse" -H "Cookie: $cookie" "http://127.0.0.1:$NGX_GH/")
C=8 measure "gatehouse auth/nginx, light load" -H "Host: app.bench.test" -H "X-Original-URI: /" -H "Cookie: $cookie" \
    "http://127.0.0.1:$GH/outpost.goauthentik.io/auth/nginx" >/dev/null
echo "ratio decision / hyper baseline:           $(ratio "$auth" "$hello")   (target ≥ 0.85)"
echo "ratio nginx→gatehouse / nginx→return 200:  $(ratio "$edge" "$static")   (target ≥ 0.90)"

echo "gatehouse-bench rate -c$C -d$D at half the peak above (open loop, +1 s warm-up)" >&2
hello_p99=$(at_rate "hyper hello world, half load" "$(ratio "$hello" 2)" "http://127.0.0.1:$HELLO/")
auth_p99=$(at_rate "gatehouse auth/nginx, half load" "$(ratio "$auth" 2)" \
    -H "Host: app.bench.test" -H "X-Original-URI: /" -H "Cookie: $cookie" \
    "http://127.0.0.1:$GH/outpost.goauthentik.io/auth/nginx")
echo "p99 at half load, hyper baseline:          $hello_p99 ms"
echo "p99 at half load: $auth_p99 ms (target < 1 ms)"
