package sqlite

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hxchat/hxchat/chat"
)

// epochOf appends a message to room and returns the epoch it got.
func epochOf(t *testing.T, s *Store, room string) string {
	t.Helper()
	m, err := s.Append(t.Context(), msg(room, "hi"))
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	if m.Epoch == "" {
		t.Fatal("Append returned an empty Epoch")
	}
	return m.Epoch
}

// TestEpochPerRoom: a room's epoch is made with the room, is the same for
// every message of it, and survives Close and Open; each room, and each
// room of another file or in-memory store, has its own. (A room removed
// and created again gets a new one: TestEvictedRoomStartsOver.)
func TestEpochPerRoom(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "chat.db")
	s := openStore(t, path, Options{})
	lobby, other := epochOf(t, s, "lobby"), epochOf(t, s, "other")
	if got := epochOf(t, s, "lobby"); got != lobby {
		t.Errorf("epoch of the room's second message = %q, want %q like its first", got, lobby)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, path, Options{})
	for room, want := range map[string]string{"lobby": lobby, "other": other} {
		if got := epochOf(t, s, room); got != want {
			t.Errorf("epoch of %q after reopening the file = %q, want %q", room, got, want)
		}
		got, err := s.Since(t.Context(), room, 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range got {
			if m.Epoch != want {
				t.Errorf("%s seq %d read after reopening with Epoch %q, want %q", room, m.Seq, m.Epoch, want)
			}
		}
	}

	otherFile := epochOf(t, openStore(t, filepath.Join(dir, "other.db"), Options{}), "lobby")
	mem1 := epochOf(t, openStore(t, MemoryPath, Options{}), "lobby")
	mem2 := epochOf(t, openStore(t, MemoryPath, Options{}), "lobby")
	// Random epochs of 32 bits: a clash here is a bug, not bad luck.
	if e := []string{lobby, other, otherFile, mem1, mem2}; len(slices.Compact(slices.Sorted(slices.Values(e)))) != len(e) {
		t.Errorf("epochs of two rooms of the file, of another file and of two in-memory stores = %v, want all different", e)
	}
}

// fileAt creates the database at path at schema version v, as the hxchat
// that knew v left it, and returns it open.
func fileAt(t *testing.T, path string, v int) *sql.DB {
	t.Helper()
	steps, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	db := rawDB(t, path)
	for _, m := range steps[:v] {
		if _, err := db.Exec(m.sql); err != nil {
			t.Fatalf("migration %s: %v", m.name, err)
		}
	}
	if _, err := db.Exec(fmt.Sprintf("PRAGMA user_version = %d; PRAGMA application_id = %d", v, applicationID)); err != nil {
		t.Fatal(err)
	}
	return db
}

// TestEpochMigratedFile: the rooms of a file from before per-room epochs
// (schema version 4) keep the file's epoch, so cursors survive the upgrade,
// and a file from before epochs (version 3), or whose epoch was edited into
// something no cursor can carry, gets one new epoch for its rooms; rooms
// created after the upgrade get epochs of their own.
func TestEpochMigratedFile(t *testing.T) {
	for _, tc := range []struct {
		name string
		v    int
		bad  string // an epoch set by hand before the upgrade
	}{
		{"FromVersion3", 3, ""},
		{"FromVersion4", 4, ""},
		{"FromVersion4BadEpoch", 4, "Not-An-Epoch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := tc.v
			path := filepath.Join(t.TempDir(), "chat.db")
			db := fileAt(t, path, v)
			for _, q := range []string{
				"INSERT INTO rooms (name, last_seq, last_time_us) VALUES ('lobby', 2, 0), ('other', 1, 0)",
				"INSERT INTO messages (room_id, seq, author, body, time_us) VALUES (1, 1, 'a', 'one', 0), (1, 2, 'a', 'two', 0), (2, 1, 'b', 'hi', 0)",
			} {
				if _, err := db.Exec(q); err != nil {
					t.Fatal(err)
				}
			}
			if tc.bad != "" {
				if _, err := db.Exec(`UPDATE settings SET value = CAST(?1 AS BLOB) WHERE key = 'epoch'`, tc.bad); err != nil {
					t.Fatal(err)
				}
			}
			var fileEpoch string
			if v >= 4 {
				if err := db.QueryRow(`SELECT value FROM settings WHERE key = 'epoch'`).Scan(&fileEpoch); err != nil {
					t.Fatal(err)
				}
			}

			s := openStore(t, path, Options{})
			got, err := s.Recent(t.Context(), "lobby", 10)
			if err != nil {
				t.Fatal(err)
			}
			if texts(got) != "1:one 2:two" {
				t.Fatalf("lobby after the migration = %q, want 1:one 2:two", texts(got))
			}
			epoch := got[0].Epoch
			if v >= 4 && tc.bad == "" && epoch != fileEpoch {
				t.Errorf("epoch of a room migrated from version %d = %q, want the file's %q: cursors would reset", v, epoch, fileEpoch)
			}
			if !chat.ValidEpoch(epoch) || got[1].Epoch != epoch {
				t.Errorf("epochs of the migrated room = %q, %q; want one valid epoch", got[0].Epoch, got[1].Epoch)
			}
			if m, err := s.Append(t.Context(), msg("lobby", "three")); err != nil || m.Seq != 3 || m.Epoch != epoch {
				t.Errorf("Append to the migrated room = (seq %d, epoch %q, %v), want seq 3 in epoch %q", m.Seq, m.Epoch, err, epoch)
			}
			if got := epochOf(t, s, "other"); got != epoch {
				t.Errorf("epoch of the file's other room = %q, want %q like lobby's", got, epoch)
			}
			fresh := epochOf(t, s, "new room")
			if fresh == epoch {
				t.Errorf("a room created after the migration has the migrated rooms' epoch %q, want its own", epoch)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openStore(t, path, Options{})
			for room, want := range map[string]string{"lobby": epoch, "other": epoch, "new room": fresh} {
				if got := epochOf(t, s, room); got != want {
					t.Errorf("epoch of %q after reopening the migrated file = %q, want %q", room, got, want)
				}
			}
		})
	}
}

// TestWatchOnlyCommitted: messages of a failed transaction never reach a
// watcher; those of a committed batch do, in commit order, each room's in
// seq order, with the room's epoch.
func TestWatchOnlyCommitted(t *testing.T) {
	g := newGate()
	s := openStore(t, filepath.Join(t.TempDir(), "chat.db"), Options{beforeBatch: g.hook})
	if _, err := s.wdb.ExecContext(t.Context(), `CREATE TEMP TRIGGER poison BEFORE INSERT ON messages
		WHEN NEW.body = 'poison' BEGIN SELECT RAISE(ABORT, 'poisoned message'); END`); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []string
	record := func(m chat.Message) {
		mu.Lock()
		got = append(got, fmt.Sprintf("%s/%d:%s@%s", m.Room, m.Seq, m.Text, m.Epoch))
		mu.Unlock()
	}
	defer s.Watch("lobby", record)()
	defer s.Watch("other", record)()

	// The first batch holds only "first"; the second the poisoned one.
	first := appendAsync(t.Context(), s, msg("lobby", "first"))
	<-g.entered
	failed := []<-chan result{
		appendAsync(t.Context(), s, msg("lobby", "innocent")),
		appendAsync(t.Context(), s, msg("other", "poison")),
	}
	waitQueued(t, s, len(failed))
	close(g.release)
	r := await(t, first)
	if r.err != nil {
		t.Fatal(r.err)
	}
	epoch := r.m.Epoch
	for _, c := range failed {
		if r := await(t, c); r.err == nil {
			t.Fatalf("Append in the poisoned transaction got seq %d", r.m.Seq)
		}
	}
	// Several rooms at once.
	var batch sync.WaitGroup
	for _, room := range []string{"other", "lobby", "other"} {
		batch.Go(func() {
			if _, err := s.Append(t.Context(), msg(room, "x")); err != nil {
				t.Error(err)
			}
		})
	}
	batch.Wait()
	head, err := s.Recent(t.Context(), "other", 1)
	if err != nil || len(head) != 1 {
		t.Fatalf("Recent(other) = (%d messages, %v), want 1", len(head), err)
	}
	otherEpoch := head[0].Epoch // each room has its own
	want := []string{"lobby/1:first@" + epoch, "lobby/2:x@" + epoch, "other/1:x@" + otherEpoch, "other/2:x@" + otherEpoch}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		snapshot := slices.Clone(got)
		mu.Unlock()
		if n >= len(want) || time.Now().After(deadline) {
			// Rooms interleave in commit order; within a room, seqs rise.
			slices.SortStableFunc(snapshot, func(a, b string) int {
				ra, _, _ := strings.Cut(a, "/")
				rb, _, _ := strings.Cut(b, "/")
				return strings.Compare(ra, rb)
			})
			if !slices.Equal(snapshot, want) {
				t.Errorf("watched %v, want %v (by room)", snapshot, want)
			}
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// TestWatchAfterAnswer: the writer answers a batch's callers before it
// calls the watchers, so a watcher (here one that waits, which real ones
// must not) never holds up an acknowledgement.
func TestWatchAfterAnswer(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "chat.db"), Options{})
	answered := make(chan struct{})
	called := make(chan chat.Message, 1)
	defer s.Watch("lobby", func(m chat.Message) {
		select {
		case <-answered:
		case <-time.After(5 * time.Second): // published before the answer
		}
		called <- m
	})()
	start := time.Now()
	m, err := s.Append(t.Context(), msg("lobby", "hi"))
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Append took %v: the watcher was called before the caller was answered", d)
	}
	close(answered)
	select {
	case got := <-called:
		if got.Seq != m.Seq || got.Epoch != m.Epoch || got.Text != m.Text || !got.Time.Equal(m.Time) {
			t.Errorf("watcher got %+v, want %+v as Append returned it", got, m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("watcher not called within 5s")
	}
}
