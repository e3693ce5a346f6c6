package e2e

import (
	"context"
	"net/http"
	"regexp"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// shownMessage is what a window shows of one message in its log.
type shownMessage struct {
	Author string `json:"author"`
	Text   string `json:"text"`
	Time   string `json:"time"`  // the datetime attribute
	Edge   string `json:"edge"`  // computed border-left-color
	Label  string `json:"label"` // computed content of the author's ::after
}

// jsShownMessages: every message of the log with its author, time and the
// two marks of an own message: the colour of its left edge (transparent on
// others') and the label after the author's name.
const jsShownMessages = `() => [...document.querySelectorAll('#log .msg')].map(li => ({
	author: li.querySelector('.author').textContent,
	text: li.querySelector('.text').textContent,
	time: li.querySelector('time').getAttribute('datetime'),
	edge: getComputedStyle(li).borderLeftColor,
	label: getComputedStyle(li.querySelector('.author'), '::after').content,
}))`

// jsYouAre: the display name the page says the viewer has.
const jsYouAre = `() => { const e = document.querySelector('#name-form .me'); return e ? e.textContent : '' }`

// transparent is how getComputedStyle reports a transparent colour.
const transparent = "rgba(0, 0, 0, 0)"

var utcStamp = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`)

// setName types name into the name form, saves it and waits until the room
// page it comes back to streams its log again.
func (w *window) setName(name string) {
	w.t.Helper()
	eval[bool](w, `() => { document.getElementById('name').value = ''; return true }`)
	w.do(chromedp.SendKeys(chromedp.ID("name"), name))
	resp, err := func() (*network.Response, error) {
		ctx, cancel := context.WithTimeout(w.ctx, stepTimeout)
		defer cancel()
		return chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(`#name-form button[type="submit"]`)))
	}()
	if err != nil {
		w.t.Fatalf("%s: save the name %q: %v", w.name, name, err)
	}
	if resp.Status != http.StatusOK {
		w.t.Fatalf("%s: after saving the name the browser shows %s with status %d, want 200", w.name, resp.URL, resp.Status)
	}
	w.waitFor(liveTimeout, "the log streams again after saving the name", jsStreamOpen)
}

// Two people name themselves in their own windows, each sends a message, and
// each window shows both names on the right messages, its own message marked
// as its own (and the other's not), live and after a reload.
func TestNamesOnMessages(t *testing.T) {
	b := newBrowser(t)
	srv := startServer(t)
	room := srv.roomURL("names")
	alice := b.newWindow("Alice's window")
	bob := b.newWindow("Bob's window")
	for _, w := range []*window{alice, bob} {
		w.open(room)
		if got := eval[string](w, jsYouAre); !regexp.MustCompile(`^guest-[0-9a-f]{4}$`).MatchString(got) {
			t.Errorf("%s: a new visitor is %q, want guest-XXXX", w.name, got)
		}
	}
	alice.setName("Alice")
	bob.setName("Bob")
	for w, want := range map[*window]string{alice: "Alice", bob: "Bob"} {
		if got := eval[string](w, jsYouAre); got != want {
			t.Errorf("%s: page says you are %q, want %q", w.name, got, want)
		}
	}

	alice.send("hello from Alice")
	bob.waitMessage("hello from Alice")
	bob.send("hello from Bob")
	alice.waitMessage("hello from Bob")
	alice.waitMessage("hello from Alice")
	bob.waitMessage("hello from Bob")

	check := func(when string) {
		t.Helper()
		for w, own := range map[*window]string{alice: "Alice", bob: "Bob"} {
			msgs := eval[[]shownMessage](w, jsShownMessages)
			if len(msgs) != 2 {
				t.Errorf("%s %s: log shows %+v, want the two messages", w.name, when, msgs)
				continue
			}
			for _, m := range msgs {
				wantAuthor := map[string]string{"hello from Alice": "Alice", "hello from Bob": "Bob"}[m.Text]
				if m.Author != wantAuthor {
					t.Errorf("%s %s: %q is shown by %q, want %q", w.name, when, m.Text, m.Author, wantAuthor)
				}
				if !utcStamp.MatchString(m.Time) {
					t.Errorf("%s %s: %q has datetime %q, want a UTC timestamp", w.name, when, m.Text, m.Time)
				}
				// Every message has a 3px left border (so marking one moves
				// no text); only own messages give it a colour.
				mine := m.Author == own
				if marked := m.Edge != transparent; marked != mine {
					t.Errorf("%s %s: %s's message %q has left edge %s; want it marked=%v", w.name, when, m.Author, m.Text, m.Edge, mine)
				}
				if labelled := m.Label == `" (you)"`; labelled != mine {
					t.Errorf("%s %s: %s's message %q has the label %s after the name; want (you)=%v", w.name, when, m.Author, m.Text, m.Label, mine)
				}
			}
		}
	}
	check("live")
	alice.open(room)
	bob.open(room)
	check("after a reload")
}
