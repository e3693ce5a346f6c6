//go:build unix

package sqlite

import (
	"bytes"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// withUmask sets the process's umask for the test: the usual 022, under
// which SQLite alone would create the file 0644. (It is the process's: the
// tests of this package do not run in parallel.)
func withUmask(t *testing.T, mask int) {
	old := syscall.Umask(mask)
	t.Cleanup(func() { syscall.Umask(old) })
}

// logBuffer is a logger that keeps what it is told, for tests.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// checkPerm fails the test unless the file at path exists with perm.
func checkPerm(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Errorf("%s: %v", filepath.Base(path), err)
		return
	}
	if got := info.Mode().Perm(); got != want {
		t.Errorf("%s has mode %04o, want %04o", filepath.Base(path), got, want)
	}
}

// TestNewFileOwnerOnly: a new database file, and the -wal and -shm files
// SQLite makes beside it, are readable by their owner only, and nothing is
// logged about it.
func TestNewFileOwnerOnly(t *testing.T) {
	withUmask(t, 0o022)
	var log logBuffer
	path := filepath.Join(t.TempDir(), "chat.db")
	s := openStore(t, path, Options{Logger: log.logger()})
	mustAppend(t, s, msg("lobby", "hi"), 1)
	if _, err := s.Secret(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The -wal and -shm files exist while the store is open.
	for _, name := range []string{path, path + "-wal", path + "-shm"} {
		checkPerm(t, name, 0o600)
	}
	if got := log.String(); got != "" {
		t.Errorf("opening a new file logged %q, want nothing", got)
	}
}

// TestOpenTightensPermissions: an existing database file that group or
// others may read, and its -wal and -shm files, lose those bits when a
// store opens it, with a warning naming each file and its modes.
func TestOpenTightensPermissions(t *testing.T) {
	withUmask(t, 0o022)
	t.Run("ClosedFile", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "chat.db")
		if err := openStore(t, path, Options{}).Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, 0o644); err != nil {
			t.Fatal(err)
		}
		var log logBuffer
		s := openStore(t, path, Options{Logger: log.logger()})
		mustAppend(t, s, msg("lobby", "hi"), 1)
		// SQLite made the -wal and -shm files while the main file was
		// still 0644: they are tightened as well.
		for _, name := range []string{path, path + "-wal", path + "-shm"} {
			checkPerm(t, name, 0o600)
		}
		checkWarned(t, log.String(), path, 0o644)
	})
	t.Run("OpenFiles", func(t *testing.T) {
		// Another store keeps the -wal and -shm files in place.
		path := filepath.Join(t.TempDir(), "chat.db")
		mustAppend(t, openStore(t, path, Options{}), msg("lobby", "hi"), 1)
		modes := map[string]fs.FileMode{path: 0o644, path + "-wal": 0o660, path + "-shm": 0o604}
		for name, mode := range modes {
			if err := os.Chmod(name, mode); err != nil {
				t.Fatal(err)
			}
		}
		var log logBuffer
		openStore(t, path, Options{Logger: log.logger()})
		for name, mode := range modes {
			checkPerm(t, name, 0o600)
			checkWarned(t, log.String(), name, mode)
		}
	})
	t.Run("OwnerOnlyLeftAlone", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "chat.db")
		if err := openStore(t, path, Options{}).Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, 0o400|0o200); err != nil {
			t.Fatal(err)
		}
		var log logBuffer
		openStore(t, path, Options{Logger: log.logger()})
		checkPerm(t, path, 0o600)
		if got := log.String(); got != "" {
			t.Errorf("opening a file of mode 0600 logged %q, want nothing", got)
		}
	})
}

// checkWarned fails the test unless log holds the warning about the file
// at path, whose mode was old.
func checkWarned(t *testing.T, log, path string, old fs.FileMode) {
	t.Helper()
	for line := range strings.Lines(log) {
		if strings.Contains(line, fmt.Sprintf("path=%s ", path)) {
			for _, want := range []string{"level=WARN", "tightened permissions of the database file, which holds the server secret",
				fmt.Sprintf("old_mode=%04o", old), "new_mode=0600"} {
				if !strings.Contains(line, want) {
					t.Errorf("warning about %s = %q, want it to hold %q", filepath.Base(path), line, want)
				}
			}
			return
		}
	}
	t.Errorf("no warning about %s in the log:\n%s", filepath.Base(path), log)
}

// TestForeignFileModeUntouched: another program's file is refused before
// its permissions are touched.
func TestForeignFileModeUntouched(t *testing.T) {
	withUmask(t, 0o022)
	path := filepath.Join(t.TempDir(), "other.db")
	if _, err := rawDB(t, path).Exec("CREATE TABLE accounts (id INTEGER PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(t.Context(), path, Options{}); err == nil {
		s.Close()
		t.Fatal("Open of another program's database succeeded")
	}
	checkPerm(t, path, 0o644)
}
