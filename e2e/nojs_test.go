package e2e

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// frameWait bounds how long a message takes to show in the live log frame
// of a window without JavaScript (issue 14: within 2 s).
const frameWait = 2 * time.Second

// The page functions the log frame tests use. DevTools evaluates them even
// where the page's own scripts are disabled, and the frame is same-origin,
// so its document is readable from the room page.
const (
	// jsFrameTexts: the texts of the messages in the log frame, or null
	// while it has no document.
	jsFrameTexts = `() => {
		const f = document.querySelector('iframe.log-frame');
		const d = f && f.contentDocument;
		return d ? [...d.querySelectorAll('.msg .text')].map(e => e.textContent) : null;
	}`
	// jsFrameNewestVisible: the frame's newest message is wholly in view.
	// jsFrameHas: the log frame shows a message with exactly text.
	jsFrameHas = `(text) => { const f = document.querySelector('iframe.log-frame'); const d = f && f.contentDocument; return !!d && [...d.querySelectorAll('.msg .text')].some(e => e.textContent === text) }`
	// jsFrameRefresh: the frame's document has a refresh element.
	jsFrameRefresh       = `() => { const d = document.querySelector('iframe.log-frame').contentDocument; return !!d && !!d.querySelector('meta[http-equiv="refresh" i]') }`
	jsFrameNewestVisible = `() => {
		const d = document.querySelector('iframe.log-frame').contentDocument;
		const items = d.querySelectorAll('.msg');
		if (items.length === 0) return false;
		const r = items[items.length - 1].getBoundingClientRect();
		return r.top >= -1 && r.bottom <= d.documentElement.clientHeight + 1;
	}`
)

// With JavaScript off the room page shows the live log in a frame: a
// message sent from another window appears in it within 2 s, with no
// refresh timer, while the text typed in the form (outside the frame) is
// kept. When the server restarts, the frame comes back by itself and shows
// the next message. With JavaScript on, neither the frame nor its
// stylesheet is loaded.
func TestLiveWithoutJavaScript(t *testing.T) {
	b := newBrowser(t)
	db := filepath.Join(t.TempDir(), "hxchat.db")
	addr := freeAddr(t)
	args := []string{"-addr", addr, "-db", db, "-sse-retry", "1s"}
	srv := startServer(t, args...)
	const room = "nojs"
	// Enough history that the frame scrolls: the newest must be in view.
	for i := 1; i <= 30; i++ {
		srv.post(t, room, fmt.Sprintf("backlog %d", i))
	}
	plain := b.newWindow("no-JavaScript window", withoutJavaScript())
	live := b.newWindow("JavaScript window")
	plain.visit(srv.roomURL(room))
	live.open(srv.roomURL(room))

	plain.waitFor(stepTimeout, "the log frame shows the history", `() => { const t = (`+jsFrameTexts+`)(); return !!t && t.length === 30 }`)
	if !eval[bool](plain, jsFrameNewestVisible) {
		t.Errorf("the log frame does not show its newest message on load")
	}
	if got := eval[string](plain, `() => getComputedStyle(document.querySelector('.log-scroll')).display`); got != "none" {
		t.Errorf("without JavaScript the live log is shown too (display %q), want it hidden by noscript.css", got)
	}
	const draft = "half a thought, not sent"
	plain.do(chromedp.SendKeys(chromedp.ID("message"), draft))

	live.send("hello from the live window")
	live.waitMessage("hello from the live window")
	sent := time.Now()
	plain.waitFor(frameWait, "the message reaches the log frame", jsFrameHas, "hello from the live window")
	t.Logf("the message reached the frame %v after it was sent", time.Since(sent).Round(10*time.Millisecond))
	if !eval[bool](plain, jsFrameNewestVisible) {
		t.Errorf("the log frame does not show the new message without scrolling")
	}
	if eval[bool](plain, jsFrameRefresh) {
		t.Errorf("the open log frame has a refresh element")
	}
	if got := eval[string](plain, `() => document.querySelector('iframe.log-frame').contentDocument.title`); got != "Messages · nojs · hxchat" {
		t.Errorf("the frame's document title is %q", got)
	}
	if got := eval[string](plain, `() => document.querySelector('iframe.log-frame').contentDocument.querySelector('.log').getAttribute('aria-live')`); got != "polite" {
		t.Errorf("the frame's log is aria-live %q, want polite", got)
	}
	if got := eval[int](plain, `(text) => (`+jsFrameTexts+`)().filter(x => x === text).length`, "hello from the live window"); got != 1 {
		t.Errorf("the message is in the frame %d times, want once", got)
	}
	if got := eval[string](plain, `() => document.getElementById('message').value`); got != draft {
		t.Errorf("#message holds %q after the frame reloaded, want the draft %q kept", got, draft)
	}

	// With JavaScript, <noscript> is not parsed: no frame element, and
	// neither the log page nor noscript.css was requested.
	if n := eval[int](live, `() => document.querySelectorAll('iframe').length`); n != 0 {
		t.Errorf("the JavaScript window has %d iframes, want none", n)
	}
	if got := eval[[]string](live, `() => performance.getEntriesByType('resource').map(e => e.name).filter(n => n.includes('/log') || n.includes('noscript.css'))`); len(got) != 0 {
		t.Errorf("the JavaScript window loaded %q, want neither the log page nor noscript.css", got)
	}

	// The server restarts (SIGTERM, then back on the same address and
	// file): the drain ends the frame's document with a refresh element,
	// and the frame loads the live log again by itself.
	allowOffline(live)
	allowOffline(plain)
	stopProcess(t, srv.PID)
	if !eval[bool](plain, jsFrameRefresh) {
		t.Errorf("the drained frame's document does not end with a refresh element")
	}
	again := startServer(t, args...)
	again.post(t, room, "after the restart")
	plain.waitFor(10*time.Second, "the frame comes back by itself with the next message", jsFrameHas, "after the restart")
	if eval[bool](plain, jsFrameRefresh) {
		t.Errorf("the reloaded, open frame has a refresh element")
	}
	again.post(t, room, "live again")
	plain.waitFor(frameWait, "the reloaded frame is live", jsFrameHas, "live again")
}
