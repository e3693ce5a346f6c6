package redis

import (
	"slices"
	"strconv"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/hxchat/hxchat/chat/redis/redistest"
)

// goredisZ is a sorted set member at score ms.
func goredisZ(ms int64, member string) goredis.Z {
	return goredis.Z{Score: float64(ms), Member: member}
}

// TestIndexThrottle: appends to a room within indexEvery update its index
// score once (the active key moves at every one); an append of seq 1
// always updates it, as does the append after a failed update.
func TestIndexThrottle(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	raw := rawClient(t, srv.URL())
	s := open(t, srv.URL(), testOptions())
	zscore := func(room string) int64 {
		t.Helper()
		got, err := raw.ZScore(t.Context(), s.roomsKeyOf(room), room).Result()
		if err != nil {
			t.Fatalf("ZSCORE of %s: %v", room, err)
		}
		return int64(got)
	}
	active := func(room string) int64 {
		t.Helper()
		got, err := raw.Get(t.Context(), s.keys(room).active).Int64()
		if err != nil {
			t.Fatalf("active of %s: %v", room, err)
		}
		return got
	}
	t0 := time.Now().Truncate(time.Millisecond)
	appendAt(t, s, "lobby", t0, 1)
	appendAt(t, s, "lobby", t0.Add(100*time.Millisecond), 1)
	if got, want := zscore("lobby"), t0.UnixMilli(); got != want {
		t.Errorf("score after two appends within indexEvery = %d, want %d (the first's)", got, want)
	}
	if got, want := active("lobby"), t0.Add(100*time.Millisecond).UnixMilli(); got != want {
		t.Errorf("active after two appends = %d, want %d (the second's)", got, want)
	}
	// A message stamped indexEvery later is not held back.
	appendAt(t, s, "lobby", t0.Add(time.Second), 1)
	if got, want := zscore("lobby"), t0.Add(time.Second).UnixMilli(); got != want {
		t.Errorf("score after an append a second later = %d, want %d", got, want)
	}

	// The room removed (as the janitor does): its seq 1 updates the index
	// though the Store updated it just now.
	k := s.keys("lobby")
	if err := raw.Del(t.Context(), k.seq, k.epoch, k.log, k.active).Err(); err != nil {
		t.Fatal(err)
	}
	if err := raw.ZRem(t.Context(), s.roomsKeyOf("lobby"), "lobby").Err(); err != nil {
		t.Fatal(err)
	}
	if m := appendAt(t, s, "lobby", t0.Add(1100*time.Millisecond), 1)[0]; m.Seq != 1 {
		t.Fatalf("Append to a removed room = seq %d, want 1", m.Seq)
	}
	if got, want := zscore("lobby"), t0.Add(1100*time.Millisecond).UnixMilli(); got != want {
		t.Errorf("score after seq 1 = %d, want %d", got, want)
	}

	// A failed update: the next append updates, within indexEvery.
	bucket := s.roomsKeyOf("other")
	if err := raw.Set(t.Context(), bucket, "not a sorted set", 0).Err(); err != nil {
		t.Fatal(err)
	}
	appendAt(t, s, "other", t0, 1)
	if err := raw.Del(t.Context(), bucket).Err(); err != nil {
		t.Fatal(err)
	}
	appendAt(t, s, "other", t0.Add(10*time.Millisecond), 1)
	if got, want := zscore("other"), t0.Add(10*time.Millisecond).UnixMilli(); got != want {
		t.Errorf("score after a failed update = %d, want %d", got, want)
	}
}

// TestIndexThrottleBounded: the throttle's map holds at most four times
// MaxRooms rooms.
func TestIndexThrottleBounded(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	opts := testOptions()
	opts.MaxRooms = 3
	opts.SweepInterval = time.Hour
	s := open(t, srv.URL(), opts)
	for i := range 40 {
		appendAt(t, s, "room"+strconv.Itoa(i), time.Now(), 2)
		s.idxMu.Lock()
		n := len(s.indexed)
		s.idxMu.Unlock()
		if n > 4*opts.MaxRooms {
			t.Fatalf("after %d rooms the map holds %d, want at most %d", i+1, n, 4*opts.MaxRooms)
		}
	}
}

// TestEvictRaisesLaggingScore: a room whose index score lags its activity
// (its last posts throttled) and is the oldest by it is kept, its score
// raised to its activity; the next sweep removes the next oldest instead,
// and the bound holds (no sweep stuck on the kept room).
func TestEvictRaisesLaggingScore(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	raw := rawClient(t, srv.URL())
	opts := testOptions()
	opts.MaxRooms = 2
	opts.SweepInterval = time.Hour
	poster := open(t, srv.URL(), testOptions()) // the default MaxRooms: removes nothing
	opts.KeyPrefix = poster.opts.KeyPrefix
	s := open(t, srv.URL(), opts) // posts nothing: only the test sweeps
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	for i := range 3 {
		appendAt(t, poster, roomName(i), base.Add(time.Duration(i)*time.Second), 1)
	}
	recent := appendAt(t, poster, roomName(0), base.Add(10*time.Second), 1)[0]
	// r00's score lags, as after throttled posts.
	if err := raw.ZAdd(t.Context(), s.roomsKeyOf("r00"), goredisZ(base.UnixMilli(), "r00")).Err(); err != nil {
		t.Fatal(err)
	}
	more, err := s.evictExcess(t.Context())
	if err != nil || !more {
		t.Fatalf("first evictExcess = %v, %v; want more, nil", more, err)
	}
	checkKept(t, raw, s, "r00", 2)
	if got, err := raw.ZScore(t.Context(), s.roomsKeyOf("r00"), "r00").Result(); err != nil || int64(got) != recent.Time.UnixMilli() {
		t.Errorf("r00's score = %v, %v; want %d, raised to its activity", got, err, recent.Time.UnixMilli())
	}
	if more, err := s.evictExcess(t.Context()); err != nil || more {
		t.Fatalf("second evictExcess = %v, %v; want no more, nil", more, err)
	}
	if got, want := indexed(t, raw, s), []string{"r02", "r00"}; !slices.Equal(got, want) {
		t.Errorf("rooms index = %v, want %v", got, want)
	}
	if n := roomKeysLeft(t, raw, s, "r01"); n != 0 {
		t.Errorf("r01 kept %d keys, want none", n)
	}
	if got := s.Stats().RoomsEvicted; got != 1 {
		t.Errorf("Stats().RoomsEvicted = %d, want 1", got)
	}
}

// TestMaxAgeRaisesLaggingScore: a room whose index score is older than
// MaxAge but whose activity is not keeps its messages, and its score is
// raised to its activity.
func TestMaxAgeRaisesLaggingScore(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	raw := rawClient(t, srv.URL())
	opts := testOptions()
	opts.MaxAge = time.Hour
	opts.SweepInterval = time.Hour
	s := open(t, srv.URL(), opts)
	now := time.Now().Truncate(time.Millisecond)
	appendAt(t, s, "lobby", now, 2)
	if err := raw.ZAdd(t.Context(), s.roomsKeyOf("lobby"), goredisZ(now.Add(-2*time.Hour).UnixMilli(), "lobby")).Err(); err != nil {
		t.Fatal(err)
	}
	if more, err := s.expireOld(t.Context(), &ageWalk{}); err != nil || more {
		t.Fatalf("expireOld = more %v, %v; want done", more, err)
	}
	checkKept(t, raw, s, "lobby", 2)
	if got := s.Stats().Expired; got != 0 {
		t.Errorf("Stats().Expired = %d, want 0", got)
	}
	act, err := raw.Get(t.Context(), s.keys("lobby").active).Int64()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := raw.ZScore(t.Context(), s.roomsKeyOf("lobby"), "lobby").Result(); err != nil || int64(got) != act {
		t.Errorf("lobby's score = %v, %v; want %d, raised to its activity", got, err, act)
	}
}
