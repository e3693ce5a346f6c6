// Package servertest runs the real hxchat binary for tests: it builds it
// once, starts it on a free loopback port, waits until it is healthy and
// stops it when the test ends. The end-to-end tests and the load tool's
// smoke test share it.
package servertest

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// htmxFiles are the files `make build` copies from npm into static/dist; the
// binary embeds them and refuses to start without them.
var htmxFiles = []string{"htmx.min.js", "hx-sse.min.js", "hx-upsert.min.js"}

// Build builds cmd/hxchat of the module at root into dir and returns the
// binary's path. It fails when the htmx files are missing (run make build).
func Build(root, dir string) (string, error) {
	for _, f := range htmxFiles {
		if _, err := os.Stat(filepath.Join(root, "static", "dist", f)); err != nil {
			return "", fmt.Errorf("static/dist/%s is missing: run make build first", f)
		}
	}
	binary := filepath.Join(dir, "hxchat")
	build := exec.Command("go", "build", "-o", binary, "./cmd/hxchat")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/hxchat: %v\n%s", err, out)
	}
	return binary, nil
}

// Client talks to test servers, trusting the self-signed certificates of
// -tls-self-signed.
var Client = &http.Client{Transport: &http.Transport{
	TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
	ForceAttemptHTTP2: true,
}}

// Server is one running hxchat process.
type Server struct {
	URL string // "http://127.0.0.1:PORT", without a trailing slash
	PID int

	killed atomic.Bool // killed on purpose: its exit status is not checked
}

// Kill ends the process with SIGKILL, as a crash would.
func (s *Server) Kill(t testing.TB) {
	t.Helper()
	s.killed.Store(true)
	if err := syscall.Kill(s.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
}

// Start runs binary with args (which should include -addr 127.0.0.1:0),
// reads the URL from its first line, waits until /healthz answers and
// stops it (SIGTERM, then wait; it must exit cleanly unless killed) in
// t.Cleanup. Its log is shown when the test fails.
func Start(t testing.TB, binary string, args ...string) *Server {
	t.Helper()
	stdout := &firstLine{line: make(chan string, 1)}
	var stderr LockedBuffer
	cmd := exec.Command(binary, args...)
	cmd.Stdout = stdout
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start hxchat: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	s := &Server{PID: cmd.Process.Pid}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil && !s.killed.Load() {
				t.Errorf("hxchat did not stop cleanly: %v", err)
			}
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("hxchat did not stop within 10s of SIGTERM")
		}
		if t.Failed() {
			t.Logf("hxchat log:\n%s", stderr.String())
		}
	})

	var line string
	select {
	case line = <-stdout.line:
	case err := <-exited:
		exited <- err // for the cleanup
		t.Fatalf("hxchat exited before serving: %v\n%s", err, stderr.String())
	case <-time.After(10 * time.Second):
		t.Fatalf("hxchat printed no address within 10s\n%s", stderr.String())
	}
	rest, ok := strings.CutPrefix(line, "hxchat serving on ")
	u, err := url.Parse(rest)
	if !ok || err != nil || u.Host == "" {
		t.Fatalf("first line of output = %q, want \"hxchat serving on http://HOST:PORT/\"", line)
	}
	s.URL = strings.TrimSuffix(rest, "/")

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/healthz", nil)
		resp, err := Client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("GET /healthz: no 200 within 10s (last error %v)", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// firstLine is an io.Writer for a process's stdout that hands on the first
// line and discards the rest.
type firstLine struct {
	mu   sync.Mutex
	buf  []byte
	done bool
	line chan string
}

func (w *firstLine) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return len(p), nil
	}
	w.buf = append(w.buf, p...)
	if i := bytes.IndexByte(w.buf, '\n'); i >= 0 {
		w.done = true
		w.line <- strings.TrimRight(string(w.buf[:i]), "\r")
		w.buf = nil
	}
	return len(p), nil
}

// LockedBuffer is a bytes.Buffer safe for a writer and a reader on other
// goroutines, keeping at most its last 64 KiB.
type LockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

const lockedBufferMax = 64 << 10

func (b *LockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	if over := b.buf.Len() - lockedBufferMax; over > 0 {
		b.buf.Next(over)
	}
	return n, err
}

func (b *LockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
