package sqlite

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"runtime"
)

// The database file holds the secret that signs identity cookies (the
// settings row 'secret'), so only its owner may read it, nor its -wal and
// -shm files, which hold its pages too.

// filePerm is the mode of a new database file.
const filePerm fs.FileMode = 0o600

// createFile creates the database file at path, empty and with mode 0600,
// unless it exists. SQLite's unix VFS gives the -wal and -shm files it
// creates the main file's mode, so they are 0600 too.
func createFile(path string) error {
	if runtime.GOOS == "windows" {
		return nil // no group and other bits to leave out
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, filePerm)
	if errors.Is(err, fs.ErrExist) {
		return nil // tightened, if need be, once known to be hxchat's
	}
	if err != nil {
		return err
	}
	return f.Close()
}

// tightenFiles takes group and other permissions from the database file
// at path and its -wal and -shm files, and tells logger about each file it
// changed. It is called once the file is known to be hxchat's: another
// program's file is refused untouched. A file whose bits cannot be taken
// away fails the Open: running on would leave the secret readable.
func tightenFiles(ctx context.Context, path string, logger *slog.Logger) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	for _, name := range []string{path, path + "-wal", path + "-shm"} {
		info, err := os.Stat(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue // -wal and -shm come and go with the connections
		}
		if err != nil {
			return err
		}
		old := info.Mode().Perm()
		if old&0o077 == 0 {
			continue
		}
		perm := old &^ 0o077
		if err := os.Chmod(name, perm); err != nil {
			return fmt.Errorf("%s is open to others (mode %04o) and holds the server secret; taking their permissions away failed (chmod go-rwx it, or run as its owner): %w",
				name, old, err)
		}
		logger.LogAttrs(ctx, slog.LevelWarn, "tightened permissions of the database file, which holds the server secret",
			slog.String("path", name), slog.String("old_mode", fmt.Sprintf("%04o", old)), slog.String("new_mode", fmt.Sprintf("%04o", perm)))
	}
	return nil
}
