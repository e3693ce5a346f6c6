-- Deleting a message (Store.Delete). messages.deleted is 1 on a message
-- whose text was erased: its body is '' from then on (the text is removed,
-- not hidden; the writer's connection runs with secure_delete, so SQLite
-- zeroes the freed bytes). messages.deletes is set on a deletion record:
-- the seq of the message it erased (0 on every other message). A record is
-- a row of the room's history like any message, with the next seq, so
-- followers and cursors meet it in order. Existing messages are neither.
ALTER TABLE messages ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;

ALTER TABLE messages ADD COLUMN deletes INTEGER NOT NULL DEFAULT 0;
