#!/usr/bin/env bash
# Forward-auth cost against the number of active sessions (SPEC §4: flat cost, 1,000,000
# sessions in under 300 MB, no database reads in a steady state). For each database (SQLite,
# then a throwaway PostgreSQL) and each N in $NS: makes N valid outpost sessions through the
# store (`gatehouse-bench sessions`, bulk inserts; not N browser logins), lets wrk visit every
# cookie once (the misses: one indexed read each), then measures wrk cycling through all N
# cookies and prints decisions/s, p99, the server's RSS and anonymous memory, the outpost's
# database reads during the measured run, and the ratio of each N's rate to N=1's from the
# same run. Release build; about 8 minutes for both databases.
#   bench/sessions.sh                      # NS="1 10000 100000 1000000" DBS="sqlite postgres"
#   NS="1 10000" DBS=sqlite D=5s bench/sessions.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

NS=${NS:-1 10000 100000 1000000}
DBS=${DBS:-sqlite postgres}
D=${D:-10s}
C=${C:-32}
# Sessions are spread over this many users (one shared decision per user and provider).
USERS=${USERS:-1000}
# The safety bound re-reads any answer older than it; the warm-up of a million sessions takes
# longer than the default minute, so the run uses a bound that outlasts it (see README).
RECHECK=${RECHECK:-minutes=30}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release -q -p gatehouse -p gatehouse-bench
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
-- that successive runs do not revisit the same stretch).
local threads = 0
function setup(thread) thread:set("id", threads); threads = threads + 1 end
function init(args)
  cookies = {}
  for line in io.lines(args[1]) do cookies[#cookies + 1] = line end
  n = #cookies
  math.randomseed(os.time() * 7 + id)
  i = math.random(n)
end
function request()
  i = i % n + 1
  return wrk.format("GET", "/outpost.goauthentik.io/auth/nginx",
    { ["Host"] = "app.bench.test", ["X-Original-URI"] = "/", ["Cookie"] = cookies[i] })
end
LUA

# mem PID → "RSS_MB ANON_MB"
mem() { awk '/^VmRSS/ {r=$2} /^RssAnon/ {a=$2} END {printf "%d %d\n", r/1024, a/1024}' "/proc/$1/status"; }
reads() { curl -sf "$METRICS/metrics" | awk '$1 == "gatehouse_outpost_backend_reads_total" {print $2}'; }
ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }

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
    local have=1 base="" n
    printf '%-9s %12s %10s %9s %9s %10s %8s %8s\n' N "decisions/s" p99 "RSS MB" "anon MB" "db reads" ratio errors
    for n in $NS; do
        if ((n > have)); then
            local started=$SECONDS
            "$BIN"/gatehouse-bench sessions "$url" "$cookie" $((n - have)) "$USERS" "$dir/more"
            cat "$dir/more" >>"$dir/cookies"
            have=$n
            echo "   (made $n sessions in $((SECONDS - started)) s)" >&2
            started=$SECONDS
            # Every new cookie at least once (the cold path, one indexed read each), in rounds
            # of 5 s until a round reads (almost) nothing.
            local round r0 r1
            for round in $(seq 40); do
                r0=$(reads)
                wrk -t2 -c"$C" -d5s -s "$tmp/cycle.lua" "http://127.0.0.1:$gh" -- "$dir/cookies" >/dev/null
                r1=$(reads)
                python3 -c "import sys; sys.exit(0 if float('$r1') - float('$r0') <= max(10, $n / 1000) else 1)" && break
            done
            echo "   (warmed in $((SECONDS - started)) s since the sessions were made: $r1 reads in all)" >&2
        fi
        local before out rps p99 errors after rss anon
        before=$(reads)
        # Long enough to go through all N cookies at least once (at about 20,000/s).
        local d=${D%s}
        ((d >= n / 20000 + 1)) || d=$((n / 20000 + 1))
        out=$(wrk -t2 -c"$C" -d"${d}s" --latency -s "$tmp/cycle.lua" "http://127.0.0.1:$gh" -- "$dir/cookies")
        after=$(reads)
        read -r rss anon < <(mem "$server")
        rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
        p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
        errors=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
        [[ -n $base ]] || base=$rps
        printf '%-9s %12s %10s %9s %9s %10s %8s %8s\n' "$n" "$rps" "$p99" "$rss" "$anon" \
            "$(python3 -c "print(int(float('$after') - float('$before')))")" "$(ratio "$rps" "$base")" "${errors:-0}"
    done
    kill "$server"
    wait "$server" 2>/dev/null || true
}

echo "bench/sessions.sh: wrk -t2 -c$C -d$D on $(nproc) cores; sessions over $USERS users; safety bound $RECHECK"
for db in $DBS; do run_db "$db"; done
echo "targets: ratio at N=1000000 ≥ 0.8; anonymous memory at N=1000000 < 300 MB; db reads 0 in the measured runs"
