-- arbiter store schema, version 1. Released migrations are never edited: add a new file.
--
-- Text columns use the "C" collation so that ORDER BY is byte order, the order every
-- backend reads in (see docs/STORAGE.md). A relationship version lives from created_rev
-- (inclusive) to deleted_rev (exclusive); a live version has deleted_rev = 2^63 - 1.

CREATE TABLE arbiter_revision (
    id SMALLINT PRIMARY KEY CHECK (id = 1),
    head BIGINT NOT NULL,
    oldest BIGINT NOT NULL
);
INSERT INTO arbiter_revision (id, head, oldest) VALUES (1, 0, 0);

CREATE TABLE arbiter_relationship (
    resource_type TEXT COLLATE "C" NOT NULL,
    resource_id TEXT COLLATE "C" NOT NULL,
    relation TEXT COLLATE "C" NOT NULL,
    subject_type TEXT COLLATE "C" NOT NULL,
    subject_id TEXT COLLATE "C" NOT NULL,
    subject_relation TEXT COLLATE "C" NOT NULL,
    caveat_name TEXT,
    caveat_context JSONB,
    expiration_seconds BIGINT,
    expiration_nanos INTEGER,
    created_rev BIGINT NOT NULL,
    deleted_rev BIGINT NOT NULL DEFAULT 9223372036854775807,
    PRIMARY KEY (resource_type, resource_id, relation, subject_type, subject_id,
                 subject_relation, created_rev)
);

-- At most one live version per tuple.
CREATE UNIQUE INDEX arbiter_relationship_live
    ON arbiter_relationship (resource_type, resource_id, relation, subject_type, subject_id,
                             subject_relation)
    WHERE deleted_rev = 9223372036854775807;

-- Reverse reads (by subject).
CREATE INDEX arbiter_relationship_by_subject
    ON arbiter_relationship (subject_type, subject_id, subject_relation, resource_type,
                             relation, resource_id);

-- The change log is derived from the versions: what revision R created or deleted.
CREATE INDEX arbiter_relationship_created ON arbiter_relationship (created_rev);
CREATE INDEX arbiter_relationship_deleted ON arbiter_relationship (deleted_rev)
    WHERE deleted_rev <> 9223372036854775807;

CREATE TABLE arbiter_schema (
    id SMALLINT PRIMARY KEY CHECK (id = 1),
    schema_text TEXT NOT NULL,
    revision BIGINT NOT NULL
);
