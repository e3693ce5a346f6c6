package e2e

import (
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"
)

// When the server comes back with an empty history (an in-memory store was
// restarted), a page whose log shows the old messages reconnects with a
// Last-Event-ID beyond the room's newest seq and gets a snapshot that
// replaces its whole log.
func TestStoreResetReplacesTheLog(t *testing.T) {
	b := newBrowser(t)
	addr := freeAddr(t)
	first := startServer(t, "-addr", addr, "-db", ":memory:")
	w := b.newWindow("window")
	// While the server is down, the browser reports its failed reconnects.
	w.allow(func(entry string) bool {
		return strings.Contains(entry, "ERR_CONNECTION_REFUSED") || strings.Contains(entry, "Failed to fetch")
	})
	w.open(first.roomURL("reset"))
	for _, m := range []string{"old 1", "old 2", "old 3"} {
		w.send(m)
		w.waitMessage(m)
	}

	stopProcess(t, first.PID)
	second := startServer(t, "-addr", addr, "-db", ":memory:")
	second.post(t, "reset", "new 1")

	w.waitFor(20*time.Second, "the log is replaced by the new history",
		`() => { const t = [...document.querySelectorAll('#log .msg .text')].map(e => e.textContent); return t.length === 1 && t[0] === 'new 1' }`)
	if !eval[bool](w, `() => !!document.getElementById('msg-0-reset')`) {
		t.Errorf("the log does not say that the history was reset")
	}
	// Live messages continue after the snapshot.
	second.post(t, "reset", "new 2")
	w.waitMessage("new 2")
	if got := eval[[]string](w, jsMsgIDs); strings.Join(got, " ") != "msg-0-reset msg-1 msg-2" {
		t.Errorf("log ids = %q, want the reset notice, msg-1, msg-2", got)
	}
}

// stopProcess sends SIGTERM and waits until the process is gone (startServer
// reaps it).
func stopProcess(t *testing.T, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d still running 10s after SIGTERM", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
