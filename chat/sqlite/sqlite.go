// Package sqlite is a chat.Store on an SQLite file, through the pure-Go
// driver modernc.org/sqlite (no cgo).
//
// Writes go through one writer goroutine that commits every pending append
// in one transaction (group commit), with synchronous=FULL: an Append that
// returned nil was fsynced to the write-ahead log and survives a process
// crash and a power loss alike. Reads run on a separate pool of read-only
// connections beside the writer (WAL mode). The file is its owner's only
// (mode 0600): it holds the secret that signs identity cookies.
//
// What the file keeps is bounded, and the bounds are enforced by the writer
// in the background, in small transactions between batches of appends, so
// a post waits for at most one of them:
//   - each room keeps its newest Retention messages;
//   - the file keeps at most MaxRooms rooms: beyond it, the least recently
//     active rooms (by their newest message's time) are removed whole;
//   - with MaxAge set, messages older than it are deleted, within one
//     SweepInterval of aging out (reads may return them until then).
//
// Each room has its own epoch, made when its row is created and kept while
// the row exists, across reopening the file: every message of a room
// carries it. A room removed by the bound on rooms and posted to again
// starts over at seq 1 with a new epoch, so a reader holding a cursor of
// its old history knows that history is gone. (Rooms of a file from before
// per-room epochs keep the file's old epoch, so cursors survive the
// upgrade.) The writer queues each committed batch for the watchers in
// commit order, which is seq order within a room (chat.Watchers).
//
// Delete is a request of the writer's queue like Append, committed in its
// batch (delete.go): the message's body is emptied and the deletion
// record appended with the room's next seq in one transaction. The writer's
// connection runs with secure_delete, so the freed bytes of the old text
// are zeroed; older copies of the page stay in the write-ahead log until it
// is checkpointed and reused.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/hxchat/hxchat/chat"
)

// Defaults for the zero fields of Options.
const (
	// DefaultRetention is how many messages per room the store keeps.
	DefaultRetention = 10_000
	// DefaultBusyTimeout is how long a statement waits for a lock that
	// another process holds on the file before it fails.
	DefaultBusyTimeout = 5 * time.Second
	// DefaultMaxBatch bounds the appends committed in one transaction.
	DefaultMaxBatch = 256
	// DefaultMaxReaders bounds the read-only connections.
	DefaultMaxReaders = 4
	// DefaultTrimBatch bounds the old messages one transaction deletes from
	// a room beyond those the transaction's own appends push out, and the
	// rows one transaction of room eviction or expiry deletes.
	DefaultTrimBatch = 512
	// DefaultMaxRooms is how many rooms the file keeps.
	DefaultMaxRooms = 10_000
	// MaxSweepInterval bounds the default SweepInterval.
	MaxSweepInterval = time.Minute
	// MinSweepInterval bounds the default SweepInterval from below.
	MinSweepInterval = time.Second
)

// MemoryPath, given to Open as the path, keeps the database in memory only:
// it is gone when the Store is closed.
const MemoryPath = ":memory:"

// Options configures a Store. Zero fields select the defaults above.
type Options struct {
	// Retention is how many of the newest messages of each room are kept.
	// Older ones are never returned and are deleted in the background.
	Retention int
	// BusyTimeout is how long a statement waits for a lock held by another
	// process that has the file open (a backup, the sqlite3 shell).
	BusyTimeout time.Duration
	// MaxBatch bounds the appends committed in one transaction.
	MaxBatch int
	// MaxReaders bounds the connections that serve Since, Recent and
	// Before.
	MaxReaders int
	// TrimBatch bounds the old messages deleted from one room in one
	// transaction, beyond those pushed out by the transaction's appends, so
	// trimming a long backlog (after Retention was lowered) never holds up
	// posts for long. It bounds, too, the rows (messages and rooms) one
	// transaction of room eviction or of expiry deletes.
	TrimBatch int
	// MaxRooms bounds the rooms the file keeps. Beyond it, the rooms whose
	// newest message is the oldest are removed with all their messages,
	// in the background; a room posted to again starts over with a new
	// epoch. The rooms of the batch committed last are never removed.
	MaxRooms int
	// MaxAge, when positive, is how long a message is kept: older ones
	// (by Message.Time) are deleted in the background, checked every
	// SweepInterval, so Since and Recent may return a message up to one
	// SweepInterval (and the time the sweep takes) after it aged out. A
	// room whose messages all aged out keeps its row, with its epoch and
	// newest seq. Zero keeps messages forever.
	MaxAge time.Duration
	// SweepInterval is how often messages are checked against MaxAge:
	// by default a tenth of MaxAge, between MinSweepInterval and
	// MaxSweepInterval.
	SweepInterval time.Duration
	// Logger receives warnings: permissions tightened at Open, background
	// work that failed (slog.Default() when nil).
	Logger *slog.Logger

	beforeBatch func() // test hook: called by the writer before each batch
}

func (o Options) withDefaults() Options {
	if o.Retention <= 0 {
		o.Retention = DefaultRetention
	}
	if o.BusyTimeout <= 0 {
		o.BusyTimeout = DefaultBusyTimeout
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	if o.MaxReaders <= 0 {
		o.MaxReaders = DefaultMaxReaders
	}
	if o.TrimBatch <= 0 {
		o.TrimBatch = DefaultTrimBatch
	}
	if o.MaxRooms <= 0 {
		o.MaxRooms = DefaultMaxRooms
	}
	if o.MaxAge < 0 {
		o.MaxAge = 0
	}
	if o.SweepInterval <= 0 {
		o.SweepInterval = max(min(o.MaxAge/10, MaxSweepInterval), MinSweepInterval)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Store is a chat.Store on an SQLite database. It is safe for concurrent use.
type Store struct {
	path      string
	retention int64
	watchers  chat.Watchers

	// mu orders Append's hand-off to the writer before Close: Append sends
	// under the read lock, and Close sets closed under the write lock, so
	// every request the writer must answer is queued before it is told to
	// stop.
	mu     sync.RWMutex
	closed atomic.Bool

	w      *writer
	wdb    *sql.DB // the writer's single connection
	rdb    *sql.DB // read-only pool
	since  *sql.Stmt
	recent *sql.Stmt
	before *sql.Stmt
}

var (
	_ chat.Store        = (*Store)(nil)
	_ chat.SecretKeeper = (*Store)(nil)
)

// Stats counts what a Store has done since Open.
type Stats struct {
	// Appends is the number of messages committed, deletion records
	// (Store.Delete) included.
	Appends int64
	// Commits is the number of transactions that committed appends; with
	// concurrent posters it is lower than Appends (group commit).
	Commits int64
	// FailedAppends is the number of appends (and deletions) answered
	// with an error by the writer because their transaction failed (a
	// failed transaction fails every request in it); a deletion refused
	// (chat.ErrNotFound…) is not counted.
	FailedAppends int64
	// Trimmed is the number of messages deleted by retention.
	Trimmed int64
	// RoomsEvicted is the number of rooms removed, with their messages,
	// to keep the file within MaxRooms.
	RoomsEvicted int64
	// Expired is the number of messages deleted for being older than
	// MaxAge.
	Expired int64
}

// Stats returns the store's counters. It may be called after Close.
func (s *Store) Stats() Stats {
	return Stats{
		Appends:       s.w.appends.Load(),
		Commits:       s.w.commits.Load(),
		FailedAppends: s.w.failed.Load(),
		Trimmed:       s.w.trimmed.Load(),
		RoomsEvicted:  s.w.evicted.Load(),
		Expired:       s.w.expired.Load(),
	}
}

var memSeq atomic.Int64

// dsn returns the data source name of the database at path with SQLite URI
// parameters and the driver's own. The path is escaped so that '?', '#' and
// '%' in a file name stay part of it. A MemoryPath name is turned into a
// name of its own by Open first.
func dsn(path string, params ...string) string {
	name := (&url.URL{Path: path}).EscapedPath()
	return "file:" + name + "?" + strings.Join(params, "&")
}

// Open opens (creating it if needed) the database at path, or an in-memory
// one for MemoryPath, brings its schema up to date and starts the writer.
// A new file is created with mode 0600; an existing one that group or
// others may access loses those permissions, with a warning to
// Options.Logger, and so do its -wal and -shm files. It refuses a database
// whose schema is newer than this code knows (ErrSchemaTooNew) or that
// belongs to another program (ErrNotHxchat). ctx bounds the opening only,
// not the life of the Store.
func Open(ctx context.Context, path string, opts Options) (_ *Store, err error) {
	opts = opts.withDefaults()
	name, common := path, []string{fmt.Sprintf("_pragma=busy_timeout(%d)", opts.BusyTimeout.Milliseconds())}
	if path == MemoryPath {
		// A named database of SQLite's memdb VFS is shared by every
		// connection of this process that opens the name, so the readers
		// see the writer's data; it is freed with the last connection.
		name = fmt.Sprintf("/hxchat-memory-%d", memSeq.Add(1))
		common = append(common, "vfs=memdb")
	}
	s := &Store{path: path, retention: int64(opts.Retention)}
	var closers []func() error
	defer func() {
		if err != nil {
			for i := len(closers) - 1; i >= 0; i-- {
				err = errors.Join(err, closers[i]())
			}
			err = fmt.Errorf("sqlite: open %s: %w", path, err)
		}
	}()
	if path != MemoryPath {
		if err := createFile(path); err != nil {
			return nil, err
		}
	}

	// synchronous=FULL: in WAL mode, a commit returns only after the log
	// is fsynced. NORMAL would survive a crash of the process (the log
	// was written to the kernel) but could lose the last commits to a
	// power cut or kernel panic, and a POST that answered success is never
	// lost. Group commit pays the fsync once per batch, not per message.
	s.wdb, err = sql.Open("sqlite", dsn(name, slices.Concat(common, []string{
		"_pragma=journal_mode(wal)",
		"_pragma=synchronous(full)",
		"_pragma=foreign_keys(1)",
		// A deleted message's text is erased, not hidden (Store.Delete):
		// SQLite zeroes the bytes a row update or delete frees, in the
		// page and in freed (overflow) pages, instead of leaving them in
		// free space. Earlier versions of a page stay in the log until a
		// checkpoint overwrites the file and the log is reused.
		"_pragma=secure_delete(1)",
		"_pragma=journal_size_limit(67108864)", // truncate the log back to 64 MiB after a checkpoint
		"_txlock=immediate",                    // take the write lock at BEGIN, never mid-transaction
	})...))
	if err != nil {
		return nil, err
	}
	closers = append(closers, s.wdb.Close)
	// One connection, kept for the life of the Store: the writer is the
	// only one that writes, and for MemoryPath it keeps the data alive.
	s.wdb.SetMaxOpenConns(1)
	s.wdb.SetMaxIdleConns(1)
	s.wdb.SetConnMaxLifetime(0)
	s.wdb.SetConnMaxIdleTime(0)
	var mode string
	if err := s.wdb.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return nil, err
	}
	want := "wal"
	if path == MemoryPath {
		// memdb has no shared memory, so no WAL: it keeps an in-memory
		// rollback journal, and readers take turns with the writer.
		want = "memory"
	}
	if mode != want {
		return nil, fmt.Errorf("journal_mode is %q, want %q (WAL needs a local file system)", mode, want)
	}
	if err := migrate(ctx, s.wdb); err != nil {
		return nil, err
	}
	if path != MemoryPath {
		if err := tightenFiles(ctx, path, opts.Logger); err != nil {
			return nil, err
		}
	}

	s.rdb, err = sql.Open("sqlite", dsn(name, slices.Concat(common, []string{"_pragma=query_only(1)"})...))
	if err != nil {
		return nil, err
	}
	closers = append(closers, s.rdb.Close)
	s.rdb.SetMaxOpenConns(opts.MaxReaders)
	s.rdb.SetMaxIdleConns(opts.MaxReaders)
	// The newest retention seqs of a room are the only ones that count:
	// rows below them may still be waiting for the trimmer.
	if s.since, err = s.rdb.PrepareContext(ctx, `
		SELECT `+messageColumns+`
		FROM rooms r JOIN messages m ON m.room_id = r.id
		WHERE r.name = ?1 AND m.seq > max(?2, r.last_seq - ?3)
		ORDER BY m.seq LIMIT ?4`); err != nil {
		return nil, err
	}
	if s.recent, err = s.rdb.PrepareContext(ctx, `
		SELECT `+messageColumns+`
		FROM rooms r JOIN messages m ON m.room_id = r.id
		WHERE r.name = ?1 AND m.seq > r.last_seq - ?2
		ORDER BY m.seq`); err != nil {
		return nil, err
	}
	// Newest first, so LIMIT keeps the newest: one range of the primary
	// key read backwards from ?2, which Before reverses.
	if s.before, err = s.rdb.PrepareContext(ctx, `
		SELECT `+messageColumns+`
		FROM rooms r JOIN messages m ON m.room_id = r.id
		WHERE r.name = ?1 AND m.seq < ?2 AND m.seq > r.last_seq - ?3
		ORDER BY m.seq DESC LIMIT ?4`); err != nil {
		return nil, err
	}

	if s.w, err = newWriter(ctx, s.wdb, opts, &s.watchers); err != nil {
		return nil, err
	}
	go s.w.run()
	return s, nil
}

// Append implements chat.Store. It queues m for the writer and waits until
// the transaction holding it has committed and been fsynced, then returns m
// with its Seq, its room's Epoch, and Time cut to the microseconds the store
// keeps. A failed transaction fails every Append in it, and none of them
// used a seq.
//
// A ctx that is done before the append is queued returns ctx.Err() and
// stores nothing. Once queued, a done ctx only stops the waiting: the
// message is still stored unless the writer sees the ctx done before it
// starts the transaction, so an Append that returned a ctx error may or may
// not have stored its message.
//
// A lock held beyond Options.BusyTimeout by another process returns an
// error wrapping chat.ErrUnavailable; other database errors (a full or
// failing disk) are returned wrapped.
func (s *Store) Append(ctx context.Context, m chat.Message) (chat.Message, error) {
	if err := ctx.Err(); err != nil {
		return chat.Message{}, fmt.Errorf("append to %q: %w", m.Room, err)
	}
	m.Seq, m.Epoch = 0, ""
	m.Time = m.Time.Truncate(time.Microsecond)
	req := &appendReq{ctx: ctx, m: m, done: make(chan appendResult, 1)}
	s.mu.RLock()
	if s.closed.Load() {
		s.mu.RUnlock()
		return chat.Message{}, fmt.Errorf("append to %q: %w", m.Room, chat.ErrClosed)
	}
	select {
	case s.w.reqs <- req:
		s.mu.RUnlock()
	case <-ctx.Done():
		s.mu.RUnlock()
		return chat.Message{}, fmt.Errorf("append to %q: %w", m.Room, ctx.Err())
	}
	select {
	case res := <-req.done:
		if res.err != nil {
			return chat.Message{}, fmt.Errorf("append to %q: %w", m.Room, mapErr(res.err))
		}
		m.Seq, m.Epoch = res.seq, res.epoch
		return m, nil
	case <-ctx.Done():
		return chat.Message{}, fmt.Errorf("append to %q: %w (the message may still be stored)", m.Room, ctx.Err())
	}
}

// Since implements chat.Store: up to limit messages of room with Seq >
// after, oldest first, never one beyond the room's retention, each with the
// room's epoch. It reads a consistent snapshot and never waits for the
// writer.
func (s *Store) Since(ctx context.Context, room string, after int64, limit int) ([]chat.Message, error) {
	if err := s.check(ctx); err != nil {
		return nil, fmt.Errorf("since in %q: %w", room, err)
	}
	if limit <= 0 {
		return nil, nil
	}
	// No room holds more than retention messages.
	msgs, err := s.query(ctx, s.since, room, min(int64(limit), s.retention), room, after, s.retention, min(int64(limit), s.retention))
	if err != nil {
		return nil, fmt.Errorf("since in %q: %w", room, err)
	}
	return msgs, nil
}

// Recent implements chat.Store: the newest n messages of room (at most its
// retention), oldest first, from a consistent snapshot.
func (s *Store) Recent(ctx context.Context, room string, n int) ([]chat.Message, error) {
	if err := s.check(ctx); err != nil {
		return nil, fmt.Errorf("recent in %q: %w", room, err)
	}
	if n <= 0 {
		return nil, nil
	}
	k := min(int64(n), s.retention)
	msgs, err := s.query(ctx, s.recent, room, k, room, k)
	if err != nil {
		return nil, fmt.Errorf("recent in %q: %w", room, err)
	}
	return msgs, nil
}

// Before implements chat.Store: up to n messages of room with Seq < before,
// the newest of those (never one beyond the room's retention), oldest
// first, from a consistent snapshot.
func (s *Store) Before(ctx context.Context, room string, before int64, n int) ([]chat.Message, error) {
	if err := s.check(ctx); err != nil {
		return nil, fmt.Errorf("before in %q: %w", room, err)
	}
	if n <= 0 || before <= 1 {
		return nil, nil
	}
	k := min(int64(n), s.retention)
	msgs, err := s.query(ctx, s.before, room, k, room, before, s.retention, k)
	if err != nil {
		return nil, fmt.Errorf("before in %q: %w", room, err)
	}
	slices.Reverse(msgs)
	return msgs, nil
}

// Delete implements chat.Store. Like Append, it queues the deletion for the
// writer and waits for its transaction: the writer looks the message up,
// erases its body and appends the deletion record with the room's next seq
// in one transaction, serialised with the appends of its batch, and queues
// the record for the watchers in commit order like an appended message. It
// returns the record (Deletes = d.Seq, AuthorKey = d.By, Time = d.Time cut
// to microseconds). A refused deletion (chat.ErrNotFound, ErrNotAuthor,
// ErrAlreadyDeleted) changes nothing and uses no seq. The ctx, busy and
// database errors are those of Append.
func (s *Store) Delete(ctx context.Context, d chat.Deletion) (chat.Message, error) {
	if err := ctx.Err(); err != nil {
		return chat.Message{}, fmt.Errorf("delete %d in %q: %w", d.Seq, d.Room, err)
	}
	d.Time = d.Time.Truncate(time.Microsecond)
	rec := chat.Message{Room: d.Room, AuthorKey: d.By, Time: d.Time, Deletes: d.Seq}
	req := &appendReq{ctx: ctx, m: rec, del: &d, done: make(chan appendResult, 1)}
	s.mu.RLock()
	if s.closed.Load() {
		s.mu.RUnlock()
		return chat.Message{}, fmt.Errorf("delete %d in %q: %w", d.Seq, d.Room, chat.ErrClosed)
	}
	select {
	case s.w.reqs <- req:
		s.mu.RUnlock()
	case <-ctx.Done():
		s.mu.RUnlock()
		return chat.Message{}, fmt.Errorf("delete %d in %q: %w", d.Seq, d.Room, ctx.Err())
	}
	select {
	case res := <-req.done:
		if res.err != nil {
			return chat.Message{}, fmt.Errorf("delete %d in %q: %w", d.Seq, d.Room, mapErr(res.err))
		}
		rec.Seq, rec.Epoch = res.seq, res.epoch
		return rec, nil
	case <-ctx.Done():
		return chat.Message{}, fmt.Errorf("delete %d in %q: %w (the message may still be deleted)", d.Seq, d.Room, ctx.Err())
	}
}

// check answers for a read that cannot start: the caller's context ended,
// or the store is closed.
func (s *Store) check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closed.Load() {
		return chat.ErrClosed
	}
	return nil
}

// messageColumns are the columns every read selects, in the order query
// scans them, from rooms r and messages m.
const messageColumns = `r.epoch, m.seq, m.author, m.author_key, m.body, m.time_us, m.deleted, m.deletes`

// query runs a read (its caller has checked the store) and scans its
// messages; most bounds the rows it can return, for the first allocation.
func (s *Store) query(ctx context.Context, stmt *sql.Stmt, room string, most int64, args ...any) ([]chat.Message, error) {
	rows, err := stmt.QueryContext(ctx, args...)
	if err != nil {
		return nil, s.readErr(ctx, err)
	}
	defer rows.Close()
	out := make([]chat.Message, 0, min(most, 64))
	var epoch string
	var rawEpoch sql.RawBytes // the same in every row: made a string once
	for rows.Next() {
		m := chat.Message{Room: room}
		var us int64
		if err := rows.Scan(&rawEpoch, &m.Seq, &m.Author, &m.AuthorKey, &m.Text, &us, &m.Deleted, &m.Deletes); err != nil {
			return nil, err
		}
		if string(rawEpoch) != epoch {
			epoch = string(rawEpoch)
		}
		m.Epoch = epoch
		m.Time = time.UnixMicro(us).UTC()
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, s.readErr(ctx, err)
	}
	return out, nil
}

// Watch implements chat.Store. fn is called after the transaction holding
// a message of room has committed and its Append has been answered, so a
// message handed to fn is visible to Since and Recent; a room's messages
// come in seq order, from a fan-out goroutine that runs while messages wait
// (chat.Watchers), never from the writer. fn must not block, and it must
// not call the store. Watching a closed store is allowed and calls fn
// never.
func (s *Store) Watch(room string, fn func(chat.Message)) (stop func()) {
	return s.watchers.Watch(room, fn)
}

// readErr maps the error of a read: a read that raced Close reports
// chat.ErrClosed, an interrupted one its ctx's error.
func (s *Store) readErr(ctx context.Context, err error) error {
	switch {
	case s.closed.Load():
		return errors.Join(chat.ErrClosed, err)
	case ctx.Err() != nil:
		return ctx.Err()
	}
	return mapErr(err)
}

// mapErr marks errors that mean "busy, try later" with chat.ErrUnavailable
// and leaves the rest (disk full, I/O errors) as they are.
func mapErr(err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return fmt.Errorf("%w: %w", chat.ErrUnavailable, err)
		}
	}
	return err
}

// Secret implements chat.SecretKeeper. The secret is the row 'secret' of
// the settings table: the first call stores a random one with INSERT OR
// IGNORE, so of two processes (or goroutines) racing on a new file one wins
// and both read its secret. It survives restarts with the file.
func (s *Store) Secret(ctx context.Context) ([]byte, error) {
	// The read lock keeps Close from closing the database under us.
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed.Load() {
		return nil, fmt.Errorf("secret: %w", chat.ErrClosed)
	}
	// On the writer's connection: the only one that may write. It is
	// shared with the writer goroutine by database/sql, one user at a
	// time, and this runs once per process start.
	if _, err := s.wdb.ExecContext(ctx, `INSERT OR IGNORE INTO settings (key, value) VALUES ('secret', ?1)`, chat.NewSecret()); err != nil {
		return nil, fmt.Errorf("secret: %w", mapErr(err))
	}
	var secret []byte
	if err := s.wdb.QueryRowContext(ctx, `SELECT value FROM settings WHERE key = 'secret'`).Scan(&secret); err != nil {
		return nil, fmt.Errorf("secret: %w", mapErr(err))
	}
	if len(secret) != chat.SecretLen {
		return nil, fmt.Errorf("secret: the stored secret is %d bytes long, want %d (delete the settings row 'secret' to make a new one)", len(secret), chat.SecretLen)
	}
	return secret, nil
}

// Close waits until the writer has committed every append already queued
// (their callers get their seqs), then stops it and closes the database.
// Reads in flight finish first. Appends, reads and Closes after it return
// errors wrapping chat.ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	already := s.closed.Swap(true)
	s.mu.Unlock()
	if already {
		return fmt.Errorf("sqlite: close %s: %w", s.path, chat.ErrClosed)
	}
	close(s.w.quit)
	<-s.w.done
	err := errors.Join(s.w.close(), s.since.Close(), s.recent.Close(), s.before.Close(), s.rdb.Close(), s.wdb.Close())
	if err != nil {
		return fmt.Errorf("sqlite: close %s: %w", s.path, err)
	}
	return nil
}
