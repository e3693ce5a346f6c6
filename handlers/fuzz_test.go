package handlers

// Fuzz targets for the HTTP layer: cursor parsing, room names through the
// router, and the SSE framing of arbitrary messages through the real stack.
// Seeds live in testdata/fuzz/<FuzzName>/; plain `go test` runs them, and
// `go test -run '^$' -fuzz FuzzSSEFraming ./handlers/` explores. Each target
// builds its server once per process, outside f.Fuzz, so an iteration costs
// a request or two.

import (
	"context"
	"fmt"
	"html"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hxchat/hxchat/chat"
	"github.com/hxchat/hxchat/views"
)

// newFuzzEnv wires the HTTP layer as newEnv does, for a testing.TB: a fuzz
// target's setup has a *testing.F, and the environment must outlive each
// iteration's *testing.T. (If newEnv took a testing.TB, this could go.)
func newFuzzEnv(tb testing.TB, config Config) *testEnv {
	tb.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelDebug}))
	reg := prometheus.NewRegistry()
	metrics := NewMetrics(reg)
	store := chat.NewMemoryStore(0)
	hub := chat.NewHub(store, chat.HubOptions{Render: views.RenderMessage, RenderPresence: views.RenderPresence})
	streams := NewStreams(logger, hub, metrics, StreamConfig{Heartbeat: time.Hour, Retry: 2 * time.Second, WriteTimeout: 5 * time.Second})
	handler := NewServer(Deps{Logger: logger, Hub: hub, Streams: streams, Metrics: metrics, Gatherer: reg, Config: config, Secret: testSecret})
	tb.Cleanup(func() {
		streams.Shutdown()
		_ = store.Close()
	})
	return &testEnv{store: store, hub: hub, streams: streams, metrics: metrics, handler: handler}
}

// cursorModel is the cursor rule written independently of
// chat.ParseCursor: a decimal number of ASCII digits only (no sign, space
// or prefix) that fits an int64, optionally followed by "-" and an epoch of
// 1 to 16 lower-case ASCII letters and digits. Anything else is no cursor.
func cursorModel(v string) (chat.Cursor, bool) {
	seq, epoch, hasEpoch := strings.Cut(v, "-")
	if seq == "" {
		return chat.Cursor{}, false
	}
	for i := 0; i < len(seq); i++ {
		if seq[i] < '0' || seq[i] > '9' {
			return chat.Cursor{}, false
		}
	}
	n, ok := new(big.Int).SetString(seq, 10)
	if !ok || !n.IsInt64() {
		return chat.Cursor{}, false
	}
	if hasEpoch {
		if epoch == "" || len(epoch) > 16 {
			return chat.Cursor{}, false
		}
		for i := 0; i < len(epoch); i++ {
			if c := epoch[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'z') {
				return chat.Cursor{}, false
			}
		}
	}
	return chat.Cursor{Epoch: epoch, Seq: n.Int64()}, true
}

func FuzzCursor(f *testing.F) {
	f.Add("7", "5", "7")
	f.Add("7-9f3a61c0", "5-ab", "x")
	f.Fuzz(func(t *testing.T, v, header, after string) {
		got, ok := chat.ParseCursor(v)
		want, wantOK := cursorModel(v)
		if got != want || ok != wantOK {
			t.Fatalf("ParseCursor(%q) = %v, %v; want %v, %v", v, got, ok, want, wantOK)
		}
		if ok {
			if got.Seq < 0 {
				t.Fatalf("ParseCursor(%q) accepted negative %d", v, got.Seq)
			}
			// The ids the server sends parse back to themselves.
			s := got.String()
			if c, ok := chat.ParseCursor(s); !ok || c != got {
				t.Errorf("ParseCursor(%q) = %v, %v; want %v, true", s, c, ok, got)
			}
		}

		// cursorOf: a valid Last-Event-ID wins; otherwise ?after=; a
		// malformed value counts as absent.
		r := httptest.NewRequest(http.MethodGet, "/chat/lobby/events", nil)
		r.URL.RawQuery = url.Values{"after": {after}}.Encode()
		if header != "" {
			r.Header["Last-Event-Id"] = []string{header}
		}
		got, ok = cursorOf(r)
		want, wantOK = cursorModel(header)
		if !wantOK {
			want, wantOK = cursorModel(after)
		}
		if got != want || ok != wantOK {
			t.Errorf("cursorOf(Last-Event-ID %q, after %q) = %v, %v; want %v, %v", header, after, got, ok, want, wantOK)
		}
	})
}

// FuzzRoomRoute checks that a room name reaches the handlers as itself: a
// name ValidateRoom accepts, escaped as the views escape it, routes to the
// room of that exact name (page and POST); any other name is a 400 that
// says why, and stores nothing.
func FuzzRoomRoute(f *testing.F) {
	e := newFuzzEnv(f, Config{History: 5, MaxBody: 16 << 10})
	var posts atomic.Int64
	f.Add("lobby")
	f.Fuzz(func(t *testing.T, name string) {
		verr := chat.ValidateRoom(name)

		w := e.get(views.RoomURL(name))
		body := html.UnescapeString(w.Body.String())
		if verr == nil {
			if w.Code != http.StatusOK {
				t.Fatalf("GET %s (room %q): status %d, want 200; body %.300q", views.RoomURL(name), name, w.Code, body)
			}
			if want := "<h1>" + html.EscapeString(name) + "</h1>"; !strings.Contains(w.Body.String(), want) {
				t.Errorf("room page of %q lacks %s", name, want)
			}
		} else {
			if w.Code != http.StatusBadRequest {
				t.Fatalf("GET %s (room %q): status %d, want 400", views.RoomURL(name), name, w.Code)
			}
			if reason := chat.Reason(verr); !strings.Contains(body, reason) {
				t.Errorf("GET %s: body lacks the reason %q", views.RoomURL(name), reason)
			}
		}

		text := fmt.Sprintf("fuzz %d", posts.Add(1))
		r := httptest.NewRequest(http.MethodPost, views.PostURL(name), strings.NewReader(messageForm(text)))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("HX-Request", "true")
		w = e.do(r)
		if verr != nil {
			if w.Code != http.StatusBadRequest {
				t.Fatalf("POST %s (room %q): status %d, want 400", views.PostURL(name), name, w.Code)
			}
			return
		}
		if w.Code != http.StatusOK {
			t.Fatalf("POST %s (room %q): status %d, want 200; body %.300q", views.PostURL(name), name, w.Code, w.Body.String())
		}
		msgs, err := e.hub.Recent(t.Context(), name, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) != 1 || msgs[0].Text != text || msgs[0].Room != name {
			t.Errorf("POST to room %q stored %+v, want %q in that room", name, msgs, text)
		}
	})
}

// frame is one block read from the fuzz stream, with whether any line of
// the stream so far ended in CR.
type frame struct {
	ev    sseEvent
	sawCR bool
	err   error
}

// FuzzSSEFraming posts arbitrary text through the real stack (HTTP server,
// handler, hub, memory store) and reads the room's one long-lived stream:
// a text NormalizeText refuses is a 400 that stores nothing; any other is
// stored as NormalizeText says and arrives as one event whose id is its
// seq, whose lines are all "data: " lines without CR, and whose data is
// exactly the rendered fragment, with the text HTML-escaped in it.
func FuzzSSEFraming(f *testing.F) {
	const room = "fuzz"
	// A large body limit: this target checks framing, not the limit (see
	// TestPostLongestMessage for that).
	e := newFuzzEnv(f, Config{History: 5, MaxBody: 1 << 20})
	ts := httptest.NewServer(e.handler)
	ctx, cancel := context.WithCancel(context.Background())
	f.Cleanup(func() {
		cancel()
		e.streams.Shutdown()
		ts.Close()
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+"/chat/"+room+"/events?after=0", nil)
	if err != nil {
		f.Fatal(err)
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		f.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		f.Fatalf("GET events: status %d", resp.StatusCode)
	}
	frames := make(chan frame, 16)
	go func() {
		defer resp.Body.Close()
		rd := newSSEReader(resp.Body)
		for {
			ev, err := rd.next()
			select {
			case frames <- frame{ev, rd.sawCR, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	next := func(tb testing.TB) frame {
		tb.Helper()
		select {
		case fr := <-frames:
			if fr.err != nil {
				tb.Fatalf("reading the stream: %v", fr.err)
			}
			return fr
		case <-time.After(streamWait):
			tb.Fatalf("no event within %v", streamWait)
			return frame{}
		}
	}
	if fr := next(f); fr.ev.Retry == "" {
		f.Fatalf("first block %q has no retry field", fr.ev.Lines)
	}

	f.Add("hello")
	f.Fuzz(func(t *testing.T, text string) {
		body := messageForm(text)
		if int64(len(body)) > 1<<20 {
			t.Skip("body over the limit")
		}
		before, err := e.hub.Recent(t.Context(), room, 1)
		if err != nil {
			t.Fatal(err)
		}
		want, nerr := chat.NormalizeText(text)

		preq, err := http.NewRequestWithContext(t.Context(), http.MethodPost, ts.URL+views.PostURL(room), strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		preq.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		preq.Header.Set("HX-Request", "true")
		presp, err := ts.Client().Do(preq)
		if err != nil {
			t.Fatal(err)
		}
		answer, _ := io.ReadAll(presp.Body)
		presp.Body.Close()

		after, err := e.hub.Recent(t.Context(), room, 1)
		if err != nil {
			t.Fatal(err)
		}
		if nerr != nil {
			if presp.StatusCode != http.StatusBadRequest {
				t.Fatalf("POST %q: status %d, want 400 (%v)", text, presp.StatusCode, nerr)
			}
			if reason, ok := messageError(string(answer)); !ok || reason != chat.Reason(nerr) {
				t.Errorf("POST %q: form reason %q, want %q", text, reason, chat.Reason(nerr))
			}
			if len(after) != len(before) || (len(after) > 0 && after[0].Seq != before[0].Seq) {
				t.Errorf("POST %q was refused but stored %+v", text, after)
			}
			return
		}
		if presp.StatusCode != http.StatusOK {
			t.Fatalf("POST %q: status %d, want 200; body %.300q", text, presp.StatusCode, answer)
		}
		if len(after) != 1 {
			t.Fatalf("POST %q: nothing stored", text)
		}
		m := after[0]
		if len(before) > 0 && m.Seq != before[0].Seq+1 {
			t.Fatalf("stored seq %d after %d, want the next one", m.Seq, before[0].Seq)
		}
		if m.Text != want {
			t.Errorf("stored text %q, want %q", m.Text, want)
		}

		var fr frame
		for fr = next(t); !fr.ev.HasID || fr.ev.isPresence(); fr = next(t) {
			if len(fr.ev.Data) > 0 && !fr.ev.isPresence() {
				t.Fatalf("data without id: %q", fr.ev.Lines)
			}
		}
		ev := fr.ev
		if got, want := ev.RawID, (chat.Cursor{Epoch: m.Epoch, Seq: m.Seq}).String(); got != want {
			t.Fatalf("event id %q, want the seq and epoch %s", got, want)
		}
		if got, want := ev.Lines[0], "id: "+ev.RawID; got != want {
			t.Errorf("first line %q, want %q", got, want)
		}
		for _, l := range ev.Lines[1:] {
			if !strings.HasPrefix(l, "data: ") {
				t.Errorf("line %q is not a \"data: \" line; event %q", l, ev.Lines)
			}
		}
		if fr.sawCR {
			t.Fatalf("a line of the stream ended in CR (event %q)", ev.Lines)
		}
		frag := fragment(t, m)
		if got := ev.data(); got != frag {
			t.Errorf("event data %q, want the rendered fragment %q", got, frag)
		}
		if got, want := len(ev.Data), strings.Count(frag, "\n")+1; got != want {
			t.Errorf("%d data lines, want %d", got, want)
		}
		// The text sits escaped in its span: no markup comes from it.
		span := `<span class="text">` + html.EscapeString(m.Text) + `</span>`
		if !strings.Contains(frag, span) {
			t.Errorf("fragment %q lacks %q", frag, span)
		}
		// Everything else in the fragment is the same as for an empty
		// text: the text adds its escaped form and nothing else.
		bare := m
		bare.Text = ""
		if want := strings.Replace(fragment(t, bare), `<span class="text"></span>`, span, 1); frag != want {
			t.Errorf("fragment %q, want %q", frag, want)
		}
		if !strings.HasPrefix(frag, `<li id="`+views.MessageID(m.Seq)+`"`) {
			t.Errorf("fragment %q does not start with the message's li", frag)
		}
	})
}
