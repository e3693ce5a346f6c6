package handlers

import (
	"github.com/hxchat/hxchat/chat"

	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// rawGet sends a plain HTTP/1.1 GET for path over a new connection and
// returns the connection and a reader positioned at the start of the body,
// with the response head.
func rawGet(t *testing.T, addr, path string) (net.Conn, *bufio.Reader, *http.Response) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(streamWait))
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, addr)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	return conn, br, resp
}

// An HTTP/1.1 stream is taken over from net/http: a close-delimited
// response (no length, no chunking) whose end is the connection's end.
func TestRawStreamFraming(t *testing.T) {
	e := newEnv(t, func(o *envOptions) { o.stream.Lifetime = 300 * time.Millisecond })
	e.post(t, "lobby", "one")
	ts := e.serve(t)
	_, br, resp := rawGet(t, ts.Listener.Addr().String(), "/chat/lobby/events?after=0")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200", resp.StatusCode)
	}
	for name, want := range map[string]string{
		"Content-Type":      "text/event-stream",
		"Cache-Control":     "no-cache, no-transform",
		"X-Accel-Buffering": "no",
		"Content-Length":    "",
	} {
		if got := resp.Header.Get(name); got != want {
			t.Errorf("%s %q, want %q", name, got, want)
		}
	}
	if len(resp.TransferEncoding) != 0 || resp.ContentLength != -1 || !resp.Close {
		t.Errorf("transfer encoding %q, length %d, close %v; want a close-delimited body", resp.TransferEncoding, resp.ContentLength, resp.Close)
	}
	// The body as it is on the wire, up to the server closing: the retry
	// block, message 1, the member list; then EOF.
	body, err := io.ReadAll(br)
	if err != nil {
		t.Fatalf("reading to the end: %v", err)
	}
	rd := newSSEReader(strings.NewReader(string(body)))
	if ev, err := rd.next(); err != nil || ev.Retry != "2000" {
		t.Fatalf("first block %q, %v; want the retry line", ev.Lines, err)
	}
	if ev := rd.nextMessage(t); ev.ID != "1" || !strings.Contains(ev.data(), "one") {
		t.Errorf("message %q, want message 1", ev.Lines)
	}
}

// A client that closes its connection ends its stream at once: it leaves
// the room and the stream's resources go. Where sockets cannot be watched
// (hangups), a reader goroutine notices instead.
func TestRawStreamClientLeaves(t *testing.T) {
	t.Run("Watched", testRawStreamClientLeaves)
	t.Run("Reader", func(t *testing.T) {
		watchHangup = func(net.Conn, func()) (func(), bool) { return nil, false }
		t.Cleanup(func() { watchHangup = hangups.watch })
		testRawStreamClientLeaves(t)
	})
}

func testRawStreamClientLeaves(t *testing.T) {
	e := newEnv(t)
	ts := e.serve(t)
	conn, br, resp := rawGet(t, ts.Listener.Addr().String(), "/chat/lobby/events")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200", resp.StatusCode)
	}
	if _, err := newSSEReader(br).next(); err != nil {
		t.Fatal(err)
	}
	if got := e.hub.Subscribers("lobby"); got != 1 {
		t.Fatalf("%d subscribers with the stream open, want 1", got)
	}
	conn.Close()
	waitUntil(t, "the stream ends after its client left", func() bool {
		return e.hub.Subscribers("lobby") == 0 && strings.Contains(e.get("/metrics").Body.String(), "\nhxchat_streams_open 0\n")
	})
}

// A client sends nothing after its request on a stream: input means it is
// not an SSE client we serve, and the connection is closed.
func TestRawStreamClientFloods(t *testing.T) {
	e := newEnv(t)
	ts := e.serve(t)
	conn, br, _ := rawGet(t, ts.Listener.Addr().String(), "/chat/lobby/events")
	junk := strings.Repeat("x", 8<<10)
	if _, err := io.WriteString(conn, junk); err != nil {
		t.Fatal(err)
	}
	// The server closes with input unread, so the end may be a reset.
	if _, err := io.Copy(io.Discard, br); err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("reading to the end: %v, want the server to close", err)
		}
	}
	waitUntil(t, "the flooding client's stream ends", func() bool { return e.hub.Subscribers("lobby") == 0 })
}

// With NoHijack, HTTP/1.1 streams stay with net/http (chunked), and
// behave the same.
func TestEventsNoHijack(t *testing.T) {
	e := newEnv(t, func(o *envOptions) { o.stream.NoHijack = true; o.stream.Lifetime = 300 * time.Millisecond })
	ts := e.serve(t)
	_, br, resp := rawGet(t, ts.Listener.Addr().String(), "/chat/lobby/events?after=0")
	if got, want := resp.TransferEncoding, []string{"chunked"}; len(got) != 1 || got[0] != want[0] {
		t.Errorf("transfer encoding %q, want %q", got, want)
	}
	rd := openOK(t, ts, "/chat/lobby/events?after=0", nil)
	for i := 1; i <= 3; i++ {
		e.post(t, "lobby", "live")
		if got, want := rd.nextMessage(t).ID, strconv.Itoa(i); got != want {
			t.Fatalf("id %q, want %q", got, want)
		}
	}
	_ = br
}

// waitUntil polls cond until it holds, failing the test after streamWait.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(streamWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Over TLS (HTTP/1.1), the taken-over stream is written through the TLS
// connection and ends cleanly.
func TestRawStreamTLS(t *testing.T) {
	e := newEnv(t, func(o *envOptions) { o.stream.Lifetime = 300 * time.Millisecond })
	ts := httptest.NewUnstartedServer(e.handler)
	ts.StartTLS()
	t.Cleanup(func() {
		e.streams.Shutdown()
		ts.Close()
	})
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, ts.URL+"/chat/lobby/events?after=0", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 1 || !resp.Close || len(resp.TransferEncoding) != 0 {
		t.Fatalf("proto %s, close %v, transfer encoding %q: want a taken-over HTTP/1.1 stream", resp.Proto, resp.Close, resp.TransferEncoding)
	}
	rd := newSSEReader(resp.Body)
	if ev, err := rd.next(); err != nil || ev.Retry == "" {
		t.Fatalf("first block %q, %v; want the retry line", ev.Lines, err)
	}
	e.post(t, "lobby", "over tls")
	if ev := rd.nextMessage(t); ev.ID != "1" || !strings.Contains(ev.data(), "over tls") {
		t.Fatalf("message %q, want message 1", ev.Lines)
	}
	for {
		if _, err := rd.next(); err != nil {
			if err != io.EOF {
				t.Fatalf("stream ended with %v, want a clean end (EOF)", err)
			}
			break
		}
	}
}

// A client that stops reading is cut off by the write deadline, even while
// its queue has room: the stream ends and leaves the room.
func TestRawStreamWriteTimeout(t *testing.T) {
	for _, noHijack := range []bool{false, true} {
		t.Run(fmt.Sprintf("NoHijack=%v", noHijack), func(t *testing.T) {
			e := newEnv(t, func(o *envOptions) {
				o.stream.WriteTimeout = 300 * time.Millisecond
				o.hub = func(h *chat.HubOptions) { h.QueueSize = 100000 } // only the deadline can end it
				o.stream.NoHijack = noHijack
			})
			ts := e.serve(t)
			conn, err := net.Dial("tcp", ts.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.(*net.TCPConn).SetReadBuffer(4096)
			fmt.Fprintf(conn, "GET /chat/lobby/events HTTP/1.1\r\nHost: x\r\n\r\n")
			waitUntil(t, "the stream is open", func() bool { return e.hub.Subscribers("lobby") == 1 })
			text := strings.Repeat("한", 2000) // 6 KB a message
			for i := 0; i < 3000 && e.hub.Subscribers("lobby") == 1; i++ {
				e.post(t, "lobby", text)
			}
			waitUntil(t, "the stalled stream is cut", func() bool { return e.hub.Subscribers("lobby") == 0 })
		})
	}
}
