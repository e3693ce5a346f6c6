#!/usr/bin/env bash
# Runs hxchat's benchmarks and standard load scenarios and prints one table.
#   scripts/bench.sh         Go benchmarks, yardstick and two load scenarios
#   scripts/bench.sh soak    30 min, 1000 subscribers, 10 msg/s (not in CI)
# Needs the htmx assets in static/dist (make assets), bash, awk and jq.
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
ADDR=${BENCH_ADDR:-127.0.0.1:18080}
mode=${1:-bench}
out=$(mktemp -d)
server_pid=""

cleanup() {
	if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
		kill -TERM "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
	fi
	rm -rf "$out"
}
trap cleanup EXIT INT TERM

nofile=$(ulimit -n)
if [[ $nofile != unlimited ]] && ((nofile < 2200)); then
	ulimit -n 4096 2>/dev/null || { echo "ulimit -n is $(ulimit -n): need 2200 open files" >&2; exit 1; }
fi

$GO build -trimpath -o bin/hxchat ./cmd/hxchat
$GO build -trimpath -o bin/hxchat-load ./cmd/hxchat-load

# start_server ARGS...: a fresh in-memory server on $ADDR, limits off.
start_server() {
	./bin/hxchat -addr "$ADDR" -db :memory: -post-rate 0 -max-streams-per-client 0 "$@" \
		>"$out/server.out" 2>"$out/server.log" &
	server_pid=$!
	for _ in $(seq 50); do
		if curl -fsS "http://$ADDR/healthz" >/dev/null 2>&1; then return 0; fi
		sleep 0.1
	done
	echo "hxchat did not start:" >&2
	cat "$out/server.log" >&2
	exit 1
}

stop_server() {
	kill -TERM "$server_pid"
	wait "$server_pid" || true
	server_pid=""
}

# load NAME ARGS...: one load-tool run, its JSON in $out/NAME.json.
load() {
	local name=$1
	shift
	echo "== load: $name ($*)" >&2
	./bin/hxchat-load -url "http://$ADDR" -progress 0 -json "$@" >"$out/$name.json"
}

# row NAME: a table row from a load report.
row() {
	jq -r --arg n "$1" '[$n, .subscribers, .rooms, .rate, .duration_s, .connected, .posted,
		.deliveries, (.deliveries_per_s|floor), .latency.p50_ms, .latency.p99_ms, .latency.max_ms,
		.lost, .duplicated, .out_of_order, .reconnects,
		((.server_connected.rss_bytes - .server_before.rss_bytes) / 1024 / (if .subscribers > 0 then .subscribers else 1 end) | floor)]
		| map(tostring) | join("\t")' "$out/$1.json"
}

load_header() {
	printf 'scenario\tsubs\trooms\tmsg/s\ts\tconnected\tposted\tdeliveries\tdeliv/s\tp50 ms\tp99 ms\tmax ms\tlost\tdup\tooo\treconn\tKiB/sub\n'
}

if [[ $mode == soak ]]; then
	# 30 min, 1000 subscribers, 10 msg/s. Streams end after about 20 min
	# (jittered down by up to a fifth) and resume with Last-Event-ID, which
	# stands in for clients reconnecting; see docs/PERFORMANCE.md.
	start_server -stream-lifetime 20m
	load soak -subscribers 1000 -rooms 1 -posters 4 -rate 10 -duration 30m
	stop_server
	{ load_header; row soak; } | column -t -s $'\t'
	exit 0
fi

echo "== go benchmarks: e2e (idle streams, HTTP fan-out, HTTP POST)" >&2
# One iteration is the measurement for the first two; HTTPPost makes b.N
# posts, so it gets enough of them for a meaningful p99.
$GO test -run '^$' -bench 'IdleStreams|HTTPFanout' -benchtime 1x ./e2e/ | tee "$out/e2e.txt" >&2
$GO test -run '^$' -bench HTTPPost -benchtime 20000x ./e2e/ | tee -a "$out/e2e.txt" >&2
echo "== go benchmarks: store Append" >&2
$GO test -run '^$' -bench Append -benchtime 2s ./chat/ ./chat/sqlite/ ./chat/redis/ | tee "$out/append.txt" >&2
echo "== go benchmarks: yardstick fan-out (1000 subscribers, 100 messages a round)" >&2
$GO test -run '^$' -bench '^BenchmarkFanout1000$' -benchtime 10x ./handlers/ | tee "$out/yardstick.txt" >&2

start_server
load fanout1000 -subscribers 1000 -rooms 1 -posters 4 -rate 50 -duration 10s
load rooms10 -subscribers 100 -rooms 10 -posters 4 -rate 100 -duration 10s
stop_server

# metrics FILE: "benchmark<TAB>value unit, value unit…" for each result line.
metrics() {
	awk '/^pkg: / { pkg = $2; sub(/^github.com\/hxchat\/hxchat\//, "", pkg) }
	/^Benchmark/ {
		name = $1; sub(/-[0-9]+$/, "", name); name = pkg " " name; m = ""
		for (i = 3; i < NF; i += 2) m = m (m == "" ? "" : ", ") $i " " $(i+1)
		print name "\t" m
	}' "$1"
}

echo
echo "hxchat benchmarks — $(nproc) CPU, $($GO env GOVERSION), $(date -u +%Y-%m-%dT%H:%MZ)"
echo
{
	printf 'go benchmark\tresult\n'
	metrics "$out/e2e.txt"
	metrics "$out/append.txt"
	metrics "$out/yardstick.txt"
} | column -t -s $'\t'
echo
awk '/^BenchmarkFanout1000\/limit/ { for (i = 3; i < NF; i++) if ($(i+1) == "deliveries/s") l = $i }
	/^BenchmarkFanout1000\/hxchat/ { for (i = 3; i < NF; i++) if ($(i+1) == "deliveries/s") h = $i }
	END { if (l > 0) printf "yardstick: hxchat %.0f / limit %.0f deliveries/s = %.2f (target >= 0.70)\n", h, l, h / l }' "$out/yardstick.txt"
echo
{ load_header; row fanout1000; row rooms10; } | column -t -s $'\t'
