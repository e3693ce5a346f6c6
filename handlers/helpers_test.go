package handlers

import (
	"bufio"
	"context"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hxchat/hxchat/chat"
	"github.com/hxchat/hxchat/views"
)

// streamWait bounds every wait on a stream: a read that would block longer
// fails the test instead of hanging it.
const streamWait = 5 * time.Second

// testEnv is a real hxchat HTTP layer: memory store, hub, streams and the
// router, with a fresh Prometheus registry.
type testEnv struct {
	store   *chat.MemoryStore
	hub     *chat.Hub
	streams *Streams
	metrics *Metrics
	handler http.Handler
}

type envOptions struct {
	config    Config
	stream    StreamConfig
	retention int
	// store, if set, wraps the memory store the hub uses.
	store func(*chat.MemoryStore) chat.Store
	// hub, if set, adjusts the hub's options.
	hub func(*chat.HubOptions)
	// health is pinged by /healthz.
	health Pinger
	// log, if set, receives the server's log (text, Debug level).
	log io.Writer
}

// newEnv wires the HTTP layer as cmd/hxchat does. opts adjust the defaults
// (History 50, MaxBody 32 KiB as -max-body, heartbeat far in the future).
func newEnv(t *testing.T, opts ...func(*envOptions)) *testEnv {
	t.Helper()
	o := envOptions{
		config: Config{History: 50, MaxBody: 32 << 10},
		stream: StreamConfig{Heartbeat: time.Hour, Retry: 2 * time.Second, WriteTimeout: 5 * time.Second},
	}
	for _, f := range opts {
		f(&o)
	}
	// Debug level, so requestLog wraps every writer (streams included) in
	// its statusWriter, as it does in production with -log-level debug.
	var logw io.Writer = io.Discard
	if o.log != nil {
		logw = o.log
	}
	logger := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelDebug}))
	reg := prometheus.NewRegistry()
	metrics := NewMetrics(reg)
	store := chat.NewMemoryStore(o.retention)
	var hubStore chat.Store = store
	if o.store != nil {
		hubStore = o.store(store)
	}
	hubOpts := chat.HubOptions{Render: views.RenderMessage, RenderPresence: views.RenderPresence,
		RenderSnapshot: views.RenderSnapshot, RenderTrimmed: views.RenderTrimmed}
	if o.hub != nil {
		o.hub(&hubOpts)
	}
	hub := chat.NewHub(hubStore, hubOpts)
	streams := NewStreams(logger, hub, metrics, o.stream)
	handler := NewServer(Deps{
		Logger:   logger,
		Hub:      hub,
		Streams:  streams,
		Metrics:  metrics,
		Gatherer: reg,
		Config:   o.config,
		Health:   o.health,
		Secret:   testSecret,
	})
	t.Cleanup(func() {
		streams.Shutdown()
		_ = store.Close()
	})
	return &testEnv{store: store, hub: hub, streams: streams, metrics: metrics, handler: handler}
}

// serve starts a real HTTP server for streaming tests. Open streams are
// ended before the server is closed, so Close never waits on them.
func (e *testEnv) serve(t *testing.T) *httptest.Server {
	t.Helper()
	ts := httptest.NewServer(e.handler)
	t.Cleanup(func() {
		e.streams.Shutdown()
		ts.Close()
	})
	return ts
}

// do serves r with a recorder. The request is bounded by streamWait, so
// a handler that streams by mistake cannot hang the test.
func (e *testEnv) do(r *http.Request) *httptest.ResponseRecorder {
	ctx, cancel := context.WithTimeout(r.Context(), streamWait)
	defer cancel()
	r = r.WithContext(ctx)
	w := httptest.NewRecorder()
	e.handler.ServeHTTP(w, r)
	return w
}

// get serves GET target with a recorder.
func (e *testEnv) get(target string) *httptest.ResponseRecorder {
	return e.do(httptest.NewRequest(http.MethodGet, target, nil))
}

// testSecret signs the identity cookies of the test servers.
var testSecret = []byte("handlers test secret, 32 bytes!!")

// tester is the author of the messages tests post through the hub.
var tester = chat.Author{Name: "tester", Key: "7e57e57e57e5"}

// post stores text in room through the hub, failing the test on error.
func (e *testEnv) post(t *testing.T, room, text string) chat.Message {
	t.Helper()
	m, err := e.hub.Post(t.Context(), room, tester, text)
	if err != nil {
		t.Fatalf("hub.Post(%q, %q): %v", room, text, err)
	}
	return m
}

// recent returns up to n stored messages of room.
func (e *testEnv) recent(t *testing.T, room string, n int) []chat.Message {
	t.Helper()
	msgs, err := e.hub.Recent(t.Context(), room, n)
	if err != nil {
		t.Fatalf("hub.Recent(%q): %v", room, err)
	}
	return msgs
}

// postRequest is a form POST of body (already form-encoded) to room's
// message URL; htmx marks it as an htmx request.
func postRequest(room, body string, htmx bool) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/chat/"+room+"/messages", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if htmx {
		r.Header.Set("HX-Request", "true")
	}
	return r
}

// messageForm form-encodes a message field.
func messageForm(text string) string {
	return url.Values{"message": {text}}.Encode()
}

// postHTTP posts text to room on a real server the way htmx does and fails
// unless it was accepted.
func postHTTP(t *testing.T, ts *httptest.Server, room, text string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), streamWait)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+views.PostURL(room), strings.NewReader(messageForm(text)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("HX-Request", "true")
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatalf("POST %q: %v", text, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %q: status %d, want 200", text, resp.StatusCode)
	}
}

// openStream GETs path on ts with hdr, bounded by streamWait. The caller
// checks the status; the body is closed when the test ends.
func openStream(t *testing.T, ts *httptest.Server, path string, hdr http.Header) (*http.Response, *sseReader) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), streamWait)
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp, newSSEReader(resp.Body)
}

// openOK is openStream that requires a 200 and consumes the leading retry
// block, after which the server has subscribed to the room.
func openOK(t *testing.T, ts *httptest.Server, path string, hdr http.Header) *sseReader {
	t.Helper()
	resp, rd := openStream(t, ts, path, hdr)
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: status %d, want 200; body %q", path, resp.StatusCode, b)
	}
	ev, err := rd.next()
	if err != nil {
		t.Fatalf("GET %s: reading the retry block: %v", path, err)
	}
	if ev.Retry == "" {
		t.Fatalf("GET %s: first block %q has no retry field", path, ev.Lines)
	}
	return rd
}

// sseEvent is one block of an event stream (lines up to a blank line).
type sseEvent struct {
	Lines    []string // raw lines, without terminators
	RawID    string   // the id field as sent: "SEQ-EPOCH"
	ID       string   // its seq part
	Epoch    string   // its epoch part
	HasID    bool
	Data     []string // one per data line
	Comments []string
	Retry    string
	Fields   []string // names of every field seen, in order
}

// data is the event's data as an EventSource reassembles it.
func (e sseEvent) data() string { return strings.Join(e.Data, "\n") }

// sseReader parses text/event-stream as the WHATWG spec says: lines end in
// CRLF, CR or LF; a blank line ends a block.
type sseReader struct {
	br    *bufio.Reader
	sawCR bool // a line ended in CR or CRLF
}

func newSSEReader(r io.Reader) *sseReader { return &sseReader{br: bufio.NewReader(r)} }

func (r *sseReader) line() (string, error) {
	var b strings.Builder
	for {
		c, err := r.br.ReadByte()
		if err != nil {
			if err == io.EOF && b.Len() > 0 {
				return "", io.ErrUnexpectedEOF // a line without terminator
			}
			return "", err
		}
		switch c {
		case '\n':
			return b.String(), nil
		case '\r':
			r.sawCR = true
			if n, err := r.br.Peek(1); err == nil && n[0] == '\n' {
				_, _ = r.br.ReadByte()
			}
			return b.String(), nil
		default:
			b.WriteByte(c)
		}
	}
}

// next returns the next non-empty block. At the clean end of the stream
// it returns io.EOF.
func (r *sseReader) next() (sseEvent, error) {
	var ev sseEvent
	for {
		l, err := r.line()
		if err != nil {
			if err == io.EOF && len(ev.Lines) > 0 {
				err = io.ErrUnexpectedEOF // a block without its blank line
			}
			return ev, err
		}
		if l == "" {
			if len(ev.Lines) == 0 {
				continue
			}
			return ev, nil
		}
		ev.Lines = append(ev.Lines, l)
		if strings.HasPrefix(l, ":") {
			ev.Comments = append(ev.Comments, strings.TrimPrefix(strings.TrimPrefix(l, ":"), " "))
			continue
		}
		name, value, _ := strings.Cut(l, ":")
		value = strings.TrimPrefix(value, " ")
		ev.Fields = append(ev.Fields, name)
		switch name {
		case "id":
			ev.RawID, ev.HasID = value, true
			ev.ID, ev.Epoch, _ = strings.Cut(value, "-")
		case "data":
			ev.Data = append(ev.Data, value)
		case "retry":
			ev.Retry = value
		}
	}
}

// nextMessage returns the next block with an id that is not a presence
// event (a message event), skipping comments and other blocks.
func (r *sseReader) nextMessage(t *testing.T) sseEvent {
	t.Helper()
	for {
		ev, err := r.next()
		if err != nil {
			t.Fatalf("waiting for a message event: %v", err)
		}
		if ev.HasID && !ev.isPresence() {
			return ev
		}
	}
}

// presencePrefix starts the data of every presence event.
const presencePrefix = `<hx-partial hx-target="#presence"`

// isPresence reports whether the block is a presence event (a member list
// for #presence) rather than a message.
func (e sseEvent) isPresence() bool {
	return len(e.Data) > 0 && strings.HasPrefix(e.Data[0], presencePrefix)
}

// messagesUntil reads message events until one has id last, and returns
// them all.
func (r *sseReader) messagesUntil(t *testing.T, last string) []sseEvent {
	t.Helper()
	var out []sseEvent
	for {
		ev := r.nextMessage(t)
		out = append(out, ev)
		if ev.ID == last {
			return out
		}
	}
}

func ids(evs []sseEvent) []string {
	out := make([]string, 0, len(evs))
	for _, ev := range evs {
		out = append(out, ev.ID)
	}
	return out
}

// fragment renders m as the hub sends it.
func fragment(t *testing.T, m chat.Message) string {
	t.Helper()
	b, err := views.RenderMessage(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var (
	scriptTag  = regexp.MustCompile(`(?is)<script\b[^>]*>`)
	styleAttr  = regexp.MustCompile(`(?is)<[a-z][^>]*\sstyle\s*=`)
	styleTag   = regexp.MustCompile(`(?is)<style\b`)
	alertElem  = regexp.MustCompile(`(?s)<p\b[^>]*\brole="alert"[^>]*>(.*?)</p>`)
	sendForm   = regexp.MustCompile(`(?s)<form\b[^>]*\bid="send"[^>]*>.*?</form>`)
	msgError   = regexp.MustCompile(`(?s)<p\b[^>]*\bid="message-error"[^>]*>(.*?)</p>`)
	logElem    = regexp.MustCompile(`(?s)<ul\b[^>]*\bid="log"[^>]*>`)
	inputValue = regexp.MustCompile(`(?s)<input\b[^>]*\bid="message"[^>]*\bvalue="([^"]*)"`)
)

// alertText is the unescaped text of the first role="alert" element, or ""
// with ok false.
func alertText(body string) (string, bool) {
	m := alertElem.FindStringSubmatch(body)
	if m == nil {
		return "", false
	}
	return html.UnescapeString(m[1]), true
}

// messageError is the unescaped text of the message-error element inside
// the message form.
func messageError(body string) (string, bool) {
	form := sendForm.FindString(body)
	if form == "" {
		return "", false
	}
	m := msgError.FindStringSubmatch(form)
	if m == nil {
		return "", false
	}
	return html.UnescapeString(m[1]), true
}

// checkPageHygiene fails when body has an inline script, a style element or
// a style attribute: the CSP forbids them.
func checkPageHygiene(t *testing.T, body string) {
	t.Helper()
	for _, tag := range scriptTag.FindAllString(body, -1) {
		if !strings.Contains(tag, " src=") {
			t.Errorf("inline script tag %q", tag)
		}
	}
	if m := styleAttr.FindString(body); m != "" {
		t.Errorf("style attribute in %q", m)
	}
	if styleTag.MatchString(body) {
		t.Errorf("inline <style> element")
	}
}

// waitFor runs f in a goroutine and fails if it does not return within d.
func waitFor(t *testing.T, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatalf("%s did not return within %v", what, d)
	}
}
