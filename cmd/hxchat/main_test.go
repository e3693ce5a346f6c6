package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// server is a running hxchat started through run, as main does.
type server struct {
	url  string
	stop func() error // cancels run's context and returns run's error

	trOnce sync.Once
	tr     *http.Transport // shared by posts and health checks
}

// start runs hxchat on 127.0.0.1:0 with extra flags and waits for /healthz.
func start(t *testing.T, args ...string) *server {
	t.Helper()
	return startLogging(t, io.Discard, args...)
}

// startLogging is start with the log written to stderr, which must be safe
// for concurrent use.
func startLogging(t *testing.T, stderr io.Writer, args ...string) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	errc := make(chan error, 1)
	go func() {
		err := run(ctx, append([]string{"-addr", "127.0.0.1:0", "-log-level", "warn", "-db", ":memory:",
			// These tests post and connect from one address far faster
			// than a person; the limits have tests of their own.
			"-post-rate", "0", "-max-streams-per-client", "0"}, args...),
			func(string) string { return "" }, pw, stderr)
		pw.Close()
		errc <- err
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		cancel()
		t.Fatalf("reading first line: %v (run: %v)", err, <-errc)
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	const prefix = "hxchat serving on "
	if !strings.HasPrefix(line, prefix) {
		t.Fatalf("first line = %q, want prefix %q", line, prefix)
	}
	s := &server{url: strings.TrimSuffix(strings.TrimSpace(strings.TrimPrefix(line, prefix)), "/")}
	var once sync.Once
	var runErr error
	s.stop = func() error {
		once.Do(func() { cancel(); runErr = <-errc })
		return runErr
	}
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("run: %v", err)
		}
		s.transport().CloseIdleConnections()
	})
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := s.client().Get(s.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz not ready: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// transport returns a transport for s: HTTP/2 over TLS (trusting any
// certificate: the tests use self-signed ones) for https, HTTP/1.1 else.
func (s *server) transport() *http.Transport {
	s.trOnce.Do(func() { s.tr = s.newTransport() })
	return s.tr
}

// newTransport returns a transport of its own, for streams that are
// counted or cut one by one.
func (s *server) newTransport() *http.Transport {
	tr := &http.Transport{DisableCompression: true}
	if strings.HasPrefix(s.url, "https://") {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
		tr.ForceAttemptHTTP2 = true
	}
	return tr
}

func (s *server) client() *http.Client { return &http.Client{Transport: s.transport()} }

// post sends a plain form post and fails the test unless it got 303.
func (s *server) post(t testing.TB, room, text string) {
	t.Helper()
	c := &http.Client{Transport: s.transport(), CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.PostForm(s.url+"/chat/"+url.PathEscape(room)+"/messages", url.Values{"message": {text}})
	if err != nil {
		t.Fatalf("post: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("post %q: status %d, want 303", text, resp.StatusCode)
	}
}

// event is one SSE event.
type event struct {
	id   string
	data string
}

// stream is an SSE client reading events into a channel.
type stream struct {
	resp   *http.Response
	events chan event
	pings  chan struct{}
	done   chan error // receives the read error (io.EOF on a clean end)
	cancel context.CancelFunc
}

type streamOpts struct {
	lastEventID string
	after       string
	rcvbuf      int  // SO_RCVBUF of the client socket, 0: default
	noRead      bool // never read the body
}

func (s *server) open(t testing.TB, room string, o streamOpts) *stream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	u := s.url + "/chat/" + url.PathEscape(room) + "/events"
	if o.after != "" {
		u += "?after=" + o.after
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.lastEventID != "" {
		req.Header.Set("Last-Event-ID", o.lastEventID)
	}
	tr := s.newTransport()
	if o.rcvbuf > 0 {
		d := &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, o.rcvbuf)
			})
			return errors.Join(err, serr)
		}}
		tr.DialContext = d.DialContext
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		cancel()
		t.Fatalf("open stream: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		cancel()
		t.Fatalf("open stream: status %d", resp.StatusCode)
	}
	st := &stream{resp: resp, events: make(chan event, 10000), pings: make(chan struct{}, 100), done: make(chan error, 1), cancel: cancel}
	t.Cleanup(st.close)
	if !o.noRead {
		go st.read()
	}
	return st
}

func (st *stream) close() {
	st.cancel()
	st.resp.Body.Close()
}

// read parses the stream per the SSE rules hxchat relies on.
func (st *stream) read() {
	br := bufio.NewReaderSize(st.resp.Body, 64<<10)
	var ev event
	var data []string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			st.done <- err
			return
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			// Presence events (member lists for #presence) and blocks
			// without an id (the opening retry block) are not messages:
			// skipped.
			if data != nil && ev.id != "" && !strings.HasPrefix(data[0], `<hx-partial hx-target="#presence"`) {
				ev.data = strings.Join(data, "\n")
				st.events <- ev
			}
			ev, data = event{}, nil
		case strings.HasPrefix(line, ":"):
			select {
			case st.pings <- struct{}{}:
			default:
			}
		case strings.HasPrefix(line, "id: "):
			// The seq part of SEQ-EPOCH; the epoch is the same throughout.
			ev.id, _, _ = strings.Cut(strings.TrimPrefix(line, "id: "), "-")
		case strings.HasPrefix(line, "data: "):
			data = append(data, strings.TrimPrefix(line, "data: "))
		}
	}
}

// next waits for the next event.
func (st *stream) next(t testing.TB, within time.Duration) event {
	t.Helper()
	select {
	case ev := <-st.events:
		return ev
	case err := <-st.done:
		t.Fatalf("stream ended: %v", err)
	case <-time.After(within):
		t.Fatalf("no event within %v", within)
	}
	return event{}
}

// none asserts that no event arrives within d.
func (st *stream) none(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case ev := <-st.events:
		t.Fatalf("unexpected event %+v", ev)
	case <-time.After(d):
	}
}

func TestRoomsAreGroups(t *testing.T) {
	s := start(t)
	a1 := s.open(t, "a", streamOpts{})
	a2 := s.open(t, "a", streamOpts{})
	b := s.open(t, "b", streamOpts{})
	s.post(t, "a", "hello a")
	for i, st := range []*stream{a1, a2} {
		ev := st.next(t, 5*time.Second)
		if ev.id != "1" || !strings.Contains(ev.data, "hello a") || !strings.HasPrefix(ev.data, `<li id="msg-1" class="msg" data-author="`) {
			t.Errorf("subscriber %d of a got %+v", i, ev)
		}
	}
	b.none(t, 300*time.Millisecond)
	s.post(t, "b", "hello b")
	if ev := b.next(t, 5*time.Second); ev.id != "1" || !strings.Contains(ev.data, "hello b") {
		t.Errorf("b got %+v, want its own seq 1", ev)
	}
	a1.none(t, 200*time.Millisecond)
}

func TestResumeExactlyOnce(t *testing.T) {
	s := start(t)
	st := s.open(t, "lobby", streamOpts{after: "0"})
	s.post(t, "lobby", "before")
	first := st.next(t, 5*time.Second)
	st.close()
	for i := range 20 {
		s.post(t, "lobby", fmt.Sprintf("missed %d", i))
	}
	// The header wins over a stale ?after=0.
	again := s.open(t, "lobby", streamOpts{lastEventID: first.id, after: "0"})
	for i := range 20 {
		ev := again.next(t, 5*time.Second)
		if want := strconv.Itoa(i + 2); ev.id != want || !strings.Contains(ev.data, fmt.Sprintf("missed %d<", i)) {
			t.Fatalf("event %d = %+v, want id %s with 'missed %d'", i, ev, want, i)
		}
	}
	s.post(t, "lobby", "live")
	if ev := again.next(t, 5*time.Second); ev.id != "22" || !strings.Contains(ev.data, "live") {
		t.Fatalf("live event = %+v, want id 22", ev)
	}
	again.none(t, 300*time.Millisecond)
}

func TestMultilineAndKorean(t *testing.T) {
	s := start(t)
	st := s.open(t, "한국어", streamOpts{after: "0"})
	s.post(t, "한국어", "안녕하세요\r\n둘째 줄\rthird\nfourth")
	ev := st.next(t, 5*time.Second)
	if !strings.Contains(ev.data, "안녕하세요\n둘째 줄\nthird\nfourth") {
		t.Fatalf("data = %q, want the four lines joined by LF", ev.data)
	}
}

// A subscriber that never reads must not delay a healthy one: it falls
// behind (its queue overflows) and is cut off by the write deadline.
func TestSlowSubscriberIsDropped(t *testing.T) {
	if testing.Short() {
		t.Skip("posts 2000 large messages")
	}
	s := start(t, "-write-timeout", "2s")
	slow := s.open(t, "busy", streamOpts{after: "0", rcvbuf: 4096, noRead: true})
	healthy := s.open(t, "busy", streamOpts{after: "0"})
	body := strings.Repeat("x", 1890)
	const n = 2000
	got := make(chan error, 1)
	go func() {
		for i := 1; i <= n; i++ {
			select {
			case ev := <-healthy.events:
				if ev.id != strconv.Itoa(i) {
					got <- fmt.Errorf("event %d has id %s", i, ev.id)
					return
				}
			case err := <-healthy.done:
				got <- fmt.Errorf("healthy stream ended after %d: %v", i-1, err)
				return
			case <-time.After(10 * time.Second):
				got <- fmt.Errorf("healthy stream stalled after %d events", i-1)
				return
			}
		}
		got <- nil
	}()
	for i := range n {
		s.post(t, "busy", fmt.Sprintf("%04d %s", i, body))
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	// The slow one is cut off once a write to it has waited -write-timeout:
	// the healthy one is then the only stream open.
	deadline := time.Now().Add(20 * time.Second)
	for metric(t, s, "hxchat_streams_open") != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the stalled stream is still open after 20 s (-write-timeout 2s)")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Its stream ends once drained, short of all n messages.
	go slow.read()
	count := 0
	timeout := time.After(20 * time.Second)
	for {
		select {
		case <-slow.events:
			count++
			continue
		case err := <-slow.done:
			if count >= n {
				t.Fatalf("slow subscriber got all %d messages; it should have been cut off", count)
			}
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Logf("slow stream ended with %v", err)
			}
			if m := metric(t, s, "hxchat_subscriber_overflows_total"); m < 1 {
				t.Fatalf("hxchat_subscriber_overflows_total = %v, want >= 1", m)
			}
			return
		case <-timeout:
			t.Fatalf("slow subscriber still open after %d events", count)
		}
	}
}

// metric reads one unlabelled metric from /metrics.
func metric(t testing.TB, s *server, name string) float64 {
	t.Helper()
	resp, err := http.Get(s.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

func TestNoGoroutineLeak(t *testing.T) {
	s := start(t, "-heartbeat", "50ms")
	s.post(t, "leak", "one")
	// Warm up the transport and server so pools are at steady state.
	warm := s.open(t, "leak", streamOpts{after: "0"})
	warm.next(t, 5*time.Second)
	warm.close()
	s.transport().CloseIdleConnections()
	base := settledGoroutines(t, -1)
	for i := range 200 {
		st := s.open(t, "leak", streamOpts{after: "0"})
		st.next(t, 5*time.Second)
		if i%2 == 0 {
			s.post(t, "leak", "more")
		}
		st.close()
	}
	s.transport().CloseIdleConnections()
	if got := settledGoroutines(t, base); got > base+2 {
		t.Fatalf("goroutines: %d after 200 cycles, %d before\n%s", got, base, goroutineDump())
	}
	if m := metric(t, s, "hxchat_streams_open"); m != 0 {
		t.Fatalf("hxchat_streams_open = %v, want 0", m)
	}
}

// settledGoroutines polls until the goroutine count stops falling (or
// reaches target+2), for up to 5 s.
func settledGoroutines(t *testing.T, target int) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	last := runtime.NumGoroutine()
	for time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		n := runtime.NumGoroutine()
		if target >= 0 && n <= target+2 {
			return n
		}
		if target < 0 && n == last {
			return n
		}
		last = n
	}
	return runtime.NumGoroutine()
}

func goroutineDump() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}

func TestShutdownEndsStreams(t *testing.T) {
	s := start(t, "-drain-timeout", "5s")
	const n = 100
	streams := make([]*stream, n)
	for i := range streams {
		streams[i] = s.open(t, "room"+strconv.Itoa(i%5), streamOpts{after: "0"})
	}
	begin := time.Now()
	if err := s.stop(); err != nil {
		t.Fatalf("run returned %v", err)
	}
	if took := time.Since(begin); took > 5*time.Second {
		t.Fatalf("shutdown took %v with %d open streams, want < 5s", took, n)
	}
	for i, st := range streams {
		select {
		case <-st.done:
		case <-time.After(5 * time.Second):
			t.Fatalf("stream %d still open after shutdown", i)
		}
	}
}

func TestFlagsAndEnv(t *testing.T) {
	env := map[string]string{"HXCHAT_HEARTBEAT": "3s", "HXCHAT_QUEUE": "9", "HXCHAT_ADDR": "127.0.0.1:1", "HXCHAT_REDIS_URL": "redis://127.0.0.1:1/0", "HXCHAT_DB": "x.db"}
	getenv := func(k string) string { return env[k] }
	o, err := parseFlags([]string{"-queue", "11"}, getenv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.redisURL != "redis://127.0.0.1:1/0" || o.db != "x.db" {
		t.Fatalf("got redis %q db %q; want them from HXCHAT_REDIS_URL and HXCHAT_DB", o.redisURL, o.db)
	}
	if o.heartbeat != 3*time.Second || o.queue != 11 || o.addr != "127.0.0.1:1" {
		t.Fatalf("got heartbeat %v queue %d addr %s; want 3s from env, 11 from flag, addr from env", o.heartbeat, o.queue, o.addr)
	}
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"BadDuration", []string{"-heartbeat", "soon"}, nil},
		{"ZeroHeartbeat", []string{"-heartbeat", "0s"}, nil},
		{"NegativeQueue", []string{"-queue", "-1"}, nil},
		{"BadEnv", nil, map[string]string{"HXCHAT_RETENTION": "lots"}},
		{"ExtraArgs", []string{"serve"}, nil},
		{"BadLogFormat", []string{"-log-format", "xml"}, nil},
		{"DeadRedis", []string{"-redis", "redis://127.0.0.1:1/0"}, nil},
		{"BadRedisURL", []string{"-redis", "http://x"}, nil},
		{"DBInMissingDir", []string{"-db", "/nonexistent/dir/hxchat.db"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := run(t.Context(), tc.args, func(k string) string { return tc.env[k] }, io.Discard, io.Discard)
			if err == nil {
				t.Fatal("run accepted bad configuration")
			}
		})
	}
}
