package handlers

// The SSE endpoint: admission (limits, draining), the client's cursor, and
// the choice of writer. What a stream sends, and in which order, is the
// chat.Follower's business; the stream (stream.go) only writes what its
// follower hands over, through r3labs/sse (the owner's choice of SSE
// writer), to the net/http response or to the connection taken over from
// it (raw.go). docs/ARCHITECTURE.md walks a message through all of it.

import (
	"context"
	crand "crypto/rand"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/r3labs/sse/v2"

	"github.com/hxchat/hxchat/chat"
)

// Subscriber is what the SSE endpoint uses of the hub.
type Subscriber interface {
	Follow(ctx context.Context, room string, from chat.Cursor, has bool, sink chat.Sink) (*chat.Follower, error)
	// Join marks a member present in a room until leave is called.
	Join(room string, m chat.Member) (leave func())
}

// StreamConfig holds the SSE endpoint's timings and limits.
type StreamConfig struct {
	// Heartbeat is the interval of ": ping" comments.
	Heartbeat time.Duration
	// Retry is the reconnect delay advertised in the "retry:" field, on
	// every stream and on every refusal.
	Retry time.Duration
	// WriteTimeout bounds each write to a client; a client that takes
	// longer is cut off.
	WriteTimeout time.Duration
	// Lifetime bounds how long one stream stays open (0: unbounded). The
	// server then ends it cleanly and the client reconnects with
	// Last-Event-ID, so even a proxy that buffers whole responses delivers
	// every message, late but in order and once. Each stream's lifetime is
	// jittered down by up to a fifth, so a crowd does not reconnect at once.
	Lifetime time.Duration
	// MaxStreamsPerClient and MaxStreams bound the streams open at once
	// from one client address and in total (0: no limit); more are refused
	// with a retry (refuseStream).
	MaxStreamsPerClient int
	MaxStreams          int
	// NoHijack keeps HTTP/1.x streams with net/http instead of taking
	// their connections over (see raw.go).
	NoHijack bool
}

// Streams serves the SSE endpoint of every room and ends all open streams on
// Shutdown.
type Streams struct {
	logger  *slog.Logger
	hub     Subscriber
	metrics *Metrics
	cfg     StreamConfig
	srv     *sse.Server
	limits  *streamLimiter

	ctx    context.Context // cancelled by Shutdown
	cancel context.CancelFunc
	nextID atomic.Uint64

	mu      sync.Mutex // guards closing and wg.Add
	closing bool
	wg      sync.WaitGroup
	conns   sync.Map // r3labs stream id → *stream

	frames  *frames // see frames
	opening []byte  // every admitted stream's first block (streamOpening)
}

// NewStreams returns the SSE endpoint.
func NewStreams(logger *slog.Logger, hub Subscriber, m *Metrics, cfg StreamConfig) *Streams {
	// Zero values select defaults (a zero Heartbeat would panic in
	// time.NewTicker; a zero WriteTimeout would fail every write).
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 15 * time.Second
	}
	if cfg.Retry <= 0 {
		cfg.Retry = 2 * time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Streams{logger: logger, hub: hub, metrics: m, cfg: cfg, srv: newSSEServer(), frames: newFrames(), opening: streamOpening(cfg.Retry), ctx: ctx, cancel: cancel}
	s.limits = newStreamLimiter(cfg.MaxStreamsPerClient, cfg.MaxStreams)
	// An event published before r3labs registered the connection's
	// subscriber is broadcast to nobody: a stream takes events only from
	// here on (r3labs runs this in a goroutine of its own).
	s.srv.OnSubscribe = func(id string, _ *sse.Subscriber) {
		if c, ok := s.conns.Load(id); ok {
			c.(*stream).subscribed()
		}
	}
	return s
}

// Shutdown ends every open stream at once and waits for their handlers to
// return. Clients reconnect (to this or another node) with Last-Event-ID.
// It is meant for http.Server.RegisterOnShutdown.
func (s *Streams) Shutdown() {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	s.cancel()
	// A stream registered after this range sees s.ctx cancelled when it
	// starts (stream.start), so none is missed.
	s.conns.Range(func(_, c any) bool {
		c.(*stream).end(false)
		return true
	})
	s.wg.Wait()
}

// enter registers a new stream unless Shutdown has begun; the lock makes
// sure Shutdown's Wait never races with an Add.
func (s *Streams) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.wg.Add(1)
	return true
}

// cursorOf returns where a client resumes: Last-Event-ID wins over ?after=;
// a malformed value counts as absent.
func cursorOf(r *http.Request) (chat.Cursor, bool) {
	if c, ok := chat.ParseCursor(r.Header.Get("Last-Event-ID")); ok {
		return c, true
	}
	return chat.ParseCursor(r.URL.Query().Get("after"))
}

// ServeHTTP streams a room from the client's cursor. A stream that cannot
// be served now (draining, limits, the store unreachable) is refused with
// a retry the browser honours (refuseStream), never with a bare error that
// would leave its page unconnected.
func (s *Streams) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	room, err := roomParam(r)
	if err != nil {
		s.metrics.rejected("bad_room")
		http.Error(w, chat.Reason(err), statusOf(err))
		return
	}
	if r.Method == http.MethodHead {
		// A HEAD (routed here by middleware.GetHead) gets the headers only.
		streamHeaders(w.Header())
		w.WriteHeader(http.StatusOK)
		return
	}
	if !s.enter() {
		s.metrics.rejected("draining")
		refuseStream(w, s.cfg.Retry, "the server is restarting")
		return
	}
	release, ok := s.admit(w, r)
	if !ok {
		s.wg.Done()
		return
	}
	// An HTTP/1.x stream is taken over from net/http (see raw.go); HTTP/2
	// streams, and any writer that cannot be taken over, stay.
	var hj http.Hijacker
	if !s.cfg.NoHijack && r.ProtoMajor == 1 {
		hj = hijacker(w)
	}
	c := s.newStream(r, room, release, hj != nil)
	from, has := cursorOf(r)
	f, err := s.hub.Follow(r.Context(), room, from, has, c)
	if err != nil {
		c.close()
		if clientLeft(r) {
			logFailure(s.logger, r, slog.LevelError, "stream: read head", slog.String("room", room), slog.Any("err", err))
			return
		}
		s.metrics.StoreErrors.WithLabelValues("read").Inc()
		s.logger.LogAttrs(r.Context(), slog.LevelError, "stream: read head", slog.String("room", room), slog.Any("err", err))
		refuseStream(w, s.cfg.Retry, "the chat's history cannot be read right now")
		return
	}
	c.follow(f)
	c.join(r)

	streamHeaders(w.Header())
	if hj != nil {
		rw, err := takeOver(hj, w.Header(), c, s.opening, s.cfg.WriteTimeout)
		if err != nil {
			s.logger.LogAttrs(r.Context(), slog.LevelDebug, "stream: take over", slog.String("room", room), slog.Any("err", err))
			c.close()
			return
		}
		noteStatus(w, http.StatusOK)
		// The handler returns, and with it net/http's buffers and
		// goroutine for this connection; the stream goes on in a
		// goroutine of its own with a small stack.
		if c.start(rw) {
			go c.run(rw, c.bareRequest())
		}
		return
	}
	sw := newStreamWriter(w, c, s.cfg.WriteTimeout)
	w.WriteHeader(http.StatusOK)
	if _, err := sw.Write(s.opening); err != nil || sw.flush() != nil {
		c.close()
		return
	}
	// r3labs reads the stream id from the URL and Last-Event-ID from the
	// headers: it gets the id only (it answers 400 to an id that is not a
	// number, and the cursor was read above).
	r2 := r.WithContext(c.ctx)
	r2.Header.Del("Last-Event-ID")
	r2.URL = &url.URL{Path: r.URL.Path, RawQuery: "stream=" + c.id}
	if c.start(sw) {
		c.run(sw, r2)
	}
}

// streamHeaders sets the headers of an event stream: never cached, never
// transformed or buffered by a proxy, no length.
func streamHeaders(h http.Header) {
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache, no-transform")
	h.Set("X-Accel-Buffering", "no")
	h.Del("Content-Length")
}

// newStream registers a stream of room for r: its r3labs stream and its
// place in the registry. What it sets up, and release and the Streams'
// wait group, are undone by close. A raw stream's context does not end
// with the request's: its handler returns long before the stream ends.
func (s *Streams) newStream(r *http.Request, room string, release func(), raw bool) *stream {
	parent := r.Context()
	if raw {
		parent = context.Background()
	}
	ctx, cancel := context.WithCancel(parent)
	c := &stream{s: s, id: strconv.FormatUint(s.nextID.Add(1), 10), room: room, ctx: ctx, cancel: cancel}
	c.cleanup = []func(){s.wg.Done, release, cancel}
	s.conns.Store(c.id, c)
	s.srv.CreateStream(c.id)
	// Removed after r3labs returned, that is after the subscriber was
	// deregistered, so removing the stream leaks nothing.
	c.cleanup = append(c.cleanup, func() {
		s.srv.RemoveStream(c.id)
		s.conns.Delete(c.id)
	})
	return c
}

// follow makes f the stream's follower, closed with the stream.
func (c *stream) follow(f *chat.Follower) {
	c.f = f // before the stream serves: r3labs' goroutines start after
	c.cleanup = append(c.cleanup, f.Close)
}

// join makes the stream's person present in its room while it lasts. A
// request without a key (no identity) counts as a person of its own.
func (c *stream) join(r *http.Request) {
	c.cleanup = append(c.cleanup, c.s.hub.Join(c.room, memberOf(r)))
}

// memberOf is the person making r as a member of a room: present while
// their stream or live log is open.
func memberOf(r *http.Request) chat.Member {
	who := PersonFrom(r.Context())
	member := chat.Member{Key: who.Key, Name: who.DisplayName()}
	if member.Key == "" {
		member.Key = "stream-" + crand.Text()
	}
	return member
}
