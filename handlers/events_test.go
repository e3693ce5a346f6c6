package handlers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
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
	if got, want := ev.Lines, []string{"retry: 2000"}; !slices.Equal(got, want) {
		t.Errorf("first block %q, want %q (StreamConfig.Retry)", got, want)
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

// gatedHub holds the first Since call (the stream's replay) until the test
// releases it.
type gatedHub struct {
	*chat.Hub
	once    sync.Once
	entered chan struct{}
	release chan struct{}
}

func (g *gatedHub) Since(ctx context.Context, room string, after int64, limit int) ([]chat.Message, error) {
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
	return g.Hub.Since(ctx, room, after, limit)
}

// A message both replayed from the store and delivered live (it was posted
// after the stream subscribed but before it read the store) is sent once.
func TestEventsReplayOverlapsLive(t *testing.T) {
	g := &gatedHub{entered: make(chan struct{}), release: make(chan struct{})}
	e := newEnv(t, func(o *envOptions) {
		o.subscriber = func(h *chat.Hub) Subscriber { g.Hub = h; return g }
	})
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

// A live message that arrives before an earlier one (its fan-out was late)
// makes the stream fill the gap from the store; the late one is not sent
// again.
func TestEventsFillsGaps(t *testing.T) {
	e := newEnv(t)
	e.post(t, "lobby", "message 1")
	ts := e.serve(t)
	rd := openOK(t, ts, "/chat/lobby/events?after=0", nil)
	if ev := rd.nextMessage(t); ev.ID != "1" {
		t.Fatalf("first id %q, want 1", ev.ID)
	}
	// Message 2 is stored, but its fan-out comes only after message 3's.
	late, err := e.store.Append(t.Context(), chat.Message{Room: "lobby", Author: tester.Name, AuthorKey: tester.Key, Text: "message 2", Time: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	e.post(t, "lobby", "message 3")
	evs := rd.messagesUntil(t, "3")
	e.hub.Publish(late)
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
	resp, _ := openStream(t, ts, "/chat/lobby/events?after=0", nil)
	if got, want := resp.StatusCode, http.StatusServiceUnavailable; got != want {
		t.Errorf("after shutdown: status %d, want %d", got, want)
	}
	if resp.Header.Get("Retry-After") == "" {
		t.Errorf("after shutdown: no Retry-After")
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

func TestParseCursor(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		want   int64
		wantOK bool
	}{
		{"Empty", "", 0, false},
		{"Zero", "0", 0, true},
		{"One", "1", 1, true},
		{"Large", "123456789", 123456789, true},
		{"MaxInt64", "9223372036854775807", 9223372036854775807, true},
		{"Overflow", "9223372036854775808", 0, false},
		{"Negative", "-1", 0, false},
		{"Letters", "abc", 0, false},
		{"Fraction", "1.5", 0, false},
		{"Hex", "0x10", 0, false},
		{"Exponent", "1e3", 0, false},
		{"LeadingSpace", " 1", 0, false},
		{"TrailingJunk", "1a", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseCursor(tt.in)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("parseCursor(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestCursorOf(t *testing.T) {
	tests := []struct {
		name   string
		query  string
		header []string // Last-Event-ID values; nil for none
		want   int64
		wantOK bool
	}{
		{"None", "", nil, 0, false},
		{"AfterOnly", "after=7", nil, 7, true},
		{"HeaderOnly", "", []string{"5"}, 5, true},
		{"HeaderWins", "after=7", []string{"5"}, 5, true},
		{"HeaderZeroWins", "after=7", []string{"0"}, 0, true},
		{"BadHeaderFallsBack", "after=7", []string{"x"}, 7, true},
		{"EmptyHeaderFallsBack", "after=7", []string{""}, 7, true},
		{"NegativeHeaderFallsBack", "after=7", []string{"-3"}, 7, true},
		{"BadAfter", "after=x", nil, 0, false},
		{"EmptyAfter", "after=", nil, 0, false},
		{"BothBad", "after=-1", []string{"y"}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/chat/lobby/events?"+tt.query, nil)
			if tt.header != nil {
				r.Header["Last-Event-Id"] = tt.header
			}
			got, ok := cursorOf(r)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("cursorOf(?%s, Last-Event-ID %q) = %d, %v; want %d, %v", tt.query, tt.header, got, ok, tt.want, tt.wantOK)
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
