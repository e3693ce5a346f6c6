package sqlite

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hxchat/hxchat/chat"
)

// marker returns a text of n bytes that no file holds by chance.
func marker(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, (n+1)/2)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "erase-me-" + hex.EncodeToString(b)[:n]
}

// leaks returns how many of the 12-byte pieces of secret (at every 12th
// offset, and its last 12 bytes) are in the database file at path or its
// log, so a remnant of part of a text is found too.
func leaks(t *testing.T, path, secret string) int {
	t.Helper()
	var files [][]byte
	for _, p := range []string{path, path + "-wal", path + "-journal"} {
		b, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, b)
	}
	const piece = 12
	n := 0
	for off := 0; off < len(secret); off += piece {
		end := min(off+piece, len(secret))
		p := []byte(secret[max(0, end-piece):end])
		for _, b := range files {
			if bytes.Contains(b, p) {
				n++
				break
			}
		}
	}
	return n
}

// checkpoint copies the log into the file and empties it, through a
// connection of its own, and fails unless it could do all of it.
func checkpoint(t *testing.T, path string) {
	t.Helper()
	db := rawDB(t, path)
	var busy, logged, done int
	if err := db.QueryRow("PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logged, &done); err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	if busy != 0 || logged != done {
		t.Fatalf("checkpoint: busy %d, %d frames in the log, %d checkpointed", busy, logged, done)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestDeleteErasesFromFile: a deleted message's text is gone from the bytes
// of the database file, once the log is checkpointed: secure_delete zeroes
// it where the row shrank, and in the overflow pages of a long text. Before
// the deletion and checkpoint the text is there, so the test can fail.
func TestDeleteErasesFromFile(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int
		off  bool // the control: secure_delete turned off
	}{
		{"Short", 40, false},
		{"Lines", 400, false},
		{"Overflow", 3 * 4096, false}, // a body beyond one page: overflow pages
		// Controls. A short text's freed bytes are mostly taken by the
		// erased row and the record, so the control uses a few lines.
		{"LinesWithoutSecureDelete", 400, true},
		{"OverflowWithoutSecureDelete", 3 * 4096, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "chat.db")
			s, err := Open(t.Context(), path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if tc.off {
				// The writer's only connection (pool of one).
				if _, err := s.wdb.ExecContext(t.Context(), "PRAGMA secure_delete = 0"); err != nil {
					t.Fatal(err)
				}
			}
			secret := marker(t, tc.size)
			mustAppend(t, s, msg("lobby", "before it"), 1)
			m := msg("lobby", secret)
			m.AuthorKey = "0123456789ab"
			mustAppend(t, s, m, 2)
			mustAppend(t, s, msg("lobby", "after it"), 3)
			if n := leaks(t, path, secret); n == 0 {
				t.Fatal("the text is not in the file or its log after Append: the test cannot see it")
			}
			checkpoint(t, path)
			if n := leaks(t, path, secret); n == 0 {
				t.Fatal("the text is not in the file after Append and a checkpoint: the test cannot see it")
			}
			mustAppend(t, s, msg("lobby", "between"), 4)

			rec, err := s.Delete(t.Context(), chat.Deletion{Room: "lobby", Seq: 2, By: m.AuthorKey, Time: epoch})
			if err != nil || rec.Seq != 5 {
				t.Fatalf("Delete = seq %d, %v; want seq 5", rec.Seq, err)
			}
			// The log still holds the page as it was before: the text
			// is in the file set until a checkpoint (a caveat, logged).
			t.Logf("after Delete, before the checkpoint: %d pieces of the text in the file and log", leaks(t, path, secret))
			checkpoint(t, path)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			n := leaks(t, path, secret)
			if tc.off {
				// Without secure_delete the freed bytes keep (part of)
				// the text: what secure_delete is for.
				t.Logf("without secure_delete: %d of %d pieces of the text left in the file", n, (len(secret)+11)/12)
				if n == 0 {
					t.Error("without secure_delete no piece of the text is left: the test does not show what secure_delete does")
				}
				return
			}
			if n != 0 {
				t.Errorf("after Delete, a checkpoint and Close, %d pieces of the text are in the file", n)
			}
			// The file still reads, erased.
			s2 := openStore(t, path, Options{})
			got, err := s2.Since(t.Context(), "lobby", 0, 10)
			if err != nil {
				t.Fatal(err)
			}
			if got := texts(got); got != "1:before it 2: 3:after it 4:between 5:" {
				t.Errorf("reopened = %q", got)
			}
			if !got[1].Deleted || got[4].Deletes != 2 {
				t.Errorf("reopened: seq 2 Deleted %v, seq 5 Deletes %d; want true, 2", got[1].Deleted, got[4].Deletes)
			}
		})
	}
}

// TestMigrateFromVersion5: a file of schema 5 with messages upgrades to 6;
// its messages come back whole, neither deleted nor records, and can be
// deleted.
func TestMigrateFromVersion5(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chat.db")
	db := fileAt(t, path, 5)
	for _, q := range []string{
		"INSERT INTO rooms (name, last_seq, last_time_us, epoch) VALUES ('lobby', 3, 0, 'e5e5e5e5'), ('other', 1, 0, 'abcd')",
		fmt.Sprintf(`INSERT INTO messages (room_id, seq, author, author_key, body, time_us) VALUES
			(1, 1, 'a', '0123456789ab', 'one', %[1]d), (1, 2, 'a', '0123456789ab', 'two', %[1]d),
			(1, 3, 'b', '', 'three', %[1]d), (2, 1, 'b', '', 'hi', %[1]d)`, epoch.UnixMicro()),
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s := openStore(t, path, Options{})
	var version int
	if err := s.rdb.QueryRowContext(t.Context(), "PRAGMA user_version").Scan(&version); err != nil || version != 6 {
		t.Fatalf("user_version = %d, %v; want 6", version, err)
	}
	got, err := s.Recent(t.Context(), "lobby", 10)
	if err != nil {
		t.Fatal(err)
	}
	if texts(got) != "1:one 2:two 3:three" {
		t.Fatalf("Recent after the upgrade = %q", texts(got))
	}
	for _, m := range got {
		if m.Deleted || m.Deletes != 0 || m.Epoch != "e5e5e5e5" || !m.Time.Equal(epoch.Truncate(1000)) {
			t.Errorf("upgraded seq %d = %+v, want not deleted, no record, epoch e5e5e5e5", m.Seq, m)
		}
	}
	if _, err := s.Delete(t.Context(), chat.Deletion{Room: "lobby", Seq: 3, By: "0123456789ab"}); !errors.Is(err, chat.ErrNotAuthor) {
		t.Errorf("Delete of a keyless old message by a key = %v, want ErrNotAuthor", err)
	}
	rec, err := s.Delete(t.Context(), chat.Deletion{Room: "lobby", Seq: 1, By: "0123456789ab", Time: epoch})
	if err != nil || rec.Seq != 4 || rec.Epoch != "e5e5e5e5" {
		t.Fatalf("Delete(1) = %+v, %v; want seq 4 in epoch e5e5e5e5", rec, err)
	}
	got, err = s.Before(t.Context(), "lobby", 5, 10)
	if err != nil {
		t.Fatal(err)
	}
	if texts(got) != "1: 2:two 3:three 4:" || !got[0].Deleted || got[3].Deletes != 1 {
		t.Errorf("Before(5) after deleting 1 = %q (%+v)", texts(got), got)
	}
	if got, err := s.Since(t.Context(), "other", 0, 10); err != nil || texts(got) != "1:hi" {
		t.Errorf("other after the upgrade = %q, %v", texts(got), err)
	}
}

// TestDeleteBatchedWithAppends: deletions queued with appends commit in
// their batch, in queue order: a deletion of a message appended earlier in
// the batch finds it, a refused one takes no seq and fails nothing else,
// and the watchers get every record in seq order.
func TestDeleteBatchedWithAppends(t *testing.T) {
	g := newGate()
	s := openStore(t, filepath.Join(t.TempDir(), "chat.db"), Options{beforeBatch: g.hook})
	watched := make(chan chat.Message, 16)
	defer s.Watch("lobby", func(m chat.Message) { watched <- m })()
	first := appendAsync(t.Context(), s, msg("lobby", "first"))
	<-g.entered
	type delResult struct {
		m   chat.Message
		err error
	}
	del := func(d chat.Deletion) <-chan delResult {
		c := make(chan delResult, 1)
		go func() {
			m, err := s.Delete(t.Context(), d)
			c <- delResult{m, err}
		}()
		return c
	}
	a2 := appendAsync(t.Context(), s, msg("lobby", "second"))
	waitQueued(t, s, 1)
	d2 := del(chat.Deletion{Room: "lobby", Seq: 2, Any: true, By: "op"})
	waitQueued(t, s, 2)
	dMissing := del(chat.Deletion{Room: "lobby", Seq: 9, Any: true, By: "op"})
	waitQueued(t, s, 3)
	a4 := appendAsync(t.Context(), s, msg("lobby", "fourth"))
	waitQueued(t, s, 4)
	close(g.release)
	if r := await(t, first); r.err != nil || r.m.Seq != 1 {
		t.Fatalf("first = %d, %v", r.m.Seq, r.err)
	}
	if r := await(t, a2); r.err != nil || r.m.Seq != 2 {
		t.Fatalf("second = %d, %v", r.m.Seq, r.err)
	}
	if r := <-d2; r.err != nil || r.m.Seq != 3 || r.m.Deletes != 2 {
		t.Fatalf("Delete(2) in the batch = %+v, %v; want record seq 3", r.m, r.err)
	}
	if r := <-dMissing; !errors.Is(r.err, chat.ErrNotFound) || !strings.Contains(r.err.Error(), `delete 9 in "lobby"`) {
		t.Fatalf("Delete(9) = %v, want ErrNotFound with context", r.err)
	}
	if r := await(t, a4); r.err != nil || r.m.Seq != 4 {
		t.Fatalf("fourth = %d, %v", r.m.Seq, r.err)
	}
	if got := s.Stats(); got.Appends != 4 || got.Commits != 2 {
		t.Errorf("Stats = %+v, want 4 messages in 2 commits", got)
	}
	for want := int64(1); want <= 4; want++ {
		m := <-watched
		if m.Seq != want || (want == 3) != (m.Deletes == 2) {
			t.Fatalf("watched %+v, want seq %d", m, want)
		}
	}
}
