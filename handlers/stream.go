package handlers

// This file and events.go are the only ones that use r3labs/sse. It is the
// SSE writer, with its measured pitfalls guarded (see DESIGN.md):
//   - one sse.Stream per connection, so one stalled browser only ever stalls
//     its own stream and never the room;
//   - AutoReplay off (it rewrites ids and keeps an unbounded log): replay
//     comes from the store, through the follower;
//   - SplitData on; fragments reach it with LF line ends only (views.Render
//     normalises CR once per fragment), so every line gets its own "data:";
//   - never an event with empty data (it would end the loop): heartbeats are
//     comments, and Offer never passes empty data on;
//   - Last-Event-ID is parsed by the endpoint and removed before r3labs sees
//     it (it answers 400 to an id that is not a number);
//   - the stream is ended by cancelling the request context it watches, and
//     removed only after ServeHTTP returned, so its deregistering goroutine
//     never blocks on a stopped stream (the RemoveStream leak);
//   - we write the headers (with X-Accel-Buffering and no-transform) and the
//     opening retry block ourselves, and send heartbeats, which it does not;
//   - it never blocks a publisher: at most flightWindow events are handed to
//     a stream before r3labs has written them, fewer than its buffers hold,
//     so TryPublish always has room; the follower keeps the rest.

import (
	"context"
	"hash/maphash"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/r3labs/sse/v2"

	"github.com/hxchat/hxchat/chat"
)

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

// endGrace is how long an ending stream may take to finish its last write
// before it is cut.
const endGrace = 200 * time.Millisecond

// ping is the heartbeat, one event shared by every stream.
var ping = &sse.Event{Comment: []byte("ping")}

// framed is an event as r3labs takes it, with the follower's event it was
// made from.
type framed struct {
	src *chat.Event
	ev  *sse.Event
}

// frameSlots is the size of the frame cache: far more than the messages
// in flight at once, so the events of a burst rarely evict each other.
const frameSlots = 1024

// frames caches framed events by the follower's event they were made from.
// A live message's event is one *chat.Event shared by every follower of its
// room, so a message is framed once per fan-out, not once per subscriber
// (r3labs only reads its events), and events offered again later from a
// follower's queue find their frame too. A collision only costs a frame.
type frames struct {
	seed  maphash.Seed
	slots [frameSlots]atomic.Pointer[framed]
}

func newFrames() *frames { return &frames{seed: maphash.MakeSeed()} }

// frame returns ev as r3labs takes it.
func (fs *frames) frame(ev *chat.Event) *sse.Event {
	slot := &fs.slots[maphash.Comparable(fs.seed, ev)%frameSlots]
	if f := slot.Load(); f != nil && f.src == ev {
		return f.ev
	}
	data := ev.HTML
	if len(data) == 0 {
		data = []byte(" ") // an empty data field would end r3labs' loop
	}
	e := &sse.Event{ID: ev.ID, Data: data}
	slot.Store(&framed{src: ev, ev: e})
	return e
}

// newSSEServer returns r3labs' server as hxchat uses it: streams made and
// removed by hand, no replay log, multi-line data split into data lines.
func newSSEServer() *sse.Server {
	srv := sse.New()
	srv.AutoReplay = false
	srv.AutoStream = false
	srv.SplitData = true
	srv.BufferSize = r3labsBuffer
	return srv
}

// stream is one SSE connection: its follower's chat.Sink and the feeder of
// its r3labs stream. It has no goroutine of its own: the follower offers
// events (from the hub's fan-out or its fill), r3labs' loop writes them
// (each written event is reported by the output's Flush, which pumps the
// follower for more), and timers send heartbeats and end it.
type stream struct {
	s       *Streams
	id      string // the r3labs stream's
	room    string
	ctx     context.Context // cancelled when the stream ends
	cancel  context.CancelFunc
	cleanup []func() // run by close, last first

	ready atomic.Bool // r3labs registered the subscriber: events may be handed over
	// inflight counts events handed to r3labs and not yet written. It is
	// raised only after a successful hand-over, so it never exceeds what
	// is really pending: while it is above zero, a later event is sure to
	// be written (and flushed), which is what lets the writer skip a flush.
	inflight atomic.Int32

	f *chat.Follower // set by follow, before the stream starts to serve

	mu     sync.Mutex
	w      output // set when the stream starts to serve
	beat   *time.Timer
	life   *time.Timer
	grace  *time.Timer // cuts a last write that takes too long
	ending bool
	served bool // r3labs returned: the connection is no longer ours to cut
}

var _ chat.Sink = (*stream)(nil)

// Offer implements chat.Sink: the event goes to r3labs while fewer than
// flightWindow are in flight. The follower calls it under its lock, one
// call at a time.
func (c *stream) Offer(ev *chat.Event) bool {
	if !c.ready.Load() || c.inflight.Load() >= flightWindow {
		return false
	}
	return c.publish(c.s.frames.frame(ev))
}

// publish hands ev to r3labs. TryPublish fails when r3labs' buffer is full
// for a moment, or the stream is ending.
func (c *stream) publish(ev *sse.Event) bool {
	if !c.s.srv.TryPublish(c.id, ev) {
		return false
	}
	c.inflight.Add(1)
	return true
}

// End implements chat.Sink: the store could not be read. The stream ends
// and the client resumes once the store is back.
func (c *stream) End(err error) {
	if c.ctx.Err() == nil {
		c.s.metrics.StoreErrors.WithLabelValues("read").Inc()
		c.s.logger.LogAttrs(c.ctx, slog.LevelError, "stream: replay", slog.String("room", c.room), slog.Any("err", err))
	}
	c.end(false)
}

// written is told by the output that r3labs wrote one event: the follower
// may hand over more. It reports whether more are in flight (the output
// then leaves the flush to the last of them).
func (c *stream) written() (more bool) {
	c.inflight.Add(-1)
	c.f.Pump()
	return c.inflight.Load() > 0
}

// subscribed runs once r3labs registered the subscriber: events may flow.
func (c *stream) subscribed() {
	c.ready.Store(true)
	c.f.Pump()
}

// close undoes what newStream, follow and join set up, last first.
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
// before it started (the store failed, or the client left).
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
	if c.s.ctx.Err() != nil {
		c.end(false) // Shutdown began before it was registered
	}
	// Timers, not goroutines: an idle stream costs none.
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
	c.finish()
	c.s.metrics.StreamsOpen.Dec()
	c.close()
}

// jitter returns d less a random part of up to a fifth of d.
func jitter(d time.Duration) time.Duration {
	return d - rand.N(d/5+1)
}

// heartbeat sends a ping when nothing is in flight (a busy stream needs
// none), and comes back after the next interval.
func (c *stream) heartbeat() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ending {
		return
	}
	if c.ready.Load() && c.inflight.Load() == 0 {
		c.publish(ping)
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
		for _, t := range []*time.Timer{c.beat, c.life} {
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
// nobody must wait for it).
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
