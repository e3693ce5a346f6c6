package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/hxchat/hxchat/chat"
)

// Store.Delete on the writer. A deletion is a request of the writer's queue
// like an append, and part of the batch it is taken in: in the batch's
// transaction the writer looks the message up, erases its body and appends
// the deletion record with the room's next seq (the append's upsert: the
// room's last seq and activity move as for a message), and the batch's
// retention trim counts the record like a message. So a deletion is as
// durable as an append when it returns, its record's seq is in commit order
// with the batch's messages, and the watchers get it in that order. A
// refused deletion writes nothing and takes no seq; the rest of its batch
// commits as if it had not been there. Appends pay nothing for it: their
// statements are the ones they had.

func (w *writer) prepareDelete(ctx context.Context) (err error) {
	// The message ?2 of room ?1, if the room holds it within its
	// retention (rows below it may still wait for the trimmer).
	if w.lookup, err = w.db.PrepareContext(ctx, `
		SELECT r.id, m.author_key, m.deleted, m.deletes
		FROM rooms r JOIN messages m ON m.room_id = r.id
		WHERE r.name = ?1 AND m.seq = ?2 AND m.seq > r.last_seq - ?3`); err != nil {
		return err
	}
	// With secure_delete on the connection, the old body's bytes are
	// zeroed where the row shrinks, and its overflow pages, if any, are
	// zeroed as they are freed.
	if w.erase, err = w.db.PrepareContext(ctx, `
		UPDATE messages SET body = '', deleted = 1 WHERE room_id = ?1 AND seq = ?2`); err != nil {
		return err
	}
	w.insertRecord, err = w.db.PrepareContext(ctx, `
		INSERT INTO messages (room_id, seq, author, author_key, body, time_us, deletes) VALUES (?1, ?2, '', ?3, '', ?4, ?5)`)
	return err
}

// eraseMessage erases the message d asks for, in tx. It returns the reason a
// deletion is refused (chat.ErrNotFound, ErrNotAuthor, ErrAlreadyDeleted),
// having changed nothing, or the error that fails the transaction.
func (w *writer) eraseMessage(ctx context.Context, tx *sql.Tx, d *chat.Deletion) (refused, err error) {
	var (
		room             int64
		key              string
		deleted, deletes int64
	)
	err = tx.StmtContext(ctx, w.lookup).QueryRowContext(ctx, d.Room, d.Seq, w.retention).Scan(&room, &key, &deleted, &deletes)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return chat.ErrNotFound, nil
	case err != nil:
		return nil, err
	case deletes != 0:
		return chat.ErrNotFound, nil // a record is not a message
	case !d.Any && key != d.By:
		return chat.ErrNotAuthor, nil
	case deleted != 0:
		return chat.ErrAlreadyDeleted, nil
	}
	if _, err := tx.StmtContext(ctx, w.erase).ExecContext(ctx, room, d.Seq); err != nil {
		return nil, err
	}
	return nil, nil
}

// insertRec inserts the deletion record rec at seq of room, in tx.
func (w *writer) insertRec(ctx context.Context, tx *sql.Tx, room, seq int64, rec chat.Message) error {
	_, err := tx.StmtContext(ctx, w.insertRecord).ExecContext(ctx, room, seq, rec.AuthorKey, rec.Time.UnixMicro(), rec.Deletes)
	return err
}
