// Command hxchat serves the hxchat real-time chat.
package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/hxchat/hxchat/chat"
	"github.com/hxchat/hxchat/handlers"
	"github.com/hxchat/hxchat/static"
	"github.com/hxchat/hxchat/views"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "hxchat:", err)
		os.Exit(1)
	}
}

// options are the command line; each flag -name-x also reads HXCHAT_NAME_X.
type options struct {
	addr             string
	db               string
	redisURL         string
	redisCluster     []string
	redisTimeout     time.Duration
	dbBusyTimeout    time.Duration
	dbMaxBatch       int
	dbReaders        int
	heartbeat        time.Duration
	streamLifetime   time.Duration
	retry            time.Duration
	writeTimeout     time.Duration
	readTimeout      time.Duration
	hsts             time.Duration
	maxAge           time.Duration
	drainTimeout     time.Duration
	drainDelay       time.Duration
	tlsCert          string
	tlsKey           string
	tlsSelfSigned    bool
	h2c              bool
	pprofAddr        string
	hijackStreams    bool
	presenceInterval time.Duration
	queue            int
	replayMax        int
	retention        int
	maxRooms         int
	history          int
	maxBody          int64
	postRate         float64
	postBurst        int
	streamsPer       int
	streamsMax       int
	trusted          []netip.Prefix
	sendBuffer       int
	connsPer         int
	connsMax         int
	idleTimeout      time.Duration
	logLevel         string
	logFormat        string
	secret           string
	adminToken       string
}

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("hxchat", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.addr, "addr", "127.0.0.1:8080", "address to listen on (host:port; port 0 picks a free one)")
	fs.StringVar(&o.db, "db", "hxchat.db", "SQLite file keeping the history (:memory: keeps it in memory only)")
	fs.StringVar(&o.redisURL, "redis", "", "Redis URL (redis://host:port/db); nodes sharing one Redis serve the same rooms; replaces -db")
	fs.Func("redis-cluster", "seed addresses of a Redis Cluster, Redis 7 or later (host:port,host:port…); nodes sharing it serve the same rooms, spread over its shards; a post succeeds once a replica has it; replaces -db", func(v string) error {
		o.redisCluster = nil
		for _, a := range strings.Split(v, ",") {
			a = strings.TrimSpace(a)
			if a == "" {
				continue
			}
			if _, _, err := net.SplitHostPort(a); err != nil {
				return fmt.Errorf("seed %q: want host:port", a)
			}
			o.redisCluster = append(o.redisCluster, a)
		}
		if len(o.redisCluster) == 0 {
			return errors.New("no seed address")
		}
		return nil
	})
	fs.DurationVar(&o.dbBusyTimeout, "db-busy-timeout", 5*time.Second, "how long SQLite waits for a lock held by another process (a backup)")
	fs.IntVar(&o.dbMaxBatch, "db-max-batch", 256, "most posts committed to SQLite in one transaction (group commit)")
	fs.IntVar(&o.dbReaders, "db-readers", 4, "SQLite connections serving history reads")
	fs.DurationVar(&o.redisTimeout, "redis-timeout", time.Second, "bound on connecting to Redis and on each command; a dead Redis fails posts (503) this fast")
	fs.DurationVar(&o.heartbeat, "heartbeat", 15*time.Second, "interval of SSE keep-alive comments; with -redis, also of presence: a crashed node's people vanish within two")
	fs.DurationVar(&o.streamLifetime, "stream-lifetime", 5*time.Minute, "streams are ended cleanly after about this long (jittered) and the client resumes; bounds what a buffering proxy holds back (0: never)")
	fs.DurationVar(&o.retry, "sse-retry", 2*time.Second, "reconnect delay advertised to SSE clients (retry:); a refused stream adds up to half again")
	fs.DurationVar(&o.writeTimeout, "write-timeout", 10*time.Second, "deadline of each response, and of each write to a stream; a client that does not read is cut off")
	fs.DurationVar(&o.readTimeout, "read-timeout", 30*time.Second, "bound on reading a request, headers and body; a slower body gets 408")
	fs.DurationVar(&o.hsts, "hsts", 365*24*time.Hour, "max-age of Strict-Transport-Security, sent on responses that came over TLS (-tls-*, or a trusted proxy's X-Forwarded-Proto: https); 0: not sent")
	fs.DurationVar(&o.drainTimeout, "drain-timeout", 5*time.Second, "on SIGTERM, the most the process waits for requests in flight before it exits")
	fs.DurationVar(&o.drainDelay, "drain-delay", 0, "on SIGTERM, how long /healthz answers 503 (streams already ended, posts still served) before the listener closes; give a load balancer time to notice")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "certificate file (PEM): serve HTTPS with HTTP/2 and HTTP/1.1 (needs -tls-key)")
	fs.StringVar(&o.tlsKey, "tls-key", "", "private key file (PEM) for -tls-cert")
	fs.BoolVar(&o.tlsSelfSigned, "tls-self-signed", false, "serve HTTPS with HTTP/2 using a certificate generated at start (for local use)")
	fs.BoolVar(&o.h2c, "h2c", false, "also accept HTTP/2 without TLS (behind a TLS-terminating proxy that speaks h2c)")
	fs.BoolVar(&o.hijackStreams, "hijack-streams", true, "take HTTP/1.x SSE connections over from net/http once admitted (about half the memory per idle stream); false keeps them in net/http")
	fs.DurationVar(&o.presenceInterval, "presence-interval", chat.DefaultPresenceInterval, "least time between two member lists sent to a room; changes in between are merged")
	fs.StringVar(&o.pprofAddr, "pprof", "", "serve net/http/pprof on this loopback address (e.g. 127.0.0.1:6060); off when empty")
	fs.IntVar(&o.queue, "queue", chat.DefaultQueueSize, "messages queued per subscriber; a slower subscriber falls behind and resumes from the store")
	fs.IntVar(&o.replayMax, "replay-max", chat.DefaultReplayMax, "most messages replayed to a reconnecting subscriber; one further behind gets a snapshot of the newest -history messages instead")
	fs.IntVar(&o.retention, "retention", 0, "messages kept per room (0: the store's default, 1000 in memory, 10000 in SQLite and Redis)")
	fs.IntVar(&o.maxRooms, "max-rooms", chat.DefaultMaxRooms, "rooms kept, by every store; beyond it the history of the least recently active room is removed (in the background)")
	fs.DurationVar(&o.maxAge, "max-age", 0, "messages older than this are removed (in the background); 0: kept (up to -retention per room)")
	fs.IntVar(&o.history, "history", 50, "recent messages shown on a room page")
	fs.Int64Var(&o.maxBody, "max-body", 32<<10, "largest accepted POST body in bytes") // 2000 4-byte characters form-encode to 24000 bytes
	fs.Float64Var(&o.postRate, "post-rate", 5, "posts a second one client address may make on average; more get 429 (0: no limit)")
	fs.IntVar(&o.postBurst, "post-burst", 10, "posts one client address may make in a row before -post-rate applies")
	fs.IntVar(&o.streamsPer, "max-streams-per-client", 32, "streams one client address may hold open; more are refused with a retry (0: no limit)")
	fs.IntVar(&o.streamsMax, "max-streams", 50000, "streams open at once in total; more are refused with a retry (0: no limit)")
	fs.Func("trusted-proxies", "proxies (comma-separated addresses and CIDR prefixes, e.g. 127.0.0.1,10.0.0.0/8) whose X-Forwarded-For names the client; none by default", func(v string) (err error) {
		o.trusted, err = handlers.ParseTrustedProxies(v)
		return err
	})
	fs.IntVar(&o.sendBuffer, "tcp-send-buffer", 256<<10, "kernel send buffer per connection in bytes (0: system default); bounds memory held for slow clients")
	fs.IntVar(&o.connsPer, "max-conns-per-client", 256, "TCP connections one client address may hold open (trusted proxies exempt); more are closed at once (0: no limit)")
	fs.IntVar(&o.connsMax, "max-conns", 0, "TCP connections open at once in total; more are closed at once (0: the open-file limit less a reserve for the store and logs)")
	fs.DurationVar(&o.idleTimeout, "idle-timeout", 2*time.Minute, "keep-alive connections idle longer are closed")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error (debug logs every request)")
	fs.StringVar(&o.logFormat, "log-format", "text", "text or json")
	fs.StringVar(&o.secret, "secret", "", "secret (at least 16 characters) that signs identity cookies; every node must have the same; prefer HXCHAT_SECRET, which other users cannot see (default: a random one kept in the store)")
	fs.StringVar(&o.adminToken, "admin-token", "", "operators' token (at least 16 characters): who signs in with it at /admin may delete any message; prefer HXCHAT_ADMIN_TOKEN, which other users cannot see (default: no operators)")

	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := envName(f.Name)
		if v := getenv(name); v != "" && envErr == nil {
			if err := f.Value.Set(v); err != nil {
				envErr = fmt.Errorf("%s=%q: %w", name, v, err)
			}
		}
	})
	if envErr != nil {
		return o, envErr
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	switch {
	case (o.tlsCert == "") != (o.tlsKey == ""):
		return o, errors.New("-tls-cert and -tls-key go together")
	case o.tlsCert != "" && o.tlsSelfSigned:
		return o, errors.New("-tls-self-signed and -tls-cert exclude each other")
	case o.drainTimeout <= 0:
		return o, errors.New("-drain-timeout must be positive")
	case o.drainDelay < 0:
		return o, errors.New("-drain-delay must not be negative")
	case o.streamLifetime < 0:
		return o, errors.New("-stream-lifetime must not be negative")
	case o.heartbeat <= 0:
		return o, errors.New("-heartbeat must be positive")
	case o.dbBusyTimeout <= 0, o.dbMaxBatch <= 0, o.dbReaders <= 0:
		return o, errors.New("-db-busy-timeout, -db-max-batch and -db-readers must be positive")
	case o.redisTimeout <= 0:
		return o, errors.New("-redis-timeout must be positive")
	case o.writeTimeout <= 0:
		return o, errors.New("-write-timeout must be positive")
	case o.readTimeout <= 0:
		return o, errors.New("-read-timeout must be positive")
	case o.hsts < 0:
		return o, errors.New("-hsts must not be negative")
	case o.maxAge < 0:
		return o, errors.New("-max-age must not be negative")
	case o.queue <= 0:
		return o, errors.New("-queue must be positive")
	case o.presenceInterval <= 0:
		return o, errors.New("-presence-interval must be positive")
	case o.retention < 0:
		return o, errors.New("-retention must not be negative")
	case o.redisURL != "" && len(o.redisCluster) > 0:
		return o, errors.New("-redis and -redis-cluster exclude each other")
	case o.db == "" && o.redisURL == "" && len(o.redisCluster) == 0:
		return o, errors.New("-db must name a file or :memory:")
	case o.maxRooms <= 0:
		return o, errors.New("-max-rooms must be positive")
	case o.history <= 0:
		return o, errors.New("-history must be positive")
	case o.maxBody <= 0:
		return o, errors.New("-max-body must be positive")
	case o.postRate < 0 || math.IsNaN(o.postRate) || math.IsInf(o.postRate, 0):
		return o, errors.New("-post-rate must be a finite number, not negative")
	case o.postBurst < 0, o.postRate > 0 && o.postBurst == 0:
		return o, errors.New("-post-burst must be positive")
	case o.streamsPer < 0, o.streamsMax < 0:
		return o, errors.New("-max-streams-per-client and -max-streams must not be negative")
	case o.connsPer < 0, o.connsMax < 0:
		return o, errors.New("-max-conns-per-client and -max-conns must not be negative")
	case o.idleTimeout <= 0:
		return o, errors.New("-idle-timeout must be positive")
	case o.secret != "" && utf8.RuneCountInString(o.secret) < minSecretChars:
		return o, fmt.Errorf("-secret must be at least %d characters long", minSecretChars)
	case o.adminToken != "" && utf8.RuneCountInString(o.adminToken) < minSecretChars:
		return o, fmt.Errorf("-admin-token must be at least %d characters long", minSecretChars)
	}
	return o, nil
}

// minSecretChars is the shortest -secret accepted.
const minSecretChars = 16

// serverSecret returns the key that signs identity cookies: the SHA-256 of
// -secret when it is set, else the store's own secret, created on its first
// start and shared by every node of a shared store.
func serverSecret(ctx context.Context, o options, store chat.Store) ([]byte, error) {
	if o.secret != "" {
		sum := sha256.Sum256([]byte(o.secret))
		return sum[:], nil
	}
	keeper, ok := store.(chat.SecretKeeper)
	if !ok {
		return nil, fmt.Errorf("the %T store keeps no secret: set -secret (or HXCHAT_SECRET)", store)
	}
	secret, err := keeper.Secret(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the server secret from the store (or set -secret or HXCHAT_SECRET): %w", err)
	}
	return secret, nil
}

// envName is the environment variable that sets a flag: HXCHAT_ and the
// flag's name in upper case, except -redis, which reads HXCHAT_REDIS_URL.
func envName(flag string) string {
	if flag == "redis" {
		return "HXCHAT_REDIS_URL"
	}
	return "HXCHAT_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

func newLogger(o options, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return nil, fmt.Errorf("-log-level: %w", err)
	}
	hopts := &slog.HandlerOptions{Level: level}
	switch o.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(w, hopts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, hopts)), nil
	default:
		return nil, fmt.Errorf("-log-format: want text or json, got %q", o.logFormat)
	}
}

// run starts hxchat and serves until ctx is cancelled, then shuts down:
// open streams are ended at once, requests in flight may finish.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	logger, err := newLogger(o, stderr)
	if err != nil {
		return err
	}
	if missing := static.Missing(); len(missing) > 0 {
		return fmt.Errorf("built without the htmx files %v: build with `make build` (it runs npm ci)", missing)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := handlers.NewMetrics(reg)
	conns := newConnLimiter(connLimits{perClient: o.connsPer, total: maxConns(o), trusted: o.trusted}, logger, reg)

	store, kind, err := openStore(ctx, o, logger)
	if err != nil {
		return err
	}
	defer store.Close()
	registerStoreMetrics(reg, store)
	var health handlers.Pinger
	if p, ok := store.(chat.Pinger); ok {
		health = p
	}
	secret, err := serverSecret(ctx, o, store)
	if err != nil {
		return err
	}
	hub := chat.NewHub(store, chat.HubOptions{
		QueueSize:        o.queue,
		ReplayMax:        o.replayMax,
		SnapshotSize:     o.history,
		PresenceInterval: o.presenceInterval,
		Render:           views.RenderMessage,
		RenderSnapshot:   views.RenderSnapshot,
		RenderTrimmed:    views.RenderTrimmed,
		RenderPresence:   views.RenderPresence,
		OnPresenceError: func(room string, err error) {
			// Per room and retried every half heartbeat: an outage of the
			// store is logged where it is noticed first, not here.
			logger.LogAttrs(ctx, slog.LevelDebug, "read presence", slog.String("room", room), slog.Any("err", err))
		},
		OnDeliver: func(m chat.Message, n int) {
			metrics.Deliveries.Add(float64(n))
			metrics.FanoutLatency.Observe(time.Since(m.Time).Seconds())
		},
		OnReplay: func(n int) { metrics.Replayed.Add(float64(n)) },
		OnOverflow: func(room string, queued int) {
			metrics.Overflows.Inc()
			logger.LogAttrs(ctx, slog.LevelDebug, "slow subscriber fell behind; it resumes from the store", slog.String("room", room), slog.Int("queued", queued))
		},
	})
	streams := handlers.NewStreams(logger, hub, metrics, handlers.StreamConfig{
		Heartbeat:    o.heartbeat,
		Retry:        o.retry,
		WriteTimeout: o.writeTimeout,
		Lifetime:     o.streamLifetime,
		NoHijack:     !o.hijackStreams,

		MaxStreamsPerClient: o.streamsPer,
		MaxStreams:          o.streamsMax,
	})
	var draining atomic.Bool
	handler := handlers.NewServer(handlers.Deps{
		Logger:   logger,
		Hub:      hub,
		Streams:  streams,
		Metrics:  metrics,
		Gatherer: reg,
		Config: handlers.Config{
			History: o.history, MaxBody: o.maxBody,
			PostRate: o.postRate, PostBurst: o.postBurst, Trusted: o.trusted,
			WriteTimeout: o.writeTimeout, HSTS: o.hsts, AdminToken: o.adminToken,
		},
		Health:   health,
		Draining: draining.Load,
		Secret:   secret,
	})
	return serve(ctx, o, logger, handler, streams, conns, &draining, kind, stdout)
}

// fdReserve is how many file descriptors -max-conns 0 keeps for all but
// client connections: the listeners, the SQLite files, logs, pprof.
const fdReserve = 128

// maxConns is the bound on connections open at once: -max-conns, or else
// the open-file limit less what the store's own connections need (SQLite:
// three files per connection; Redis: go-redis's pool, 10 per CPU) and
// fdReserve, so that Accept never fails for want of a descriptor. 0 is no
// limit, where the open-file limit is unknown or unlimited.
func maxConns(o options) int {
	if o.connsMax > 0 {
		return o.connsMax
	}
	soft, ok := openFileLimit()
	if !ok || soft > math.MaxInt32 {
		return 0
	}
	reserve := fdReserve
	if o.redisURL != "" || len(o.redisCluster) > 0 {
		// go-redis's pool; on a cluster, one per master (counted as three).
		reserve += 10 * runtime.GOMAXPROCS(0)
		if len(o.redisCluster) > 0 {
			reserve += 20 * runtime.GOMAXPROCS(0)
		}
	} else {
		reserve += 3 * (1 + o.dbReaders)
	}
	// A limit below the reserve (ulimit -n 256) still leaves half to clients.
	return max(int(soft)-reserve, int(soft)/2)
}

// sendBufferListener fixes each connection's kernel send buffer, so the
// memory held for a client that stopped reading is bounded and such a
// client is detected (its writes block) after a bounded backlog.
type sendBufferListener struct {
	net.Listener
	size int
}

func (l *sendBufferListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(l.size)
	}
	return c, nil
}
