package chat_test

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
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

// presenceRender renders a member list as "ROOM:N [MEMBERS]".
func presenceRender(room string, ms []chat.Member) ([]byte, error) {
	return fmt.Appendf(nil, "%s:%d %v", room, len(ms), ms), nil
}

// presenceSize reads N from a list rendered by presenceRender, or -1.
func presenceSize(html []byte) int {
	head, _, _ := strings.Cut(string(html), " ")
	_, n, ok := strings.Cut(head, ":")
	if !ok {
		return -1
	}
	i, err := strconv.Atoi(n)
	if err != nil {
		return -1
	}
	return i
}

// nextPresence returns the next event s got, which must be a member list
// whose ID is a cursor (so Last-Event-ID stays right).
func nextPresence(t *testing.T, s *sink) *chat.Event {
	t.Helper()
	ev := recv(t, s)
	if presenceSize(ev.HTML) < 0 {
		t.Fatalf("room %q: got %s:%q, want a member list", s.f.Room(), ev.ID, ev.HTML)
	}
	cursorOf(t, ev)
	return ev
}

// presenceUntil reads s's member lists until one has n members.
func presenceUntil(t *testing.T, s *sink, n int) *chat.Event {
	t.Helper()
	for {
		if ev := nextPresence(t, s); presenceSize(ev.HTML) == n {
			return ev
		}
	}
}

func TestHubPresence(t *testing.T) {
	ann := chat.Member{Key: "a1", Name: "Ann"}
	bob := chat.Member{Key: "b2", Name: "Bob"}
	opts := chat.HubOptions{RenderPresence: presenceRender}

	t.Run("FirstUpdateOnSubscribe", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h, _ := newHub(t, opts)
			defer h.Join("lobby", ann)()
			sub := follow(t, h, "lobby")
			u := nextPresence(t, sub)
			if got, want := string(u.HTML), fmt.Sprintf("lobby:1 %v", []chat.Member{ann}); got != want {
				t.Fatalf("first update: %q, want %q", got, want)
			}
			// A second follower gets the unchanged list too, and the first
			// gets nothing new.
			sub2 := follow(t, h, "lobby")
			if u := nextPresence(t, sub2); presenceSize(u.HTML) != 1 {
				t.Fatalf("second follower: %q", u.HTML)
			}
			time.Sleep(100 * time.Millisecond)
			synctest.Wait()
			noDelivery(t, sub)
		})
	})

	t.Run("JoinAndLeave", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h, _ := newHub(t, opts)
			sub := follow(t, h, "lobby")
			presenceUntil(t, sub, 0)
			leaveAnn := h.Join("lobby", ann)
			presenceUntil(t, sub, 1)
			leaveBob := h.Join("lobby", bob)
			if got, want := string(presenceUntil(t, sub, 2).HTML), fmt.Sprintf("lobby:2 %v", []chat.Member{ann, bob}); got != want {
				t.Fatalf("members %q, want %q", got, want)
			}
			leaveBobTab2 := h.Join("lobby", bob) // Bob's second tab
			leaveBob()
			leaveAnn()
			if got, want := string(presenceUntil(t, sub, 1).HTML), fmt.Sprintf("lobby:1 %v", []chat.Member{bob}); got != want {
				t.Fatalf("members %q, want %q", got, want)
			}
			leaveBobTab2()
			presenceUntil(t, sub, 0)
		})
	})

	t.Run("Coalesced", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h, _ := newHub(t, opts)
			sub := followInto(t, h, "lobby", chat.Cursor{}, false, newSink(0))
			synctest.Wait()
			const n = 200
			for i := range n {
				defer h.Join("lobby", chat.Member{Key: fmt.Sprint(i), Name: fmt.Sprint("p", i)})()
			}
			time.Sleep(2 * chat.DefaultPresenceInterval)
			synctest.Wait()
			// Nobody read while the joins happened: the hub must neither
			// block nor queue every list; the newest one wins.
			sub.drain(noLimit)
			synctest.Wait()
			if got, most := len(sub.got()), 3; got > most {
				t.Errorf("%d lists queued for %d joins within two intervals, want at most %d", got, n, most)
			}
			u := presenceUntil(t, sub, n)
			if got, want := string(u.HTML), fmt.Sprintf("lobby:%d ", n); !strings.HasPrefix(got, want) {
				t.Fatalf("HTML %.20q…, want %q…", got, want)
			}
			// Lists are not messages: each stands at the room's head, seq 0.
			for _, ev := range sub.got() {
				if c := cursorOf(t, ev); c.Seq != 0 || presenceSize(ev.HTML) < 0 {
					t.Errorf("got %s:%.20q, want only member lists at seq 0", ev.ID, ev.HTML)
				}
			}
		})
	})

	t.Run("OtherRoomsNotDisturbed", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h, _ := newHub(t, opts)
			sub := follow(t, h, "quiet")
			presenceUntil(t, sub, 0)
			defer h.Join("busy", ann)()
			time.Sleep(100 * time.Millisecond)
			synctest.Wait()
			noDelivery(t, sub)
		})
	})

	t.Run("NotStored", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h, store := newHub(t, opts)
			sub := follow(t, h, "lobby")
			h.Join("lobby", ann)()
			presenceUntil(t, sub, 0)
			msgs, err := store.Recent(t.Context(), "lobby", 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(msgs) != 0 {
				t.Fatalf("joins and leaves stored messages: %v", msgs)
			}
			time.Sleep(2 * chat.DefaultPresenceInterval)
			synctest.Wait()
			for _, ev := range sub.got() {
				if c := cursorOf(t, ev); c.Seq != 0 || presenceSize(ev.HTML) < 0 {
					t.Errorf("got %s:%.20q, want only member lists at seq 0", ev.ID, ev.HTML)
				}
			}
		})
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
