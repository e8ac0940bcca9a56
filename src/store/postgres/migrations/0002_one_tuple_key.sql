-- arbiter store schema, version 2: fewer indexes to maintain per inserted version.
--
-- Version 1 kept two B-trees over the six tuple columns: the primary key (tuple,
-- created_rev) and a partial unique index of live versions. Every inserted version paid
-- for both. The key (tuple, deleted_rev) does both jobs: a live version has deleted_rev =
-- 2^63 - 1, so at most one live version per tuple follows from uniqueness, and ended
-- versions of one tuple differ in the revision that ended them. Ordered reads by resource
-- use its tuple prefix as before; bulk import resolves live duplicates with
-- ON CONFLICT on it.

ALTER TABLE arbiter_relationship DROP CONSTRAINT arbiter_relationship_pkey;
DROP INDEX arbiter_relationship_live;
ALTER TABLE arbiter_relationship ADD PRIMARY KEY (resource_type, resource_id, relation,
    subject_type, subject_id, subject_relation, deleted_rev);

-- (A BRIN index on created_rev was tried in place of its B-tree: 10% cheaper inserts, but
-- a follower's read of one revision then scanned ~500 heap blocks, and the replica lag
-- went from ~4 ms to ~20 ms at p50. The B-tree stays.)
