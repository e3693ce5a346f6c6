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

// The follower's contract, under testing/synctest and against the real
// MemoryStore: whatever happens (racing posts, a slow client, a feed
// hiccup, a lost history, a cursor from afar, a failing store), the sink
// receives every message once and in seq order, or the snapshot or notice
// that stands for the messages it cannot have.

// faultStore is a MemoryStore that a test can fault: its feed can skip a
// message, and its reads can fail or wait.
type faultStore struct {
	*chat.MemoryStore
	skip int64 // Watch does not hand this seq on (a feed hiccup); 0: none

	mu          sync.Mutex
	sinceErr    error // Since fails with it, when set
	recentErr   error // Recent fails with it, when set, after recentOK calls
	recentOK    int
	gate        chan struct{} // Since waits until it is closed (or ctx ends), when set
	afterSince  func()        // called once, after a Since read, when set
	sinceCalls  int
	recentCalls int
}

func newFaultStore(retention int) *faultStore {
	return &faultStore{MemoryStore: chat.NewMemoryStore(retention)}
}

func (s *faultStore) set(fn func(*faultStore)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(s)
}

func (s *faultStore) Watch(room string, fn func(chat.Message)) func() {
	return s.MemoryStore.Watch(room, func(m chat.Message) {
		if m.Seq != s.skip {
			fn(m)
		}
	})
}

func (s *faultStore) Since(ctx context.Context, room string, after int64, limit int) ([]chat.Message, error) {
	s.mu.Lock()
	s.sinceCalls++
	err, gate := s.sinceErr, s.gate
	s.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if err != nil {
		return nil, err
	}
	msgs, err := s.MemoryStore.Since(ctx, room, after, limit)
	s.mu.Lock()
	hook := s.afterSince
	s.afterSince = nil
	s.mu.Unlock()
	if hook != nil {
		hook()
	}
	return msgs, err
}

func (s *faultStore) Recent(ctx context.Context, room string, n int) ([]chat.Message, error) {
	s.mu.Lock()
	s.recentCalls++
	var err error
	if s.recentCalls > s.recentOK {
		err = s.recentErr
	}
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return s.MemoryStore.Recent(ctx, room, n)
}

// resetStore is a Store whose history can be lost: reset switches it to
// another MemoryStore (another epoch), moving the watches over, as a Redis
// FLUSHALL or a new SQLite file does.
type resetStore struct {
	mu         sync.Mutex
	cur        *chat.MemoryStore
	watches    map[*resetWatch]struct{}
	afterSince func() // called once, after a Since read, when set
}

type resetWatch struct {
	room string
	fn   func(chat.Message)
	stop func()
}

func newResetStore() *resetStore {
	return &resetStore{cur: chat.NewMemoryStore(0), watches: map[*resetWatch]struct{}{}}
}

func (s *resetStore) store() *chat.MemoryStore {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

// reset makes next the store's history from now on.
func (s *resetStore) reset(next *chat.MemoryStore) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for w := range s.watches {
		w.stop()
		w.stop = next.Watch(w.room, w.fn)
	}
	s.cur = next
}

func (s *resetStore) Append(ctx context.Context, m chat.Message) (chat.Message, error) {
	return s.store().Append(ctx, m)
}

func (s *resetStore) Since(ctx context.Context, room string, after int64, limit int) ([]chat.Message, error) {
	msgs, err := s.store().Since(ctx, room, after, limit)
	s.mu.Lock()
	hook := s.afterSince
	s.afterSince = nil
	s.mu.Unlock()
	if hook != nil {
		hook()
	}
	return msgs, err
}

func (s *resetStore) Recent(ctx context.Context, room string, n int) ([]chat.Message, error) {
	return s.store().Recent(ctx, room, n)
}

func (s *resetStore) Before(ctx context.Context, room string, before int64, n int) ([]chat.Message, error) {
	return s.store().Before(ctx, room, before, n)
}

func (s *resetStore) Delete(ctx context.Context, d chat.Deletion) (chat.Message, error) {
	return s.store().Delete(ctx, d)
}

func (s *resetStore) Watch(room string, fn func(chat.Message)) func() {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := &resetWatch{room: room, fn: fn, stop: s.cur.Watch(room, fn)}
	s.watches[w] = struct{}{}
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if _, ok := s.watches[w]; ok {
			delete(s.watches, w)
			w.stop()
		}
	}
}

func (s *resetStore) Close() error { return s.store().Close() }

// appendN appends n messages to room directly (as another node would) and
// returns the epoch they got.
func appendN(t *testing.T, s chat.Store, room string, n int) string {
	t.Helper()
	var epoch string
	for i := range n {
		m, err := s.Append(t.Context(), chat.Message{Room: room, Author: "old", Text: fmt.Sprint("old ", i)})
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		epoch = m.Epoch
	}
	return epoch
}

// postN posts n messages to room through the hub, each within wait.
func postN(t *testing.T, h *chat.Hub, room string, n int) {
	t.Helper()
	for i := range n {
		if _, err := post(t, h, room, "alice", fmt.Sprint("hi ", i)); err != nil {
			t.Fatalf("Post: %v", err)
		}
		// The store fans a message out after Append returned (on a
		// goroutine of its own): let it, so each post is seen as it
		// happens. Must run on the bubble's root goroutine.
		synctest.Wait()
	}
}

// wantMsgs is the expected events of the messages from..to of epoch.
func wantMsgs(epoch string, from, to int64) []string {
	var out []string
	for seq := from; seq <= to; seq++ {
		c := chat.Cursor{Epoch: epoch, Seq: seq}
		out = append(out, c.String()+":msg "+c.String())
	}
	return out
}

// wantSnapshot is the expected event of a snapshot of seqs from..to of
// epoch, rendered by renderSnapshot.
func wantSnapshot(epoch string, reset bool, from, to int64) string {
	var ids []string
	for seq := from; seq <= to; seq++ {
		ids = append(ids, chat.Cursor{Epoch: epoch, Seq: seq}.String())
	}
	return fmt.Sprintf("%s:snapshot reset=%t %s", chat.Cursor{Epoch: epoch, Seq: to}, reset, strings.Join(ids, ","))
}

// checkEvents checks that evs are exactly want, each "ID:HTML".
func checkEvents(t *testing.T, evs []*chat.Event, want []string) {
	t.Helper()
	got := make([]string, len(evs))
	for i, ev := range evs {
		got[i] = string(ev.ID) + ":" + string(ev.HTML)
		cursorOf(t, ev)
	}
	for i := range max(len(got), len(want)) {
		var g, w string
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			t.Errorf("event %d is %q, want %q\n got %s\nwant %d events: %.300q", i, g, w, describe(evs), len(want), want)
			return
		}
	}
}

// Eight posters race into a room while three followers follow it: one
// from cursor 0 whose replay is still under way when the posts begin, one
// live, one that joins half-way. Each receives every message from where
// it started, once and in order.
func TestFollowRacingPosters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const (
			before  = 50
			posters = 8
			each    = 100
			total   = before + posters*each
		)
		store := newFaultStore(0)
		t.Cleanup(func() { store.Close() })
		var over overflows
		h := chat.NewHub(store, followOpts(chat.HubOptions{
			ReplayBatch: 16,    // the replay takes many reads, racing the posts
			ReplayMax:   total, // and is never cut short by a snapshot
			OnOverflow:  over.record,
		}))
		epoch := appendN(t, store, "lobby", before)

		live := follow(t, h, "lobby")
		synctest.Wait() // live at seq 50

		// The replaying follower's first read waits until 100 posts are
		// in: its replay runs into the racing posts.
		gate := make(chan struct{})
		store.set(func(s *faultStore) { s.gate = gate })
		replaying := followFrom(t, h, "lobby", chat.Cursor{Epoch: epoch, Seq: 0})

		var (
			posted  atomic.Int64
			halfway = make(chan struct{})
			posting sync.WaitGroup
		)
		for p := range posters {
			posting.Go(func() {
				for i := range each {
					if _, err := h.Post(t.Context(), "lobby", chat.Author{Name: fmt.Sprint("poster-", p)}, fmt.Sprintf("%d/%d", p, i)); err != nil {
						t.Errorf("Post: %v", err)
						return
					}
					switch posted.Add(1) {
					case 100:
						close(gate)
					case posters * each / 2:
						close(halfway)
					}
				}
			})
		}

		// The late follower starts at the newest seq when it joins: at
		// least what was stored before Follow, at most what was stored
		// when it returned.
		type joined struct {
			s         *sink
			f         *chat.Follower
			low, high int64
		}
		late := make(chan joined, 1)
		go func() {
			<-halfway
			var j joined
			j.low = head(t, store, "lobby")
			j.s = newSink(noLimit)
			f, err := h.Follow(t.Context(), "lobby", chat.Cursor{}, false, j.s)
			if err != nil {
				t.Errorf("Follow: %v", err)
			}
			j.high = head(t, store, "lobby")
			j.f = f
			late <- j
		}()
		posting.Wait()
		j := <-late
		if j.f == nil {
			t.FailNow()
		}
		t.Cleanup(j.f.Close)
		synctest.Wait()
		// One more, after everyone joined: the late follower may have
		// joined after the last racing post was stored, and must still get
		// what comes after.
		postN(t, h, "lobby", 1)
		const last = total + 1

		checkMessages(t, "the replaying follower", replaying.got(), epoch, 1, last)
		checkMessages(t, "the live follower", live.got(), epoch, before+1, last)
		evs := j.s.got()
		if len(evs) == 0 {
			t.Fatalf("the late follower got nothing; it joined at seq %d..%d of %d", j.low, j.high, last)
		}
		start := cursorOf(t, evs[0]).Seq - 1
		if start < j.low || start > j.high {
			t.Errorf("the late follower started after seq %d, want between %d (stored before Follow) and %d (stored when it returned)", start, j.low, j.high)
		}
		checkMessages(t, "the late follower", evs, epoch, start+1, last)
		for _, s := range []*sink{live, replaying, j.s} {
			if ends := s.endErrs(); len(ends) != 0 {
				t.Errorf("a follower ended: %v", ends)
			}
		}
		if n := len(over.get()); n != 0 {
			t.Errorf("%d overflows into sinks that take everything", n)
		}
	})
}

// head returns the newest seq of room.
func head(t *testing.T, s chat.Store, room string) int64 {
	t.Helper()
	m, err := s.Recent(context.Background(), room, 1)
	if err != nil || len(m) != 1 {
		t.Errorf("Recent(%q, 1) = %v, %v", room, m, err)
		return 0
	}
	return m[0].Seq
}

// A message committed while the follower's replay read is under way (after
// the store answered, before the follower looked at the answer) is not in
// the read: the follower must not go live without it. And when the
// message is of a new history, the follower must send a snapshot of it.
func TestFollowMessageDuringRead(t *testing.T) {
	t.Run("SameHistory", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			store := newFaultStore(0)
			t.Cleanup(func() { store.Close() })
			h := chat.NewHub(store, followOpts(chat.HubOptions{}))
			e := appendN(t, store, "lobby", 5)
			store.set(func(s *faultStore) { s.afterSince = func() { appendN(t, store, "lobby", 1) } })
			s := followFrom(t, h, "lobby", chat.Cursor{Epoch: e, Seq: 0})
			synctest.Wait()
			checkEvents(t, s.got(), wantMsgs(e, 1, 6))
		})
	})
	// The room is empty when the follower reads it, and its first message
	// (its first history) arrives during that read: the follower goes on
	// reading into that history; it is no reset (found by the two-node
	// Redis test, 1 run in 50: a spurious "history was reset" snapshot).
	t.Run("EmptyRoomFirstMessage", func(t *testing.T) {
		for _, from := range []chat.Cursor{{Seq: 0}, {}} {
			synctest.Test(t, func(t *testing.T) {
				store := newFaultStore(0)
				t.Cleanup(func() { store.Close() })
				h := chat.NewHub(store, followOpts(chat.HubOptions{}))
				var e string
				store.set(func(s *faultStore) {
					s.afterSince = func() {
						// The follower's read found nothing; the
						// messages reach it before the read returns
						// (a watcher added now runs after the hub's).
						delivered := make(chan struct{})
						defer store.Watch("lobby", func(m chat.Message) {
							if m.Seq == 2 {
								close(delivered)
							}
						})()
						e = appendN(t, store, "lobby", 2)
						<-delivered
					}
				})
				s := followFrom(t, h, "lobby", from)
				synctest.Wait()
				checkEvents(t, s.got(), wantMsgs(e, 1, 2))
			})
		}
	})
	t.Run("NewHistory", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			store := newResetStore()
			h := chat.NewHub(store, followOpts(chat.HubOptions{}))
			old := appendN(t, store, "lobby", 5)
			next := chat.NewMemoryStore(0)
			t.Cleanup(func() { next.Close() })
			var e string
			store.mu.Lock()
			store.afterSince = func() {
				store.reset(next)
				e = appendN(t, store, "lobby", 1)
			}
			store.mu.Unlock()
			s := followFrom(t, h, "lobby", chat.Cursor{Epoch: old, Seq: 0})
			synctest.Wait()
			if e == old {
				t.Skip("the two stores drew the same epoch (1 in 2³²)")
			}
			checkEvents(t, s.got(), append(wantMsgs(old, 1, 5), wantSnapshot(e, true, 1, 1)))
		})
	})
}

// A client that reads nothing for a while: its follower's queue (8) fills,
// it falls behind (reported once) while the posts go on unhindered, and
// once the client reads again it receives all 100 messages once and in
// order (8 from its queue, the rest from the store), then goes on live.
func TestFollowOverflowThenResume(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const queue, posts = 8, 100
		var over overflows
		h, store := newHub(t, followOpts(chat.HubOptions{QueueSize: queue, OnOverflow: over.record}))
		s := followInto(t, h, "lobby", chat.Cursor{}, false, newSink(0))
		other := follow(t, h, "lobby")
		synctest.Wait()

		start := time.Now()
		postN(t, h, "lobby", posts) // each within wait: posting never waits on the follower
		if d := time.Since(start); d != 0 {
			t.Errorf("posting took %v of the bubble's time; it must never wait on a follower", d)
		}
		synctest.Wait()
		epoch := epochOf(t, store, "lobby")
		checkMessages(t, "the reading follower", other.got(), epoch, 1, posts)
		if got := s.got(); len(got) != 0 {
			t.Fatalf("the stalled sink accepted %s", describe(got))
		}
		if got, want := over.get(), []overflow{{"lobby", queue}}; len(got) != 1 || got[0] != want[0] {
			t.Errorf("OnOverflow calls = %+v, want %+v: once, with the queue full at its bound", got, want)
		}

		s.drain(noLimit)
		synctest.Wait()
		checkMessages(t, "the resumed follower", s.got(), epoch, 1, posts)
		postN(t, h, "lobby", 1)
		synctest.Wait()
		checkMessages(t, "the resumed follower", s.got(), epoch, 1, posts+1)
		if ends := s.endErrs(); len(ends) != 0 {
			t.Errorf("the follower ended: %v", ends)
		}
	})
}

// A client that is slower than the room all along, taking 3 events at a
// time now and then while the posts go on: its follower falls behind and
// resumes from the store again and again, and the client still gets every
// message once and in order.
func TestFollowSlowClientKeepsUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const posts = 300
		var over overflows
		h, store := newHub(t, followOpts(chat.HubOptions{QueueSize: 4, ReplayMax: 10 * posts, OnOverflow: over.record}))
		s := followInto(t, h, "lobby", chat.Cursor{}, false, newSink(3))
		synctest.Wait()
		done := make(chan struct{})
		go func() {
			defer close(done)
			for range posts {
				if _, err := h.Post(t.Context(), "lobby", alice, "hi"); err != nil {
					t.Errorf("Post: %v", err)
					return
				}
				time.Sleep(time.Millisecond)
			}
		}()
		for reading := true; reading; {
			select {
			case <-done:
				reading = false
			case <-time.After(7 * time.Millisecond):
				s.drain(3)
			}
		}
		s.drain(noLimit)
		synctest.Wait()
		checkMessages(t, "the slow follower", s.got(), epochOf(t, store, "lobby"), 1, posts)
		// It fell behind (once: slower than the room, it never caught up
		// until the posts ended), and the sink refused offers often.
		if n := len(over.get()); n < 1 || s.refusals() < 10 {
			t.Errorf("%d overflows, %d refused offers; the test means the client to be slower than the room", n, s.refusals())
		}
	})
}

// A client that fell further behind than ReplayMax gets, instead of the
// rest of the replay, a snapshot of the newest messages (reset false:
// earlier ones are not shown), then goes on live.
func TestFollowBehindBeyondReplayMax(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, store := newHub(t, followOpts(chat.HubOptions{QueueSize: 8, ReplayMax: 10, SnapshotSize: 5}))
		s := followInto(t, h, "lobby", chat.Cursor{}, false, newSink(0))
		synctest.Wait()
		postN(t, h, "lobby", 100)
		s.drain(noLimit)
		synctest.Wait()
		postN(t, h, "lobby", 1)
		synctest.Wait()
		e := epochOf(t, store, "lobby")
		// 8 from the queue, replays of 8 until 10 or more were replayed
		// (16), then the snapshot; then live.
		want := wantMsgs(e, 1, 24)
		want = append(want, wantSnapshot(e, false, 96, 100))
		want = append(want, wantMsgs(e, 101, 101)...)
		checkEvents(t, s.got(), want)
	})
}

// The feed skips seq 5 (a hiccup): the follower meets the gap at seq 6 and
// fills seq 5 from the store. Every seq once, in order.
func TestFollowFeedGap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newFaultStore(0)
		store.skip = 5
		t.Cleanup(func() { store.Close() })
		h := chat.NewHub(store, followOpts(chat.HubOptions{}))
		s := follow(t, h, "lobby")
		synctest.Wait()
		for range 10 {
			postN(t, h, "lobby", 1)
			synctest.Wait()
		}
		checkMessages(t, "the follower", s.got(), epochOf(t, store, "lobby"), 1, 10)
	})
}

// The room's history is lost while a follower is live (the store switches
// to another epoch that already holds 2 messages): at the first message of
// the new history the follower sends a snapshot (reset true) of the new
// history, with the new epoch in its ID, then goes on live in it.
func TestFollowResetMidStream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newResetStore()
		h := chat.NewHub(store, followOpts(chat.HubOptions{}))
		old := appendN(t, store, "lobby", 5)
		s := follow(t, h, "lobby")
		synctest.Wait()
		postN(t, h, "lobby", 2) // 6, 7 of the old history

		next := chat.NewMemoryStore(0)
		t.Cleanup(func() { next.Close() })
		e := appendN(t, next, "lobby", 2)
		if e == old {
			t.Skip("the two stores drew the same epoch (1 in 2³²)")
		}
		store.reset(next)
		postN(t, h, "lobby", 1) // 3 of the new history
		synctest.Wait()
		postN(t, h, "lobby", 2) // 4, 5
		synctest.Wait()

		want := wantMsgs(old, 6, 7)
		want = append(want, wantSnapshot(e, true, 1, 3))
		want = append(want, wantMsgs(e, 4, 5)...)
		checkEvents(t, s.got(), want)
	})
}

// The history is lost while a follower is behind (its client stalled), and
// the new history is shorter than the follower's cursor: when the client
// reads again, the follower must notice that the history it was sending
// is gone and send a snapshot of the new one, not go quietly live in the
// old epoch, leaving the new history's message unshown until the next post.
func TestFollowResetWhileBehind(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newResetStore()
		h := chat.NewHub(store, followOpts(chat.HubOptions{QueueSize: 1}))
		old := appendN(t, store, "lobby", 5)
		s := followInto(t, h, "lobby", chat.Cursor{}, false, newSink(0))
		synctest.Wait()
		postN(t, h, "lobby", 2) // 6 queued, 7 overflows: behind

		next := chat.NewMemoryStore(0)
		t.Cleanup(func() { next.Close() })
		store.reset(next)
		m, err := post(t, h, "lobby", "alice", "the new history's first") // seq 1 of a new epoch
		if err != nil {
			t.Fatalf("Post: %v", err)
		}
		if m.Epoch == old {
			t.Skip("the two stores drew the same epoch (1 in 2³²)")
		}
		s.drain(noLimit)
		synctest.Wait()
		want := wantMsgs(old, 6, 6)
		want = append(want, wantSnapshot(m.Epoch, true, 1, 1))
		checkEvents(t, s.got(), want)
	})
}

// Where a follower starts, by its cursor: one of another epoch, or beyond
// the newest message, gets a snapshot (reset true); one further behind
// than ReplayMax gets a snapshot of the newest SnapshotSize messages
// (reset false) and no replay of the older ones; one within the bound is
// replayed message by message. Each then goes on live.
func TestFollowFromCursor(t *testing.T) {
	const (
		stored   = 50
		snapshot = 5
		bound    = 10
	)
	for _, tc := range []struct {
		name string
		from func(epoch string) chat.Cursor
		want func(epoch string) []string
	}{
		{"AnotherEpoch", func(string) chat.Cursor { return chat.Cursor{Epoch: "0ther", Seq: 48} },
			func(e string) []string { return []string{wantSnapshot(e, true, 46, 50)} }},
		{"BeyondNewest", func(e string) chat.Cursor { return chat.Cursor{Epoch: e, Seq: 51} },
			func(e string) []string { return []string{wantSnapshot(e, true, 46, 50)} }},
		{"BeyondReplayBound", func(e string) chat.Cursor { return chat.Cursor{Epoch: e, Seq: 0} },
			func(e string) []string { return []string{wantSnapshot(e, false, 46, 50)} }},
		{"JustBeyondReplayBound", func(e string) chat.Cursor { return chat.Cursor{Epoch: e, Seq: stored - bound - 1} },
			func(e string) []string { return []string{wantSnapshot(e, false, 46, 50)} }},
		{"AtReplayBound", func(e string) chat.Cursor { return chat.Cursor{Epoch: e, Seq: stored - bound} },
			func(e string) []string { return wantMsgs(e, 41, 50) }},
		{"WithinReplayBound", func(e string) chat.Cursor { return chat.Cursor{Epoch: e, Seq: 47} },
			func(e string) []string { return wantMsgs(e, 48, 50) }},
		{"BareSeq", func(string) chat.Cursor { return chat.Cursor{Seq: 45} }, // ?after=45
			func(e string) []string { return wantMsgs(e, 46, 50) }},
		{"AtNewest", func(e string) chat.Cursor { return chat.Cursor{Epoch: e, Seq: 50} },
			func(string) []string { return nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h, store := newHub(t, followOpts(chat.HubOptions{ReplayMax: bound, SnapshotSize: snapshot}))
				e := appendN(t, store, "lobby", stored)
				s := followFrom(t, h, "lobby", tc.from(e))
				synctest.Wait()
				postN(t, h, "lobby", 2)
				synctest.Wait()
				checkEvents(t, s.got(), append(tc.want(e), wantMsgs(e, 51, 52)...))
			})
		})
	}
}

// An empty room followed with a cursor of some history: the client's
// history is gone, so an empty snapshot (reset true) replaces it; the
// room's first message then goes out live with its epoch.
func TestFollowCursorIntoEmptyRoom(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, store := newHub(t, followOpts(chat.HubOptions{}))
		s := followFrom(t, h, "lobby", chat.Cursor{Epoch: "gone", Seq: 7})
		synctest.Wait()
		postN(t, h, "lobby", 1)
		synctest.Wait()
		e := epochOf(t, store, "lobby")
		checkEvents(t, s.got(), append([]string{"0:snapshot reset=true "}, wantMsgs(e, 1, 1)...))
	})
}

// Retention trimmed the messages after the cursor: the replay sends a
// notice where they were, then what the store still holds.
func TestFollowTrimmed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := chat.NewMemoryStore(10)
		t.Cleanup(func() { store.Close() })
		h := chat.NewHub(store, followOpts(chat.HubOptions{}))
		e := appendN(t, store, "lobby", 30)
		s := followFrom(t, h, "lobby", chat.Cursor{Epoch: e, Seq: 5})
		synctest.Wait()
		want := append([]string{chat.Cursor{Epoch: e, Seq: 20}.String() + ":trimmed 20"}, wantMsgs(e, 21, 30)...)
		checkEvents(t, s.got(), want)
	})
}

// The store fails while the follower reads it (a replay, or a snapshot):
// the sink is ended once with the error and given nothing; Close after
// that is safe, and later posts reach it no more.
func TestFollowStoreError(t *testing.T) {
	errBoom := errors.New("boom")
	for _, tc := range []struct {
		name  string
		from  int64
		fault func(*faultStore)
	}{
		{"Replay", 45, func(s *faultStore) { s.sinceErr = errBoom }},
		{"Snapshot", 0, func(s *faultStore) { s.recentErr, s.recentOK = errBoom, 1 }}, // Follow's read of the head succeeds
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				store := newFaultStore(0)
				t.Cleanup(func() { store.Close() })
				h := chat.NewHub(store, followOpts(chat.HubOptions{ReplayMax: 10}))
				e := appendN(t, store, "lobby", 50)
				// Follow reads the room's head; the fill's read fails.
				store.set(tc.fault)
				s := followFrom(t, h, "lobby", chat.Cursor{Epoch: e, Seq: tc.from})
				synctest.Wait()
				if ends := s.endErrs(); len(ends) != 1 || !errors.Is(ends[0], errBoom) {
					t.Fatalf("End calls: %v, want one with %v", ends, errBoom)
				}
				store.set(func(s *faultStore) { s.sinceErr, s.recentErr = nil, nil })
				postN(t, h, "lobby", 1)
				synctest.Wait()
				s.f.Close()
				s.f.Close()
				if got := h.Subscribers("lobby"); got != 0 {
					t.Errorf("Subscribers = %d after Close, want 0", got)
				}
				postN(t, h, "lobby", 1)
				synctest.Wait()
				if got := s.got(); len(got) != 0 {
					t.Errorf("an ended follower offered %s", describe(got))
				}
				if ends := s.endErrs(); len(ends) != 1 {
					t.Errorf("End called %d times, want once", len(ends))
				}
			})
		})
	}

	t.Run("Follow", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			store := newFaultStore(0)
			t.Cleanup(func() { store.Close() })
			h := chat.NewHub(store, chat.HubOptions{})
			store.set(func(s *faultStore) { s.recentErr = errBoom })
			s := newSink(noLimit)
			if f, err := h.Follow(t.Context(), "lobby", chat.Cursor{}, false, s); !errors.Is(err, errBoom) || f != nil {
				t.Fatalf("Follow on a failing store = %v, %v; want nil, %v", f, err, errBoom)
			}
			synctest.Wait()
			if got := h.Subscribers("lobby"); got != 0 {
				t.Errorf("Subscribers = %d after a failed Follow, want 0", got)
			}
			if ends := s.endErrs(); len(ends) != 0 {
				t.Errorf("End called after a failed Follow: %v; the error is Follow's", ends)
			}
		})
	})
}

// Close while the follower waits on a store read: the read is cut short,
// and that is no failure: End is never called after Close.
func TestFollowCloseDuringRead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newFaultStore(0)
		t.Cleanup(func() { store.Close() })
		h := chat.NewHub(store, followOpts(chat.HubOptions{}))
		e := appendN(t, store, "lobby", 5)
		store.set(func(s *faultStore) { s.gate = make(chan struct{}) }) // never opens
		s := followFrom(t, h, "lobby", chat.Cursor{Epoch: e, Seq: 0})
		synctest.Wait()
		if n := followerGoroutines(); n != 1 {
			t.Fatalf("%d follower goroutines while reading the store, want 1 (the fill)", n)
		}
		s.f.Close()
		synctest.Wait()
		if n := followerGoroutines(); n != 0 {
			t.Errorf("%d follower goroutines after Close, want none", n)
		}
		if got := s.got(); len(got) != 0 {
			t.Errorf("a closed follower offered %s", describe(got))
		}
		if ends := s.endErrs(); len(ends) != 0 {
			t.Errorf("End called after Close: %v", ends)
		}
	})
}

// Member lists reach a follower only when it is live, at the newest point
// of its log: never ahead of the replay.
func TestFollowPresenceWaitsForReplay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newFaultStore(0)
		t.Cleanup(func() { store.Close() })
		h := chat.NewHub(store, followOpts(chat.HubOptions{
			RenderPresence: func(room string, ms []chat.Member) ([]byte, error) {
				return fmt.Appendf(nil, "members %d", len(ms)), nil
			},
		}))
		e := appendN(t, store, "lobby", 5)
		defer h.Join("lobby", chat.Member{Key: "a1", Name: "Ann"})()
		gate := make(chan struct{})
		store.set(func(s *faultStore) { s.gate = gate })
		s := followFrom(t, h, "lobby", chat.Cursor{Epoch: e, Seq: 0})
		synctest.Wait()
		if got := s.got(); len(got) != 0 {
			t.Fatalf("before the replay: %s, want nothing", describe(got))
		}
		close(gate)
		synctest.Wait()
		want := append(wantMsgs(e, 1, 5), chat.Cursor{Epoch: e, Seq: 5}.String()+":members 1")
		checkEvents(t, s.got(), want)
	})
}

// followerGoroutines counts the goroutines running a Follower's code.
func followerGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	return strings.Count(string(buf), "chat.(*Follower).fill(")
}

// A follower's goroutines end with it: after Close, none remains, whether
// it was live, replaying (waiting on the store), or behind.
func TestFollowGoroutinesEnd(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, h *chat.Hub, store *faultStore) *sink
	}{
		{"Live", func(t *testing.T, h *chat.Hub, store *faultStore) *sink {
			s := follow(t, h, "lobby")
			synctest.Wait()
			postN(t, h, "lobby", 3)
			return s
		}},
		{"Replaying", func(t *testing.T, h *chat.Hub, store *faultStore) *sink {
			appendN(t, store, "lobby", 5)
			store.set(func(s *faultStore) { s.gate = make(chan struct{}) })
			return followFrom(t, h, "lobby", chat.Cursor{Seq: 0})
		}},
		{"Behind", func(t *testing.T, h *chat.Hub, store *faultStore) *sink {
			s := followInto(t, h, "lobby", chat.Cursor{}, false, newSink(0))
			synctest.Wait()
			postN(t, h, "lobby", 20)
			return s
		}},
		{"BehindInReplay", func(t *testing.T, h *chat.Hub, store *faultStore) *sink {
			appendN(t, store, "lobby", 20)
			return followInto(t, h, "lobby", chat.Cursor{Seq: 0}, true, newSink(0))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				store := newFaultStore(0)
				t.Cleanup(func() { store.Close() })
				h := chat.NewHub(store, followOpts(chat.HubOptions{QueueSize: 4}))
				synctest.Wait()
				s := tc.setup(t, h, store)
				synctest.Wait()
				s.f.Close()
				synctest.Wait()
				if n := followerGoroutines(); n != 0 {
					t.Errorf("%d follower goroutines after Close, want none", n)
				}
				if got := h.Subscribers("lobby"); got != 0 {
					t.Errorf("Subscribers = %d after Close, want 0", got)
				}
			})
		})
	}
}
