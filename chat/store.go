package chat

import (
	"context"
	"errors"
)

// Store keeps the history of every room. Implementations are safe for
// concurrent use.
type Store interface {
	// Append stores m in m.Room and returns it with Seq set to the room's
	// next sequence number (1 for the first message). Seqs are gap-free and
	// strictly increasing per room; once Append returns nil the message is as
	// durable as the store promises, and every message with a lower seq in
	// that room is stored too.
	Append(ctx context.Context, m Message) (Message, error)
	// Since returns up to limit messages of room with Seq > after, oldest
	// first. Messages trimmed by retention are skipped.
	Since(ctx context.Context, room string, after int64, limit int) ([]Message, error)
	// Recent returns the newest n messages of room, oldest first.
	Recent(ctx context.Context, room string, n int) ([]Message, error)
	// Close releases the store; later calls return ErrClosed.
	Close() error
}

// ErrUnavailable marks a store that cannot be reached right now (its server
// is down). Nothing was stored; the caller may retry later.
var ErrUnavailable = errors.New("store unavailable")

// Feed is implemented by stores shared by many nodes (Redis). A Hub whose
// store is a Feed fans out only what the feed delivers, so every node sees
// the messages of every node, and sees them once.
type Feed interface {
	// Watch calls fn with each message appended to room by any node from
	// now on, in seq order, until stop is called. After a lost connection
	// it catches up from the store, so nothing stored meanwhile is skipped.
	// fn must not block. stop may be called more than once.
	Watch(room string, fn func(Message)) (stop func())
}

// Pinger is implemented by stores that depend on a server; Ping reports
// whether it answers.
type Pinger interface {
	Ping(ctx context.Context) error
}
