package chat_test

import (
	"context"
	"errors"
	"fmt"
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

// recv returns the next delivery of sub, failing the test after wait.
func recv(t *testing.T, sub *chat.Subscription) *chat.Delivery {
	t.Helper()
	select {
	case d := <-sub.C():
		return d
	case <-time.After(wait):
		t.Fatalf("no delivery in room %q within %v", sub.Room(), wait)
		return nil
	}
}

// noDelivery fails the test if sub has a delivery queued. Publish queues
// synchronously inside Post, so anything meant for sub is already there.
func noDelivery(t *testing.T, sub *chat.Subscription) {
	t.Helper()
	select {
	case d := <-sub.C():
		t.Errorf("room %q got an unexpected delivery: seq %d %q in room %q", sub.Room(), d.Seq, d.Text, d.Room)
	default:
	}
}

// alice is the author of most test posts.
var alice = chat.Author{Name: "alice", Key: "a11ce0000000"}

// post calls h.Post with t.Context(), failing the test if it has not
// returned within wait: Post must never wait on a subscriber.
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

func subscribe(t *testing.T, h *chat.Hub, room string) *chat.Subscription {
	t.Helper()
	s := h.Subscribe(room)
	t.Cleanup(func() {
		// Bounded, so that a hub stuck holding its lock fails the test
		// instead of hanging it.
		done := make(chan struct{})
		go func() { s.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(wait):
			t.Errorf("Subscription.Close in room %q did not return within %v", room, wait)
		}
	})
	return s
}

func TestHubFanout(t *testing.T) {
	h, _ := newHub(t, chat.HubOptions{
		Render: func(m chat.Message) ([]byte, error) {
			return fmt.Appendf(nil, "<li id=\"msg-%d\">%s</li>", m.Seq, m.Text), nil
		},
	})
	subs := []*chat.Subscription{subscribe(t, h, "lobby"), subscribe(t, h, "lobby"), subscribe(t, h, "lobby")}
	if got, want := h.Subscribers("lobby"), 3; got != want {
		t.Fatalf("Subscribers = %d, want %d", got, want)
	}
	for i, text := range []string{"one", "two"} {
		m, err := post(t, h, "lobby", "alice", text)
		if err != nil {
			t.Fatalf("Post: %v", err)
		}
		wantHTML := fmt.Sprintf("<li id=\"msg-%d\">%s</li>", i+1, text)
		var first *chat.Delivery
		for j, s := range subs {
			d := recv(t, s)
			if first == nil {
				first = d
			} else if d != first {
				t.Errorf("subscriber %d got its own Delivery of seq %d, want the one shared by all", j, d.Seq)
			}
			if d.Message != m {
				t.Errorf("subscriber %d got %+v, want %+v", j, d.Message, m)
			}
			if got := string(d.HTML); got != wantHTML {
				t.Errorf("subscriber %d got HTML %q, want %q", j, got, wantHTML)
			}
		}
	}
	for j, s := range subs {
		noDelivery(t, s)
		select {
		case <-s.Dropped():
			t.Errorf("subscriber %d was dropped", j)
		default:
		}
	}
}

func TestHubRoomIsolation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, _ := newHub(t, chat.HubOptions{})
		a := subscribe(t, h, "a")
		b := subscribe(t, h, "b")
		if _, err := post(t, h, "a", "alice", "only for a"); err != nil {
			t.Fatalf("Post: %v", err)
		}
		if d := recv(t, a); d.Text != "only for a" || d.Room != "a" {
			t.Errorf("subscriber of a got %q in room %q, want %q in room %q", d.Text, d.Room, "only for a", "a")
		}
		// A short bounded wait, in the bubble's fake time: instant and exact.
		select {
		case d := <-b.C():
			t.Errorf("subscriber of b got seq %d %q from room %q", d.Seq, d.Text, d.Room)
		case <-time.After(100 * time.Millisecond):
		}
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
	kst := time.FixedZone("KST", 9*60*60)
	now := time.Date(2025, 6, 1, 9, 30, 0, 123_456_789, kst)
	h, store := newHub(t, chat.HubOptions{Now: func() time.Time { return now }})
	// Two messages already stored: Post continues from the store's seq.
	for range 2 {
		if _, err := store.Append(t.Context(), chat.Message{Room: "lobby", Text: "old"}); err != nil {
			t.Fatalf("Append: %v", err)
		}
	}
	sub := subscribe(t, h, "lobby")

	got, err := post(t, h, "lobby", "bob", "  hello\r\nworld  ")
	if err != nil {
		t.Fatalf("Post: %v", err)
	}
	want := chat.Message{Room: "lobby", Seq: 3, Author: "bob", Text: "hello\nworld", Time: now.UTC()}
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
	if d := recv(t, sub); d.Message != want {
		t.Errorf("subscriber got %+v, want %+v", d.Message, want)
	}
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
			var renders atomic.Int32
			h, store := newHub(t, chat.HubOptions{Render: func(m chat.Message) ([]byte, error) {
				renders.Add(1)
				return []byte(m.Text), nil
			}})
			var sub *chat.Subscription
			if tc.room != "" {
				sub = subscribe(t, h, tc.room)
			}
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
			if sub != nil {
				noDelivery(t, sub)
			}
			if n := renders.Load(); n != 0 {
				t.Errorf("Render called %d times for an invalid Post, want 0", n)
			}
		})
	}
}

func TestHubPostAfterStoreClosed(t *testing.T) {
	h, store := newHub(t, chat.HubOptions{})
	sub := subscribe(t, h, "lobby")
	if err := store.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if m, err := post(t, h, "lobby", "alice", "hi"); !errors.Is(err, chat.ErrClosed) {
		t.Errorf("Post on a closed store = (%+v, %v), want an error wrapping chat.ErrClosed", m, err)
	}
	noDelivery(t, sub)
}

func TestHubPostCancelled(t *testing.T) {
	h, store := newHub(t, chat.HubOptions{})
	sub := subscribe(t, h, "lobby")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if m, err := h.Post(ctx, "lobby", alice, "hi"); !errors.Is(err, context.Canceled) {
		t.Errorf("Post with a cancelled context = (%+v, %v), want an error wrapping context.Canceled", m, err)
	}
	noDelivery(t, sub)
	if got, _ := store.Recent(t.Context(), "lobby", 10); len(got) != 0 {
		t.Errorf("store holds %d messages after a cancelled Post, want none", len(got))
	}
}

func TestHubRendersOncePerMessage(t *testing.T) {
	for _, subscribers := range []int{1, 2, 10, 50} {
		t.Run(fmt.Sprint(subscribers), func(t *testing.T) {
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
			subs := make([]*chat.Subscription, subscribers)
			for i := range subs {
				subs[i] = subscribe(t, h, "lobby")
			}
			const posts = 5
			for range posts {
				if _, err := post(t, h, "lobby", "alice", "hi"); err != nil {
					t.Fatalf("Post: %v", err)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if got := len(renders); got != posts {
				t.Errorf("rendered %d distinct messages, want %d", got, posts)
			}
			for seq, n := range renders {
				if n != 1 {
					t.Errorf("seq %d rendered %d times for %d subscribers, want once", seq, n, subscribers)
				}
			}
			for i, s := range subs {
				for want := int64(1); want <= posts; want++ {
					if d := recv(t, s); d.Seq != want || string(d.HTML) != fmt.Sprintf("<li>%d</li>", want) {
						t.Errorf("subscriber %d got seq %d %q, want seq %d", i, d.Seq, d.HTML, want)
					}
				}
			}
		})
	}
}

func TestHubSlowSubscriberDropped(t *testing.T) {
	type drop struct {
		room   string
		queued int
	}
	var (
		mu    sync.Mutex
		drops []drop
	)
	h, _ := newHub(t, chat.HubOptions{
		QueueSize: 4,
		OnDrop: func(room string, queued int) {
			mu.Lock()
			defer mu.Unlock()
			drops = append(drops, drop{room, queued})
		},
	})
	slow := subscribe(t, h, "lobby") // never reads
	reader := subscribe(t, h, "lobby")
	other := subscribe(t, h, "other") // another room: never touched

	for want := int64(1); want <= 10; want++ {
		m, err := post(t, h, "lobby", "alice", fmt.Sprintf("msg %d", want))
		if err != nil {
			t.Fatalf("Post %d: %v", want, err)
		}
		if m.Seq != want {
			t.Fatalf("Post %d: Seq = %d", want, m.Seq)
		}
		if d := recv(t, reader); d.Seq != want {
			t.Fatalf("reader got seq %d, want %d", d.Seq, want)
		}
		// The slow queue holds 4: the 5th post overflows it.
		select {
		case <-slow.Dropped():
			if want < 5 {
				t.Fatalf("slow subscriber dropped after %d posts with a queue of 4", want)
			}
		default:
			if want >= 5 {
				t.Fatalf("slow subscriber not dropped after %d posts with a queue of 4", want)
			}
		}
	}
	select {
	case <-reader.Dropped():
		t.Error("the reading subscriber was dropped")
	default:
	}
	if got, want := h.Subscribers("lobby"), 1; got != want {
		t.Errorf("Subscribers(lobby) after the drop = %d, want %d", got, want)
	}
	mu.Lock()
	if want := []drop{{"lobby", 4}}; len(drops) != 1 || drops[0] != want[0] {
		t.Errorf("OnDrop calls = %+v, want %+v", drops, want)
	}
	mu.Unlock()
	// The slow subscriber still holds what was queued before the drop: 1..4.
	for want := int64(1); want <= 4; want++ {
		if d := recv(t, slow); d.Seq != want {
			t.Errorf("slow subscriber's queue: seq %d, want %d", d.Seq, want)
		}
	}
	noDelivery(t, slow)
	noDelivery(t, reader)
	noDelivery(t, other)

	// Close after a drop, and twice: no effect on anyone else, no panic.
	slow.Close()
	slow.Close()
	if got, want := h.Subscribers("lobby"), 1; got != want {
		t.Errorf("Subscribers(lobby) after closing the dropped one = %d, want %d", got, want)
	}
	reader.Close()
	reader.Close()
	if got, want := h.Subscribers("lobby"), 0; got != want {
		t.Errorf("Subscribers(lobby) after closing both = %d, want %d", got, want)
	}
	if got, want := h.Subscribers("other"), 1; got != want {
		t.Errorf("Subscribers(other) = %d, want %d", got, want)
	}
	// Posting to a room without subscribers still stores.
	m, err := post(t, h, "lobby", "alice", "to nobody")
	if err != nil {
		t.Fatalf("Post to an empty room: %v", err)
	}
	if got, want := m.Seq, int64(11); got != want {
		t.Errorf("Post to an empty room: Seq = %d, want %d", got, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(drops) != 1 {
		t.Errorf("OnDrop called %d times in all, want once", len(drops))
	}
}

// TestHubDropOnceUnderConcurrentPosts has many posts race to find the same
// stalled subscribers full: each is dropped, and reported, exactly once.
func TestHubDropOnceUnderConcurrentPosts(t *testing.T) {
	const (
		stalled = 10
		posters = 8
		each    = 50
	)
	var (
		mu    sync.Mutex
		drops = map[int]int{} // queued → calls
		calls int
	)
	h, _ := newHub(t, chat.HubOptions{
		QueueSize: 1,
		OnDrop: func(room string, queued int) {
			mu.Lock()
			defer mu.Unlock()
			calls++
			drops[queued]++
		},
	})
	subs := make([]*chat.Subscription, stalled)
	for i := range subs {
		subs[i] = subscribe(t, h, "lobby")
	}
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
		t.Fatalf("%d posters into a room of stalled subscribers did not finish within %v", posters, wait)
	}
	for i, s := range subs {
		select {
		case <-s.Dropped():
		default:
			t.Errorf("stalled subscriber %d was not dropped", i)
		}
		s.Close() // after the drop: a no-op
	}
	if got := h.Subscribers("lobby"); got != 0 {
		t.Errorf("Subscribers = %d after every subscriber was dropped, want 0", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if calls != stalled {
		t.Errorf("OnDrop called %d times for %d stalled subscribers, want once each", calls, stalled)
	}
	if drops[1] != calls {
		t.Errorf("OnDrop queued counts = %v, want all 1 (the queue size)", drops)
	}
}

// TestHubDropReportedOnceWhenPostsRace makes two posts find the same full
// queue at once (OnDeliver, called between the fan-out and the drops, holds
// each until both are there): the subscriber is dropped and reported once.
func TestHubDropReportedOnceWhenPostsRace(t *testing.T) {
	var (
		armed   atomic.Bool
		arrived atomic.Int32
		release = make(chan struct{})
		drops   atomic.Int32
	)
	h, _ := newHub(t, chat.HubOptions{
		QueueSize: 1,
		OnDeliver: func(chat.Message, int) {
			if !armed.Load() {
				return
			}
			if arrived.Add(1) == 2 {
				close(release)
			}
			// Not an assertion: only a bound in case a future Hub calls
			// OnDeliver where the second post cannot reach it.
			select {
			case <-release:
			case <-time.After(wait):
			}
		},
		OnDrop: func(string, int) { drops.Add(1) },
	})
	stalled := subscribe(t, h, "lobby")
	if _, err := post(t, h, "lobby", "alice", "fills the queue"); err != nil {
		t.Fatalf("Post: %v", err)
	}
	armed.Store(true)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			if _, err := h.Post(t.Context(), "lobby", alice, "overflows"); err != nil {
				t.Errorf("Post: %v", err)
			}
		})
	}
	if !waitTimeout(&wg, 2*wait) {
		t.Fatalf("racing posts did not finish within %v", 2*wait)
	}
	select {
	case <-stalled.Dropped():
	default:
		t.Error("the stalled subscriber was not dropped")
	}
	if got, want := drops.Load(), int32(1); got != want {
		t.Errorf("OnDrop called %d times for one dropped subscriber, want %d", got, want)
	}
	if got := h.Subscribers("lobby"); got != 0 {
		t.Errorf("Subscribers = %d, want 0", got)
	}
}

func TestHubCloseIdempotent(t *testing.T) {
	h, _ := newHub(t, chat.HubOptions{})
	a := h.Subscribe("lobby")
	b := h.Subscribe("lobby")
	a.Close()
	a.Close()
	if got, want := h.Subscribers("lobby"), 1; got != want {
		t.Errorf("Subscribers after closing one of two (twice) = %d, want %d", got, want)
	}
	if _, err := post(t, h, "lobby", "alice", "hi"); err != nil {
		t.Fatalf("Post: %v", err)
	}
	noDelivery(t, a)
	if d := recv(t, b); d.Seq != 1 {
		t.Errorf("remaining subscriber got seq %d, want 1", d.Seq)
	}
	select {
	case <-a.Dropped():
		t.Error("Close closed Dropped; it is only for drops")
	default:
	}
	b.Close()
	if got, want := h.Subscribers("lobby"), 0; got != want {
		t.Errorf("Subscribers after closing both = %d, want %d", got, want)
	}
}

func TestHubPostNeverBlocks(t *testing.T) {
	var delivered atomic.Int64
	h, _ := newHub(t, chat.HubOptions{
		QueueSize: 1,
		OnDeliver: func(_ chat.Message, n int) { delivered.Add(int64(n)) },
	})
	// Twenty subscribers that never read, spread over two rooms.
	for i := range 20 {
		subscribe(t, h, []string{"a", "b"}[i%2])
	}
	const posts = 200
	done := make(chan error, 1)
	go func() {
		for i := range posts {
			if _, err := h.Post(t.Context(), []string{"a", "b"}[i%2], alice, "hi"); err != nil {
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
		t.Fatalf("%d posts to rooms of stalled subscribers did not finish within %v", posts, wait)
	}
	// Each subscriber took exactly one message, then was dropped.
	if got, want := delivered.Load(), int64(20); got != want {
		t.Errorf("deliveries = %d, want %d (one per subscriber before its drop)", got, want)
	}
	for _, room := range []string{"a", "b"} {
		if got := h.Subscribers(room); got != 0 {
			t.Errorf("Subscribers(%q) = %d, want 0: all were stalled", room, got)
		}
	}
}

func TestHubConcurrentPosters(t *testing.T) {
	const (
		posters     = 8
		each        = 200
		total       = posters * each
		subscribers = 5
	)
	// A queue that holds every message: this test is about the set each
	// subscriber sees, not about drops.
	var dropped atomic.Int32
	h, store := newHub(t, chat.HubOptions{
		QueueSize: total,
		OnDrop:    func(string, int) { dropped.Add(1) },
	})

	type result struct {
		seqs []int64
		err  error
	}
	results := make(chan result, subscribers)
	for range subscribers {
		sub := subscribe(t, h, "lobby")
		go func() {
			var r result
			seen := make(map[int64]bool, total)
			timeout := time.After(2 * wait)
			for len(r.seqs) < total {
				select {
				case d := <-sub.C():
					if seen[d.Seq] {
						r.err = fmt.Errorf("seq %d delivered twice", d.Seq)
					}
					seen[d.Seq] = true
					r.seqs = append(r.seqs, d.Seq)
				case <-sub.Dropped():
					r.err = fmt.Errorf("dropped after %d deliveries", len(r.seqs))
					results <- r
					return
				case <-timeout:
					r.err = fmt.Errorf("only %d of %d deliveries within %v", len(r.seqs), total, 2*wait)
					results <- r
					return
				}
			}
			results <- r
		}()
	}

	// Meanwhile other subscribers come and go, to shake out races.
	churnDone := make(chan struct{})
	var churn sync.WaitGroup
	churn.Go(func() {
		for {
			select {
			case <-churnDone:
				return
			default:
			}
			s := h.Subscribe("lobby")
			h.Subscribers("lobby")
			s.Close()
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

	for i := range subscribers {
		r := <-results
		if r.err != nil {
			t.Errorf("subscriber: %v", r.err)
			continue
		}
		seen := make([]bool, total+1)
		for _, seq := range r.seqs {
			if seq < 1 || seq > total {
				t.Errorf("subscriber %d got seq %d, outside 1..%d", i, seq, total)
				continue
			}
			seen[seq] = true
		}
		for seq := 1; seq <= total; seq++ {
			if !seen[seq] {
				t.Errorf("subscriber %d never got seq %d", i, seq)
			}
		}
	}
	if n := dropped.Load(); n != 0 {
		t.Errorf("%d subscribers dropped with a queue as large as the whole test", n)
	}
	stored, err := store.Since(t.Context(), "lobby", 0, 2*total)
	if err != nil {
		t.Fatalf("Since: %v", err)
	}
	if len(stored) != min(total, chat.DefaultRetention) || stored[len(stored)-1].Seq != total {
		t.Errorf("store holds %d messages up to seq %d, want %d up to seq %d",
			len(stored), stored[len(stored)-1].Seq, min(total, chat.DefaultRetention), total)
	}
}
