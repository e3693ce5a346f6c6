-- The time of each room's newest message, for the list of active rooms.
-- Every append moves it in the same transaction; rooms posted to before
-- take the time of their newest kept message.
ALTER TABLE rooms ADD COLUMN last_time_us INTEGER NOT NULL DEFAULT 0; -- Unix time in microseconds

UPDATE rooms SET last_time_us = coalesce((SELECT max(time_us) FROM messages WHERE room_id = rooms.id), 0);

CREATE INDEX rooms_by_last_time ON rooms (last_time_us);
