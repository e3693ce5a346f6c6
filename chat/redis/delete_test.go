package redis

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/hxchat/hxchat/chat"
	"github.com/hxchat/hxchat/chat/redis/redistest"
)

// del deletes seq of room as its author ("tester" has no key: By "").
func del(t testing.TB, s *Store, room string, seq int64) chat.Message {
	t.Helper()
	rec, err := s.Delete(t.Context(), chat.Deletion{Room: room, Seq: seq, Time: time.Now()})
	if err != nil {
		t.Fatalf("Delete(%d) in %q: %v", seq, room, err)
	}
	return rec
}

// shape describes messages: "5" a message, "5d" a placeholder, "5r2" the
// record deleting 2.
func shape(msgs []chat.Message) string {
	var b []string
	for _, m := range msgs {
		switch {
		case m.Deleted:
			b = append(b, fmt.Sprintf("%dd", m.Seq))
		case m.Deletes != 0:
			b = append(b, fmt.Sprintf("%dr%d", m.Seq, m.Deletes))
		default:
			b = append(b, fmt.Sprint(m.Seq))
		}
	}
	return strings.Join(b, " ")
}

// TestDeletePlaceholders: the holes XDEL leaves read as placeholders when
// the deleted message is the first, the last or in the middle of what a
// read returns, and keep what a placeholder shows, but no text, anywhere.
func TestDeletePlaceholders(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	raw := rawClient(t, srv.URL())
	s := open(t, srv.URL(), testOptions())
	in := msg("lobby", "secret words")
	in.AuthorKey = "0123456789ab"
	for range 10 {
		if _, err := s.Append(t.Context(), in); err != nil {
			t.Fatal(err)
		}
	}
	for _, seq := range []int64{1, 5, 6, 10} { // records 11..14
		rec, err := s.Delete(t.Context(), chat.Deletion{Room: "lobby", Seq: seq, By: in.AuthorKey, Time: in.Time.Add(time.Minute)})
		if err != nil {
			t.Fatalf("Delete(%d): %v", seq, err)
		}
		if rec.Deletes != seq || rec.AuthorKey != in.AuthorKey {
			t.Fatalf("Delete(%d) = %+v", seq, rec)
		}
	}
	for _, tc := range []struct {
		name string
		read func() ([]chat.Message, error)
		want string
	}{
		{"Since(0) first", func() ([]chat.Message, error) { return s.Since(t.Context(), "lobby", 0, 3) }, "1d 2 3"},
		{"Since(0, 1) only", func() ([]chat.Message, error) { return s.Since(t.Context(), "lobby", 0, 1) }, "1d"},
		{"Since(2) last", func() ([]chat.Message, error) { return s.Since(t.Context(), "lobby", 2, 3) }, "3 4 5d"},
		{"Since(3) middle", func() ([]chat.Message, error) { return s.Since(t.Context(), "lobby", 3, 4) }, "4 5d 6d 7"},
		{"Since(4) first two", func() ([]chat.Message, error) { return s.Since(t.Context(), "lobby", 4, 2) }, "5d 6d"},
		{"Since(8) to the end", func() ([]chat.Message, error) { return s.Since(t.Context(), "lobby", 8, 100) }, "9 10d 11r1 12r5 13r6 14r10"},
		{"Recent(5)", func() ([]chat.Message, error) { return s.Recent(t.Context(), "lobby", 5) }, "10d 11r1 12r5 13r6 14r10"},
		{"Recent(100)", func() ([]chat.Message, error) { return s.Recent(t.Context(), "lobby", 100) },
			"1d 2 3 4 5d 6d 7 8 9 10d 11r1 12r5 13r6 14r10"},
		{"Before(11) last", func() ([]chat.Message, error) { return s.Before(t.Context(), "lobby", 11, 3) }, "8 9 10d"},
		{"Before(7) middle", func() ([]chat.Message, error) { return s.Before(t.Context(), "lobby", 8, 4) }, "4 5d 6d 7"},
		{"Before(7) first", func() ([]chat.Message, error) { return s.Before(t.Context(), "lobby", 7, 2) }, "5d 6d"},
		{"Before(4) to the start", func() ([]chat.Message, error) { return s.Before(t.Context(), "lobby", 4, 10) }, "1d 2 3"},
		{"Before(2) the first alone", func() ([]chat.Message, error) { return s.Before(t.Context(), "lobby", 2, 10) }, "1d"},
	} {
		got, err := tc.read()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if shape(got) != tc.want {
			t.Errorf("%s = %s, want %s", tc.name, shape(got), tc.want)
		}
		for _, m := range got {
			if m.Epoch == "" || m.Room != "lobby" {
				t.Errorf("%s: seq %d has epoch %q, room %q", tc.name, m.Seq, m.Epoch, m.Room)
			}
			if m.Deleted && (m.Text != "" || m.AuthorKey != in.AuthorKey || m.Author != in.Author || !m.Time.Equal(in.Time)) {
				t.Errorf("%s: placeholder %+v, want no text and the message's author, key and time", tc.name, m)
			}
		}
	}
	// The text is gone from the stream and was never in the deleted set.
	k := s.keys("lobby")
	xs, err := raw.XRange(t.Context(), k.log, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(xs) != 10 {
		t.Errorf("the stream holds %d entries, want 10 (14 seqs, 4 deleted)", len(xs))
	}
	for _, x := range xs {
		if seq, _ := entrySeq(x.ID); slices.Contains([]int64{1, 5, 6, 10}, seq) {
			t.Errorf("the stream still holds entry %s", x.ID)
		}
	}
	members, err := raw.ZRange(t.Context(), k.deleted, 0, -1).Result()
	if err != nil || len(members) != 4 {
		t.Fatalf("deleted set = %v, %v; want 4 members", members, err)
	}
	for _, m := range members {
		if strings.Contains(m, "secret") {
			t.Errorf("deleted set member %q holds the text", m)
		}
	}
}

// TestReadWithoutHoleReadsOnce: reads of a room without deletions (and of
// a range without holes in a room with some) take one MULTI; one over a
// hole takes a second, with the deleted set.
func TestReadWithoutHoleReadsOnce(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s := open(t, srv.URL(), testOptions())
	appendN(t, s, "lobby", 10)
	del(t, s, "lobby", 3)
	multis := func(read func() ([]chat.Message, error)) int {
		t.Helper()
		_, _, before := slots.counts()
		if _, err := read(); err != nil {
			t.Fatal(err)
		}
		_, _, after := slots.counts()
		return after - before
	}
	for _, tc := range []struct {
		name string
		read func() ([]chat.Message, error)
		want int
	}{
		{"Since(5)", func() ([]chat.Message, error) { return s.Since(t.Context(), "lobby", 5, 100) }, 1},
		{"Since(11)", func() ([]chat.Message, error) { return s.Since(t.Context(), "lobby", 11, 100) }, 1},
		{"Recent(5)", func() ([]chat.Message, error) { return s.Recent(t.Context(), "lobby", 5) }, 1},
		{"Before(3)", func() ([]chat.Message, error) { return s.Before(t.Context(), "lobby", 3, 5) }, 1},
		{"Since(0)", func() ([]chat.Message, error) { return s.Since(t.Context(), "lobby", 0, 100) }, 2},
		{"Before(5)", func() ([]chat.Message, error) { return s.Before(t.Context(), "lobby", 5, 5) }, 2},
	} {
		if got := multis(tc.read); got != tc.want {
			t.Errorf("%s took %d MULTIs, want %d", tc.name, got, tc.want)
		}
	}
}

// TestDeletedSetBounded: deletions among many appends, with the stream
// trimmed to the retention, leave the deleted set and the stream within
// the retention, and reads return exactly the room's window of Retention
// seqs, as the memory store does.
func TestDeletedSetBounded(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	raw := rawClient(t, srv.URL())
	const retention = 10
	opts := testOptions()
	opts.Retention = retention
	s := open(t, srv.URL(), opts)
	mem := chat.NewMemoryStore(retention)
	defer mem.Close()
	k := s.keys("busy")
	var last int64
	for round := range 150 {
		for range round % 4 {
			m := appendN(t, s, "busy", 1)
			if _, err := mem.Append(t.Context(), msg("busy", "x")); err != nil {
				t.Fatal(err)
			}
			last = m[0]
		}
		// Delete the newest message, or one a few back (it may be a
		// record, deleted, or trimmed: the errors must agree too).
		seq := max(last-int64(round%7), 1)
		d := chat.Deletion{Room: "busy", Seq: seq, Time: time.Now()}
		rec, err := s.Delete(t.Context(), d)
		mrec, merr := mem.Delete(t.Context(), d)
		if (err == nil) != (merr == nil) || err != nil && !sameKind(err, merr) {
			t.Fatalf("round %d: Delete(%d) = %v, memory store says %v", round, seq, err, merr)
		}
		if err == nil {
			if rec.Seq != mrec.Seq {
				t.Fatalf("round %d: record seq %d, memory store's %d", round, rec.Seq, mrec.Seq)
			}
			last = rec.Seq
		}
		for _, read := range []struct {
			name string
			r    func(chat.Store) ([]chat.Message, error)
		}{
			{"Since(0)", func(st chat.Store) ([]chat.Message, error) { return st.Since(t.Context(), "busy", 0, 100) }},
			{"Since(0, 1)", func(st chat.Store) ([]chat.Message, error) { return st.Since(t.Context(), "busy", 0, 1) }},
			{"Since(last-5, 2)", func(st chat.Store) ([]chat.Message, error) { return st.Since(t.Context(), "busy", last-5, 2) }},
			{"Recent(4)", func(st chat.Store) ([]chat.Message, error) { return st.Recent(t.Context(), "busy", 4) }},
			{"Before(last-3, 3)", func(st chat.Store) ([]chat.Message, error) { return st.Before(t.Context(), "busy", last-3, 3) }},
		} {
			got, err := read.r(s)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := read.r(mem)
			if shape(got) != shape(want) {
				t.Fatalf("round %d: %s = %s, memory store's %s", round, read.name, shape(got), shape(want))
			}
		}
		n, zerr := raw.ZCard(t.Context(), k.deleted).Result()
		xlen, xerr := raw.XLen(t.Context(), k.log).Result()
		if zerr != nil || xerr != nil {
			t.Fatal(zerr, xerr)
		}
		if n >= retention || xlen > retention {
			t.Fatalf("round %d: the deleted set holds %d, the stream %d; want fewer than %d, at most %d", round, n, xlen, retention, retention)
		}
		if err == nil && n+xlen != retention && last >= retention {
			t.Fatalf("round %d: after a deletion the deleted set holds %d and the stream %d, want %d together", round, n, xlen, retention)
		}
	}
	if low, err := raw.ZRangeWithScores(t.Context(), k.deleted, 0, 0).Result(); err != nil || len(low) == 1 && int64(low[0].Score) <= last-retention {
		t.Errorf("the deleted set's lowest = %v, %v; want above %d", low, err, last-retention)
	}
}

// sameKind reports whether two errors of Delete are the same chat error.
func sameKind(a, b error) bool {
	for _, e := range []error{chat.ErrNotFound, chat.ErrNotAuthor, chat.ErrAlreadyDeleted} {
		if errors.Is(a, e) && errors.Is(b, e) {
			return true
		}
	}
	return false
}

// TestJanitorRemovesDeletedSet: a room the janitor removes (MaxRooms), or
// whose stream it drops or trims (MaxAge), loses its deleted set, or the
// members it trimmed.
func TestJanitorRemovesDeletedSet(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	raw := rawClient(t, srv.URL())
	opts := testOptions()
	opts.MaxRooms = 2
	opts.MaxAge = time.Hour
	opts.SweepInterval = time.Hour // the sweeps below
	s := open(t, srv.URL(), opts)
	now := time.Now()
	old := now.Add(-3 * time.Hour)
	delAt := func(room string, seq int64, at time.Time) {
		t.Helper()
		if _, err := s.Delete(t.Context(), chat.Deletion{Room: room, Seq: seq, Time: at}); err != nil {
			t.Fatalf("Delete(%d) in %q: %v", seq, room, err)
		}
	}
	appendAt(t, s, "evicted", old.Add(-time.Hour), 3)
	delAt("evicted", 2, old.Add(-time.Hour))
	appendAt(t, s, "dropped", old, 3)
	delAt("dropped", 1, old)
	appendAt(t, s, "trimmed", old, 4) // 1..4
	delAt("trimmed", 2, old)          // record 5
	delAt("trimmed", 3, old)          // record 6
	appendAt(t, s, "trimmed", now, 1) // 7
	delAt("trimmed", 7, now)          // record 8

	for more := true; more; {
		var err error
		if more, err = s.evictExcess(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	exists := func(room string) int64 {
		n, err := raw.Exists(t.Context(), s.keys(room).deleted).Result()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if roomKeysLeft(t, raw, s, "evicted") != 0 || exists("evicted") != 0 {
		t.Errorf("the evicted room keeps keys: %d, deleted set %d", roomKeysLeft(t, raw, s, "evicted"), exists("evicted"))
	}
	if _, err := s.expireOld(t.Context(), &ageWalk{}); err != nil {
		t.Fatal(err)
	}
	if exists("dropped") != 0 {
		t.Errorf("the room whose stream expired keeps its deleted set")
	}
	// "trimmed": 1 and 4, the old records 5 and 6 and the deleted 2 and 3
	// among them went; 7, deleted by the young record 8, stays.
	members, err := raw.ZRange(t.Context(), s.keys("trimmed").deleted, 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(members) != 1 || !strings.Contains(members[0], `"seq":"7"`) {
		t.Errorf("trimmed room's deleted set = %v, want only seq 7", members)
	}
	got, err := s.Since(t.Context(), "trimmed", 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if shape(got) != "7d 8r7" {
		t.Errorf("trimmed room reads %s, want 7d 8r7", shape(got))
	}
}

// TestWatchDeleteAcrossCut: deletions made while a node's fan-out
// connection is cut reach its watchers once it is back, each seq once, in
// order, as placeholders and records, and the XDEL holes are not taken for
// lost writes: the epoch stays.
func TestWatchDeleteAcrossCut(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	proxy := redistest.NewProxy(t, srv.Addr)
	opts := testOptions()
	a := open(t, proxy.URL(), opts) // the watching node, behind the proxy
	b := open(t, srv.URL(), opts)   // the posting node
	var c collector
	defer a.Watch("lobby", c.fn)()
	appendN(t, b, "lobby", 3)
	c.check(t, "before the cut", span(1, 3)) // subscribed: the text is delivered
	del(t, b, "lobby", 2)                    // 4
	c.check(t, "deleted before the cut", span(1, 4))

	proxy.Cut()
	appendN(t, b, "lobby", 2) // 5, 6
	del(t, b, "lobby", 5)     // 7
	del(t, b, "lobby", 3)     // 8
	appendN(t, b, "lobby", 1) // 9
	del(t, b, "lobby", 6)     // 10: the newest read after the cut is a record
	proxy.Restore()
	c.check(t, "after the cut", span(1, 10))
	appendN(t, b, "lobby", 1) // 11
	c.check(t, "live after the cut", span(1, 11))
	del(t, b, "lobby", 11) // 12
	c.check(t, "deleted live after the cut", span(1, 12))

	c.mu.Lock()
	got := shape(c.msgs)
	c.mu.Unlock()
	// 3 was delivered before its deletion; 5 and 6, stored and deleted
	// while cut off, are caught up as placeholders.
	if want := "1 2 3 4r2 5d 6d 7r5 8r3 9 10r6 11 12r11"; got != want {
		t.Errorf("delivered %s, want %s", got, want)
	}
	if epochs := c.epochs(); slices.Compact(slices.Clone(epochs))[0] == "" || len(slices.Compact(slices.Clone(epochs))) != 1 {
		t.Errorf("delivered epochs %v, want one epoch throughout", epochs)
	}
	// A watcher that starts afresh reads the same from the store.
	msgs, err := a.Since(t.Context(), "lobby", 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if want := "1 2d 3d 4r2 5d 6d 7r5 8r3 9 10r6 11d 12r11"; shape(msgs) != want {
		t.Errorf("Since(0) = %s, want %s", shape(msgs), want)
	}
	if msgs[0].Epoch != c.epochs()[0] {
		t.Errorf("Since's epoch %q, the watcher's %q: the epoch changed", msgs[0].Epoch, c.epochs()[0])
	}
}

// TestLiveDeletesField: the record's published payload carries deletes,
// an append's none; an entry from before deletions reads with Deletes 0.
func TestLiveDeletesField(t *testing.T) {
	lm, err := decodeLive("r", `{"seq":3,"epoch":"e","author":"","key":"k","text":"","time":"2025-03-14T15:09:26Z","deletes":2}`)
	if err != nil || lm.Deletes != 2 {
		t.Errorf("decodeLive of a record = %+v, %v; want Deletes 2", lm, err)
	}
	lm, err = decodeLive("r", `{"seq":3,"epoch":"e","author":"a","key":"k","text":"hi","time":"2025-03-14T15:09:26Z"}`)
	if err != nil || lm.Deletes != 0 {
		t.Errorf("decodeLive of a message = %+v, %v; want Deletes 0", lm, err)
	}
	m, err := decodeEntry("r", goredis.XMessage{ID: "4-0", Values: map[string]any{"author": "a", "text": "hi", "time": "2025-03-14T15:09:26Z"}})
	if err != nil || m.Deletes != 0 || m.Text != "hi" {
		t.Errorf("decodeEntry of an old entry = %+v, %v", m, err)
	}
	if _, err := decodeEntry("r", goredis.XMessage{ID: "4-0", Values: map[string]any{"time": "2025-03-14T15:09:26Z", "deletes": "x"}}); err == nil {
		t.Errorf("decodeEntry of a bad deletes field: no error")
	}
}
