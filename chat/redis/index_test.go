package redis

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/hxchat/hxchat/chat/redis/redistest"
)

// postKey marks the context of one Append, so keyRecorder can tell whose
// commands it sees.
type postKey struct{}

// keyRecorder is a goredis.Hook that records the keys of the commands
// (script KEYS included) run with a postKey in their context.
type keyRecorder struct {
	mu   sync.Mutex
	keys map[string]map[string]bool // post → keys
}

func (r *keyRecorder) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (r *keyRecorder) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		r.record(ctx, []goredis.Cmder{cmd})
		return next(ctx, cmd)
	}
}

func (r *keyRecorder) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		r.record(ctx, cmds)
		return next(ctx, cmds)
	}
}

func (r *keyRecorder) record(ctx context.Context, cmds []goredis.Cmder) {
	post, ok := ctx.Value(postKey{}).(string)
	if !ok {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.keys[post] == nil {
		r.keys[post] = make(map[string]bool)
	}
	for _, cmd := range cmds {
		for _, k := range cmdKeys(cmd) {
			r.keys[post][k] = true
		}
	}
}

// TestIndexSpread: the rooms index is spread over its buckets, each with a
// hash tag of a slot of its own, each room in the bucket of its name; and
// no key is written by every post (of posts to different rooms).
func TestIndexSpread(t *testing.T) {
	seen := make(map[int]int)
	for b := range indexBuckets {
		seen[hashSlot("x:rooms:"+bucketTag(b))]++
	}
	if len(seen) != indexBuckets {
		t.Errorf("the %d bucket tags hash to %d slots, want one each", indexBuckets, len(seen))
	}

	srv := redistest.Start(t, redistest.Options{})
	raw := rawClient(t, srv.URL())
	s := open(t, srv.URL(), testOptions())
	rec := &keyRecorder{keys: make(map[string]map[string]bool)}
	s.client.AddHook(rec)
	const rooms = 64
	for i := range rooms {
		room := fmt.Sprintf("room-%d", i)
		ctx := context.WithValue(t.Context(), postKey{}, room)
		if _, err := s.Append(ctx, msg(room, "hi")); err != nil {
			t.Fatal(err)
		}
	}
	used := 0
	for b := range indexBuckets {
		n, err := raw.ZCard(t.Context(), s.roomsKey(b)).Result()
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			used++
		}
	}
	if used < indexBuckets/2 {
		t.Errorf("%d rooms went to %d of the %d buckets, want them spread", rooms, used, indexBuckets)
	}
	if got := indexed(t, raw, s); len(got) != rooms {
		t.Errorf("the index holds %d rooms, want %d", len(got), rooms)
	}
	hits := make(map[string]int)
	for _, keys := range rec.keys {
		for k := range keys {
			hits[k]++
		}
	}
	if len(rec.keys) != rooms {
		t.Fatalf("recorded the keys of %d posts, want %d", len(rec.keys), rooms)
	}
	for k, n := range hits {
		if n == rooms {
			t.Errorf("key %s is touched by every post", k)
		}
		if n > rooms/4 && !strings.Contains(k, ":rooms:") {
			t.Errorf("key %s is touched by %d posts to different rooms", k, n)
		}
	}
}

// TestRoomsAcrossBuckets: Rooms merges the buckets: the newest rooms of all
// of them, since a time, in order.
func TestRoomsAcrossBuckets(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s := open(t, srv.URL(), testOptions())
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	for i := range 40 {
		appendAt(t, s, roomName(i), base.Add(time.Duration(i)*time.Second), 1)
	}
	names := func(since time.Time, limit int) []string {
		t.Helper()
		got, err := s.Rooms(t.Context(), since, limit)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range got {
			out = append(out, r.Name)
		}
		return out
	}
	want := roomNames(33, 39)
	slices.Reverse(want)
	if got := names(time.Time{}, 7); !slices.Equal(got, want) {
		t.Errorf("Rooms(7) = %v, want %v", got, want)
	}
	want = roomNames(36, 39)
	slices.Reverse(want)
	if got := names(base.Add(36*time.Second), 100); !slices.Equal(got, want) {
		t.Errorf("Rooms(since r36) = %v, want %v", got, want)
	}
}

// TestMigrateOldIndex: the members of an index from before the buckets
// move into their buckets, each keeping the later of its two scores where
// its bucket has it already, and the old index is gone.
func TestMigrateOldIndex(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	raw := rawClient(t, srv.URL())
	opts := testOptions()
	old := opts.KeyPrefix + "rooms"
	var zs []goredis.Z
	for i := range 1200 { // more than one chunk
		zs = append(zs, goredis.Z{Score: float64(1000 + i), Member: fmt.Sprintf("old-%04d", i)})
	}
	if err := raw.ZAdd(t.Context(), old, zs...).Err(); err != nil {
		t.Fatal(err)
	}
	opts.SweepInterval = time.Hour // the janitor migrates when it starts
	s := open(t, srv.URL(), opts)
	waitUntil(t, "the janitor's migration at start", func() bool {
		n, err := raw.Exists(t.Context(), old).Result()
		return err == nil && n == 0
	})
	// Already in its bucket: with a later score (kept), and an earlier one
	// (replaced). The janitor may have moved them already: set them again.
	if err := raw.ZAdd(t.Context(), old, goredis.Z{Score: 5, Member: "old-0000"}, goredis.Z{Score: 9999, Member: "old-0001"}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := raw.ZAdd(t.Context(), s.roomsKeyOf("old-0000"), goredis.Z{Score: 7777, Member: "old-0000"}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := raw.ZAdd(t.Context(), s.roomsKeyOf("old-0001"), goredis.Z{Score: 3, Member: "old-0001"}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.migrateIndex(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n, err := raw.Exists(t.Context(), old).Result(); err != nil || n != 0 {
		t.Errorf("old index exists = %d, %v; want it gone", n, err)
	}
	if got := indexed(t, raw, s); len(got) != 1200 {
		t.Errorf("the buckets hold %d rooms, want 1200", len(got))
	}
	for room, want := range map[string]float64{"old-0000": 7777, "old-0001": 9999, "old-0500": 1500, "old-1199": 2199} {
		if got, err := raw.ZScore(t.Context(), s.roomsKeyOf(room), room).Result(); err != nil || got != want {
			t.Errorf("score of %s = %v, %v; want %v", room, got, err, want)
		}
	}
}

// TestEvictLease: only the node holding the janitor's lease removes rooms;
// one that lost it (expired, taken by another) stops before the next room,
// and one that has it lets go when done.
func TestEvictLease(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	raw := rawClient(t, srv.URL())
	opts := testOptions()
	poster := open(t, srv.URL(), opts)
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	for i := range 6 {
		appendAt(t, poster, roomName(i), base.Add(time.Duration(i)*time.Second), 1)
	}
	opts.MaxRooms = 3
	opts.SweepInterval = time.Hour // the sweeps below are the only ones
	s := open(t, srv.URL(), opts)
	lease := s.leaseKey()
	if err := raw.Set(t.Context(), lease, "another", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if more, err := s.evictExcess(t.Context()); err != nil || more {
		t.Fatalf("evictExcess with another node's lease = %v, %v; want false, nil", more, err)
	}
	if got := indexed(t, raw, s); len(got) != 6 {
		t.Errorf("with another node's lease the index holds %v, want all 6 rooms", got)
	}
	if ok, err := s.stillOver(t.Context(), "mine"); err != nil || ok {
		t.Errorf("stillOver without the lease = %v, %v; want false", ok, err)
	}
	if err := raw.Set(t.Context(), lease, "mine", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.stillOver(t.Context(), "mine"); err != nil || !ok {
		t.Errorf("stillOver with the lease, 6 rooms of 3 = %v, %v; want true", ok, err)
	}
	if ttl, err := raw.PTTL(t.Context(), lease).Result(); err != nil || ttl > leaseTTL || ttl < leaseTTL-time.Second {
		t.Errorf("lease TTL after a renewal = %v, %v; want about %v", ttl, err, leaseTTL)
	}
	if err := raw.Del(t.Context(), lease).Err(); err != nil {
		t.Fatal(err)
	}
	if more, err := s.evictExcess(t.Context()); err != nil || more {
		t.Fatalf("evictExcess = %v, %v; want false, nil", more, err)
	}
	if got, want := indexed(t, raw, s), roomNames(3, 5); !slices.Equal(got, want) {
		t.Errorf("rooms index = %v, want %v", got, want)
	}
	if n, err := raw.Exists(t.Context(), lease).Result(); err != nil || n != 0 {
		t.Errorf("lease exists after the sweep = %d, %v; want it let go", n, err)
	}
	// The lease taken by another node half way: the sweep stops.
	for i := 6; i < 9; i++ {
		appendAt(t, poster, roomName(i), base.Add(time.Duration(i)*time.Second), 1)
	}
	zs, _, err := s.excess(t.Context(), opts.MaxRooms)
	if err != nil || len(zs) != 3 {
		t.Fatalf("excess = %v, %v; want 3 rooms", zs, err)
	}
	calls := 0
	goOn := func(ctx context.Context) (bool, error) {
		if calls++; calls == 2 {
			if err := raw.Set(ctx, lease, "another", time.Minute).Err(); err != nil {
				return false, err
			}
		}
		return s.stillOver(ctx, "mine")
	}
	if err := raw.Set(t.Context(), lease, "mine", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if removed, _, err := s.evictRooms(t.Context(), zs, goOn); err != nil || removed != 1 {
		t.Fatalf("evictRooms losing the lease after one room = %d, %v; want 1 removed", removed, err)
	}
	if got, want := indexed(t, raw, s), roomNames(4, 8); !slices.Equal(got, want) {
		t.Errorf("rooms index after losing the lease = %v, want %v (one room removed)", got, want)
	}
}

// TestBucketOf pins the bucket function: it is part of the layout, and
// nodes that disagreed would index a room twice.
func TestBucketOf(t *testing.T) {
	for room, want := range map[string]int{"": 5, "lobby": 3, "한국어-7": 3, "r00": 13} {
		if got := bucketOf(room); got != want {
			t.Errorf("bucketOf(%q) = %d, want %d", room, got, want)
		}
	}
}

// TestAppendIndexAfterScriptFlush: appends after SCRIPT FLUSH (a restarted
// or new server) load both scripts again; an index update that fails
// does not fail the append, whose message is stored.
func TestAppendIndexAfterScriptFlush(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	raw := rawClient(t, srv.URL())
	s := open(t, srv.URL(), testOptions())
	s.indexEvery = 0 // every append updates the index
	appendN(t, s, "lobby", 2)
	if err := raw.ScriptFlush(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(time.Minute)
	m := appendAt(t, s, "lobby", at, 1)[0]
	if m.Seq != 3 {
		t.Errorf("Append after SCRIPT FLUSH = seq %d, want 3", m.Seq)
	}
	if got, err := raw.ZScore(t.Context(), s.roomsKeyOf("lobby"), "lobby").Result(); err != nil || int64(got) != at.UnixMilli() {
		t.Errorf("lobby's score = %v, %v; want %d", got, err, at.UnixMilli())
	}

	// Only the append script known: it runs once, the index's is loaded.
	if err := raw.ScriptFlush(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	if err := appendScript.Load(t.Context(), raw).Err(); err != nil {
		t.Fatal(err)
	}
	if m := appendAt(t, s, "lobby", at.Add(time.Second), 1)[0]; m.Seq != 4 {
		t.Errorf("Append with the index script flushed = seq %d, want 4", m.Seq)
	}
	if got, err := raw.ZScore(t.Context(), s.roomsKeyOf("lobby"), "lobby").Result(); err != nil || int64(got) != at.Add(time.Second).UnixMilli() {
		t.Errorf("lobby's score = %v, %v; want %d", got, err, at.Add(time.Second).UnixMilli())
	}

	if err := raw.Set(t.Context(), s.roomsKeyOf("other"), "not a sorted set", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if m := appendAt(t, s, "other", time.Now(), 1)[0]; m.Seq != 1 {
		t.Errorf("Append with a broken index = seq %d, want 1", m.Seq)
	}
	if got, err := s.Since(t.Context(), "other", 0, 10); err != nil || len(got) != 1 {
		t.Errorf("Since after an append whose index update failed = %v, %v; want the message", got, err)
	}
}
