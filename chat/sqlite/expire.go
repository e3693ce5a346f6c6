package sqlite

import (
	"context"
	"database/sql"
	"log/slog"
	"time"
)

// The bound on age. Every sweepInterval the writer sweeps the rooms for
// messages older than maxAge, a small transaction at a time.
//
// No index on messages.time_us: it would cost every append a second B-tree
// insert (and its page in the log at every commit) to serve a sweep a
// minute. Instead a sweep relies on the table's order: a room's messages
// are clustered by seq, and their times rise with their seqs (the hub
// stamps them as it posts), so a room's old messages are the first rows of
// its range. A sweep walks the rooms by id in chunks of trimBatch and reads
// each one's first message (one primary-key seek per room, and the rooms
// are bounded by maxRooms), then deletes the old prefix of the rooms whose
// first message is old. A message stamped out of order (an older time after
// a newer one) goes once the messages before it have aged out too: deleting
// only prefixes keeps every room's seqs contiguous, which retention relies
// on.

// sweep is the state of one sweep through the rooms.
type sweep struct {
	start  time.Time
	cutoff int64   // Unix µs: messages older than this go
	after  int64   // rooms with a higher id are still to be looked at
	walked bool    // every room was looked at
	rooms  []int64 // rooms looked at whose first message is old, to be swept
}

func (w *writer) prepareExpiry(ctx context.Context, opts Options) (err error) {
	w.maxAge, w.sweepInterval = opts.MaxAge, opts.SweepInterval
	// The ?2 rooms after id ?1, each with the time of its first message
	// (NULL for a room without messages).
	if w.probe, err = w.db.PrepareContext(ctx, `
		SELECT r.id, (SELECT m.time_us FROM messages m WHERE m.room_id = r.id ORDER BY m.seq LIMIT 1)
		FROM rooms r WHERE r.id > ?1 ORDER BY r.id LIMIT ?2`); err != nil {
		return err
	}
	// Of the room's ?3 oldest messages, deletes those before the first
	// one that is not older than ?2 (all of them if none is). A room
	// without messages deletes nothing (seq < NULL).
	w.expire, err = w.db.PrepareContext(ctx, `
		DELETE FROM messages
		WHERE room_id = ?1 AND seq < (
			SELECT coalesce(min(CASE WHEN time_us >= ?2 THEN seq END), max(seq) + 1)
			FROM (SELECT seq, time_us FROM messages WHERE room_id = ?1 ORDER BY seq LIMIT ?3))`)
	return err
}

// sweepDue returns a channel that receives when the next sweep is due, or
// nil (never) without maxAge. The first sweep is due at once, for messages
// that aged out while the store was closed.
func (w *writer) sweepDue() <-chan time.Time {
	if w.maxAge <= 0 {
		return nil
	}
	if w.sweepTimer == nil {
		w.sweepTimer = time.NewTimer(0)
	}
	return w.sweepTimer.C
}

// stopSweeps stops the sweep timer.
func (w *writer) stopSweeps() {
	if w.sweepTimer != nil {
		w.sweepTimer.Stop()
	}
}

// startSweep starts a sweep for messages older than maxAge from now.
func (w *writer) startSweep() {
	now := time.Now()
	w.sweep = &sweep{start: now, cutoff: now.Add(-w.maxAge).UnixMicro()}
}

// endSweep ends the sweep under way; the next one is due sweepInterval
// after it started.
func (w *writer) endSweep() {
	w.sweepTimer.Reset(max(0, time.Until(w.sweep.start.Add(w.sweepInterval))))
	w.sweep = nil
}

// sweepStep does one bounded piece of the sweep under way: it looks at the
// next trimBatch rooms, or it deletes up to trimBatch old messages of the
// rooms found to have some, in one transaction. A step that fails ends the
// sweep; the next one tries again.
func (w *writer) sweepStep() {
	sw := w.sweep
	if len(sw.rooms) == 0 {
		if sw.walked {
			w.endSweep()
			return
		}
		if err := w.walk(sw); err != nil {
			w.sweepFailed(err)
		}
		return
	}
	var swept int
	var deleted int64
	err := w.inTx(func(ctx context.Context, tx *sql.Tx) error {
		expire := tx.StmtContext(ctx, w.expire)
		budget := int64(w.trimBatch)
		for _, id := range sw.rooms {
			n, err := execCount(ctx, expire, id, sw.cutoff, budget)
			if err != nil {
				return err
			}
			deleted += n
			if n == budget {
				break // old messages may be left: the next step goes on with the room
			}
			swept++
			if budget -= n; budget == 0 {
				break
			}
		}
		return nil
	})
	if err != nil {
		w.sweepFailed(err)
		return
	}
	sw.rooms = sw.rooms[swept:]
	w.expired.Add(deleted)
}

// walk looks at the next trimBatch rooms of the sweep and notes those
// whose first message is older than its cutoff.
func (w *writer) walk(sw *sweep) error {
	rows, err := w.probe.QueryContext(context.Background(), sw.after, w.trimBatch)
	if err != nil {
		return err
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var first sql.NullInt64
		if err := rows.Scan(&sw.after, &first); err != nil {
			return err
		}
		n++
		if first.Valid && first.Int64 < sw.cutoff {
			sw.rooms = append(sw.rooms, sw.after)
		}
	}
	sw.walked = n < w.trimBatch
	return rows.Err()
}

// sweepFailed ends the sweep under way after an error.
func (w *writer) sweepFailed(err error) {
	w.logger.LogAttrs(context.Background(), slog.LevelWarn, "sqlite: deleting messages older than the maximum age failed; trying again at the next sweep",
		slog.Duration("max_age", w.maxAge), slog.Any("err", err))
	w.endSweep()
}
