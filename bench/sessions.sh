#!/usr/bin/env bash
# Forward-auth cost against the number of active sessions (SPEC §4: flat cost, 1,000,000
# sessions in under 300 MB, no database reads in a steady state). For each database (SQLite,
# then a throwaway PostgreSQL) and each N in $NS: makes N valid outpost sessions through the
# store (`gatehouse-bench sessions`, bulk inserts; not N browser logins), asks for every
# cookie exactly once (`gatehouse-bench visit`: the misses, one indexed read each), then
# measures wrk cycling through all N cookies and prints decisions/s, p99, the server's RSS
# and anonymous memory, the outpost's database reads during the measured run, and the ratio of each N's rate to N=1's from the
# same run: before each N, an N=1 run right then, so both see the same load on the shared
# machine. Each row also shows the server's and wrk's own CPU time per request, and the
# server's CPU ratio (N=1's CPU per decision over N's: what the rate ratio would be if the
# server had the cores to itself; less noisy than rates on a busy machine), and the 1-minute
# load average. Release build.
#   bench/sessions.sh                      # NS="1 10000 100000 1000000" DBS="sqlite postgres"
#   NS="1 10000" DBS=sqlite D=5s bench/sessions.sh
#   PERF=/tmp/profiles NS="1 10000" DBS=sqlite bench/sessions.sh   # and a perf profile per N
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

NS=${NS:-1 10000 100000 1000000}
DBS=${DBS:-sqlite postgres}
D=${D:-10s}
C=${C:-32}
# Sessions are spread over this many users (one shared decision per user and provider).
USERS=${USERS:-1000}
# The outpost's safety bound: the default; a live change feed keeps every cached answer
# standing past it, so the measured runs read nothing however long the warm-up took.
RECHECK=${RECHECK:-minutes=1}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
# NO_BUILD=1: use the release binaries already built.
[[ -n ${NO_BUILD:-} ]] || cargo build --release -q -p gatehouse -p gatehouse-bench
BIN=${CARGO_TARGET_DIR:-target}/release

tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    [[ -n ${PG_DIR:-} ]] && stop_postgres
    rm -rf "$tmp"
}
trap cleanup EXIT
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

cat >"$tmp/cycle.lua" <<'LUA'
-- Each wrk thread walks the cookie file in order, round and round, from a random place (so
-- that successive runs do not revisit the same stretch). The requests are formatted once, up
-- front: formatting one per request allocates, and Lua's garbage collector then walks every
-- live cookie string, so the load tool's own cost would grow with N.
local threads = 0
function setup(thread) thread:set("id", threads); threads = threads + 1 end
function init(args)
  requests = {}
  for line in io.lines(args[1]) do
    requests[#requests + 1] = wrk.format("GET", "/outpost.goauthentik.io/auth/nginx",
      { ["Host"] = "app.bench.test", ["X-Original-URI"] = "/", ["Cookie"] = line })
  end
  n = #requests
  math.randomseed(os.time() * 7 + id)
  i = math.random(n)
  collectgarbage("collect")
end
function request()
  i = i % n + 1
  return requests[i]
end
LUA

# mem PID → "RSS_MB ANON_MB"
mem() { awk '/^VmRSS/ {r=$2} /^RssAnon/ {a=$2} END {printf "%d %d\n", r/1024, a/1024}' "/proc/$1/status"; }
reads() { curl -sf "$METRICS/metrics" | awk '$1 == "gatehouse_outpost_backend_reads_total" {print $2}'; }
ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }

# cpu PID → its user+system CPU time in clock ticks.
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# measure N COOKIES SERVER → "rps p99 rss anon reads srv_us_per_decision wrk_us_per_request errors load":
# wrk cycling through COOKIES, with the server's and wrk's own CPU per request.
measure() {
    local n=$1 cookies=$2 server=$3 d=${D%s} before after c0 c1 out requests rss anon load
    # Long enough to go through all N cookies at least once (at about 20,000/s).
    ((d >= n / 20000 + 1)) || d=$((n / 20000 + 1))
    load=$(awk '{print $1}' /proc/loadavg)
    before=$(reads)
    c0=$(cpu "$server")
    # PERF=DIR: a CPU profile of the server during each measured run, in DIR/perf-DB-N.data.
    if [[ -n ${PERF:-} && -n ${PERF_AS:-} ]]; then
        perf record -q -F 499 -g -p "$server" -o "$PERF/perf-$PERF_AS.data" -- sleep "$d" >/dev/null 2>&1 &
    fi
    out=$(/usr/bin/time -f 'wrkcpu %U %S' wrk -t2 -c"$C" -d"${d}s" --latency -s "$tmp/cycle.lua" \
        "http://127.0.0.1:$gh" -- "$cookies" 2>&1)
    c1=$(cpu "$server")
    wait
    after=$(reads)
    read -r rss anon < <(mem "$server")
    requests=$(awk '/requests in/ {print $1}' <<<"$out")
    python3 - "$out" "$requests" "$c0" "$c1" "$before" "$after" "$rss" "$anon" "$load" "$(getconf CLK_TCK)" <<'PY'
import sys
out, requests, c0, c1, before, after, rss, anon, load, tick = sys.argv[1:]
lines = out.splitlines()
rps = next(l.split()[1] for l in lines if l.startswith("Requests/sec"))
p99 = next((l.split()[1] for l in lines if l.split()[:1] == ["99%"]), "-")
errors = next((l.split()[-1] for l in lines if "Non-2xx" in l), "0")
user, system = next(l.split()[1:] for l in lines if l.startswith("wrkcpu"))
requests, tick = int(requests), int(tick)
srv = (int(c1) - int(c0)) / tick / requests * 1e6
wrk = (float(user) + float(system)) / requests * 1e6
print(rps, p99, rss, anon, int(float(after) - float(before)), f"{srv:.1f}", f"{wrk:.1f}", errors, load)
PY
}

run_db() {
    local db=$1 url dir=$tmp/$db
    mkdir -p "$dir"
    case $db in
        sqlite) url="sqlite://$dir/gatehouse.db" ;;
        postgres)
            if [[ -z ${PG_DIR:-} ]]; then
                # shellcheck source=../scripts/test
                source scripts/test
                install_system_packages >/dev/null
                start_postgres >/dev/null
            fi
            url=$GATEHOUSE_TEST_DATABASE_URL ;;
    esac
    local gh metrics
    gh=$(port); metrics=$(port)
    METRICS=http://127.0.0.1:$metrics
    GATEHOUSE_BOOTSTRAP_TOKEN=bench-token-0123456789abcdef0123456789 GATEHOUSE_DATA_DIR=$dir/data GATEHOUSE_LOG=warn \
        GATEHOUSE_DATABASE_URL=$url GATEHOUSE_OUTPOST_RECHECK=$RECHECK \
        "$BIN"/gatehouse serve --listen "127.0.0.1:$gh" --metrics-listen "127.0.0.1:$metrics" \
        >"$dir/gatehouse.log" 2>&1 &
    local server=$!
    pids+=("$server")
    for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$gh/-/health/ready/" && break; sleep 0.1; done
    sleep 1
    read -r idle_rss idle_anon < <(mem "$server")
    echo "== $db: idle gatehouse serve: RSS ${idle_rss} MB, anonymous ${idle_anon} MB (target RSS < 30 MB)"
    local cookie
    cookie=$("$BIN"/gatehouse-bench session "http://127.0.0.1:$gh" bench-token-0123456789abcdef0123456789 app.bench.test)
    echo "$cookie" >"$dir/cookies"
    echo "$cookie" >"$dir/cookies1"
    local have=1 n
    printf '%-9s %12s %9s %7s %7s %8s %8s %8s %9s %9s %6s %8s %6s %s\n' N "decisions/s" p99 "RSS MB" "anon MB" \
        "db reads" "srv us/d" "wrk us/r" "N=1 d/s" "N=1 us/d" ratio "cpu ratio" errors load
    for n in $NS; do
        if ((n > have)); then
            local started=$SECONDS
            "$BIN"/gatehouse-bench sessions "$url" "$cookie" $((n - have)) "$USERS" "$dir/more"
            cat "$dir/more" >>"$dir/cookies"
            have=$n
            echo "   (made $n sessions in $((SECONDS - started)) s)" >&2
        fi
        # Every cookie exactly once (the misses: one indexed read each), so that the measured
        # run is a steady state: every session cached, nothing read.
        local started=$SECONDS r0 r1 visited
        r0=$(reads)
        visited=$("$BIN"/gatehouse-bench visit "http://127.0.0.1:$gh" app.bench.test "$dir/cookies" "$C")
        r1=$(reads)
        echo "   (warm-up: $visited, $(python3 -c "print(int(float('$r1') - float('$r0')))") reads, $((SECONDS - started)) s)" >&2
        # The N=1 baseline right before each N, so both see the same load on the machine.
        local base_rps base_srv
        read -r base_rps _ _ _ _ base_srv _ < <(measure 1 "$dir/cookies1" "$server")
        local rps p99 rss anon nreads srv_us wrk_us errors load
        read -r rps p99 rss anon nreads srv_us wrk_us errors load < <(PERF_AS=$db-$n measure "$n" "$dir/cookies" "$server")
        printf '%-9s %12s %9s %7s %7s %8s %8s %8s %9s %9s %6s %8s %6s %s\n' "$n" "$rps" "$p99" "$rss" "$anon" \
            "$nreads" "$srv_us" "$wrk_us" "$base_rps" "$base_srv" "$(ratio "$rps" "$base_rps")" \
            "$(ratio "$base_srv" "$srv_us")" "$errors" "$load"
    done
    kill "$server"
    wait "$server" 2>/dev/null || true
}

echo "bench/sessions.sh: wrk -t2 -c$C -d$D on $(nproc) cores; sessions over $USERS users; safety bound $RECHECK"
for db in $DBS; do run_db "$db"; done
echo "targets: ratio at N=1000000 ≥ 0.8; anonymous memory at N=1000000 < 300 MB; db reads 0 in the measured runs"
