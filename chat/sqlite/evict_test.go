package sqlite

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hxchat/hxchat/chat"
)

// waitFor polls cond until it holds, failing the test after 10s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 10s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// roomRows counts the rows of the rooms table.
func roomRows(t *testing.T, s *Store) int {
	t.Helper()
	var n int
	if err := s.rdb.QueryRowContext(t.Context(), `SELECT count(*) FROM rooms`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// allRows counts the rows of the messages table.
func allRows(t *testing.T, s *Store) int {
	t.Helper()
	var n int
	if err := s.rdb.QueryRowContext(t.Context(), `SELECT count(*) FROM messages`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// at returns a test message stamped i minutes after the test epoch.
func at(room, text string, i int) chat.Message {
	m := msg(room, text)
	m.Time = epoch.Add(time.Duration(i) * time.Minute)
	return m
}

// TestMaxRoomsEvictsLeastRecentlyActive posts into 3×MaxRooms rooms, each
// later than the one before: the oldest rooms go whole (rows and
// messages), and the newest MaxRooms are kept intact, epochs and all.
func TestMaxRoomsEvictsLeastRecentlyActive(t *testing.T) {
	const maxRooms, rooms, each = 10, 30, 5
	// TrimBatch below a room's messages: removing one takes several
	// transactions.
	s := openStore(t, filepath.Join(t.TempDir(), "chat.db"), Options{MaxRooms: maxRooms, TrimBatch: 3})
	epochs := make(map[string]string)
	for r := range rooms {
		room := fmt.Sprintf("room-%02d", r)
		for i := 1; i <= each; i++ {
			m, err := s.Append(t.Context(), at(room, fmt.Sprint(i), r*each+i))
			if err != nil {
				t.Fatalf("Append(%s #%d): %v", room, i, err)
			}
			if m.Seq != int64(i) {
				t.Fatalf("Append(%s #%d): seq %d, want %d", room, i, m.Seq, i)
			}
			epochs[room] = m.Epoch
		}
	}
	waitFor(t, fmt.Sprintf("Stats.RoomsEvicted = %d", rooms-maxRooms), func() bool {
		return s.Stats().RoomsEvicted >= rooms-maxRooms
	})
	if got := s.Stats().RoomsEvicted; got != rooms-maxRooms {
		t.Errorf("Stats.RoomsEvicted = %d, want %d", got, rooms-maxRooms)
	}
	if got := roomRows(t, s); got != maxRooms {
		t.Errorf("rooms rows = %d, want %d", got, maxRooms)
	}
	if got, want := allRows(t, s), maxRooms*each; got != want {
		t.Errorf("messages rows = %d, want %d: the removed rooms' messages must go too", got, want)
	}
	for r := range rooms {
		room := fmt.Sprintf("room-%02d", r)
		got, err := s.Recent(t.Context(), room, 100)
		if err != nil {
			t.Fatal(err)
		}
		if r < rooms-maxRooms {
			if len(got) != 0 {
				t.Errorf("%s, one of the least recently active, still has %q", room, texts(got))
			}
			continue
		}
		if texts(got) != "1:1 2:2 3:3 4:4 5:5" {
			t.Errorf("%s, one of the newest %d, has %q, want its %d messages", room, maxRooms, texts(got), each)
		}
		for _, m := range got {
			if m.Epoch != epochs[room] {
				t.Errorf("%s seq %d has epoch %q, want %q as appended", room, m.Seq, m.Epoch, epochs[room])
			}
		}
	}
	list, err := s.Rooms(t.Context(), time.Time{}, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != maxRooms || list[len(list)-1].Name != fmt.Sprintf("room-%02d", rooms-maxRooms) {
		t.Errorf("Rooms lists %d rooms (%v), want the newest %d", len(list), list, maxRooms)
	}
}

// TestEvictedRoomStartsOver: a room removed by the bound and posted to
// again is a new history: seq 1, a new epoch, none of the old messages, and
// its watchers get the new epoch.
func TestEvictedRoomStartsOver(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chat.db")
	s := openStore(t, path, Options{MaxRooms: 2})
	first, err := s.Append(t.Context(), at("gone", "old 1", 0))
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, at("gone", "old 2", 1), 2)
	mustAppend(t, s, at("b", "b", 2), 1)
	mustAppend(t, s, at("c", "c", 3), 1)
	waitFor(t, "room evicted", func() bool { return s.Stats().RoomsEvicted == 1 })

	watched := make(chan chat.Message, 1)
	defer s.Watch("gone", func(m chat.Message) { watched <- m })()
	again, err := s.Append(t.Context(), at("gone", "new 1", 4))
	if err != nil {
		t.Fatal(err)
	}
	if again.Seq != 1 || again.Epoch == first.Epoch || !chat.ValidEpoch(again.Epoch) {
		t.Errorf("Append to the re-created room = seq %d, epoch %q; want seq 1 and a new epoch (was %q)", again.Seq, again.Epoch, first.Epoch)
	}
	got, err := s.Since(t.Context(), "gone", 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if texts(got) != "1:new 1" || got[0].Epoch != again.Epoch {
		t.Errorf("Since(gone, 0) = %q, want only 1:new 1 in epoch %q", texts(got), again.Epoch)
	}
	select {
	case m := <-watched:
		if m.Seq != 1 || m.Epoch != again.Epoch {
			t.Errorf("watcher got seq %d epoch %q, want seq 1 epoch %q", m.Seq, m.Epoch, again.Epoch)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("watcher not called within 5s")
	}
	// The new epoch is the room's for as long as it exists.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, path, Options{MaxRooms: 2})
	if m, err := s.Append(t.Context(), at("gone", "new 2", 5)); err != nil || m.Seq != 2 || m.Epoch != again.Epoch {
		t.Errorf("Append after reopening = (seq %d, epoch %q, %v), want seq 2 in epoch %q", m.Seq, m.Epoch, err, again.Epoch)
	}
}

// TestEvictionSparesTheLastBatch: the rooms of the batch committed last
// are never removed, even when they are the least recently active: the
// posters were just told their messages are stored.
func TestEvictionSparesTheLastBatch(t *testing.T) {
	g := newGate()
	s := openStore(t, filepath.Join(t.TempDir(), "chat.db"), Options{MaxRooms: 2, beforeBatch: g.hook})
	first := appendAsync(t.Context(), s, at("x", "x", 100))
	<-g.entered
	var batch []<-chan result
	batch = append(batch, appendAsync(t.Context(), s, at("y", "y", 100)))
	for i := range 3 {
		// Stamped long before x and y: the oldest rooms of the file.
		batch = append(batch, appendAsync(t.Context(), s, at(fmt.Sprintf("old-%d", i), "old", i)))
	}
	waitQueued(t, s, len(batch))
	close(g.release)
	for _, c := range append(batch, first) {
		if r := await(t, c); r.err != nil {
			t.Fatal(r.err)
		}
	}
	// Five rooms, two allowed; the four of the last batch are spared.
	waitFor(t, "x evicted", func() bool { return s.Stats().RoomsEvicted == 1 })
	for i := range 3 {
		room := fmt.Sprintf("old-%d", i)
		if got, err := s.Recent(t.Context(), room, 10); err != nil || texts(got) != "1:old" {
			t.Errorf("Recent(%s) right after its batch = (%q, %v), want 1:old", room, texts(got), err)
		}
	}
	// The next batch lets eviction go on, down to two rooms: the new one
	// and y, the most recently active.
	mustAppend(t, s, at("z", "z", 200), 1)
	waitFor(t, "rooms down to 2", func() bool { return s.Stats().RoomsEvicted == 4 })
	for room, want := range map[string]string{"old-0": "", "old-1": "", "old-2": "", "x": "", "y": "1:y", "z": "1:z"} {
		if got, err := s.Recent(t.Context(), room, 10); err != nil || texts(got) != want {
			t.Errorf("Recent(%s) = (%q, %v), want %q", room, texts(got), err, want)
		}
	}
}

// TestPostsDuringEviction: a long eviction (a file reopened with a much
// lower MaxRooms) never fails a post nor holds one up for long, and every
// room posted to meanwhile keeps its messages.
func TestPostsDuringEviction(t *testing.T) {
	const rooms, each, maxRooms = 200, 10, 8
	path := filepath.Join(t.TempDir(), "chat.db")
	if err := openStore(t, path, Options{}).Close(); err != nil {
		t.Fatal(err)
	}
	// The rooms a long-running server left, all older than the posts.
	if _, err := rawDB(t, path).Exec(fmt.Sprintf(`
		WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %[1]d)
		INSERT INTO rooms (id, name, last_seq, last_time_us, epoch) SELECT i, printf('old-%%03d', i), %[2]d, i, 'cafe0000' FROM n;
		WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < %[1]d * %[2]d - 1)
		INSERT INTO messages (room_id, seq, author, body, time_us) SELECT i / %[2]d + 1, i %% %[2]d + 1, 'old', 'x', i / %[2]d + 1 FROM n`,
		rooms, each)); err != nil {
		t.Fatal(err)
	}

	s := openStore(t, path, Options{MaxRooms: maxRooms, TrimBatch: 4})
	const posters, posts = 4, 50
	var wg sync.WaitGroup
	var slowest time.Duration
	var mu sync.Mutex
	for p := range posters {
		wg.Go(func() {
			room := fmt.Sprintf("live-%d", p)
			for i := 1; i <= posts; i++ {
				start := time.Now()
				m, err := s.Append(t.Context(), at(room, fmt.Sprint(i), 1000+i))
				if err != nil {
					t.Errorf("Append to %s during eviction: %v", room, err)
					return
				}
				if m.Seq != int64(i) {
					t.Errorf("Append to %s #%d: seq %d", room, i, m.Seq)
				}
				mu.Lock()
				slowest = max(slowest, time.Since(start))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	st := s.Stats()
	t.Logf("posters done with %d of %d rooms evicted; slowest post %v", st.RoomsEvicted, rooms+posters-maxRooms, slowest)
	waitFor(t, "eviction done", func() bool { return s.Stats().RoomsEvicted == rooms+posters-maxRooms })
	for p := range posters {
		room := fmt.Sprintf("live-%d", p)
		got, err := s.Since(t.Context(), room, 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != posts || got[0].Seq != 1 || got[len(got)-1].Seq != posts {
			t.Errorf("%s after eviction: %d messages (%s), want seqs 1 to %d", room, len(got), texts(got), posts)
		}
	}
	if got := roomRows(t, s); got != maxRooms {
		t.Errorf("rooms rows = %d, want %d", got, maxRooms)
	}
	if got, want := allRows(t, s), posters*posts+(maxRooms-posters)*each; got != want {
		t.Errorf("messages rows = %d, want %d", got, want)
	}
}

// TestEvictionUnderSteadyPosts: while appends keep waiting, the writer
// still evicts, one small transaction between two batches, rather than only
// when posting pauses.
func TestEvictionUnderSteadyPosts(t *testing.T) {
	const posts, maxRooms = 30, 5
	var (
		s       *Store
		batches int
		during  int64 // rooms evicted before the last batch
	)
	// Before each batch but the last, wait until the next append is
	// queued: the writer always finds one waiting, never an idle moment.
	hook := func() {
		batches++
		for deadline := time.Now().Add(5 * time.Second); batches < posts && len(s.w.reqs) == 0 && time.Now().Before(deadline); {
			time.Sleep(50 * time.Microsecond)
		}
		if batches == posts {
			during = s.Stats().RoomsEvicted
		}
	}
	s = openStore(t, filepath.Join(t.TempDir(), "chat.db"), Options{MaxRooms: maxRooms, MaxBatch: 1, beforeBatch: hook})
	var wg sync.WaitGroup
	for i := range posts {
		wg.Go(func() {
			if _, err := s.Append(t.Context(), at(fmt.Sprintf("room-%02d", i), "hi", i)); err != nil {
				t.Errorf("Append: %v", err)
			}
		})
	}
	wg.Wait()
	if batches != posts {
		t.Fatalf("%d batches, want %d (MaxBatch 1)", batches, posts)
	}
	t.Logf("%d of %d rooms evicted before the last batch", during, posts-maxRooms)
	if during == 0 {
		t.Errorf("no room evicted while appends were waiting")
	}
	waitFor(t, "rooms down to MaxRooms", func() bool { return s.Stats().RoomsEvicted == posts-maxRooms })
}
