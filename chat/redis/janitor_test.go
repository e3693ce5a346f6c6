package redis

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/hxchat/hxchat/chat"
	"github.com/hxchat/hxchat/chat/redis/redistest"
)

// appendAt appends n messages to room, all with the time at, and returns
// them as stored.
func appendAt(t testing.TB, s *Store, room string, at time.Time, n int) []chat.Message {
	t.Helper()
	var out []chat.Message
	for i := range n {
		m := msg(room, fmt.Sprintf("%s %d", room, i))
		m.Time = at
		got, err := s.Append(context.Background(), m)
		if err != nil {
			t.Fatalf("Append(%q) #%d: %v", room, i, err)
		}
		out = append(out, got)
	}
	return out
}

// roomKeysLeft counts which of room's counter, epoch, stream and activity
// keys exist.
func roomKeysLeft(t testing.TB, raw *goredis.Client, s *Store, room string) int64 {
	t.Helper()
	k := s.keys(room)
	n, err := raw.Exists(context.Background(), k.seq, k.epoch, k.log, k.active).Result()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// indexed returns the rooms in the index (all its buckets), oldest first.
func indexed(t testing.TB, raw *goredis.Client, s *Store) []string {
	t.Helper()
	var zs []goredis.Z
	for b := range indexBuckets {
		got, err := raw.ZRangeWithScores(context.Background(), s.roomsKey(b), 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, z := range got {
			if bucketOf(z.Member.(string)) != b {
				t.Errorf("room %s is in bucket %d, want %d", z.Member, b, bucketOf(z.Member.(string)))
			}
		}
		zs = append(zs, got...)
	}
	var names []string
	for _, z := range oldest(zs, len(zs)) {
		names = append(names, z.Member.(string))
	}
	return names
}

func roomName(i int) string { return fmt.Sprintf("r%02d", i) }

func roomNames(from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, roomName(i))
	}
	return out
}

// checkKept fails the test unless room holds its messages 1..n, readable,
// with all its keys.
func checkKept(t testing.TB, raw *goredis.Client, s *Store, room string, n int64) {
	t.Helper()
	if got := roomKeysLeft(t, raw, s, room); got != 4 {
		t.Errorf("room %s kept %d of its 4 keys", room, got)
	}
	got, err := s.Since(context.Background(), room, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []int64
	for _, m := range got {
		seqs = append(seqs, m.Seq)
	}
	if want := span(1, n); !slices.Equal(seqs, want) {
		t.Errorf("room %s holds %v, want %v", room, seqs, want)
	}
}

// TestMaxRoomsRemovesLeastRecentRooms: beyond MaxRooms, the janitor's
// sweep removes every key of the least recently active rooms (by their
// last post, not their first: r00 is posted to again late), keeps the
// others whole, and a removed room posted to again starts over at seq 1 in
// a new epoch.
func TestMaxRoomsRemovesLeastRecentRooms(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	raw := rawClient(t, srv.URL())
	opts := testOptions()
	poster := open(t, srv.URL(), opts) // the default MaxRooms: removes nothing
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	epochs := make(map[string]string)
	for i := range 30 {
		room := roomName(i)
		epochs[room] = appendAt(t, poster, room, base.Add(time.Duration(i)*time.Second), 3)[0].Epoch
		if i == 25 {
			appendAt(t, poster, roomName(0), base.Add(25500*time.Millisecond), 1)
		}
	}
	opts.MaxRooms = 10
	opts.SweepInterval = 20 * time.Millisecond
	s := open(t, srv.URL(), opts)
	// The newest 10: r21-r29 and r00.
	removed := roomNames(1, 20)
	waitUntil(t, "the 20 least recently active rooms removed", func() bool {
		for _, room := range removed {
			if roomKeysLeft(t, raw, s, room) > 0 {
				return false
			}
		}
		return len(indexed(t, raw, s)) == 10
	})
	if got, want := indexed(t, raw, s), []string{"r21", "r22", "r23", "r24", "r25", "r00", "r26", "r27", "r28", "r29"}; !slices.Equal(got, want) {
		t.Errorf("rooms index = %v, want %v", got, want)
	}
	for _, room := range roomNames(21, 29) {
		checkKept(t, raw, s, room, 3)
	}
	checkKept(t, raw, s, roomName(0), 4)
	if got := s.Stats().RoomsEvicted; got != 20 {
		t.Errorf("Stats().RoomsEvicted = %d, want 20", got)
	}

	// A removed room posted to again: seq 1 in a new epoch, and now the
	// newest room, so the janitor removes the next least recently active.
	m := appendAt(t, s, roomName(1), time.Now(), 1)[0]
	if m.Seq != 1 || m.Epoch == epochs[roomName(1)] || m.Epoch == "" {
		t.Errorf("Append to a removed room = seq %d, epoch %q; want seq 1 in a new epoch (not %q)", m.Seq, m.Epoch, epochs[roomName(1)])
	}
	waitUntil(t, "the next least recently active room (r21) removed", func() bool {
		return roomKeysLeft(t, raw, s, roomName(21)) == 0 && len(indexed(t, raw, s)) == 10
	})
	checkKept(t, raw, s, roomName(1), 1)
	checkKept(t, raw, s, roomName(0), 4)
}

// TestNewRoomTriggersSweep: an append that creates a room makes the janitor
// check MaxRooms soon, not at its next interval.
func TestNewRoomTriggersSweep(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	raw := rawClient(t, srv.URL())
	opts := testOptions()
	opts.MaxRooms = 2
	opts.SweepInterval = time.Hour
	s := open(t, srv.URL(), opts)
	base := time.Now().Add(-time.Hour)
	for i := range 3 {
		appendAt(t, s, roomName(i), base.Add(time.Duration(i)*time.Second), 2)
	}
	waitUntil(t, "the least recently active room removed", func() bool {
		return roomKeysLeft(t, raw, s, roomName(0)) == 0
	})
	if got, want := indexed(t, raw, s), roomNames(1, 2); !slices.Equal(got, want) {
		t.Errorf("rooms index = %v, want %v", got, want)
	}
	appendAt(t, s, roomName(1), time.Now(), 1) // no new room: nothing to do
	time.Sleep(3 * sweepSoon)
	checkKept(t, raw, s, roomName(1), 3)
	checkKept(t, raw, s, roomName(2), 2)
}

// TestEvictKeepsRoomPostedMeanwhile: a room the janitor picked as one of
// the oldest, and then posted to before its removal, is kept whole and
// stays in the index; also when the post carries the same millisecond as
// the room's last one (the index's score would not have moved by itself).
func TestEvictKeepsRoomPostedMeanwhile(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	raw := rawClient(t, srv.URL())
	s := open(t, srv.URL(), testOptions()) // the default MaxRooms: its janitor has nothing to do
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	for i := range 5 {
		appendAt(t, s, roomName(i), base.Add(time.Duration(i)*time.Second), 1)
	}
	zs, more, err := s.excess(t.Context(), 2)
	if err != nil {
		t.Fatal(err)
	}
	var picked []string
	for _, z := range zs {
		picked = append(picked, z.Member.(string))
	}
	if want := roomNames(0, 2); !slices.Equal(picked, want) || more {
		t.Fatalf("excess(2) = %v, more %v; want %v, no more", picked, more, want)
	}
	appendAt(t, s, roomName(0), base, 1) // the same ms as r00's first message
	if removed, _, err := s.evictRooms(t.Context(), zs, nil); err != nil || removed != 2 {
		t.Fatalf("evictRooms = %d, %v; want 2 removed (r00 kept)", removed, err)
	}
	checkKept(t, raw, s, roomName(0), 2)
	for _, room := range roomNames(1, 2) {
		if n := roomKeysLeft(t, raw, s, room); n != 0 {
			t.Errorf("room %s kept %d keys, want none", room, n)
		}
	}
	// r00's post moved its score by a millisecond: still the oldest, but
	// not the score the janitor read.
	if got, want := indexed(t, raw, s), []string{"r00", "r03", "r04"}; !slices.Equal(got, want) {
		t.Errorf("rooms index = %v, want %v", got, want)
	}
	if got, err := raw.ZScore(t.Context(), s.roomsKeyOf("r00"), "r00").Result(); err != nil || int64(got) != base.UnixMilli()+1 {
		t.Errorf("r00's score = %v, %v; want %d, 1 ms past its first post", got, err, base.UnixMilli()+1)
	}
	if got := s.Stats().RoomsEvicted; got != 2 {
		t.Errorf("Stats().RoomsEvicted = %d, want 2", got)
	}
}

// TestMaxRoomsNodesSweepTogether: several nodes removing rooms at the same
// time remove exactly the excess between them, each room once.
func TestMaxRoomsNodesSweepTogether(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	raw := rawClient(t, srv.URL())
	opts := testOptions()
	poster := open(t, srv.URL(), opts)
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	for i := range 30 {
		appendAt(t, poster, roomName(i), base.Add(time.Duration(i)*time.Second), 2)
	}
	opts.MaxRooms = 10
	opts.SweepInterval = time.Hour // the sweeps below are the only ones
	nodes := []*Store{open(t, srv.URL(), opts), open(t, srv.URL(), opts)}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Go(func() {
			<-start
			for {
				more, err := nodes[i%2].evictExcess(t.Context())
				if err != nil {
					t.Errorf("node %d: evictExcess: %v", i%2, err)
					return
				}
				if !more {
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()
	if got, want := indexed(t, raw, poster), roomNames(20, 29); !slices.Equal(got, want) {
		t.Errorf("rooms index = %v, want %v", got, want)
	}
	for _, room := range roomNames(0, 19) {
		if n := roomKeysLeft(t, raw, poster, room); n != 0 {
			t.Errorf("room %s kept %d keys, want none", room, n)
		}
	}
	for _, room := range roomNames(20, 29) {
		checkKept(t, raw, poster, room, 2)
	}
	a, b := nodes[0].Stats().RoomsEvicted, nodes[1].Stats().RoomsEvicted
	if a+b != 20 {
		t.Errorf("RoomsEvicted = %d + %d, want 20 in all (each room counted once)", a, b)
	}
}

// TestEvictedRoomNewEpochForWatchers: watchers of a room that is removed and
// posted to again get the new history's seq 1, 2 in its new epoch: live, by
// a catch-up that found the room gone before the new post, and by one
// that finds the new history. None of them takes the removal for a lost
// write (which would replace the new epoch).
func TestEvictedRoomNewEpochForWatchers(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	raw := rawClient(t, srv.URL())
	p1, p2 := redistest.NewProxy(t, srv.Addr), redistest.NewProxy(t, srv.Addr)
	opts := testOptions()
	opts.MaxRooms = 2
	opts.SweepInterval = 20 * time.Millisecond
	b := open(t, srv.URL(), opts)                              // posts, watches live
	a1, a2 := open(t, p1.URL(), opts), open(t, p2.URL(), opts) // watch, cut off for a while
	var live, gone, renewed collector
	defer b.Watch("old", live.fn)()
	defer a1.Watch("old", gone.fn)()
	defer a2.Watch("old", renewed.fn)()
	base := time.Now().Add(-time.Hour)
	appendAt(t, b, "old", base, 3)
	for _, c := range []*collector{&live, &gone, &renewed} {
		c.check(t, "before the removal", span(1, 3))
	}
	old := live.epochs()[0]

	numsub := func() int64 {
		ch := b.keys("old").live
		n, err := raw.PubSubNumSub(t.Context(), ch).Result()
		if err != nil {
			t.Fatal(err)
		}
		return n[ch]
	}
	p1.Cut()
	p2.Cut()
	waitUntil(t, "a1's and a2's subscriptions gone", func() bool { return numsub() == 1 })
	appendAt(t, b, "n1", base.Add(time.Minute), 1)
	appendAt(t, b, "n2", base.Add(2*time.Minute), 1)
	waitUntil(t, "room old removed", func() bool { return roomKeysLeft(t, raw, b, "old") == 0 })

	p1.Restore() // a1 catches up and finds the room gone
	waitUntil(t, "a1 subscribed again", func() bool { return numsub() == 2 })
	time.Sleep(100 * time.Millisecond)
	first := appendAt(t, b, "old", time.Now(), 2)[0]
	if first.Seq != 1 || first.Epoch == old || first.Epoch == "" {
		t.Fatalf("Append to the removed room = seq %d, epoch %q; want seq 1 in a new epoch (not %q)", first.Seq, first.Epoch, old)
	}
	p2.Restore() // a2 catches up and finds the new history
	want := []string{old, old, old, first.Epoch, first.Epoch}
	for name, c := range map[string]*collector{"live": &live, "caught up before": &gone, "caught up after": &renewed} {
		c.check(t, "watcher "+name, []int64{1, 2, 3, 1, 2})
		if got := c.epochs(); !slices.Equal(got, want) {
			t.Errorf("watcher %s: epochs delivered = %v, want %v", name, got, want)
		}
	}
	if got, err := raw.Get(t.Context(), b.keys("old").epoch).Result(); err != nil || got != first.Epoch {
		t.Errorf("epoch key = %q, %v; want %q, the new history's (not replaced)", got, err, first.Epoch)
	}
	appendAt(t, b, "old", time.Now(), 1)
	renewed.check(t, "watcher caught up after, live again", []int64{1, 2, 3, 1, 2, 3})
}

// TestBumpEpochSkipsRemovedRoom: a feed that finds a seq gone back while a
// janitor removes the room does not give the removed room an epoch key
// (which nothing would remove).
func TestBumpEpochSkipsRemovedRoom(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	raw := rawClient(t, srv.URL())
	s := open(t, srv.URL(), testOptions())
	k := s.keys("gone")
	got, err := bumpEpochScript.Run(t.Context(), raw, []string{k.epoch, k.seq, k.log}, "aaaaaaaa", "bbbbbbbb").Text()
	if err != nil || got != "" {
		t.Errorf("bump of a room without keys = %q, %v; want \"\"", got, err)
	}
	if n := roomKeysLeft(t, raw, s, "gone"); n != 0 {
		t.Errorf("bump of a room without keys left %d keys", n)
	}
	// A room with a counter but no epoch key (lost on its own) gets one.
	if err := raw.Set(t.Context(), k.seq, 3, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := bumpEpochScript.Run(t.Context(), raw, []string{k.epoch, k.seq, k.log}, "aaaaaaaa", "bbbbbbbb").Text(); err != nil || got != "bbbbbbbb" {
		t.Errorf("bump of a room without an epoch key = %q, %v; want the new epoch", got, err)
	}
}

// TestMaxAgeRemovesOldMessages: the janitor removes the messages older than
// MaxAge and keeps the younger ones: at the front of a room (read in
// several chunks), and all of a room whose newest message is old, whose
// counter and epoch stay so that its seqs go on.
func TestMaxAgeRemovesOldMessages(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	raw := rawClient(t, srv.URL())
	opts := testOptions()
	poster := open(t, srv.URL(), opts) // keeps everything
	now := time.Now()
	const oldOnes = 2*ageChunk + 200
	for i := range oldOnes {
		appendAt(t, poster, "mixed", now.Add(-3*time.Hour+time.Duration(i)*time.Millisecond), 1)
	}
	appendAt(t, poster, "mixed", now, 3)
	stale := appendAt(t, poster, "stale", now.Add(-2*time.Hour), 4)
	appendAt(t, poster, "fresh", now, 2)
	if got := poster.Stats().Expired; got != 0 {
		t.Fatalf("a store without MaxAge expired %d messages", got)
	}

	opts.MaxAge = time.Hour
	opts.SweepInterval = 20 * time.Millisecond
	s := open(t, srv.URL(), opts)
	seqs := func(room string) []int64 {
		got, err := s.Since(t.Context(), room, 0, 2*oldOnes)
		if err != nil {
			t.Fatal(err)
		}
		var out []int64
		for _, m := range got {
			out = append(out, m.Seq)
		}
		return out
	}
	waitUntil(t, "old messages removed", func() bool {
		return len(seqs("mixed")) == 3 && len(seqs("stale")) == 0
	})
	if got, want := seqs("mixed"), span(oldOnes+1, oldOnes+3); !slices.Equal(got, want) {
		t.Errorf("mixed holds %v, want %v", got, want)
	}
	if got := seqs("fresh"); !slices.Equal(got, span(1, 2)) {
		t.Errorf("fresh holds %v, want [1 2]", got)
	}
	if n, err := raw.Exists(t.Context(), s.keys("stale").log).Result(); err != nil || n != 0 {
		t.Errorf("stale's stream exists: %d, %v; want it deleted", n, err)
	}
	if got := s.Stats().Expired; got != oldOnes+4 {
		t.Errorf("Stats().Expired = %d, want %d", got, oldOnes+4)
	}
	m := appendAt(t, s, "stale", now, 1)[0]
	if m.Seq != 5 || m.Epoch != stale[0].Epoch {
		t.Errorf("Append to a room whose messages all expired = seq %d, epoch %q; want seq 5, epoch %q", m.Seq, m.Epoch, stale[0].Epoch)
	}
}

// TestMaxAgeKeepsCounterOfLegacyRoom: a room whose counter was lost (the
// stream's top stands for it) keeps counting after all of its stream
// expired.
func TestMaxAgeKeepsCounterOfLegacyRoom(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	raw := rawClient(t, srv.URL())
	opts := testOptions()
	poster := open(t, srv.URL(), opts)
	old := appendAt(t, poster, "lobby", time.Now().Add(-2*time.Hour), 3)
	if err := raw.Del(t.Context(), poster.keys("lobby").seq).Err(); err != nil {
		t.Fatal(err)
	}
	opts.MaxAge = time.Hour
	opts.SweepInterval = time.Hour
	s := open(t, srv.URL(), opts)
	if more, err := s.expireOld(t.Context(), &ageWalk{}); err != nil || more {
		t.Fatalf("expireOld = more %v, %v; want done", more, err)
	}
	if got := s.Stats().Expired; got != 3 {
		t.Errorf("Stats().Expired = %d, want 3", got)
	}
	m := appendAt(t, s, "lobby", time.Now(), 1)[0]
	if m.Seq != 4 || m.Epoch != old[0].Epoch {
		t.Errorf("Append after expiry = seq %d, epoch %q; want seq 4, epoch %q", m.Seq, m.Epoch, old[0].Epoch)
	}
}

// TestMaxAgeSweepBounded: one sweep reads about sweepEntries entries at
// most; the next ones go on where it stopped, until the room holds only
// its young messages.
func TestMaxAgeSweepBounded(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	raw := rawClient(t, srv.URL())
	opts := testOptions()
	opts.MaxAge = time.Hour
	opts.SweepInterval = time.Hour // the sweeps below are the only ones
	opts.Retention = 2 * sweepEntries
	s := open(t, srv.URL(), opts)
	const oldOnes = sweepEntries + sweepEntries/2
	k := s.keys("big")
	oldTime := time.Now().Add(-2 * time.Hour).Format(time.RFC3339Nano)
	if _, err := raw.Pipelined(t.Context(), func(p goredis.Pipeliner) error {
		for seq := 1; seq <= oldOnes; seq++ {
			p.XAdd(t.Context(), &goredis.XAddArgs{Stream: k.log, ID: entryID(int64(seq)), Values: []any{"author", "a", "text", "t", "time", oldTime, "key", ""}})
		}
		p.Set(t.Context(), k.seq, oldOnes, 0)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	appendAt(t, s, "big", time.Now(), 2)
	var w ageWalk
	more, err := s.expireOld(t.Context(), &w)
	if err != nil {
		t.Fatal(err)
	}
	first := s.Stats().Expired
	if !more || first < sweepEntries-ageChunk || first > sweepEntries+ageChunk {
		t.Errorf("first sweep: more %v, expired %d; want more, about %d expired", more, first, sweepEntries)
	}
	for i := 0; more; i++ {
		if i == 5 {
			t.Fatal("expiry walk does not end")
		}
		if more, err = s.expireOld(t.Context(), &w); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.Stats().Expired; got != oldOnes {
		t.Errorf("Stats().Expired = %d, want %d", got, oldOnes)
	}
	if n, err := raw.XLen(t.Context(), k.log).Result(); err != nil || n != 2 {
		t.Errorf("XLEN = %d, %v; want the 2 young ones", n, err)
	}
}

func TestSweepIntervalDefault(t *testing.T) {
	for _, tc := range []struct {
		maxAge, interval, want time.Duration
	}{
		{0, 0, DefaultSweepInterval},
		{time.Hour, 0, time.Minute},
		{5 * time.Minute, 0, 30 * time.Second},
		{5 * time.Second, 0, time.Second},
		{time.Hour, 7 * time.Second, 7 * time.Second},
	} {
		o := Options{MaxAge: tc.maxAge, SweepInterval: tc.interval}
		o.setDefaults()
		if o.SweepInterval != tc.want || o.MaxRooms != DefaultMaxRooms {
			t.Errorf("MaxAge %v, SweepInterval %v: defaults to %v, MaxRooms %d; want %v, %d", tc.maxAge, tc.interval, o.SweepInterval, o.MaxRooms, tc.want, DefaultMaxRooms)
		}
	}
}

// formatScore must write what Redis reads back exactly.
func TestFormatScore(t *testing.T) {
	for _, ms := range []int64{0, 1741964966535, -62135596800000} {
		if got, want := formatScore(float64(ms)), strconv.FormatInt(ms, 10); got != want {
			t.Errorf("formatScore(%d) = %q, want %q", ms, got, want)
		}
	}
}

// TestExpireGuards: the expiry leaves a room alone when what it read is no
// longer so: a room posted to since the index was read keeps its stream
// (its old messages go with the next walk), and a trim read in one epoch
// does not trim another epoch's stream.
func TestExpireGuards(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	raw := rawClient(t, srv.URL())
	opts := testOptions()
	opts.MaxAge = time.Hour
	opts.SweepInterval = time.Hour // the sweeps below are the only ones
	s := open(t, srv.URL(), opts)
	old := appendAt(t, s, "lobby", time.Now().Add(-2*time.Hour), 3)
	xlen := func() int64 {
		n, err := raw.XLen(t.Context(), s.keys("lobby").log).Result()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}

	cutoff := time.Now().Add(-time.Hour)
	zs, _, err := s.scanIndex(t.Context(), bucketOf("lobby"), 0)
	if err != nil {
		t.Fatal(err)
	}
	appendAt(t, s, "lobby", time.Now(), 1) // after the index was read
	if _, _, err := s.expireRooms(t.Context(), zs, cutoff, sweepEntries); err != nil {
		t.Fatal(err)
	}
	if n := xlen(); n != 4 {
		t.Errorf("a room posted to after the index was read: %d entries left, want all 4", n)
	}

	if _, _, err := s.trimOld(t.Context(), "lobby", "00000000", cutoff, sweepEntries); err != nil {
		t.Fatal(err)
	}
	if n := xlen(); n != 4 {
		t.Errorf("a trim of another epoch: %d entries left, want all 4", n)
	}
	if got := s.Stats().Expired; got != 0 {
		t.Errorf("Stats().Expired = %d, want 0", got)
	}

	if _, err := s.expireOld(t.Context(), &ageWalk{}); err != nil {
		t.Fatal(err)
	}
	if n, got := xlen(), s.Stats().Expired; n != 1 || got != 3 {
		t.Errorf("after a walk: %d entries left, %d expired; want 1 left, 3 expired", n, got)
	}
	if m := appendAt(t, s, "lobby", time.Now(), 1)[0]; m.Seq != 5 || m.Epoch != old[0].Epoch {
		t.Errorf("Append after expiry = seq %d, epoch %q; want 5, %q", m.Seq, m.Epoch, old[0].Epoch)
	}
}
