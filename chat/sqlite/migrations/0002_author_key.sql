-- The author's public key beside the display name, so a person's own
-- messages can be told apart (empty for messages stored before).
ALTER TABLE messages ADD COLUMN author_key TEXT NOT NULL DEFAULT '';

-- Settings of the whole database, by name. 'secret' holds the random key
-- that signs identity cookies, created once by the first Store.Secret.
CREATE TABLE settings (
	key   TEXT PRIMARY KEY,
	value BLOB NOT NULL
) STRICT;
