# hxchat — `make run` to start, `make test` to test everything.
GO      ?= go
ADDR    ?= 127.0.0.1:8080
HTMX    := node_modules/htmx.org/dist
ASSETS  := static/dist/htmx.min.js static/dist/hx-sse.min.js static/dist/hx-upsert.min.js

.PHONY: run build test check generate assets clean fuzz smoke-load bench soak bench-cluster

run: build
	./bin/hxchat -addr $(ADDR)

build: assets generate
	$(GO) build -trimpath -o bin/hxchat ./cmd/hxchat
	$(GO) build -trimpath -o bin/hxchat-load ./cmd/hxchat-load

# npm ci only when package-lock.json changed since the last install.
node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

assets: node_modules/.package-lock.json
	@mkdir -p static/dist
	cp $(HTMX)/htmx.min.js $(HTMX)/htmx.min.js.map static/dist/
	cp $(HTMX)/ext/hx-sse.min.js $(HTMX)/ext/hx-sse.min.js.map static/dist/
	cp $(HTMX)/ext/hx-upsert.min.js $(HTMX)/ext/hx-upsert.min.js.map static/dist/

generate:
	$(GO) tool templ generate

# gofmt, vet and generated files up to date.
check: assets
	@out="$$(gofmt -l .)"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@before="$$(git status --porcelain -- views)"; $(GO) tool templ generate >/dev/null 2>&1; \
	  after="$$(git status --porcelain -- views)"; \
	  if [ "$$before" != "$$after" ] || [ -n "$$(git diff --name-only -- 'views/*_templ.go')" ]; then \
	    echo "generated templ files are stale: run make generate and commit"; git diff --stat -- views; exit 1; fi

# Everything: checks, unit, HTTP, loopback end-to-end, proxy and browser
# tests, then a short fuzzing run of each fuzz target.
test: check
	$(GO) test -race -count=1 -timeout 15m ./...
	$(MAKE) --no-print-directory fuzz

# Each fuzz target for a count of runs, about 3 s each here (go test -fuzz
# takes one target a run). Counts, not durations: a duration -fuzztime can
# fail a clean run with "context deadline exceeded" as it runs out (Go's fuzz
# coordinator, golang/go#75804, fixed in Go 1.27). FUZZTIME=30s (or 1000000x)
# sets one budget for every target.
FUZZTIME ?=
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzValidateRoom$$' -fuzztime $(or $(FUZZTIME),300000x) ./chat/
	$(GO) test -run '^$$' -fuzz '^FuzzNormalizeText$$' -fuzztime $(or $(FUZZTIME),300000x) ./chat/
	$(GO) test -run '^$$' -fuzz '^FuzzNormalizeName$$' -fuzztime $(or $(FUZZTIME),100000x) ./chat/
	$(GO) test -run '^$$' -fuzz '^FuzzCursor$$' -fuzztime $(or $(FUZZTIME),50000x) ./handlers/
	$(GO) test -run '^$$' -fuzz '^FuzzRoomRoute$$' -fuzztime $(or $(FUZZTIME),20000x) ./handlers/
	$(GO) test -run '^$$' -fuzz '^FuzzSSEFraming$$' -fuzztime $(or $(FUZZTIME),3000x) ./handlers/
	$(GO) test -run '^$$' -fuzz '^FuzzLinkify$$' -fuzztime $(or $(FUZZTIME),100000x) ./views/

# The load tool against a real server (100 subscribers, 2 rooms, 5 s); part
# of `make test` too. Needs the htmx files (assets) in the server binary.
smoke-load: assets
	$(GO) test -race -count=1 -run '^TestSmoke$$' -v ./cmd/hxchat-load/

# Go benchmarks (e2e, store Append, the fan-out yardstick with the ratio
# hxchat/limit) and the load-tool scenarios (fanout1000, rooms10, idle10k,
# fanout10k) against a server started on 127.0.0.1:18080 (BENCH_ADDR), then
# fanout10k against the yardstick (hxchat-load -serve-yardstick on
# 127.0.0.1:18081, BENCH_LIMIT_ADDR), the scenarios printed as one table with
# the p99 ratio of the two fanout10k runs; see docs/PERFORMANCE.md.
bench: assets
	GO=$(GO) ./scripts/bench.sh

# The same load (3000 subscribers, 300 rooms, 300 msg/s, 30 s) against 3
# hxchat nodes on a Redis Cluster of 3 masters and 3 replicas, then on one
# redis-server, all on loopback; one table, fails if either run lost or
# duplicated a message. Needs redis-server 7 or later and redis-cli.
bench-cluster: assets
	GO=$(GO) ./scripts/cluster-bench.sh

# 30 minutes, 1000 subscribers, 10 msg/s, 5 % of the subscribers reconnecting
# each minute; fails unless 0 lost, 0 duplicated and the server's RSS and
# goroutines stay within ±5 % after the first 5 minutes (not part of test or CI).
soak: assets
	GO=$(GO) ./scripts/bench.sh soak

clean:
	rm -rf bin static/dist/*.js static/dist/*.map
