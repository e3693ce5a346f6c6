package e2e

// hxchat through real proxies (Debian 12's nginx, haproxy and squid), each
// started here on 127.0.0.1 with its idle timeouts shortened to proxyIdle,
// while hxchat sends a heartbeat every second (startServer). nginx and
// haproxy run the reference configurations in docs/ themselves, their
// {{PLACEHOLDERS}} filled in; nginx runs them inside Debian's stock
// nginx.conf. See docs/proxies.md.

import (
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	// proxyIdle is every proxy's idle timeout in these tests: 3x hxchat's
	// heartbeat, as the docs recommend.
	proxyIdle = 3 * time.Second
	// deliverWithin is how soon a message posted through a proxy must reach
	// a stream through it.
	deliverWithin = time.Second
	// holdBack is the most the median post-to-event time may be: above it,
	// the proxy is delaying events on purpose (Nagle-like merging).
	holdBack = 150 * time.Millisecond
)

// TestProxy runs the same checks through each proxy, the proxies in
// parallel.
func TestProxy(t *testing.T) {
	t.Parallel()
	proxies := []struct {
		name  string
		start func(t *testing.T, hxchat *server) *viaProxy
	}{
		{"nginx", func(t *testing.T, hx *server) *viaProxy {
			base := startNginx(t, func(listen string) string {
				return docConfig(t, "nginx.conf", map[string]string{
					"LISTEN":   listen,
					"UPSTREAM": strings.TrimPrefix(hx.URL, "http://"),
					"TIMEOUT":  fmt.Sprintf("%dms", proxyIdle.Milliseconds()),
				})
			})
			return &viaProxy{name: "nginx", base: base, client: proxyClient(t, nil)}
		}},
		// Debian's defaults with a bare proxy_pass: only hxchat's
		// X-Accel-Buffering keeps the stream unbuffered (as README says).
		{"nginx-stock", func(t *testing.T, hx *server) *viaProxy {
			base := startNginx(t, func(listen string) string {
				return strings.NewReplacer(
					"{{LISTEN}}", listen,
					"{{UPSTREAM}}", strings.TrimPrefix(hx.URL, "http://"),
					"{{TIMEOUT}}", fmt.Sprintf("%dms", proxyIdle.Milliseconds()),
				).Replace(stockNginxSite)
			})
			return &viaProxy{name: "nginx-stock", base: base, client: proxyClient(t, nil)}
		}},
		{"haproxy", func(t *testing.T, hx *server) *viaProxy {
			base := startHAProxy(t, strings.TrimPrefix(hx.URL, "http://"), proxyIdle)
			return &viaProxy{name: "haproxy", base: base, client: proxyClient(t, nil)}
		}},
		{"squid", func(t *testing.T, hx *server) *viaProxy {
			u := startSquid(t, strings.TrimPrefix(hx.URL, "http://"), proxyIdle)
			return &viaProxy{name: "squid", base: hx.URL, client: proxyClient(t, u)}
		}},
	}
	for _, p := range proxies {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			v := p.start(t, startServer(t))
			t.Run("Deliver", func(t *testing.T) { testProxyDeliver(t, v) })
			t.Run("Resume", func(t *testing.T) { testProxyResume(t, v) })
			t.Run("Idle", func(t *testing.T) { testProxyIdle(t, v) })
			t.Run("LiveLog", func(t *testing.T) { testProxyLiveLog(t, v) })
		})
	}
}

// testProxyDeliver: a message posted through the proxy reaches a stream
// through the proxy within deliverWithin, every time.
func testProxyDeliver(t *testing.T, v *viaProxy) {
	s := v.events(t, "deliver", "")
	var took []time.Duration
	for i := 1; i <= 5; i++ {
		text := "hello " + strconv.Itoa(i)
		start := time.Now()
		v.post(t, "deliver", text)
		ev := s.Next(t, 5*time.Second)
		d := time.Since(start)
		if ev.Seq != int64(i) || textOf(ev.Data) != text {
			t.Fatalf("event %d through %s = id %q text %q, want id %d text %q", i, v.name, ev.ID, textOf(ev.Data), i, text)
		}
		if d > deliverWithin {
			t.Errorf("message %d took %v from post to stream through %s, want at most %v", i, d, v.name, deliverWithin)
		}
		took = append(took, d.Round(time.Millisecond))
	}
	t.Logf("through %s, post to event: %v", v.name, took)
	// On loopback it takes a millisecond or two. haproxy without option
	// http-no-delay holds each event back some 200 ms: well within a
	// second, but a sign the reference config lost that option.
	slices.Sort(took)
	if median := took[len(took)/2]; median > holdBack {
		t.Errorf("median post-to-event time through %s is %v, over %v: the proxy holds events back", v.name, median, holdBack)
	}
}

// testProxyLiveLog: the no-JavaScript live log through the proxy is live:
// each message posted through the proxy arrives in the open document
// within deliverWithin, once, as a browser asking for gzip would get it.
func testProxyLiveLog(t *testing.T, v *viaProxy) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.roomURL("frame")+"log", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/html")
	req.Header.Set("Accept-Encoding", "gzip, deflate, br")
	resp, err := v.client.Do(req)
	if err != nil {
		t.Fatalf("live log through %s: %v", v.name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("live log through %s: status %d, want 200", v.name, resp.StatusCode)
	}
	// hxchat never compresses it, but nginx's stock gzip on compresses
	// every text/html (no-transform notwithstanding): with buffering off
	// it flushes each piece, so the document stays live.
	var r io.Reader = resp.Body
	if enc := resp.Header.Get("Content-Encoding"); enc != "" {
		t.Logf("through %s the live log arrives with Content-Encoding %s", v.name, enc)
		if enc != "gzip" {
			t.Fatalf("live log through %s: Content-Encoding %q", v.name, enc)
		}
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			t.Fatalf("live log through %s: %v", v.name, err)
		}
		r = zr
	}
	chunks := make(chan string, 64)
	go func() {
		defer close(chunks)
		buf := make([]byte, 8192)
		for {
			n, err := r.Read(buf)
			if n > 0 {
				chunks <- string(buf[:n])
			}
			if err != nil {
				return
			}
		}
	}()
	var body strings.Builder
	waitFor := func(want string, d time.Duration) bool {
		deadline := time.After(d)
		for !strings.Contains(body.String(), want) {
			select {
			case c, ok := <-chunks:
				if !ok {
					return strings.Contains(body.String(), want)
				}
				body.WriteString(c)
			case <-deadline:
				return false
			}
		}
		return true
	}
	if !waitFor(`aria-label="Messages">`, 5*time.Second) {
		t.Fatalf("the live log's head did not come through %s within 5 s:\n%s", v.name, body.String())
	}
	var took []time.Duration
	for i := 1; i <= 3; i++ {
		text := "framed " + strconv.Itoa(i)
		start := time.Now()
		v.post(t, "frame", text)
		if !waitFor(text+"</span></li>", deliverWithin) {
			t.Fatalf("message %d did not reach the live log through %s within %v:\n%s", i, v.name, deliverWithin, body.String())
		}
		took = append(took, time.Since(start).Round(time.Millisecond))
	}
	if n := strings.Count(body.String(), "framed 1</span></li>"); n != 1 {
		t.Errorf("through %s the first message is in the live log %d times, want once", v.name, n)
	}
	if strings.Contains(body.String(), "http-equiv") {
		t.Errorf("the open live log through %s has a refresh element", v.name)
	}
	t.Logf("through %s, post to live log: %v", v.name, took)
}

// testProxyResume: a stream reconnected through the proxy with
// Last-Event-ID gets what it missed, each message once, then live ones.
func testProxyResume(t *testing.T, v *viaProxy) {
	const room = "resume"
	first := v.events(t, room, "")
	for i := 1; i <= 3; i++ {
		v.post(t, room, fmt.Sprintf("before %d", i))
	}
	evs := first.Collect(t, 3, 5*time.Second)
	if last := evs[2]; last.Seq != 3 || textOf(last.Data) != "before 3" {
		t.Fatalf("third event = id %q text %q, want 3 \"before 3\"", last.ID, textOf(last.Data))
	}
	first.Close()

	// Missed while disconnected.
	v.post(t, room, "missed 4")
	v.post(t, room, "missed 5")

	again := v.events(t, room, evs[2].ID)
	v.post(t, room, "after 6")
	got := again.Collect(t, 3, 5*time.Second)
	want := []struct {
		seq  int64
		text string
	}{{4, "missed 4"}, {5, "missed 5"}, {6, "after 6"}}
	for i, w := range want {
		if got[i].Seq != w.seq || textOf(got[i].Data) != w.text {
			t.Errorf("resumed event %d = id %q text %q, want seq %d %q", i, got[i].ID, textOf(got[i].Data), w.seq, w.text)
		}
	}
	select {
	case ev := <-again.Events:
		t.Errorf("extra event after the resume through %s: id %q text %q", v.name, ev.ID, textOf(ev.Data))
	case <-time.After(500 * time.Millisecond):
	}
}

// testProxyIdle: a stream with no messages stays open through the proxy
// for more than three times the proxy's idle timeout (the heartbeats keep
// it alive), and a message posted then still arrives.
func testProxyIdle(t *testing.T, v *viaProxy) {
	const room = "idle"
	hold := 3*proxyIdle + 500*time.Millisecond
	s := v.events(t, room, "")
	start := time.Now()
	end := time.NewTimer(hold)
	defer end.Stop()
	pings := 0
	for waiting := true; waiting; {
		select {
		case <-s.Pings:
			pings++
		case ev := <-s.Events:
			t.Fatalf("event on an idle room: id %q", ev.ID)
		case err := <-s.Done:
			t.Fatalf("idle stream through %s ended after %v (proxy idle timeout %v): %v", v.name, time.Since(start).Round(time.Millisecond), proxyIdle, err)
		case <-end.C:
			waiting = false
		}
	}
	// A heartbeat a second; the proxy may pass a few of them on together.
	if pings < int(hold/time.Second)/2 {
		t.Errorf("%d heartbeats through %s in %v, want about one a second", pings, v.name, hold)
	}
	begin := time.Now()
	v.post(t, room, "still here")
	ev := s.Next(t, 5*time.Second)
	if ev.Seq != 1 || textOf(ev.Data) != "still here" {
		t.Fatalf("event after idling = id %q text %q, want 1 \"still here\"", ev.ID, textOf(ev.Data))
	}
	if d := time.Since(begin); d > deliverWithin {
		t.Errorf("message after idling took %v through %s, want at most %v", d, v.name, deliverWithin)
	}
}

// stockNginxSite is the least a site can say: where hxchat is. Only the
// idle timeout is shortened, and Host kept (see docs/nginx.conf).
const stockNginxSite = `server {
    listen {{LISTEN}};
    location / {
        proxy_pass http://{{UPSTREAM}};
        proxy_set_header Host $http_host;
        proxy_read_timeout {{TIMEOUT}};
    }
}
`

// worstNginxSite is what hxchat must survive: nginx compressing the stream
// and buffering it, with hxchat's X-Accel-Buffering ignored. Such a proxy
// passes nothing of a stream until it ends; hxchat's -stream-lifetime ends
// every stream soon, and the client resumes with Last-Event-ID.
const worstNginxSite = `server {
    listen {{LISTEN}};
    location / {
        proxy_pass http://{{UPSTREAM}};
        # Without it nginx sends Host: {{UPSTREAM}}, and hxchat refuses a
        # post whose Origin names another host (see docs/nginx.conf).
        proxy_set_header Host $http_host;
        proxy_buffering on;
        proxy_ignore_headers X-Accel-Buffering;
        gzip on;
        gzip_types text/event-stream;
    }
}
`

// TestProxyNginxGzipBuffered: through the worst nginx, with a 1 s stream
// lifetime, 50 messages posted over 10 s all reach a client that resumes
// whenever its stream ends, in order, none twice.
func TestProxyNginxGzipBuffered(t *testing.T) {
	t.Parallel()
	const (
		room  = "worst"
		n     = 50
		every = 200 * time.Millisecond
		after = 15 * time.Second // the most the last message may take
	)
	hx := startServer(t, "-stream-lifetime", "1s")
	base := startNginx(t, func(listen string) string {
		return strings.NewReplacer("{{LISTEN}}", listen, "{{UPSTREAM}}", strings.TrimPrefix(hx.URL, "http://")).Replace(worstNginxSite)
	})
	v := &viaProxy{name: "nginx (gzip, buffering)", base: base, client: proxyClient(t, nil)}

	ctx, cancel := context.WithCancel(t.Context())
	r := &resumingReader{arrived: make(chan struct{}, 1)}
	followed := make(chan struct{})
	go func() {
		defer close(followed)
		// A stream lasts about a second and the retry delay is two: some
		// 6 streams in the whole test; the bound is only a backstop.
		r.follow(ctx, v, room, "0", 200)
	}()
	stop := func() {
		cancel()
		<-followed
	}
	defer stop()

	start := time.Now()
	for i := 1; i < n; i++ {
		v.post(t, room, fmt.Sprintf("m%02d", i))
		time.Sleep(time.Until(start.Add(time.Duration(i) * every)))
	}
	v.post(t, room, fmt.Sprintf("m%02d", n))
	lastPost := time.Now()

	deadline := time.NewTimer(after)
	defer deadline.Stop()
	for waiting := true; waiting; {
		if evs, _, _, _ := r.snapshot(); len(evs) >= n {
			break
		}
		select {
		case <-r.arrived:
		case <-deadline.C:
			waiting = false
		}
	}
	took := time.Since(lastPost)
	// Whatever would come twice comes with the next stream: wait for one
	// more round (a stream's lifetime and the retry delay).
	time.Sleep(3500 * time.Millisecond)
	stop()

	evs, streams, gzipped, ends := r.snapshot()
	t.Logf("%d events over %d streams (%d gzip-compressed), the last %v after the last post; stream ends: %v",
		len(evs), streams, gzipped, took.Round(time.Millisecond), ends)
	if gzipped == 0 {
		t.Errorf("no stream came gzip-compressed: this is not the worst case it means to be")
	}
	seen := make(map[string]int)
	for i, ev := range evs {
		if prev, dup := seen[ev.ID]; dup {
			t.Errorf("event %d: id %s again (first as event %d)", i, ev.ID, prev)
		}
		seen[ev.ID] = i
		if ev.Seq != int64(i+1) || textOf(ev.Data) != fmt.Sprintf("m%02d", i+1) {
			t.Errorf("event %d = id %q text %q, want seq %d text m%02d", i, ev.ID, textOf(ev.Data), i+1, i+1)
		}
	}
	if len(evs) != n {
		t.Fatalf("got %d events, want %d within %v of the last post", len(evs), n, after)
	}
}

// TestProxyNginxBufferedLiveLog: through the worst nginx (buffering on,
// gzip), which holds the live log back, its document still arrives whole
// once its lifetime ends it: every message posted while it was open, once,
// then the refresh element that loads it again.
func TestProxyNginxBufferedLiveLog(t *testing.T) {
	t.Parallel()
	hx := startServer(t, "-stream-lifetime", "2s")
	base := startNginx(t, func(listen string) string {
		return strings.NewReplacer("{{LISTEN}}", listen, "{{UPSTREAM}}", strings.TrimPrefix(hx.URL, "http://")).Replace(worstNginxSite)
	})
	v := &viaProxy{name: "nginx (gzip, buffering)", base: base, client: proxyClient(t, nil)}
	v.post(t, "worst-log", "before")
	// nginx may hold the headers back with the body: the request waits in
	// a goroutine, and the posts go out once hxchat has the document open.
	done := make(chan []byte, 1)
	go func() {
		resp, err := v.client.Get(v.roomURL("worst-log") + "log") // the client asks for gzip and decodes it
		if err != nil {
			t.Errorf("live log through %s: %v", v.name, err)
			done <- nil
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		done <- b
	}()
	waitMetric(t, hx.URL, "hxchat_streams_open", 1)
	for i := 1; i <= 3; i++ {
		v.post(t, "worst-log", fmt.Sprintf("while open %d", i))
	}
	var body string
	select {
	case b := <-done:
		body = string(b)
	case <-time.After(10 * time.Second):
		t.Fatal("the live log did not end through the buffering nginx within 10 s")
	}
	for _, want := range []string{"before</span>", "while open 1</span>", "while open 2</span>", "while open 3</span>"} {
		if n := strings.Count(body, want); n != 1 {
			t.Errorf("the buffered live log has %q %d times, want once:\n%s", want, n, body)
		}
	}
	if !strings.HasSuffix(strings.TrimSpace(body), `<meta http-equiv="refresh" content="1"></body>
</html>`) {
		t.Errorf("the buffered live log does not end with its refresh element:\n%s", body[max(0, len(body)-300):])
	}
}
