-- Each room's own epoch, so a room removed to keep the number of rooms
-- bounded, and later posted to again (its seqs start at 1 once more), reads
-- as a new history instead of silently reusing old seqs. A room keeps its
-- epoch while its row exists; a room created from now on gets a fresh one
-- from the writer.
--
-- The rooms of an existing file take the file's epoch (the settings row
-- 'epoch' that 0004 made), so every cursor a browser holds stays valid
-- across the upgrade. The row is made first if it was deleted by hand, and
-- replaced if it was edited into what no cursor can carry (1 to 16
-- lower-case letters and digits, chat.ValidEpoch): the rooms of such a file
-- start a new history, which readers see. The row is kept after this: it
-- is where the old rooms' epoch came from.
ALTER TABLE rooms ADD COLUMN epoch TEXT NOT NULL DEFAULT '';

INSERT OR IGNORE INTO settings (key, value) VALUES ('epoch', CAST(lower(hex(randomblob(4))) AS BLOB));

UPDATE settings SET value = CAST(lower(hex(randomblob(4))) AS BLOB)
WHERE key = 'epoch' AND NOT (
	length(CAST(value AS TEXT)) BETWEEN 1 AND 16 AND CAST(value AS TEXT) NOT GLOB '*[^0-9a-z]*');

UPDATE rooms SET epoch = (SELECT CAST(value AS TEXT) FROM settings WHERE key = 'epoch');
