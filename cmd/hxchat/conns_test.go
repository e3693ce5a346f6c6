package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// errDrained is what fakeListener.Accept returns when no connection is
// queued: Accept through a limitListener thus returns at once, either the
// first connection it admitted or this.
var errDrained = errors.New("no connection queued")

// fakeListener hands out the connections queued with offer.
type fakeListener struct {
	mu    sync.Mutex
	queue []net.Conn
}

func (l *fakeListener) offer(c ...net.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.queue = append(l.queue, c...)
}

func (l *fakeListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.queue) == 0 {
		return nil, errDrained
	}
	c := l.queue[0]
	l.queue = l.queue[1:]
	return c, nil
}

func (l *fakeListener) Close() error   { return nil }
func (l *fakeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// fakeConn is a connection from a given address that counts its closes.
type fakeConn struct {
	net.Conn // nil: only RemoteAddr and Close are called
	remote   net.Addr
	closes   atomic.Int32
}

func (c *fakeConn) RemoteAddr() net.Addr { return c.remote }
func (c *fakeConn) Close() error         { c.closes.Add(1); return nil }

func from(addr string) *fakeConn {
	return &fakeConn{remote: net.TCPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(addr), 40000))}
}

// connTest is a limiter on a fakeListener.
type connTest struct {
	t   *testing.T
	l   *connLimiter
	fl  *fakeListener
	ln  net.Listener
	reg *prometheus.Registry
}

func newConnTest(t *testing.T, limits connLimits) *connTest {
	reg := prometheus.NewRegistry()
	l := newConnLimiter(limits, slog.New(slog.DiscardHandler), reg)
	fl := &fakeListener{}
	return &connTest{t: t, l: l, fl: fl, ln: l.listen(fl), reg: reg}
}

// admit offers a connection from addr and fails unless it is accepted.
func (ct *connTest) admit(addr string) net.Conn {
	ct.t.Helper()
	fc := from(addr)
	ct.fl.offer(fc)
	c, err := ct.ln.Accept()
	if err != nil {
		ct.t.Fatalf("connection from %s refused (%v), want it accepted", addr, err)
	}
	if fc.closes.Load() != 0 {
		ct.t.Fatalf("connection from %s accepted but closed", addr)
	}
	return c
}

// refuse offers a connection from addr and fails unless it is closed at
// once, without Accept returning it.
func (ct *connTest) refuse(addr string) {
	ct.t.Helper()
	fc := from(addr)
	ct.fl.offer(fc)
	if c, err := ct.ln.Accept(); !errors.Is(err, errDrained) {
		ct.t.Fatalf("connection from %s: Accept returned %v, %v; want it refused", addr, c, err)
	}
	if n := fc.closes.Load(); n != 1 {
		ct.t.Fatalf("refused connection from %s closed %d times, want 1", addr, n)
	}
}

// refused is hxchat_connections_refused_total{reason}.
func (ct *connTest) refused(reason string) float64 {
	ct.t.Helper()
	var m dto.Metric
	if err := ct.l.refused.WithLabelValues(reason).Write(&m); err != nil {
		ct.t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// open is hxchat_connections_open as gathered from the registry.
func (ct *connTest) open() float64 {
	ct.t.Helper()
	mfs, err := ct.reg.Gather()
	if err != nil {
		ct.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "hxchat_connections_open" {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	ct.t.Fatal("hxchat_connections_open not registered")
	return 0
}

func TestConnLimiter(t *testing.T) {
	t.Run("PerClient", func(t *testing.T) {
		ct := newConnTest(t, connLimits{perClient: 2})
		ct.admit("192.0.2.1")
		ct.admit("192.0.2.1")
		ct.refuse("192.0.2.1")
		ct.refuse("::ffff:192.0.2.1") // the same client, IPv4-mapped
		ct.admit("192.0.2.2")
		if got := ct.refused(refusedPerClient); got != 2 {
			t.Errorf("refused per_client = %v, want 2", got)
		}
		if got := ct.refused(refusedTotal); got != 0 {
			t.Errorf("refused total = %v, want 0", got)
		}
		if got := ct.open(); got != 3 {
			t.Errorf("open = %v, want 3", got)
		}
	})
	t.Run("IPv6By64", func(t *testing.T) {
		ct := newConnTest(t, connLimits{perClient: 2})
		ct.admit("2001:db8::1")
		ct.admit("2001:db8::ffff:ffff:ffff:ffff")
		ct.refuse("2001:db8::2")        // a third address in the same /64
		ct.admit("2001:db8:0:1::1")     // the next /64 is another client
		ct.admit("fe80::1%eth0")        // zones are dropped...
		ct.admit("fe80::2%eth1")        // ...so these share fe80::/64
		ct.refuse("fe80::3")            //
		ct.refuse("2001:db8::abcd:1:2") //
	})
	t.Run("TrustedExempt", func(t *testing.T) {
		ct := newConnTest(t, connLimits{perClient: 1, total: 4, trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
		ct.admit("10.1.2.3")
		ct.admit("10.1.2.3")
		ct.admit("10.1.2.3")
		ct.admit("192.0.2.1")
		ct.refuse("10.1.2.3") // still counted towards the total
		if got := ct.refused(refusedTotal); got != 1 {
			t.Errorf("refused total = %v, want 1", got)
		}
	})
	t.Run("Total", func(t *testing.T) {
		ct := newConnTest(t, connLimits{total: 3})
		a := ct.admit("192.0.2.1")
		ct.admit("192.0.2.1") // no per-client limit
		ct.admit("2001:db8::1")
		ct.refuse("192.0.2.9")
		ct.refuse("2001:db8:1::1")
		if got := ct.refused(refusedTotal); got != 2 {
			t.Errorf("refused total = %v, want 2", got)
		}
		a.Close()
		ct.admit("192.0.2.9")
	})
	t.Run("ReleaseOnClose", func(t *testing.T) {
		ct := newConnTest(t, connLimits{perClient: 1})
		a := ct.admit("192.0.2.1")
		ct.refuse("192.0.2.1")
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		if got := ct.open(); got != 0 {
			t.Errorf("open after close = %v, want 0", got)
		}
		if len(ct.l.clients) != 0 {
			t.Errorf("clients = %v after every connection closed, want none kept", ct.l.clients)
		}
		ct.admit("192.0.2.1")
	})
	t.Run("DoubleCloseCountedOnce", func(t *testing.T) {
		ct := newConnTest(t, connLimits{perClient: 2, total: 2})
		a := ct.admit("192.0.2.1")
		ct.admit("192.0.2.1")
		a.Close()
		a.Close()
		if got := ct.open(); got != 1 {
			t.Fatalf("open after closing one twice = %v, want 1", got)
		}
		ct.admit("192.0.2.1")
		ct.refuse("192.0.2.1")
		ct.refuse("192.0.2.2") // the total, too, was released once
	})
	t.Run("NoLimits", func(t *testing.T) {
		ct := newConnTest(t, connLimits{})
		for range 1000 {
			ct.admit("192.0.2.1")
		}
		if got := ct.open(); got != 1000 {
			t.Errorf("open = %v, want 1000", got)
		}
	})
	t.Run("AcceptError", func(t *testing.T) {
		ct := newConnTest(t, connLimits{perClient: 1})
		if _, err := ct.ln.Accept(); !errors.Is(err, errDrained) {
			t.Fatalf("Accept = %v, want the listener's error", err)
		}
	})
}

// What net/http and the handlers that take a stream over look for on a
// *net.TCPConn is there on a counted connection too.
func TestLimitConnPassesOn(t *testing.T) {
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := newConnLimiter(connLimits{perClient: 1}, slog.New(slog.DiscardHandler), prometheus.NewRegistry()).listen(tcp)
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	t.Run("FileDescriptor", func(t *testing.T) {
		sc, ok := c.(syscall.Conn)
		if !ok {
			t.Fatal("no SyscallConn: the hangup watcher cannot reach the socket")
		}
		raw, err := sc.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		want, err := c.(interface{ NetConn() net.Conn }).NetConn().(*net.TCPConn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var got, under uintptr
		if err := raw.Control(func(fd uintptr) { got = fd }); err != nil {
			t.Fatal(err)
		}
		if err := want.Control(func(fd uintptr) { under = fd }); err != nil {
			t.Fatal(err)
		}
		if got != under {
			t.Fatalf("fd %d, want the TCP connection's %d", got, under)
		}
	})
	t.Run("ReadFrom", func(t *testing.T) {
		if _, ok := c.(io.ReaderFrom); !ok {
			t.Fatal("no ReadFrom: net/http cannot use sendfile")
		}
		if _, err := c.(io.ReaderFrom).ReadFrom(strings.NewReader("hello ")); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("CloseWrite", func(t *testing.T) {
		cw, ok := c.(interface{ CloseWrite() error })
		if !ok {
			t.Fatal("no CloseWrite: a taken-over stream cannot end cleanly")
		}
		if err := cw.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
		got, err := io.ReadAll(client)
		if err != nil || string(got) != "hello " {
			t.Fatalf("client read %q, %v; want %q and a clean end", got, err, "hello ")
		}
	})
}

func TestLogEvery(t *testing.T) {
	e := &logEvery{every: 10 * time.Second}
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, tc := range []struct {
		at     time.Duration
		n      int
		logged bool
	}{
		{0, 1, true},
		{time.Second, 0, false},
		{9 * time.Second, 0, false},
		{10 * time.Second, 3, true}, // the two held back and this one
		{11 * time.Second, 0, false},
		{time.Hour, 2, true},
	} {
		n, ok := e.allow(t0.Add(tc.at))
		if n != tc.n || ok != tc.logged {
			t.Errorf("event %d at +%v: allow = %d, %v; want %d, %v", i, tc.at, n, ok, tc.n, tc.logged)
		}
	}
}

func TestMaxConns(t *testing.T) {
	o, err := parseFlags(nil, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.connsPer != 256 || o.connsMax != 0 || o.idleTimeout != 2*time.Minute {
		t.Errorf("defaults: max-conns-per-client %d, max-conns %d, idle-timeout %v; want 256, 0, 2m", o.connsPer, o.connsMax, o.idleTimeout)
	}
	env := map[string]string{"HXCHAT_MAX_CONNS_PER_CLIENT": "7", "HXCHAT_MAX_CONNS": "900", "HXCHAT_IDLE_TIMEOUT": "30s"}
	o, err = parseFlags(nil, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.connsPer != 7 || o.connsMax != 900 || o.idleTimeout != 30*time.Second || maxConns(o) != 900 {
		t.Errorf("from env: %d, %d, %v, maxConns %d; want 7, 900, 30s, 900", o.connsPer, o.connsMax, o.idleTimeout, maxConns(o))
	}
	for _, args := range [][]string{
		{"-max-conns-per-client", "-1"},
		{"-max-conns", "-1"},
		{"-idle-timeout", "0"},
	} {
		if _, err := parseFlags(args, func(string) string { return "" }, io.Discard); err == nil {
			t.Errorf("parseFlags(%q) accepted it", args)
		}
	}

	soft, ok := openFileLimit()
	if !ok || soft > 1<<31 {
		t.Skipf("no finite open-file limit (%d, %v): -max-conns 0 is no limit", soft, ok)
	}
	o.connsMax = 0
	got := maxConns(o)
	if want := int(soft) - fdReserve - 3*(1+o.dbReaders); int(soft) > 2*(fdReserve+3*(1+o.dbReaders)) && got != want {
		t.Errorf("maxConns = %d with an open-file limit of %d, want %d", got, soft, want)
	}
	if got <= 0 || got >= int(soft) {
		t.Errorf("maxConns = %d with an open-file limit of %d, want below it", got, soft)
	}
}

// One address cannot hold more than -max-conns-per-client connections: an
// idle connection beyond is closed at once, a slot freed is taken again,
// and the refusals are counted. A taken-over stream's connection is
// counted until the stream ends.
func TestConnsPerClient(t *testing.T) {
	const limit = 20
	s := start(t, "-max-conns-per-client", strconv.Itoa(limit))
	addr := strings.TrimPrefix(s.url, "http://")
	s.transport().CloseIdleConnections() // start's health checks

	// dialServed dials and makes one request on the connection, which
	// stays open (idle, kept alive); nil if the server closed it instead.
	dialServed := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: hxchat\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			c.Close()
			return nil
		}
		resp.Body.Close()
		_ = c.SetDeadline(time.Time{})
		return c
	}
	// The server may still count a connection start closed: retry.
	var held []net.Conn
	t.Cleanup(func() {
		for _, c := range held {
			c.Close()
		}
	})
	for tries := 0; len(held) < limit; tries++ {
		if tries == 2*limit {
			t.Fatalf("only %d connections served out of %d tries", len(held), tries)
		}
		if c := dialServed(); c != nil {
			held = append(held, c)
		}
	}

	// The 21st is closed at once: it reads the end (or a reset), not
	// a timeout, though it sent nothing.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	began := time.Now()
	n, err := c.Read(make([]byte, 1))
	c.Close()
	var ne net.Error
	if n != 0 || err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection %d: read %d bytes, %v after %v; want it closed at once", limit+1, n, err, time.Since(began))
	}
	if c := dialServed(); c != nil {
		c.Close()
		t.Fatalf("a request on connection %d was served", limit+1)
	}

	// Freed slots are taken again (once the server saw the closes).
	for _, c := range held[:5] {
		c.Close()
	}
	held = held[5:]
	deadline := time.Now().Add(5 * time.Second)
	for {
		if c := dialServed(); c != nil {
			held = append(held, c)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no connection accepted 5 s after 5 of the 20 were closed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := metric(t, s, `hxchat_connections_refused_total{reason="per_client"}`); got < 2 {
		t.Errorf("refused per_client = %v, want at least 2", got)
	}

	// Every connection closed, a stream's counts until it ends.
	for _, c := range held {
		c.Close()
	}
	held = nil
	waitOpen := func(want float64) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			// metric's own connection is one of them.
			got := metric(t, s, "hxchat_connections_open")
			if got == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("hxchat_connections_open = %v, want %v", got, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitOpen(1)
	st := s.open(t, "conns", streamOpts{after: "0"})
	waitOpen(2)
	// The taken-over stream reached its socket through the counted
	// connection: on Linux the hangup watcher's epoll set holds it, and
	// no goroutine of the fallback reads it.
	if runtime.GOOS == "linux" && strings.Contains(goroutineDump(), "(*rawWriter).watch") {
		t.Error("a taken-over stream is watched by a reader goroutine: its counted connection hid the file descriptor")
	}
	st.close()
	waitOpen(1)
}

// Lines net/http writes about what a client did (a connection closed
// before the TLS handshake, plain HTTP to the TLS port, a bad HTTP/2
// frame) are logged at Debug, not Warn.
func TestClientErrorsNotWarned(t *testing.T) {
	t.Run("TLS", func(t *testing.T) {
		var log lockedBuffer
		s := startLogging(t, &log, "-tls-self-signed", "-log-level", "debug")
		addr := strings.TrimPrefix(s.url, "https://")
		c, err := net.Dial("tcp", addr) // a load balancer's TCP health check
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		c, err = net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: hxchat\r\n\r\n")
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		io.Copy(io.Discard, c)
		c.Close()
		waitLog(t, &log, 2, "http: TLS handshake error")
	})
	t.Run("H2C", func(t *testing.T) {
		var log lockedBuffer
		s := startLogging(t, &log, "-h2c", "-log-level", "debug")
		c, err := net.Dial("tcp", strings.TrimPrefix(s.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		// The preface, then a PING where SETTINGS must come first.
		fmt.Fprintf(c, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
		c.Write([]byte{0, 0, 8, 0x6, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8})
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		io.Copy(io.Discard, c)
		c.Close()
		waitLog(t, &log, 1, "http2: server connection error")
	})
}

// waitLog waits until log has n Debug lines containing msg, then fails
// if any line is at Warn or above.
func waitLog(t *testing.T, log *lockedBuffer, n int, msg string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := 0
		for _, line := range strings.Split(log.String(), "\n") {
			if strings.Contains(line, "level=DEBUG") && strings.Contains(line, msg) {
				got++
			}
		}
		if got >= n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d Debug lines with %q after 5 s, want %d; log:\n%s", got, msg, n, log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, line := range strings.Split(log.String(), "\n") {
		if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
			t.Errorf("logged %s", line)
		}
	}
}

func TestServerErrorLog(t *testing.T) {
	for _, tc := range []struct {
		line  string
		level string
	}{
		{"http: TLS handshake error from 192.0.2.1:4000: EOF", "DEBUG"},
		{"http: TLS handshake error from 192.0.2.1:4000: client sent an HTTP request to an HTTPS server", "DEBUG"},
		{"http2: server connection error from 192.0.2.1:4000: connection error: PROTOCOL_ERROR", "DEBUG"},
		{"http2: server: error reading preface from client 192.0.2.1:4000: bogus greeting", "DEBUG"},
		{"timeout waiting for SETTINGS frames from 192.0.2.1:4000", "DEBUG"},
		{"http: panic serving 192.0.2.1:4000: boom", "WARN"},
		{"http: Accept error: accept4: too many open files; retrying in 5ms", "WARN"},
		{"http: superfluous response.WriteHeader call from x (y.go:1)", "WARN"},
	} {
		var buf bytes.Buffer
		l := serverErrorLog(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
		l.Print(tc.line)
		if got := buf.String(); !strings.Contains(got, "level="+tc.level) || !strings.Contains(got, strconv.Quote(tc.line)) {
			t.Errorf("%q logged as %q, want level=%s", tc.line, got, tc.level)
		}
	}
}

// lockedBuffer is a bytes.Buffer safe for concurrent use.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
