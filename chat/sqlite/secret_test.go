package sqlite

import (
	"bytes"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/hxchat/hxchat/chat"
)

func TestSecretSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chat.db")
	s := openStore(t, path, Options{})
	first, err := s.Secret(t.Context())
	if err != nil {
		t.Fatalf("Secret: %v", err)
	}
	if len(first) != chat.SecretLen {
		t.Fatalf("Secret is %d bytes, want %d", len(first), chat.SecretLen)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s = openStore(t, path, Options{})
	again, err := s.Secret(t.Context())
	if err != nil {
		t.Fatalf("Secret after reopen: %v", err)
	}
	if !bytes.Equal(again, first) {
		t.Errorf("Secret after reopen = %x, want %x", again, first)
	}
	// Another file has a secret of its own.
	other, err := openStore(t, filepath.Join(t.TempDir(), "other.db"), Options{}).Secret(t.Context())
	if err != nil {
		t.Fatalf("Secret of another file: %v", err)
	}
	if bytes.Equal(other, first) {
		t.Errorf("two databases got the same secret %x", first)
	}
}

// TestSecretRaceOnNewFile opens one new file twice, as two processes
// starting together would, and asks both for the secret at once.
func TestSecretRaceOnNewFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chat.db")
	stores := []*Store{openStore(t, path, Options{}), openStore(t, path, Options{})}
	const each = 4
	got := make([][]byte, len(stores)*each)
	errs := make([]error, len(got))
	var wg sync.WaitGroup
	for i := range got {
		wg.Go(func() { got[i], errs[i] = stores[i%len(stores)].Secret(t.Context()) })
	}
	wg.Wait()
	for i := range got {
		if errs[i] != nil {
			t.Fatalf("Secret #%d: %v", i, errs[i])
		}
		if !bytes.Equal(got[i], got[0]) {
			t.Errorf("Secret #%d = %x, want %x like #0", i, got[i], got[0])
		}
	}
}

// TestMigrateFromVersion1 opens a database written by the first schema: its
// messages come back with an empty AuthorKey, and new ones keep theirs.
func TestMigrateFromVersion1(t *testing.T) {
	steps, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "v1.db")
	db := rawDB(t, path)
	for _, q := range []string{
		steps[0].sql,
		fmt.Sprintf("PRAGMA user_version = 1; PRAGMA application_id = %d", applicationID),
		"INSERT INTO rooms (name, last_seq) VALUES ('lobby', 1)",
		fmt.Sprintf("INSERT INTO messages (room_id, seq, author, body, time_us) VALUES (1, 1, 'old timer', 'from v1', %d)", epoch.UnixMicro()),
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%.60s: %v", q, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s := openStore(t, path, Options{})
	m := msg("lobby", "from v2")
	m.AuthorKey = "0123456789ab"
	mustAppend(t, s, m, 2)
	got, err := s.Recent(t.Context(), "lobby", 10)
	if err != nil {
		t.Fatalf("Recent: %v", err)
	}
	if len(got) != 2 {
		t.Fatalf("Recent returned %d messages, want 2", len(got))
	}
	if got[0].Author != "old timer" || got[0].AuthorKey != "" || got[0].Text != "from v1" {
		t.Errorf("v1 message = %+v, want author %q, no key, text %q", got[0], "old timer", "from v1")
	}
	if got[1].AuthorKey != m.AuthorKey {
		t.Errorf("new message's AuthorKey = %q, want %q", got[1].AuthorKey, m.AuthorKey)
	}
	if _, err := s.Secret(t.Context()); err != nil {
		t.Errorf("Secret on a migrated database: %v", err)
	}
}
