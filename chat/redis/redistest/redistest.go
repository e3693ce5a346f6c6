// Package redistest runs a throwaway redis-server for tests, and a TCP proxy
// that can cut a client off it, so tests of any package can exercise the
// Redis store against the real thing:
//
//	srv := redistest.Start(t, redistest.Options{})
//	store, err := redis.Open(t.Context(), srv.URL(), redis.Options{})
//
// StartCluster runs a Redis Cluster of 3 masters and 3 replicas instead, and
// can kill a master and wait for its failover:
//
//	c := redistest.StartCluster(t)
//	client := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: c.Seeds()})
//
// When redis-server (or, for StartCluster, redis-cli or Redis 7) is not
// installed, Start and StartCluster fail the test if the CI environment
// variable is set and skip it otherwise.
package redistest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// startTimeout bounds how long a redis-server may take to answer PING.
const startTimeout = 10 * time.Second

// Options configures a Server.
type Options struct {
	// AppendOnly turns on the append-only file with an fsync per write, so
	// everything acknowledged survives Stop (a SIGKILL) and Start.
	AppendOnly bool
}

// Server is a redis-server listening on 127.0.0.1, with its data in a
// temporary directory. It is stopped when the test ends.
type Server struct {
	// Addr is host:port; it stays the same across Stop and Start.
	Addr string

	t    testing.TB
	path string
	args []string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	out    *lockedBuffer
}

// Start starts a redis-server on a free port and waits until it answers
// PING. It calls t.Fatal if it cannot (t.Skip outside CI when redis-server
// is not installed).
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("redis-server is not installed (%v); CI must provide it (apt-get install redis-server)", err)
		}
		t.Skipf("redis-server is not installed (%v); install it (apt-get install redis-server) to run this test", err)
	}
	dir := t.TempDir()
	var errs []error
	// The port is free when picked but may be taken before redis-server
	// binds it; pick again a few times.
	for range 5 {
		port, err := freePort()
		if err != nil {
			t.Fatalf("redistest: pick a port: %v", err)
		}
		s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), t: t, path: path}
		s.args = []string{
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
			"--save", "", "--daemonize", "no", "--logfile", "",
		}
		if opts.AppendOnly {
			s.args = append(s.args, "--appendonly", "yes", "--appendfsync", "always")
		} else {
			s.args = append(s.args, "--appendonly", "no")
		}
		if err := s.start(); err != nil {
			errs = append(errs, err)
			continue
		}
		t.Cleanup(s.Stop)
		return s
	}
	t.Fatalf("redistest: cannot start redis-server: %v", errors.Join(errs...))
	return nil
}

// URL returns the server's URL for database 0.
func (s *Server) URL() string { return "redis://" + s.Addr + "/0" }

// Stop kills the server (SIGKILL, like a crash) and waits for it to exit.
// It does nothing when the server is not running.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
}

// Start starts the stopped server again on the same port with the same data
// directory, and waits until it answers PING. It calls t.Fatal if it cannot.
func (s *Server) Start() {
	s.t.Helper()
	if err := s.start(); err != nil {
		s.t.Fatalf("redistest: restart redis-server: %v", err)
	}
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return fmt.Errorf("redis-server on %s is already running", s.Addr)
	}
	out := &lockedBuffer{}
	cmd := exec.Command(s.path, s.args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	deadline := time.Now().Add(startTimeout)
	for {
		err := ping(s.Addr)
		if err == nil {
			s.cmd, s.exited, s.out = cmd, exited, out
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("redis-server on %s exited: %s", s.Addr, out.tail())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("redis-server on %s did not answer PING within %v (%v): %s", s.Addr, startTimeout, err, out.tail())
		}
	}
}

// Log returns the end of the server's output, for failure messages.
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.out == nil {
		return ""
	}
	return s.out.tail()
}

// ping sends PING and expects +PONG (-LOADING while the server reads its
// data counts as not ready).
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := io.WriteString(c, "PING\r\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line = strings.TrimSpace(line); line != "+PONG" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) tail() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	if len(s) > 2000 {
		s = "…" + s[len(s)-2000:]
	}
	return s
}

// Proxy forwards TCP connections to a target address. Cut and Stall simulate
// network failures between the proxy's clients and Redis while other
// clients still reach it. It is closed when the test ends.
type Proxy struct {
	// Addr is the proxy's host:port.
	Addr   string
	target string
	ln     net.Listener

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]*atomic.Bool // open connections, and whether they are stalled
	wg    sync.WaitGroup
}

// NewProxy starts a proxy on 127.0.0.1 forwarding to target.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("redistest: proxy listen: %v", err)
	}
	p := &Proxy{Addr: ln.Addr().String(), target: target, ln: ln, conns: make(map[net.Conn]*atomic.Bool)}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// URL returns the proxy's URL for database 0.
func (p *Proxy) URL() string { return "redis://" + p.Addr + "/0" }

// Cut closes every proxied connection, and closes new ones at once until
// Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		_ = c.Close()
	}
}

// Stall makes every proxied connection open now drop all data in both
// directions while staying open, like a peer gone behind a dead NAT entry:
// the client sees no error, only silence. New connections are not affected.
func (p *Proxy) Stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, stalled := range p.conns {
		stalled.Store(true)
	}
}

// Restore lets new connections through again.
func (p *Proxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
}

func (p *Proxy) close() {
	_ = p.ln.Close()
	p.Cut()
	p.wg.Wait()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		p.wg.Add(1)
		p.mu.Unlock()
		go p.forward(c)
	}
}

func (p *Proxy) forward(c net.Conn) {
	defer p.wg.Done()
	up, err := net.DialTimeout("tcp", p.target, time.Second)
	if err != nil {
		_ = c.Close()
		return
	}
	stalled := &atomic.Bool{}
	p.mu.Lock()
	if p.cut {
		p.mu.Unlock()
		_ = c.Close()
		_ = up.Close()
		return
	}
	p.conns[c], p.conns[up] = stalled, stalled
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 && !stalled.Load() {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		_ = dst.Close()
		_ = src.Close()
		done <- struct{}{}
	}
	go pipe(up, c)
	go pipe(c, up)
	<-done
	<-done
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}
