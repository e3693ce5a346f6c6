package e2e

import (
	"context"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/hxchat/hxchat/chat/redis/redistest"
)

// The page functions of the presence tests.
const (
	// jsPresence: the room's member count line and names, as shown.
	jsPresence = `() => {
		const c = document.querySelector('#presence .presence-count');
		return {count: c ? c.textContent.trim() : '',
			names: [...document.querySelectorAll('#presence .presence-names li')].map(e => e.textContent)};
	}`
	jsPresenceIs = `(want) => {
		const c = document.querySelector('#presence .presence-count');
		return !!c && c.textContent.trim() === want;
	}`
	// jsRoomListed: the index's active rooms list shows room with want
	// online, as a link to the room.
	jsRoomListed = `(room, want) => [...document.querySelectorAll('#rooms li')].some(li => {
		const a = li.querySelector('a');
		const o = li.querySelector('.online');
		return !!a && a.textContent === room && a.getAttribute('href') === '/chat/' + encodeURIComponent(room) + '/' &&
			!!o && o.textContent.trim() === want;
	})`
)

type shownPresence struct {
	Count string   `json:"count"`
	Names []string `json:"names"`
}

// waitPresence waits until w shows "N online".
func (w *window) waitPresence(n int) {
	w.t.Helper()
	want := strconv.Itoa(n) + " online"
	if err := w.poll(liveTimeout, jsPresenceIs, want); err != nil {
		got, _ := evalErr[shownPresence](w, jsPresence)
		w.t.Fatalf("%s: presence shows %q %q, want %q: %v", w.name, got.Count, got.Names, want, err)
	}
}

// close closes the window's tab, as a person closing it would.
func (w *window) close() {
	w.t.Helper()
	if err := chromedp.Cancel(w.ctx); err != nil {
		w.t.Fatalf("%s: close the tab: %v", w.name, err)
	}
}

// Presence in the browser: the count goes 1 → 2 → 1 as a second person
// comes and closes their window, with their names; two tabs of one person
// count once; the index lists the room with its count.
func TestPresenceInBrowser(t *testing.T) {
	b := newBrowser(t)
	srv := startServer(t)
	room := srv.roomURL("lobby")

	ann := b.newWindow("Ann")
	ann.do(chromedp.Navigate(room))
	ann.setName("Ann")
	ann.waitPresence(1)

	bob := b.newWindow("Bob")
	bob.do(chromedp.Navigate(room))
	bob.setName("Bob")
	bob.waitPresence(2)
	ann.waitPresence(2)
	if got := eval[shownPresence](ann, jsPresence); !slices.Equal(got.Names, []string{"Ann", "Bob"}) {
		t.Errorf("Ann's window shows names %q, want [Ann Bob]", got.Names)
	}
	// Joins and leaves are not messages.
	if got := ann.logTexts(); len(got) != 0 {
		t.Errorf("the log shows %q after a join, want nothing", got)
	}

	bob.close()
	ann.waitPresence(1)
	if got := eval[shownPresence](ann, jsPresence); !slices.Equal(got.Names, []string{"Ann"}) {
		t.Errorf("after Bob left Ann's window shows names %q, want [Ann]", got.Names)
	}

	// Two tabs of one person (one profile, one cookie) count once.
	tab1 := b.newWindow("Carl's tab 1", sharedProfile())
	tab2 := b.newWindow("Carl's tab 2", sharedProfile())
	tab1.open(room)
	tab2.open(room)
	ann.waitPresence(2)
	tab2.waitPresence(2)
	ann.never("Carl's two tabs count twice", jsPresenceIs, "3 online")

	// The index lists the room with its count, in the page itself (no
	// JavaScript needed) and in a window that polls.
	plain := b.newWindow("index without JavaScript", withoutJavaScript())
	plain.do(chromedp.Navigate(srv.URL + "/"))
	if !eval[bool](plain, jsRoomListed, "lobby", "2 online") {
		t.Errorf("the index without JavaScript does not list lobby with 2 online")
	}
	index := b.newWindow("index")
	index.do(chromedp.Navigate(srv.URL + "/"))
	index.waitFor(liveTimeout, "the index lists lobby with 2 online", jsRoomListed, "lobby", "2 online")

	// It refreshes itself: a room entered meanwhile shows up within a
	// poll (10 s) and a little.
	other := b.newWindow("Dora")
	other.open(srv.roomURL("fresh"))
	index.waitFor(15*time.Second, "the index's list refreshes to show room fresh", jsRoomListed, "fresh", "1 online")
}

var presenceCountRe = regexp.MustCompile(`<p class="presence-count">(\d+) online</p>`)

// presenceCount is the count of a presence event.
func presenceCount(t *testing.T, ev sseEvent) int {
	t.Helper()
	m := presenceCountRe.FindStringSubmatch(ev.Data)
	if m == nil {
		t.Fatalf("presence event without a count: %q", ev.Data)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// waitCount reads c's presence events until one shows n people, within d.
func waitCount(t *testing.T, c *sseClient, n int, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	last := -1
	for {
		select {
		case ev := <-c.Presence:
			if ev.ID == "" {
				t.Fatalf("presence event with an empty id: %q", ev.Data)
			}
			if last = presenceCount(t, ev); last == n {
				return
			}
		case err := <-c.Done:
			t.Fatalf("stream ended waiting for %d online: %v", n, err)
		case <-ctx.Done():
			t.Fatalf("no presence of %d online within %v (last %d)", n, d, last)
		}
	}
}

// Presence across two nodes on one Redis: a stream on node B sees node A's
// person; when node A is killed (SIGKILL, no goodbye), B drops them within
// two heartbeats (1 s each here).
func TestPresenceTwoNodesCrash(t *testing.T) {
	r := redistest.Start(t, redistest.Options{})
	const hb = time.Second
	a := startServer(t, "-redis", r.URL(), "-heartbeat", hb.String())
	b := startServer(t, "-redis", r.URL(), "-heartbeat", hb.String())

	onB := openSSE(t, b.URL+"/chat/nodes/events?after=0", "")
	waitCount(t, onB, 1, liveTimeout)
	onA := openSSE(t, a.URL+"/chat/nodes/events?after=0", "")
	waitCount(t, onB, 2, liveTimeout) // A's person, seen on B
	waitCount(t, onA, 2, liveTimeout) // and B's on A

	a.Kill(t)
	killed := time.Now()
	waitGone(t, a.PID)
	waitCount(t, onB, 1, 2*hb+2*time.Second)
	if took := time.Since(killed); took > 2*hb+500*time.Millisecond {
		t.Errorf("node A's person vanished on B %v after A was killed, want within 2 heartbeats (%v) and a little", took, 2*hb)
	}
	// Messages still flow on B, after the member lists.
	b.post(t, "nodes", "still here")
	if ev := onB.Next(t, liveTimeout); textOf(ev.Data) != "still here" {
		t.Errorf("after the crash B streams %q, want the new message", ev.Data)
	}
}
