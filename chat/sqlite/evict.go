package sqlite

import (
	"context"
	"database/sql"
	"log/slog"
)

// The bound on rooms. The writer keeps the number of rooms in memory
// (counted at Open, then counted up by the appends that create rooms and
// down by eviction), so checking it costs nothing. While it is above
// maxRooms, the writer removes the rooms whose newest message is the oldest
// (rooms_by_last_time), messages first and then the row, in transactions of
// at most trimBatch deleted rows each. A room with a long history takes
// several: readers meanwhile see its oldest messages go, as with retention.
//
// A removed room's id may be given to a new room, so nothing the writer
// remembers by room id may outlive the room: eviction forgets it.

func (w *writer) prepareEvict(ctx context.Context, opts Options) (err error) {
	w.maxRooms = int64(opts.MaxRooms)
	if err := w.db.QueryRowContext(ctx, `SELECT count(*) FROM rooms`).Scan(&w.rooms); err != nil {
		return err
	}
	// Deletes the room's ?2 oldest messages: up to the ?2-th seq, as
	// seqs need not be contiguous here.
	if w.evictMsgs, err = w.db.PrepareContext(ctx, `
		DELETE FROM messages
		WHERE room_id = ?1 AND seq <= (SELECT max(seq) FROM (SELECT seq FROM messages WHERE room_id = ?1 ORDER BY seq LIMIT ?2))`); err != nil {
		return err
	}
	// Deletes the room's row once its messages are gone (and so never
	// one that has any: the foreign key would fail the transaction).
	w.evictRoom, err = w.db.PrepareContext(ctx, `
		DELETE FROM rooms WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM messages WHERE room_id = ?1)`)
	return err
}

// evictDue reports whether the file holds more rooms than it may, and
// eviction is not paused.
func (w *writer) evictDue() bool {
	return w.rooms > w.maxRooms && !w.evictPaused
}

// committed records what a committed batch did to the rooms: the rooms it
// created count, its rooms are the ones eviction must spare, and eviction,
// if it was paused, may try again.
func (w *writer) committed(touched map[int64]touch, created int64) {
	w.rooms += created
	w.recent = touched
	w.evictPaused = false
}

// evictStep runs one transaction of eviction: it counts the rooms afresh
// (another process may have added or removed some), then removes the least
// recently active ones beyond maxRooms, but for those of the batch
// committed last, until it has deleted trimBatch rows. A step that fails,
// or finds nothing it may remove, pauses eviction until the next commit, so
// a failing disk does not keep the writer spinning.
func (w *writer) evictStep() {
	var (
		count   int64
		removed []int64
		deleted int64
	)
	err := w.inTx(func(ctx context.Context, tx *sql.Tx) error {
		// One pass over the smallest index: cheap, and only done while
		// the file is over the bound.
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM rooms`).Scan(&count); err != nil {
			return err
		}
		excess, budget := count-w.maxRooms, int64(w.trimBatch)
		if excess <= 0 {
			return nil
		}
		victims, err := w.oldestRooms(ctx, tx, min(excess, budget)+int64(len(w.recent)))
		if err != nil {
			return err
		}
		msgs, room := tx.StmtContext(ctx, w.evictMsgs), tx.StmtContext(ctx, w.evictRoom)
		for _, id := range victims {
			if excess == 0 || budget <= 0 {
				break
			}
			if _, ok := w.recent[id]; ok {
				continue
			}
			n, err := execCount(ctx, msgs, id, budget)
			if err != nil {
				return err
			}
			deleted, budget = deleted+n, budget-n
			gone, err := execCount(ctx, room, id)
			if err != nil {
				return err
			}
			if gone == 0 {
				break // messages left: the next step goes on with the room
			}
			removed = append(removed, id)
			excess, budget = excess-1, budget-1
		}
		return nil
	})
	if err != nil {
		w.evictPaused = true
		w.logger.LogAttrs(context.Background(), slog.LevelWarn, "sqlite: removing the least recently active rooms failed; trying again after the next append",
			slog.Int64("rooms", w.rooms), slog.Int64("max_rooms", w.maxRooms), slog.Any("err", err))
		return
	}
	w.rooms = count - int64(len(removed))
	w.evicted.Add(int64(len(removed)))
	for _, id := range removed {
		delete(w.backlog, id)
	}
	if len(removed) == 0 && deleted == 0 {
		// Over the bound only by the rooms of the last batch (or by
		// nothing, after the count): they wait for the next one.
		w.evictPaused = true
	}
}

// oldestRooms returns the ids of the n rooms whose newest message is the
// oldest, oldest first.
func (w *writer) oldestRooms(ctx context.Context, tx *sql.Tx, n int64) ([]int64, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id FROM rooms ORDER BY last_time_us, id LIMIT ?1`, n)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	ids := make([]int64, 0, n)
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// execCount runs stmt and returns the number of rows it changed.
func execCount(ctx context.Context, stmt *sql.Stmt, args ...any) (int64, error) {
	res, err := stmt.ExecContext(ctx, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
