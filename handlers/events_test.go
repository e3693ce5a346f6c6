package handlers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hxchat/hxchat/chat"
)

func TestEventsHeaders(t *testing.T) {
	e := newEnv(t)
	ts := e.serve(t)
	// An explicit Accept-Encoding stops the client from decompressing
	// silently, so a compressed answer would show.
	resp, rd := openStream(t, ts, "/chat/lobby/events?after=0", http.Header{"Accept-Encoding": {"gzip, br"}})
	if got, want := resp.StatusCode, http.StatusOK; got != want {
		t.Fatalf("status %d, want %d", got, want)
	}
	h := resp.Header
	for _, tt := range []struct{ name, want string }{
		{"Content-Type", "text/event-stream"},
		{"Cache-Control", "no-cache, no-transform"},
		{"X-Accel-Buffering", "no"},
		{"Content-Length", ""},
		{"Content-Encoding", ""},
	} {
		if got := h.Get(tt.name); got != tt.want {
			t.Errorf("%s %q, want %q", tt.name, got, tt.want)
		}
	}
	if resp.ContentLength != -1 {
		t.Errorf("ContentLength %d, want -1 (unknown)", resp.ContentLength)
	}
	if resp.Uncompressed {
		t.Errorf("response was compressed")
	}
	first, err := rd.br.Peek(len("retry: "))
	if err != nil {
		t.Fatalf("reading the first bytes: %v", err)
	}
	if got, want := string(first), "retry: "; got != want {
		t.Errorf("stream starts with %q, want %q", got, want)
	}
	ev, err := rd.next()
	if err != nil {
		t.Fatal(err)
	}
	// htmx 4 honours retry: only in a block with data: or event:, and an
	// id: there would move the browser's Last-Event-ID.
	if got, want := ev.Retry, "2000"; got != want {
		t.Errorf("first block's retry %q, want %q (StreamConfig.Retry)", got, want)
	}
	if len(ev.Data) == 0 || ev.HasID {
		t.Errorf("first block %q: want data and no id", ev.Lines)
	}
}

func TestEventsReplay(t *testing.T) {
	tests := []struct {
		name   string
		query  string
		header string // Last-Event-ID; "-" for none
		want   []string
	}{
		{"AfterZero", "after=0", "-", []string{"1", "2", "3"}},
		{"AfterOne", "after=1", "-", []string{"2", "3"}},
		{"HeaderOnly", "", "1", []string{"2", "3"}},
		{"HeaderWins", "after=0", "2", []string{"3"}},
		{"HeaderWinsBackwards", "after=2", "1", []string{"2", "3"}},
		{"BadHeaderFallsBackToAfter", "after=1", "x", []string{"2", "3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			for i := range 3 {
				e.post(t, "lobby", fmt.Sprintf("message %d", i+1))
			}
			stored := e.recent(t, "lobby", 10)
			ts := e.serve(t)
			hdr := http.Header{}
			if tt.header != "-" {
				hdr.Set("Last-Event-ID", tt.header)
			}
			rd := openOK(t, ts, "/chat/lobby/events?"+tt.query, hdr)
			evs := rd.messagesUntil(t, "3")
			if got := ids(evs); !slices.Equal(got, tt.want) {
				t.Fatalf("ids %q, want %q", got, tt.want)
			}
			for _, ev := range evs {
				seq, _ := strconv.Atoi(ev.ID)
				prefix := fmt.Sprintf(`<li id="msg-%d" class="msg" data-author="%s">`, seq, tester.Key)
				if len(ev.Data) == 0 || !strings.HasPrefix(ev.Data[0], prefix) {
					t.Errorf("event %s: data %q, want it to start with %q", ev.ID, ev.Data, prefix)
				}
				if got, want := ev.data(), fragment(t, stored[seq-1]); got != want {
					t.Errorf("event %s: data %q, want %q", ev.ID, got, want)
				}
				if slices.Contains(ev.Fields, "event") {
					t.Errorf("event %s has an event name: %q", ev.ID, ev.Lines)
				}
			}
		})
	}
}

func TestEventsLive(t *testing.T) {
	e := newEnv(t)
	ts := e.serve(t)
	rd := openOK(t, ts, "/chat/lobby/events?after=0", nil)
	for i := 1; i <= 3; i++ {
		postHTTP(t, ts, "lobby", fmt.Sprintf("live %d", i))
		ev := rd.nextMessage(t)
		if got, want := ev.ID, strconv.Itoa(i); got != want {
			t.Fatalf("id %q, want %q", got, want)
		}
		msgs := e.recent(t, "lobby", 1)
		if got, want := ev.data(), fragment(t, msgs[0]); got != want {
			t.Errorf("data %q, want %q", got, want)
		}
	}
	// The stream is counted once it forwards messages.
	if body := e.get("/metrics").Body.String(); !strings.Contains(body, "\nhxchat_streams_open 1\n") {
		t.Errorf("metrics do not count the open stream")
	}
	postHTTP(t, ts, "other", "elsewhere")
	postHTTP(t, ts, "lobby", "live 4")
	if ev := rd.nextMessage(t); ev.ID != "4" || strings.Contains(ev.data(), "elsewhere") {
		t.Errorf("got event %q, want lobby's message 4 only", ev.Lines)
	}
}

// Messages posted while a client connects reach it exactly once, in order.
func TestEventsNoGapsNoDuplicates(t *testing.T) {
	const n = 300
	e := newEnv(t)
	ts := e.serve(t)
	var wg sync.WaitGroup
	wg.Add(1)
	// The client connects while messages are being posted.
	go func() {
		defer wg.Done()
		for i := range n {
			if _, err := e.hub.Post(t.Context(), "lobby", tester, fmt.Sprintf("m%d", i+1)); err != nil {
				t.Errorf("post %d: %v", i+1, err)
				return
			}
		}
	}()
	rd := openOK(t, ts, "/chat/lobby/events?after=0", nil)
	evs := rd.messagesUntil(t, strconv.Itoa(n))
	wg.Wait()
	want := make([]string, n)
	for i := range want {
		want[i] = strconv.Itoa(i + 1)
	}
	if got := ids(evs); !slices.Equal(got, want) {
		t.Errorf("ids %q, want 1..%d once each in order", got, n)
	}
}

// gatedStore holds the first Since call (a stream's replay) until the test
// releases it.
type gatedStore struct {
	chat.Store
	once    sync.Once
	entered chan struct{}
	release chan struct{}
}

func newGatedStore() *gatedStore {
	return &gatedStore{entered: make(chan struct{}), release: make(chan struct{})}
}

// wrap is an envOptions.store.
func (g *gatedStore) wrap(m *chat.MemoryStore) chat.Store { g.Store = m; return g }

func (g *gatedStore) Since(ctx context.Context, room string, after int64, limit int) ([]chat.Message, error) {
	first := false
	g.once.Do(func() { first = true })
	if first {
		close(g.entered)
		select {
		case <-g.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return g.Store.Since(ctx, room, after, limit)
}

// A message both replayed from the store and delivered live (it was posted
// after the stream subscribed but before it read the store) is sent once.
func TestEventsReplayOverlapsLive(t *testing.T) {
	g := newGatedStore()
	e := newEnv(t, func(o *envOptions) { o.store = g.wrap })
	for i := range 3 {
		e.post(t, "lobby", fmt.Sprintf("message %d", i+1))
	}
	ts := e.serve(t)
	rd := openOK(t, ts, "/chat/lobby/events?after=0", nil)
	waitFor(t, streamWait, "the stream's replay", func() { <-g.entered })
	e.post(t, "lobby", "message 4") // queued live and in the store
	e.post(t, "lobby", "message 5")
	close(g.release)
	evs := rd.messagesUntil(t, "5")
	e.post(t, "lobby", "message 6")
	evs = append(evs, rd.messagesUntil(t, "6")...)
	if got, want := ids(evs), []string{"1", "2", "3", "4", "5", "6"}; !slices.Equal(got, want) {
		t.Errorf("ids %q, want %q", got, want)
	}
}

// lateStore hands the room's messages on as a store's feed does after a
// hiccup: the fan-out of seq skip is held back and comes only after its
// successor's (as a duplicate, once the successor is out).
type lateStore struct {
	chat.Store
	skip int64
}

func (l *lateStore) Watch(room string, fn func(chat.Message)) func() {
	var held *chat.Message
	return l.Store.Watch(room, func(m chat.Message) {
		switch {
		case m.Seq == l.skip:
			held = &m
		case held != nil && m.Seq == l.skip+1:
			fn(m)
			fn(*held)
			held = nil
		default:
			fn(m)
		}
	})
}

// A live message that arrives past a gap (its predecessor's fan-out was
// lost or late) makes the stream fill the gap from the store; the late one
// is not sent again.
func TestEventsFillsGaps(t *testing.T) {
	e := newEnv(t, func(o *envOptions) {
		o.store = func(m *chat.MemoryStore) chat.Store { return &lateStore{Store: m, skip: 2} }
	})
	e.post(t, "lobby", "message 1")
	ts := e.serve(t)
	rd := openOK(t, ts, "/chat/lobby/events?after=0", nil)
	if ev := rd.nextMessage(t); ev.ID != "1" {
		t.Fatalf("first id %q, want 1", ev.ID)
	}
	late := e.post(t, "lobby", "message 2") // stored; its fan-out comes after 3's
	e.post(t, "lobby", "message 3")
	evs := rd.messagesUntil(t, "3")
	e.post(t, "lobby", "message 4")
	evs = append(evs, rd.messagesUntil(t, "4")...)
	if got, want := ids(evs), []string{"2", "3", "4"}; !slices.Equal(got, want) {
		t.Errorf("ids %q, want %q", got, want)
	}
	if got, want := evs[0].data(), fragment(t, late); got != want {
		t.Errorf("gap filled with %q, want %q", got, want)
	}
}

func TestEventsBadCursor(t *testing.T) {
	tests := []struct {
		name   string
		query  string
		header string // Last-Event-ID; "-" for none
	}{
		{"NonNumericHeader", "", "abc"},
		{"NonNumericAfter", "after=abc", "-"},
		{"NegativeHeader", "", "-1"},
		{"NegativeAfter", "after=-5", "-"},
		{"HugeHeader", "", "99999999999999999999"},
		{"HugeAfter", "after=99999999999999999999", "-"},
		{"EmptyHeader", "", ""},
		{"EmptyAfter", "after=", "-"},
		{"FractionAfter", "after=1.5", "-"},
		{"BothBad", "after=x", "y"},
		{"None", "", "-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			for i := range 3 {
				e.post(t, "lobby", fmt.Sprintf("message %d", i+1))
			}
			ts := e.serve(t)
			hdr := http.Header{}
			if tt.header != "-" {
				hdr["Last-Event-Id"] = []string{tt.header}
			}
			// A malformed cursor counts as none: live from now on.
			rd := openOK(t, ts, "/chat/lobby/events?"+tt.query, hdr)
			postHTTP(t, ts, "lobby", "after connect")
			if got, want := rd.nextMessage(t).ID, "4"; got != want {
				t.Errorf("first event id %q, want %q", got, want)
			}
		})
	}
}

// DESIGN.md: "a cursor beyond the room's newest seq (the store was reset)
// gets a fresh snapshot of the log". Above all, the stream must not swallow
// every message up to the stale cursor.
func TestEventsCursorBeyondNewest(t *testing.T) {
	tests := []struct {
		name   string
		query  string
		header string
	}{
		{"After", "after=100", ""},
		{"Header", "", "100"},
		{"MaxInt64", "after=9223372036854775807", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			for i := range 3 {
				e.post(t, "lobby", fmt.Sprintf("message %d", i+1))
			}
			ts := e.serve(t)
			hdr := http.Header{}
			if tt.header != "" {
				hdr.Set("Last-Event-ID", tt.header)
			}
			rd := openOK(t, ts, "/chat/lobby/events?"+tt.query, hdr)
			postHTTP(t, ts, "lobby", "after connect")
			evs := rd.messagesUntil(t, "4")
			// The snapshot is read after the stream opened, so it holds
			// 1..3, or 1..4 when the live post was stored first; either
			// way message 4 arrives exactly once.
			if got := ids(evs); !slices.Equal(got, []string{"3", "4"}) && !slices.Equal(got, []string{"4"}) {
				t.Fatalf("ids %q, want a snapshot (id 3 or 4), then live up to 4", got)
			}
			snap := strings.Join(evs[0].Data, "\n")
			for _, want := range []string{`<hx-partial hx-target="#log" hx-swap="innerHTML">`, `id="msg-0-reset"`, `id="msg-1"`, `id="msg-2"`, `id="msg-3"`, "</hx-partial>"} {
				if !strings.Contains(snap, want) {
					t.Errorf("snapshot lacks %s:\n%s", want, snap)
				}
			}
			var all strings.Builder
			for _, ev := range evs {
				all.WriteString(strings.Join(ev.Data, "\n"))
			}
			if n := strings.Count(all.String(), `id="msg-4"`); n != 1 {
				t.Errorf("message 4 arrived %d times, want once", n)
			}
		})
	}
}

func TestEventsMultiline(t *testing.T) {
	const sent = "a\r\nb\rc\nd"
	check := func(t *testing.T, e *testEnv, rd *sseReader) {
		t.Helper()
		ev := rd.nextMessage(t)
		msgs := e.recent(t, "lobby", 1)
		if len(msgs) != 1 || msgs[0].Text != "a\nb\nc\nd" {
			t.Fatalf("stored %+v, want the text with LF line ends", msgs)
		}
		want := fragment(t, msgs[0])
		if got := ev.data(); got != want {
			t.Errorf("reassembled data %q, want %q", got, want)
		}
		if !strings.Contains(ev.data(), "a\nb\nc\nd") {
			t.Errorf("data %q lacks the four lines", ev.data())
		}
		if got, want := len(ev.Data), strings.Count(want, "\n")+1; got != want {
			t.Errorf("%d data lines, want %d: %q", got, want, ev.Lines)
		}
		for _, l := range ev.Lines[1:] {
			if !strings.HasPrefix(l, "data: ") {
				t.Errorf("line %q is not a data line", l)
			}
		}
		if rd.sawCR {
			t.Errorf("the stream has a CR line end; want LF only")
		}
	}
	t.Run("Replayed", func(t *testing.T) {
		e := newEnv(t)
		ts := e.serve(t)
		postHTTP(t, ts, "lobby", sent)
		check(t, e, openOK(t, ts, "/chat/lobby/events?after=0", nil))
	})
	t.Run("Live", func(t *testing.T) {
		e := newEnv(t)
		ts := e.serve(t)
		rd := openOK(t, ts, "/chat/lobby/events?after=0", nil)
		postHTTP(t, ts, "lobby", sent)
		check(t, e, rd)
	})
}

func TestEventsHeartbeat(t *testing.T) {
	e := newEnv(t, func(o *envOptions) { o.stream.Heartbeat = 50 * time.Millisecond })
	ts := e.serve(t)
	rd := openOK(t, ts, "/chat/lobby/events?after=0", nil)
	for {
		ev, err := rd.next()
		if err != nil {
			t.Fatalf("waiting for a heartbeat: %v", err)
		}
		if (ev.HasID || len(ev.Data) > 0) && !ev.isPresence() {
			t.Fatalf("unexpected event %q", ev.Lines)
		}
		if slices.Equal(ev.Lines, []string{": ping"}) {
			return
		}
	}
}

func TestEventsShutdown(t *testing.T) {
	e := newEnv(t)
	ts := e.serve(t)
	e.post(t, "lobby", "before")
	rd := openOK(t, ts, "/chat/lobby/events?after=0", nil)
	if ev := rd.nextMessage(t); ev.ID != "1" {
		t.Fatalf("first event id %q, want 1", ev.ID)
	}
	start := time.Now()
	waitFor(t, 2*time.Second, "Streams.Shutdown", e.streams.Shutdown)
	for {
		ev, err := rd.next()
		if err == nil {
			if ev.HasID && !ev.isPresence() {
				t.Errorf("event %q after shutdown", ev.Lines)
			}
			continue
		}
		if !errors.Is(err, io.EOF) {
			t.Errorf("stream ended with %v, want a clean end (io.EOF)", err)
		}
		break
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("stream took %v to end", d)
	}
	// Refused while draining, in a way htmx keeps retrying: a short event
	// stream whose one block carries the retry with data, and no id.
	resp, rd2 := openStream(t, ts, "/chat/lobby/events?after=0", nil)
	if got, want := resp.StatusCode, http.StatusOK; got != want {
		t.Errorf("after shutdown: status %d, want %d", got, want)
	}
	if got, want := resp.Header.Get("Content-Type"), "text/event-stream"; got != want {
		t.Errorf("after shutdown: Content-Type %q, want %q", got, want)
	}
	if resp.Header.Get("Retry-After") == "" {
		t.Errorf("after shutdown: no Retry-After")
	}
	if ev, err := rd2.next(); err != nil || ev.Retry == "" || len(ev.Data) == 0 || ev.HasID {
		t.Errorf("after shutdown: block %q (%v), want retry and data, no id", ev.Lines, err)
	}
	if _, err := rd2.next(); !errors.Is(err, io.EOF) {
		t.Errorf("after shutdown: the refusal goes on (%v), want its end", err)
	}
	if body := e.get("/metrics").Body.String(); !strings.Contains(body, "\nhxchat_streams_open 0\n") {
		t.Errorf("metrics still count an open stream")
	}
}

// A zero StreamConfig.WriteTimeout must not make every write time out at
// once: zero means the default, as with ReplayBatch.
func TestEventsZeroWriteTimeout(t *testing.T) {
	e := newEnv(t, func(o *envOptions) { o.stream.WriteTimeout = 0 })
	e.post(t, "lobby", "hello")
	ts := e.serve(t)
	rd := openOK(t, ts, "/chat/lobby/events?after=0", nil)
	if got, want := rd.nextMessage(t).ID, "1"; got != want {
		t.Errorf("first id %q, want %q", got, want)
	}
}

func TestEventsBadRoom(t *testing.T) {
	e := newEnv(t)
	for _, target := range []string{"/chat/a%20b/events", "/chat/%2E%2E/events", "/chat/a%2Fb/events"} {
		t.Run(target, func(t *testing.T) {
			w := e.get(target)
			if got, want := w.Code, http.StatusBadRequest; got != want {
				t.Errorf("status %d, want %d", got, want)
			}
			if ct := w.Header().Get("Content-Type"); strings.HasPrefix(ct, "text/event-stream") {
				t.Errorf("Content-Type %q on a refusal", ct)
			}
		})
	}
}

func TestCursorOf(t *testing.T) {
	tests := []struct {
		name   string
		query  string
		header []string // Last-Event-ID values; nil for none
		want   chat.Cursor
		wantOK bool
	}{
		{"None", "", nil, chat.Cursor{}, false},
		{"AfterOnly", "after=7", nil, chat.Cursor{Seq: 7}, true},
		{"AfterWithEpoch", "after=7-0a1b2c3d", nil, chat.Cursor{Epoch: "0a1b2c3d", Seq: 7}, true},
		{"HeaderOnly", "", []string{"5"}, chat.Cursor{Seq: 5}, true},
		{"HeaderWithEpoch", "", []string{"5-0a1b2c3d"}, chat.Cursor{Epoch: "0a1b2c3d", Seq: 5}, true},
		{"HeaderWins", "after=7", []string{"5"}, chat.Cursor{Seq: 5}, true},
		{"HeaderZeroWins", "after=7", []string{"0"}, chat.Cursor{Seq: 0}, true},
		{"BadHeaderFallsBack", "after=7", []string{"x"}, chat.Cursor{Seq: 7}, true},
		{"BadEpochFallsBack", "after=7", []string{"5-NOT/OK"}, chat.Cursor{Seq: 7}, true},
		{"EmptyHeaderFallsBack", "after=7", []string{""}, chat.Cursor{Seq: 7}, true},
		{"NegativeHeaderFallsBack", "after=7", []string{"-3"}, chat.Cursor{Seq: 7}, true},
		{"BadAfter", "after=x", nil, chat.Cursor{}, false},
		{"EmptyAfter", "after=", nil, chat.Cursor{}, false},
		{"BothBad", "after=-1", []string{"y"}, chat.Cursor{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/chat/lobby/events?"+tt.query, nil)
			if tt.header != nil {
				r.Header["Last-Event-Id"] = tt.header
			}
			got, ok := cursorOf(r)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("cursorOf(?%s, Last-Event-ID %q) = %v, %v; want %v, %v", tt.query, tt.header, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

// A cursor older than the retained history gets a notice where the gap is,
// then everything retained, each once.
func TestEventsTrimmedNotice(t *testing.T) {
	e := newEnv(t, func(o *envOptions) { o.retention = 5 })
	for i := range 12 {
		e.post(t, "lobby", fmt.Sprintf("message %d", i+1))
	}
	ts := e.serve(t)
	rd := openOK(t, ts, "/chat/lobby/events?after=2", nil)
	evs := rd.messagesUntil(t, "12")
	if got, want := ids(evs), []string{"7", "8", "9", "10", "11", "12"}; !slices.Equal(got, want) {
		t.Fatalf("ids %q, want %q: a notice at 7 (before msg-8), then 8..12", got, want)
	}
	notice := strings.Join(evs[0].Data, "\n")
	if !strings.Contains(notice, `id="msg-7-trimmed"`) || !strings.Contains(notice, "no longer kept") {
		t.Fatalf("first event is not the trimmed notice: %s", notice)
	}
	// A cursor inside the retained history gets no notice.
	rd2 := openOK(t, ts, "/chat/lobby/events?after=9", nil)
	if got, want := ids(rd2.messagesUntil(t, "12")), []string{"10", "11", "12"}; !slices.Equal(got, want) {
		t.Fatalf("ids %q, want %q", got, want)
	}
}

// A stream ends cleanly after its lifetime; resuming with the last id gets
// what was posted meanwhile, once.
func TestEventsLifetime(t *testing.T) {
	e := newEnv(t, func(o *envOptions) { o.stream.Lifetime = 300 * time.Millisecond })
	ts := e.serve(t)
	rd := openOK(t, ts, "/chat/lobby/events?after=0", nil)
	postHTTP(t, ts, "lobby", "one")
	if got := rd.nextMessage(t).ID; got != "1" {
		t.Fatalf("first id %q, want 1", got)
	}
	start := time.Now()
	for {
		if _, err := rd.next(); err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("stream ended with %v, want a clean end (EOF)", err)
			}
			break
		}
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("stream lived %v past its 300ms lifetime", took)
	}
	postHTTP(t, ts, "lobby", "two")
	rd2 := openOK(t, ts, "/chat/lobby/events", http.Header{"Last-Event-Id": {"1"}})
	if got := rd2.nextMessage(t).ID; got != "2" {
		t.Fatalf("resumed with id %q, want 2", got)
	}
}

// A reconnect far behind is not replayed message by message: ?after=0 on a
// room of 1 200 long messages gets a snapshot of the newest ones (at most
// the replay bound) that ends with the newest message, then goes on live.
func TestEventsReplayBounded(t *testing.T) {
	const n, size = 1200, 1500
	e := newEnv(t, func(o *envOptions) { o.retention = 2 * n })
	text := strings.Repeat("x", size)
	for range n {
		e.post(t, "lobby", text)
	}
	ts := e.serve(t)
	resp, rd := openStream(t, ts, "/chat/lobby/events?after=0", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	msgID := regexp.MustCompile(`<li id="msg-(\d+)" class="msg"`)
	var sent []string // message ids in the order they were sent
	bytes := 0
	for {
		ev, err := rd.next()
		if err != nil {
			t.Fatalf("reading the stream: %v", err)
		}
		bytes += len(strings.Join(ev.Lines, "\n"))
		for _, m := range msgID.FindAllStringSubmatch(ev.data(), -1) {
			sent = append(sent, m[1])
		}
		if ev.ID == strconv.Itoa(n) {
			if !strings.Contains(ev.data(), `hx-target="#log"`) || !strings.Contains(ev.data(), "Earlier messages are not shown") {
				t.Errorf("the catch-up is not a snapshot with a notice: %.300q", ev.data())
			}
			break
		}
	}
	if len(sent) == 0 || len(sent) > chat.DefaultReplayMax {
		t.Fatalf("%d messages sent, want 1 to %d (the bound)", len(sent), chat.DefaultReplayMax)
	}
	if got, want := sent[len(sent)-1], strconv.Itoa(n); got != want {
		t.Errorf("last message sent %s, want the newest, %s", got, want)
	}
	t.Logf("?after=0 on %d messages of %d characters: %d messages, %d bytes", n, size, len(sent), bytes)
	e.post(t, "lobby", "after the snapshot")
	if got, want := rd.nextMessage(t).ID, strconv.Itoa(n+1); got != want {
		t.Errorf("next id %q, want %q (live after the snapshot)", got, want)
	}
	// Within the bound, every missed message is replayed, each once.
	rd2 := openOK(t, ts, fmt.Sprintf("/chat/lobby/events?after=%d", n+1-chat.DefaultReplayMax), nil)
	evs := rd2.messagesUntil(t, strconv.Itoa(n+1))
	if got, want := len(evs), chat.DefaultReplayMax; got != want {
		t.Errorf("%d events replayed within the bound, want %d", got, want)
	}
}

// A cursor of another epoch (the history the client showed is gone) gets a
// snapshot that says so and has the current epoch; a bare seq keeps working.
func TestEventsCursorOfAnotherEpoch(t *testing.T) {
	e := newEnv(t)
	for i := range 3 {
		e.post(t, "lobby", fmt.Sprintf("message %d", i+1))
	}
	epoch := e.recent(t, "lobby", 1)[0].Epoch
	if epoch == "" {
		t.Fatal("stored message has no epoch")
	}
	ts := e.serve(t)
	rd := openOK(t, ts, "/chat/lobby/events", http.Header{"Last-Event-Id": {"2-0000ffff"}})
	ev := rd.nextMessage(t)
	if !strings.Contains(ev.data(), `hx-target="#log"`) || !strings.Contains(ev.data(), "was reset") {
		t.Fatalf("first event is not a reset snapshot: %q", ev.Lines)
	}
	if got, want := ev.RawID, "3-"+epoch; got != want {
		t.Errorf("snapshot id %q, want %q", got, want)
	}
	// The same seq with the right epoch, or none, resumes after it.
	for _, cur := range []string{"2-" + epoch, "2"} {
		rd := openOK(t, ts, "/chat/lobby/events", http.Header{"Last-Event-Id": {cur}})
		if got := rd.nextMessage(t); got.RawID != "3-"+epoch || strings.Contains(got.data(), "hx-partial") {
			t.Errorf("Last-Event-ID %s: first event %q, want message 3", cur, got.Lines)
		}
	}
}
