package redis

import (
	"context"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hxchat/hxchat/chat"
	"github.com/hxchat/hxchat/chat/redis/redistest"
)

// presenceNodes opens n stores on one Redis with one key prefix and the
// given presence heartbeat: n nodes of one deployment. url may be a proxy.
func presenceNodes(t *testing.T, hb time.Duration, urls ...string) []*Store {
	t.Helper()
	prefix := freshPrefix()
	var out []*Store
	for _, u := range urls {
		o := testOptions()
		o.KeyPrefix = prefix
		o.PresenceHeartbeat = hb
		out = append(out, open(t, u, o))
	}
	return out
}

// membersNow reads p's members of room, failing the test on an error.
func membersNow(t *testing.T, p chat.Presence, room string) []chat.Member {
	t.Helper()
	ms, err := p.Members(t.Context(), room)
	if err != nil {
		t.Fatalf("Members(%q): %v", room, err)
	}
	return ms
}

// waitMembers waits until p shows exactly want in room.
func waitMembers(t *testing.T, what string, p chat.Presence, room string, want ...chat.Member) {
	t.Helper()
	var got []chat.Member
	deadline := time.Now().Add(waitTimeout)
	for {
		var err error
		got, err = p.Members(t.Context(), room)
		if err == nil && slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: members %v (err %v), want %v within %v", what, got, err, want, waitTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var (
	ann = chat.Member{Key: "a1", Name: "Ann"}
	bob = chat.Member{Key: "b2", Name: "Bob"}
)

func TestPresenceAcrossNodes(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	nodes := presenceNodes(t, time.Second, srv.URL(), srv.URL())
	a, b := nodes[0].Presence(), nodes[1].Presence()

	var calls atomic.Int32
	stop := b.WatchMembers("lobby", func() { calls.Add(1) })
	defer stop()

	leaveAnn := a.Join("lobby", ann)
	// Seen on the node itself at once, and on the other as soon as the
	// entry is written.
	if got, want := membersNow(t, a, "lobby"), []chat.Member{ann}; !slices.Equal(got, want) {
		t.Fatalf("node A: members %v, want %v at once", got, want)
	}
	waitMembers(t, "node B sees Ann", b, "lobby", ann)
	waitUntil(t, "node B's watcher is told of the join", func() bool { return calls.Load() > 0 })

	// Ann's second tab on the other node, and Bob: Ann counts once.
	leaveAnn2 := b.Join("lobby", ann)
	leaveBob := b.Join("lobby", bob)
	waitMembers(t, "node A sees Ann once and Bob", a, "lobby", ann, bob)
	occ, err := a.Occupied(t.Context(), 10)
	if err != nil {
		t.Fatal(err)
	}
	if want := []chat.Occupancy{{Room: "lobby", Online: 2}}; !slices.Equal(occ, want) {
		t.Fatalf("Occupied = %v, want %v", occ, want)
	}

	// Ann leaves on A but is still on B: still there for both.
	leaveAnn()
	waitMembers(t, "A after Ann's first tab left", a, "lobby", ann, bob)
	leaveAnn2()
	leaveBob()
	waitMembers(t, "A after everyone left", a, "lobby")
	waitMembers(t, "B after everyone left", b, "lobby")
	if occ, err := b.Occupied(t.Context(), 10); err != nil || len(occ) != 0 {
		t.Fatalf("Occupied after everyone left = %v, %v; want none", occ, err)
	}
}

// TestPresenceNodeLostExpires: a node that can no longer refresh its
// entries (it crashed, or lost Redis) loses its people on the other nodes
// within two heartbeats, and gets them back once it is reachable again.
func TestPresenceNodeLostExpires(t *testing.T) {
	const hb = 400 * time.Millisecond
	srv := redistest.Start(t, redistest.Options{})
	proxy := redistest.NewProxy(t, srv.Addr)
	nodes := presenceNodes(t, hb, proxy.URL(), srv.URL())
	a, b := nodes[0].Presence(), nodes[1].Presence()
	var calls atomic.Int32
	defer b.WatchMembers("lobby", func() { calls.Add(1) })()
	defer a.Join("lobby", ann)()
	defer b.Join("lobby", bob)()
	waitMembers(t, "B sees Ann and Bob", b, "lobby", ann, bob)

	proxy.Cut() // node A is gone, as far as Redis knows
	cut := time.Now()
	before := calls.Load()
	waitMembers(t, "B after A was cut off", b, "lobby", bob)
	if took := time.Since(cut); took > 2*hb+hb/2 {
		t.Errorf("Ann vanished %v after her node was lost, want within 2 heartbeats (%v) and a little", took, 2*hb)
	}
	if took := time.Since(cut); took < hb {
		t.Errorf("Ann vanished %v after her node was lost, before her entry could expire", took)
	}
	// The watcher is told, so hubs send the new list without anyone
	// joining or leaving.
	waitUntil(t, "B's watcher is called after the expiry", func() bool { return calls.Load() > before })

	proxy.Restore()
	waitMembers(t, "B after A is back", b, "lobby", ann, bob)
}

// TestPresenceCloseLeaves: a node that shuts down takes its people out at
// once; it does not wait for them to expire.
func TestPresenceCloseLeaves(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	nodes := presenceNodes(t, time.Hour, srv.URL(), srv.URL())
	a, b := nodes[0].Presence(), nodes[1].Presence()
	a.Join("lobby", ann)
	waitMembers(t, "B sees Ann", b, "lobby", ann)
	if err := nodes[0].Close(); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, "B after A closed", b, "lobby")
	raw := rawClient(t, srv.URL())
	if n, err := raw.Exists(t.Context(), nodes[0].opts.KeyPrefix+"presence:{lobby}").Result(); err != nil || n != 0 {
		t.Errorf("the room's presence key is left behind (exists %d, %v)", n, err)
	}
}

// TestPresenceHub: a hub on each node sends its followers the members of
// both nodes.
//
// Ported from Hub.Subscribe (gone) to Hub.Follow: the member list reaches a
// follower as an Event whose HTML is RenderPresence's output. If Follow or
// Sink change again, this is the one test here that uses the hub.
func TestPresenceHub(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	nodes := presenceNodes(t, time.Second, srv.URL(), srv.URL())
	render := chat.HubOptions{RenderPresence: func(room string, ms []chat.Member) ([]byte, error) {
		var names []string
		for _, m := range ms {
			names = append(names, m.Name)
		}
		return []byte(strings.Join(names, ",")), nil
	}}
	hubA := chat.NewHub(nodes[0], render)
	hubB := chat.NewHub(nodes[1], render)
	sink := &eventSink{c: make(chan string, 64)}
	f, err := hubB.Follow(t.Context(), "lobby", chat.Cursor{}, false, sink)
	if err != nil {
		t.Fatalf("Follow: %v", err)
	}
	defer f.Close()
	defer hubB.Join("lobby", bob)()
	defer hubA.Join("lobby", ann)()
	deadline := time.After(waitTimeout)
	for {
		select {
		case html := <-sink.c:
			if html == "Ann,Bob" {
				return
			}
		case <-deadline:
			t.Fatalf("hub B's follower never got Ann and Bob within %v", waitTimeout)
		}
	}
}

// eventSink is a chat.Sink that passes on the HTML of every event offered,
// dropping what its channel has no room for.
type eventSink struct{ c chan string }

func (s *eventSink) Offer(ev *chat.Event) bool {
	select {
	case s.c <- string(ev.HTML):
	default:
	}
	return true
}

func (s *eventSink) End(error) {}

// TestPresenceNoGoroutineLeak: Close ends the presence's goroutines.
func TestPresenceNoGoroutineLeak(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	before := runtime.NumGoroutine()
	for range 3 {
		s, err := Open(context.Background(), srv.URL(), testOptions())
		if err != nil {
			t.Fatal(err)
		}
		s.Presence().Join("lobby", ann)
		stop := s.Presence().WatchMembers("lobby", func() {})
		if _, err := s.Presence().Members(t.Context(), "lobby"); err != nil {
			t.Fatal(err)
		}
		stop()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Presence().Members(t.Context(), "lobby"); err == nil {
			t.Fatal("Members after Close: no error")
		}
	}
	deadline := time.Now().Add(waitTimeout)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines after Close, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}
