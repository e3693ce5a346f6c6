package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hxchat/hxchat/internal/servertest"
)

// binary is the hxchat binary that TestMain builds once for every test.
var binary string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "hxchat-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if binary, err = servertest.Build("..", dir); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	return m.Run()
}

// lockedBuffer collects a process's output for the failure log.
type lockedBuffer = servertest.LockedBuffer

// server is one running hxchat process.
type server struct {
	*servertest.Server
}

// startServer starts the binary on a free port with a 1 s heartbeat, its
// own SQLite file and the per-client limits off (tests post and connect
// from one address far faster than a person would; the limits have tests
// of their own), and stops it when the test ends.
func startServer(t testing.TB, args ...string) *server {
	t.Helper()
	db := filepath.Join(t.TempDir(), "hxchat.db")
	base := []string{"-addr", "127.0.0.1:0", "-heartbeat", "1s", "-db", db, "-post-rate", "0", "-max-streams-per-client", "0", "-max-conns-per-client", "0"}
	return &server{servertest.Start(t, binary, append(base, args...)...)}
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
