package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
)

// migrationFiles holds the schema, one numbered file per version:
// migrations/0001_init.sql takes an empty database to version 1, 0002_… to
// version 2, and so on. A released file is never edited; a change to the
// schema is a new file.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// applicationID marks a database as hxchat's (PRAGMA application_id, "hxch").
const applicationID = 0x68786368

// ErrSchemaTooNew is wrapped by the error Open returns for a database whose
// schema was written by a newer version of hxchat: this one does not know
// its layout and refuses to touch it.
var ErrSchemaTooNew = errors.New("database schema is newer than this program supports")

// ErrNotHxchat is wrapped by the error Open returns for an SQLite file that
// belongs to some other program.
var ErrNotHxchat = errors.New("not an hxchat database")

// migration is one schema step: the SQL that takes version-1 to version.
type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the embedded migrations in order, checking that they
// are numbered 1, 2, 3… without gaps or duplicates.
func migrations() ([]migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	out := make([]migration, 0, len(names))
	for _, name := range names { // fs.Glob sorts, and the numbers are zero-padded
		base := path.Base(name)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration %s: name does not start with a number and '_'", base)
		}
		if want := len(out) + 1; v != want {
			return nil, fmt.Errorf("migration %s: version %d, want %d (versions are 1, 2, 3… without gaps)", base, v, want)
		}
		b, err := migrationFiles.ReadFile(name)
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: base, sql: string(b)})
	}
	return out, nil
}

// migrate brings the schema of db up to the newest embedded version in one
// transaction, so a failed step leaves the database as it was. The version
// is kept in PRAGMA user_version, which SQLite stores in the file header and
// changes transactionally. A database that is newer than the code, or that
// is not hxchat's, is refused and left untouched.
func migrate(ctx context.Context, db *sql.DB) (err error) {
	steps, err := migrations()
	if err != nil {
		return err
	}
	latest := len(steps)
	// The writer DSN makes this BEGIN IMMEDIATE: two processes opening the
	// same new file migrate one after the other, not both at once.
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, ignoreNoTx(tx.Rollback()))
		}
	}()
	var version, appID, objects int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return err
	}
	if err := tx.QueryRowContext(ctx, "PRAGMA application_id").Scan(&appID); err != nil {
		return err
	}
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&objects); err != nil {
		return err
	}
	switch {
	case appID != applicationID && (appID != 0 || version != 0 || objects != 0):
		// Another program's file: its tables must not get ours beside them.
		return fmt.Errorf("%w (application_id %#x, user_version %d, %d schema objects)", ErrNotHxchat, appID, version, objects)
	case version > latest:
		return fmt.Errorf("%w: the database is at schema version %d, this program knows versions up to %d; run a newer hxchat or use another file",
			ErrSchemaTooNew, version, latest)
	case version == latest:
		return tx.Rollback()
	}
	for _, m := range steps[version:] {
		if _, err := tx.ExecContext(ctx, m.sql); err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
	}
	// PRAGMA takes no bound parameters; both values are integers we made.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d; PRAGMA application_id = %d", latest, applicationID)); err != nil {
		return err
	}
	return tx.Commit()
}

// ignoreNoTx drops the error of a Rollback after Commit or Rollback already
// ended the transaction.
func ignoreNoTx(err error) error {
	if errors.Is(err, sql.ErrTxDone) {
		return nil
	}
	return err
}
