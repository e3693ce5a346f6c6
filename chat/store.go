package chat

import (
	"context"
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
