//! The byte layout of every key and value the sled store writes. Nothing else in the crate
//! encodes or decodes store bytes.
//!
//! # Format version 1
//!
//! Integers are big-endian so that byte order equals numeric order. A *name* (type,
//! relation, id) is its UTF-8 bytes followed by one `0x00` terminator; valid names never
//! contain `0x00` (see `model`), so a terminated name is an exact prefix for scans:
//! `doc\0` never matches `document\0`. "No subject relation" is the empty name (a lone
//! `0x00`), so it sorts before every named relation.
//!
//! Trees of one sled database:
//!
//! | tree | key | value |
//! |---|---|---|
//! | `meta` | `format` | u32 format version (this is 1) |
//! | `meta` | `head` | u64: the newest committed revision |
//! | `meta` | `oldest` | u64: the oldest readable revision (GC horizon) |
//! | `meta` | `schema` | the schema text, UTF-8 |
//! | `meta` | `schema_revision` | u64: the revision that wrote the schema |
//! | `meta` | `pending` | u64 revision, then a [filter](encode_filter): a delete by filter that has started but not finished |
//! | `by_resource` | resource type, resource id, relation, subject type, subject id, subject relation (six names), then u64 created-at revision | u64 deleted-at revision, `u64::MAX` while live |
//! | `by_subject` | subject type, subject id, subject relation, resource type, relation, resource id (six names), then u64 created-at revision | same as `by_resource` |
//! | `changes` | u64 revision, then u32 part number | a sequence of changes: one op byte (`1` touch, `2` delete), a u32 length, then that many bytes of the six names in `by_resource` order |
//! | `revisions` | u64 revision | u64 commit time, milliseconds since the Unix epoch |
//!
//! Every stored tuple *version* has one key in each index; deleting it rewrites both
//! values, re-creating it later adds a new version with a new created-at revision.

use crate::model::{ObjectRef, Relationship, Revision, SubjectRef};
use crate::store::{ChangeOp, RelationshipFilter};

/// The format version this code reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// Names of the sled trees.
pub const TREE_META: &str = "meta";
pub const TREE_BY_RESOURCE: &str = "by_resource";
pub const TREE_BY_SUBJECT: &str = "by_subject";
pub const TREE_CHANGES: &str = "changes";
pub const TREE_REVISIONS: &str = "revisions";

/// Keys of the `meta` tree.
pub const META_FORMAT: &[u8] = b"format";
pub const META_HEAD: &[u8] = b"head";
pub const META_OLDEST: &[u8] = b"oldest";
pub const META_SCHEMA: &[u8] = b"schema";
pub const META_SCHEMA_REVISION: &[u8] = b"schema_revision";
pub const META_PENDING: &[u8] = b"pending";

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
        push_name(&mut buf, name);
    }
    buf
}

/// The index key of the version of `rel` created at `created`.
pub fn version_key(index: Index, rel: &Relationship, created: Revision) -> Vec<u8> {
    let mut buf = tuple_prefix(index, rel);
    buf.extend_from_slice(&encode_u64(created.0));
    buf
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
    })
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
    let by_resource = filter_prefix(Index::Resource, filter);
    let by_subject = filter_prefix(Index::Subject, filter);
    if by_subject.len() > by_resource.len() {
        (Index::Subject, by_subject)
    } else {
        (Index::Resource, by_resource)
    }
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
        buf.push(match op {
            ChangeOp::Touch => 1,
            ChangeOp::Delete => 2,
        });
        let tuple = tuple_prefix(Index::Resource, rel);
        // INVARIANT: a tuple is six names of at most a few kilobytes, far below u32::MAX.
        buf.extend_from_slice(&encode_u32(tuple.len() as u32));
        buf.extend_from_slice(&tuple);
    }
    buf
}

/// Decodes one change-log value.
pub fn decode_changes(mut bytes: &[u8]) -> Result<Vec<(ChangeOp, Relationship)>, DecodeError> {
    let err = DecodeError { what: "change" };
    let mut res = Vec::new();
    while let Some((&op, rest)) = bytes.split_first() {
        let op = match op {
            1 => ChangeOp::Touch,
            2 => ChangeOp::Delete,
            _ => return Err(err),
        };
        if rest.len() < 4 {
            return Err(err);
        }
        let (len, rest) = rest.split_at(4);
        let len = decode_u32(len)? as usize;
        if rest.len() < len {
            return Err(err);
        }
        let (tuple, rest) = rest.split_at(len);
        res.push((op, decode_tuple(Index::Resource, tuple)?));
        bytes = rest;
    }
    Ok(res)
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
    fn garbage_is_a_decode_error_not_a_panic() {
        assert!(decode_version_key(Index::Resource, b"short").is_err());
        assert!(decode_version_key(Index::Resource, b"a\0b\0c\0d\0e\x0012345678").is_err());
        assert!(decode_changes(&[1, 0, 0, 0, 9, b'a']).is_err());
        assert!(decode_changes(&[3]).is_err());
        assert!(decode_filter(&[1, b'a']).is_err());
        assert!(decode_change_key(b"123").is_err());
    }
}
