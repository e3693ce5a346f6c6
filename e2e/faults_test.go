package e2e

// The faults an open tab meets, tried in Chromium as a person would meet
// them: the node is full, the server crashes, the server is down for a
// while, Redis loses its data. After each the tab is live again within what
// the reconnect policy promises (views.Reconnect*, the server's retry:), and
// every message is in its log exactly once. The recovery times are logged.

import (
	"bufio"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/hxchat/hxchat/chat/redis/redistest"
	"github.com/hxchat/hxchat/views"
)

// faultRetry is the -sse-retry the fault tests give the server: the delay
// it advertises on every stream, and (stretched by up to half) on a
// refused one.
const faultRetry = 2 * time.Second

// settleMargin is what a recovery bound allows beyond the reconnect delay
// itself: the connect, the replay and the swap, on a busy test machine.
const settleMargin = 2 * time.Second

// worstDelay is the longest htmx waits before a reconnect that follows a
// delay d (the server's retry, or its own backoff): capped by
// reconnectMaxDelay, then stretched by the jitter.
func worstDelay(d time.Duration) time.Duration {
	d = min(d, views.ReconnectMaxDelay)
	return time.Duration(float64(d) * (1 + views.ReconnectJitter))
}

func TestFaults(t *testing.T) {
	t.Run("MaxStreams", func(t *testing.T) { t.Parallel(); testFaultMaxStreams(t) })
	t.Run("Kill9Restart", func(t *testing.T) { t.Parallel(); testFaultKill9Restart(t) })
	t.Run("Outage25s", func(t *testing.T) { t.Parallel(); testFaultOutage(t) })
	t.Run("RedisFlushAll", func(t *testing.T) { t.Parallel(); testFaultRedisFlushAll(t) })
}

// The page functions of these tests.
const (
	// jsStatusText: what #stream-status says.
	jsStatusText = `() => { const s = document.getElementById('stream-status'); return s ? s.textContent : null }`
	// jsPaused: #stream-status says live updates are paused.
	jsPaused = `() => { const s = document.getElementById('stream-status'); return !!s && s.textContent.includes('Live updates paused') }`
	// jsStatusEmpty: #stream-status is there and says nothing.
	jsStatusEmpty = `() => { const s = document.getElementById('stream-status'); return !!s && s.textContent === '' && s.children.length === 0 }`
	// jsLogEntries: every entry of the log keyed msg-…: messages (with
	// their text) and notices (text null).
	jsLogEntries = `() => [...document.querySelectorAll('#log li[id^="msg-"]')].map(e => ({
		id: e.id, text: e.classList.contains('msg') ? e.querySelector('.text').textContent : null }))`
	// jsLogCount: how many entries of the log show text.
	jsLogCount = `(text) => [...document.querySelectorAll('#log .msg .text')].filter(e => e.textContent === text).length`
)

type logEntry struct {
	ID   string  `json:"id"`
	Text *string `json:"text"`
}

// checkExactlyOnce checks the whole log: no id twice, no message text
// twice (every text the tests post is unique), and each of want there. It
// also checks the whole document has each message id once (nothing was
// swapped outside the log).
func checkExactlyOnce(t *testing.T, w *window, want ...string) {
	t.Helper()
	entries := eval[[]logEntry](w, jsLogEntries)
	ids := map[string]int{}
	texts := map[string]int{}
	for _, e := range entries {
		ids[e.ID]++
		if e.Text != nil {
			texts[*e.Text]++
		}
	}
	for id, n := range ids {
		if n != 1 {
			t.Errorf("%s: log entry %s is there %d times", w.name, id, n)
		}
	}
	for text, n := range texts {
		if n != 1 {
			t.Errorf("%s: message %q is in the log %d times", w.name, text, n)
		}
	}
	for _, text := range want {
		if texts[text] != 1 {
			t.Errorf("%s: message %q is in the log %d times, want once", w.name, text, texts[text])
		}
	}
	if stray := eval[[]string](w, `() => [...document.getElementById('log').children].filter(e => e.tagName !== 'LI').map(e => e.outerHTML)`); len(stray) > 0 {
		t.Errorf("%s: the log holds elements that are no entries (a stream notice swapped into it?): %q", w.name, stray)
	}
	all := eval[[]string](w, jsMsgIDs)
	if len(all) != len(entries) {
		t.Errorf("%s: %d msg- elements in the document, %d in the log: %q", w.name, len(all), len(entries), all)
	}
	if t.Failed() {
		t.Logf("%s: log entries %s", w.name, describeEntries(entries))
	}
}

func describeEntries(es []logEntry) string {
	var b strings.Builder
	for _, e := range es {
		if e.Text != nil {
			fmt.Fprintf(&b, "%s=%q ", e.ID, *e.Text)
		} else {
			fmt.Fprintf(&b, "%s ", e.ID)
		}
	}
	return b.String()
}

// allowOffline excuses what Chromium logs about the failed reconnects while
// the server is down: that is the page retrying, as it should.
func allowOffline(w *window) {
	w.allow(func(entry string) bool {
		return strings.Contains(entry, "ERR_CONNECTION_REFUSED") || strings.Contains(entry, "Failed to fetch") ||
			strings.Contains(entry, "ERR_CONNECTION_RESET") || strings.Contains(entry, "ERR_EMPTY_RESPONSE") ||
			strings.Contains(entry, "ERR_INCOMPLETE_CHUNKED_ENCODING") || strings.Contains(entry, "network error")
	})
}

// waitShown waits up to d until the log shows text, and returns how long
// that took from since.
func waitShown(t *testing.T, w *window, since time.Time, d time.Duration, what, text string) time.Duration {
	t.Helper()
	w.waitFor(d-time.Since(since), fmt.Sprintf("%s: message %q appears in the log", what, text), jsLogHas, text)
	return time.Since(since)
}

// A tab opened while the node is at -max-streams is refused: it says so,
// and goes live by itself once a slot frees, within the refused stream's
// retry (stretched by up to half) plus htmx's jitter.
func testFaultMaxStreams(t *testing.T) {
	srv := startServer(t, "-max-streams", "1", "-sse-retry", faultRetry.String())
	room := "full"
	srv.post(t, room, "before 1")
	b := newBrowser(t)
	a := b.newWindow("A")
	a.open(srv.roomURL(room))

	w := b.newWindow("B")
	w.do(chromedp.Navigate(srv.roomURL(room)))
	w.waitFor(liveTimeout, "B is told that live updates are paused", jsPaused)
	t.Logf("B while refused: %q", eval[string](w, jsStatusText))

	// B does not receive anything while refused.
	srv.post(t, room, "while refused")
	w.never("B shows a message while refused", jsLogHas, "while refused")

	// Tab A goes elsewhere: its stream ends and its slot frees.
	start := time.Now()
	a.do(chromedp.Navigate("about:blank"))
	bound := worstDelay(faultRetry+faultRetry/2) + settleMargin
	took := waitShown(t, w, start, bound, "B goes live once A left", "while refused")
	t.Logf("B live %v after A left (bound: retry %v ·1.5, capped at %v, +%.0f%% jitter, + %v = %v)",
		took.Round(time.Millisecond), faultRetry, views.ReconnectMaxDelay, views.ReconnectJitter*100, settleMargin, bound)
	w.waitFor(liveTimeout, "B's paused notice is gone once it is live", jsStatusEmpty)

	w.send("from B once live")
	w.waitMessage("from B once live")
	srv.post(t, room, "after 2")
	w.waitMessage("after 2")
	w.never("a message is shown twice", `() => [...document.querySelectorAll('#log .msg .text')].map(e => e.textContent).some((t, i, a) => a.indexOf(t) !== i)`)
	checkExactlyOnce(t, w, "before 1", "while refused", "from B once live", "after 2")
}

// SIGKILL, then the server back on the same address and SQLite file 3 s
// later: the open tab shows the next message, and nothing twice.
func testFaultKill9Restart(t *testing.T) {
	db := filepath.Join(t.TempDir(), "hxchat.db")
	addr := freeAddr(t)
	args := []string{"-addr", addr, "-db", db, "-sse-retry", faultRetry.String()}
	first := startServer(t, args...)
	room := "crash9"
	b := newBrowser(t)
	w := b.newWindow("window")
	allowOffline(w)
	w.open(first.roomURL(room))
	for _, m := range []string{"before 1", "before 2"} {
		w.send(m)
		w.waitMessage(m)
	}

	first.Kill(t)
	waitGone(t, first.PID)
	killed := time.Now()
	time.Sleep(3 * time.Second)
	back := time.Now()
	second := startServer(t, args...)
	ready := time.Now()
	second.post(t, room, "after the crash")
	// Down about 3 s: htmx's backoff from the server's retry has reached at
	// most reconnectMaxDelay, jittered.
	bound := worstDelay(views.ReconnectMaxDelay) + settleMargin
	took := waitShown(t, w, back, bound, "after kill -9 and a restart", "after the crash")
	t.Logf("kill -9, restart %v later (ready in %v): the message shows %v after the restart began (bound %v)",
		back.Sub(killed).Round(time.Millisecond), ready.Sub(back).Round(time.Millisecond), took.Round(time.Millisecond), bound)

	w.send("live again")
	w.waitMessage("live again")
	checkExactlyOnce(t, w, "before 1", "before 2", "after the crash", "live again")
}

// The server is down for 25 s (SIGTERM, then back on the same address and
// SQLite file): a message posted right after the restart shows in the open
// tab within 6 s, the promise of the reconnect policy (layout.templ).
func testFaultOutage(t *testing.T) {
	const (
		outage  = 25 * time.Second
		promise = 6 * time.Second
	)
	if worst := worstDelay(views.ReconnectMaxDelay); worst >= promise {
		t.Fatalf("the reconnect policy waits up to %v between attempts: it cannot keep the %v promise", worst, promise)
	}
	db := filepath.Join(t.TempDir(), "hxchat.db")
	addr := freeAddr(t)
	args := []string{"-addr", addr, "-db", db, "-sse-retry", faultRetry.String()}
	first := startServer(t, args...)
	room := "outage"
	b := newBrowser(t)
	w := b.newWindow("window")
	allowOffline(w)
	w.open(first.roomURL(room))
	w.send("before")
	w.waitMessage("before")

	stopProcess(t, first.PID)
	time.Sleep(outage)
	back := time.Now() // before the process starts: a conservative clock
	second := startServer(t, args...)
	ready := time.Now()
	second.post(t, room, "after the outage")
	took := waitShown(t, w, back, promise, "after a 25 s outage", "after the outage")
	t.Logf("down %v: the message shows %v after the restart began (server ready in %v; promise %v, policy worst case %v + connect)",
		outage, took.Round(time.Millisecond), ready.Sub(back).Round(time.Millisecond), promise, worstDelay(views.ReconnectMaxDelay))

	w.send("live again")
	w.waitMessage("live again")
	checkExactlyOnce(t, w, "before", "after the outage", "live again")
}

// Redis loses its data (FLUSHALL) under an open tab: the room's history has
// a new epoch, so the tab's log is replaced by a snapshot of the new
// history, then goes on live; nothing shows twice.
func testFaultRedisFlushAll(t *testing.T) {
	r := redistest.Start(t, redistest.Options{})
	srv := startServer(t, "-redis", r.URL(), "-sse-retry", faultRetry.String())
	room := "flushed"
	b := newBrowser(t)
	w := b.newWindow("window")
	allowOffline(w)
	w.open(srv.roomURL(room))
	for _, m := range []string{"old 1", "old 2", "old 3"} {
		w.send(m)
		w.waitMessage(m)
	}

	redisDo(t, r.Addr, "FLUSHALL")
	start := time.Now()
	srv.post(t, room, "after the flush")
	// The stream stays open, or is ended and resumes after the server's
	// retry; either way the reset shows within a reconnect.
	bound := worstDelay(faultRetry) + settleMargin + liveTimeout
	took := waitShown(t, w, start, bound, "after FLUSHALL", "after the flush")
	t.Logf("FLUSHALL: the next message shows %v after it was posted (bound %v)", took.Round(time.Millisecond), bound)
	// The old messages belong to a history that is gone: the snapshot
	// replaced them (the new "after the flush" has seq 1, as "old 1" had).
	w.waitFor(liveTimeout, "the log is replaced by the new history",
		`() => { const t = [...document.querySelectorAll('#log .msg .text')].map(e => e.textContent); return t.length === 1 && t[0] === 'after the flush' }`)

	w.send("live after the flush")
	w.waitMessage("live after the flush")
	if n := eval[int](w, jsLogCount, "after the flush"); n != 1 {
		t.Errorf("\"after the flush\" is shown %d times, want once", n)
	}
	checkExactlyOnce(t, w, "after the flush", "live after the flush")
}

// redisDo sends one command (simple words only) to the Redis server at
// addr and expects +OK: RESP spoken directly, so the tests need no driver.
func redisDo(t *testing.T, addr string, args ...string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, stepTimeout)
	if err != nil {
		t.Fatalf("redis %s: %v", args[0], err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(stepTimeout))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write([]byte(b.String())); err != nil {
		t.Fatalf("redis %s: %v", args[0], err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "+OK\r\n" {
		t.Fatalf("redis %s: answer %q, %v; want +OK", args[0], line, err)
	}
}
