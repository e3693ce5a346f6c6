package handlers

// This is the only file that imports r3labs/sse. It is used as the SSE
// writer with its measured pitfalls guarded (see DESIGN.md):
//   - one sse.Stream per connection, so one stalled browser only ever stalls
//     its own stream and never the room;
//   - AutoReplay off (it rewrites ids and keeps an unbounded log): replay
//     comes from the store;
//   - SplitData on; fragments reach it with LF line ends only (views.Render
//     normalises CR once per fragment), so every line gets its own "data:";
//   - never an event with empty data (it would end the loop): heartbeats are
//     comments;
//   - Last-Event-ID is parsed here and removed before r3labs sees it (it
//     answers 400 to a non-numeric one);
//   - the stream is ended by cancelling the request context it watches, and
//     removed only after ServeHTTP returned, so its deregistering goroutine
//     never blocks on a stopped stream (the RemoveStream leak);
//   - we write the headers (with X-Accel-Buffering and no-transform) and the
//     retry line ourselves, and send heartbeats, which it does not.

import (
	"context"
	crand "crypto/rand"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/r3labs/sse/v2"

	"github.com/hxchat/hxchat/chat"
	"github.com/hxchat/hxchat/views"
)

// Subscriber is what the SSE endpoint uses of the hub.
type Subscriber interface {
	Subscribe(room string) *chat.Subscription
	Since(ctx context.Context, room string, after int64, limit int) ([]chat.Message, error)
	Recent(ctx context.Context, room string, n int) ([]chat.Message, error)
	Render(chat.Message) ([]byte, error)
	// Join marks a member present in a room until leave is called.
	Join(room string, m chat.Member) (leave func())
}

// StreamConfig holds the SSE endpoint's timings.
type StreamConfig struct {
	// Heartbeat is the interval of ": ping" comments.
	Heartbeat time.Duration
	// Retry is the reconnect delay advertised in the "retry:" line.
	Retry time.Duration
	// WriteTimeout bounds each write to a client; a client that takes
	// longer is cut off.
	WriteTimeout time.Duration
	// ReplayBatch is how many stored messages are read per store call.
	ReplayBatch int
	// Snapshot is how many recent messages a log snapshot holds (sent to a
	// client whose cursor is beyond the room's newest message).
	Snapshot int
	// Lifetime bounds how long one stream stays open (0: unbounded). The
	// server then ends it cleanly and the client reconnects with
	// Last-Event-ID, so even a proxy that buffers whole responses delivers
	// every message, late but in order and once. Each stream's lifetime is
	// jittered down by up to a fifth, so a crowd does not reconnect at once.
	Lifetime time.Duration
	// MaxStreamsPerClient and MaxStreams bound the streams open at once
	// from one client address and in total (0: no limit); more get 503.
	MaxStreamsPerClient int
	MaxStreams          int
	// Trusted are the proxies whose X-Forwarded-For names the client.
	Trusted []netip.Prefix
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
	ready   sync.Map // stream id → chan struct{}, closed once its subscriber is registered
}

// NewStreams returns the SSE endpoint.
func NewStreams(logger *slog.Logger, hub Subscriber, m *Metrics, cfg StreamConfig) *Streams {
	srv := sse.New()
	srv.AutoReplay = false
	srv.AutoStream = false
	srv.SplitData = true
	srv.BufferSize = 16 // per connection; the hub's queue is the real slack
	ctx, cancel := context.WithCancel(context.Background())
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
	if cfg.ReplayBatch <= 0 {
		cfg.ReplayBatch = 256
	}
	if cfg.Snapshot <= 0 {
		cfg.Snapshot = 50
	}
	s := &Streams{logger: logger, hub: hub, metrics: m, cfg: cfg, srv: srv, ctx: ctx, cancel: cancel}
	s.limits = newStreamLimiter(cfg.MaxStreamsPerClient, cfg.MaxStreams)
	// An event published before r3labs registered the connection's
	// subscriber is broadcast to nobody; the pump waits for this signal.
	srv.OnSubscribe = func(id string, _ *sse.Subscriber) {
		if c, ok := s.ready.Load(id); ok {
			close(c.(chan struct{}))
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

// parseCursor reads a resume cursor: a non-negative integer in plain
// decimal digits, as the ids this server sends; anything else is none.
func parseCursor(v string) (int64, bool) {
	if v == "" || strings.IndexFunc(v, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// cursorOf returns where a client resumes: Last-Event-ID wins over ?after=;
// a malformed value counts as absent.
func cursorOf(r *http.Request) (int64, bool) {
	if n, ok := parseCursor(r.Header.Get("Last-Event-ID")); ok {
		return n, true
	}
	return parseCursor(r.URL.Query().Get("after"))
}

// ServeHTTP streams a room: subscribe first, replay from the store after
// the cursor, then forward live messages, each seq exactly once and in order.
func (s *Streams) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	room, err := roomParam(r)
	if err != nil {
		s.metrics.rejected("bad_room")
		http.Error(w, chat.Reason(err), statusOf(err))
		return
	}
	if r.Method == http.MethodHead {
		// A HEAD (routed here by middleware.GetHead) gets the headers only.
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache, no-transform")
		w.WriteHeader(http.StatusOK)
		return
	}
	if !s.enter() {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "server is shutting down", http.StatusServiceUnavailable)
		return
	}
	defer s.wg.Done()
	release, ok := s.admit(w, r)
	if !ok {
		return
	}
	defer release()

	// Subscribe before reading the store, so nothing stored in between is
	// missed; duplicates are dropped by seq below.
	sub := s.hub.Subscribe(room)
	defer sub.Close()

	latest, err := s.hub.Recent(r.Context(), room, 1)
	if err != nil {
		s.metrics.StoreErrors.WithLabelValues("read").Inc()
		s.logger.LogAttrs(r.Context(), slog.LevelError, "stream: read head", slog.String("room", room), slog.Any("err", err))
		http.Error(w, publicReason(err), statusOf(err))
		return
	}
	var head int64
	if len(latest) > 0 {
		head = latest[0].Seq
	}
	cursor, ok := cursorOf(r)
	snapshot := false
	switch {
	case !ok:
		cursor = head // no cursor: live from now on
	case cursor > head:
		// The store was reset (or the client is from another deployment):
		// what the client shows is gone, so replace its log wholesale.
		snapshot = true
		cursor = head
	}

	id := strconv.FormatUint(s.nextID.Add(1), 10)
	// An open stream is a person in the room: present while it lasts.
	// A request without a key (no identity) counts as a person of its own.
	who := PersonFrom(r.Context())
	member := chat.Member{Key: who.Key, Name: who.DisplayName()}
	if member.Key == "" {
		member.Key = "stream-" + crand.Text()
	}
	defer s.hub.Join(room, member)()

	ready := make(chan struct{})
	s.ready.Store(id, ready)
	defer s.ready.Delete(id)
	s.srv.CreateStream(id)
	// Runs after ServeHTTP returned, that is after the subscriber was
	// deregistered, so removing the stream leaks nothing.
	defer s.srv.RemoveStream(id)

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	dw := &deadlineWriter{w: w, rc: http.NewResponseController(w), timeout: s.cfg.WriteTimeout}

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache, no-transform")
	h.Set("X-Accel-Buffering", "no")
	h.Del("Content-Length")
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprintf(dw, "retry: %d\n\n", s.cfg.Retry.Milliseconds()); err != nil {
		return
	}
	dw.Flush()

	s.metrics.StreamsOpen.Inc()
	defer s.metrics.StreamsOpen.Dec()

	// End the stream when the hub drops this subscriber, the server shuts
	// down or the stream's lifetime is over: cancel the context r3labs
	// watches and cut any blocked write.
	var expire <-chan time.Time
	if s.cfg.Lifetime > 0 {
		t := time.NewTimer(jitter(s.cfg.Lifetime))
		defer t.Stop()
		expire = t.C
	}
	served := make(chan struct{})
	go func() {
		slow := false
		select {
		case <-sub.Dropped():
			slow = true
		case <-s.ctx.Done():
		case <-expire:
		case <-ctx.Done():
		}
		cancel()
		if !slow {
			// Let the stream end cleanly (net/http writes the last chunk);
			// cut it only if a write is stuck.
			t := time.NewTimer(endGrace)
			defer t.Stop()
			select {
			case <-served:
				return
			case <-t.C:
			}
		}
		dw.end()
	}()

	p := &pump{s: s, ctx: ctx, id: id, room: room, last: cursor, snapshot: snapshot}
	go p.run(ready, sub, cancel)

	// r3labs writes until its subscriber is deregistered, which happens
	// once ctx is cancelled.
	r2 := r.Clone(ctx)
	r2.Header.Del("Last-Event-ID")
	r2.URL.RawQuery = "stream=" + id
	s.srv.ServeHTTP(dw, r2)
	// net/http keeps a connection's deadlines across keep-alive requests:
	// clear ours so the next response on this connection is not cut.
	dw.clear()
	close(served)
}

// jitter returns d less a random part of up to a fifth of d.
func jitter(d time.Duration) time.Duration {
	return d - rand.N(d/5+1)
}

// endGrace is how long an ending stream may take to finish its last write
// before it is cut.
const endGrace = 200 * time.Millisecond

// pump feeds one connection's sse.Stream: replay, then live, in seq order.
type pump struct {
	s        *Streams
	ctx      context.Context
	id       string
	room     string
	last     int64 // newest seq sent
	snapshot bool  // start with a snapshot of the log
}

func (p *pump) run(ready <-chan struct{}, sub *chat.Subscription, cancel context.CancelFunc) {
	defer cancel()
	select {
	case <-ready:
	case <-p.ctx.Done():
		return
	}
	if p.snapshot {
		if err := p.sendSnapshot(); err != nil {
			p.fail(err)
			return
		}
	}
	if err := p.replay(0); err != nil {
		p.fail(err)
		return
	}
	heartbeat := time.NewTicker(p.s.cfg.Heartbeat)
	defer heartbeat.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-heartbeat.C:
			p.s.srv.Publish(p.id, &sse.Event{Comment: []byte("ping")})
		case u := <-sub.Presence():
			p.sendPresence(u.HTML)
		case d := <-sub.C():
			if d.Seq <= p.last {
				continue // already sent from the store
			}
			if d.Seq > p.last+1 {
				// A gap: an earlier post's fan-out is late, or was lost
				// with a drop. The store has it; fill from there.
				if err := p.replay(d.Seq - 1); err != nil {
					p.fail(err)
					return
				}
			}
			if d.Seq > p.last { // still ahead: the gap was trimmed away
				p.send(d.Seq, d.HTML)
			}
		}
	}
}

// replay sends stored messages after p.last, up to seq upto (0: all).
func (p *pump) replay(upto int64) error {
	for p.ctx.Err() == nil {
		msgs, err := p.s.hub.Since(p.ctx, p.room, p.last, p.s.cfg.ReplayBatch)
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if upto > 0 && m.Seq > upto {
				return nil
			}
			if m.Seq > p.last+1 {
				// Seqs have no gaps, so a jump means retention trimmed
				// what the client missed: say so where it happened.
				html, err := views.Render(views.TrimmedNotice(m.Seq - 1))
				if err != nil {
					return err
				}
				p.send(m.Seq-1, html)
			}
			html, err := p.s.hub.Render(m)
			if err != nil {
				return err
			}
			p.send(m.Seq, html)
			p.s.metrics.Replayed.Inc()
		}
		if len(msgs) < p.s.cfg.ReplayBatch {
			return nil
		}
	}
	return nil
}

// sendSnapshot replaces the client's log with the room's recent messages,
// in one event whose id is the newest of them.
func (p *pump) sendSnapshot() error {
	msgs, err := p.s.hub.Recent(p.ctx, p.room, p.s.cfg.Snapshot)
	if err != nil {
		return err
	}
	html, err := views.Render(views.LogSnapshot(msgs))
	if err != nil {
		return err
	}
	last := p.last
	if len(msgs) > 0 {
		last = max(last, msgs[len(msgs)-1].Seq)
	}
	p.send(last, html)
	return nil
}

// send publishes one message event. Publish blocks only on this
// connection's own stream; the hub never waits for it. html comes from
// views.Render (through the hub's RenderFunc), so its lines end in LF only.
func (p *pump) send(seq int64, html []byte) {
	if len(html) == 0 {
		html = []byte(" ") // an empty data field would end r3labs' loop
	}
	p.s.srv.Publish(p.id, &sse.Event{
		ID:   []byte(strconv.FormatInt(seq, 10)),
		Data: html,
	})
	p.last = seq
}

// sendPresence publishes a room's member list: an unnamed event, so htmx
// swaps it, whose data is a partial aimed at #presence. Its id is the newest
// seq sent, never empty: r3labs always writes the id field, and an empty one
// would reset the browser's Last-Event-ID.
func (p *pump) sendPresence(html []byte) {
	if len(html) == 0 {
		return
	}
	p.s.srv.Publish(p.id, &sse.Event{
		ID:   []byte(strconv.FormatInt(p.last, 10)),
		Data: html,
	})
}

func (p *pump) fail(err error) {
	if p.ctx.Err() != nil {
		return
	}
	p.s.metrics.StoreErrors.WithLabelValues("read").Inc()
	p.s.logger.LogAttrs(p.ctx, slog.LevelError, "stream: replay", slog.String("room", p.room), slog.Any("err", err))
}

// deadlineWriter gives every write to a stream its own deadline (instead of
// the server's WriteTimeout, which would cut every stream), ignores the
// second WriteHeader r3labs sends, and can cut a blocked write at once.
type deadlineWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	ended   atomic.Bool
}

func (d *deadlineWriter) Header() http.Header { return d.w.Header() }

// WriteHeader is a no-op: the headers were written before r3labs ran.
func (d *deadlineWriter) WriteHeader(int) {}

func (d *deadlineWriter) arm() {
	if d.ended.Load() {
		_ = d.rc.SetWriteDeadline(time.Unix(1, 0))
		return
	}
	_ = d.rc.SetWriteDeadline(time.Now().Add(d.timeout))
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	d.arm()
	return d.w.Write(p)
}

func (d *deadlineWriter) Flush() {
	d.arm()
	_ = d.rc.Flush()
}

// clear removes the write deadline unless the stream was cut.
func (d *deadlineWriter) clear() {
	if !d.ended.Load() {
		_ = d.rc.SetWriteDeadline(time.Time{})
	}
}

// end makes pending and future writes fail at once.
func (d *deadlineWriter) end() {
	d.ended.Store(true)
	_ = d.rc.SetWriteDeadline(time.Unix(1, 0))
}
