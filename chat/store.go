package chat

import (
	"context"
	"errors"
	"time"
)

// Store keeps the history of every room and hands each committed message
// on, in order, to the room's watchers. Implementations are safe for
// concurrent use.
type Store interface {
	// Append stores m in m.Room and returns it with Seq set to the room's
	// next sequence number (1 for the first message) and Epoch to the
	// room's epoch. Seqs are gap-free and strictly increasing per room and
	// epoch; once Append returns nil the message is as durable as the store
	// promises, and every message with a lower seq in that room is stored
	// too.
	Append(ctx context.Context, m Message) (Message, error)
	// Since returns up to limit messages of room with Seq > after, oldest
	// first, each with the room's current Epoch. Messages trimmed by
	// retention are skipped.
	Since(ctx context.Context, room string, after int64, limit int) ([]Message, error)
	// Recent returns the newest n messages of room, oldest first, each with
	// the room's current Epoch.
	Recent(ctx context.Context, room string, n int) ([]Message, error)
	// Before returns up to n messages of room with Seq < before, the newest
	// of those, oldest first, each with the room's current Epoch: the page
	// of history before a reader's oldest (scroll back). Messages trimmed
	// by retention are skipped; before <= 1 or n <= 0 returns none.
	Before(ctx context.Context, room string, before int64, n int) ([]Message, error)
	// Delete erases the text of message d.Seq of d.Room and, in the same
	// step, appends a deletion record for it (Deletes = d.Seq, AuthorKey =
	// d.By, Time = d.Time) with the room's next seq, which it returns. The
	// record reaches the watchers in seq order like any message, so every
	// reader replaces the message at that point of the room's order, and a
	// reader resuming from a cursor meets it exactly once. From then on
	// every read returns the message with Deleted set and an empty Text;
	// the text is removed from the store, not hidden.
	//
	// Unless d.Any, the message's AuthorKey must be d.By (ErrNotAuthor).
	// A seq the room does not hold (never stored, trimmed, or a deletion
	// record) is ErrNotFound; a message already deleted is
	// ErrAlreadyDeleted, and nothing is appended. On any error nothing
	// changes.
	Delete(ctx context.Context, d Deletion) (Message, error)
	// Watch calls fn with each message committed to room from now on, by
	// any node sharing the store, in seq order and never concurrently for
	// one room: the order is decided once, where seqs are assigned, and no
	// reader sorts. A message handed to fn is already visible to Since and
	// Recent, so a reader that calls Watch and then Since misses nothing.
	// When the room's history is lost, the messages of the new history
	// carry a new Epoch (and count from 1 again). After a lost connection a
	// shared store catches up from its log before delivering live again. A
	// store whose fan-out falls far behind may skip its oldest messages
	// (chat.MaxQueued): watchers then meet a gap, which readers fill from
	// Since.
	// fn must not block and must not call the store. stop may be called
	// more than once, also from fn; once it returns, fn is not called
	// again but for at most one call already under way.
	Watch(room string, fn func(Message)) (stop func())
	// Close releases the store; later calls return ErrClosed.
	Close() error
}

// Deletion asks a Store to erase one message (Store.Delete).
type Deletion struct {
	Room string
	Seq  int64
	// By is the public key of who deletes; it is kept on the record (who
	// deleted what, never the text).
	By string
	// Any is true for an operator, who may delete anyone's message.
	Any  bool
	Time time.Time
}

// Errors of Store.Delete; handlers map them to 404, 403 and success.
var (
	ErrNotFound       = errors.New("no such message")
	ErrNotAuthor      = errors.New("not the author of the message")
	ErrAlreadyDeleted = errors.New("message already deleted")
)

// ErrUnavailable marks a store that cannot be reached right now (its server
// is down). Nothing was stored; the caller may retry later.
var ErrUnavailable = errors.New("store unavailable")

// Pinger is implemented by stores that depend on a server; Ping reports
// whether it answers.
type Pinger interface {
	Ping(ctx context.Context) error
}
