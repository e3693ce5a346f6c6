package sqlite

import (
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

// TestEpochPerFile: a database file keeps its epoch across Close and Open
// and for every room; another file, or another in-memory store, has
// another.
func TestEpochPerFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "chat.db")
	s := openStore(t, path, Options{})
	first := epochOf(t, s, "lobby")
	if got := epochOf(t, s, "other"); got != first {
		t.Errorf("epoch of another room of the file = %q, want %q", got, first)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, path, Options{})
	if got := epochOf(t, s, "lobby"); got != first {
		t.Errorf("epoch after reopening the file = %q, want %q", got, first)
	}
	got, err := s.Since(t.Context(), "lobby", 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range got {
		if m.Epoch != first {
			t.Errorf("seq %d read after reopening with Epoch %q, want %q", m.Seq, m.Epoch, first)
		}
	}

	other := epochOf(t, openStore(t, filepath.Join(dir, "other.db"), Options{}), "lobby")
	mem1 := epochOf(t, openStore(t, MemoryPath, Options{}), "lobby")
	mem2 := epochOf(t, openStore(t, MemoryPath, Options{}), "lobby")
	// Random epochs of 32 bits: a clash here is a bug, not bad luck.
	if e := []string{first, other, mem1, mem2}; len(slices.Compact(slices.Sorted(slices.Values(e)))) != len(e) {
		t.Errorf("epochs of the file, another file and two in-memory stores = %v, want all different", e)
	}
}

// TestEpochMigratedFile: a file from before epochs (schema version 3) is
// given one when it is migrated, and keeps it.
func TestEpochMigratedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chat.db")
	s := openStore(t, path, Options{})
	mustAppend(t, s, msg("lobby", "old"), 1)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Back to version 3, as an older hxchat left it.
	db := rawDB(t, path)
	if _, err := db.Exec(`DELETE FROM settings WHERE key = 'epoch'; PRAGMA user_version = 3`); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, path, Options{})
	epoch := epochOf(t, s, "lobby")
	var stored string
	if err := db.QueryRow(`SELECT value FROM settings WHERE key = 'epoch'`).Scan(&stored); err != nil || stored != epoch {
		t.Errorf("settings row 'epoch' = %q, %v; want %q", stored, err, epoch)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := epochOf(t, openStore(t, path, Options{}), "lobby"); got != epoch {
		t.Errorf("epoch after reopening the migrated file = %q, want %q", got, epoch)
	}
}

// TestWatchOnlyCommitted: messages of a failed transaction never reach a
// watcher; those of a committed batch do, in commit order, each room's in
// seq order, with the file's epoch.
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
	want := []string{"lobby/1:first@" + epoch, "lobby/2:x@" + epoch, "other/1:x@" + epoch, "other/2:x@" + epoch}
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
