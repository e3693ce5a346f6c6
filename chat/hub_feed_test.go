package chat_test

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hxchat/hxchat/chat"
)

// feedStore is a MemoryStore with a Watch of its own, standing in for a
// store shared by many nodes: Append notifies the watchers of the room,
// whichever node appended.
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
	synctest.Test(t, func(t *testing.T) {
		store := newFeedStore()
		hub := chat.NewHub(store, chat.HubOptions{})
		a := follow(t, hub, "room")
		b := follow(t, hub, "room")
		synctest.Wait()
		if starts, _ := store.counts(); starts != 1 {
			t.Fatalf("feed watches started = %d, want 1 shared by both followers", starts)
		}
		if _, err := hub.Post(t.Context(), "room", chat.Author{Name: "ann"}, "hello"); err != nil {
			t.Fatal(err)
		}
		// Another node's message arrives through the feed only.
		if _, err := store.Append(t.Context(), chat.Message{Room: "room", Author: "bob", Text: "from node B"}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		for _, s := range []*sink{a, b} {
			for want := int64(1); want <= 2; want++ {
				recvSeq(t, s, "follower", want)
			}
			noDelivery(t, s) // no seq twice
		}
		a.f.Close()
		if _, stops := store.counts(); stops != 0 {
			t.Fatalf("feed stopped with a follower left")
		}
		b.f.Close()
		b.f.Close()
		if starts, stops := store.counts(); starts != 1 || stops != 1 {
			t.Fatalf("starts, stops = %d, %d; want 1, 1 after the last follower left", starts, stops)
		}
	})
}

// A follower that fell behind keeps the room's feed watch (it goes live
// again through it), receives every message once it reads again, and the
// watch stops when it, the room's only follower, is closed.
func TestHubWithFeedKeepsWatchWhileBehind(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newFeedStore()
		hub := chat.NewHub(store, chat.HubOptions{QueueSize: 1})
		slow := followInto(t, hub, "room", chat.Cursor{}, false, newSink(0))
		synctest.Wait()
		for range 3 {
			if _, err := hub.Post(t.Context(), "room", chat.Author{Name: "ann"}, "x"); err != nil {
				t.Fatal(err)
			}
		}
		if _, stops := store.counts(); stops != 0 {
			t.Fatal("feed watch stopped while the room's follower was behind")
		}
		slow.drain(noLimit)
		synctest.Wait()
		for want := int64(1); want <= 3; want++ {
			recvSeq(t, slow, "slow follower", want)
		}
		if _, err := hub.Post(t.Context(), "room", chat.Author{Name: "ann"}, "live"); err != nil {
			t.Fatal(err)
		}
		recvSeq(t, slow, "slow follower", 4)
		noDelivery(t, slow)
		slow.f.Close()
		if _, stops := store.counts(); stops != 1 {
			t.Fatalf("feed watches stopped = %d after the room's only follower closed, want 1", stops)
		}
	})
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
// followers: another room's Follow and Close go on, and a second follower
// of the slow room returns only once the feed watches it.
func TestHubSlowFeedWatchBlocksOnlyItsRoom(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &slowFeed{feedStore: newFeedStore(), room: "slow", entered: make(chan struct{}), release: make(chan struct{})}
		hub := chat.NewHub(f, chat.HubOptions{})
		followAsync := func(room string) <-chan *chat.Follower {
			c := make(chan *chat.Follower, 1)
			go func() {
				fl, err := hub.Follow(t.Context(), room, chat.Cursor{}, false, newSink(noLimit))
				if err != nil {
					t.Errorf("Follow(%q): %v", room, err)
				}
				c <- fl
			}()
			return c
		}
		first := followAsync("slow")
		<-f.entered
		second := followAsync("slow")

		select {
		case fast := <-followAsync("fast"):
			fast.Close()
		case <-time.After(5 * time.Second):
			t.Fatal("following another room waited for the slow room's feed")
		}
		synctest.Wait()
		select {
		case <-second:
			t.Fatal("a second follower of the slow room returned before the feed watched it")
		default:
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
	})
}
