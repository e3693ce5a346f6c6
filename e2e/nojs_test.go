package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// frameWait bounds how long a message takes to show in the log frame of a
// window without JavaScript: the frame reloads every 5 s.
const frameWait = 6 * time.Second

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
	jsFrameNewestVisible = `() => {
		const d = document.querySelector('iframe.log-frame').contentDocument;
		const items = d.querySelectorAll('.msg');
		if (items.length === 0) return false;
		const r = items[items.length - 1].getBoundingClientRect();
		return r.top >= -1 && r.bottom <= d.documentElement.clientHeight + 1;
	}`
)

// With JavaScript off the room page shows the log in a frame that reloads
// itself, so a message sent from another window appears within 6 s while
// the text typed in the form (outside the frame) is kept. With JavaScript
// on, neither the frame nor its stylesheet is loaded.
func TestLiveWithoutJavaScript(t *testing.T) {
	b := newBrowser(t)
	srv := startServer(t)
	const room = "nojs"
	// Enough history that the frame scrolls: the newest must be in view.
	for i := 1; i <= 30; i++ {
		srv.post(t, room, fmt.Sprintf("backlog %d", i))
	}
	plain := b.newWindow("no-JavaScript window", withoutJavaScript())
	live := b.newWindow("JavaScript window")
	plain.do(chromedp.Navigate(srv.roomURL(room)))
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
	plain.waitFor(frameWait, "the message reaches the log frame", `(text) => { const t = (`+jsFrameTexts+`)(); return !!t && t.includes(text) }`, "hello from the live window")
	t.Logf("the message reached the frame %v after it was sent", time.Since(sent).Round(10*time.Millisecond))
	if !eval[bool](plain, jsFrameNewestVisible) {
		t.Errorf("after a reload the log frame does not show its newest message")
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
}
