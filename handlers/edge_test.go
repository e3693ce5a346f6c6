package handlers

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// counterValue reads a counter.
func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// seriesCount is how many series c has.
func seriesCount(c prometheus.Collector) int {
	ch := make(chan prometheus.Metric, 64)
	go func() { c.Collect(ch); close(ch) }()
	n := 0
	for range ch {
		n++
	}
	return n
}

// TestClientThatLeftIsNoServerError serves requests whose client has gone
// (their context cancelled, as net/http does when the connection closes):
// nothing is logged above Debug, nothing counts as a store error, and each
// is counted in hxchat_requests_cancelled_total under its route.
func TestClientThatLeftIsNoServerError(t *testing.T) {
	var logs syncBuffer
	e := newEnv(t, func(o *envOptions) { o.log = &logs })
	e.post(t, "lobby", "hello")
	form := func(v url.Values) io.Reader { return strings.NewReader(v.Encode()) }
	cases := []struct {
		name, method, target, route string
		body                        io.Reader
		htmx                        bool
		// stream: a live log, which (like an SSE stream) always ends
		// with its client leaving, and is not counted.
		stream bool
	}{
		{"Index", http.MethodGet, "/", "/", nil, false, false},
		{"Rooms", http.MethodGet, "/rooms", "/rooms", nil, false, false},
		{"RoomPage", http.MethodGet, "/chat/lobby/", "/chat/{room}", nil, false, false}, // chi's pattern drops the trailing slash
		{"LogFrame", http.MethodGet, "/chat/lobby/log", "/chat/{room}/log", nil, false, true},
		{"Post", http.MethodPost, "/chat/lobby/messages", "/chat/{room}/messages", form(url.Values{"message": {"hi"}}), false, false},
		{"PostHTMX", http.MethodPost, "/chat/lobby/messages", "/chat/{room}/messages", form(url.Values{"message": {"hi"}}), true, false},
		{"PostBadName", http.MethodPost, "/name", "/name", form(url.Values{"name": {"<b>"}, "next": {"/chat/lobby/"}}), false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := counterValue(t, e.metrics.Cancelled.WithLabelValues(tc.route))
			r := httptest.NewRequest(tc.method, tc.target, tc.body)
			if tc.body != nil {
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			if tc.htmx {
				r.Header.Set("HX-Request", "true")
			}
			ctx, cancel := context.WithCancel(r.Context())
			cancel() // the client left
			e.handler.ServeHTTP(httptest.NewRecorder(), r.WithContext(ctx))
			want := before + 1
			if tc.stream {
				want = before
			}
			if got := counterValue(t, e.metrics.Cancelled.WithLabelValues(tc.route)); got != want {
				t.Errorf("hxchat_requests_cancelled_total{route=%q} = %v, want %v", tc.route, got, want)
			}
		})
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "level=ERROR") || strings.Contains(line, "level=WARN") {
			t.Errorf("a client that left was logged as a fault: %s", line)
		}
	}
	if got := seriesCount(e.metrics.StoreErrors); got != 0 {
		t.Errorf("%d store error series, want none", got)
	}
	if msgs := e.recent(t, "lobby", 10); len(msgs) != 1 {
		t.Errorf("%d messages stored, want the 1 posted before", len(msgs))
	}
}

// rawExchange sends head and body over a fresh connection to ts, then
// (when closeWrite) ends its side of the connection, and returns the
// status line and body of the answer.
func rawExchange(t *testing.T, ts *httptest.Server, head, body string, closeWrite bool) (status int, page string) {
	t.Helper()
	conn, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, head+body); err != nil {
		t.Fatal(err)
	}
	if closeWrite {
		_ = conn.(*net.TCPConn).CloseWrite()
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestBodyTooSlowOrCutShort: a form body that stops arriving answers 408
// once the server's read timeout passes, one cut short 400, for the
// message and the name forms, with and without htmx; nothing is stored and
// nothing counts as a store error.
func TestBodyTooSlowOrCutShort(t *testing.T) {
	e := newEnv(t)
	ts := httptest.NewUnstartedServer(e.handler)
	ts.Config.ReadTimeout = 300 * time.Millisecond
	ts.Start()
	t.Cleanup(ts.Close)

	post := func(path string, htmx bool) string {
		h := "POST " + path + " HTTP/1.1\r\nHost: example.com\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n"
		if htmx {
			h += "HX-Request: true\r\n"
		}
		return h + "\r\n"
	}
	cases := []struct {
		name       string
		head, body string
		cut        bool
		status     int
		reason     string
	}{
		{"MessageSlow", post("/chat/lobby/messages", false), "message=hel", false, http.StatusRequestTimeout, "took too long"},
		{"MessageSlowHTMX", post("/chat/lobby/messages", true), "message=hel", false, http.StatusRequestTimeout, "took too long"},
		{"MessageCut", post("/chat/lobby/messages", false), "message=hel", true, http.StatusBadRequest, "incomplete"},
		{"MessageCutHTMX", post("/chat/lobby/messages", true), "message=hel", true, http.StatusBadRequest, "incomplete"},
		{"NameSlow", post("/name", false), "name=Ann", false, http.StatusRequestTimeout, "took too long"},
		{"NameCut", post("/name", false), "name=Ann", true, http.StatusBadRequest, "incomplete"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, page := rawExchange(t, ts, tc.head, tc.body, tc.cut)
			if status != tc.status {
				t.Errorf("status %d, want %d", status, tc.status)
			}
			if !strings.Contains(page, tc.reason) {
				t.Errorf("answer does not say %q: %.300s", tc.reason, page)
			}
		})
	}
	if msgs := e.recent(t, "lobby", 10); len(msgs) != 0 {
		t.Errorf("%d messages stored, want none", len(msgs))
	}
	if got := seriesCount(e.metrics.StoreErrors); got != 0 {
		t.Errorf("%d store error series, want none", got)
	}
}

// TestSecureCookies: the identity cookie is Secure, with the __Host-
// prefix, when the request came over TLS or from a trusted proxy saying
// https; never on a header from anyone else. Strict-Transport-Security
// goes with it, unless turned off.
func TestSecureCookies(t *testing.T) {
	proxy := netip.MustParsePrefix("192.0.2.1/32") // httptest.NewRequest's RemoteAddr
	year := 365 * 24 * time.Hour
	cases := []struct {
		name    string
		trusted []netip.Prefix
		hsts    time.Duration
		target  string
		header  map[string]string
		secure  bool
		sts     string
	}{
		{"PlainHTTP", nil, year, "http://example.com/", nil, false, ""},
		{"TLS", nil, year, "https://example.com/", nil, true, "max-age=31536000"},
		{"TLSWithoutHSTS", nil, 0, "https://example.com/", nil, true, ""},
		{"TrustedProxyHTTPS", []netip.Prefix{proxy}, year, "http://example.com/", map[string]string{"X-Forwarded-Proto": "https"}, true, "max-age=31536000"},
		{"TrustedProxyForwarded", []netip.Prefix{proxy}, year, "http://example.com/", map[string]string{"Forwarded": `for=198.51.100.7;proto=https`}, true, "max-age=31536000"},
		{"TrustedProxyHTTP", []netip.Prefix{proxy}, year, "http://example.com/", map[string]string{"X-Forwarded-Proto": "http"}, false, ""},
		{"TrustedProxyLastWins", []netip.Prefix{proxy}, year, "http://example.com/", map[string]string{"X-Forwarded-Proto": "https, http"}, false, ""},
		{"UntrustedPeerHTTPS", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, year, "http://example.com/", map[string]string{"X-Forwarded-Proto": "https"}, false, ""},
		{"NoProxiesHTTPS", nil, year, "http://example.com/", map[string]string{"X-Forwarded-Proto": "https"}, false, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(o *envOptions) { o.config.Trusted, o.config.HSTS = tc.trusted, tc.hsts })
			r := httptest.NewRequest(http.MethodGet, tc.target, nil)
			for k, v := range tc.header {
				r.Header.Set(k, v)
			}
			w := e.do(r)
			c := idCookie(w)
			if c == nil {
				t.Fatalf("no identity cookie: %q", w.Header().Values("Set-Cookie"))
			}
			wantName := cookieName
			if tc.secure {
				wantName = secureCookieName
			}
			if c.Secure != tc.secure || c.Name != wantName || c.Path != "/" || c.Domain != "" {
				t.Errorf("cookie %q, want name %s, Secure %v, Path=/, no Domain", w.Header().Get("Set-Cookie"), wantName, tc.secure)
			}
			if got := w.Header().Get("Strict-Transport-Security"); got != tc.sts {
				t.Errorf("Strict-Transport-Security %q, want %q", got, tc.sts)
			}
		})
	}

	t.Run("PlainCookieNotTakenOverTLS", func(t *testing.T) {
		// A plain cookie can be planted (by a subdomain, or over plain
		// HTTP): over TLS it is removed, never taken over.
		e := newEnv(t)
		plain := e.newGuest(t) // issued over plain HTTP
		p := personOf(t, plain)
		r := httptest.NewRequest(http.MethodGet, "https://example.com/", nil)
		r.AddCookie(plain)
		w := e.do(r)
		var got *http.Cookie
		expired := false
		for _, c := range w.Result().Cookies() {
			switch {
			case c.Name == secureCookieName:
				got = c
			case c.Name == cookieName && c.MaxAge < 0:
				expired = true
			}
		}
		if got == nil || !got.Secure {
			t.Fatalf("over TLS with a plain cookie: %q, want a Secure %s cookie", w.Header().Values("Set-Cookie"), secureCookieName)
		}
		if q := personOf(t, got); q.ID == p.ID {
			t.Errorf("the plain cookie's person was taken over TLS: %+v", q)
		}
		if !expired {
			t.Errorf("the plain cookie was not removed: %q", w.Header().Values("Set-Cookie"))
		}
		// The __Host- cookie is read back without a new Set-Cookie.
		r = httptest.NewRequest(http.MethodGet, "https://example.com/", nil)
		r.AddCookie(got)
		if w := e.do(r); len(w.Header().Values("Set-Cookie")) != 0 {
			t.Errorf("a good __Host- cookie got %q, want no Set-Cookie", w.Header().Values("Set-Cookie"))
		}
		// Both sent: the __Host- one counts, the plain one is removed.
		r = httptest.NewRequest(http.MethodGet, "https://example.com/", nil)
		r.AddCookie(plain)
		r.AddCookie(got)
		w = e.do(r)
		if cs := w.Result().Cookies(); len(cs) != 1 || cs[0].Name != cookieName || cs[0].MaxAge >= 0 {
			t.Errorf("with both cookies: %q, want only the plain one removed", w.Header().Values("Set-Cookie"))
		}
	})

	t.Run("NameOverTLS", func(t *testing.T) {
		e := newEnv(t)
		r := httptest.NewRequest(http.MethodPost, "https://example.com/name", strings.NewReader(url.Values{"name": {"Ann"}, "next": {"/"}}.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		w := e.do(r)
		cookies := w.Result().Cookies()
		if w.Code != http.StatusSeeOther || len(cookies) != 1 || cookies[0].Name != secureCookieName || !cookies[0].Secure {
			t.Fatalf("POST /name over TLS: %d %q, want 303 and one Secure %s cookie", w.Code, w.Header().Values("Set-Cookie"), secureCookieName)
		}
		if p := personOf(t, cookies[0]); p.Name != "Ann" {
			t.Errorf("name %q, want Ann", p.Name)
		}
	})
}

// TestSlowUploadOverHTTP2 posts a body that takes longer than the write
// timeout to arrive, over HTTP/2 (h2c): it is stored and answered, because
// the write deadline starts with the response. Over HTTP/2 a deadline that
// passes resets the stream, so one armed when the request came in would cut
// uploads the read timeout allows.
func TestSlowUploadOverHTTP2(t *testing.T) {
	const writeTimeout = 300 * time.Millisecond
	e := newEnv(t, func(o *envOptions) { o.config.WriteTimeout = writeTimeout })
	ts := httptest.NewUnstartedServer(e.handler)
	ts.Config.Protocols = new(http.Protocols)
	ts.Config.Protocols.SetUnencryptedHTTP2(true)
	ts.Config.Protocols.SetHTTP1(true)
	ts.Start()
	t.Cleanup(ts.Close)
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	pr, pw := io.Pipe()
	go func() {
		for _, part := range []string{"mess", "age=sl", "ow up", "load"} {
			time.Sleep(writeTimeout / 2)
			if _, err := io.WriteString(pw, part); err != nil {
				return
			}
		}
		pw.Close()
	}()
	req, err := http.NewRequest(http.MethodPost, ts.URL+"/chat/lobby/messages", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("slow upload over HTTP/2 (%s): %v", time.Since(start).Round(time.Millisecond), err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("%s %d, want HTTP/2 and 303", resp.Proto, resp.StatusCode)
	}
	if took := time.Since(start); took < writeTimeout {
		t.Fatalf("the upload took %s, less than the write timeout %s: the test proves nothing", took, writeTimeout)
	}
	if msgs := e.recent(t, "lobby", 10); len(msgs) != 1 || msgs[0].Text != "slow upload" {
		t.Errorf("stored %+v, want the slow upload", msgs)
	}
}

// TestStaticRangeIgnored: static files are answered whole, whatever Range
// asks (RFC 9110 lets a server ignore it): no 206 whose Content-Range
// describes bytes a compressed body does not carry, no multipart answer
// many times the size of a small request, no 416.
func TestStaticRangeIgnored(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct{ name, rng, enc string }{
		{"Garbage", "bytes=a-b", ""},
		{"PastEnd", "bytes=99999999-", ""},
		{"ManyRanges", "bytes=" + strings.Repeat("0-0,", 2000) + "0-0", ""},
		{"Compressed", "bytes=0-10", "gzip"},
		{"Plain", "bytes=0-10", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/static/app.css", nil)
			r.Header.Set("Range", tc.rng)
			if tc.enc != "" {
				r.Header.Set("Accept-Encoding", tc.enc)
			}
			w := e.do(r)
			if w.Code != http.StatusOK || w.Header().Get("Content-Range") != "" || strings.Contains(w.Header().Get("Content-Type"), "multipart") {
				t.Fatalf("%d, Content-Range %q, Content-Type %q; want 200, the whole file", w.Code, w.Header().Get("Content-Range"), w.Header().Get("Content-Type"))
			}
			if tc.enc == "" && !strings.Contains(w.Body.String(), "--") { // app.css holds custom properties
				t.Errorf("body is not app.css: %.100q", w.Body.String())
			}
		})
	}
}

// TestCompressionHonoursQZero: a coding with q=0 is refused by the client
// (RFC 9110 12.5.3) and never used; names are matched whole.
func TestCompressionHonoursQZero(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		accept string
		gzip   bool
	}{
		{"gzip", true},
		{"gzip;q=0.5, identity", true},
		{"GZIP", true},
		{"gzip;q=0", false},
		{"gzip; q=0.000", false},
		{"identity, gzip;q=0", false},
		{"xgzip", false},
		{"gzip;q=abc", false},
		{"", false},
	} {
		t.Run(tc.accept, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			if tc.accept != "" {
				r.Header.Set("Accept-Encoding", tc.accept)
			}
			w := e.do(r)
			if got := w.Header().Get("Content-Encoding") == "gzip"; got != tc.gzip {
				t.Errorf("Accept-Encoding %q: Content-Encoding %q, want gzip %v", tc.accept, w.Header().Get("Content-Encoding"), tc.gzip)
			}
		})
	}
}

// TestOversizeBodyRefusedUpFront: a body declared larger than -max-body is
// refused before it is sent: no "100 Continue", the 413 at once.
func TestOversizeBodyRefusedUpFront(t *testing.T) {
	e := newEnv(t)
	ts := e.serve(t)
	head := "POST /chat/lobby/messages HTTP/1.1\r\nHost: example.com\r\nContent-Type: application/x-www-form-urlencoded\r\n" +
		"Content-Length: 10000000\r\nExpect: 100-continue\r\n\r\n"
	status, page := rawExchange(t, ts, head, "", false)
	if status != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413 before the body (a 100 Continue invites it)", status)
	}
	if !strings.Contains(page, "far too long") {
		t.Errorf("answer does not say why: %.200s", page)
	}
}
