package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"sync/atomic"

	"github.com/hxchat/hxchat/chat"
)

// appendReq is one Append waiting for the writer.
type appendReq struct {
	ctx  context.Context
	m    chat.Message
	done chan appendResult // buffered: the writer never waits for the caller
}

type appendResult struct {
	seq int64
	err error
}

// writer is the one goroutine that writes. It takes every queued append (up
// to maxBatch) and commits them in one transaction, so concurrent posters
// share one fsync; between batches it deletes messages that fell out of
// retention, a bounded number per transaction. After a commit it answers
// the batch's callers, then queues its messages for the watchers in commit
// order: seqs are assigned here, one batch at a time, so a room's messages
// reach its watchers in seq order without anyone sorting them.
type writer struct {
	db                   *sql.DB // one connection
	upsert, insert, trim *sql.Stmt
	retention            int64
	maxBatch, trimBatch  int
	beforeBatch          func() // test hook, nil outside tests
	epoch                string
	watchers             *chat.Watchers

	reqs chan *appendReq
	quit chan struct{} // closed by Close once no more requests can be queued
	done chan struct{} // closed when run returns

	// backlog holds the rooms that may still have messages older than
	// their retention, by room id, with the room's newest seq. Only run
	// touches it.
	backlog map[int64]int64

	appends, commits, failed, trimmed atomic.Int64
}

func newWriter(ctx context.Context, db *sql.DB, opts Options, epoch string, watchers *chat.Watchers) (_ *writer, err error) {
	w := &writer{
		db:          db,
		epoch:       epoch,
		watchers:    watchers,
		retention:   int64(opts.Retention),
		maxBatch:    opts.MaxBatch,
		trimBatch:   opts.TrimBatch,
		beforeBatch: opts.beforeBatch,
		reqs:        make(chan *appendReq, opts.MaxBatch),
		quit:        make(chan struct{}),
		done:        make(chan struct{}),
		backlog:     make(map[int64]int64),
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, w.close())
		}
	}()
	// The upsert creates the room on its first message and hands out the
	// next seq; it runs in the same transaction as the insert, so a seq
	// is used if and only if its message is stored.
	if w.upsert, err = db.PrepareContext(ctx, `
		INSERT INTO rooms (name, last_seq, last_time_us) VALUES (?1, 1, ?2)
		ON CONFLICT (name) DO UPDATE SET last_seq = last_seq + 1, last_time_us = max(last_time_us, excluded.last_time_us)
		RETURNING id, last_seq`); err != nil {
		return nil, err
	}
	if w.insert, err = db.PrepareContext(ctx, `
		INSERT INTO messages (room_id, seq, author, author_key, body, time_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6)`); err != nil {
		return nil, err
	}
	// Deletes at most ?3 of the room's oldest messages, none newer than
	// ?2. A room's stored seqs are contiguous (only the oldest are ever
	// deleted), so the range from its oldest seq holds at most ?3 rows.
	if w.trim, err = db.PrepareContext(ctx, `
		DELETE FROM messages
		WHERE room_id = ?1 AND seq <= min(?2, (SELECT min(seq) FROM messages WHERE room_id = ?1) + ?3 - 1)`); err != nil {
		return nil, err
	}
	// Rooms left over the limit by a previous run, or by a larger
	// Retention than this one.
	rows, err := db.QueryContext(ctx, `
		SELECT r.id, r.last_seq FROM rooms r
		WHERE EXISTS (SELECT 1 FROM messages m WHERE m.room_id = r.id AND m.seq <= r.last_seq - ?1)`, w.retention)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id, last int64
		if err := rows.Scan(&id, &last); err != nil {
			return nil, err
		}
		w.backlog[id] = last
	}
	return w, rows.Err()
}

// close releases the prepared statements.
func (w *writer) close() error {
	var errs []error
	for _, st := range []*sql.Stmt{w.upsert, w.insert, w.trim} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(errs...)
}

// run serves appends until quit is closed and the queue is empty. When no
// append is waiting and a backlog of old messages remains, it trims in
// small transactions, checking for appends between them.
func (w *writer) run() {
	defer close(w.done)
	batch := make([]*appendReq, 0, w.maxBatch)
	for {
		batch = batch[:0]
		if len(w.backlog) > 0 {
			select {
			case r := <-w.reqs:
				batch = append(batch, r)
			case <-w.quit:
				w.drain(batch)
				return
			default:
				w.trimIdle()
				continue
			}
		} else {
			select {
			case r := <-w.reqs:
				batch = append(batch, r)
			case <-w.quit:
				w.drain(batch)
				return
			}
		}
		w.commit(w.fill(batch))
	}
}

// drain commits every request still queued. Close calls it through quit
// once no Append can queue any more, so nothing queued is left unanswered.
func (w *writer) drain(batch []*appendReq) {
	for batch = w.fill(batch); len(batch) > 0; batch = w.fill(batch[:0]) {
		w.commit(batch)
	}
}

// fill adds queued requests to batch, without waiting, up to maxBatch.
func (w *writer) fill(batch []*appendReq) []*appendReq {
	for len(batch) < w.maxBatch {
		select {
		case r := <-w.reqs:
			batch = append(batch, r)
		default:
			return batch
		}
	}
	return batch
}

// commit writes batch in one transaction and answers every request in it:
// each its seq when the transaction committed, all of them its error when
// it did not. Committed messages then go to the watchers, in batch order;
// answering first means fan-out never delays an acknowledgement.
func (w *writer) commit(batch []*appendReq) {
	if w.beforeBatch != nil {
		w.beforeBatch()
	}
	// A caller that gave up before its transaction starts gets its ctx
	// error, and its message is not stored.
	live := batch[:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.done <- appendResult{err: err}
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	seqs, trims, err := w.write(live)
	if err != nil {
		w.failed.Add(int64(len(live)))
		for _, r := range live {
			r.done <- appendResult{err: err}
		}
		return
	}
	w.commits.Add(1)
	w.appends.Add(int64(len(live)))
	w.applyTrims(trims)
	for i, r := range live {
		r.done <- appendResult{seq: seqs[i]}
	}
	for i, r := range live {
		// Queued in commit order; the fan-out runs on a goroutine of
		// its own, so the next batch never waits for it. Unwatched rooms
		// (most, on a busy server) cost nothing.
		m := r.m
		m.Seq, m.Epoch = seqs[i], w.epoch
		w.watchers.Queue(m)
	}
}

// trimResult is what one trim statement did to a room.
type trimResult struct {
	room, last, deleted int64
	finished            bool // nothing beyond retention is left
}

// write runs the transaction of one batch: every message, then the
// retention trim of the rooms it touched and of one room of the backlog.
func (w *writer) write(batch []*appendReq) (seqs []int64, trims []trimResult, err error) {
	ctx := context.Background() // a batch is not one caller's to cancel
	tx, err := w.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, ignoreNoTx(tx.Rollback()))
		}
	}()
	upsert, insert := tx.StmtContext(ctx, w.upsert), tx.StmtContext(ctx, w.insert)
	seqs = make([]int64, len(batch))
	type touch struct{ last, appended int64 }
	touched := make(map[int64]touch, 1)
	for i, r := range batch {
		var room, seq int64
		if err := upsert.QueryRowContext(ctx, r.m.Room, r.m.Time.UnixMicro()).Scan(&room, &seq); err != nil {
			return nil, nil, err
		}
		if _, err := insert.ExecContext(ctx, room, seq, r.m.Author, r.m.AuthorKey, r.m.Text, r.m.Time.UnixMicro()); err != nil {
			return nil, nil, err
		}
		seqs[i] = seq
		touched[room] = touch{last: seq, appended: touched[room].appended + 1}
	}
	trim := tx.StmtContext(ctx, w.trim)
	for room, t := range touched {
		if t.last <= w.retention {
			continue
		}
		// The appends pushed out as many messages as they added; the
		// extra trimBatch works off any backlog.
		res, err := w.trimRoom(ctx, trim, room, t.last, t.appended+int64(w.trimBatch))
		if err != nil {
			return nil, nil, err
		}
		trims = append(trims, res)
	}
	for room, last := range w.backlog {
		if _, ok := touched[room]; ok {
			continue
		}
		res, err := w.trimRoom(ctx, trim, room, last, int64(w.trimBatch))
		if err != nil {
			return nil, nil, err
		}
		trims = append(trims, res)
		break
	}
	return seqs, trims, tx.Commit()
}

// trimRoom deletes up to limit messages of room that fell out of retention.
func (w *writer) trimRoom(ctx context.Context, trim *sql.Stmt, room, last, limit int64) (trimResult, error) {
	res, err := trim.ExecContext(ctx, room, last-w.retention, limit)
	if err != nil {
		return trimResult{}, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return trimResult{}, err
	}
	return trimResult{room: room, last: last, deleted: n, finished: n < limit}, nil
}

// applyTrims records committed trims in the backlog and the counters.
func (w *writer) applyTrims(trims []trimResult) {
	for _, t := range trims {
		w.trimmed.Add(t.deleted)
		if t.finished {
			delete(w.backlog, t.room)
		} else {
			w.backlog[t.room] = t.last
		}
	}
}

// trimIdle runs one small transaction of backlog trimming. A room whose trim
// fails leaves the backlog, so a failing disk does not keep the writer
// spinning; its next append puts it back.
func (w *writer) trimIdle() {
	for room, last := range w.backlog {
		ctx := context.Background()
		res, err := func() (res trimResult, err error) {
			tx, err := w.db.BeginTx(ctx, nil)
			if err != nil {
				return res, err
			}
			defer func() {
				if err != nil {
					err = errors.Join(err, ignoreNoTx(tx.Rollback()))
				}
			}()
			if res, err = w.trimRoom(ctx, tx.StmtContext(ctx, w.trim), room, last, int64(w.trimBatch)); err != nil {
				return res, err
			}
			return res, tx.Commit()
		}()
		if err != nil {
			delete(w.backlog, room)
			return
		}
		w.applyTrims([]trimResult{res})
		return
	}
}
