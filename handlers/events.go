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
//     retry line ourselves, and send heartbeats, which it does not;
//   - it never blocks a publisher: at most flightWindow events are handed to
//     a stream before r3labs has written them, fewer than its buffers hold,
//     so TryPublish always has room; the rest wait in our own bounded queue.
//
// The speed of the stream path comes from three things (see
// docs/PERFORMANCE.md): a connection has no goroutine of ours (the hub
// delivers straight into its stream, r3labs' loop drains it, timers do the
// rest); each message is framed once as one *sse.Event shared by all
// subscribers; and the socket is flushed once per batch, not per event.

import (
	"cmp"
	"context"
	crand "crypto/rand"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"runtime/debug"
	"slices"
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
	SubscribeSink(room string, sink chat.Sink) *chat.Subscription
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
	// NoHijack keeps HTTP/1.x streams with net/http instead of taking
	// their connections over (see raw.go).
	NoHijack bool
	// QueueSize bounds the live messages queued for one client (waiting to
	// be written, or held behind a gap); a client over it is dropped and
	// resumes from the store (chat.DefaultQueueSize).
	QueueSize int
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
}

// NewStreams returns the SSE endpoint.
func NewStreams(logger *slog.Logger, hub Subscriber, m *Metrics, cfg StreamConfig) *Streams {
	srv := sse.New()
	srv.AutoReplay = false
	srv.AutoStream = false
	srv.SplitData = true
	srv.BufferSize = r3labsBuffer
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
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = chat.DefaultQueueSize
	}
	s := &Streams{logger: logger, hub: hub, metrics: m, cfg: cfg, srv: srv, ctx: ctx, cancel: cancel}
	s.limits = newStreamLimiter(cfg.MaxStreamsPerClient, cfg.MaxStreams)
	// An event published before r3labs registered the connection's
	// subscriber is broadcast to nobody, so a stream is fed only from here
	// on. r3labs runs this in a goroutine of its own, which does the
	// stream's first catch-up from the store.
	srv.OnSubscribe = func(id string, _ *sse.Subscriber) {
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
	// starts to serve (stream.serve), so none is missed.
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

// r3labs' buffers per connection: the stream's event channel holds
// r3labsBuffer events and its subscriber's channel 64 (fixed in r3labs
// v2.10.0), plus one in the hands of the stream's goroutine. flightWindow,
// the most events handed to r3labs and not yet written, stays below their
// sum, so a TryPublish to a live stream never finds it full and r3labs'
// stream goroutine never blocks.
const (
	r3labsBuffer = 16
	flightWindow = 64
)

// gapWait is how long a live message that arrived ahead of its
// predecessor waits for it before the stream fills the gap from the store.
// Racing posts close such gaps within microseconds; a message lost with a
// drop or a feed hiccup is fetched after gapWait.
const gapWait = 50 * time.Millisecond

// endGrace is how long an ending stream may take to finish its last write
// before it is cut.
const endGrace = 200 * time.Millisecond

// ping is the heartbeat, one event shared by every stream.
var ping = &sse.Event{Comment: []byte("ping")}

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
		streamHeaders(w.Header())
		w.WriteHeader(http.StatusOK)
		return
	}
	if !s.enter() {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "server is shutting down", http.StatusServiceUnavailable)
		return
	}
	release, ok := s.admit(w, r)
	if !ok {
		s.wg.Done()
		return
	}
	// An HTTP/1.x stream is taken over from net/http (see rawWriter);
	// HTTP/2 streams, and any writer that cannot be taken over, stay.
	var hj http.Hijacker
	if !s.cfg.NoHijack && r.ProtoMajor == 1 {
		hj = hijacker(w)
	}
	c, err := s.open(r, room, release, hj != nil)
	if err != nil {
		s.metrics.StoreErrors.WithLabelValues("read").Inc()
		s.logger.LogAttrs(r.Context(), slog.LevelError, "stream: read head", slog.String("room", room), slog.Any("err", err))
		http.Error(w, publicReason(err), statusOf(err))
		return
	}
	h := w.Header()
	streamHeaders(h)
	retry := fmt.Appendf(nil, "retry: %d\n\n", s.cfg.Retry.Milliseconds())
	if hj != nil {
		rw, err := takeOver(hj, h, c, retry, s.cfg.WriteTimeout)
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
	if _, err := sw.Write(retry); err != nil || sw.flush() != nil {
		c.close()
		return
	}
	// r3labs reads the stream id from the URL and Last-Event-ID from the
	// headers; the cursor was read in open.
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

// open sets a stream up: subscribed, positioned after the client's cursor,
// present in the room, with its r3labs stream created. What it sets up, and
// release and the Streams' wait group, are undone by close; on an error
// open has already done that. A raw stream's context does not end with the
// request's: its handler returns long before the stream ends.
func (s *Streams) open(r *http.Request, room string, release func(), raw bool) (*stream, error) {
	parent := r.Context()
	if raw {
		parent = context.Background()
	}
	ctx, cancel := context.WithCancel(parent)
	c := &stream{
		s:       s,
		id:      strconv.FormatUint(s.nextID.Add(1), 10),
		room:    room,
		ctx:     ctx,
		cancel:  cancel,
		filling: true, // until the first catch-up, live messages are held
		drained: make(chan struct{}, 1),
	}
	c.cleanup = []func(){s.wg.Done, release, cancel}

	// Subscribe before reading the store, so nothing stored in between is
	// missed; duplicates are dropped by seq.
	c.cleanup = append(c.cleanup, s.hub.SubscribeSink(room, c).Close)
	latest, err := s.hub.Recent(r.Context(), room, 1)
	if err != nil {
		c.close()
		return nil, err
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
	c.mu.Lock()
	c.last, c.snapshot = cursor, snapshot
	c.mu.Unlock()

	// An open stream is a person in the room: present while it lasts.
	// A request without a key (no identity) counts as a person of its own.
	who := PersonFrom(r.Context())
	member := chat.Member{Key: who.Key, Name: who.DisplayName()}
	if member.Key == "" {
		member.Key = "stream-" + crand.Text()
	}
	c.cleanup = append(c.cleanup, s.hub.Join(room, member))

	s.conns.Store(c.id, c)
	s.srv.CreateStream(c.id)
	// Removed after r3labs returned, that is after the subscriber was
	// deregistered, so removing the stream leaks nothing.
	c.cleanup = append(c.cleanup, func() {
		s.srv.RemoveStream(c.id)
		s.conns.Delete(c.id)
	})
	return c, nil
}

// close undoes what open set up, last first.
func (c *stream) close() {
	for i := len(c.cleanup) - 1; i >= 0; i-- {
		c.cleanup[i]()
	}
	c.cleanup = nil
}

// bareRequest is the request r3labs serves a raw stream from: the stream
// id, the stream's context and nothing else, so the client's request and
// everything hanging off its context can be collected.
func (c *stream) bareRequest() *http.Request {
	r, _ := http.NewRequestWithContext(c.ctx, http.MethodGet, "/?stream="+c.id, nil)
	return r
}

// start makes out the stream's output, where r3labs writes until its
// subscriber is deregistered (once ctx is cancelled), and starts its
// timers. It reports false, having closed the stream, when the stream ended
// before it started (dropped, or the client left).
func (c *stream) start(out output) bool {
	c.mu.Lock()
	c.w = out
	ended := c.ending
	c.mu.Unlock()
	if ended {
		c.finish()
		c.close()
		return false
	}
	c.s.metrics.StreamsOpen.Inc()
	// End the stream when its lifetime is over (Shutdown ends it, the hub
	// dropping it calls Dropped, the client leaving cancels ctx). Timers,
	// not goroutines: an idle stream costs none.
	if c.s.ctx.Err() != nil {
		c.end(false) // Shutdown began before it was registered
	}
	c.mu.Lock()
	c.beat = time.AfterFunc(c.s.cfg.Heartbeat, c.heartbeat)
	if c.s.cfg.Lifetime > 0 {
		c.life = time.AfterFunc(jitter(c.s.cfg.Lifetime), func() { c.end(false) })
	}
	c.mu.Unlock()
	return true
}

// run serves a started stream until it ends, then closes it. For a raw
// stream it is the whole body of the stream's goroutine, and kept that
// small on purpose: an idle stream's stack is this frame and r3labs' loop.
func (c *stream) run(out output, r *http.Request) {
	defer c.exit()
	c.s.srv.ServeHTTP(out, r)
}

// exit closes the stream once r3labs returned, and keeps a panic in the
// stream's writing from taking the process down: a raw stream's goroutine
// is not net/http's, which would recover it. The stream ends; its client
// reconnects.
func (c *stream) exit() {
	if v := recover(); v != nil {
		c.s.logger.LogAttrs(c.ctx, slog.LevelError, "stream: panic", slog.String("room", c.room), slog.Any("panic", v), slog.String("stack", string(debug.Stack())))
		c.end(true)
	}
	c.stop()
}

// stop ends a stream whose r3labs loop returned and closes it.
func (c *stream) stop() {
	c.finish()
	c.s.metrics.StreamsOpen.Dec()
	c.close()
}

// jitter returns d less a random part of up to a fifth of d.
func jitter(d time.Duration) time.Duration {
	return d - rand.N(d/5+1)
}

// stream is one SSE connection: the hub's Sink for its subscriber and the
// feeder of its r3labs stream. It has no goroutine of its own: the hub
// delivers into it, r3labs' loop drains it (each written event is reported
// by the output's Flush), and timers send heartbeats, fill gaps and end it.
// Every live message goes out in seq order and once: one ahead of its
// predecessor is held until the predecessor arrives or the gap is filled
// from the store.
type stream struct {
	s       *Streams
	id      string // the r3labs stream's
	room    string
	ctx     context.Context // cancelled when the stream ends
	cancel  context.CancelFunc
	cleanup []func() // run by close, last first

	drained chan struct{} // signalled when the queue empties, for a catch-up

	mu       sync.Mutex
	w        output           // set when the stream starts to serve
	last     int64            // newest seq queued for the client
	snapshot bool             // start with a snapshot of the log
	ready    bool             // r3labs registered the subscriber: events may be handed over
	filling  bool             // a catch-up from the store runs; live messages are held
	refill   bool             // held messages were forgotten during the catch-up: it reads on
	held     []*chat.Delivery // live messages beyond last+1, in seq order
	queue    []*sse.Event     // waiting for room in r3labs' buffers
	inflight int              // handed to r3labs, not yet written
	presence *chat.PresenceUpdate
	gap      *time.Timer // fills a gap shown by held messages
	beat     *time.Timer
	life     *time.Timer
	grace    *time.Timer // cuts a last write that takes too long
	ending   bool
	served   bool // r3labs returned: the connection is no longer ours to cut
}

var _ chat.Sink = (*stream)(nil)

// frameDelivery is the wire encoding of a message, built once per delivery.
func frameDelivery(d *chat.Delivery) any {
	return messageEvent(d.Seq, d.HTML)
}

func messageEvent(seq int64, html []byte) *sse.Event {
	if len(html) == 0 {
		html = []byte(" ") // an empty data field would end r3labs' loop
	}
	return &sse.Event{ID: strconv.AppendInt(nil, seq, 10), Data: html}
}

// Deliver queues a live message, holding it while a catch-up runs or while
// its predecessor is missing. It reports false when the client has more
// than QueueSize messages waiting: the hub then drops it.
func (c *stream) Deliver(d *chat.Delivery) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ending || d.Seq <= c.last {
		return true // gone, or already sent (from the store)
	}
	if c.filling || d.Seq > c.last+1 {
		return c.hold(d)
	}
	if len(c.queue)+c.inflight >= c.s.cfg.QueueSize {
		return false
	}
	c.push(d.Frame(frameDelivery).(*sse.Event))
	c.last = d.Seq
	c.release(false)
	return true
}

// hold keeps d, in seq order, until its predecessors are sent; it reports
// false when too many are held.
func (c *stream) hold(d *chat.Delivery) bool {
	i, found := slices.BinarySearchFunc(c.held, d.Seq, func(h *chat.Delivery, seq int64) int { return cmp.Compare(h.Seq, seq) })
	if found {
		return true
	}
	if len(c.held) >= c.s.cfg.QueueSize {
		// Every delivered message is already stored: rather than hold
		// more, or drop a client that is only waiting for its catch-up,
		// forget them and read them from the store.
		clear(c.held)
		c.held = nil
		if c.gap != nil {
			c.gap.Stop()
			c.gap = nil
		}
		if c.filling {
			c.refill = true
		} else {
			c.filling = true
			go c.catchUp(true)
		}
		return true
	}
	c.held = slices.Insert(c.held, i, d)
	if !c.filling && c.gap == nil {
		c.gap = time.AfterFunc(gapWait, c.fillGap)
	}
	return true
}

// release queues the held messages that are next in seq order. With skip,
// it queues all of them: the store was just read to its end, so what is
// still missing was trimmed away.
func (c *stream) release(skip bool) {
	n := 0
	for _, d := range c.held {
		if d.Seq > c.last+1 && !skip {
			break
		}
		n++
		if d.Seq > c.last {
			c.push(d.Frame(frameDelivery).(*sse.Event))
			c.last = d.Seq
		}
	}
	if n == 0 {
		return
	}
	clear(c.held[:n])
	if c.held = c.held[n:]; len(c.held) == 0 {
		c.held = nil
		if c.gap != nil {
			c.gap.Stop()
			c.gap = nil
		}
	}
}

// push queues ev and hands what fits to r3labs.
func (c *stream) push(ev *sse.Event) {
	c.queue = append(c.queue, ev)
	c.feed()
}

// feed hands queued events to r3labs while fewer than flightWindow are in
// flight. Before r3labs registered the subscriber, events would be lost,
// so they wait.
func (c *stream) feed() {
	if !c.ready || c.ending {
		return
	}
	n := 0
	for _, ev := range c.queue {
		if c.inflight >= flightWindow || !c.s.srv.TryPublish(c.id, ev) {
			break
		}
		c.inflight++
		n++
	}
	if n == 0 {
		return
	}
	clear(c.queue[:n])
	if c.queue = c.queue[n:]; len(c.queue) == 0 {
		c.queue = nil // an idle stream keeps no buffer
		select {
		case c.drained <- struct{}{}:
		default:
		}
	}
}

// written is told by the writer that r3labs wrote one event; it hands over
// more and reports whether more are in flight (the writer then leaves the
// flush to the last of them).
func (c *stream) written() (more bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inflight--
	c.feed()
	if c.presence != nil {
		c.sendPresence()
	}
	return c.inflight > 0
}

// Presence queues the room's member list, or keeps it (replacing an older
// one) until the stream is caught up and has room.
func (c *stream) Presence(u *chat.PresenceUpdate) {
	if len(u.HTML) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.presence = u
	c.sendPresence()
}

// sendPresence queues the kept member list: an unnamed event, so htmx swaps
// it, whose data is a partial aimed at #presence. Its id is the newest seq
// queued before it, never empty: r3labs always writes the id field, and an
// empty one would reset the browser's Last-Event-ID.
func (c *stream) sendPresence() {
	if c.filling || !c.ready || c.ending || len(c.queue)+c.inflight >= c.s.cfg.QueueSize {
		return
	}
	c.push(&sse.Event{ID: strconv.AppendInt(nil, c.last, 10), Data: c.presence.HTML})
	c.presence = nil
}

// Dropped ends a stream the hub dropped as too slow, cutting its writes.
func (c *stream) Dropped() { c.end(true) }

// subscribed runs once r3labs registered the subscriber (in a goroutine
// r3labs starts for it): events may flow, starting with the catch-up.
func (c *stream) subscribed() {
	c.mu.Lock()
	c.ready = true
	c.feed()
	snapshot := c.snapshot
	c.mu.Unlock()
	if snapshot {
		if err := c.sendSnapshot(); err != nil {
			c.fail(err)
			return
		}
	}
	c.catchUp(false)
}

// fillGap runs when held messages waited gapWait for a predecessor: it
// reads the missing ones from the store.
func (c *stream) fillGap() {
	c.mu.Lock()
	c.gap = nil
	if c.ending || c.filling || len(c.held) == 0 {
		c.mu.Unlock()
		return
	}
	c.filling = true
	c.mu.Unlock()
	c.catchUp(true)
}

// catchUp queues what the store holds after last, then the held live
// messages, and ends the fill. It runs with filling set, in a goroutine of
// its own (r3labs' OnSubscribe one, or a gap timer's).
//
// A held message beyond a gap is released at once only when skip is set:
// when the catch-up itself fills a gap that already waited gapWait, what
// the store does not have by now was trimmed away. After the first
// catch-up the missing predecessor may still be on its way (a racing post
// stored it before its successor but fans it out after), so the gap waits.
func (c *stream) catchUp(skip bool) {
	for {
		if err := c.replay(); err != nil {
			c.fail(err)
			return
		}
		c.mu.Lock()
		if !c.refill {
			break
		}
		c.refill = false // held messages were forgotten: read on
		c.mu.Unlock()
	}
	defer c.mu.Unlock()
	c.filling = false
	c.release(skip)
	if len(c.held) > 0 && c.gap == nil {
		c.gap = time.AfterFunc(gapWait, c.fillGap)
	}
	if c.presence != nil {
		c.sendPresence()
	}
}

// replay queues stored messages after last, a batch at a time, waiting for
// each batch to be handed over before reading the next.
func (c *stream) replay() error {
	batch := c.s.cfg.ReplayBatch
	c.mu.Lock()
	after := c.last
	c.mu.Unlock()
	for {
		msgs, err := c.s.hub.Since(c.ctx, c.room, after, batch)
		if err != nil {
			return err
		}
		for _, m := range msgs {
			var notice []byte
			if m.Seq > after+1 {
				// Seqs have no gaps, so a jump means retention trimmed
				// what the client missed: say so where it happened.
				if notice, err = views.Render(views.TrimmedNotice(m.Seq - 1)); err != nil {
					return err
				}
			}
			html, err := c.s.hub.Render(m)
			if err != nil {
				return err
			}
			c.mu.Lock()
			if notice != nil {
				c.push(messageEvent(m.Seq-1, notice))
			}
			c.push(messageEvent(m.Seq, html))
			c.last = m.Seq
			c.mu.Unlock()
			after = m.Seq
			c.s.metrics.Replayed.Inc()
		}
		if len(msgs) < batch {
			return nil
		}
		if err := c.waitDrained(); err != nil {
			return err
		}
	}
}

// waitDrained waits until the queue is empty or the stream ends.
func (c *stream) waitDrained() error {
	for {
		c.mu.Lock()
		empty := len(c.queue) == 0
		c.mu.Unlock()
		if empty {
			return nil
		}
		select {
		case <-c.drained:
		case <-c.ctx.Done():
			return c.ctx.Err()
		}
	}
}

// sendSnapshot replaces the client's log with the room's recent messages,
// in one event whose id is the newest of them.
func (c *stream) sendSnapshot() error {
	msgs, err := c.s.hub.Recent(c.ctx, c.room, c.s.cfg.Snapshot)
	if err != nil {
		return err
	}
	html, err := views.Render(views.LogSnapshot(msgs))
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(msgs) > 0 {
		c.last = max(c.last, msgs[len(msgs)-1].Seq)
	}
	c.push(messageEvent(c.last, html))
	return nil
}

// fail ends the stream after a store error; the client reconnects and
// resumes once the store is back.
func (c *stream) fail(err error) {
	if c.ctx.Err() == nil {
		c.s.metrics.StoreErrors.WithLabelValues("read").Inc()
		c.s.logger.LogAttrs(c.ctx, slog.LevelError, "stream: replay", slog.String("room", c.room), slog.Any("err", err))
	}
	c.end(false)
}

// heartbeat sends a ping when nothing is waiting to be written (a busy
// stream needs none), and comes back after the next interval.
func (c *stream) heartbeat() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ending {
		return
	}
	if len(c.queue) == 0 && c.inflight == 0 {
		c.push(ping)
	}
	c.beat.Reset(c.s.cfg.Heartbeat)
}

// end ends the stream: the context r3labs watches is cancelled, so it
// deregisters the subscriber and returns. A slow client's writes are cut at
// once; otherwise the last write gets endGrace to finish.
func (c *stream) end(slow bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.ending {
		c.ending = true
		for _, t := range []*time.Timer{c.gap, c.beat, c.life} {
			if t != nil {
				t.Stop()
			}
		}
		c.cancel()
		if !slow {
			c.grace = time.AfterFunc(endGrace, c.cut)
		}
	}
	if slow && !c.served && c.w != nil {
		c.w.end()
	}
}

// cut fails the stream's pending and future writes, unless r3labs has
// already returned (the connection may then serve a next request).
func (c *stream) cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.served && c.w != nil {
		c.w.end()
	}
}

// finish runs once r3labs returned: timers stop, and the output is done
// with (outside the lock: a raw stream's last write may take its time, and
// the hub must not wait for it).
func (c *stream) finish() {
	c.end(false)
	c.mu.Lock()
	c.served = true
	if c.grace != nil {
		c.grace.Stop()
	}
	c.mu.Unlock()
	c.w.done()
}

// output is what r3labs writes a stream to: the net/http response
// (streamWriter) or the connection taken over from net/http (rawWriter).
// Both report each event r3labs wrote to the stream (Flush), so a batch of
// events is flushed once.
type output interface {
	http.ResponseWriter
	http.Flusher
	// end fails pending and future writes at once; any goroutine may call it.
	end()
	// done is called once r3labs returned, on the stream's goroutine.
	done()
}

// outputBase is what both outputs share: counting r3labs' flushes into
// written events, so a batch is flushed once, and the write deadline.
type outputBase struct {
	c       *stream
	flushes int // Flush calls so far
	deadline
}

// skipFlush is called at each of r3labs' Flushes: once after its
// WriteHeader, then once after each event it wrote (r3labs v2.10.0's
// ServeHTTP). It tells the stream of each written event and reports true
// while more are in flight: a later event's flush covers this one.
func (o *outputBase) skipFlush() bool {
	o.flushes++
	return o.flushes > 1 && o.c.written()
}

// deadline sets a stream's write deadlines (instead of the server's
// WriteTimeout, which would cut every stream): between ¾ and all of the
// timeout ahead, renewed when a quarter has passed rather than at every
// write, so a write blocked longer than that fails and ends the stream.
// arm runs on the stream's goroutine; end may run on any.
type deadline struct {
	set     func(time.Time) error
	timeout time.Duration
	renew   time.Time // when the deadline is due to be renewed
	ended   atomic.Bool
}

func (d *deadline) arm() {
	if now := time.Now(); now.After(d.renew) {
		_ = d.set(now.Add(d.timeout))
		d.renew = now.Add(d.timeout / 4)
	}
	// end may have run between the check and the set: make sure its past
	// deadline wins.
	if d.ended.Load() {
		_ = d.set(time.Unix(1, 0))
	}
}

// end makes pending and future writes fail at once.
func (d *deadline) end() {
	d.ended.Store(true)
	_ = d.set(time.Unix(1, 0))
}

// streamWriter is the http.ResponseWriter r3labs writes a stream that stays
// with net/http to. It ignores the second WriteHeader r3labs sends.
// Write and Flush run on the handler's goroutine only.
type streamWriter struct {
	w  http.ResponseWriter
	rc *http.ResponseController
	outputBase
}

func newStreamWriter(w http.ResponseWriter, c *stream, timeout time.Duration) *streamWriter {
	rc := http.NewResponseController(w)
	return &streamWriter{w: w, rc: rc, outputBase: outputBase{c: c, deadline: deadline{set: rc.SetWriteDeadline, timeout: timeout}}}
}

func (d *streamWriter) Header() http.Header { return d.w.Header() }

// WriteHeader is a no-op: the headers were written before r3labs ran.
func (d *streamWriter) WriteHeader(int) {}

// Write arms the deadline at every write: net/http's buffers pass a large
// batch on to the connection from within Write.
func (d *streamWriter) Write(p []byte) (int, error) {
	d.arm()
	return d.w.Write(p)
}

func (d *streamWriter) Flush() {
	if !d.skipFlush() {
		_ = d.flush()
	}
}

func (d *streamWriter) flush() error {
	d.arm()
	return d.rc.Flush()
}

// done removes the write deadline, which net/http would keep for the next
// request on this keep-alive connection, unless the stream was cut.
func (d *streamWriter) done() {
	if !d.ended.Load() {
		_ = d.set(time.Time{})
	}
}
