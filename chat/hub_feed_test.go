package chat_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/hxchat/hxchat/chat"
)

// feedStore is a MemoryStore that is also a Feed, standing in for a store
// shared by many nodes: Append notifies the watchers of the room.
type feedStore struct {
	*chat.MemoryStore
	mu       sync.Mutex
	watchers map[string]map[int]func(chat.Message)
	next     int
	starts   int
	stops    int
}

func newFeedStore() *feedStore {
	return &feedStore{MemoryStore: chat.NewMemoryStore(100), watchers: map[string]map[int]func(chat.Message){}}
}

func (f *feedStore) Append(ctx context.Context, m chat.Message) (chat.Message, error) {
	m, err := f.MemoryStore.Append(ctx, m)
	if err != nil {
		return m, err
	}
	f.mu.Lock()
	var fns []func(chat.Message)
	for _, fn := range f.watchers[m.Room] {
		fns = append(fns, fn)
	}
	f.mu.Unlock()
	for _, fn := range fns {
		fn(m)
	}
	return m, nil
}

func (f *feedStore) Watch(room string, fn func(chat.Message)) func() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.starts++
	f.next++
	id := f.next
	if f.watchers[room] == nil {
		f.watchers[room] = map[int]func(chat.Message){}
	}
	f.watchers[room][id] = fn
	var once sync.Once
	return func() {
		once.Do(func() {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.stops++
			delete(f.watchers[room], id)
		})
	}
}

func (f *feedStore) counts() (starts, stops int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.starts, f.stops
}

func TestHubWithFeedDeliversOnceThroughTheFeed(t *testing.T) {
	store := newFeedStore()
	hub := chat.NewHub(store, chat.HubOptions{})
	a := hub.Subscribe("room")
	b := hub.Subscribe("room")
	if starts, _ := store.counts(); starts != 1 {
		t.Fatalf("feed watches started = %d, want 1 shared by both subscribers", starts)
	}
	if _, err := hub.Post(t.Context(), "room", chat.Author{Name: "ann"}, "hello"); err != nil {
		t.Fatal(err)
	}
	// Another node's message arrives through the feed only.
	if _, err := store.Append(t.Context(), chat.Message{Room: "room", Author: "bob", Text: "from node B"}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*chat.Subscription{a, b} {
		for want := int64(1); want <= 2; want++ {
			select {
			case d := <-s.C():
				if d.Seq != want {
					t.Fatalf("got seq %d, want %d", d.Seq, want)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("seq %d not delivered", want)
			}
		}
		select {
		case d := <-s.C():
			t.Fatalf("seq %d delivered twice (hub and feed both fanned out)", d.Seq)
		default:
		}
	}
	a.Close()
	if _, stops := store.counts(); stops != 0 {
		t.Fatalf("feed stopped with a subscriber left")
	}
	b.Close()
	b.Close()
	if starts, stops := store.counts(); starts != 1 || stops != 1 {
		t.Fatalf("starts, stops = %d, %d; want 1, 1 after the last subscriber left", starts, stops)
	}
}

func TestHubWithFeedStopsWatchAfterDrop(t *testing.T) {
	store := newFeedStore()
	hub := chat.NewHub(store, chat.HubOptions{QueueSize: 1})
	slow := hub.Subscribe("room")
	for range 3 {
		if _, err := hub.Post(t.Context(), "room", chat.Author{Name: "ann"}, "x"); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-slow.Dropped():
	case <-time.After(5 * time.Second):
		t.Fatal("slow subscriber not dropped")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, stops := store.counts(); stops == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("feed watch not stopped after the room's only subscriber was dropped")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// slowFeed is a feedStore whose Watch of one room waits until released, as
// a Redis feed waits on the network for a room's newest seq.
type slowFeed struct {
	*feedStore
	room    string
	entered chan struct{}
	release chan struct{}
}

func (f *slowFeed) Watch(room string, fn func(chat.Message)) func() {
	if room == f.room {
		close(f.entered)
		<-f.release
	}
	return f.feedStore.Watch(room, fn)
}

// A feed that is slow to watch one room delays only that room's
// subscribers: another room's subscribe and close go on, and a second
// subscriber of the slow room returns only once the feed watches it.
func TestHubSlowFeedWatchBlocksOnlyItsRoom(t *testing.T) {
	f := &slowFeed{feedStore: newFeedStore(), room: "slow", entered: make(chan struct{}), release: make(chan struct{})}
	hub := chat.NewHub(f, chat.HubOptions{})
	first := make(chan *chat.Subscription)
	go func() { first <- hub.Subscribe("slow") }()
	<-f.entered
	second := make(chan *chat.Subscription)
	go func() { second <- hub.Subscribe("slow") }()

	done := make(chan struct{})
	go func() {
		hub.Subscribe("fast").Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("subscribing to another room waited for the slow room's feed")
	}
	select {
	case <-second:
		t.Fatal("a second subscriber of the slow room returned before the feed watched it")
	case <-time.After(50 * time.Millisecond):
	}
	close(f.release)
	a, b := <-first, <-second
	if starts, _ := f.counts(); starts != 2 { // "fast" and "slow", once each
		t.Errorf("feed watches started %d, want 2", starts)
	}
	a.Close()
	b.Close()
	if _, stops := f.counts(); stops != 2 {
		t.Errorf("feed watches stopped %d, want 2", stops)
	}
}
