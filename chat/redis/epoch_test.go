package redis

import (
	"fmt"
	"slices"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/hxchat/hxchat/chat/redis/redistest"
)

// repeat returns n copies of e.
func repeat(e string, n int) []string { return slices.Repeat([]string{e}, n) }

// readEpochs returns the seqs and epochs Since and Recent return for room.
func readEpochs(t *testing.T, s *Store, room string) (since, recent []string) {
	t.Helper()
	a, err := s.Since(t.Context(), room, 0, 100)
	if err != nil {
		t.Fatalf("Since: %v", err)
	}
	b, err := s.Recent(t.Context(), room, 100)
	if err != nil {
		t.Fatalf("Recent: %v", err)
	}
	for _, m := range a {
		since = append(since, fmt.Sprintf("%d-%s", m.Seq, m.Epoch))
	}
	for _, m := range b {
		recent = append(recent, fmt.Sprintf("%d-%s", m.Seq, m.Epoch))
	}
	return since, recent
}

// cursors returns "SEQ-EPOCH" for seqs from..to of epoch.
func cursors(from, to int64, epoch string) []string {
	var out []string
	for seq := from; seq <= to; seq++ {
		out = append(out, fmt.Sprintf("%d-%s", seq, epoch))
	}
	return out
}

// TestFlushGivesNewEpoch: after FLUSHALL the room starts over at seq 1 in a
// new epoch, and a watcher that was watching all along is given the new
// seq 1 (not dropped as a seq it already had), with the new epoch.
func TestFlushGivesNewEpoch(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s := open(t, srv.URL(), testOptions())
	var c collector
	defer s.Watch("lobby", c.fn)()
	appendN(t, s, "lobby", 3)
	c.check(t, "before the flush", span(1, 3))
	old := c.epochs()[0]
	if old == "" || !slices.Equal(c.epochs(), repeat(old, 3)) {
		t.Fatalf("epochs before the flush = %v, want one non-empty epoch", c.epochs())
	}
	if err := rawClient(t, srv.URL()).FlushAll(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	m, err := s.Append(t.Context(), msg("lobby", "after the flush"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Seq != 1 || m.Epoch == old || m.Epoch == "" {
		t.Fatalf("Append after FLUSHALL = seq %d, epoch %q; want seq 1 in a new epoch (not %q)", m.Seq, m.Epoch, old)
	}
	c.check(t, "after the flush", []int64{1, 2, 3, 1})
	if got, want := c.epochs(), append(repeat(old, 3), m.Epoch); !slices.Equal(got, want) {
		t.Errorf("epochs delivered = %v, want %v", got, want)
	}
	appendN(t, s, "lobby", 1)
	c.check(t, "live after the flush", []int64{1, 2, 3, 1, 2})
	since, recent := readEpochs(t, s, "lobby")
	if want := cursors(1, 2, m.Epoch); !slices.Equal(since, want) || !slices.Equal(recent, want) {
		t.Errorf("Since = %v, Recent = %v; want %v", since, recent, want)
	}
}

// TestSeqWentBackGivesNewEpoch: a failover to a replica that had not got
// the newest writes leaves the epoch key but moves the counter back. The
// watcher that delivered the lost seqs notices on its catch-up and gives the
// room a new epoch (so the seqs handed out again are not mistaken for the
// lost ones); of two such watchers one epoch wins, and appends take it up.
func TestSeqWentBackGivesNewEpoch(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	proxy := redistest.NewProxy(t, srv.Addr)
	opts := testOptions()
	a1, a2 := open(t, proxy.URL(), opts), open(t, proxy.URL(), opts) // watching, behind the proxy
	b := open(t, srv.URL(), opts)                                    // posting
	var c1, c2 collector
	defer a1.Watch("lobby", c1.fn)()
	defer a2.Watch("lobby", c2.fn)()
	appendN(t, b, "lobby", 5)
	c1.check(t, "watcher 1 before the failover", span(1, 5))
	c2.check(t, "watcher 2 before the failover", span(1, 5))
	old := c1.epochs()[0]

	proxy.Cut()
	// The "replica" had seqs 1 and 2 only: the stream as it was then (its
	// top id too, or XADD would refuse seq 3), the counter at 2.
	raw := rawClient(t, srv.URL())
	k := b.keys("lobby")
	kept, err := raw.XRangeN(t.Context(), k.log, "-", "+", 2).Result()
	if err != nil {
		t.Fatal(err)
	}
	if err := raw.Del(t.Context(), k.log).Err(); err != nil {
		t.Fatal(err)
	}
	for _, x := range kept {
		if err := raw.XAdd(t.Context(), &goredis.XAddArgs{Stream: k.log, ID: x.ID, Values: x.Values}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := raw.Set(t.Context(), k.seq, 2, 0).Err(); err != nil {
		t.Fatal(err)
	}
	proxy.Restore()
	c1.check(t, "watcher 1 after the failover", []int64{1, 2, 3, 4, 5, 1, 2})
	c2.check(t, "watcher 2 after the failover", []int64{1, 2, 3, 4, 5, 1, 2})
	epoch, err := raw.Get(t.Context(), k.epoch).Result()
	if err != nil {
		t.Fatal(err)
	}
	if epoch == old {
		t.Fatalf("epoch key after the loss = %q, want a new epoch", epoch)
	}
	want := append(repeat(old, 5), epoch, epoch)
	for i, c := range []*collector{&c1, &c2} {
		if got := c.epochs(); !slices.Equal(got, want) {
			t.Errorf("watcher %d: epochs delivered = %v, want %v", i+1, got, want)
		}
	}
	m, err := b.Append(t.Context(), msg("lobby", "after the failover"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Seq != 3 || m.Epoch != epoch {
		t.Errorf("Append after the failover = seq %d, epoch %q; want seq 3, epoch %q", m.Seq, m.Epoch, epoch)
	}
	c1.check(t, "watcher 1, live again", []int64{1, 2, 3, 4, 5, 1, 2, 3})
	if got := c1.epochs()[7]; got != epoch {
		t.Errorf("seq 3 after the failover delivered in epoch %q, want %q", got, epoch)
	}
	since, recent := readEpochs(t, b, "lobby")
	if want := cursors(1, 3, epoch); !slices.Equal(since, want) || !slices.Equal(recent, want) {
		t.Errorf("Since = %v, Recent = %v; want %v", since, recent, want)
	}
}

// TestLostCounterKeepsEpoch: a counter lost on its own (deleted, evicted)
// while the stream is intact is no loss of history: a catch-up does not
// start a new epoch, and the next append goes on after the stream's top.
func TestLostCounterKeepsEpoch(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	proxy := redistest.NewProxy(t, srv.Addr)
	opts := testOptions()
	a := open(t, proxy.URL(), opts)
	b := open(t, srv.URL(), opts)
	var c collector
	defer a.Watch("lobby", c.fn)()
	appendN(t, b, "lobby", 3)
	c.check(t, "before", span(1, 3))
	epoch := c.epochs()[0]
	raw := rawClient(t, srv.URL())
	numsub := func() int64 {
		ch := a.keys("lobby").live
		n, err := raw.PubSubNumSub(t.Context(), ch).Result()
		if err != nil {
			t.Fatal(err)
		}
		return n[ch]
	}
	proxy.Cut()
	waitUntil(t, "a's subscription gone", func() bool { return numsub() == 0 })
	if err := raw.Del(t.Context(), b.keys("lobby").seq).Err(); err != nil {
		t.Fatal(err)
	}
	proxy.Restore()
	// Let a resubscribe and catch up (finding nothing new) first.
	waitUntil(t, "a subscribed again", func() bool { return numsub() == 1 })
	time.Sleep(100 * time.Millisecond)
	m, err := b.Append(t.Context(), msg("lobby", "after"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Seq != 4 || m.Epoch != epoch {
		t.Errorf("Append after the counter was lost = seq %d, epoch %q; want 4, %q", m.Seq, m.Epoch, epoch)
	}
	c.check(t, "after", span(1, 4))
	if got, want := c.epochs(), repeat(epoch, 4); !slices.Equal(got, want) {
		t.Errorf("epochs delivered = %v, want %v", got, want)
	}
}

// TestRoomFromBeforeEpochs: a room stored by a version without epochs has
// entries but no epoch key. Reads return the empty epoch; its next append
// gives it one and goes on counting; a watcher takes the new epoch up
// without being handed the old messages again; and a message published by
// an old node (no epoch in the payload) is delivered in the room's epoch.
func TestRoomFromBeforeEpochs(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	raw := rawClient(t, srv.URL())
	s := open(t, srv.URL(), testOptions())
	k := s.keys("lobby")
	now := time.Now().UTC().Format(time.RFC3339Nano)
	for seq := 1; seq <= 3; seq++ {
		if err := raw.XAdd(t.Context(), &goredis.XAddArgs{Stream: k.log, ID: fmt.Sprintf("%d-0", seq),
			Values: []any{"author", "old", "text", fmt.Sprint("old ", seq), "time", now, "key", ""}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := raw.Set(t.Context(), k.seq, 3, 0).Err(); err != nil {
		t.Fatal(err)
	}
	since, recent := readEpochs(t, s, "lobby")
	if want := cursors(1, 3, ""); !slices.Equal(since, want) || !slices.Equal(recent, want) {
		t.Errorf("before any new append: Since = %v, Recent = %v; want %v", since, recent, want)
	}

	var c collector
	defer s.Watch("lobby", c.fn)()
	m, err := s.Append(t.Context(), msg("lobby", "new"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Seq != 4 || m.Epoch == "" {
		t.Fatalf("first Append = seq %d, epoch %q; want seq 4 with an epoch", m.Seq, m.Epoch)
	}
	c.check(t, "watcher after the first new append", []int64{4})
	since, recent = readEpochs(t, s, "lobby")
	if want := cursors(1, 4, m.Epoch); !slices.Equal(since, want) || !slices.Equal(recent, want) {
		t.Errorf("after the first new append: Since = %v, Recent = %v; want %v", since, recent, want)
	}

	// An old node appends seq 5: stored and published without an epoch.
	if err := raw.XAdd(t.Context(), &goredis.XAddArgs{Stream: k.log, ID: "5-0",
		Values: []any{"author", "old", "text", "old 5", "time", now, "key", ""}}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := raw.Set(t.Context(), k.seq, 5, 0).Err(); err != nil {
		t.Fatal(err)
	}
	payload := fmt.Sprintf(`{"seq":5,"author":"old","key":"","text":"old 5","time":%q}`, now)
	if err := raw.Publish(t.Context(), k.live, payload).Err(); err != nil {
		t.Fatal(err)
	}
	appendN(t, s, "lobby", 1)
	c.check(t, "watcher after an old node's append", []int64{4, 5, 6})
	if got, want := c.epochs(), repeat(m.Epoch, 3); !slices.Equal(got, want) {
		t.Errorf("epochs delivered = %v, want %v", got, want)
	}
}

// TestAppendReplyChecked: a reply of the append script that is not {seq,
// epoch, activity} is an error, not a message with a zero seq.
func TestAppendReplyChecked(t *testing.T) {
	for _, res := range [][]any{nil, {int64(1)}, {int64(1), "ab"}, {int64(1), "", int64(5)}, {int64(0), "ab", int64(5)}, {"1", "ab", int64(5)}, {int64(1), "ab", "5"}} {
		if seq, epoch, _, ok := appendReply(res); ok {
			t.Errorf("appendReply(%v) = %d, %q, ok; want not ok", res, seq, epoch)
		}
	}
	if seq, epoch, active, ok := appendReply([]any{int64(7), "ab12", int64(99)}); !ok || seq != 7 || epoch != "ab12" || active != 99 {
		t.Errorf("appendReply({7, ab12, 99}) = %d, %q, %d, %v", seq, epoch, active, ok)
	}
}
