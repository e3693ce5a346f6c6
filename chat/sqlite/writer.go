package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/hxchat/hxchat/chat"
)

// appendReq is one Append, or one Delete, waiting for the writer.
type appendReq struct {
	ctx context.Context
	// m is the message to append; for a Delete, the deletion record.
	m chat.Message
	// del is the Delete's request, nil for an Append.
	del  *chat.Deletion
	done chan appendResult // buffered: the writer never waits for the caller
}

type appendResult struct {
	seq   int64
	epoch string
	err   error
}

// writer is the one goroutine that writes. It takes every queued append (up
// to maxBatch) and commits them in one transaction, so concurrent posters
// share one fsync. After a commit it answers the batch's callers, then
// queues its messages for the watchers in commit order: seqs are assigned
// here, one batch at a time, so a room's messages reach its watchers in seq
// order without anyone sorting them.
//
// Between batches it keeps the file within its bounds, one small
// transaction at a time: it removes the least recently active rooms beyond
// maxRooms (evict.go), deletes messages older than maxAge (expire.go) and
// messages that fell out of retention. While appends wait it does at most
// one such transaction between two batches; while none wait, as many as
// there is work for, checking for appends between them.
type writer struct {
	db                   *sql.DB // one connection
	upsert, insert, trim *sql.Stmt
	retention            int64
	maxBatch, trimBatch  int
	beforeBatch          func() // test hook, nil outside tests
	watchers             *chat.Watchers
	logger               *slog.Logger

	reqs chan *appendReq
	quit chan struct{} // closed by Close once no more requests can be queued
	done chan struct{} // closed when run returns

	// Store.Delete (delete.go): look the message up, erase it, insert
	// the record.
	lookup, erase, insertRecord *sql.Stmt

	// Only run touches what follows, but for the counters.

	// backlog holds the ids of the rooms that may still have messages
	// older than their retention.
	backlog map[int64]struct{}

	// The bound on rooms (evict.go).
	evictMsgs, evictRoom *sql.Stmt
	maxRooms             int64
	rooms                int64           // in the file, as far as this writer knows: counted at Open, then kept
	recent               map[int64]touch // the rooms of the batch committed last, which are never evicted
	evictPaused          bool            // until the next commit: eviction failed, or found nothing it may remove

	// The bound on age (expire.go).
	expire, probe *sql.Stmt
	maxAge        time.Duration
	sweepInterval time.Duration
	sweepTimer    *time.Timer // fires when the next sweep is due; nil without maxAge
	sweep         *sweep      // the sweep under way, nil between sweeps

	appends, commits, failed, trimmed, evicted, expired atomic.Int64
}

func newWriter(ctx context.Context, db *sql.DB, opts Options, watchers *chat.Watchers) (_ *writer, err error) {
	w := &writer{
		db:          db,
		watchers:    watchers,
		logger:      opts.Logger,
		retention:   int64(opts.Retention),
		maxBatch:    opts.MaxBatch,
		trimBatch:   opts.TrimBatch,
		beforeBatch: opts.beforeBatch,
		reqs:        make(chan *appendReq, opts.MaxBatch),
		quit:        make(chan struct{}),
		done:        make(chan struct{}),
		backlog:     make(map[int64]struct{}),
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, w.close())
		}
	}()
	// The upsert creates the room on its first message, with a new epoch,
	// and hands out the next seq; it runs in the same transaction as the
	// insert, so a seq is used if and only if its message is stored. A
	// room's row is created with seq 1 and only ever counts up, so seq 1
	// tells that the append created the room.
	if w.upsert, err = db.PrepareContext(ctx, `
		INSERT INTO rooms (name, last_seq, last_time_us, epoch) VALUES (?1, 1, ?2, ?3)
		ON CONFLICT (name) DO UPDATE SET last_seq = last_seq + 1, last_time_us = max(last_time_us, excluded.last_time_us)
		RETURNING id, last_seq, epoch`); err != nil {
		return nil, err
	}
	if w.insert, err = db.PrepareContext(ctx, `
		INSERT INTO messages (room_id, seq, author, author_key, body, time_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6)`); err != nil {
		return nil, err
	}
	// Deletes at most ?3 of the room's oldest messages, none newer than
	// ?2 below its newest seq. A room's stored seqs are contiguous (only
	// the oldest are ever deleted), so the range from its oldest seq
	// holds at most ?3 rows. The newest seq is read from the room's row,
	// not remembered: a room id freed by eviction may be given to a new
	// room.
	if w.trim, err = db.PrepareContext(ctx, `
		DELETE FROM messages
		WHERE room_id = ?1 AND seq <= min(
			(SELECT last_seq FROM rooms WHERE id = ?1) - ?2,
			(SELECT min(seq) FROM messages WHERE room_id = ?1) + ?3 - 1)`); err != nil {
		return nil, err
	}
	if err := w.prepareDelete(ctx); err != nil {
		return nil, err
	}
	if err := w.prepareEvict(ctx, opts); err != nil {
		return nil, err
	}
	if err := w.prepareExpiry(ctx, opts); err != nil {
		return nil, err
	}
	// Rooms left over the limit by a previous run, or by a larger
	// Retention than this one.
	rows, err := db.QueryContext(ctx, `
		SELECT r.id FROM rooms r
		WHERE EXISTS (SELECT 1 FROM messages m WHERE m.room_id = r.id AND m.seq <= r.last_seq - ?1)`, w.retention)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		w.backlog[id] = struct{}{}
	}
	return w, rows.Err()
}

// close releases the prepared statements.
func (w *writer) close() error {
	var errs []error
	for _, st := range []*sql.Stmt{w.upsert, w.insert, w.trim, w.lookup, w.erase, w.insertRecord, w.evictMsgs, w.evictRoom, w.expire, w.probe} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(errs...)
}

// run serves appends until quit is closed and the queue is empty. When no
// append is waiting and work of keeping the file within bounds remains, it
// does it in small transactions, checking for appends between them.
func (w *writer) run() {
	defer close(w.done)
	defer w.stopSweeps()
	batch := make([]*appendReq, 0, w.maxBatch)
	for {
		batch = batch[:0]
		if w.evictDue() || w.sweep != nil || len(w.backlog) > 0 {
			select {
			case r := <-w.reqs:
				batch = append(batch, r)
			case <-w.quit:
				w.drain(batch)
				return
			case <-w.sweepDue():
				w.startSweep()
				continue
			default:
				if !w.bound() {
					w.trimIdle()
				}
				continue
			}
		} else {
			select {
			case r := <-w.reqs:
				batch = append(batch, r)
			case <-w.quit:
				w.drain(batch)
				return
			case <-w.sweepDue():
				w.startSweep()
				continue
			}
		}
		w.commit(w.fill(batch))
		// More appends may be waiting: one small transaction at most
		// before their batch, so eviction and expiry progress under a
		// steady stream of posts too. (Retention needs no turn of its
		// own: each batch trims its rooms and one room of the backlog.)
		w.bound()
	}
}

// bound runs one transaction of eviction, or else of expiry, if either has
// work, and reports whether it did.
func (w *writer) bound() bool {
	switch {
	case w.evictDue():
		w.evictStep()
	case w.sweep != nil:
		w.sweepStep()
	default:
		return false
	}
	return true
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
// each its seq and its room's epoch when the transaction committed, all of
// them its error when it did not. Committed messages then go to the
// watchers, in batch order; answering first means fan-out never delays an
// acknowledgement.
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
	res, err := w.write(live)
	if err != nil {
		w.failed.Add(int64(len(live)))
		for _, r := range live {
			r.done <- appendResult{err: err}
		}
		return
	}
	w.commits.Add(1)
	w.appends.Add(int64(len(live) - len(res.refused)))
	w.applyTrims(res.trims)
	if len(res.touched) > 0 {
		// A batch of nothing but refused deletions changed nothing: the rooms
		// of the batch before stay spared.
		w.committed(res.touched, res.created)
	}
	for i, r := range live {
		if err := res.refused[i]; err != nil {
			r.done <- appendResult{err: err}
			continue
		}
		r.done <- appendResult{seq: res.seqs[i], epoch: res.epochs[i]}
	}
	for i, r := range live {
		if res.seqs[i] == 0 {
			continue // a refused deletion: nothing was appended
		}
		// Queued in commit order; the fan-out runs on a goroutine of
		// its own, so the next batch never waits for it. Unwatched rooms
		// (most, on a busy server) cost nothing.
		m := r.m
		m.Seq, m.Epoch = res.seqs[i], res.epochs[i]
		w.watchers.Queue(m)
	}
}

// trimResult is what one trim statement did to a room.
type trimResult struct {
	room, deleted int64
	finished      bool // nothing beyond retention is left
}

// touch is what a batch did to one room.
type touch struct{ last, appended int64 }

// batchResult is what the transaction of one batch did.
type batchResult struct {
	seqs    []int64 // 0 for a refused deletion
	epochs  []string
	refused map[int]error // by index in the batch: the deletions refused (nil without any)
	trims   []trimResult
	touched map[int64]touch // by room id
	created int64           // rooms
}

// write runs the transaction of one batch: every message, then the
// retention trim of the rooms it touched and of one room of the backlog.
func (w *writer) write(batch []*appendReq) (res batchResult, err error) {
	ctx := context.Background() // a batch is not one caller's to cancel
	tx, err := w.db.BeginTx(ctx, nil)
	if err != nil {
		return res, err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, ignoreNoTx(tx.Rollback()))
		}
	}()
	upsert, insert := tx.StmtContext(ctx, w.upsert), tx.StmtContext(ctx, w.insert)
	res.seqs = make([]int64, len(batch))
	res.epochs = make([]string, len(batch))
	res.touched = make(map[int64]touch, 1)
	for i, r := range batch {
		var room, seq int64
		var epoch string
		if r.del != nil {
			refused, err := w.eraseMessage(ctx, tx, r.del)
			if err != nil {
				return res, err
			}
			if refused != nil {
				if res.refused == nil {
					res.refused = make(map[int]error)
				}
				res.refused[i] = refused
				continue
			}
		}
		// The new epoch is used only if the room is new; making one is
		// cheaper than asking first.
		if err := upsert.QueryRowContext(ctx, r.m.Room, r.m.Time.UnixMicro(), chat.NewEpoch()).Scan(&room, &seq, &epoch); err != nil {
			return res, err
		}
		if r.del != nil {
			err = w.insertRec(ctx, tx, room, seq, r.m)
		} else {
			_, err = insert.ExecContext(ctx, room, seq, r.m.Author, r.m.AuthorKey, r.m.Text, r.m.Time.UnixMicro())
		}
		if err != nil {
			return res, err
		}
		if seq == 1 {
			res.created++
		}
		res.seqs[i], res.epochs[i] = seq, epoch
		res.touched[room] = touch{last: seq, appended: res.touched[room].appended + 1}
	}
	trim := tx.StmtContext(ctx, w.trim)
	for room, t := range res.touched {
		if t.last <= w.retention {
			continue
		}
		// The appends pushed out as many messages as they added; the
		// extra trimBatch works off any backlog.
		tr, err := w.trimRoom(ctx, trim, room, t.appended+int64(w.trimBatch))
		if err != nil {
			return res, err
		}
		res.trims = append(res.trims, tr)
	}
	for room := range w.backlog {
		if _, ok := res.touched[room]; ok {
			continue
		}
		tr, err := w.trimRoom(ctx, trim, room, int64(w.trimBatch))
		if err != nil {
			return res, err
		}
		res.trims = append(res.trims, tr)
		break
	}
	return res, tx.Commit()
}

// trimRoom deletes up to limit messages of room that fell out of retention.
func (w *writer) trimRoom(ctx context.Context, trim *sql.Stmt, room, limit int64) (trimResult, error) {
	res, err := trim.ExecContext(ctx, room, w.retention, limit)
	if err != nil {
		return trimResult{}, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return trimResult{}, err
	}
	return trimResult{room: room, deleted: n, finished: n < limit}, nil
}

// applyTrims records committed trims in the backlog and the counters.
func (w *writer) applyTrims(trims []trimResult) {
	for _, t := range trims {
		w.trimmed.Add(t.deleted)
		if t.finished {
			delete(w.backlog, t.room)
		} else {
			w.backlog[t.room] = struct{}{}
		}
	}
}

// trimIdle runs one small transaction of backlog trimming. A room whose trim
// fails leaves the backlog, so a failing disk does not keep the writer
// spinning; its next append puts it back.
func (w *writer) trimIdle() {
	for room := range w.backlog {
		var res trimResult
		err := w.inTx(func(ctx context.Context, tx *sql.Tx) (err error) {
			res, err = w.trimRoom(ctx, tx.StmtContext(ctx, w.trim), room, int64(w.trimBatch))
			return err
		})
		if err != nil {
			delete(w.backlog, room)
			return
		}
		w.applyTrims([]trimResult{res})
		return
	}
}

// inTx runs fn in a transaction of the writer's and commits it, or rolls it
// back when fn fails.
func (w *writer) inTx(fn func(context.Context, *sql.Tx) error) (err error) {
	ctx := context.Background() // the writer's own work: nobody cancels it
	tx, err := w.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, ignoreNoTx(tx.Rollback()))
		}
	}()
	if err := fn(ctx, tx); err != nil {
		return err
	}
	return tx.Commit()
}
