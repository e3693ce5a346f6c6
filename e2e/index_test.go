package e2e

import (
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// The index form enters a room by name, Unicode names included; a bad name
// brings the index back with the reason.
func TestIndexEntersRoom(t *testing.T) {
	b := newBrowser(t)
	srv := startServer(t)
	w := b.newWindow("window")
	// A bad name is answered with a 400 page (DESIGN.md), which Chromium
	// reports as a failed load of that URL.
	w.allow(func(p string) bool {
		return strings.Contains(p, "status of 400") && strings.Contains(p, "/chat/?room=")
	})

	w.do(chromedp.Navigate(srv.URL + "/"))
	if got := eval[string](w, `() => document.querySelector('label[for=room]').textContent`); got != "What chat room would you like to enter?" {
		t.Errorf("index label = %q", got)
	}
	w.do(chromedp.SendKeys(chromedp.ID("room"), "a b"))
	w.do(chromedp.Click(chromedp.CSS(`form button[type="submit"]`)))
	w.waitFor(stepTimeout, "the index shows why the name is refused",
		`() => { const e = document.getElementById('room-error'); return !!e && e.textContent.includes('space') }`)
	if got := eval[string](w, `() => document.getElementById('room').value`); got != "a b" {
		t.Errorf("after a refused name the field holds %q, want the name typed", got)
	}

	w.do(chromedp.Navigate(srv.URL + "/"))
	w.do(chromedp.SendKeys(chromedp.ID("room"), "한국어"))
	w.do(chromedp.Click(chromedp.CSS(`form button[type="submit"]`)))
	want := srv.URL + "/chat/" + url.PathEscape("한국어") + "/"
	w.waitFor(stepTimeout, "the browser lands in room 한국어", `(want) => location.href === want`, want)
	w.waitFor(liveTimeout, "the log's event stream opens", jsStreamOpen)
	if got := eval[string](w, `() => document.querySelector('h1').textContent`); got != "한국어" {
		t.Errorf("room page heading = %q, want 한국어", got)
	}
	w.send("안녕하세요")
	w.waitMessage("안녕하세요")
}
