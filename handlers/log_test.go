package handlers

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hxchat/hxchat/chat"
)

// liveLog is an open live log response, read as it arrives.
type liveLog struct {
	resp *http.Response
	got  chan string // chunks read
	text strings.Builder
	done chan error
}

// openLiveLog GETs path and reads its body in the background.
func openLiveLog(t *testing.T, ts string, path string, hdr http.Header) *liveLog {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ts+path, nil)
	for k, v := range hdr {
		req.Header[k] = v
	}
	// No transparent gzip: the test sees what the server sent.
	resp, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	l := &liveLog{resp: resp, got: make(chan string, 1024), done: make(chan error, 1)}
	go func() {
		br := bufio.NewReader(resp.Body)
		buf := make([]byte, 4096)
		for {
			n, err := br.Read(buf)
			if n > 0 {
				l.got <- string(buf[:n])
			}
			if err != nil {
				l.done <- err
				return
			}
		}
	}()
	t.Cleanup(func() { resp.Body.Close() })
	return l
}

// until reads until the body holds want (or, with end, until the body
// ends), failing after streamWait; it returns the whole body so far.
func (l *liveLog) until(t *testing.T, want string) string {
	t.Helper()
	deadline := time.After(streamWait)
	for !strings.Contains(l.text.String(), want) {
		select {
		case s := <-l.got:
			l.text.WriteString(s)
		case err := <-l.done:
			for len(l.got) > 0 {
				l.text.WriteString(<-l.got)
			}
			if !strings.Contains(l.text.String(), want) {
				t.Fatalf("the live log ended (%v) without %q:\n%s", err, want, l.text.String())
			}
		case <-deadline:
			t.Fatalf("the live log has no %q after %v:\n%s", want, streamWait, l.text.String())
		}
	}
	return l.text.String()
}

// ends waits for the body to end and returns it whole.
func (l *liveLog) ends(t *testing.T) string {
	t.Helper()
	deadline := time.After(streamWait)
	for {
		select {
		case s := <-l.got:
			l.text.WriteString(s)
		case err := <-l.done:
			for len(l.got) > 0 {
				l.text.WriteString(<-l.got)
			}
			if err != io.EOF {
				t.Errorf("the live log ended with %v, want a clean end", err)
			}
			return l.text.String()
		case <-deadline:
			t.Fatalf("the live log did not end within %v:\n%s", streamWait, l.text.String())
		}
	}
}

// liveLogUntil opens path's live log on a server of e and reads it until
// it holds want, returned as a recorder (status, headers and the body so
// far) for tests written for pages.
func (e *testEnv) liveLogUntil(t *testing.T, path, want string) *httptest.ResponseRecorder {
	t.Helper()
	ts := e.serve(t)
	l := openLiveLog(t, ts.URL, path, nil)
	w := httptest.NewRecorder()
	for k, v := range l.resp.Header {
		w.Header()[k] = v
	}
	w.Code = l.resp.StatusCode
	w.Body.WriteString(l.until(t, want))
	return w
}

var metaRefresh = regexp.MustCompile(`<meta http-equiv="refresh" content="(\d+)">\s*</body>\s*</html>\s*$`)

// The live log is the recent history, then each new message as it is
// posted, in one document with no scripts and no refresh timer; it ends
// with a refresh element when its lifetime passes.
func TestLiveLog(t *testing.T) {
	e := newEnv(t, func(o *envOptions) { o.stream.Lifetime = 2 * time.Second })
	ts := e.serve(t)
	e.post(t, "lobby", "first")
	e.post(t, "lobby", "<b>second</b>")

	l := openLiveLog(t, ts.URL, "/chat/lobby/log", http.Header{"Accept-Encoding": {"gzip"}})
	if l.resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200", l.resp.StatusCode)
	}
	h := l.resp.Header
	for k, want := range map[string]string{
		"Content-Type":      "text/html; charset=utf-8",
		"Cache-Control":     "no-cache, no-transform",
		"X-Accel-Buffering": "no",
		"Content-Encoding":  "",
		"Content-Length":    "",
		"X-Frame-Options":   "SAMEORIGIN",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("%s %q, want %q", k, got, want)
		}
	}
	// The room page may frame it; other sites may not frame any page.
	if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'self'") {
		t.Errorf("Content-Security-Policy %q, want frame-ancestors 'self'", csp)
	}
	body := l.until(t, "&lt;b&gt;second&lt;/b&gt;")
	for _, want := range []string{`<html lang="en">`, "<title>Messages · lobby · hxchat</title>", `aria-live="polite"`, "first"} {
		if !strings.Contains(body, want) {
			t.Errorf("the live log lacks %q", want)
		}
	}
	if strings.Contains(body, "http-equiv") || scriptTag.MatchString(body) {
		t.Errorf("the open live log has a refresh element or a script:\n%s", body)
	}
	// The person is present while it is open.
	if members, err := e.hub.Members(t.Context(), "lobby"); err != nil || len(members) != 1 {
		t.Errorf("members of lobby while its live log is open: %v, %v; want one", members, err)
	}

	sent := time.Now()
	e.post(t, "lobby", "live one")
	body = l.until(t, "live one")
	t.Logf("posted to shown in the live log: %v", time.Since(sent).Round(time.Millisecond))
	if i, j := strings.Index(body, "second"), strings.Index(body, "live one"); i > j {
		t.Errorf("the new message came before the history")
	}
	if strings.Count(body, `id="msg-3"`) != 1 {
		t.Errorf("message 3 is in the live log %d times, want once", strings.Count(body, `id="msg-3"`))
	}

	// The lifetime ends it with a refresh element, last.
	body = l.ends(t)
	checkPageHygiene(t, body)
	if m := metaRefresh.FindStringSubmatch(body); m == nil || m[1] != "1" {
		t.Errorf("the ended live log does not end with a 1 s refresh element:\n%s", body[max(0, len(body)-300):])
	}
	if strings.Count(body, "http-equiv") != 1 {
		t.Errorf("the live log has %d refresh elements, want one at its end", strings.Count(body, "http-equiv"))
	}
}

// Shutdown (a drain) ends every live log with a refresh element, after
// the SSE retry; a deletion reloads at once (a document without scripts
// cannot replace a message); a store that fails ends it to retry.
func TestLiveLogEnds(t *testing.T) {
	t.Run("Shutdown", func(t *testing.T) {
		e := newEnv(t)
		ts := e.serve(t)
		l := openLiveLog(t, ts.URL, "/chat/lobby/log", nil)
		l.until(t, `aria-label="Messages">`)
		go e.streams.Shutdown()
		body := l.ends(t)
		if m := metaRefresh.FindStringSubmatch(body); m == nil || m[1] < "2" || m[1] > "3" {
			t.Errorf("a drained live log ends with %q, want a refresh after 2–3 s", body[max(0, len(body)-200):])
		}
		// Once shut down, a new one is refused with a retry.
		w := e.get("/chat/lobby/log")
		if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" || !strings.Contains(w.Body.String(), "the server is restarting") || !metaRefresh.MatchString(w.Body.String()) {
			t.Errorf("a live log while shut down: %d %q, want 503 with the reason and a refresh element", w.Code, w.Body.String())
		}
	})
	t.Run("Deletion", func(t *testing.T) {
		e := newEnv(t)
		ts := e.serve(t)
		m := e.post(t, "lobby", "regrettable")
		l := openLiveLog(t, ts.URL, "/chat/lobby/log", nil)
		l.until(t, "regrettable")
		if _, err := e.hub.Delete(t.Context(), "lobby", m.Seq, tester, false); err != nil {
			t.Fatal(err)
		}
		body := l.ends(t)
		if m := metaRefresh.FindStringSubmatch(body); m == nil || m[1] != "0" {
			t.Errorf("after a deletion the live log ends with %q, want an immediate refresh", body[max(0, len(body)-200):])
		}
		if strings.Contains(body, "hx-partial") {
			t.Errorf("the live log wrote an htmx partial it cannot apply")
		}
		if page := e.get("/chat/lobby/").Body.String(); strings.Contains(page, "regrettable") {
			t.Errorf("the reloaded history still has the text")
		}
	})
	t.Run("Head", func(t *testing.T) {
		e := newEnv(t)
		w := e.do(httptest.NewRequest(http.MethodHead, "/chat/lobby/log", nil))
		if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "text/html; charset=utf-8" || w.Body.Len() != 0 {
			t.Errorf("HEAD: %d %q %q", w.Code, w.Header().Get("Content-Type"), w.Body.String())
		}
	})
	t.Run("BadRoom", func(t *testing.T) {
		e := newEnv(t)
		if w := e.get("/chat/a%20b/log"); w.Code != http.StatusBadRequest {
			t.Errorf("GET /chat/a%%20b/log: status %d, want 400", w.Code)
		}
	})
}

// A live log counts against the stream limits like an SSE stream, and a
// refused one is a short document that tries again by itself.
func TestLiveLogLimits(t *testing.T) {
	e := newEnv(t, func(o *envOptions) { o.stream.MaxStreamsPerClient = 1 })
	ts := e.serve(t)
	l := openLiveLog(t, ts.URL, "/chat/lobby/log", nil)
	l.until(t, `aria-label="Messages">`)
	for _, path := range []string{"/chat/lobby/log", "/chat/lobby/events"} {
		resp, err := http.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body := string(b)
		switch path {
		case "/chat/lobby/log":
			if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, "too many open streams from your address") || !metaRefresh.MatchString(body) {
				t.Errorf("a second live log: %d %q, want 503, the reason and a refresh element at the end", resp.StatusCode, body)
			}
		default:
			if !strings.Contains(body, "too many open streams from your address") {
				t.Errorf("an SSE stream beside a live log at the limit: %q, want it refused", body)
			}
		}
	}
}

// TestRoomPageFramesLiveLog: the room page frames the live log inside
// <noscript> only, so browsers with JavaScript never load it.
func TestRoomPageFramesLiveLog(t *testing.T) {
	e := newEnv(t)
	body := e.get("/chat/lobby/").Body.String()
	for _, want := range []string{
		`<noscript><iframe class="log-frame" src="/chat/lobby/log" title="Messages"></iframe></noscript>`,
		`<noscript><link rel="stylesheet" href="/static/noscript.css?v=`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the room page lacks %q", want)
		}
	}
	w := e.get("/static/noscript.css")
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), ".log-scroll") {
		t.Errorf("GET /static/noscript.css: status %d, body %.100q", w.Code, w.Body.String())
	}
	var _ chat.Sink = newFrameSink()
}
