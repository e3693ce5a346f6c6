#!/usr/bin/env bash
# The same load against three hxchat nodes twice: on a Redis Cluster of 3
# masters and 3 replicas ("cluster3x3", -redis-cluster), then on one
# redis-server ("redis1", -redis), and prints one table. Fails unless both
# runs connected every subscriber, posted, and lost and duplicated nothing.
#
# Everything runs on 127.0.0.1: the redis-servers on free ports (P and the
# cluster bus P+10000, both below 32768, where Linux's ephemeral ports
# start), the hxchat nodes on 127.0.0.1:18090-18092 (CLUSTER_BENCH_PORT:
# the first of the three), their data and logs in a temporary directory
# removed at the end. Every process started is stopped on exit, also on
# failure or interruption.
#
# The load: 3000 subscribers over 300 rooms (10 a room), 6 posters at
# 300 msg/s in all for 30 s; subscriber i reads from node i mod 3 and poster
# j posts to node j mod 3 (hxchat-load -url with three URLs), so every
# message is posted on one node and delivered by all three.
#
# Needs redis-server 7 or later and redis-cli, the htmx assets in
# static/dist (make assets), bash, curl, jq, column and timeout.
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
first_port=${CLUSTER_BENCH_PORT:-18090}
node_ports=("$first_port" $((first_port + 1)) $((first_port + 2)))
load_args=(-subscribers 3000 -rooms 300 -posters 6 -rate 300 -duration 30s
	-warmup 2s -drain 30s -connect-timeout 60s)
server_flags=(-post-rate 0 -max-streams-per-client 0 -max-conns-per-client 0
	-replay-max 100000 -log-level warn)

for tool in redis-server redis-cli curl jq column timeout; do
	command -v "$tool" >/dev/null || {
		echo "$tool is not installed" >&2
		exit 1
	}
done
if ! grep -Eq 'v=([7-9]|[1-9][0-9])\.' <<<"$(redis-server --version)"; then
	echo "need redis-server 7 or later: $(redis-server --version)" >&2
	exit 1
fi

out=$(mktemp -d)
pids=() # every process started, stopped by stop_all

# stop_all: SIGTERM to every process started and still running, up to 10 s
# for them to exit, then SIGKILL to any left.
stop_all() {
	local pid alive
	for pid in "${pids[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for _ in $(seq 100); do
		alive=0
		for pid in "${pids[@]}"; do
			kill -0 "$pid" 2>/dev/null && alive=1
		done
		((alive)) || break
		sleep 0.1
	done
	for pid in "${pids[@]}"; do
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	pids=()
}

cleanup() {
	stop_all
	rm -rf "$out"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Open files: the load tool holds one connection per subscriber (3000) and
# each node a third of them, plus its Redis pools. Only the soft limit is
# raised (-S): lowering the hard one could not be undone.
need=8192
soft=$(ulimit -Sn)
hard=$(ulimit -Hn)
if [[ $soft != unlimited ]] && ((soft < need)); then
	if [[ $hard == unlimited ]] || ((hard >= need)); then
		ulimit -Sn "$need"
	else
		ulimit -Sn "$hard"
	fi
fi
nofile=$(ulimit -Sn)
if [[ $nofile != unlimited ]] && ((nofile < 3500)); then
	echo "ulimit -n is $nofile (hard $hard): need about 3500 open files" >&2
	exit 1
fi

for p in "${node_ports[@]}"; do
	if [[ -n $(ss -Htln "sport = :$p") ]]; then
		echo "127.0.0.1:$p is taken: hxchat nodes need ${node_ports[*]} (CLUSTER_BENCH_PORT)" >&2
		exit 1
	fi
done

$GO build -trimpath -o bin/hxchat ./cmd/hxchat
$GO build -trimpath -o bin/hxchat-load ./cmd/hxchat-load

# port_free P: nothing listens on P, and P is not one the script uses.
used_ports=" ${node_ports[*]} "
port_free() {
	[[ $used_ports != *" $1 "* ]] && [[ -z $(ss -Htln "sport = :$1") ]]
}

# start_redis NAME ARGS...: a redis-server on a free port P (with the
# cluster bus, P+10000 free too) in $out/NAME, answering PING; sets
# redis_port. Picks another port if it could not bind the one picked.
start_redis() {
	local name=$1 port pid
	shift
	for _ in $(seq 5); do
		for _ in $(seq 100); do
			port=$((10000 + RANDOM % (32768 - 20000)))
			port_free "$port" && port_free $((port + 10000)) && break
			port=""
		done
		[[ -n $port ]] || break
		mkdir -p "$out/$name"
		redis-server --port "$port" --bind 127.0.0.1 --dir "$out/$name" --daemonize no \
			--logfile "$out/$name/redis.log" --save "" "$@" &
		pid=$!
		pids+=("$pid")
		for _ in $(seq 50); do
			kill -0 "$pid" 2>/dev/null || break
			if [[ $(redis-cli -p "$port" ping 2>/dev/null) == PONG ]]; then
				redis_port=$port
				used_ports+="$port $((port + 10000)) "
				return 0
			fi
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		echo "redis-server $name did not start on $port, trying another port:" >&2
		tail -n 5 "$out/$name/redis.log" >&2 || true
		rm -rf "${out:?}/$name"
	done
	echo "cannot start redis-server $name" >&2
	exit 1
}

# start_cluster: six cluster-mode redis-servers joined into 3 masters with
# a replica each, with the options of chat/redis/redistest (StartCluster's
# doc comment says why); waits until every node says cluster_state:ok,
# every replica's link is up and CLUSTER SLOTS lists all six. Sets seeds.
start_cluster() {
	local ports=() i p ok slaves
	echo "== redis cluster: 3 masters, 3 replicas" >&2
	for i in $(seq 6); do
		start_redis "cluster$i" --appendonly yes --cluster-enabled yes \
			--cluster-config-file nodes.conf --cluster-node-timeout 1000 \
			--cluster-announce-ip 127.0.0.1 --cluster-replica-validity-factor 0 \
			--repl-diskless-sync yes --repl-diskless-sync-delay 0 --repl-ping-replica-period 1
		ports+=("$redis_port")
	done
	seeds=$(printf '127.0.0.1:%s,' "${ports[@]}")
	seeds=${seeds%,}
	# shellcheck disable=SC2046 # one argument per seed
	timeout 60 redis-cli --cluster create $(tr , ' ' <<<"$seeds") --cluster-replicas 1 --cluster-yes \
		>"$out/cluster-create.log" 2>&1 || {
		echo "redis-cli --cluster create failed:" >&2
		cat "$out/cluster-create.log" >&2
		exit 1
	}
	for _ in $(seq 600); do
		ok=1 slaves=0
		for p in "${ports[@]}"; do
			# (grep of a here-string: grep -q ending a pipe early would
			# fail it under pipefail)
			if ! grep -q '^cluster_state:ok' <<<"$(redis-cli -p "$p" cluster info 2>/dev/null)"; then
				ok=0
				break
			fi
			info=$(redis-cli -p "$p" info replication 2>/dev/null)
			if grep -q '^role:slave' <<<"$info"; then
				grep -q '^master_link_status:up' <<<"$info" || ok=0
				slaves=$((slaves + 1))
			fi
		done
		if ((ok && slaves == 3)) &&
			(($(redis-cli -p "${ports[0]}" cluster slots 2>/dev/null | grep -c '^127\.0\.0\.1$') >= 6)); then
			echo "   ready: $seeds" >&2
			return 0
		fi
		sleep 0.1
	done
	echo "the cluster did not become ready within 60 s:" >&2
	for p in "${ports[@]}"; do
		echo "-- 127.0.0.1:$p" >&2
		redis-cli -p "$p" cluster info 2>&1 | grep -E 'cluster_state|cluster_known_nodes' >&2 || true
	done
	exit 1
}

# start_nodes ARGS...: the three hxchat nodes with the store ARGS, waiting
# for each to answer /healthz.
start_nodes() {
	local p i
	local -A node_pid
	for p in "${node_ports[@]}"; do
		./bin/hxchat -addr "127.0.0.1:$p" "$@" "${server_flags[@]}" \
			>"$out/hxchat-$p.out" 2>"$out/hxchat-$p.log" &
		node_pid[$p]=$!
		pids+=($!)
	done
	for p in "${node_ports[@]}"; do
		for i in $(seq 300); do
			# A node that exited (its port taken, say) must not pass
			# for started because another process answers there.
			if ! kill -0 "${node_pid[$p]}" 2>/dev/null; then
				echo "hxchat on 127.0.0.1:$p exited:" >&2
				cat "$out/hxchat-$p.log" >&2
				exit 1
			fi
			if curl -fsS "http://127.0.0.1:$p/healthz" >/dev/null 2>&1; then continue 2; fi
			sleep 0.1
		done
		echo "hxchat on 127.0.0.1:$p did not answer /healthz within 30 s:" >&2
		cat "$out/hxchat-$p.log" >&2
		exit 1
	done
}

# load NAME: the load against the three nodes, its JSON in $out/NAME.json.
load() {
	local urls
	urls=$(printf 'http://127.0.0.1:%s,' "${node_ports[@]}")
	urls=${urls%,}
	echo "== load: $1 (-url $urls ${load_args[*]}); load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
	# In the background and waited for, so that a SIGTERM to the script
	# is handled (and the run stopped) at once, not once the run is over.
	timeout 300 ./bin/hxchat-load -url "$urls" "${load_args[@]}" -progress 0 -json >"$out/$1.json" &
	pids+=($!)
	wait $!
	echo "   done; load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
}

start_cluster
start_nodes -redis-cluster "$seeds"
load cluster3x3
stop_all

echo "== redis: one redis-server, appendonly yes" >&2
start_redis redis1 --appendonly yes
start_nodes -redis "redis://127.0.0.1:$redis_port/0"
load redis1
stop_all

row() {
	jq -r --arg n "$1" '[$n, .subscribers, .rooms, .rate, .connected, .posted, .post_errors,
		.deliveries, (.deliveries_per_s|floor), .latency.p50_ms, .latency.p99_ms, .latency.max_ms,
		.lost, .duplicated, .out_of_order, .reconnects,
		(.server_end.rss_bytes / 1048576 | floor | if . < 0 then "-" else . end)]
		| map(tostring) | join("\t")' "$out/$1.json"
}

echo
echo "hxchat on 3 nodes — $(nproc) CPU, $(redis-server --version | grep -o 'v=[0-9.]*'), $($GO env GOVERSION), $(date -u +%Y-%m-%dT%H:%MZ), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
{
	printf 'scenario\tsubs\trooms\tmsg/s\tconnected\tposted\tpost err\tdeliveries\tdeliv/s\tp50 ms\tp99 ms\tmax ms\tlost\tdup\tooo\treconn\tRSS MiB (3 nodes)\n'
	row cluster3x3
	row redis1
} | column -t -s $'\t'
echo

fail=0
for name in cluster3x3 redis1; do
	if ! jq -e '.lost == 0 and .duplicated == 0 and .connected == .subscribers and .posted > 0' \
		"$out/$name.json" >/dev/null; then
		echo "$name: FAIL (want every subscriber connected, posts, 0 lost and 0 duplicated; last error: $(jq -r '.last_error // ""' "$out/$name.json"))"
		fail=1
	fi
done
((fail)) && exit 1
echo "cluster-bench: PASS (both runs: 0 lost, 0 duplicated)"
