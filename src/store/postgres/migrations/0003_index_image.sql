-- arbiter store schema, version 3: the engine's index image (one row).
--
-- A server saves an image of its in-memory index (live tuples as interned symbols, at one
-- revision) when it stops; a server that starts, or a new one joining the database, loads
-- it and replays the change log since its revision instead of reading and decoding every
-- relationship. It is a cache: the engine checks it and may ignore it. Servers sharing
-- the database keep the newest image only.

CREATE TABLE arbiter_index_image (
    id smallint PRIMARY KEY CHECK (id = 1),
    revision bigint NOT NULL,
    image bytea NOT NULL
);
