package handlers

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hxchat/hxchat/chat"
)

var (
	presenceCount = regexp.MustCompile(`<p class="presence-count">(\d+) online</p>`)
	presenceName  = regexp.MustCompile(`<li>([^<]*)</li>`)
)

// presenceOf is the count and names of a presence event's or a page's
// member list.
func presenceOf(t *testing.T, s string) (int, []string) {
	t.Helper()
	m := presenceCount.FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("no member count in %.500q", s)
	}
	n, err := strconv.Atoi(m[1])
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	if _, list, ok := strings.Cut(s, `class="presence-names"`); ok {
		list, _, _ = strings.Cut(list, "</ul>")
		for _, nm := range presenceName.FindAllStringSubmatch(list, -1) {
			names = append(names, html.UnescapeString(nm[1]))
		}
	}
	return n, names
}

// nextPresence returns the next presence event, checking its framing.
func (r *sseReader) nextPresence(t *testing.T) sseEvent {
	t.Helper()
	for {
		ev, err := r.next()
		if err != nil {
			t.Fatalf("waiting for a presence event: %v", err)
		}
		if !ev.isPresence() {
			continue
		}
		if !ev.HasID || ev.ID == "" {
			t.Fatalf("presence event without an id (it would reset Last-Event-ID): %q", ev.Lines)
		}
		if slices.Contains(ev.Fields, "event") {
			t.Fatalf("presence event has an event name (htmx would not swap it): %q", ev.Lines)
		}
		if got, want := ev.Data[0], presencePrefix+` hx-swap="innerHTML">`; !strings.HasPrefix(got, want) {
			t.Fatalf("presence data %q, want it to start with %q", got, want)
		}
		return ev
	}
}

// presenceUntil reads presence events until one shows n people.
func (r *sseReader) presenceUntil(t *testing.T, n int) (sseEvent, []string) {
	t.Helper()
	for {
		ev := r.nextPresence(t)
		if got, names := presenceOf(t, ev.data()); got == n {
			return ev, names
		}
	}
}

// cookieHeader is the request header carrying identity cookie c.
func cookieHeader(c *http.Cookie) http.Header {
	return http.Header{"Cookie": {c.Name + "=" + c.Value}}
}

func TestEventsPresence(t *testing.T) {
	t.Run("OnConnect", func(t *testing.T) {
		e := newEnv(t)
		ts := e.serve(t)
		ann := e.named(t, e.newGuest(t), "Zoë O.")
		rd := openOK(t, ts, "/chat/lobby/events?after=0", cookieHeader(ann))
		ev := rd.nextPresence(t)
		if ev.ID != "0" {
			t.Errorf("presence id %q in an empty room, want 0", ev.ID)
		}
		n, names := presenceOf(t, ev.data())
		if n != 1 || !slices.Equal(names, []string{"Zoë O."}) {
			t.Errorf("presence %d %q, want 1 [Zoë O.]", n, names)
		}
	})

	t.Run("IDIsNewestSeqSent", func(t *testing.T) {
		e := newEnv(t)
		ts := e.serve(t)
		e.post(t, "lobby", "one")
		e.post(t, "lobby", "two")
		rd := openOK(t, ts, "/chat/lobby/events?after=0", nil)
		rd.messagesUntil(t, "2")
		if ev := rd.nextPresence(t); ev.ID != "2" {
			t.Errorf("presence after replaying 2 messages has id %q, want 2", ev.ID)
		}
		postHTTP(t, ts, "lobby", "three")
		if ev := rd.nextMessage(t); ev.ID != "3" {
			t.Fatalf("message id %q, want 3", ev.ID)
		}
		openOK(t, ts, "/chat/lobby/events?after=3", nil)
		if ev, _ := rd.presenceUntil(t, 2); ev.ID != "3" {
			t.Errorf("presence after message 3 has id %q, want 3", ev.ID)
		}
	})

	t.Run("JoinAndLeave", func(t *testing.T) {
		e := newEnv(t)
		ts := e.serve(t)
		rd := openOK(t, ts, "/chat/lobby/events?after=0", nil)
		rd.presenceUntil(t, 1)

		ctx, cancel := context.WithCancel(t.Context())
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+"/chat/lobby/events?after=0", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		rd.presenceUntil(t, 2)
		cancel() // the second person closes their tab
		rd.presenceUntil(t, 1)
		if got := e.recent(t, "lobby", 10); len(got) != 0 {
			t.Errorf("joins and leaves were stored as messages: %v", got)
		}
	})

	t.Run("TwoTabsCountOnce", func(t *testing.T) {
		e := newEnv(t)
		ts := e.serve(t)
		bob := e.named(t, e.newGuest(t), "Bob")
		rd := openOK(t, ts, "/chat/lobby/events?after=0", cookieHeader(bob))
		rd.presenceUntil(t, 1)
		openOK(t, ts, "/chat/lobby/events?after=0", cookieHeader(bob))
		openOK(t, ts, "/chat/lobby/events?after=0", nil) // someone else
		_, names := rd.presenceUntil(t, 2)
		if n := strings.Count(strings.Join(names, "\n"), "Bob"); n != 1 {
			t.Errorf("names %q show Bob %d times, want once", names, n)
		}
	})
}

func TestRoomPageShowsPresence(t *testing.T) {
	e := newEnv(t)
	ts := e.serve(t)
	ann := e.named(t, e.newGuest(t), "Ann")
	openOK(t, ts, "/chat/lobby/events?after=0", cookieHeader(ann))
	bob := e.named(t, e.newGuest(t), "Bob")
	// Bob is counted on his own page before his stream joins him.
	w := e.getAs("/chat/lobby/", bob)
	body := w.Body.String()
	region, ok := regionOf(body, `<div id="presence">`)
	if !ok {
		t.Fatalf("the room page has no #presence: %.1000q", body)
	}
	if n, names := presenceOf(t, region); n != 2 || !slices.Equal(names, []string{"Ann", "Bob"}) {
		t.Errorf("page presence %d %q, want 2 [Ann Bob]", n, names)
	}
	if strings.Contains(region, "aria-live") || strings.Contains(body, `id="presence" aria-live`) {
		t.Errorf("presence is a live region; joins and leaves would be read out")
	}
	if !strings.Contains(body, `aria-labelledby="presence-title"`) {
		t.Errorf("the presence region has no label")
	}
	checkPageHygiene(t, body)
}

// regionOf returns body from start up to the next "</div>".
func regionOf(body, start string) (string, bool) {
	_, rest, ok := strings.Cut(body, start)
	if !ok {
		return "", false
	}
	rest, _, _ = strings.Cut(rest, "</div>")
	return rest, true
}

func TestActiveRoomsList(t *testing.T) {
	e := newEnv(t)
	ts := e.serve(t)
	e.post(t, "quiet", "hello")
	time.Sleep(2 * time.Millisecond)
	e.post(t, "busy", "hello")
	openOK(t, ts, "/chat/occupied/events?after=0", nil)
	openOK(t, ts, "/chat/busy/events?after=0", nil)
	openOK(t, ts, "/chat/busy/events?after=0", nil)

	roomOrder := regexp.MustCompile(`<a href="/chat/([^/"]*)/">[^<]*</a>\s*<span class="room-meta"><span class="online">(\d+) online</span>`)
	check := func(what, body string) {
		t.Helper()
		var got []string
		for _, m := range roomOrder.FindAllStringSubmatch(body, -1) {
			got = append(got, m[1]+":"+m[2])
		}
		// Occupied rooms first (the newest message first), then the rest.
		if want := []string{"busy:2", "occupied:1", "quiet:0"}; !slices.Equal(got, want) {
			t.Errorf("%s lists %q, want %q\n%.2000s", what, got, want, body)
		}
		if !strings.Contains(body, `<time datetime="`) {
			t.Errorf("%s shows no time of the last message", what)
		}
	}

	// On the index, without JavaScript: in the page itself.
	w := e.get("/")
	if w.Code != http.StatusOK {
		t.Fatalf("GET /: status %d", w.Code)
	}
	body := w.Body.String()
	if !strings.Contains(body, `>Active rooms</h2>`) {
		t.Errorf("the index has no Active rooms heading")
	}
	if !strings.Contains(body, `<div id="rooms" hx-get="/rooms" hx-trigger="every 10s" hx-swap="innerHTML">`) {
		t.Errorf("the rooms list does not poll /rooms every 10 s: %.2000s", body)
	}
	check("GET /", body)
	checkPageHygiene(t, body)

	// The fragment it polls.
	w = e.get("/rooms")
	if w.Code != http.StatusOK {
		t.Fatalf("GET /rooms: status %d", w.Code)
	}
	if strings.Contains(w.Body.String(), "<html") {
		t.Errorf("GET /rooms answers a page, want a fragment")
	}
	if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("GET /rooms: Cache-Control %q, want no-store", cc)
	}
	check("GET /rooms", w.Body.String())
}

// failingLister is a store whose list of rooms is unavailable.
type failingLister struct{ chat.Store }

func (failingLister) Rooms(context.Context, time.Time, int) ([]chat.RoomInfo, error) {
	return nil, fmt.Errorf("rooms: %w", chat.ErrUnavailable)
}

func TestActiveRoomsUnavailable(t *testing.T) {
	e := newEnv(t, func(o *envOptions) {
		o.store = func(s *chat.MemoryStore) chat.Store { return failingLister{s} }
	})
	w := e.get("/rooms")
	if w.Code != http.StatusServiceUnavailable {
		t.Errorf("GET /rooms: status %d, want 503", w.Code)
	}
	if body := w.Body.String(); !strings.Contains(body, "unavailable") || strings.Contains(body, "<html") {
		t.Errorf("GET /rooms: body %q, want a fragment saying the list is unavailable", body)
	}
	w = e.get("/")
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "The list of rooms is unavailable right now.") {
		t.Errorf("GET /: status %d; the index must still work and say the list is unavailable", w.Code)
	}
}
