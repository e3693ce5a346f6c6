package handlers

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hxchat/hxchat/chat"
)

// sinceCounter counts the store reads made after messages (Since).
type sinceCounter struct {
	chat.Store
	since atomic.Int64
}

func (s *sinceCounter) Since(ctx context.Context, room string, after int64, limit int) ([]chat.Message, error) {
	s.since.Add(1)
	return s.Store.Since(ctx, room, after, limit)
}

// Racing posts reach a live stream in seq order, once each, without a
// single store read: the order is decided where seqs are assigned.
func TestEventsRacingPostsNoStoreReads(t *testing.T) {
	var cs *sinceCounter
	e := newEnv(t, func(o *envOptions) {
		o.store = func(m *chat.MemoryStore) chat.Store { cs = &sinceCounter{Store: m}; return cs }
	})
	e.post(t, "lobby", "message 1")
	ts := e.serve(t)
	rd := openOK(t, ts, "/chat/lobby/events?after=0", nil)
	if ev := rd.nextMessage(t); ev.ID != "1" {
		t.Fatalf("first id %q, want 1", ev.ID)
	}
	// Message 1 is offered only once the replay ended and the stream is
	// live: from here on, no store read is needed.
	reads := cs.since.Load()
	const posters, each = 8, 25
	var wg sync.WaitGroup
	for range posters {
		wg.Go(func() {
			for range each {
				if _, err := e.hub.Post(t.Context(), "lobby", tester, "racing"); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	last := strconv.Itoa(1 + posters*each)
	evs := rd.messagesUntil(t, last)
	want := make([]string, posters*each)
	for i := range want {
		want[i] = strconv.Itoa(i + 2)
	}
	if got := ids(evs); !slices.Equal(got, want) {
		t.Errorf("ids %q, want 2..%s once each, in order", got, last)
	}
	if got := cs.since.Load() - reads; got != 0 {
		t.Errorf("%d store reads for racing posts, want 0", got)
	}
}

// gatedWriter is a ResponseWriter whose writes can be held, as a socket
// whose client does not read: it counts the flushes that reach it.
type gatedWriter struct {
	header http.Header

	mu      sync.Mutex
	buf     bytes.Buffer
	flushes int
	gate    chan struct{} // while set, writes wait for it to close
	entered chan struct{} // signalled when a write waits
}

func (g *gatedWriter) Header() http.Header { return g.header }
func (g *gatedWriter) WriteHeader(int)     {}

func (g *gatedWriter) Write(p []byte) (int, error) {
	g.mu.Lock()
	gate, entered := g.gate, g.entered
	g.mu.Unlock()
	if gate != nil {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-gate
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.buf.Write(p)
}

func (g *gatedWriter) Flush() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.flushes++
}

func (g *gatedWriter) state() (string, int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.buf.String(), g.flushes
}

// waitFor polls the written stream until it contains s.
func (g *gatedWriter) waitFor(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(streamWait)
	for {
		out, _ := g.state()
		if strings.Contains(out, s) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream never wrote %q; it wrote %q", s, out)
		}
		time.Sleep(time.Millisecond)
	}
}

// Messages that queue up while a client's socket is busy go out with one
// flush, not one each.
func TestEventsFlushOncePerBatch(t *testing.T) {
	e := newEnv(t)
	g := &gatedWriter{header: make(http.Header)}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.handler.ServeHTTP(g, httptest.NewRequestWithContext(ctx, http.MethodGet, "/chat/lobby/events", nil))
	}()
	t.Cleanup(func() { cancel(); <-done })
	g.waitFor(t, "retry:")
	// The member list comes once the stream is caught up: after it, the
	// stream is quiet.
	g.waitFor(t, "presence")

	gate, entered := make(chan struct{}), make(chan struct{}, 1)
	g.mu.Lock()
	g.gate, g.entered = gate, entered
	g.mu.Unlock()
	e.post(t, "lobby", "message 1")
	select {
	case <-entered:
	case <-time.After(streamWait):
		t.Fatal("the stream never wrote message 1")
	}
	const n = 30
	for i := 2; i <= n; i++ {
		e.post(t, "lobby", "message")
	}
	_, before := g.state()
	g.mu.Lock()
	g.gate = nil
	g.mu.Unlock()
	close(gate)
	g.waitFor(t, "id: 30-")
	out, after := g.state()
	if got := strings.Count(out, "\nid: ") + strings.Count(out[:3], "id:"); got < n {
		t.Fatalf("%d events written, want at least %d", got, n)
	}
	// Message 1 was being written when the others queued: its flush and
	// theirs are one.
	if got := after - before; got > 2 {
		t.Errorf("%d flushes for %d queued messages, want at most 2", got, n)
	}
}

// panicOutput is an output whose writes panic.
type panicOutput struct {
	header          http.Header
	ended, finished atomic.Bool
}

func (p *panicOutput) Header() http.Header       { return p.header }
func (p *panicOutput) WriteHeader(int)           {}
func (p *panicOutput) Write([]byte) (int, error) { panic("write exploded") }
func (p *panicOutput) Flush()                    {}
func (p *panicOutput) end()                      { p.ended.Store(true) }
func (p *panicOutput) done()                     { p.finished.Store(true) }

// A panic while a stream is written (on a raw stream's own goroutine,
// which net/http does not guard) ends that stream and nothing else.
func TestStreamRecoversPanic(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(t.Context())
	c := &stream{s: e.streams, id: "no-such-stream", room: "lobby", ctx: ctx, cancel: cancel}
	out := &panicOutput{header: make(http.Header)}
	if !c.start(out) {
		t.Fatal("stream ended before it started")
	}
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/?stream=no-such-stream", nil)
	c.run(out, req) // r3labs answers an unknown stream with an error page: Write panics
	if !out.ended.Load() || !out.finished.Load() {
		t.Errorf("after the panic: writes cut %v, output done %v; want both", out.ended.Load(), out.finished.Load())
	}
	if ctx.Err() == nil {
		t.Error("the stream's context is still live after the panic")
	}
}

// Posts that pile up while a new stream catches up from the store, more of
// them than its queue holds, do not drop it: they are stored, so the
// catch-up reads them too.
func TestEventsCatchUpOutlastsQueue(t *testing.T) {
	g := newGatedStore()
	e := newEnv(t, func(o *envOptions) {
		o.store = g.wrap
		o.hub = func(h *chat.HubOptions) { h.QueueSize = 8 }
	})
	e.post(t, "lobby", "message 1")
	ts := e.serve(t)
	rd := openOK(t, ts, "/chat/lobby/events?after=0", nil)
	waitFor(t, streamWait, "the stream's replay", func() { <-g.entered })
	const n = 30 // more than the queue's 8
	for i := 2; i <= n; i++ {
		e.post(t, "lobby", "message")
	}
	close(g.release)
	evs := rd.messagesUntil(t, "30")
	want := make([]string, n)
	for i := range want {
		want[i] = strconv.Itoa(i + 1)
	}
	if got := ids(evs); !slices.Equal(got, want) {
		t.Errorf("ids %q, want 1..%d once each in order", got, n)
	}
	if got := e.hub.Subscribers("lobby"); got != 1 {
		t.Errorf("%d subscribers after the catch-up, want 1 (not dropped)", got)
	}
}

// staleStore answers the first Since (a stream's first catch-up) from what
// the store held when it was called, but only once the test releases it.
type staleStore struct {
	chat.Store
	once    sync.Once
	entered chan struct{}
	release chan struct{}
}

func (g *staleStore) Since(ctx context.Context, room string, after int64, limit int) ([]chat.Message, error) {
	msgs, err := g.Store.Since(ctx, room, after, limit)
	g.once.Do(func() {
		close(g.entered)
		<-g.release
	})
	return msgs, err
}

// Posts stored (and handed on live) after a stream's first catch-up read
// the store, but before the catch-up ended, are not lost: the stream saw
// them go by and reads on before it goes live.
func TestEventsCatchUpReadsOnPastLiveMessages(t *testing.T) {
	g := &staleStore{entered: make(chan struct{}), release: make(chan struct{})}
	e := newEnv(t, func(o *envOptions) {
		o.store = func(m *chat.MemoryStore) chat.Store { g.Store = m; return g }
	})
	e.post(t, "lobby", "message 1")
	ts := e.serve(t)
	rd := openOK(t, ts, "/chat/lobby/events", http.Header{"Last-Event-Id": {"1"}})
	waitFor(t, streamWait, "the stream's catch-up", func() { <-g.entered })
	// The catch-up read the store before 2 and 3 were stored.
	e.post(t, "lobby", "message 2")
	e.post(t, "lobby", "message 3")
	close(g.release)
	evs := rd.messagesUntil(t, "3")
	if got, want := ids(evs), []string{"2", "3"}; !slices.Equal(got, want) {
		t.Errorf("ids %q, want %q", got, want)
	}
	e.post(t, "lobby", "message 4")
	if got := rd.nextMessage(t).ID; got != "4" {
		t.Errorf("next id %q, want 4", got)
	}
}
