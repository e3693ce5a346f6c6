package chat_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hxchat/hxchat/chat"
)

// wait is how long a test waits for something that should happen at once.
const wait = 5 * time.Second

// recv returns the next event s accepted that recv has not returned yet,
// failing the test after wait. A live follower's events are offered
// inside Post, so anything meant for it is there when Post returns.
func recv(t *testing.T, s *sink) *chat.Event {
	t.Helper()
	var ev *chat.Event
	s.waitFor(t, "the next event", func([]*chat.Event) bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.read < len(s.events) {
			ev = s.events[s.read]
			s.read++
			return true
		}
		return false
	})
	return ev
}

// noDelivery fails the test if s accepted an event recv has not returned,
// or was ended.
func noDelivery(t *testing.T, s *sink) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.read < len(s.events) {
		ev := s.events[s.read]
		t.Errorf("room %q got an unexpected event: %s:%q", s.f.Room(), ev.ID, ev.HTML)
	}
	if len(s.ends) > 0 {
		t.Errorf("room %q: the follower ended: %v", s.f.Room(), s.ends)
	}
}

// recvSeq receives the next event of s and checks that it is the message
// with seq want (by its ID: the message's cursor).
func recvSeq(t *testing.T, s *sink, who string, want int64) *chat.Event {
	t.Helper()
	ev := recv(t, s)
	if c := cursorOf(t, ev); c.Seq != want || c.Epoch == "" {
		t.Errorf("%s got the event of %s (%q), want seq %d of the room's epoch", who, ev.ID, ev.HTML, want)
	}
	return ev
}

// alice is the author of most test posts.
var alice = chat.Author{Name: "alice", Key: "a11ce0000000"}

// post calls h.Post with t.Context(), failing the test if it has not
// returned within wait: Post must never wait on a follower.
func post(t *testing.T, h *chat.Hub, room, author, text string) (chat.Message, error) {
	t.Helper()
	type result struct {
		m   chat.Message
		err error
	}
	done := make(chan result, 1)
	go func() {
		m, err := h.Post(t.Context(), room, chat.Author{Name: author}, text)
		done <- result{m, err}
	}()
	select {
	case r := <-done:
		return r.m, r.err
	case <-time.After(wait):
		t.Fatalf("Post to %q did not return within %v", room, wait)
		return chat.Message{}, nil
	}
}

func newHub(t *testing.T, opts chat.HubOptions) (*chat.Hub, *chat.MemoryStore) {
	t.Helper()
	store := chat.NewMemoryStore(0)
	t.Cleanup(func() { store.Close() })
	return chat.NewHub(store, opts), store
}

// renderAll renders every field of a message, so that an event's HTML
// shows which message, exactly, the follower was handed.
func renderAll(m chat.Message) ([]byte, error) {
	return fmt.Appendf(nil, "<li id=\"msg-%d\">%s</li><!-- %+v -->", m.Seq, m.Text, m), nil
}

func TestHubFanout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, _ := newHub(t, chat.HubOptions{Render: renderAll})
		subs := []*sink{follow(t, h, "lobby"), follow(t, h, "lobby"), follow(t, h, "lobby")}
		synctest.Wait() // every follower is live
		if got, want := h.Subscribers("lobby"), 3; got != want {
			t.Fatalf("Subscribers = %d, want %d", got, want)
		}
		for _, text := range []string{"one", "two"} {
			m, err := post(t, h, "lobby", "alice", text)
			if err != nil {
				t.Fatalf("Post: %v", err)
			}
			wantID := chat.Cursor{Epoch: m.Epoch, Seq: m.Seq}.String()
			wantHTML, _ := renderAll(m)
			var first *chat.Event
			for j, s := range subs {
				ev := recv(t, s)
				if first == nil {
					first = ev
				} else if ev != first {
					t.Errorf("follower %d got its own Event of %s, want the one shared by all", j, ev.ID)
				}
				if got := string(ev.ID); got != wantID {
					t.Errorf("follower %d got ID %q, want %q", j, got, wantID)
				}
				if got := string(ev.HTML); got != string(wantHTML) {
					t.Errorf("follower %d got HTML %q, want %q (the message Post returned)", j, got, wantHTML)
				}
			}
		}
		for _, s := range subs {
			noDelivery(t, s) // also: none was ended
		}
		if got, want := h.Subscribers("lobby"), 3; got != want {
			t.Errorf("Subscribers after the posts = %d, want %d", got, want)
		}
	})
}

func TestHubRoomIsolation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, _ := newHub(t, chat.HubOptions{Render: renderAll})
		a := follow(t, h, "a")
		b := follow(t, h, "b")
		synctest.Wait()
		m, err := post(t, h, "a", "alice", "only for a")
		if err != nil {
			t.Fatalf("Post: %v", err)
		}
		if ev, want := recv(t, a), fmt.Sprintf("%+v", m); !strings.HasSuffix(string(ev.HTML), "<!-- "+want+" -->") || m.Room != "a" || m.Text != "only for a" {
			t.Errorf("follower of a got %q, want the message %q in room %q", ev.HTML, "only for a", "a")
		}
		// A short bounded wait, in the bubble's fake time: instant and exact.
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		noDelivery(t, b)
		// The room names differ only by case or a prefix: still separate.
		if _, err := post(t, h, "B", "alice", "for B"); err != nil {
			t.Fatalf("Post: %v", err)
		}
		if _, err := post(t, h, "bb", "alice", "for bb"); err != nil {
			t.Fatalf("Post: %v", err)
		}
		synctest.Wait()
		noDelivery(t, b)
		noDelivery(t, a)
	})
}

func TestHubPostStoresAndStamps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		kst := time.FixedZone("KST", 9*60*60)
		now := time.Date(2025, 6, 1, 9, 30, 0, 123_456_789, kst)
		h, store := newHub(t, chat.HubOptions{Now: func() time.Time { return now }, Render: renderAll})
		// Two messages already stored: Post continues from the store's seq.
		var epoch string
		for range 2 {
			m, err := store.Append(t.Context(), chat.Message{Room: "lobby", Text: "old"})
			if err != nil {
				t.Fatalf("Append: %v", err)
			}
			epoch = m.Epoch
		}
		if epoch == "" {
			t.Fatal("the store's messages carry no epoch")
		}
		sub := follow(t, h, "lobby")
		synctest.Wait()

		got, err := post(t, h, "lobby", "bob", "  hello\r\nworld  ")
		if err != nil {
			t.Fatalf("Post: %v", err)
		}
		want := chat.Message{Room: "lobby", Seq: 3, Epoch: epoch, Author: "bob", Text: "hello\nworld", Time: now.UTC()}
		if got != want {
			t.Errorf("Post = %+v, want %+v", got, want)
		}
		if loc := got.Time.Location(); loc != time.UTC {
			t.Errorf("Post time is in %v, want UTC", loc)
		}
		if !got.Time.Equal(now) {
			t.Errorf("Post time = %v, want the instant HubOptions.Now returned, %v", got.Time, now)
		}
		stored, err := store.Recent(t.Context(), "lobby", 1)
		if err != nil {
			t.Fatalf("Recent: %v", err)
		}
		if len(stored) != 1 || stored[0] != want {
			t.Errorf("store's newest = %+v, want [%+v]", stored, want)
		}
		ev := recv(t, sub)
		if got, want := string(ev.ID), "3-"+epoch; got != want {
			t.Errorf("follower got ID %q, want %q", got, want)
		}
		if wantHTML, _ := renderAll(want); string(ev.HTML) != string(wantHTML) {
			t.Errorf("follower got %q, want %q", ev.HTML, wantHTML)
		}
	})
}

func TestHubPostInvalidStoresNothing(t *testing.T) {
	for _, tc := range []struct{ name, room, text string }{
		{"EmptyText", "lobby", ""},
		{"BlankText", "lobby", " \r\n\t "},
		{"TooLong", "lobby", strings.Repeat("가", chat.MaxMessageLen+1)},
		{"InvalidUTF8", "lobby", "a\xffb"},
		{"ControlChar", "lobby", "a\x00b"},
		{"BadRoom", "../x", "hello"},
		{"EmptyRoom", "", "hello"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var renders atomic.Int32
				h, store := newHub(t, chat.HubOptions{Render: func(m chat.Message) ([]byte, error) {
					renders.Add(1)
					return []byte(m.Text), nil
				}})
				var sub *sink
				if tc.room != "" {
					sub = follow(t, h, tc.room)
				}
				synctest.Wait()
				m, err := post(t, h, tc.room, "mallory", tc.text)
				if !errors.Is(err, chat.ErrInvalid) {
					t.Fatalf("Post(%q, %.20q) = (%+v, %v), want an error wrapping chat.ErrInvalid", tc.room, tc.text, m, err)
				}
				if m != (chat.Message{}) {
					t.Errorf("Post returned %+v with its error, want the zero Message", m)
				}
				for _, room := range []string{tc.room, "lobby"} {
					got, err := store.Recent(t.Context(), room, 10)
					if err != nil {
						t.Fatalf("Recent: %v", err)
					}
					if len(got) != 0 {
						t.Errorf("store holds %d messages in %q after an invalid Post, want none", len(got), room)
					}
				}
				synctest.Wait()
				if sub != nil {
					noDelivery(t, sub)
				}
				if n := renders.Load(); n != 0 {
					t.Errorf("Render called %d times for an invalid Post, want 0", n)
				}
			})
		})
	}
}

func TestHubPostAfterStoreClosed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, store := newHub(t, chat.HubOptions{})
		sub := follow(t, h, "lobby")
		synctest.Wait()
		if err := store.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if m, err := post(t, h, "lobby", "alice", "hi"); !errors.Is(err, chat.ErrClosed) {
			t.Errorf("Post on a closed store = (%+v, %v), want an error wrapping chat.ErrClosed", m, err)
		}
		synctest.Wait()
		noDelivery(t, sub)
	})
}

func TestHubPostCancelled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, store := newHub(t, chat.HubOptions{})
		sub := follow(t, h, "lobby")
		synctest.Wait()
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if m, err := h.Post(ctx, "lobby", alice, "hi"); !errors.Is(err, context.Canceled) {
			t.Errorf("Post with a cancelled context = (%+v, %v), want an error wrapping context.Canceled", m, err)
		}
		synctest.Wait()
		noDelivery(t, sub)
		if got, _ := store.Recent(t.Context(), "lobby", 10); len(got) != 0 {
			t.Errorf("store holds %d messages after a cancelled Post, want none", len(got))
		}
	})
}

func TestHubRendersOncePerMessage(t *testing.T) {
	for _, followers := range []int{1, 2, 10, 50} {
		t.Run(fmt.Sprint(followers), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var (
					mu      sync.Mutex
					renders = map[int64]int{}
				)
				h, _ := newHub(t, chat.HubOptions{Render: func(m chat.Message) ([]byte, error) {
					mu.Lock()
					defer mu.Unlock()
					renders[m.Seq]++
					return fmt.Appendf(nil, "<li>%d</li>", m.Seq), nil
				}})
				subs := make([]*sink, followers)
				for i := range subs {
					subs[i] = follow(t, h, "lobby")
				}
				synctest.Wait() // all live: nothing is read back from the store
				const posts = 5
				for range posts {
					if _, err := post(t, h, "lobby", "alice", "hi"); err != nil {
						t.Fatalf("Post: %v", err)
					}
				}
				synctest.Wait()
				mu.Lock()
				if got := len(renders); got != posts {
					t.Errorf("rendered %d distinct messages, want %d", got, posts)
				}
				for seq, n := range renders {
					if n != 1 {
						t.Errorf("seq %d rendered %d times for %d followers, want once", seq, n, followers)
					}
				}
				mu.Unlock()
				for i, s := range subs {
					for want := int64(1); want <= posts; want++ {
						ev := recvSeq(t, s, fmt.Sprintf("follower %d", i), want)
						if got := string(ev.HTML); got != fmt.Sprintf("<li>%d</li>", want) {
							t.Errorf("follower %d got %q for seq %d", i, got, want)
						}
					}
					noDelivery(t, s)
				}
			})
		})
	}
}

// overflows records the hub's OnOverflow calls.
type overflows struct {
	mu    sync.Mutex
	calls []overflow
}

type overflow struct {
	room   string
	queued int
}

func (o *overflows) record(room string, queued int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.calls = append(o.calls, overflow{room, queued})
}

func (o *overflows) get() []overflow {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]overflow(nil), o.calls...)
}

// A follower whose client reads nothing delays neither the posts nor the
// other followers, and holds no more than its queue: it falls behind
// (reported once), stays followed, and when its client reads again it
// resumes from the store and receives every message once, in order, then
// goes on live. (It used to be dropped; now nobody is dropped or waited
// for.)
func TestHubSlowFollowerFallsBehindAndResumes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var over overflows
		h, _ := newHub(t, chat.HubOptions{QueueSize: 4, OnOverflow: over.record})
		slow := followInto(t, h, "lobby", chat.Cursor{}, false, newSink(0)) // reads nothing
		reader := follow(t, h, "lobby")
		other := follow(t, h, "other") // another room: never touched
		synctest.Wait()

		for want := int64(1); want <= 10; want++ {
			m, err := post(t, h, "lobby", "alice", fmt.Sprintf("msg %d", want))
			if err != nil {
				t.Fatalf("Post %d: %v", want, err)
			}
			if m.Seq != want {
				t.Fatalf("Post %d: Seq = %d", want, m.Seq)
			}
			recvSeq(t, reader, "reader", want)
			// The slow queue holds 4: the 5th post overflows it, once.
			switch n := len(over.get()); {
			case want < 5 && n != 0:
				t.Fatalf("slow follower overflowed after %d posts with a queue of 4", want)
			case want >= 5 && n != 1:
				t.Fatalf("after %d posts with a queue of 4: %d overflows, want 1", want, n)
			}
		}
		if got, want := over.get(), []overflow{{"lobby", 4}}; len(got) != 1 || got[0] != want[0] {
			t.Errorf("OnOverflow calls = %+v, want %+v", got, want)
		}
		// Nobody was dropped or ended, and the slow follower was offered
		// nothing it could not take.
		if got, want := h.Subscribers("lobby"), 2; got != want {
			t.Errorf("Subscribers(lobby) after the overflow = %d, want %d", got, want)
		}
		synctest.Wait()
		noDelivery(t, slow)
		noDelivery(t, reader)
		noDelivery(t, other)

		// The slow client reads again: 1..10, each once, in order. The
		// first 4 from its queue, the rest from the store.
		slow.drain(noLimit)
		synctest.Wait()
		for want := int64(1); want <= 10; want++ {
			recvSeq(t, slow, "slow follower", want)
		}
		noDelivery(t, slow)
		noDelivery(t, reader)
		noDelivery(t, other)
		// And it is live again: the next post reaches both at once.
		if _, err := post(t, h, "lobby", "alice", "msg 11"); err != nil {
			t.Fatalf("Post 11: %v", err)
		}
		if a, b := recvSeq(t, slow, "slow follower", 11), recvSeq(t, reader, "reader", 11); a != b {
			t.Errorf("seq 11 reached the resumed follower as its own Event, want the live one shared by all")
		}

		// Close twice: no effect on anyone else, no panic.
		slow.f.Close()
		slow.f.Close()
		if got, want := h.Subscribers("lobby"), 1; got != want {
			t.Errorf("Subscribers(lobby) after closing the slow one = %d, want %d", got, want)
		}
		reader.f.Close()
		reader.f.Close()
		if got, want := h.Subscribers("lobby"), 0; got != want {
			t.Errorf("Subscribers(lobby) after closing both = %d, want %d", got, want)
		}
		if got, want := h.Subscribers("other"), 1; got != want {
			t.Errorf("Subscribers(other) = %d, want %d", got, want)
		}
		// Posting to a room without followers still stores.
		m, err := post(t, h, "lobby", "alice", "to nobody")
		if err != nil {
			t.Fatalf("Post to an empty room: %v", err)
		}
		if got, want := m.Seq, int64(12); got != want {
			t.Errorf("Post to an empty room: Seq = %d, want %d", got, want)
		}
		synctest.Wait()
		noDelivery(t, slow)
		if n := len(over.get()); n != 1 {
			t.Errorf("OnOverflow called %d times in all, want once", n)
		}
	})
}

// TestHubOverflowOnceUnderConcurrentPosts has many posts race into a room
// of stalled followers: each overflows, and is reported, exactly once;
// none is dropped; each later receives every message once, in order.
func TestHubOverflowOnceUnderConcurrentPosts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const (
			stalled = 10
			posters = 8
			each    = 50
			total   = posters * each
		)
		var over overflows
		h, _ := newHub(t, chat.HubOptions{
			QueueSize:  1,
			ReplayMax:  total, // the catch-up below replays everything
			Render:     renderMsg,
			OnOverflow: over.record,
		})
		subs := make([]*sink, stalled)
		for i := range subs {
			subs[i] = followInto(t, h, "lobby", chat.Cursor{}, false, newSink(0))
		}
		synctest.Wait()
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range posters {
			wg.Go(func() {
				<-start
				for range each {
					if _, err := h.Post(t.Context(), "lobby", alice, "hi"); err != nil {
						t.Errorf("Post: %v", err)
						return
					}
				}
			})
		}
		close(start)
		if !waitTimeout(&wg, wait) {
			t.Fatalf("%d posters into a room of stalled followers did not finish within %v", posters, wait)
		}
		synctest.Wait() // the fan-out runs after the posts return
		if got := h.Subscribers("lobby"); got != stalled {
			t.Errorf("Subscribers = %d after the posts, want all %d: nobody is dropped", got, stalled)
		}
		calls := over.get()
		if len(calls) != stalled {
			t.Errorf("OnOverflow called %d times for %d stalled followers, want once each", len(calls), stalled)
		}
		for _, c := range calls {
			if c != (overflow{"lobby", 1}) {
				t.Errorf("OnOverflow(%q, %d), want (lobby, 1): the queue size", c.room, c.queued)
			}
		}
		epoch := epochOf(t, h, "lobby")
		for i, s := range subs {
			s.drain(noLimit)
			synctest.Wait()
			checkMessages(t, fmt.Sprint("follower ", i), s.got(), epoch, 1, total)
		}
	})
}

// TestHubOverflowReportedOnceWhenPostsRace has posts race to find the same
// full queue. The store hands a room's messages to the hub one at a time,
// in seq order, so their fan-outs never overlap: the follower overflows,
// and is reported, once.
func TestHubOverflowReportedOnceWhenPostsRace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const racers = 16
		var (
			armed   atomic.Bool
			inside  atomic.Int32
			overlap atomic.Int32
			over    overflows
		)
		h, _ := newHub(t, chat.HubOptions{
			QueueSize: 1,
			Render:    renderMsg,
			OnDeliver: func(chat.Message, int) {
				if !armed.Load() {
					return
				}
				if inside.Add(1) > 1 {
					overlap.Add(1)
				}
				runtime.Gosched() // give another fan-out the chance to overlap
				inside.Add(-1)
			},
			OnOverflow: over.record,
		})
		stalled := followInto(t, h, "lobby", chat.Cursor{}, false, newSink(0))
		synctest.Wait()
		if _, err := post(t, h, "lobby", "alice", "fills the queue"); err != nil {
			t.Fatalf("Post: %v", err)
		}
		synctest.Wait() // its fan-out, which runs after the post returned
		armed.Store(true)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range racers {
			wg.Go(func() {
				<-start
				if _, err := h.Post(t.Context(), "lobby", alice, "overflows"); err != nil {
					t.Errorf("Post: %v", err)
				}
			})
		}
		close(start)
		if !waitTimeout(&wg, 2*wait) {
			t.Fatalf("racing posts did not finish within %v", 2*wait)
		}
		synctest.Wait()
		if n := overlap.Load(); n != 0 {
			t.Errorf("%d fan-outs of one room overlapped; the store must hand them on one at a time", n)
		}
		if got, want := over.get(), []overflow{{"lobby", 1}}; len(got) != 1 || got[0] != want[0] {
			t.Errorf("OnOverflow calls = %+v for one stalled follower, want %+v", got, want)
		}
		if got := h.Subscribers("lobby"); got != 1 {
			t.Errorf("Subscribers = %d, want 1", got)
		}
		stalled.drain(noLimit)
		synctest.Wait()
		checkMessages(t, "the stalled follower", stalled.got(), epochOf(t, h, "lobby"), 1, racers+1)
	})
}

func TestHubCloseIdempotent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, _ := newHub(t, chat.HubOptions{})
		a := follow(t, h, "lobby")
		b := follow(t, h, "lobby")
		synctest.Wait()
		a.f.Close()
		a.f.Close()
		if got, want := h.Subscribers("lobby"), 1; got != want {
			t.Errorf("Subscribers after closing one of two (twice) = %d, want %d", got, want)
		}
		if _, err := post(t, h, "lobby", "alice", "hi"); err != nil {
			t.Fatalf("Post: %v", err)
		}
		synctest.Wait()
		noDelivery(t, a) // also: Close did not End it; End is only for store failures
		recvSeq(t, b, "remaining follower", 1)
		b.f.Close()
		if got, want := h.Subscribers("lobby"), 0; got != want {
			t.Errorf("Subscribers after closing both = %d, want %d", got, want)
		}
	})
}

func TestHubPostNeverBlocks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var (
			delivered atomic.Int64
			over      overflows
		)
		h, _ := newHub(t, chat.HubOptions{
			QueueSize:  1,
			OnDeliver:  func(_ chat.Message, n int) { delivered.Add(int64(n)) },
			OnOverflow: over.record,
		})
		// Twenty followers that never read, spread over two rooms.
		rooms := []string{"a", "b"}
		subs := make([]*sink, 20)
		for i := range subs {
			subs[i] = followInto(t, h, rooms[i%2], chat.Cursor{}, false, newSink(0))
		}
		synctest.Wait()
		const posts = 200
		done := make(chan error, 1)
		go func() {
			for i := range posts {
				if _, err := h.Post(t.Context(), rooms[i%2], alice, "hi"); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Post: %v", err)
			}
		case <-time.After(wait):
			t.Fatalf("%d posts to rooms of stalled followers did not finish within %v", posts, wait)
		}
		synctest.Wait() // the fan-out runs after the posts return
		// Every message was handed to every follower of its room (a
		// stalled one only notes how far the room got), and each follower
		// overflowed once, after one message.
		if got, want := delivered.Load(), int64(posts*len(subs)/2); got != want {
			t.Errorf("deliveries = %d, want %d (each message to the 10 followers of its room)", got, want)
		}
		if got := len(over.get()); got != len(subs) {
			t.Errorf("%d overflows, want %d: one per stalled follower", got, len(subs))
		}
		for _, room := range rooms {
			if got := h.Subscribers(room); got != len(subs)/2 {
				t.Errorf("Subscribers(%q) = %d, want %d: nobody is dropped", room, got, len(subs)/2)
			}
		}
		// Each later reads its room's messages, once and in order.
		for i, s := range subs {
			s.drain(noLimit)
			synctest.Wait()
			evs := s.got()
			if len(evs) != posts/2 {
				t.Errorf("follower %d of %q got %d events, want %d", i, rooms[i%2], len(evs), posts/2)
				continue
			}
			for j, ev := range evs {
				if c := cursorOf(t, ev); c.Seq != int64(j+1) {
					t.Errorf("follower %d of %q: event %d is seq %d, want %d", i, rooms[i%2], j, c.Seq, j+1)
					break
				}
			}
		}
	})
}

func TestHubConcurrentPosters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const (
			posters   = 8
			each      = 200
			total     = posters * each
			followers = 5
		)
		// A queue that holds every message: this test is about the set
		// each follower sees, not about overflows.
		var over overflows
		h, store := newHub(t, chat.HubOptions{
			QueueSize:  total,
			Render:     renderMsg,
			OnOverflow: over.record,
		})
		subs := make([]*sink, followers)
		for i := range subs {
			subs[i] = follow(t, h, "lobby")
		}
		synctest.Wait()

		// Meanwhile other followers come and go, to shake out races.
		churnDone := make(chan struct{})
		var churn sync.WaitGroup
		churn.Go(func() {
			for {
				select {
				case <-churnDone:
					return
				default:
				}
				f, err := h.Follow(t.Context(), "lobby", chat.Cursor{}, false, newSink(noLimit))
				if err != nil {
					t.Errorf("Follow: %v", err)
					return
				}
				h.Subscribers("lobby")
				f.Close()
			}
		})

		var posting sync.WaitGroup
		errs := make(chan error, total)
		for p := range posters {
			posting.Go(func() {
				for i := range each {
					if _, err := h.Post(t.Context(), "lobby", chat.Author{Name: fmt.Sprintf("poster-%d", p)}, fmt.Sprintf("%d/%d", p, i)); err != nil {
						errs <- err
					}
				}
			})
		}
		if !waitTimeout(&posting, 2*wait) {
			t.Fatalf("posting did not finish within %v", 2*wait)
		}
		close(churnDone)
		churn.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("Post: %v", err)
		}
		synctest.Wait()

		for i, s := range subs {
			evs := s.got()
			seen := make([]bool, total+1)
			for _, ev := range evs {
				seq := cursorOf(t, ev).Seq
				switch {
				case seq < 1 || seq > total:
					t.Errorf("follower %d got seq %d, outside 1..%d", i, seq, total)
				case seen[seq]:
					t.Errorf("follower %d got seq %d twice", i, seq)
				}
				seen[min(max(seq, 0), total)] = true
			}
			for seq := 1; seq <= total; seq++ {
				if !seen[seq] {
					t.Errorf("follower %d never got seq %d", i, seq)
				}
			}
			checkMessages(t, fmt.Sprint("follower ", i), evs, epochOf(t, store, "lobby"), 1, total) // and in order
			if ends := s.endErrs(); len(ends) != 0 {
				t.Errorf("follower %d ended: %v", i, ends)
			}
		}
		if n := len(over.get()); n != 0 {
			t.Errorf("%d followers overflowed with a queue as large as the whole test", n)
		}
		stored, err := store.Since(t.Context(), "lobby", 0, 2*total)
		if err != nil {
			t.Fatalf("Since: %v", err)
		}
		if len(stored) != min(total, chat.DefaultRetention) || stored[len(stored)-1].Seq != total {
			t.Errorf("store holds %d messages up to seq %d, want %d up to seq %d",
				len(stored), stored[len(stored)-1].Seq, min(total, chat.DefaultRetention), total)
		}
	})
}
