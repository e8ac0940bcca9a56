//! A borrowed reading of the one message that matters most for speed: a
//! CheckPermissionRequest's names, straight from its protobuf bytes, for the check
//! cache's probe before anything is decoded or allocated (the JSON check's body reader
//! does the same, `check_json`). prost's decode of the same message costs ~2,600
//! instructions and five `String`s per call (docs/BENCHMARKS.md).
//!
//! It reads only the plain shape of the call — a resource, a permission, a subject, and a
//! consistency of `minimize_latency`, `fully_consistent` or none — and answers `None` for
//! anything else: a field it does not know, a field twice (protobuf's merge rules), a
//! wrong wire type, a caveat context, tracing, a ZedToken, text that is not UTF-8, bytes
//! that do not parse. `None` sends the call down the full path, where prost decodes it
//! and every error is reported as before; so this reader never decides an answer, it only
//! finds an already-validated cached one sooner.

use crate::engine::{CheckParts, Consistency};

/// Protobuf wire types (the low three bits of a field's tag).
const VARINT: u8 = 0;
const LEN: u8 = 2;

/// The names and consistency of a plain CheckPermissionRequest, borrowed from `message`;
/// `None` unless the message has exactly that plain shape (module docs).
pub fn check_parts(message: &[u8]) -> Option<(CheckParts<'_>, Consistency)> {
    let mut consistency = None;
    let mut resource = None;
    let mut permission = None;
    let mut subject = None;
    let mut tracing = None;
    for field in Fields(message) {
        match field? {
            (1, Value::Len(bytes)) => set(&mut consistency, mode(bytes)?)?,
            (2, Value::Len(bytes)) => set(&mut resource, object(bytes)?)?,
            (3, Value::Len(bytes)) => set(&mut permission, text(bytes)?)?,
            (4, Value::Len(bytes)) => set(&mut subject, subject_of(bytes)?)?,
            (6, Value::Varint(flag)) => set(&mut tracing, flag)?,
            // The context (5), anything unknown or of another wire type.
            _ => return None,
        }
    }
    if tracing.unwrap_or(0) != 0 {
        return None;
    }
    let (resource_type, resource_id) = resource?;
    let ((subject_type, subject_id), relation) = subject?;
    let parts = CheckParts {
        resource_type,
        resource_id,
        permission: permission.unwrap_or(""),
        subject_type,
        subject_id,
        subject_relation: relation.filter(|it: &&str| !it.is_empty()),
    };
    Some((parts, consistency.unwrap_or(Consistency::MinimizeLatency)))
}

/// Stores the first value of a field; a second one is `None` (protobuf would merge or
/// replace, which the full path does).
fn set<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(value);
    Some(())
}

/// A `Consistency` message: one of `minimize_latency` (1) or `fully_consistent` (4), or
/// neither (SpiceDB's default, as the full path reads it).
fn mode(message: &[u8]) -> Option<Consistency> {
    let mut found = None;
    for field in Fields(message) {
        let chosen = match field? {
            (1, Value::Varint(_)) => Consistency::MinimizeLatency,
            (4, Value::Varint(_)) => Consistency::Full,
            // A ZedToken (2, 3), or anything else.
            _ => return None,
        };
        set(&mut found, chosen)?;
    }
    Some(found.unwrap_or(Consistency::MinimizeLatency))
}

/// An `ObjectReference`: its type (1) and id (2).
fn object(message: &[u8]) -> Option<(&str, &str)> {
    let (mut kind, mut id) = (None, None);
    for field in Fields(message) {
        match field? {
            (1, Value::Len(bytes)) => set(&mut kind, text(bytes)?)?,
            (2, Value::Len(bytes)) => set(&mut id, text(bytes)?)?,
            _ => return None,
        }
    }
    Some((kind.unwrap_or(""), id.unwrap_or("")))
}

/// A subject's object (type, id) and optional relation.
type Subject<'a> = ((&'a str, &'a str), Option<&'a str>);

/// A `SubjectReference`: its object (1, required) and optional relation (2).
fn subject_of(message: &[u8]) -> Option<Subject<'_>> {
    let (mut found, mut relation) = (None, None);
    for field in Fields(message) {
        match field? {
            (1, Value::Len(bytes)) => set(&mut found, object(bytes)?)?,
            (2, Value::Len(bytes)) => set(&mut relation, text(bytes)?)?,
            _ => return None,
        }
    }
    Some((found?, relation))
}

fn text(bytes: &[u8]) -> Option<&str> {
    std::str::from_utf8(bytes).ok()
}

/// A field's value, for the two wire types these messages use.
enum Value<'a> {
    Varint(u64),
    Len(&'a [u8]),
}

/// The fields of a message in order; an item is `None` where the bytes stop making sense
/// (and the reader gives up on the message).
struct Fields<'a>(&'a [u8]);

impl<'a> Iterator for Fields<'a> {
    type Item = Option<(u64, Value<'a>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        Some(self.field())
    }
}

impl<'a> Fields<'a> {
    fn field(&mut self) -> Option<(u64, Value<'a>)> {
        let tag = self.varint()?;
        let number = tag >> 3;
        let value = match (tag & 7) as u8 {
            VARINT => Value::Varint(self.varint()?),
            LEN => {
                let len = usize::try_from(self.varint()?).ok()?;
                let bytes = self.0.get(..len)?;
                self.0 = &self.0[len..];
                Value::Len(bytes)
            }
            // Fixed-width, groups and invalid types: not in these messages.
            _ => {
                self.0 = &[];
                return None;
            }
        };
        Some((number, value))
    }

    /// A base-128 varint of at most ten bytes that fits in 64 bits.
    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for (i, byte) in self.0.iter().enumerate().take(10) {
            let bits = u64::from(byte & 0x7f);
            if i == 9 && bits > 1 {
                break;
            }
            value |= bits << (7 * i);
            if byte & 0x80 == 0 {
                self.0 = &self.0[i + 1..];
                return Some(value);
            }
        }
        self.0 = &[];
        None
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use prost::Message;
    use spicedb_rs_proto::authzed::api::v1 as pb;

    use super::*;

    /// What the full path's cache probe reads from the decoded message
    /// (`permissions::plain_parts`), as owned text.
    fn decoded(message: &[u8]) -> Option<(Vec<String>, Option<String>, Consistency)> {
        let request = pb::CheckPermissionRequest::decode(message).ok()?;
        super::super::permissions::plain_parts(&request).map(|(parts, mode)| owned(parts, mode))
    }

    fn owned(
        parts: CheckParts<'_>,
        mode: Consistency,
    ) -> (Vec<String>, Option<String>, Consistency) {
        let names = [
            parts.resource_type,
            parts.resource_id,
            parts.permission,
            parts.subject_type,
            parts.subject_id,
        ];
        (
            names.map(str::to_string).to_vec(),
            parts.subject_relation.map(str::to_string),
            mode,
        )
    }

    fn name() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            "[a-z]{1,6}",
            "[a-z0-9_/|=+*-]{0,8}",
            "\\PC{0,4}",
        ]
    }

    fn object() -> impl Strategy<Value = Option<pb::ObjectReference>> {
        proptest::option::weighted(
            0.9,
            (name(), name()).prop_map(|(object_type, object_id)| pb::ObjectReference {
                object_type,
                object_id,
            }),
        )
    }

    fn consistency() -> impl Strategy<Value = Option<pb::Consistency>> {
        use pb::consistency::Requirement;
        let token = || "[a-zA-Z0-9]{0,6}".prop_map(|token| pb::ZedToken { token });
        proptest::option::of(
            proptest::option::of(prop_oneof![
                any::<bool>().prop_map(Requirement::MinimizeLatency),
                any::<bool>().prop_map(Requirement::FullyConsistent),
                token().prop_map(Requirement::AtLeastAsFresh),
                token().prop_map(Requirement::AtExactSnapshot),
            ])
            .prop_map(|requirement| pb::Consistency { requirement }),
        )
    }

    fn request() -> impl Strategy<Value = pb::CheckPermissionRequest> {
        (
            consistency(),
            object(),
            name(),
            (object(), name(), proptest::bool::weighted(0.8)),
            proptest::bool::weighted(0.1),
            proptest::bool::weighted(0.1),
        )
            .prop_map(
                |(
                    consistency,
                    resource,
                    permission,
                    (object, relation, has_subject),
                    context,
                    with_tracing,
                )| {
                    pb::CheckPermissionRequest {
                        consistency,
                        resource,
                        permission,
                        subject: has_subject.then_some(pb::SubjectReference {
                            object,
                            optional_relation: relation,
                        }),
                        context: context.then(prost_types::Struct::default),
                        with_tracing,
                    }
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// Whatever the reader accepts, prost decodes to the same names and mode; and a
        /// well-formed plain message is never turned away.
        #[test]
        fn the_reader_agrees_with_prost(
            request in request(),
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..3),
            cut in proptest::option::weighted(0.2, any::<usize>()),
            extra in proptest::option::weighted(0.2, proptest::collection::vec(any::<u8>(), 1..6)),
        ) {
            let mut bytes = request.encode_to_vec();
            let pristine = edits.is_empty() && cut.is_none() && extra.is_none();
            for (at, byte) in &edits {
                if !bytes.is_empty() {
                    let at = at % bytes.len();
                    bytes[at] = *byte;
                }
            }
            if let Some(cut) = cut {
                bytes.truncate(cut % (bytes.len() + 1));
            }
            if let Some(extra) = extra {
                bytes.extend(extra);
            }
            let ours = check_parts(&bytes);
            if let Some((parts, mode)) = ours {
                prop_assert_eq!(Some(owned(parts, mode)), decoded(&bytes));
            } else if pristine {
                let plain = decoded(&bytes);
                let tokened = matches!(
                    request.consistency.as_ref().and_then(|it| it.requirement.as_ref()),
                    Some(pb::consistency::Requirement::AtLeastAsFresh(_)
                        | pb::consistency::Requirement::AtExactSnapshot(_))
                );
                prop_assert!(plain.is_none() || tokened, "refused a plain call: {plain:?}");
            }
        }
    }

    #[test]
    fn a_plain_call_is_read_and_the_rest_are_left_to_prost() {
        let plain = pb::CheckPermissionRequest {
            consistency: Some(pb::Consistency {
                requirement: Some(pb::consistency::Requirement::FullyConsistent(true)),
            }),
            resource: Some(pb::ObjectReference {
                object_type: "document".into(),
                object_id: "d1".into(),
            }),
            permission: "view".into(),
            subject: Some(pb::SubjectReference {
                object: Some(pb::ObjectReference {
                    object_type: "group".into(),
                    object_id: "g".into(),
                }),
                optional_relation: "member".into(),
            }),
            context: None,
            with_tracing: false,
        };
        let bytes = plain.encode_to_vec();
        let (parts, mode) = check_parts(&bytes).expect("plain");
        assert_eq!(
            parts,
            CheckParts {
                resource_type: "document",
                resource_id: "d1",
                permission: "view",
                subject_type: "group",
                subject_id: "g",
                subject_relation: Some("member"),
            }
        );
        assert_eq!(mode, Consistency::Full);
        // A field twice: protobuf merges; the full path decides.
        let mut twice = bytes.clone();
        twice.extend(&bytes);
        assert_eq!(check_parts(&twice), None);
        // An unknown field (number 9, varint).
        let mut unknown = bytes.clone();
        unknown.extend([9 << 3, 1]);
        assert_eq!(check_parts(&unknown), None);
        // With a context.
        let with_context = pb::CheckPermissionRequest {
            context: Some(prost_types::Struct::default()),
            ..plain.clone()
        };
        assert_eq!(check_parts(&with_context.encode_to_vec()), None);
        // Not UTF-8.
        let bad = bytes
            .iter()
            .map(|it| if *it == b'd' { 0xff } else { *it })
            .collect::<Vec<u8>>();
        assert_eq!(check_parts(&bad), None);
        // An overlong varint (eleven bytes).
        assert_eq!(check_parts(&[0x80; 11]), None);
    }
}
