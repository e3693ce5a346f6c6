package chat_test

import (
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hxchat/hxchat/chat"
)

func members(t *testing.T, p chat.Presence, room string) []chat.Member {
	t.Helper()
	ms, err := p.Members(t.Context(), room)
	if err != nil {
		t.Fatalf("Members(%q): %v", room, err)
	}
	return ms
}

func TestLocalPresence(t *testing.T) {
	ann := chat.Member{Key: "a1", Name: "Ann"}
	bob := chat.Member{Key: "b2", Name: "bob"}

	t.Run("TwoTabsCountOnce", func(t *testing.T) {
		p := chat.NewLocalPresence()
		leave1 := p.Join("lobby", ann)
		leave2 := p.Join("lobby", ann)
		if got, want := members(t, p, "lobby"), []chat.Member{ann}; !slices.Equal(got, want) {
			t.Fatalf("two tabs: members %v, want %v", got, want)
		}
		leave1()
		leave1() // a second call changes nothing
		if got, want := members(t, p, "lobby"), []chat.Member{ann}; !slices.Equal(got, want) {
			t.Fatalf("one tab left: members %v, want %v", got, want)
		}
		leave2()
		if got := members(t, p, "lobby"); len(got) != 0 {
			t.Fatalf("both tabs left: members %v, want none", got)
		}
	})

	t.Run("LeaveAtZeroForgetsTheRoom", func(t *testing.T) {
		p := chat.NewLocalPresence()
		stop := p.WatchMembers("lobby", func() {})
		leave := p.Join("lobby", ann)
		if got, want := p.Rooms(), []string{"lobby"}; !slices.Equal(got, want) {
			t.Fatalf("Rooms %v, want %v", got, want)
		}
		leave()
		stop()
		if got := p.Rooms(); len(got) != 0 {
			t.Errorf("after the last leave, Rooms %v, want none", got)
		}
		if got := p.Watched(); len(got) != 0 {
			t.Errorf("after stop, Watched %v, want none", got)
		}
	})

	t.Run("NewestNameWins", func(t *testing.T) {
		p := chat.NewLocalPresence()
		leaveOld := p.Join("lobby", chat.Member{Key: "a1", Name: "Ann"})
		leaveNew := p.Join("lobby", chat.Member{Key: "a1", Name: "Annie"})
		if got := members(t, p, "lobby"); len(got) != 1 || got[0].Name != "Annie" {
			t.Fatalf("members %v, want Annie only", got)
		}
		leaveNew()
		if got := members(t, p, "lobby"); len(got) != 1 || got[0].Name != "Ann" {
			t.Fatalf("after the newer tab left: members %v, want Ann", got)
		}
		leaveOld()
	})

	t.Run("SortedByName", func(t *testing.T) {
		p := chat.NewLocalPresence()
		for _, m := range []chat.Member{{"c", "carl"}, bob, ann} {
			defer p.Join("lobby", m)()
		}
		if got, want := members(t, p, "lobby"), []chat.Member{ann, bob, {"c", "carl"}}; !slices.Equal(got, want) {
			t.Fatalf("members %v, want %v", got, want)
		}
	})

	t.Run("Occupied", func(t *testing.T) {
		p := chat.NewLocalPresence()
		defer p.Join("a", ann)()
		defer p.Join("b", ann)()
		defer p.Join("b", bob)()
		defer p.Join("b", bob)()
		defer p.Join("c", bob)()
		got, err := p.Occupied(t.Context(), 2)
		if err != nil {
			t.Fatal(err)
		}
		if want := []chat.Occupancy{{"b", 2}, {"a", 1}}; !slices.Equal(got, want) {
			t.Fatalf("Occupied(2) = %v, want %v", got, want)
		}
	})

	t.Run("WatchMembers", func(t *testing.T) {
		p := chat.NewLocalPresence()
		var calls atomic.Int32
		stop := p.WatchMembers("lobby", func() { calls.Add(1) })
		p.Join("other", ann)()
		if n := calls.Load(); n != 0 {
			t.Fatalf("a join elsewhere called the watcher %d times", n)
		}
		leave := p.Join("lobby", ann)
		leave()
		if n := calls.Load(); n != 2 {
			t.Fatalf("join and leave called the watcher %d times, want 2", n)
		}
		stop()
		stop()
		p.Join("lobby", ann)()
		if n := calls.Load(); n != 2 {
			t.Fatalf("after stop the watcher was called (%d calls)", n)
		}
	})
}

// nextPresence returns the next member list queued for sub.
func nextPresence(t *testing.T, sub *chat.Subscription) *chat.PresenceUpdate {
	t.Helper()
	select {
	case u := <-sub.Presence():
		return u
	case <-time.After(wait):
		t.Fatalf("no presence update in room %q within %v", sub.Room(), wait)
		return nil
	}
}

// presenceUntil reads sub's member lists until one has n members.
func presenceUntil(t *testing.T, sub *chat.Subscription, n int) *chat.PresenceUpdate {
	t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case u := <-sub.Presence():
			if len(u.Members) == n {
				return u
			}
		case <-deadline:
			t.Fatalf("room %q: no member list of %d within %v", sub.Room(), n, wait)
			return nil
		}
	}
}

func TestHubPresence(t *testing.T) {
	ann := chat.Member{Key: "a1", Name: "Ann"}
	bob := chat.Member{Key: "b2", Name: "Bob"}
	render := func(room string, ms []chat.Member) ([]byte, error) {
		return fmt.Appendf(nil, "%s:%d", room, len(ms)), nil
	}

	t.Run("FirstUpdateOnSubscribe", func(t *testing.T) {
		h, _ := newHub(t, chat.HubOptions{RenderPresence: render})
		defer h.Join("lobby", ann)()
		sub := subscribe(t, h, "lobby")
		u := nextPresence(t, sub)
		if got, want := u.Members, []chat.Member{ann}; !slices.Equal(got, want) {
			t.Fatalf("first update: members %v, want %v", got, want)
		}
		if got, want := string(u.HTML), "lobby:1"; got != want {
			t.Fatalf("first update: HTML %q, want %q", got, want)
		}
		// A second subscriber gets the unchanged list too, and the first
		// gets nothing new.
		sub2 := subscribe(t, h, "lobby")
		if u := nextPresence(t, sub2); len(u.Members) != 1 {
			t.Fatalf("second subscriber: members %v", u.Members)
		}
		select {
		case u := <-sub.Presence():
			t.Fatalf("unchanged list sent again to the first subscriber: %v", u.Members)
		case <-time.After(100 * time.Millisecond):
		}
	})

	t.Run("JoinAndLeave", func(t *testing.T) {
		h, _ := newHub(t, chat.HubOptions{RenderPresence: render})
		sub := subscribe(t, h, "lobby")
		presenceUntil(t, sub, 0)
		leaveAnn := h.Join("lobby", ann)
		presenceUntil(t, sub, 1)
		leaveBob := h.Join("lobby", bob)
		if got, want := presenceUntil(t, sub, 2).Members, []chat.Member{ann, bob}; !slices.Equal(got, want) {
			t.Fatalf("members %v, want %v", got, want)
		}
		leaveBobTab2 := h.Join("lobby", bob) // Bob's second tab
		leaveBob()
		leaveAnn()
		if got, want := presenceUntil(t, sub, 1).Members, []chat.Member{bob}; !slices.Equal(got, want) {
			t.Fatalf("members %v, want %v", got, want)
		}
		leaveBobTab2()
		presenceUntil(t, sub, 0)
	})

	t.Run("Coalesced", func(t *testing.T) {
		h, _ := newHub(t, chat.HubOptions{RenderPresence: render})
		sub := subscribe(t, h, "lobby")
		if got := cap(sub.Presence()); got != 1 {
			t.Fatalf("presence channel holds %d, want 1 (latest wins)", got)
		}
		const n = 200
		for i := range n {
			defer h.Join("lobby", chat.Member{Key: fmt.Sprint(i), Name: fmt.Sprint("p", i)})()
		}
		// Nobody reads while the joins happen: the hub must neither block
		// nor queue every list; the newest one wins.
		u := presenceUntil(t, sub, n)
		if got, want := string(u.HTML), fmt.Sprintf("lobby:%d", n); got != want {
			t.Fatalf("HTML %q, want %q", got, want)
		}
		if got := len(sub.C()); got != 0 {
			t.Fatalf("presence went to the message queue (%d queued)", got)
		}
	})

	t.Run("OtherRoomsNotDisturbed", func(t *testing.T) {
		h, _ := newHub(t, chat.HubOptions{RenderPresence: render})
		sub := subscribe(t, h, "quiet")
		presenceUntil(t, sub, 0)
		defer h.Join("busy", ann)()
		select {
		case u := <-sub.Presence():
			t.Fatalf("room quiet got room %s's list %v", u.Room, u.Members)
		case <-time.After(100 * time.Millisecond):
		}
	})

	t.Run("NotStored", func(t *testing.T) {
		h, store := newHub(t, chat.HubOptions{RenderPresence: render})
		sub := subscribe(t, h, "lobby")
		h.Join("lobby", ann)()
		presenceUntil(t, sub, 0)
		msgs, err := store.Recent(t.Context(), "lobby", 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) != 0 {
			t.Fatalf("joins and leaves stored messages: %v", msgs)
		}
		noDelivery(t, sub)
	})
}

func TestActiveRooms(t *testing.T) {
	now := time.Date(2025, 5, 1, 12, 0, 0, 0, time.UTC)
	var clock atomic.Pointer[time.Time]
	clock.Store(&now)
	h, _ := newHub(t, chat.HubOptions{Now: func() time.Time { return *clock.Load() }})
	postAt := func(room string, at time.Time) {
		t.Helper()
		clock.Store(&at)
		if _, err := h.Post(t.Context(), room, alice, "hi"); err != nil {
			t.Fatal(err)
		}
	}
	postAt("old", now.Add(-48*time.Hour))
	postAt("quiet-but-occupied", now.Add(-30*time.Hour))
	postAt("earlier", now.Add(-2*time.Hour))
	postAt("newest", now.Add(-time.Minute))
	postAt("occupied", now.Add(-3*time.Hour))
	defer h.Join("occupied", chat.Member{Key: "a", Name: "A"})()
	defer h.Join("occupied", chat.Member{Key: "b", Name: "B"})()
	defer h.Join("occupied", chat.Member{Key: "b", Name: "B"})()
	defer h.Join("quiet-but-occupied", chat.Member{Key: "a", Name: "A"})()

	got, err := h.ActiveRooms(t.Context(), now.Add(-24*time.Hour), 50)
	if err != nil {
		t.Fatal(err)
	}
	want := []chat.RoomInfo{
		{Name: "occupied", LastActivity: now.Add(-3 * time.Hour), Online: 2},
		{Name: "quiet-but-occupied", Online: 1}, // its message is older than a day
		{Name: "newest", LastActivity: now.Add(-time.Minute)},
		{Name: "earlier", LastActivity: now.Add(-2 * time.Hour)},
	}
	if !slices.EqualFunc(got, want, func(a, b chat.RoomInfo) bool {
		return a.Name == b.Name && a.Online == b.Online && a.LastActivity.Equal(b.LastActivity)
	}) {
		t.Fatalf("ActiveRooms:\n got %v\nwant %v", got, want)
	}

	got, err = h.ActiveRooms(t.Context(), now.Add(-24*time.Hour), 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[2].Name != "newest" {
		t.Fatalf("ActiveRooms limited to 3: %v", got)
	}
	if got, err := h.ActiveRooms(t.Context(), time.Time{}, 1000); err != nil || len(got) != 5 {
		t.Fatalf("ActiveRooms(1000) = %d rooms, %v; want all 5", len(got), err)
	}
}
