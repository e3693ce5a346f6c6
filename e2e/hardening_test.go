package e2e

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// metricValue reads one unlabelled metric from the server's /metrics.
func metricValue(t *testing.T, base, name string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("%s not in /metrics", name)
	return 0
}

// goroutines reads go_goroutines from the server's /metrics.
func goroutines(t *testing.T, base string) int {
	t.Helper()
	return int(metricValue(t, base, "go_goroutines"))
}

// TestSlowPageReadersAreCutOff opens 120 requests for pages, the live log
// (whose history alone fills the buffers), a static file and /metrics that
// never read their answer, from sockets with a tiny
// receive buffer, against a server with a small send buffer, so every
// answer is stuck in its write. The server holds them (its goroutines
// rise), then cuts them off within -write-timeout plus a margin: its
// goroutines return to where they were, while the clients are still
// connected.
func TestSlowPageReadersAreCutOff(t *testing.T) {
	const writeTimeout = 2 * time.Second
	srv := startServer(t, "-write-timeout", writeTimeout.String(), "-tcp-send-buffer", "4096")
	long := strings.Repeat("slow readers are cut off. ", 76) // ~2000 characters
	for i := range 50 {
		srv.post(t, "slow", strconv.Itoa(i)+" "+long)
	}
	targets := []string{"/chat/slow/", "/chat/slow/log", "/static/dist/htmx.min.js.map", "/metrics"}
	for _, target := range targets {
		resp, err := http.Get(srv.URL + target)
		if err != nil {
			t.Fatal(err)
		}
		// The live log is a stream that stays open: its history is enough.
		n, _ := io.Copy(io.Discard, io.LimitReader(resp.Body, 30_000))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || (target != "/metrics" && n < 30_000) {
			// Each but /metrics is more than 30 000 bytes: enough to fill the buffers.
			t.Fatalf("GET %s: %d, %d bytes; want 200 and enough bytes to fill the buffers", target, resp.StatusCode, n)
		}
	}
	base := goroutines(t, srv.URL)

	dialer := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 1024)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	host := strings.TrimPrefix(srv.URL, "http://")
	const clients = 120
	conns := make([]net.Conn, 0, clients)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for i := range clients {
		c, err := dialer.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		// Ask twice on one connection (pipelined), so a page that did fit
		// the buffers is followed by one that does not.
		target := targets[i%len(targets)]
		req := "GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\n\r\n"
		if _, err := io.WriteString(c, req+req); err != nil {
			t.Fatal(err)
		}
	}

	// Held: each stuck answer keeps its connection's goroutine.
	held := 0
	for deadline := time.Now().Add(writeTimeout / 2); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if held = goroutines(t, srv.URL); held >= base+clients*3/4 {
			break
		}
	}
	if held < base+clients*3/4 {
		t.Fatalf("goroutines %d with %d stuck readers, base %d: the readers were not stuck, the test proves nothing", held, clients, base)
	}

	// Freed within the write timeout and a margin.
	start := time.Now()
	const margin = 8 * time.Second
	now := held
	for time.Since(start) < writeTimeout+margin {
		if now = goroutines(t, srv.URL); now <= base+5 {
			t.Logf("goroutines %d → %d with %d stuck readers → %d %.1fs later (write timeout %s)", base, held, clients, now, time.Since(start).Seconds(), writeTimeout)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("goroutines %d, base %d: %d readers that never read are still held %s after the write timeout %s", now, base, clients, margin, writeTimeout)
}

// roomPage fetches a room page and returns its body.
func roomPage(t *testing.T, srv *server, room string) string {
	t.Helper()
	resp, err := http.Get(srv.roomURL(room))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", srv.roomURL(room), resp.StatusCode)
	}
	return string(b)
}

// TestRoomBoundOnSQLite posts into 3× -max-rooms rooms of the SQLite file,
// one room after the other: in the background, the history of the least
// recently active rooms is removed, and the newest rooms keep theirs.
func TestRoomBoundOnSQLite(t *testing.T) {
	const maxRooms = 5
	srv := startServer(t, "-max-rooms", strconv.Itoa(maxRooms))
	room := func(i int) string { return "bound-" + strconv.Itoa(i) }
	for i := range 3 * maxRooms {
		srv.post(t, room(i), "message in room "+strconv.Itoa(i))
		time.Sleep(2 * time.Millisecond) // distinct activity times
	}
	deadline := time.Now().Add(10 * time.Second)
	for strings.Contains(roomPage(t, srv, room(0)), "message in room 0") {
		if time.Now().After(deadline) {
			t.Fatalf("room %s still has its history 10 s after %d newer rooms were posted to (-max-rooms %d)", room(0), 3*maxRooms-1, maxRooms)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for i := range 2 * maxRooms {
		if page := roomPage(t, srv, room(i)); strings.Contains(page, "message in room "+strconv.Itoa(i)+"<") {
			t.Errorf("room %s (among the oldest) still has its history", room(i))
		}
	}
	for i := 2 * maxRooms; i < 3*maxRooms; i++ {
		if page := roomPage(t, srv, room(i)); !strings.Contains(page, "message in room "+strconv.Itoa(i)+"<") {
			t.Errorf("room %s (among the newest %d) lost its history", room(i), maxRooms)
		}
	}
	if n := metricValue(t, srv.URL, "hxchat_rooms_evicted_total"); n < 2*maxRooms {
		t.Errorf("hxchat_rooms_evicted_total = %v, want at least %d", n, 2*maxRooms)
	}
	// A removed room works again, from its first message.
	srv.post(t, room(0), "back again")
	if page := roomPage(t, srv, room(0)); !strings.Contains(page, "back again") || !strings.Contains(page, `id="msg-1"`) {
		t.Errorf("room %s posted to again: want its new message as msg-1", room(0))
	}
}

// TestDatabaseFileOwnerOnly: the SQLite file holds the secret that signs
// cookies, so it and its WAL and SHM are readable by their owner only.
func TestDatabaseFileOwnerOnly(t *testing.T) {
	db := filepath.Join(t.TempDir(), "chat.db")
	srv := startServer(t, "-db", db)
	srv.post(t, "perm", "hello")
	for _, name := range []string{db, db + "-wal", db + "-shm"} {
		info, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if perm := info.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s has mode %v, want -rw------- (it holds the cookie secret)", filepath.Base(name), perm)
		}
	}
}
