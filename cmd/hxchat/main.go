// Command hxchat serves the hxchat real-time chat.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

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
	addr            string
	db              string
	redisURL        string
	redisTimeout    time.Duration
	dbBusyTimeout   time.Duration
	dbMaxBatch      int
	dbReaders       int
	heartbeat       time.Duration
	streamLifetime  time.Duration
	retry           time.Duration
	writeTimeout    time.Duration
	shutdownTimeout time.Duration
	queue           int
	retention       int
	maxRooms        int
	history         int
	maxBody         int64
	sendBuffer      int
	logLevel        string
	logFormat       string
}

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("hxchat", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.addr, "addr", "127.0.0.1:8080", "address to listen on (host:port; port 0 picks a free one)")
	fs.StringVar(&o.db, "db", "hxchat.db", "SQLite file keeping the history (:memory: keeps it in memory only)")
	fs.StringVar(&o.redisURL, "redis", "", "Redis URL (redis://host:port/db); nodes sharing one Redis serve the same rooms; replaces -db")
	fs.DurationVar(&o.dbBusyTimeout, "db-busy-timeout", 5*time.Second, "how long SQLite waits for a lock held by another process (a backup)")
	fs.IntVar(&o.dbMaxBatch, "db-max-batch", 256, "most posts committed to SQLite in one transaction (group commit)")
	fs.IntVar(&o.dbReaders, "db-readers", 4, "SQLite connections serving history reads")
	fs.DurationVar(&o.redisTimeout, "redis-timeout", time.Second, "bound on connecting to Redis and on each command; a dead Redis fails posts (503) this fast")
	fs.DurationVar(&o.heartbeat, "heartbeat", 15*time.Second, "interval of SSE keep-alive comments")
	fs.DurationVar(&o.streamLifetime, "stream-lifetime", 5*time.Minute, "streams are ended cleanly after about this long (jittered) and the client resumes; bounds what a buffering proxy holds back (0: never)")
	fs.DurationVar(&o.retry, "sse-retry", 2*time.Second, "reconnect delay advertised to SSE clients")
	fs.DurationVar(&o.writeTimeout, "write-timeout", 10*time.Second, "deadline of each write to a client; slower clients are cut off")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 5*time.Second, "how long a shutdown waits for requests in flight")
	fs.IntVar(&o.queue, "queue", chat.DefaultQueueSize, "messages queued per subscriber before it is dropped as too slow")
	fs.IntVar(&o.retention, "retention", 0, "messages kept per room (0: the store's default, 1000 in memory, 10000 in SQLite and Redis)")
	fs.IntVar(&o.maxRooms, "max-rooms", chat.DefaultMaxRooms, "rooms kept in memory; the least recently used is forgotten beyond it")
	fs.IntVar(&o.history, "history", 50, "recent messages shown on a room page")
	fs.Int64Var(&o.maxBody, "max-body", 16<<10, "largest accepted POST body in bytes")
	fs.IntVar(&o.sendBuffer, "tcp-send-buffer", 256<<10, "kernel send buffer per connection in bytes (0: system default); bounds memory held for slow clients")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error (debug logs every request)")
	fs.StringVar(&o.logFormat, "log-format", "text", "text or json")

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
	case o.queue <= 0:
		return o, errors.New("-queue must be positive")
	case o.retention < 0:
		return o, errors.New("-retention must not be negative")
	case o.db == "" && o.redisURL == "":
		return o, errors.New("-db must name a file or :memory:")
	case o.maxRooms <= 0:
		return o, errors.New("-max-rooms must be positive")
	case o.history <= 0:
		return o, errors.New("-history must be positive")
	case o.maxBody <= 0:
		return o, errors.New("-max-body must be positive")
	}
	return o, nil
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

	store, kind, err := openStore(ctx, o, logger)
	if err != nil {
		return err
	}
	defer store.Close()
	var health handlers.Pinger
	if p, ok := store.(chat.Pinger); ok {
		health = p
	}
	hub := chat.NewHub(store, chat.HubOptions{
		QueueSize: o.queue,
		Render:    views.RenderMessage,
		OnDeliver: func(n int) { metrics.Deliveries.Add(float64(n)) },
		OnDrop: func(room string, queued int) {
			metrics.Dropped.Inc()
			logger.LogAttrs(ctx, slog.LevelWarn, "drop slow subscriber", slog.String("room", room), slog.Int("queued", queued))
		},
	})
	streams := handlers.NewStreams(logger, hub, metrics, handlers.StreamConfig{
		Heartbeat:    o.heartbeat,
		Retry:        o.retry,
		WriteTimeout: o.writeTimeout,
		Snapshot:     o.history,
		Lifetime:     o.streamLifetime,
	})
	handler := handlers.NewServer(handlers.Deps{
		Logger:   logger,
		Hub:      hub,
		Streams:  streams,
		Metrics:  metrics,
		Gatherer: reg,
		Config:   handlers.Config{History: o.history, MaxBody: o.maxBody},
		Health:   health,
	})

	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return err
	}
	if o.sendBuffer > 0 {
		ln = &sendBufferListener{Listener: ln, size: o.sendBuffer}
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second, // bodies are small; streams read nothing
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	// Open streams never hold a shutdown hostage: end them at once.
	srv.RegisterOnShutdown(streams.Shutdown)

	fmt.Fprintf(stdout, "hxchat serving on http://%s/\n", ln.Addr())
	logger.LogAttrs(ctx, slog.LevelInfo, "start", slog.String("addr", ln.Addr().String()), slog.String("store", kind))

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	logger.LogAttrs(context.Background(), slog.LevelInfo, "shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), o.shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
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
