-- Rooms and their messages. rooms.last_seq is the newest seq handed out in
-- the room; it is updated in the same transaction as the insert, so seqs are
-- gap-free and never reused, even after trimming or a restart.
CREATE TABLE rooms (
	id       INTEGER PRIMARY KEY,
	name     TEXT    NOT NULL UNIQUE,
	last_seq INTEGER NOT NULL
) STRICT;

-- One row per retained message, clustered by (room_id, seq): a room's
-- history is one contiguous range of the primary key, so reads and
-- retention trims are index range scans.
CREATE TABLE messages (
	room_id INTEGER NOT NULL REFERENCES rooms (id),
	seq     INTEGER NOT NULL,
	author  TEXT    NOT NULL,
	body    TEXT    NOT NULL,
	time_us INTEGER NOT NULL, -- Unix time in microseconds
	PRIMARY KEY (room_id, seq)
) STRICT, WITHOUT ROWID;
