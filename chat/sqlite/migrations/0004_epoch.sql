-- The epoch of this database's history: 8 random lower-case hex digits,
-- made once, when the file is created (or migrated to this version), and
-- never changed. Every message read or appended carries it, so a reader
-- holding a cursor from another file (a deleted and recreated database, a
-- restored copy of another one) knows its seqs mean nothing here. Kept as
-- the 'epoch' row of the settings table, beside 'secret'.
INSERT INTO settings (key, value) VALUES ('epoch', CAST(lower(hex(randomblob(4))) AS BLOB));
