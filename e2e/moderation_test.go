package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// The page functions of the deletion and scroll-back tests.
const (
	// jsMsgIDOf: the id of the log's message with exactly text, or "".
	jsMsgIDOf = `(text) => { const e = [...document.querySelectorAll('#log .msg .text')].find(e => e.textContent === text); return e ? e.closest('li').id : '' }`
	// jsDeleteShown: whether the delete control of message id is shown.
	jsDeleteShown = `(id) => { const f = document.querySelector('#' + id + ' .delete'); return !!f && getComputedStyle(f).display !== 'none' && f.getClientRects().length > 0 }`
	// jsIsPlaceholder: message id is the "message deleted" placeholder.
	jsIsPlaceholder = `(id) => { const e = document.getElementById(id); return !!e && e.classList.contains('deleted') && e.textContent.trim() === 'Message deleted' }`
	// jsTop: the top of element id in the viewport, in CSS pixels.
	jsTop = `(id) => document.getElementById(id).getBoundingClientRect().top`
	// jsLogIDs: the ids of the log's items, in document order.
	jsLogIDs = `() => [...document.querySelectorAll('#log > li')].map(e => e.id)`
)

// deleteOwn clicks the delete control of the message with text in w and
// returns the message's element id.
func (w *window) deleteOwn(text string) string {
	w.t.Helper()
	id := eval[string](w, jsMsgIDOf, text)
	if id == "" {
		w.t.Fatalf("%s: no message %q in the log", w.name, text)
	}
	if !eval[bool](w, jsDeleteShown, id) {
		w.t.Fatalf("%s: the delete control of %q (%s) is not shown", w.name, text, id)
	}
	w.do(chromedp.Click(chromedp.CSS("#" + id + " .delete button")))
	return id
}

// A message deleted in one window disappears from the other live, in its
// place a placeholder; the control shows only on the viewer's own
// messages; a reload does not bring the text back.
func TestDeleteOwnMessageLive(t *testing.T) {
	b := newBrowser(t)
	srv := startServer(t)
	alice := b.newWindow("alice")
	bob := b.newWindow("bob")
	room := srv.roomURL("deletion")
	alice.open(room)
	bob.open(room)
	alice.send("a regrettable message")
	alice.send("a good message")
	bob.send("bob's message")
	for _, w := range []*window{alice, bob} {
		w.waitMessage("a good message")
		w.waitMessage("bob's message")
	}
	regret := eval[string](bob, jsMsgIDOf, "a regrettable message")
	bobs := eval[string](bob, jsMsgIDOf, "bob's message")
	if eval[bool](bob, jsDeleteShown, regret) {
		t.Errorf("bob sees a delete control on alice's message")
	}
	if !eval[bool](bob, jsDeleteShown, bobs) {
		t.Errorf("bob sees no delete control on his own message")
	}
	if eval[bool](alice, jsDeleteShown, bobs) {
		t.Errorf("alice sees a delete control on bob's message")
	}

	id := alice.deleteOwn("a regrettable message")
	if id != regret {
		t.Fatalf("the message has id %s in alice's window and %s in bob's", id, regret)
	}
	for _, w := range []*window{alice, bob} {
		w.waitFor(liveTimeout, "the deleted message becomes a placeholder", jsIsPlaceholder, id)
		if got := w.logTexts(); slices.Contains(got, "a regrettable message") || !slices.Contains(got, "a good message") {
			t.Errorf("%s: log after the deletion = %q", w.name, got)
		}
	}
	// The stream carried on: new messages still arrive, once.
	bob.send("after the deletion")
	alice.waitMessage("after the deletion")
	if got, want := eval[[]string](alice, jsMsgIDs), []string{"msg-1", "msg-2", "msg-3", "msg-5"}; !slices.Equal(got, want) {
		t.Errorf("alice's message elements = %q, want %q (seq 4 is the deletion record, never shown)", got, want)
	}

	newcomer := b.newWindow("newcomer")
	newcomer.open(room)
	if got, want := newcomer.logTexts(), []string{"Message deleted", "a good message", "bob's message", "after the deletion"}; !slices.Equal(got, want) {
		t.Errorf("newcomer's log = %q, want %q", got, want)
	}
	// Without JavaScript too: the frame's page never has the text.
	plain := b.newWindow("no-JavaScript window", withoutJavaScript())
	plain.visitLiveLog(room + "log")
	plain.waitFor(stepTimeout, "the live log shows the history", `() => document.body && document.body.textContent.includes('after the deletion')`)
	if html := eval[string](plain, `() => document.documentElement.outerHTML`); strings.Contains(html, "regrettable") || !strings.Contains(html, "Message deleted") {
		t.Errorf("the live log after the deletion: %.600s", html)
	}
}

// An operator signs in with the admin token, sees the delete control on
// everyone's messages and deletes someone else's; the author sees it go
// live. A wrong token is refused.
func TestOperatorDeletes(t *testing.T) {
	const token = "e2e-operator-token-31337"
	b := newBrowser(t)
	srv := startServer(t, "-admin-token", token)
	author := b.newWindow("author")
	op := b.newWindow("operator")
	room := srv.roomURL("moderated")
	author.open(room)
	author.send("abusive words")
	author.waitMessage("abusive words")

	// signIn submits token on the operator page and waits for the page
	// the server answers with to say what.
	signIn := func(token, says string) {
		op.do(
			chromedp.Navigate(srv.URL+"/admin"),
			chromedp.SendKeys(chromedp.ID("token"), token),
			chromedp.Click(chromedp.CSS(`form button[type="submit"]`)),
		)
		op.waitFor(stepTimeout, "the operator page says "+says, `(says) => document.body.textContent.includes(says)`, says)
	}
	op.allow(func(e string) bool { return strings.Contains(e, "403") }) // the refused sign-in's status
	signIn("not the token at all", "That is not the admin token.")
	signIn(token, "signed in as an operator")
	op.open(room)
	id := op.deleteOwn("abusive words") // the operator's control shows on others' messages
	author.waitFor(liveTimeout, "the operator's deletion reaches the author", jsIsPlaceholder, id)
	op.waitFor(liveTimeout, "the placeholder in the operator's window", jsIsPlaceholder, id)

	// Signed out, the operator is a person like any other.
	op.do(chromedp.Navigate(srv.URL+"/admin"), chromedp.Click(chromedp.CSS(`form button[type="submit"]`)))
	op.waitFor(stepTimeout, "the sign-in form after signing out", `() => !!document.getElementById('token')`)
	author.send("more words")
	author.waitMessage("more words")
	op.open(room)
	if other := eval[string](op, jsMsgIDOf, "more words"); eval[bool](op, jsDeleteShown, other) {
		t.Errorf("after signing out the operator still sees the delete control on others' messages")
	}
}

// "Load earlier messages" pages back to the first retained message: with
// htmx above the log without moving what is in view, and without
// JavaScript as links from page to page.
func TestLoadEarlier(t *testing.T) {
	const total, history = 30, 10
	b := newBrowser(t)
	srv := startServer(t, "-history", fmt.Sprint(history))
	for i := 1; i <= total; i++ {
		srv.post(t, "archive", fmt.Sprintf("message %d", i))
	}
	room := srv.roomURL("archive")
	want := make([]string, 0, total)
	for i := 1; i <= total; i++ {
		want = append(want, fmt.Sprintf("message %d", i))
	}

	t.Run("WithoutJavaScript", func(t *testing.T) {
		w := b.newWindow("no-JavaScript window", withoutJavaScript())
		w.visit(room)
		// The frame's first item links the whole window back. The frame's
		// document is the live log, still arriving: wait for the link in it
		// before taking the frame's node (whose document it then is).
		w.waitFor(stepTimeout, "the live log frame shows Load earlier", `() => { const f = document.querySelector('iframe.log-frame'); return !!(f && f.contentDocument && f.contentDocument.querySelector('#earlier a')) }`)
		var frames []*chromedp.Node
		w.call(func(ctx context.Context) error {
			var err error
			frames, err = chromedp.Run(ctx, chromedp.Nodes(chromedp.CSS("iframe.log-frame")))
			return err
		})
		if len(frames) != 1 {
			t.Fatalf("found %d log frames, want 1", len(frames))
		}
		w.do(chromedp.WaitVisible(chromedp.CSS("#earlier a"), chromedp.FromNode(frames[0])))
		// follow clicks sel (in the frame from) and waits for the next page.
		follow := func(sel string, from ...chromedp.QueryOption) {
			t.Helper()
			eval[bool](w, `() => { window.e2eOld = true; return true }`)
			w.do(chromedp.Click(chromedp.CSS(sel), from...))
			w.waitFor(stepTimeout, "the link "+sel+" leads to a new page", `() => !window.e2eOld && document.readyState !== 'loading'`)
		}
		follow("#earlier a", chromedp.FromNode(frames[0]))
		var pages [][]string
		for range 5 {
			url := eval[string](w, `() => location.href`)
			if !strings.HasPrefix(url, room+"?before=") {
				t.Fatalf("the earlier page is at %s, want %s?before=…", url, room)
			}
			pages = append(pages, w.logTexts())
			if eval[int](w, `() => document.querySelectorAll('#earlier a').length`) == 0 {
				break
			}
			follow("#earlier a")
		}
		var got []string
		for _, p := range slices.Backward(pages) {
			got = append(got, p...)
		}
		if !slices.Equal(got, want[:total-history]) {
			t.Errorf("the earlier pages, oldest first, show %q, want messages 1 to %d; pages %q", got, total-history, pages)
		}
		if note := eval[string](w, `() => document.querySelector('#earlier').textContent.trim()`); note != "This is the oldest message kept." {
			t.Errorf("the last page's first item says %q", note)
		}
		follow(".back a")
		if url := eval[string](w, `() => location.href`); url != room {
			t.Errorf("Back to the newest messages leads to %s, want %s", url, room)
		}
	})
	t.Run("WithJavaScript", func(t *testing.T) {
		w := b.newWindow("JavaScript window", withViewport(900, 600))
		w.open(room)
		if got := w.logTexts(); !slices.Equal(got, want[total-history:]) {
			t.Fatalf("room page log = %q, want the newest %d", got, history)
		}
		for page := 1; ; page++ {
			if page > 5 {
				t.Fatalf("still a Load earlier link after %d pages", page)
			}
			ids := eval[[]string](w, jsLogIDs)
			if len(ids) < 2 || ids[0] != "earlier" {
				t.Fatalf("the log begins %q, want the Load earlier item first", ids)
			}
			if eval[string](w, `() => document.querySelector('#earlier').textContent.trim()`) == "This is the oldest message kept." {
				break
			}
			// Scroll to the top, where the link is, as a reader would.
			eval[bool](w, `() => { const s = document.querySelector('.log-scroll'); s.scrollTop = -s.scrollHeight; return true }`)
			first := ids[1]
			top := eval[float64](w, jsTop, first)
			w.do(chromedp.Click(chromedp.CSS("#earlier a")))
			w.waitFor(liveTimeout, "an earlier page is inserted", `(first) => { const l = document.querySelectorAll('#log > li'); return l.length > 1 && l[1].id !== first }`, first)
			if after := eval[float64](w, jsTop, first); after < top-1 || after > top+1 {
				t.Errorf("page %d: the message at the top moved from %.0f to %.0f px when the earlier page came in", page, top, after)
			}
		}
		if got := w.logTexts(); !slices.Equal(got, want) {
			t.Errorf("after paging back, log = %q, want all %d in order", got, total)
		}
		assertOnce(t, w, total)
		// Still live after paging back (the last subtest: it adds a message).
		srv.post(t, "archive", "live again")
		w.waitMessage("live again")
	})

}
