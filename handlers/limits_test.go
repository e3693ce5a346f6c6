package handlers

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// slowRate is a post rate so low that no token comes back during a test:
// the burst alone decides, however slow the machine.
const slowRate = 0.001

func withPostRate(perSecond float64, burst int, trusted ...string) func(*envOptions) {
	return func(o *envOptions) {
		o.config.PostRate, o.config.PostBurst = perSecond, burst
		o.config.Trusted = mustPrefixes(trusted...)
	}
}

func mustPrefixes(ss ...string) []netip.Prefix {
	p, err := ParseTrustedProxies(strings.Join(ss, ","))
	if err != nil {
		panic(err)
	}
	return p
}

// postFrom is a form POST of text to room from a peer address, with an
// optional X-Forwarded-For.
func postFrom(room, text string, htmx bool, remote, xff string) *http.Request {
	r := postRequest(room, messageForm(text), htmx)
	r.RemoteAddr = remote
	if xff != "" {
		r.Header.Set("X-Forwarded-For", xff)
	}
	return r
}

// accepted reports whether a post was answered with success (200 for htmx,
// 303 for a plain post).
func accepted(w *httptest.ResponseRecorder) bool {
	return w.Code == http.StatusOK || w.Code == http.StatusSeeOther
}

// checkTooFast checks a 429 answer: Retry-After of at least one second and
// the reason in the form, which keeps the refused text.
func checkTooFast(t *testing.T, w *httptest.ResponseRecorder, text string) {
	t.Helper()
	if got, want := w.Code, http.StatusTooManyRequests; got != want {
		t.Fatalf("status %d, want %d; body %.300q", got, want, w.Body.String())
	}
	if n, err := strconv.Atoi(w.Header().Get("Retry-After")); err != nil || n < 1 {
		t.Errorf("Retry-After %q, want a whole number of seconds ≥ 1", w.Header().Get("Retry-After"))
	}
	body := w.Body.String()
	got, ok := messageError(body)
	if !ok {
		t.Fatalf("no #message-error in the form: %.500q", body)
	}
	if got != tooFast {
		t.Errorf("reason %q, want %q", got, tooFast)
	}
	if m := inputValue.FindStringSubmatch(body); m == nil || m[1] != text {
		t.Errorf("refused form keeps %q, want %q", m, text)
	}
}

func TestPostRateLimit(t *testing.T) {
	for _, htmx := range []bool{true, false} {
		t.Run(map[bool]string{true: "Htmx", false: "Plain"}[htmx], func(t *testing.T) {
			e := newEnv(t, withPostRate(slowRate, 10))
			const peer = "192.0.2.1:1234"
			for i := range 10 {
				if w := e.do(postFrom("lobby", fmt.Sprint("m", i), htmx, peer, "")); !accepted(w) {
					t.Fatalf("post %d within the burst: status %d", i+1, w.Code)
				}
			}
			w := e.do(postFrom("lobby", "one too many", htmx, peer, ""))
			checkTooFast(t, w, "one too many")
			if htmx && strings.Contains(w.Body.String(), "<html") {
				t.Errorf("htmx refusal is a full page, want the form fragment")
			}
			if !htmx && !logElem.MatchString(w.Body.String()) {
				t.Errorf("plain refusal is not the room page")
			}
			if got := len(e.recent(t, "lobby", 50)); got != 10 {
				t.Errorf("stored %d messages, want the 10 accepted only", got)
			}
			if body := e.get("/metrics").Body.String(); !strings.Contains(body, `hxchat_rejected_requests_total{reason="rate"} 1`+"\n") {
				t.Errorf("metrics do not count the refusal as reason=\"rate\"")
			}

			// Another client is not limited meanwhile.
			if w := e.do(postFrom("lobby", "from elsewhere", htmx, "192.0.2.2:1234", "")); !accepted(w) {
				t.Errorf("another address: status %d, want success", w.Code)
			}
		})
	}
}

func TestPostRateLimitedClientNeverBlocksOthers(t *testing.T) {
	e := newEnv(t, withPostRate(slowRate, 2))
	ctx, cancel := context.WithCancel(t.Context())
	// A flooding client: eight goroutines posting from one address until
	// the test ends, all but the first two refused.
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	var mu sync.Mutex
	codes := map[int]int{}
	limited := make(chan struct{})
	var once sync.Once
	for range 8 {
		wg.Go(func() {
			for ctx.Err() == nil {
				w := e.do(postFrom("lobby", "flood", true, "198.51.100.1:1", ""))
				mu.Lock()
				codes[w.Code]++
				mu.Unlock()
				if w.Code == http.StatusTooManyRequests {
					once.Do(func() { close(limited) })
				}
			}
		})
	}
	select {
	case <-limited:
	case <-time.After(streamWait):
		t.Fatal("the flooding client was never limited")
	}
	// Meanwhile, each other client posts its burst, promptly.
	waitFor(t, streamWait, "posts of other clients", func() {
		for i := range 20 {
			for range 2 {
				if w := e.do(postFrom("lobby", "hi", true, fmt.Sprintf("192.0.2.%d:1", i+1), "")); w.Code != http.StatusOK {
					t.Errorf("client %d: status %d, want 200", i+1, w.Code)
				}
			}
		}
	})
	cancel()
	wg.Wait()
	if codes[http.StatusOK] != 2 || codes[http.StatusTooManyRequests] == 0 || len(codes) != 2 {
		t.Errorf("flooding client got %v, want 2×200 and the rest 429", codes)
	}
}

func TestPostRateZeroDisables(t *testing.T) {
	e := newEnv(t, withPostRate(0, 10))
	for i := range 50 {
		if w := e.do(postFrom("lobby", fmt.Sprint("m", i), true, "192.0.2.1:1", "")); w.Code != http.StatusOK {
			t.Fatalf("post %d: status %d, want 200 (no limit)", i+1, w.Code)
		}
	}
}

func TestPostRateForwardedFor(t *testing.T) {
	const proxy = "127.0.0.1:40000"
	t.Run("TrustedProxySeparatesClients", func(t *testing.T) {
		e := newEnv(t, withPostRate(slowRate, 2, "127.0.0.1"))
		for range 2 {
			if w := e.do(postFrom("lobby", "a", true, proxy, "203.0.113.1")); w.Code != http.StatusOK {
				t.Fatalf("client A: status %d", w.Code)
			}
		}
		checkTooFast(t, e.do(postFrom("lobby", "a", true, proxy, "203.0.113.1")), "a")
		// A spoofed entry to the left does not help: the proxy appended A.
		checkTooFast(t, e.do(postFrom("lobby", "a", true, proxy, "198.51.100.9, 203.0.113.1")), "a")
		for range 2 {
			if w := e.do(postFrom("lobby", "b", true, proxy, "203.0.113.2")); w.Code != http.StatusOK {
				t.Fatalf("client B behind the same proxy: status %d, want 200", w.Code)
			}
		}
	})
	t.Run("UntrustedPeerCannotEscape", func(t *testing.T) {
		e := newEnv(t, withPostRate(slowRate, 2, "10.0.0.0/8"))
		const peer = "192.0.2.7:5555"
		for i := range 2 {
			if w := e.do(postFrom("lobby", "x", true, peer, fmt.Sprintf("203.0.113.%d", i+1))); w.Code != http.StatusOK {
				t.Fatalf("post %d: status %d", i+1, w.Code)
			}
		}
		checkTooFast(t, e.do(postFrom("lobby", "x", true, peer, "203.0.113.99")), "x")
		checkTooFast(t, e.do(postFrom("lobby", "x", true, peer, "")), "x")
	})
}

func TestPostTooLargeWithRateLimit(t *testing.T) {
	e := newEnv(t, withPostRate(5, 10))
	for _, htmx := range []bool{true, false} {
		w := e.do(postFrom("lobby", strings.Repeat("a", 40<<10), htmx, "192.0.2.1:1", ""))
		if got, want := w.Code, http.StatusRequestEntityTooLarge; got != want {
			t.Fatalf("htmx %v: status %d, want %d", htmx, got, want)
		}
		if reason, ok := messageError(w.Body.String()); !ok || !strings.Contains(reason, "too long") {
			t.Errorf("htmx %v: reason %q, want one saying the message is too long", htmx, reason)
		}
	}
	if got := len(e.recent(t, "lobby", 10)); got != 0 {
		t.Errorf("stored %d messages, want none", got)
	}
}

// dialStream opens a stream of room as the client xff behind the test
// server's trusted loopback proxy (or directly when xff is empty). It
// returns the response and a func closing it; a 200 holds a stream slot
// until closed.
func dialStream(t *testing.T, ts *httptest.Server, room, xff string) (*http.Response, func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), streamWait)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+"/chat/"+room+"/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET stream as %q: %v", xff, err)
	}
	closeFn := func() {
		cancel()
		resp.Body.Close()
	}
	t.Cleanup(closeFn)
	return resp, closeFn
}

// checkStreamRefused checks a refused stream: what htmx 4 keeps retrying
// (200, an event stream with one block of retry: and data, no id), with
// Retry-After and the reason shown to the person.
func checkStreamRefused(t *testing.T, resp *http.Response, reason string) {
	t.Helper()
	body, _ := io.ReadAll(resp.Body)
	if got, want := resp.StatusCode, http.StatusOK; got != want {
		t.Fatalf("status %d, want %d (a 503 leaves the tab dead); body %q", got, want, body)
	}
	checkStreamHeaders(t, resp.Header)
	if n, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || n < 1 {
		t.Errorf("Retry-After %q, want a whole number of seconds ≥ 1", resp.Header.Get("Retry-After"))
	}
	blocks := sseBlocks(t, string(body))
	if len(blocks) != 1 {
		t.Fatalf("%d blocks, want 1: %q", len(blocks), body)
	}
	in := infoOf(t, blocks[0])
	checkRetryBlock(t, in, time.Second)
	if !strings.Contains(in.data, reason) {
		t.Errorf("data %q, want it to say %q", in.data, reason)
	}
}

// streamAdmitted reports whether a 200 stream response is a stream that was
// admitted rather than refused (refuseStream also answers 200). It reads the
// first block only, which either kind writes at once.
func streamAdmitted(t *testing.T, resp *http.Response) bool {
	t.Helper()
	if resp.StatusCode != http.StatusOK {
		return false
	}
	br := bufio.NewReader(resp.Body)
	var block strings.Builder
	for {
		line, err := br.ReadString('\n')
		block.WriteString(line)
		if err != nil || line == "\n" || line == "\r\n" {
			break
		}
	}
	return !strings.Contains(block.String(), "Live updates paused")
}

func withStreamLimits(perClient, total int, trusted ...string) func(*envOptions) {
	return func(o *envOptions) {
		o.stream.MaxStreamsPerClient, o.stream.MaxStreams = perClient, total
		o.config.Trusted = mustPrefixes(trusted...)
	}
}

func TestStreamLimitPerClient(t *testing.T) {
	e := newEnv(t, withStreamLimits(32, 0, "127.0.0.1"))
	ts := e.serve(t)
	const a = "203.0.113.1"
	for i := range 32 {
		resp, _ := dialStream(t, ts, "lobby", a)
		if !streamAdmitted(t, resp) {
			t.Fatalf("stream %d of A: status %d, not admitted", i+1, resp.StatusCode)
		}
	}
	resp, _ := dialStream(t, ts, "other-room", a)
	checkStreamRefused(t, resp, "too many open streams from your address")
	if resp, _ := dialStream(t, ts, "lobby", "203.0.113.2"); !streamAdmitted(t, resp) {
		t.Errorf("client B while A is at its limit: status %d, not admitted", resp.StatusCode)
	}
	if body := e.get("/metrics").Body.String(); !strings.Contains(body, `hxchat_rejected_requests_total{reason="streams_per_client"} 1`+"\n") {
		t.Errorf("metrics do not count the refusal as reason=\"streams_per_client\"")
	}
}

func TestStreamLimitIgnoresForwardedForFromUntrustedPeer(t *testing.T) {
	e := newEnv(t, withStreamLimits(1, 0)) // no trusted proxy
	ts := e.serve(t)
	if resp, _ := dialStream(t, ts, "lobby", "203.0.113.1"); !streamAdmitted(t, resp) {
		t.Fatalf("first stream: status %d, not admitted", resp.StatusCode)
	}
	resp, _ := dialStream(t, ts, "lobby", "203.0.113.2")
	checkStreamRefused(t, resp, "too many open streams")
}

func TestStreamLimitTotal(t *testing.T) {
	e := newEnv(t, withStreamLimits(0, 3, "127.0.0.1"))
	ts := e.serve(t)
	var closers []func()
	for i := range 3 {
		resp, closeFn := dialStream(t, ts, "lobby", fmt.Sprintf("203.0.113.%d", i+1))
		if !streamAdmitted(t, resp) {
			t.Fatalf("stream %d: status %d, not admitted", i+1, resp.StatusCode)
		}
		closers = append(closers, closeFn)
	}
	resp, _ := dialStream(t, ts, "lobby", "203.0.113.9")
	checkStreamRefused(t, resp, "the server has too many open streams")
	if body := e.get("/metrics").Body.String(); !strings.Contains(body, `hxchat_rejected_requests_total{reason="streams_total"} 1`+"\n") {
		t.Errorf("metrics do not count the refusal as reason=\"streams_total\"")
	}

	// Closing a stream frees its slot once the server saw it go.
	closers[0]()
	deadline := time.Now().Add(streamWait)
	for {
		resp, closeFn := dialStream(t, ts, "lobby", "203.0.113.9")
		if streamAdmitted(t, resp) {
			break
		}
		closeFn()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d, want 200 (admitted or refused)", resp.StatusCode)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the closed stream's slot was not freed within %v", streamWait)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestClientAddr(t *testing.T) {
	trusted := mustPrefixes("127.0.0.1", "10.0.0.0/8", "::1")
	tests := []struct {
		name   string
		remote string
		xff    []string
		want   string // "" is the zero Addr
	}{
		{"IPv4", "192.0.2.1:1234", nil, "192.0.2.1"},
		{"IPv4NoPort", "192.0.2.1", nil, "192.0.2.1"},
		{"IPv6", "[2001:db8::1]:443", nil, "2001:db8::"},
		{"IPv6SameSlash64", "[2001:db8::abcd:1]:443", nil, "2001:db8::"},
		{"IPv6OtherSlash64", "[2001:db8:0:1::1]:443", nil, "2001:db8:0:1::"},
		{"IPv6Bracketed", "[2001:db8::1]", nil, "2001:db8::"},
		{"IPv6Bare", "2001:db8::1", nil, "2001:db8::"},
		{"IPv6Zone", "[fe80::1%eth0]:80", nil, "fe80::"},
		{"IPv4Mapped", "[::ffff:192.0.2.1]:80", nil, "192.0.2.1"},
		{"GarbagePeer", "not an address", nil, ""},
		{"EmptyPeer", "", nil, ""},
		{"UntrustedPeerIgnoresXFF", "192.0.2.1:1", []string{"203.0.113.7"}, "192.0.2.1"},
		{"TrustedPeerNoXFF", "127.0.0.1:1", nil, "127.0.0.1"},
		{"TrustedPeer", "127.0.0.1:1", []string{"203.0.113.7"}, "203.0.113.7"},
		{"TrustedIPv6Peer", "[::1]:1", []string{"203.0.113.7"}, "203.0.113.7"},
		{"RightmostUntrustedWins", "127.0.0.1:1", []string{"198.51.100.1, 203.0.113.7"}, "203.0.113.7"},
		{"SkipsTrustedHops", "127.0.0.1:1", []string{"198.51.100.1,203.0.113.7 ,  10.0.0.2,10.1.2.3"}, "203.0.113.7"},
		{"AllTrusted", "127.0.0.1:1", []string{"10.0.0.2, 10.0.0.3"}, "10.0.0.2"},
		{"SeveralHeaders", "127.0.0.1:1", []string{"198.51.100.1", "203.0.113.7, 10.0.0.3"}, "203.0.113.7"},
		{"SpacesAround", "127.0.0.1:1", []string{"   203.0.113.7   "}, "203.0.113.7"},
		{"XFFWithPort", "127.0.0.1:1", []string{"203.0.113.7:5555"}, "203.0.113.7"},
		{"XFFIPv6", "127.0.0.1:1", []string{"2001:db8::7"}, "2001:db8::"},
		{"XFFIPv6Bracketed", "127.0.0.1:1", []string{"[2001:db8::7]"}, "2001:db8::"},
		{"XFFIPv6BracketedPort", "127.0.0.1:1", []string{"[2001:db8::7]:443"}, "2001:db8::"},
		{"XFFIPv4Mapped", "127.0.0.1:1", []string{"::ffff:203.0.113.7"}, "203.0.113.7"},
		{"GarbageRightmost", "127.0.0.1:1", []string{"203.0.113.7, garbage"}, "127.0.0.1"},
		{"GarbageAfterTrustedHop", "127.0.0.1:1", []string{"198.51.100.1, unknown, 10.0.0.3"}, "10.0.0.3"},
		{"GarbageLeftOfClient", "127.0.0.1:1", []string{"<script>, 203.0.113.7"}, "203.0.113.7"},
		{"EmptyEntry", "127.0.0.1:1", []string{"203.0.113.7,"}, "127.0.0.1"},
		{"EmptyHeader", "127.0.0.1:1", []string{""}, "127.0.0.1"},
		{"Obfuscated", "127.0.0.1:1", []string{"_hidden"}, "127.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = tt.remote
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			got := clientAddr(r, trusted)
			var want netip.Addr
			if tt.want != "" {
				want = netip.MustParseAddr(tt.want)
			}
			if got != want {
				t.Errorf("clientAddr(%q, XFF %q) = %v, want %v", tt.remote, tt.xff, got, want)
			}
		})
	}
}

func TestParseTrustedProxies(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{"", nil, false},
		{" , ", nil, false},
		{"127.0.0.1/32,10.0.0.0/8", []string{"127.0.0.1/32", "10.0.0.0/8"}, false},
		{" 127.0.0.1 , ::1 ", []string{"127.0.0.1/32", "::1/128"}, false},
		{"10.1.2.3/8", []string{"10.0.0.0/8"}, false},
		{"fd00::/8", []string{"fd00::/8"}, false},
		{"::ffff:10.0.0.0/104", []string{"10.0.0.0/8"}, false},
		{"::ffff:10.0.0.1", []string{"10.0.0.1/32"}, false},
		{"10.0.0.0/33", nil, true},
		{"proxy.example", nil, true},
		{"127.0.0.1,nope", nil, true},
		{"::ffff:0:0/90", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseTrustedProxies(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseTrustedProxies(%q) error %v, want error %v", tt.in, err, tt.wantErr)
			}
			var gotS []string
			for _, p := range got {
				gotS = append(gotS, p.String())
			}
			if !slices.Equal(gotS, tt.want) {
				t.Errorf("ParseTrustedProxies(%q) = %q, want %q", tt.in, gotS, tt.want)
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{
		{0, "1"}, {time.Millisecond, "1"}, {200 * time.Millisecond, "1"}, {time.Second, "1"},
		{time.Second + time.Millisecond, "2"}, {2500 * time.Millisecond, "3"}, {1000 * time.Second, "1000"},
	} {
		if got := retryAfter(tt.d); got != tt.want {
			t.Errorf("retryAfter(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

// fakeClock is a postLimiter clock the test moves by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }
func testPostLimiter(rate float64, burst, max int) (*postLimiter, *fakeClock) {
	c := &fakeClock{t: time.Unix(1_000_000, 0)}
	l := newPostLimiter(rate, burst)
	l.now, l.max = c.now, max
	return l, c
}

func addr(i int) netip.Addr { return netip.AddrFrom4([4]byte{192, 0, byte(i >> 8), byte(i)}) }

func TestPostLimiterBucket(t *testing.T) {
	l, c := testPostLimiter(5, 10, 100)
	a := addr(1)
	for i := range 10 {
		if ok, _ := l.allow(a); !ok {
			t.Fatalf("post %d within the burst refused", i+1)
		}
	}
	ok, wait := l.allow(a)
	if ok || wait != 200*time.Millisecond {
		t.Fatalf("11th post: ok %v wait %v, want refused with 200ms to wait", ok, wait)
	}
	// The refusal took no token: 200ms later there is exactly one.
	c.add(200 * time.Millisecond)
	if ok, _ := l.allow(a); !ok {
		t.Fatalf("post after the wait refused")
	}
	if ok, _ := l.allow(a); ok {
		t.Fatalf("second post after one token's wait allowed")
	}
	if ok, _ := l.allow(addr(2)); !ok {
		t.Errorf("another address refused")
	}
	var none *postLimiter // rate 0
	if ok, _ := none.allow(a); !ok {
		t.Errorf("a nil limiter refused")
	}
	if newPostLimiter(0, 10) != nil {
		t.Errorf("newPostLimiter(0, …) is not nil (no limit)")
	}
	zeroBurst := newPostLimiter(5, 0)
	if ok, _ := zeroBurst.allow(a); !ok {
		t.Errorf("burst 0 refuses every post; want it treated as 1")
	}
}

func TestPostLimiterBound(t *testing.T) {
	t.Run("EvictsIdleBucketFirst", func(t *testing.T) {
		l, c := testPostLimiter(5, 10, 3)
		l.allow(addr(2))
		c.add(1500 * time.Millisecond) // 2 has its token back: idle
		for i := range 2 {             // 0 and 1 drain their buckets: busy
			for range 10 {
				l.allow(addr(i))
			}
		}
		if ok, _ := l.allow(addr(3)); !ok {
			t.Fatal("a new address was refused")
		}
		if got := l.size(); got != 3 {
			t.Errorf("size %d, want the bound 3", got)
		}
		for i := range 2 {
			if ok, _ := l.allow(addr(i)); ok {
				t.Errorf("busy client %d lost its bucket, want the idle one evicted", i)
			}
		}
	})
	t.Run("EvictsBusyBucketWhenStillFull", func(t *testing.T) {
		l, _ := testPostLimiter(5, 10, 3)
		for i := range 100 {
			if ok, _ := l.allow(addr(i)); !ok {
				t.Fatalf("a new address was refused")
			}
			if got := l.size(); got > 3 {
				t.Fatalf("size %d, want at most 3", got)
			}
		}
	})
	t.Run("PeriodicSweep", func(t *testing.T) {
		l, c := testPostLimiter(5, 10, 1000)
		for i := range 500 {
			l.allow(addr(i))
		}
		c.add(sweepEvery - time.Millisecond)
		for range 10 {
			l.allow(addr(999)) // busy: drained just before the sweep
		}
		if got := l.size(); got != 501 {
			t.Fatalf("size %d before the sweep, want 501", got)
		}
		c.add(time.Millisecond)
		l.allow(addr(999))
		if got := l.size(); got != 1 {
			t.Errorf("size %d after a sweep, want 1 (only the busy bucket)", got)
		}
	})
	t.Run("DefaultBound", func(t *testing.T) {
		if l := newPostLimiter(5, 10); l.max != maxPostClients || maxPostClients <= 0 {
			t.Errorf("bound %d, want maxPostClients %d", l.max, maxPostClients)
		}
	})
}

func TestStreamLimiter(t *testing.T) {
	l := newStreamLimiter(2, 3)
	a, b, c := addr(1), addr(2), addr(3)
	relA1, ok, _ := l.Acquire(a)
	if !ok {
		t.Fatal("first stream of A refused")
	}
	if _, ok, _ := l.Acquire(a); !ok {
		t.Fatal("second stream of A refused")
	}
	if _, ok, which := l.Acquire(a); ok || which != "streams_per_client" {
		t.Fatalf("third stream of A: ok %v which %q, want refused per client", ok, which)
	}
	if _, ok, _ := l.Acquire(b); !ok {
		t.Fatal("B refused while A is at its limit")
	}
	if _, ok, which := l.Acquire(c); ok || which != "streams_total" {
		t.Fatalf("fourth stream in all: ok %v which %q, want refused in total", ok, which)
	}
	relA1()
	relA1() // a second release frees nothing more
	if _, ok, _ := l.Acquire(c); !ok {
		t.Fatal("C refused after a slot was freed")
	}
	if _, ok, _ := l.Acquire(c); ok {
		t.Fatal("a double release freed two slots")
	}

	// Entries go when their last stream does.
	l = newStreamLimiter(0, 0) // no limits
	var rels []func()
	for i := range 100 {
		rel, ok, _ := l.Acquire(addr(i % 10))
		if !ok {
			t.Fatal("refused without limits")
		}
		rels = append(rels, rel)
	}
	for _, rel := range rels {
		rel()
	}
	if len(l.clients) != 0 || l.open != 0 {
		t.Errorf("after every release: %d clients, %d open; want none", len(l.clients), l.open)
	}
}
