//! The index image: the live tuples of the index at one revision, as interned symbols,
//! in a compact binary form the store keeps for the engine (`Store::write_index_image`).
//! Opening an engine from an image reads the strings once and the tuples as integer
//! pairs, already sorted, instead of decoding and interning six names per relationship;
//! the store's change log since the image's revision brings it up to date.
//!
//! The image is a cache, never the truth: anything unexpected in it (another format, a
//! bad checksum, a symbol out of range) makes [`decode`] fail, and the engine builds the
//! index from the store's relationships instead.
//!
//! Layout (integers little-endian): the magic `arbiter-index-2\n`, u64 revision; u64
//! symbol count `n`, u64 byte length and the interner's arena of `n` records (a symbol is
//! the offset of its record: `interner.rs`); u64 count and that many plain object tuples (resource type, id,
//! relation, subject type, id: five u32); u64 count and that many subject-set or wildcard
//! tuples (six u32, `u32::MAX` for no subject relation); u64 count and that many caveated
//! or expiring relationships, each a u32 length and its text form; then a u64 checksum of
//! every byte before it.

use std::hash::Hasher;

use crate::model::{Relationship, Revision};

use super::{IndexData, Interner, Loader, NO_REL, Node, ObjKey, Sym};

/// Version 2: symbols are arena offsets (version 1, numbered symbols with an end table,
/// is refused like any other foreign image and the index is built from the store).
const MAGIC: &[u8; 16] = b"arbiter-index-2\n";

/// Why an image was not used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ImageError {
    #[error("not an index image of this version")]
    Magic,
    #[error("the image is truncated")]
    Truncated,
    #[error("the image's checksum does not match")]
    Checksum,
    #[error("the image is inconsistent: {0}")]
    Inconsistent(&'static str),
}

/// The image of the tuples of `index` live at its head.
pub(crate) fn encode(index: &IndexData) -> Vec<u8> {
    let rev = index.head().0;
    let mut objects: Vec<(Node, ObjKey)> = Vec::new();
    let mut usersets: Vec<(Node, Node)> = Vec::new();
    for (node, fwd) in &index.forward {
        objects.extend(fwd.objects().iter_at(rev).map(|key| (*node, key)));
        usersets.extend(fwd.usersets(rev).map(|set| (*node, set)));
    }
    objects.sort_unstable();
    usersets.sort_unstable();
    let mut conditional: Vec<String> = Vec::new();
    for (resource, members) in &index.conditional {
        for member in members.iter().filter(|it| it.live_at(rev)) {
            conditional.push(conditional_text(index, *resource, member));
        }
    }

    let arena = index.strings.arena();
    let mut out = Vec::with_capacity(64 + arena.len() + objects.len() * 20 + usersets.len() * 24);
    out.extend_from_slice(MAGIC);
    put_u64(&mut out, rev);
    put_u64(&mut out, index.strings.len() as u64);
    put_u64(&mut out, arena.len() as u64);
    out.extend_from_slice(arena.as_bytes());
    put_u64(&mut out, objects.len() as u64);
    for (node, key) in &objects {
        for word in [node.ty, node.id, node.rel, key.ty, key.id] {
            put_u32(&mut out, word);
        }
    }
    put_u64(&mut out, usersets.len() as u64);
    for (node, set) in &usersets {
        for word in [node.ty, node.id, node.rel, set.ty, set.id, set.rel] {
            put_u32(&mut out, word);
        }
    }
    put_u64(&mut out, conditional.len() as u64);
    for text in &conditional {
        put_u32(&mut out, text.len() as u32);
        out.extend_from_slice(text.as_bytes());
    }
    let sum = checksum(&out);
    put_u64(&mut out, sum);
    out
}

/// The text form of one caveated or expiring tuple.
fn conditional_text(index: &IndexData, resource: Node, member: &super::CondMember) -> String {
    let subject = member.subject;
    let mut text = format!(
        "{}:{}#{}@{}:{}",
        index.name(resource.ty),
        index.name(resource.id),
        index.name(resource.rel),
        index.name(subject.ty),
        index.name(subject.id),
    );
    if subject.rel != NO_REL {
        text.push('#');
        text.push_str(index.name(subject.rel));
    }
    let relationship: Result<Relationship, _> = text.parse();
    match relationship {
        Ok(mut relationship) => {
            relationship.caveat = member.caveat.as_deref().cloned();
            relationship.expiration = member.expiration;
            relationship.to_string()
        }
        // Names in the index were valid when written; an unparsable one makes the image
        // unreadable on purpose (decode refuses it), never a wrong index.
        Err(_) => text,
    }
}

/// Builds `index` (a fresh one) from `image`; returns the image's revision.
pub(crate) fn decode(image: &[u8], index: &mut IndexData) -> Result<Revision, ImageError> {
    let (body, sum) = image
        .split_at_checked(image.len().saturating_sub(8))
        .ok_or(ImageError::Truncated)?;
    if image.len() < MAGIC.len() + 8 || &body[..MAGIC.len()] != MAGIC {
        return Err(ImageError::Magic);
    }
    let sum = u64::from_le_bytes(sum.try_into().map_err(|_| ImageError::Truncated)?);
    if checksum(body) != sum {
        return Err(ImageError::Checksum);
    }
    let mut input = Reader {
        bytes: &body[MAGIC.len()..],
    };
    let revision = input.u64()?;
    let count = input.len()?;
    let text_len = input.len()?;
    let text = std::str::from_utf8(input.take(text_len)?)
        .map_err(|_| ImageError::Inconsistent("a string is not UTF-8"))?;
    let (strings, starts) = Interner::from_arena(text.to_owned(), count)
        .ok_or(ImageError::Inconsistent("bad string table"))?;
    if strings.get(crate::model::WILDCARD_ID) != Some(index.star) {
        return Err(ImageError::Inconsistent("the wildcard symbol moved"));
    }
    index.strings = strings;
    let sym = |word: u32| -> Result<Sym, ImageError> {
        if starts.contains(word) {
            Ok(word)
        } else {
            Err(ImageError::Inconsistent("a symbol that starts no string"))
        }
    };
    let mut loader = Loader::default();
    let n = input.len()?;
    loader.objects = super::load::transient(n);
    // Room for the subject-set tuples too, whose count comes later: they are few.
    loader.reverse = super::load::transient(n + n / 4);
    for _ in 0..n {
        let resource = Node {
            ty: sym(input.u32()?)?,
            id: sym(input.u32()?)?,
            rel: sym(input.u32()?)?,
        };
        let key = ObjKey {
            ty: sym(input.u32()?)?,
            id: sym(input.u32()?)?,
        };
        loader.objects.push((resource, key));
        loader.reverse.push((
            Node {
                ty: key.ty,
                id: key.id,
                rel: NO_REL,
            },
            resource.ty,
            resource.rel,
            resource.id,
        ));
    }
    let n = input.len()?;
    loader.usersets = super::load::transient(n);
    for _ in 0..n {
        let resource = Node {
            ty: sym(input.u32()?)?,
            id: sym(input.u32()?)?,
            rel: sym(input.u32()?)?,
        };
        let ty = sym(input.u32()?)?;
        let id = sym(input.u32()?)?;
        let rel = match input.u32()? {
            NO_REL => NO_REL,
            word => sym(word)?,
        };
        let subject = Node { ty, id, rel };
        loader.usersets.push((resource, subject));
        loader
            .reverse
            .push((subject, resource.ty, resource.rel, resource.id));
    }
    let n = input.len()?;
    for _ in 0..n {
        let len = input.u32()? as usize;
        let text = std::str::from_utf8(input.take(len)?)
            .map_err(|_| ImageError::Inconsistent("a relationship is not UTF-8"))?;
        let relationship: Relationship = text
            .parse()
            .map_err(|_| ImageError::Inconsistent("a relationship does not parse"))?;
        loader.add(index, &relationship);
    }
    if !input.bytes.is_empty() {
        return Err(ImageError::Inconsistent("bytes after the last tuple"));
    }
    loader.finish(index);
    Ok(Revision(revision))
}

/// A 64-bit checksum against torn or damaged images (not against forgery: the store is
/// trusted).
fn checksum(bytes: &[u8]) -> u64 {
    let mut hasher = rustc_hash::FxHasher::default();
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        hasher.write_u64(u64::from_le_bytes(word));
    }
    hasher.write(chunks.remainder());
    hasher.write_usize(bytes.len());
    hasher.finish()
}

fn put_u32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn put_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_le_bytes());
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ImageError> {
        let (head, rest) = self
            .bytes
            .split_at_checked(n)
            .ok_or(ImageError::Truncated)?;
        self.bytes = rest;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32, ImageError> {
        let bytes = self.take(4)?;
        Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    fn u64(&mut self) -> Result<u64, ImageError> {
        let mut word = [0u8; 8];
        word.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(word))
    }

    /// A count or length, bounded by the bytes left (so a damaged count cannot make a
    /// huge allocation).
    fn len(&mut self) -> Result<usize, ImageError> {
        let value = self.u64()?;
        match usize::try_from(value) {
            Ok(value) if value <= self.bytes.len() => Ok(value),
            _ => Err(ImageError::Truncated),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::load::tests::{TUPLES, dump};
    use super::*;
    use crate::store::{Change, ChangeOp, ChangeSet};

    fn index() -> IndexData {
        let mut index = IndexData::default();
        let mut changes: Vec<Change> = TUPLES
            .iter()
            .map(|it| Change {
                op: ChangeOp::Touch,
                relationship: it.parse().unwrap(),
            })
            .collect();
        changes.push(Change {
            op: ChangeOp::Touch,
            relationship: r#"doc:4#viewer@user:gus[tier:{"min":2}]"#.parse().unwrap(),
        });
        index.apply(&ChangeSet {
            revision: Revision(1),
            changes,
        });
        // A deleted tuple is not in the image.
        index.apply(&ChangeSet {
            revision: Revision(2),
            changes: vec![Change {
                op: ChangeOp::Delete,
                relationship: "doc:1#viewer@user:bob".parse().unwrap(),
            }],
        });
        index
    }

    #[test]
    fn an_image_loads_into_the_index_it_was_taken_from() {
        let original = index();
        let image = encode(&original);
        let mut loaded = IndexData::default();
        assert_eq!(decode(&image, &mut loaded).unwrap(), Revision(2));
        loaded.set_head(Revision(2));
        assert_eq!(dump(&loaded, 2), dump(&original, 2));
        assert!(!dump(&loaded, 2).iter().any(|it| it.contains("user:bob")));
        assert_eq!(
            loaded
                .conditional_members(Node {
                    ty: loaded.sym("doc").unwrap(),
                    id: loaded.sym("4").unwrap(),
                    rel: loaded.sym("viewer").unwrap(),
                })
                .len(),
            1
        );
    }

    #[test]
    fn a_damaged_image_is_refused_never_half_loaded() {
        let image = encode(&index());
        let mut flipped = image.clone();
        flipped[40] ^= 1;
        let mut wrong_symbol = image[..image.len() - 8].to_vec();
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", Vec::new()),
            ("magic", b"something else entirely, long enough".to_vec()),
            ("truncated", image[..image.len() / 2].to_vec()),
            ("flipped bit", flipped),
            ("no checksum", image[..image.len() - 8].to_vec()),
        ];
        for (name, bytes) in cases {
            let mut index = IndexData::default();
            assert!(decode(&bytes, &mut index).is_err(), "{name}");
        }
        // A consistent checksum over an inconsistent body is refused too.
        let magic_and_revision = MAGIC.len() + 8;
        wrong_symbol[magic_and_revision..magic_and_revision + 8]
            .copy_from_slice(&u64::MAX.to_le_bytes());
        let sum = checksum(&wrong_symbol);
        wrong_symbol.extend_from_slice(&sum.to_le_bytes());
        let mut index = IndexData::default();
        assert!(matches!(
            decode(&wrong_symbol, &mut index),
            Err(ImageError::Truncated | ImageError::Inconsistent(_))
        ));
    }
}
