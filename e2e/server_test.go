package e2e

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

// binary is the hxchat binary that TestMain builds once for every test.
var binary string

// htmxFiles are the files `make build` copies from npm into static/dist; the
// binary embeds them and refuses to start without them.
var htmxFiles = []string{"htmx.min.js", "hx-sse.min.js", "hx-upsert.min.js"}

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	for _, f := range htmxFiles {
		if _, err := os.Stat(filepath.Join("..", "static", "dist", f)); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: static/dist/%s is missing: run make build first\n", f)
			return 1
		}
	}
	dir, err := os.MkdirTemp("", "hxchat-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "hxchat")
	build := exec.Command("go", "build", "-o", binary, "./cmd/hxchat")
	build.Dir = ".." // the module root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build ./cmd/hxchat: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// testClient talks to the servers, trusting the self-signed certificates
// of -tls-self-signed.
var testClient = &http.Client{Transport: &http.Transport{
	TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
	ForceAttemptHTTP2: true,
}}

// server is one running hxchat process.
type server struct {
	URL string // "http://127.0.0.1:PORT", without a trailing slash
	PID int

	killed atomic.Bool // killed on purpose: its exit status is not checked
}

// kill ends the process with SIGKILL, as a crash would.
func (s *server) kill(t testing.TB) {
	t.Helper()
	s.killed.Store(true)
	if err := syscall.Kill(s.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
}

// startServer starts the binary on a free port with a 1 s heartbeat, waits
// until /healthz answers and stops it (SIGTERM, then wait) in t.Cleanup. Its
// log is shown when the test fails.
func startServer(t testing.TB, args ...string) *server {
	t.Helper()
	stdout := &firstLine{line: make(chan string, 1)}
	var stderr lockedBuffer
	// The default store, SQLite, on a file of this test's own.
	db := filepath.Join(t.TempDir(), "hxchat.db")
	// Tests post and connect from one address far faster than a person
	// would: the per-client limits are off unless a test turns them on.
	base := []string{"-addr", "127.0.0.1:0", "-heartbeat", "1s", "-db", db, "-post-rate", "0", "-max-streams-per-client", "0"}
	cmd := exec.Command(binary, append(base, args...)...)
	cmd.Stdout = stdout
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start hxchat: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	s := &server{PID: cmd.Process.Pid}
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
		resp, err := testClient.Do(req)
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

// roomURL is the page of room (a plain ASCII name).
func (s *server) roomURL(room string) string {
	return s.URL + "/chat/" + url.PathEscape(room) + "/"
}

// post sends a message as a plain form post, without a browser, and expects
// the 303 back to the room that a stored message gets.
func (s *server) post(t *testing.T, room, text string) {
	t.Helper()
	client := &http.Client{
		Timeout:       5 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.PostForm(s.roomURL(room)+"messages", url.Values{"message": {text}})
	if err != nil {
		t.Fatalf("post %q to %s: %v", text, room, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("post %q to %s: status %d, want 303\n%s", text, room, resp.StatusCode, body)
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

// lockedBuffer is a bytes.Buffer safe for a writer and a reader on other
// goroutines, keeping at most its last 64 KiB.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

const lockedBufferMax = 64 << 10

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	if over := b.buf.Len() - lockedBufferMax; over > 0 {
		b.buf.Next(over)
	}
	return n, err
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
