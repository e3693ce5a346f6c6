package main

// Connection limits: every TCP connection holds a file descriptor, and one
// address that opens thousands and sends nothing (each held for the
// header timeout) or leaves keep-alive connections idle (held for
// -idle-timeout) would otherwise use up RLIMIT_NOFILE; then Accept fails
// for everyone, /healthz included. The listener counts the connections it
// hands out, per client address and in total, and closes one beyond either
// bound as soon as it is accepted: Accept never waits for a slot, since
// connections waiting in the kernel's backlog would be lost to everyone.

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hxchat/hxchat/handlers"
)

// Reasons a connection is refused, the label of
// hxchat_connections_refused_total.
const (
	refusedPerClient = "per_client"
	refusedTotal     = "total"
)

// connLogInterval is the least time between two log lines about refused
// connections of one reason: a flood of them must not flood the log.
const connLogInterval = 10 * time.Second

// connLimits are the bounds a connLimiter enforces; 0 is no limit.
type connLimits struct {
	perClient int
	total     int
	trusted   []netip.Prefix // proxies: every client behind one shares its address
}

// connLimiter counts the connections open through its listeners and
// refuses those beyond its limits. It never blocks: a refused connection
// is closed as soon as it is accepted.
type connLimiter struct {
	limits  connLimits
	logger  *slog.Logger
	refused *prometheus.CounterVec

	mu      sync.Mutex
	open    int
	clients map[netip.Addr]int // open connections per client key; absent: none

	logs map[string]*logEvery // by reason; fixed at construction
}

// newConnLimiter returns a limiter and registers its metrics with reg:
// hxchat_connections_open and hxchat_connections_refused_total{reason}.
func newConnLimiter(limits connLimits, logger *slog.Logger, reg prometheus.Registerer) *connLimiter {
	l := &connLimiter{
		limits:  limits,
		logger:  logger,
		clients: make(map[netip.Addr]int),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hxchat_connections_refused_total",
			Help: "TCP connections closed as soon as accepted: their client address held -max-conns-per-client (per_client), or -max-conns were open (total)."}, []string{"reason"}),
		logs: map[string]*logEvery{refusedPerClient: {every: connLogInterval}, refusedTotal: {every: connLogInterval}},
	}
	l.refused.WithLabelValues(refusedPerClient)
	l.refused.WithLabelValues(refusedTotal)
	reg.MustRegister(l.refused, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hxchat_connections_open",
		Help: "TCP connections open, including taken-over streams."}, func() float64 { return float64(l.Open()) }))
	return l
}

// Open returns how many connections are open.
func (l *connLimiter) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

// listen returns ln wrapped so that the connections it accepts are
// counted and those beyond the limits closed.
func (l *connLimiter) listen(ln net.Listener) net.Listener {
	return &limitListener{Listener: ln, l: l}
}

// acquire counts a connection from peer, or returns the reason it is
// refused. A peer in the trusted proxies counts only towards the total.
func (l *connLimiter) acquire(peer netip.Addr) (key netip.Addr, perClient bool, refused string) {
	perClient = l.limits.perClient > 0 && !handlers.TrustedAddr(peer, l.limits.trusted)
	key = handlers.ClientKey(peer)
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.limits.total > 0 && l.open >= l.limits.total:
		return key, false, refusedTotal
	case perClient && l.clients[key] >= l.limits.perClient:
		return key, false, refusedPerClient
	}
	l.open++
	if perClient {
		l.clients[key]++
	}
	return key, perClient, ""
}

// release uncounts a connection acquire counted.
func (l *connLimiter) release(key netip.Addr, perClient bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if !perClient {
		return
	}
	if n := l.clients[key] - 1; n > 0 {
		l.clients[key] = n
	} else {
		delete(l.clients, key) // the map holds only clients with connections
	}
}

// refuse counts a refused connection and logs it, at most once per
// connLogInterval and reason: at Warn when the node is full, at Debug
// when one client is at its limit (its business, not the operator's).
func (l *connLimiter) refuse(reason string, key netip.Addr) {
	l.refused.WithLabelValues(reason).Inc()
	n, ok := l.logs[reason].allow(time.Now())
	if !ok {
		return
	}
	level, limit := slog.LevelDebug, l.limits.perClient
	if reason == refusedTotal {
		level, limit = slog.LevelWarn, l.limits.total
	}
	l.logger.LogAttrs(context.Background(), level, "connection refused: too many open",
		slog.String("reason", reason), slog.Int("limit", limit), slog.String("client", key.String()),
		slog.Int("refused", n)) // since the last such line, this one included
}

// peerAddr is the address of c's peer, without zone, an IPv4-mapped IPv6
// address as IPv4; the zero Addr (one shared key) when it is not an IP.
func peerAddr(c net.Conn) netip.Addr {
	var a netip.Addr
	switch ra := c.RemoteAddr().(type) {
	case *net.TCPAddr:
		a = ra.AddrPort().Addr()
	case nil:
	default:
		ap, err := netip.ParseAddrPort(ra.String())
		if err != nil {
			return netip.Addr{}
		}
		a = ap.Addr()
	}
	return a.WithZone("").Unmap()
}

// limitListener is a listener whose connections a connLimiter counts.
type limitListener struct {
	net.Listener
	l *connLimiter
}

// Accept returns the next connection within the limits; those beyond are
// closed and counted without returning.
func (ll *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := ll.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key, perClient, refused := ll.l.acquire(peerAddr(c))
		if refused != "" {
			_ = c.Close()
			ll.l.refuse(refused, key)
			continue
		}
		return &limitConn{Conn: c, release: func() { ll.l.release(key, perClient) }}, nil
	}
}

// limitConn is a counted connection: closing it releases its count, once,
// however often it is closed. It is what net/http and the handlers that
// take a stream over get, so it passes on what they look for on a
// *net.TCPConn: the file descriptor (syscall.Conn, for the hangup
// watcher), CloseWrite (a stream's and net/http's clean end) and ReadFrom
// (sendfile).
type limitConn struct {
	net.Conn
	released atomic.Bool
	release  func()
}

// Close closes the connection and releases its count the first time.
func (c *limitConn) Close() error {
	err := c.Conn.Close()
	if c.released.CompareAndSwap(false, true) {
		c.release()
	}
	return err
}

// NetConn returns the connection underneath, as tls.Conn.NetConn does.
func (c *limitConn) NetConn() net.Conn { return c.Conn }

// errNotSupported is returned by the methods limitConn passes on to a
// connection that lacks them.
var errNotSupported = errors.New("not supported by the underlying connection")

// SyscallConn returns the underlying connection's raw connection.
func (c *limitConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errNotSupported
}

// CloseWrite shuts down the sending side of the underlying connection.
func (c *limitConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errNotSupported
}

// ReadFrom lets the underlying connection copy from r its own way
// (sendfile, splice).
func (c *limitConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

// logEvery allows one event per interval and counts those in between.
type logEvery struct {
	every time.Duration

	mu     sync.Mutex
	last   time.Time
	counts int // events since the last allowed one
}

// allow counts an event at now and reports whether it may be logged, with
// the events since the last one that was, this one included.
func (e *logEvery) allow(now time.Time) (n int, ok bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.counts++
	if !e.last.IsZero() && now.Sub(e.last) < e.every {
		return 0, false
	}
	n, e.counts, e.last = e.counts, 0, now
	return n, true
}
