package chat

import (
	"context"
	"errors"
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

// ErrUnavailable marks a store that cannot be reached right now (its server
// is down). Nothing was stored; the caller may retry later.
var ErrUnavailable = errors.New("store unavailable")

// Pinger is implemented by stores that depend on a server; Ping reports
// whether it answers.
type Pinger interface {
	Ping(ctx context.Context) error
}
