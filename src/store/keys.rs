//! The byte layout of every key and value the sled store writes. Nothing else in the crate
//! encodes or decodes store bytes.
//!
//! # Format version 2
//!
//! Integers are big-endian so that byte order equals numeric order. A *name* (type,
//! relation, id, caveat name) is its UTF-8 bytes followed by one `0x00` terminator; valid
//! names never contain `0x00` (see `model`), so a terminated name is an exact prefix for
//! scans: `doc\0` never matches `document\0`. "No subject relation" is the empty name (a
//! lone `0x00`), so it sorts before every named relation.
//!
//! Trees of one sled database:
//!
//! | tree | key | value |
//! |---|---|---|
//! | `meta` | `format` | u32 format version (2; format 3 below changes only the index trees) |
//! | `meta` | `head` | u64: the newest committed revision |
//! | `meta` | `oldest` | u64: the oldest readable revision (GC horizon) |
//! | `meta` | `schema` | the schema text, UTF-8 |
//! | `meta` | `schema_revision` | u64: the revision that wrote the schema |
//! | `meta` | `pending` | u64 revision, then a [filter](encode_filter): a delete by filter that has started but not finished |
//! | `meta` | `expires_from` | i64 (two's complement, big-endian): no live version expires before this second since the Unix epoch (`i64::MAX`: none expires; absent: `i64::MIN`); the expired sweep at `T` walks only when it is at most `T` |
//! | `meta` | `marks_head` | u64: the head the two marks above and below were kept up to, written in every commit that writes `head`; another value (a binary without the marks wrote since) or none makes both marks due |
//! | `meta` | `ended_since` | u64: every ended version not yet collected was ended at this revision or later (`u64::MAX`: none; absent: 0); version GC at horizon `H` walks only when it is at most `H` |
//! | `by_resource` | resource type, resource id, relation, subject type, subject id, subject relation (six names), then u64 created-at revision | a [version value](encode_version_value) |
//! | `by_subject` | subject type, subject id, subject relation, resource type, relation, resource id (six names), then u64 created-at revision | the same version value as in `by_resource` |
//! | `changes` | u64 revision, then u32 part number | a sequence of [changes](encode_changes) |
//! | `revisions` | u64 revision | u64 commit time, milliseconds since the Unix epoch |
//! | `index_image` | `image` | the engine's index image: live tuples as symbols at one revision, a cache the engine checks and may ignore (`engine::index::image`) |
//!
//! A **version value** is, byte by byte:
//!
//! | bytes | meaning |
//! |---|---|
//! | 8 | u64 deleted-at revision, `u64::MAX` while live |
//! | 0 or more | the *conditions* of the version (below); none for an unconditional tuple |
//!
//! The **conditions** are zero or more tagged fields, in this order, each at most once:
//!
//! | bytes | meaning |
//! |---|---|
//! | 1 | `0x01`: a caveat follows |
//! | n + 1 | the caveat name, terminated by `0x00` |
//! | 4 | u32 length of the context |
//! | that many | the context as compact JSON, an object (`{}` when empty) |
//! | 1 | `0x02`: an expiration follows |
//! | 8 | i64 seconds since the Unix epoch (two's complement) |
//! | 4 | u32 nanoseconds, below 10⁹ |
//!
//! The caveat and expiration live in the value of *both* indexes, so that a read served
//! by either index returns them without a second lookup; deleting a version rewrites both
//! values with the same conditions. They are not part of the key: the tuple (the six
//! names) is a relationship's identity, and writing the same tuple with other conditions
//! deletes the live version and creates a new one at the same revision.
//!
//! A **change** in the change log is, byte by byte: one op byte (`0x01` touch, `0x02`
//! delete, `0x81` touch with conditions, `0x82` delete with conditions), a u32 length and
//! that many bytes of the six names in `by_resource` order, then, for `0x81`/`0x82` only,
//! a u32 length and that many bytes of conditions. A replacement is logged as the delete
//! of the old version followed by the touch of the new one, in one change set.
//!
//! Every stored tuple *version* has one key in each index; deleting it rewrites both
//! values, re-creating it later adds a new version with a new created-at revision.
//!
//! # Format version 3: blocks
//!
//! Format 3 keeps every byte of format 2 except where the version entries live: the two
//! index trees are replaced by `resource_blocks` and `subject_blocks`, which hold
//! **blocks** of consecutive version entries of one index (the `by_resource` and
//! `by_subject` key and value of format 2, unchanged). A block's sled key is the version
//! key of its first entry; the block holding a version key `K` is the one with the
//! greatest block key at most `K` (`store::sled::blocks` keeps that true). A block value is
//! its entries in key order, each front-coded against the previous key (the first against
//! the block key itself, so it repeats nothing):
//!
//! | bytes | meaning |
//! |---|---|
//! | varint | how many leading bytes the key shares with the previous key |
//! | varint | the length of the rest of the key |
//! | that many | the rest of the key |
//! | varint | the length of the value |
//! | that many | the version value |
//!
//! A varint is LEB128: seven bits per byte, low bits first, the high bit set on every
//! byte but the last, at most 10 bytes.
//!
//! # Older formats
//!
//! Format 2 only adds to format 1: a version-1 value is a version value without
//! conditions, and a version-1 change uses only the op bytes `0x01`/`0x02`. Format 3 only
//! moves format 2's version entries into blocks. So a version-1 or version-2 database is
//! migrated at open (see [`MIGRATABLE_FORMAT_VERSIONS`]) by one sequential pass that packs
//! `by_resource` and `by_subject` into blocks, then switches `meta/format` to 3; a crash
//! before the switch leaves the old format whole. A binary that reads only version 1 or 2
//! refuses a migrated database. Any other version is refused with a message naming it.

use crate::model::{ObjectRef, Relationship, RelationshipCaveat, Revision, SubjectRef, Timestamp};
use crate::store::{ChangeOp, RelationshipFilter};

/// The format version this code reads and writes.
pub const FORMAT_VERSION: u32 = 3;

/// Older format versions this code migrates at open (by packing their index trees into
/// blocks, see the module docs).
pub const MIGRATABLE_FORMAT_VERSIONS: &[u32] = &[1, 2];

/// Tag of a caveat in the conditions of a version.
const TAG_CAVEAT: u8 = 0x01;
/// Tag of an expiration in the conditions of a version.
const TAG_EXPIRATION: u8 = 0x02;
/// Set on a change's op byte when conditions follow the tuple.
const OP_WITH_CONDITIONS: u8 = 0x80;

/// Names of the sled trees.
pub const TREE_META: &str = "meta";
/// The format-1/2 index trees, one key per version (read only by the migration).
pub const TREE_BY_RESOURCE: &str = "by_resource";
pub const TREE_BY_SUBJECT: &str = "by_subject";
/// The format-3 index trees: blocks of `by_resource` and `by_subject` entries.
pub const TREE_RESOURCE_BLOCKS: &str = "resource_blocks";
pub const TREE_SUBJECT_BLOCKS: &str = "subject_blocks";
pub const TREE_CHANGES: &str = "changes";
pub const TREE_REVISIONS: &str = "revisions";
/// The engine's index image (one value, a cache: see `engine::index::image`).
pub const TREE_INDEX_IMAGE: &str = "index_image";
/// The one key of [`TREE_INDEX_IMAGE`].
pub const INDEX_IMAGE: &[u8] = b"image";

/// Keys of the `meta` tree.
pub const META_FORMAT: &[u8] = b"format";
pub const META_HEAD: &[u8] = b"head";
pub const META_OLDEST: &[u8] = b"oldest";
pub const META_SCHEMA: &[u8] = b"schema";
pub const META_SCHEMA_REVISION: &[u8] = b"schema_revision";
pub const META_PENDING: &[u8] = b"pending";
/// No live version expires before this second (i64; absent counts as `i64::MIN`).
pub const META_EXPIRES_FROM: &[u8] = b"expires_from";
/// The head the marks were kept up to (u64, written with every head by this code): a
/// head that differs means another binary wrote since, and both marks are due.
pub const META_MARKS_HEAD: &[u8] = b"marks_head";
/// The oldest revision at which a version not yet collected may have been ended (u64;
/// `u64::MAX`: none; absent counts as 0).
pub const META_ENDED_SINCE: &[u8] = b"ended_since";

/// The deleted-at value of a live version.
pub const LIVE: u64 = u64::MAX;

/// Length of the trailing created-at revision of an index key.
const REVISION_LEN: usize = 8;

/// Bytes that cannot be decoded: the database is corrupt or of another format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("undecodable {what}")]
pub struct DecodeError {
    pub what: &'static str,
}

impl From<DecodeError> for crate::store::StoreError {
    fn from(err: DecodeError) -> Self {
        Self::Corrupt(err.to_string())
    }
}

/// Which of the two index trees a key belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Index {
    /// `by_resource`: resource type, id, relation → subjects.
    Resource,
    /// `by_subject`: subject type, id, relation → resources.
    Subject,
}

/// A u64 as 8 big-endian bytes.
pub fn encode_u64(value: u64) -> [u8; 8] {
    value.to_be_bytes()
}

/// Reads a u64 value.
pub fn decode_u64(bytes: &[u8]) -> Result<u64, DecodeError> {
    let array: [u8; 8] = bytes
        .try_into()
        .map_err(|_| DecodeError { what: "u64 value" })?;
    Ok(u64::from_be_bytes(array))
}

/// A u32 as 4 big-endian bytes.
pub fn encode_u32(value: u32) -> [u8; 4] {
    value.to_be_bytes()
}

/// Reads a u32 value.
pub fn decode_u32(bytes: &[u8]) -> Result<u32, DecodeError> {
    let array: [u8; 4] = bytes
        .try_into()
        .map_err(|_| DecodeError { what: "u32 value" })?;
    Ok(u32::from_be_bytes(array))
}

fn push_name(buf: &mut Vec<u8>, name: &str) {
    buf.extend_from_slice(name.as_bytes());
    buf.push(0);
}

fn subject_relation(subject: &SubjectRef) -> &str {
    subject.relation.as_deref().unwrap_or("")
}

/// The six names of a tuple in `by_resource` order, without a revision: the exact prefix
/// of every version of this tuple.
pub fn tuple_prefix(index: Index, rel: &Relationship) -> Vec<u8> {
    let mut buf = Vec::with_capacity(64);
    push_tuple(&mut buf, index, rel);
    buf
}

/// Appends [`tuple_prefix`] to `buf`.
pub fn push_tuple(buf: &mut Vec<u8>, index: Index, rel: &Relationship) {
    let names: [&str; 6] = match index {
        Index::Resource => [
            &rel.resource.object_type,
            &rel.resource.object_id,
            &rel.relation,
            &rel.subject.object.object_type,
            &rel.subject.object.object_id,
            subject_relation(&rel.subject),
        ],
        Index::Subject => [
            &rel.subject.object.object_type,
            &rel.subject.object.object_id,
            subject_relation(&rel.subject),
            &rel.resource.object_type,
            &rel.relation,
            &rel.resource.object_id,
        ],
    };
    for name in names {
        push_name(buf, name);
    }
}

/// The index key of the version of `rel` created at `created`.
pub fn version_key(index: Index, rel: &Relationship, created: Revision) -> Vec<u8> {
    let mut buf = tuple_prefix(index, rel);
    buf.extend_from_slice(&encode_u64(created.0));
    buf
}

/// The created-at revision of an index key (its names are not decoded).
pub fn decode_created(key: &[u8]) -> Result<Revision, DecodeError> {
    let split = key
        .len()
        .checked_sub(REVISION_LEN)
        .ok_or(DecodeError { what: "index key" })?;
    Ok(Revision(decode_u64(&key[split..])?))
}

/// Splits an index key into its relationship and created-at revision.
pub fn decode_version_key(
    index: Index,
    key: &[u8],
) -> Result<(Relationship, Revision), DecodeError> {
    let split = key
        .len()
        .checked_sub(REVISION_LEN)
        .ok_or(DecodeError { what: "index key" })?;
    let (names, created) = key.split_at(split);
    let rel = decode_tuple(index, names)?;
    Ok((rel, Revision(decode_u64(created)?)))
}

/// Decodes six terminated names (as written by [`tuple_prefix`]).
pub fn decode_tuple(index: Index, bytes: &[u8]) -> Result<Relationship, DecodeError> {
    let err = DecodeError { what: "tuple" };
    let body = bytes.strip_suffix(&[0]).ok_or(err.clone())?;
    let mut parts = body.split(|b| *b == 0);
    let mut next = || -> Result<String, DecodeError> {
        let part = parts.next().ok_or(err.clone())?;
        String::from_utf8(part.to_vec()).map_err(|_| err.clone())
    };
    let names: [String; 6] = [next()?, next()?, next()?, next()?, next()?, next()?];
    if parts.next().is_some() {
        return Err(err);
    }
    let [a, b, c, d, e, f] = names;
    let (rt, rid, rel, st, sid, srel) = match index {
        Index::Resource => (a, b, c, d, e, f),
        Index::Subject => (d, f, e, a, b, c),
    };
    Ok(Relationship {
        resource: ObjectRef {
            object_type: rt,
            object_id: rid,
        },
        relation: rel,
        subject: SubjectRef {
            object: ObjectRef {
                object_type: st,
                object_id: sid,
            },
            relation: (!srel.is_empty()).then_some(srel),
        },
        caveat: None,
        expiration: None,
    })
}

/// The value of a version of `rel` in either index: its deleted-at revision, then the
/// caveat and expiration of `rel`.
pub fn encode_version_value(deleted: u64, rel: &Relationship) -> Vec<u8> {
    let mut buf = Vec::with_capacity(8);
    push_version_value(&mut buf, deleted, rel);
    buf
}

/// Appends [`encode_version_value`] to `buf`.
pub fn push_version_value(buf: &mut Vec<u8>, deleted: u64, rel: &Relationship) {
    buf.extend_from_slice(&encode_u64(deleted));
    encode_conditions(buf, rel);
}

/// The deleted-at revision of a version value (the conditions are not decoded).
pub fn decode_deleted(value: &[u8]) -> Result<u64, DecodeError> {
    let head = value.get(..8).ok_or(DecodeError {
        what: "version value",
    })?;
    decode_u64(head)
}

/// Decodes a version value: returns the deleted-at revision and sets the caveat and
/// expiration of `rel` (decoded from the key) from the conditions.
pub fn decode_version_value(value: &[u8], rel: &mut Relationship) -> Result<u64, DecodeError> {
    let deleted = decode_deleted(value)?;
    decode_conditions(&value[8..], rel)?;
    Ok(deleted)
}

/// Appends the conditions of `rel` (nothing for an unconditional relationship).
fn encode_conditions(buf: &mut Vec<u8>, rel: &Relationship) {
    if let Some(caveat) = &rel.caveat {
        buf.push(TAG_CAVEAT);
        push_name(buf, &caveat.name);
        let context = caveat.context_json();
        // INVARIANT: `check_relationship` bounds a context to a few kilobytes.
        buf.extend_from_slice(&encode_u32(context.len() as u32));
        buf.extend_from_slice(context.as_bytes());
    }
    if let Some(expiration) = rel.expiration {
        buf.push(TAG_EXPIRATION);
        buf.extend_from_slice(&expiration.unix_seconds().to_be_bytes());
        buf.extend_from_slice(&encode_u32(expiration.subsec_nanos()));
    }
}

/// Reads conditions written by [`encode_conditions`] into `rel`.
fn decode_conditions(mut bytes: &[u8], rel: &mut Relationship) -> Result<(), DecodeError> {
    let err = DecodeError { what: "conditions" };
    let take = |bytes: &mut &[u8], n: usize| -> Result<Vec<u8>, DecodeError> {
        if bytes.len() < n {
            return Err(err.clone());
        }
        let (head, rest) = bytes.split_at(n);
        *bytes = rest;
        Ok(head.to_vec())
    };
    rel.caveat = None;
    rel.expiration = None;
    if bytes.first() == Some(&TAG_CAVEAT) {
        bytes = &bytes[1..];
        let end = bytes.iter().position(|b| *b == 0).ok_or(err.clone())?;
        let name = String::from_utf8(take(&mut bytes, end)?).map_err(|_| err.clone())?;
        take(&mut bytes, 1)?;
        let len = decode_u32(&take(&mut bytes, 4)?)? as usize;
        let context = take(&mut bytes, len)?;
        let context = serde_json::from_slice(&context).map_err(|_| err.clone())?;
        rel.caveat = Some(RelationshipCaveat { name, context });
    }
    if bytes.first() == Some(&TAG_EXPIRATION) {
        bytes = &bytes[1..];
        let seconds = decode_u64(&take(&mut bytes, 8)?)?;
        let nanos = decode_u32(&take(&mut bytes, 4)?)?;
        let seconds = i64::from_be_bytes(seconds.to_be_bytes());
        rel.expiration = Some(Timestamp::from_unix(seconds, nanos).map_err(|_| err.clone())?);
    }
    if bytes.is_empty() { Ok(()) } else { Err(err) }
}

/// The longest key prefix shared by every tuple that `filter` matches in `index`: the
/// leading filter fields in that index's order, each terminated.
pub fn filter_prefix(index: Index, filter: &RelationshipFilter) -> Vec<u8> {
    let subject_relation = filter.subject_relation.as_deref().map(|rel| {
        if rel == crate::model::ELLIPSIS {
            ""
        } else {
            rel
        }
    });
    let fields: [Option<&str>; 6] = match index {
        Index::Resource => [
            filter.resource_type.as_deref(),
            filter.resource_id.as_deref(),
            filter.relation.as_deref(),
            filter.subject_type.as_deref(),
            filter.subject_id.as_deref(),
            subject_relation,
        ],
        Index::Subject => [
            filter.subject_type.as_deref(),
            filter.subject_id.as_deref(),
            subject_relation,
            filter.resource_type.as_deref(),
            filter.relation.as_deref(),
            filter.resource_id.as_deref(),
        ],
    };
    let mut buf = Vec::new();
    for field in fields {
        match field {
            Some(name) => push_name(&mut buf, name),
            None => break,
        }
    }
    buf
}

/// The index whose key order serves `filter` best, with the prefix to scan: the longer
/// prefix wins, the resource index on a tie. Reads return relationships in this index's
/// key order.
pub fn index_for(filter: &RelationshipFilter) -> (Index, Vec<u8>) {
    // The order is the model's (`RelationshipFilter::read_order`); the key layout follows.
    let index = match filter.read_order() {
        crate::model::ReadOrder::ByResource => Index::Resource,
        crate::model::ReadOrder::BySubject => Index::Subject,
    };
    (index, filter_prefix(index, filter))
}

/// The key of part `part` of the change log of `revision`.
pub fn change_key(revision: Revision, part: u32) -> [u8; 12] {
    let mut key = [0; 12];
    key[..8].copy_from_slice(&encode_u64(revision.0));
    key[8..].copy_from_slice(&encode_u32(part));
    key
}

/// Splits a change-log key into revision and part.
pub fn decode_change_key(key: &[u8]) -> Result<(Revision, u32), DecodeError> {
    if key.len() != 12 {
        return Err(DecodeError { what: "change key" });
    }
    let (revision, part) = key.split_at(8);
    Ok((Revision(decode_u64(revision)?), decode_u32(part)?))
}

/// Encodes a list of changes as one change-log value.
pub fn encode_changes<'a>(
    changes: impl IntoIterator<Item = (ChangeOp, &'a Relationship)>,
) -> Vec<u8> {
    let mut buf = Vec::new();
    for (op, rel) in changes {
        let op = match op {
            ChangeOp::Touch => 1,
            ChangeOp::Delete => 2,
        };
        let conditional = rel.is_conditional();
        buf.push(if conditional {
            op | OP_WITH_CONDITIONS
        } else {
            op
        });
        let at = buf.len();
        buf.extend_from_slice(&[0; 4]);
        push_tuple(&mut buf, Index::Resource, rel);
        // INVARIANT: a tuple is six names of at most a few kilobytes, far below u32::MAX.
        let len = encode_u32((buf.len() - at - 4) as u32);
        buf[at..at + 4].copy_from_slice(&len);
        if conditional {
            let mut conditions = Vec::new();
            encode_conditions(&mut conditions, rel);
            // INVARIANT: conditions are a bounded context plus a few bytes.
            buf.extend_from_slice(&encode_u32(conditions.len() as u32));
            buf.extend_from_slice(&conditions);
        }
    }
    buf
}

/// Decodes one change-log value.
pub fn decode_changes(mut bytes: &[u8]) -> Result<Vec<(ChangeOp, Relationship)>, DecodeError> {
    let err = DecodeError { what: "change" };
    let mut res = Vec::new();
    while let Some((&op, rest)) = bytes.split_first() {
        let conditional = op & OP_WITH_CONDITIONS != 0;
        let op = match op & !OP_WITH_CONDITIONS {
            1 => ChangeOp::Touch,
            2 => ChangeOp::Delete,
            _ => return Err(err),
        };
        let (tuple, rest) = split_length_prefixed(rest).ok_or(err.clone())?;
        let mut rel = decode_tuple(Index::Resource, tuple)?;
        bytes = rest;
        if conditional {
            let (conditions, rest) = split_length_prefixed(bytes).ok_or(err.clone())?;
            decode_conditions(conditions, &mut rel)?;
            if !rel.is_conditional() {
                return Err(err);
            }
            bytes = rest;
        }
        res.push((op, rel));
    }
    Ok(res)
}

/// Splits a u32 length and that many bytes off the front of `bytes`.
fn split_length_prefixed(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = bytes.split_at_checked(4)?;
    let len = decode_u32(len).ok()? as usize;
    rest.split_at_checked(len)
}

/// Encodes a filter: for each of the six fields in `by_resource` order, `0` for absent
/// or `1` followed by the terminated name.
pub fn encode_filter(filter: &RelationshipFilter) -> Vec<u8> {
    let mut buf = Vec::new();
    for field in filter_fields(filter) {
        match field {
            None => buf.push(0),
            Some(name) => {
                buf.push(1);
                push_name(&mut buf, name);
            }
        }
    }
    buf
}

/// Decodes a filter written by [`encode_filter`].
pub fn decode_filter(mut bytes: &[u8]) -> Result<RelationshipFilter, DecodeError> {
    let err = DecodeError { what: "filter" };
    let mut fields: [Option<String>; 6] = Default::default();
    for field in &mut fields {
        let (&tag, rest) = bytes.split_first().ok_or(err.clone())?;
        bytes = rest;
        if tag == 1 {
            let end = bytes.iter().position(|b| *b == 0).ok_or(err.clone())?;
            let name = String::from_utf8(bytes[..end].to_vec()).map_err(|_| err.clone())?;
            *field = Some(name);
            bytes = &bytes[end + 1..];
        } else if tag != 0 {
            return Err(err);
        }
    }
    if !bytes.is_empty() {
        return Err(err);
    }
    let [rt, rid, rel, st, sid, srel] = fields;
    Ok(RelationshipFilter {
        resource_type: rt,
        resource_id: rid,
        relation: rel,
        subject_type: st,
        subject_id: sid,
        subject_relation: srel,
    })
}

fn filter_fields(filter: &RelationshipFilter) -> [Option<&str>; 6] {
    [
        filter.resource_type.as_deref(),
        filter.resource_id.as_deref(),
        filter.relation.as_deref(),
        filter.subject_type.as_deref(),
        filter.subject_id.as_deref(),
        filter.subject_relation.as_deref(),
    ]
}

/// One entry of a block, owned: a version key and its value.
pub type Entry = (Vec<u8>, Vec<u8>);

/// What [`walk_block`] calls with each entry (key, value); false stops the walk.
pub type EntryFn<'a, E> = dyn FnMut(&[u8], &[u8]) -> Result<bool, E> + 'a;

/// Appends `value` as a LEB128 varint.
fn push_varint(buf: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        buf.push((value as u8) | 0x80);
        value >>= 7;
    }
    buf.push(value as u8);
}

/// Reads a LEB128 varint off the front of `bytes`.
fn take_varint(bytes: &mut &[u8]) -> Result<usize, DecodeError> {
    let err = DecodeError { what: "block" };
    let mut value: u64 = 0;
    for shift in (0..70).step_by(7) {
        let (&byte, rest) = bytes.split_first().ok_or(err.clone())?;
        *bytes = rest;
        if shift == 63 && byte > 1 {
            return Err(err);
        }
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return usize::try_from(value).map_err(|_| err);
        }
    }
    Err(err)
}

/// Takes `n` bytes off the front of `bytes`.
fn take_bytes<'a>(bytes: &mut &'a [u8], n: usize) -> Result<&'a [u8], DecodeError> {
    let (head, rest) = bytes
        .split_at_checked(n)
        .ok_or(DecodeError { what: "block" })?;
    *bytes = rest;
    Ok(head)
}

/// The value of a block holding `entries` (version key, version value), which must be
/// in strictly increasing key order; its sled key is the first entry's key.
pub fn encode_block<K: AsRef<[u8]>, V: AsRef<[u8]>>(entries: &[(K, V)]) -> Vec<u8> {
    let mut encoder = BlockEncoder::default();
    for (key, value) in entries {
        encoder.push(key.as_ref(), value.as_ref());
    }
    encoder.finish().1
}

/// Front-codes entries one at a time into a block value (what [`encode_block`] writes),
/// for writers that produce entries as a stream; also the format of an import's sorted
/// runs (`store::sled::import`), read back by [`EntryCursor`].
#[derive(Default)]
pub struct BlockEncoder {
    /// The block value so far.
    buf: Vec<u8>,
    /// The first key (the block key), once an entry was pushed.
    first: Vec<u8>,
    /// The key pushed last.
    previous: Vec<u8>,
    /// Entries pushed since the last [`finish`](Self::finish).
    len: usize,
}

impl BlockEncoder {
    /// Appends one entry; keys must strictly increase.
    pub fn push(&mut self, key: &[u8], value: &[u8]) {
        if self.len == 0 {
            self.first.clear();
            self.first.extend_from_slice(key);
            self.previous.clear();
            self.previous.extend_from_slice(key);
        }
        let shared = shared_prefix(&self.previous, key);
        push_varint(&mut self.buf, shared as u64);
        push_varint(&mut self.buf, (key.len() - shared) as u64);
        self.buf.extend_from_slice(&key[shared..]);
        push_varint(&mut self.buf, value.len() as u64);
        self.buf.extend_from_slice(value);
        self.previous.truncate(shared);
        self.previous.extend_from_slice(&key[shared..]);
        self.len += 1;
    }

    /// Entries pushed since the last [`finish`](Self::finish).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was pushed since the last [`finish`](Self::finish).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The block key (the first key) and the block value; starts a new block.
    pub fn finish(&mut self) -> (Vec<u8>, Vec<u8>) {
        self.len = 0;
        let capacity = self.buf.capacity();
        let value = std::mem::replace(&mut self.buf, Vec::with_capacity(capacity));
        (std::mem::take(&mut self.first), value)
    }
}

/// How many leading bytes `a` and `b` share (eight at a time).
fn shared_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let mut at = 0;
    while let (Some(x), Some(y)) = (a.get(at..at + 8), b.get(at..at + 8)) {
        let (Ok(x), Ok(y)) = (<[u8; 8]>::try_from(x), <[u8; 8]>::try_from(y)) else {
            break;
        };
        let diff = u64::from_le_bytes(x) ^ u64::from_le_bytes(y);
        if diff != 0 {
            return at + (diff.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    while at < n && a[at] == b[at] {
        at += 1;
    }
    at
}

/// Reads the entries of a block value one at a time (the pull form of [`walk_block`],
/// without its order checks: for bytes this process wrote itself, such as an import's
/// sorted runs).
pub struct EntryCursor<'a> {
    rest: &'a [u8],
    key: Vec<u8>,
    value: &'a [u8],
}

impl<'a> EntryCursor<'a> {
    /// A cursor before the first entry of the block `value` stored under `block_key`.
    pub fn new(block_key: &[u8], value: &'a [u8]) -> Self {
        Self {
            rest: value,
            key: block_key.to_vec(),
            value: &[],
        }
    }

    /// Moves to the next entry; false at the end.
    pub fn advance(&mut self) -> Result<bool, DecodeError> {
        if self.rest.is_empty() {
            return Ok(false);
        }
        let shared = take_varint(&mut self.rest)?;
        let suffix_len = take_varint(&mut self.rest)?;
        let suffix = take_bytes(&mut self.rest, suffix_len)?;
        if shared > self.key.len() {
            return Err(DecodeError { what: "block" });
        }
        self.key.truncate(shared);
        self.key.extend_from_slice(suffix);
        let value_len = take_varint(&mut self.rest)?;
        self.value = take_bytes(&mut self.rest, value_len)?;
        Ok(true)
    }

    /// The key of the current entry.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The value of the current entry.
    pub fn value(&self) -> &'a [u8] {
        self.value
    }
}

/// Calls `f` with every entry (key, value) of the block stored under `block_key`, in key
/// order, until `f` returns false; returns false if it did. The block must be well formed:
/// its first key is the block key and keys strictly increase.
pub fn walk_block<E: From<DecodeError>>(
    block_key: &[u8],
    mut value: &[u8],
    f: &mut EntryFn<'_, E>,
) -> Result<bool, E> {
    let err = DecodeError { what: "block" };
    let mut key = block_key.to_vec();
    let mut first = true;
    while !value.is_empty() {
        let shared = take_varint(&mut value)?;
        let suffix_len = take_varint(&mut value)?;
        let suffix = take_bytes(&mut value, suffix_len)?;
        if shared > key.len() {
            return Err(err.into());
        }
        let in_order = first || suffix.first().is_some_and(|b| Some(b) > key.get(shared));
        if !in_order || (first && (shared != key.len() || !suffix.is_empty())) {
            return Err(err.into());
        }
        key.truncate(shared);
        key.extend_from_slice(suffix);
        let value_len = take_varint(&mut value)?;
        let entry = take_bytes(&mut value, value_len)?;
        first = false;
        if !f(&key, entry)? {
            return Ok(false);
        }
    }
    if first {
        // A block is never empty.
        return Err(err.into());
    }
    Ok(true)
}

/// Every entry of a block, owned (see [`walk_block`]).
pub fn decode_block(block_key: &[u8], value: &[u8]) -> Result<Vec<Entry>, DecodeError> {
    let mut res = Vec::new();
    walk_block::<DecodeError>(block_key, value, &mut |key, value| {
        res.push((key.to_vec(), value.to_vec()));
        Ok(true)
    })?;
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(text: &str) -> Relationship {
        text.parse().unwrap()
    }

    #[test]
    fn version_keys_roundtrip_in_both_indexes() {
        for text in [
            "document:1#viewer@user:alice",
            "project:p1#manager@group:eng#member",
            "model:m1#guest@user:*",
            "org/doc:a|b=c#reader@org/user:x-y",
        ] {
            let rel = rel(text);
            for index in [Index::Resource, Index::Subject] {
                let key = version_key(index, &rel, Revision(0x0001_0000_0000_0200));
                let (back, created) = decode_version_key(index, &key).unwrap();
                assert_eq!(back, rel, "{index:?}");
                assert_eq!(created, Revision(0x0001_0000_0000_0200));
                assert_eq!(decode_created(&key).unwrap(), created);
            }
        }
    }

    #[test]
    fn filter_prefix_stops_at_first_open_field_and_is_exact() {
        let filter = RelationshipFilter {
            resource_type: Some("doc".into()),
            relation: Some("viewer".into()),
            ..Default::default()
        };
        assert_eq!(filter_prefix(Index::Resource, &filter), b"doc\0");
        let long = version_key(
            Index::Resource,
            &rel("document:1#viewer@user:a"),
            Revision(1),
        );
        assert!(!long.starts_with(&filter_prefix(Index::Resource, &filter)));
        let filter = RelationshipFilter {
            subject_type: Some("user".into()),
            subject_id: Some("a".into()),
            subject_relation: Some("...".into()),
            ..Default::default()
        };
        assert_eq!(filter_prefix(Index::Subject, &filter), b"user\0a\0\0");
    }

    #[test]
    fn revisions_sort_numerically() {
        let rel = rel("document:1#viewer@user:alice");
        let low = version_key(Index::Resource, &rel, Revision(255));
        let high = version_key(Index::Resource, &rel, Revision(256));
        assert!(low < high);
        assert!(change_key(Revision(255), 7) < change_key(Revision(256), 0));
    }

    #[test]
    fn changes_and_filters_roundtrip() {
        let a = rel("document:1#viewer@user:alice");
        let b = rel("project:p1#manager@group:eng#member");
        let bytes = encode_changes([(ChangeOp::Touch, &a), (ChangeOp::Delete, &b)]);
        assert_eq!(
            decode_changes(&bytes).unwrap(),
            vec![(ChangeOp::Touch, a), (ChangeOp::Delete, b)]
        );
        let filter = RelationshipFilter {
            resource_type: Some("doc".into()),
            subject_id: Some("x".into()),
            subject_relation: Some("...".into()),
            ..Default::default()
        };
        assert_eq!(decode_filter(&encode_filter(&filter)).unwrap(), filter);
    }

    #[test]
    fn version_values_carry_caveat_and_expiration() {
        for text in [
            "document:1#viewer@user:alice",
            r#"document:1#viewer@user:alice[ip_allowlist:{"cidr":"10.0.0.0/8","n":[1,2.5]}]"#,
            "document:1#viewer@user:alice[org/cav]",
            "document:1#viewer@user:alice[expiration:1969-12-31T23:59:59.000000001Z]",
            r#"document:1#viewer@user:*[cav:{"a":"\u0000]"}][expiration:9999-12-31T23:59:59Z]"#,
        ] {
            let full = rel(text);
            for deleted in [LIVE, 7] {
                let value = encode_version_value(deleted, &full);
                let mut back = full.tuple();
                assert_eq!(decode_version_value(&value, &mut back).unwrap(), deleted);
                assert_eq!(back, full, "{text}");
                assert_eq!(decode_deleted(&value).unwrap(), deleted);
            }
            let bytes = encode_changes([(ChangeOp::Delete, &full), (ChangeOp::Touch, &full)]);
            assert_eq!(
                decode_changes(&bytes).unwrap(),
                vec![(ChangeOp::Delete, full.clone()), (ChangeOp::Touch, full)]
            );
        }
    }

    #[test]
    fn format_1_values_and_changes_decode_as_format_2() {
        // Bytes as format 1 wrote them: an 8-byte value, and a change without conditions.
        let plain = rel("document:1#viewer@user:alice");
        let mut back = plain.clone();
        assert_eq!(
            decode_version_value(&encode_u64(LIVE), &mut back).unwrap(),
            LIVE
        );
        assert_eq!(back, plain);
        let tuple = tuple_prefix(Index::Resource, &plain);
        let mut change = vec![2];
        change.extend_from_slice(&encode_u32(tuple.len() as u32));
        change.extend_from_slice(&tuple);
        assert_eq!(encode_changes([(ChangeOp::Delete, &plain)]), change);
        assert_eq!(
            decode_changes(&change).unwrap(),
            vec![(ChangeOp::Delete, plain)]
        );
    }

    #[test]
    fn garbage_is_a_decode_error_not_a_panic() {
        let mut any = rel("document:1#viewer@user:alice");
        assert!(decode_version_value(b"1234567", &mut any).is_err());
        assert!(decode_version_value(b"12345678\x03", &mut any).is_err());
        assert!(decode_version_value(b"12345678\x01cav\0\0\0\0\x09{}", &mut any).is_err());
        assert!(decode_version_value(b"12345678\x01cav\0\0\0\0\x02[]", &mut any).is_err());
        assert!(decode_version_value(b"12345678\x02\0\0", &mut any).is_err());
        assert!(decode_version_value(b"12345678\x02\x7f\0\0\0\0\0\0\0\0\0\0\0", &mut any).is_err());
        // A conditions flag with empty conditions is not what the encoder writes.
        assert!(
            decode_changes(&[
                0x81, 0, 0, 0, 12, b'a', 0, b'b', 0, b'c', 0, b'd', 0, b'e', 0, 0, 0, 0, 0, 0, 0
            ])
            .is_err()
        );
        assert!(decode_version_key(Index::Resource, b"short").is_err());
        assert!(decode_created(b"short").is_err());
        assert!(decode_version_key(Index::Resource, b"a\0b\0c\0d\0e\x0012345678").is_err());
        assert!(decode_changes(&[1, 0, 0, 0, 9, b'a']).is_err());
        assert!(decode_changes(&[3]).is_err());
        assert!(decode_filter(&[1, b'a']).is_err());
        assert!(decode_change_key(b"123").is_err());
    }

    #[test]
    fn blocks_roundtrip_and_garbage_is_a_decode_error() {
        let entries: Vec<Entry> = [
            "document:1#viewer@user:alice",
            "document:1#viewer@user:bob",
            "document:10#viewer@user:bob",
            "document:2#viewer@user:*",
        ]
        .iter()
        .map(|text| {
            let rel = rel(text);
            (
                version_key(Index::Resource, &rel, Revision(300)),
                encode_version_value(LIVE, &rel),
            )
        })
        .collect();
        let mut sorted = entries.clone();
        sorted.sort();
        let value = encode_block(&sorted);
        assert_eq!(decode_block(&sorted[0].0, &value).unwrap(), sorted);
        // Front coding: far fewer bytes than the keys themselves.
        let raw: usize = sorted.iter().map(|(k, v)| k.len() + v.len()).sum();
        assert!(value.len() < raw, "{} >= {raw}", value.len());
        for bad in [
            // a block key that is not the first entry's key
            decode_block(b"other", &value),
            // empty, truncated, over-long varint
            decode_block(&sorted[0].0, b""),
            decode_block(&sorted[0].0, &value[..value.len() - 1]),
            decode_block(b"k", &[0xff; 11]),
        ] {
            assert!(bad.is_err());
        }
        // Keys out of order are refused.
        let mut backwards = sorted.clone();
        backwards.swap(1, 2);
        let value = encode_block(&backwards);
        assert!(decode_block(&backwards[0].0, &value).is_err());
        assert_eq!(varint_roundtrip(u64::MAX), u64::MAX as usize);
    }

    #[test]
    fn shared_prefix_counts_leading_equal_bytes() {
        // (a, b, shared)
        for (a, b, n) in [
            ("", "", 0),
            ("abc", "", 0),
            ("abc", "abd", 2),
            ("abcdefgh", "abcdefgh", 8),
            ("abcdefghij", "abcdefghik", 9),
            ("abcdefgh", "abcdefghijkl", 8),
            ("abcdefgXijklmnopq", "abcdefgYijklmnopq", 7),
            ("document\0d1\0viewer\0", "document\0d1\0viewer\0user", 19),
        ] {
            assert_eq!(shared_prefix(a.as_bytes(), b.as_bytes()), n, "{a:?} {b:?}");
            assert_eq!(shared_prefix(b.as_bytes(), a.as_bytes()), n, "{a:?} {b:?}");
        }
    }

    #[test]
    fn the_streaming_encoder_and_the_cursor_agree_with_the_block_functions() {
        // (entries of one block, in key order)
        for keys in [
            vec!["a"],
            vec!["a", "ab", "abc", "b"],
            vec!["doc\0d1\0", "doc\0d10\0", "doc\0d2\0", "user\0"],
        ] {
            let entries: Vec<Entry> = keys
                .iter()
                .enumerate()
                .map(|(n, key)| (key.as_bytes().to_vec(), vec![n as u8; n]))
                .collect();
            let mut encoder = BlockEncoder::default();
            for (key, value) in &entries {
                encoder.push(key, value);
            }
            assert_eq!(encoder.len(), entries.len());
            let (block_key, value) = encoder.finish();
            assert!(encoder.is_empty());
            assert_eq!(block_key, entries[0].0);
            assert_eq!(value, encode_block(&entries));
            assert_eq!(decode_block(&block_key, &value).unwrap(), entries);
            let mut cursor = EntryCursor::new(&block_key, &value);
            let mut read = Vec::new();
            while cursor.advance().unwrap() {
                read.push((cursor.key().to_vec(), cursor.value().to_vec()));
            }
            assert_eq!(read, entries);
        }
        let mut truncated = EntryCursor::new(b"k", &[0, 3, b'a']);
        assert!(truncated.advance().is_err());
    }

    fn varint_roundtrip(value: u64) -> usize {
        let mut buf = Vec::new();
        push_varint(&mut buf, value);
        take_varint(&mut buf.as_slice()).unwrap()
    }
}
