//! The vocabulary every layer shares: object and subject references, relationships,
//! revisions, and the name and id rules of DESIGN §5.
//!
//! Everything here is plain data with a text form (`document:1#viewer@user:alice`,
//! `project:p1#manager@group:eng#member`, `model:m1#guest@user:*`, and with SpiceDB's
//! suffixes `doc:1#viewer@user:tom[ip_allowlist:{"cidr":"10.0.0.0/8"}][expiration:2026-12-01T00:00:00Z]`).
//! Parsing validates every part and says which part is wrong; printing is the exact
//! inverse. The caveat and expiration types live in `model/caveat.rs` and
//! `model/timestamp.rs`. This module depends on nothing else in the crate.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

mod caveat;
mod order;
#[cfg(test)]
pub(crate) mod test_rng;
mod timestamp;
pub mod write;

pub use self::caveat::{EXPIRATION_KEYWORD, MAX_CAVEAT_CONTEXT_BYTES, RelationshipCaveat};
pub use self::order::ReadOrder;
pub use self::timestamp::Timestamp;

/// The longest object id DESIGN §5 admits.
pub const MAX_ID_LEN: usize = 1024;

/// The id that stands for "every subject of this type" in a subject reference.
pub const WILDCARD_ID: &str = "*";

/// SpiceDB's spelling of "no subject relation": `user:alice#...` means `user:alice`.
pub const ELLIPSIS: &str = "...";

/// A point in the store's history: grows by one per committed write.
///
/// Clients see it as an opaque token (the ZedToken / zookie idea); inside arbiter it is
/// ordered, and a read "at revision R" sees exactly the tuples live at R.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Revision(pub u64);

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Which part of a reference failed validation, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// A type name breaks `([a-z][a-z0-9_]{1,61}[a-z0-9]/)*[a-z][a-z0-9_]{1,62}[a-z0-9]`.
    #[error(
        "invalid type name `{0}`: expected lowercase letters, digits and `_`, 3 to 64 characters, starting with a letter, optionally prefixed by `namespace/`"
    )]
    TypeName(String),
    /// A relation or permission name breaks `[a-z][a-z0-9_]{1,62}[a-z0-9]`.
    #[error(
        "invalid relation name `{0}`: expected lowercase letters, digits and `_`, 3 to 64 characters, starting with a letter and not ending with `_`"
    )]
    RelationName(String),
    /// An object id breaks `[a-zA-Z0-9/_|\-=+]{1,1024}`.
    #[error("invalid object id `{0}`: expected 1 to 1024 characters of `a-z A-Z 0-9 / _ | - = +`")]
    ObjectId(String),
    /// The wildcard id `*` used where only a concrete object may stand.
    #[error("wildcard `{0}` is not allowed here")]
    Wildcard(String),
    /// A caveat name breaks the type-name rule, or is reserved.
    #[error("invalid caveat name `{name}`: {reason}")]
    CaveatName { name: String, reason: &'static str },
    /// A caveat context is not a JSON object or is too large.
    #[error("invalid context of caveat `{name}`: {reason}")]
    CaveatContext { name: String, reason: String },
    /// An expiration is not an RFC 3339 timestamp between the years 0001 and 9999.
    #[error(
        "invalid timestamp `{0}`: expected rfc 3339 between the years 0001 and 9999, such as `2026-12-01T00:00:00Z`"
    )]
    Timestamp(String),
    /// The text does not have the shape `type:id`, `type:id#rel` or `res#rel@subject`.
    #[error("malformed {what} `{input}`: expected {expected}")]
    Malformed {
        what: &'static str,
        input: String,
        expected: &'static str,
    },
}

/// An object: `document:1`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectRef {
    pub object_type: String,
    pub object_id: String,
}

/// A subject: an object (`user:alice`), a subject set (`group:eng#member`) or a wildcard
/// (`user:*`). A wildcard never carries a relation.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SubjectRef {
    pub object: ObjectRef,
    /// `None` for a plain object or a wildcard; `Some(rel)` for a subject set.
    pub relation: Option<String>,
}

/// A relationship tuple, `resource#relation@subject`, optionally with a caveat and an
/// expiration.
///
/// The *tuple* (resource, relation, subject) is the relationship's identity in a store:
/// there is at most one live relationship per tuple, and writing the same tuple with
/// another caveat or expiration replaces it. `Eq` and `Ord` compare every field; use
/// [`Relationship::same_tuple`] or [`Relationship::tuple`] to compare identities.
/// Build one with [`Relationship::new`] and the `with_*` methods, so that new fields do
/// not break callers.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Relationship {
    pub resource: ObjectRef,
    pub relation: String,
    pub subject: SubjectRef,
    /// The caveat the relationship is conditioned on, if any.
    pub caveat: Option<RelationshipCaveat>,
    /// When the relationship stops holding, if ever; it is kept in the store after that.
    pub expiration: Option<Timestamp>,
}

/// Whether `name` is a valid relation or permission name (no namespace prefix).
pub fn is_valid_relation_name(name: &str) -> bool {
    is_valid_identifier(name)
}

/// Whether `name` is a valid type name: an identifier with optional `ns/` prefixes.
pub fn is_valid_type_name(name: &str) -> bool {
    // Most names have no namespace; spare them the splitting.
    if !name.as_bytes().contains(&b'/') {
        return is_valid_identifier(name);
    }
    let mut parts = name.rsplit('/');
    let Some(last) = parts.next() else {
        return false;
    };
    is_valid_identifier(last) && parts.all(is_valid_namespace)
}

/// The longest caveat name: SpiceDB's API refuses a relationship's caveat name longer
/// than this, so a longer one could be declared but never written.
pub const MAX_CAVEAT_NAME_LEN: usize = 128;

/// Whether `name` is a valid caveat name, as SpiceDB's schema reads one: words of
/// `[A-Za-z0-9_]` joined by `/`, at most [`MAX_CAVEAT_NAME_LEN`] bytes (`cv`, `IpCheck`,
/// `1st`, `ns/ip_check`). Looser than a type name: SpiceDB accepts these, and a schema
/// of SpiceDB's must read unchanged.
pub fn is_valid_caveat_name(name: &str) -> bool {
    name.len() <= MAX_CAVEAT_NAME_LEN
        && name.split('/').all(|word| {
            !word.is_empty() && word.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        })
}

/// Whether `id` is a valid concrete object id (the wildcard is not).
pub fn is_valid_object_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'|' | b'-' | b'=' | b'+')
        })
}

/// `[a-z][a-z0-9_]{1,62}[a-z0-9]`
fn is_valid_identifier(name: &str) -> bool {
    identifier_with_max(name, 64)
}

/// `[a-z][a-z0-9_]{1,61}[a-z0-9]`
fn is_valid_namespace(name: &str) -> bool {
    identifier_with_max(name, 63)
}

fn identifier_with_max(name: &str, max_len: usize) -> bool {
    let bytes = name.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    (3..=max_len).contains(&bytes.len())
        && first.is_ascii_lowercase()
        && (last.is_ascii_lowercase() || last.is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
}

fn check_type(name: &str) -> Result<(), ModelError> {
    if is_valid_type_name(name) {
        Ok(())
    } else {
        Err(ModelError::TypeName(name.to_string()))
    }
}

fn check_relation(name: &str) -> Result<(), ModelError> {
    if is_valid_relation_name(name) {
        Ok(())
    } else {
        Err(ModelError::RelationName(name.to_string()))
    }
}

impl ObjectRef {
    /// Builds a reference after validating both parts; the id must be concrete.
    pub fn new(object_type: &str, object_id: &str) -> Result<Self, ModelError> {
        check_type(object_type)?;
        if object_id == WILDCARD_ID {
            return Err(ModelError::Wildcard(format!("{object_type}:{object_id}")));
        }
        if !is_valid_object_id(object_id) {
            return Err(ModelError::ObjectId(object_id.to_string()));
        }
        Ok(Self {
            object_type: object_type.to_string(),
            object_id: object_id.to_string(),
        })
    }

    /// Whether the id is the wildcard `*` (only possible inside a [`SubjectRef`]).
    pub fn is_wildcard(&self) -> bool {
        self.object_id == WILDCARD_ID
    }
}

impl SubjectRef {
    /// Builds a subject after validating every part. `relation` of `None` or `...` means
    /// the object itself; a wildcard id admits no relation.
    pub fn new(
        object_type: &str,
        object_id: &str,
        relation: Option<&str>,
    ) -> Result<Self, ModelError> {
        check_type(object_type)?;
        let relation = relation.filter(|rel| *rel != ELLIPSIS);
        if let Some(rel) = relation {
            check_relation(rel)?;
        }
        if object_id == WILDCARD_ID {
            if let Some(rel) = relation {
                return Err(ModelError::Wildcard(format!("{object_type}:*#{rel}")));
            }
        } else if !is_valid_object_id(object_id) {
            return Err(ModelError::ObjectId(object_id.to_string()));
        }
        Ok(Self {
            object: ObjectRef {
                object_type: object_type.to_string(),
                object_id: object_id.to_string(),
            },
            relation: relation.map(str::to_string),
        })
    }

    /// Whether this is `type:*`.
    pub fn is_wildcard(&self) -> bool {
        self.object.is_wildcard()
    }
}

impl Relationship {
    /// Builds a relationship without caveat or expiration after validating every part.
    pub fn new(
        resource: ObjectRef,
        relation: &str,
        subject: SubjectRef,
    ) -> Result<Self, ModelError> {
        check_relation(relation)?;
        Ok(Self {
            resource,
            relation: relation.to_string(),
            subject,
            caveat: None,
            expiration: None,
        })
    }

    /// The same relationship conditioned on `caveat`.
    #[must_use]
    pub fn with_caveat(self, caveat: RelationshipCaveat) -> Self {
        Self {
            caveat: Some(caveat),
            ..self
        }
    }

    /// The same relationship expiring at `expiration`.
    #[must_use]
    pub fn with_expiration(self, expiration: Timestamp) -> Self {
        Self {
            expiration: Some(expiration),
            ..self
        }
    }

    /// The bare tuple: the same relationship without caveat and expiration.
    #[must_use]
    pub fn tuple(&self) -> Self {
        Self {
            resource: self.resource.clone(),
            relation: self.relation.clone(),
            subject: self.subject.clone(),
            caveat: None,
            expiration: None,
        }
    }

    /// Whether `other` names the same tuple (resource, relation, subject), whatever the
    /// caveats and expirations.
    pub fn same_tuple(&self, other: &Self) -> bool {
        self.tuple_ref() == other.tuple_ref()
    }

    /// The identity of the relationship, borrowed: for hashing and comparing tuples.
    pub fn tuple_ref(&self) -> (&ObjectRef, &str, &SubjectRef) {
        (&self.resource, &self.relation, &self.subject)
    }

    /// Whether the relationship has a caveat or an expiration (is not unconditional).
    pub fn is_conditional(&self) -> bool {
        self.caveat.is_some() || self.expiration.is_some()
    }
}

/// The error of a reference without its `:`.
fn malformed(input: &str, what: &'static str, expected: &'static str) -> ModelError {
    ModelError::Malformed {
        what,
        input: input.to_string(),
        expected,
    }
}

impl FromStr for ObjectRef {
    type Err = ModelError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let (object_type, object_id) =
            split_object(input).ok_or_else(|| malformed(input, "object", "`type:id`"))?;
        Self::new(object_type, object_id)
    }
}

/// The parts of a subject's text, `type:id` or `type:id#relation`, as [`SubjectRef`]'s
/// parser splits it, none of them validated; `None` without a `:`.
pub fn split_subject(input: &str) -> Option<(&str, &str, Option<&str>)> {
    let (object_type, rest) = split_at_byte(input, b':')?;
    Some(match split_at_byte(rest, b'#') {
        Some((id, rel)) => (object_type, id, Some(rel)),
        None => (object_type, rest, None),
    })
}

/// The parts of an object's text, `type:id`, as [`ObjectRef`]'s parser splits it, not
/// validated; `None` without a `:`.
pub fn split_object(input: &str) -> Option<(&str, &str)> {
    split_at_byte(input, b':')
}

/// `input` before and after its first `byte`, an ASCII separator: `str::split_once`
/// for one byte, without the general searcher (names are short; this runs per check).
fn split_at_byte(input: &str, byte: u8) -> Option<(&str, &str)> {
    let at = input.bytes().position(|it| it == byte)?;
    Some((input.get(..at)?, input.get(at + 1..)?))
}

impl FromStr for SubjectRef {
    type Err = ModelError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        const EXPECTED: &str = "`type:id`, `type:id#relation` or `type:*`";
        let (object_type, object_id, relation) =
            split_subject(input).ok_or_else(|| malformed(input, "subject", EXPECTED))?;
        Self::new(object_type, object_id, relation)
    }
}

impl FromStr for Relationship {
    type Err = ModelError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        const EXPECTED: &str = "`type:id#relation@subject`, optionally followed by `[caveat:{…}]` and `[expiration:…]`";
        let malformed = || ModelError::Malformed {
            what: "relationship",
            input: input.to_string(),
            expected: EXPECTED,
        };
        // No name or id contains `[`: the suffixes start at the first one.
        let (tuple, suffixes) = input.split_at(input.find('[').unwrap_or(input.len()));
        let (resource, subject) = tuple.split_once('@').ok_or_else(malformed)?;
        let (object, relation) = resource.split_once('#').ok_or_else(malformed)?;
        let resource: ObjectRef = object.parse()?;
        let subject: SubjectRef = subject.parse()?;
        let (caveat, expiration) = caveat::parse_suffixes(input, suffixes)?;
        Ok(Self {
            caveat,
            expiration,
            ..Self::new(resource, relation, subject)?
        })
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.object_type, self.object_id)
    }
}

impl fmt::Display for SubjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.object)?;
        if let Some(rel) = &self.relation {
            write!(f, "#{rel}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Relationship {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}@{}", self.resource, self.relation, self.subject)?;
        caveat::write_suffixes(f, self.caveat.as_ref(), self.expiration)
    }
}

/// Selects relationships. `None` fields match anything. `subject_relation` of
/// `Some("...")` matches only subjects without a relation.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RelationshipFilter {
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub relation: Option<String>,
    pub subject_type: Option<String>,
    pub subject_id: Option<String>,
    pub subject_relation: Option<String>,
}

impl RelationshipFilter {
    /// Whether `rel` matches every field this filter sets.
    pub fn matches(&self, rel: &Relationship) -> bool {
        fn field(want: &Option<String>, have: &str) -> bool {
            want.as_deref().is_none_or(|want| want == have)
        }
        let subject_relation = match self.subject_relation.as_deref() {
            None => true,
            Some(ELLIPSIS) => rel.subject.relation.is_none(),
            Some(want) => rel.subject.relation.as_deref() == Some(want),
        };
        field(&self.resource_type, &rel.resource.object_type)
            && field(&self.resource_id, &rel.resource.object_id)
            && field(&self.relation, &rel.relation)
            && field(&self.subject_type, &rel.subject.object.object_type)
            && field(&self.subject_id, &rel.subject.object.object_id)
            && subject_relation
    }
}

/// Checks every part of a relationship against the name and id rules (and a caveat
/// against its name rule and context size limit), so that nothing malformed reaches the
/// key encoding (whose terminator byte no valid name contains).
pub fn check_relationship(rel: &Relationship) -> Result<(), ModelError> {
    if let Some(caveat) = &rel.caveat {
        caveat.check()?;
    }
    let resource = &rel.resource;
    let subject = &rel.subject;
    if !is_valid_type_name(&resource.object_type) {
        return Err(ModelError::TypeName(resource.object_type.clone()));
    }
    if !is_valid_object_id(&resource.object_id) {
        return Err(if resource.object_id == WILDCARD_ID {
            ModelError::Wildcard(resource.to_string())
        } else {
            ModelError::ObjectId(resource.object_id.clone())
        });
    }
    if !is_valid_relation_name(&rel.relation) {
        return Err(ModelError::RelationName(rel.relation.clone()));
    }
    if !is_valid_type_name(&subject.object.object_type) {
        return Err(ModelError::TypeName(subject.object.object_type.clone()));
    }
    let wildcard = subject.object.object_id == WILDCARD_ID;
    if !wildcard && !is_valid_object_id(&subject.object.object_id) {
        return Err(ModelError::ObjectId(subject.object.object_id.clone()));
    }
    if let Some(relation) = &subject.relation {
        if !is_valid_relation_name(relation) {
            return Err(ModelError::RelationName(relation.clone()));
        }
        if wildcard {
            return Err(ModelError::Wildcard(subject.to_string()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(text: &str) {
        let rel: Relationship = text.parse().unwrap_or_else(|err| panic!("{text}: {err}"));
        assert_eq!(rel.to_string(), text);
    }

    #[test]
    fn relationship_text_form_roundtrips() {
        roundtrip("document:1#viewer@user:alice");
        roundtrip("project:p1#manager@group:eng#member");
        roundtrip("model:m1#guest@user:*");
        roundtrip("test/resource:first#viewer@test/user:concreteguy");
        roundtrip("abc/bcd/document:x|y=z+w-v_u#reader@user:tom");
    }

    #[test]
    fn suffixes_roundtrip() {
        roundtrip(r#"doc:1#viewer@user:tom[ip_allowlist:{"cidr":"10.0.0.0/8"}]"#);
        roundtrip("doc:1#viewer@user:tom[expiration:2026-12-01T00:00:00Z]");
        roundtrip(
            r#"doc:1#viewer@group:g#member[org/cav:{"a":[1,"]"],"b":{"c":null}}][expiration:2026-12-01T00:00:00.5Z]"#,
        );
        roundtrip("doc:1#viewer@user:*[third_caveat]");
    }

    #[test]
    fn suffixes_parse_into_fields() {
        let rel: Relationship =
            r#"doc:1#viewer@user:tom[ip_allowlist:{ "cidr" : "10.0.0.0/8" }][expiration:2026-12-01T01:00:00+01:00]"#
                .parse()
                .unwrap();
        let caveat = rel.caveat.clone().unwrap();
        assert_eq!(caveat.name, "ip_allowlist");
        assert_eq!(caveat.context["cidr"], "10.0.0.0/8");
        assert_eq!(
            rel.expiration,
            Some("2026-12-01T00:00:00Z".parse().unwrap())
        );
        assert!(rel.same_tuple(&"doc:1#viewer@user:tom".parse().unwrap()));
        assert_eq!(rel.tuple().to_string(), "doc:1#viewer@user:tom");
        let empty: Relationship = "doc:1#viewer@user:tom[c_1:{}]".parse().unwrap();
        assert_eq!(empty.to_string(), "doc:1#viewer@user:tom[c_1]");
    }

    #[test]
    fn bad_suffixes_name_the_wrong_part() {
        fn err(text: &str) -> ModelError {
            text.parse::<Relationship>().expect_err(text)
        }
        assert!(matches!(
            err("doc:1#viewer@user:tom[bad-name]"),
            ModelError::CaveatName { .. }
        ));
        assert!(matches!(
            err(&format!("doc:1#viewer@user:tom[{}]", "c".repeat(129))),
            ModelError::CaveatName { .. }
        ));
        // SpiceDB's caveat names: any case, any first character, short.
        for name in ["cv", "Cv", "1st", "_x", "ns/Ip_Check"] {
            let text = format!("doc:1#viewer@user:tom[{name}]");
            let rel: Relationship = text.parse().unwrap();
            assert_eq!(rel.to_string(), text);
        }
        assert!(matches!(
            err("doc:1#viewer@user:tom[expiration]"),
            ModelError::CaveatName { .. }
        ));
        assert!(matches!(
            err("doc:1#viewer@user:tom[cav:[1]]"),
            ModelError::CaveatContext { .. }
        ));
        assert!(matches!(
            err("doc:1#viewer@user:tom[cav:{\"a\":}]"),
            ModelError::CaveatContext { .. }
        ));
        assert!(matches!(
            err("doc:1#viewer@user:tom[expiration:2026-12-01]"),
            ModelError::Timestamp(_)
        ));
        for text in [
            "doc:1#viewer@user:tom[cav",
            "doc:1#viewer@user:tom[cav:{}",
            "doc:1#viewer@user:tom[cav]x",
            "doc:1#viewer@user:tom[cav][cav]",
            "doc:1#viewer@user:tom[expiration:2026-12-01T00:00:00Z][cav]",
            "doc:1#viewer@user:tom[expiration:2026-12-01T00:00:00Z][expiration:2026-12-01T00:00:00Z]",
            "doc:1#viewer@user:tom[expiration:2026-12-01T00:00:00Z",
            "doc:1#viewer[cav]@user:tom",
        ] {
            assert!(matches!(err(text), ModelError::Malformed { .. }), "{text}");
        }
        let big = format!(
            "doc:1#viewer@user:tom[cav:{{\"a\":\"{}\"}}]",
            "x".repeat(5000)
        );
        assert!(matches!(err(&big), ModelError::CaveatContext { .. }));
    }

    #[test]
    fn ellipsis_means_no_relation() {
        let rel: Relationship = "document:1#viewer@user:alice#...".parse().unwrap();
        assert_eq!(rel.subject.relation, None);
        assert_eq!(rel.to_string(), "document:1#viewer@user:alice");
    }

    #[test]
    fn errors_name_the_wrong_part() {
        let err = "Document:1#viewer@user:a"
            .parse::<Relationship>()
            .unwrap_err();
        assert_eq!(err, ModelError::TypeName("Document".into()));
        let err = "document:1#vi@user:a".parse::<Relationship>().unwrap_err();
        assert_eq!(err, ModelError::RelationName("vi".into()));
        let err = "document:a b#viewer@user:a"
            .parse::<Relationship>()
            .unwrap_err();
        assert_eq!(err, ModelError::ObjectId("a b".into()));
        let err = "document:*#viewer@user:a"
            .parse::<Relationship>()
            .unwrap_err();
        assert!(matches!(err, ModelError::Wildcard(_)));
        let err = "document:1#viewer@user:*#member"
            .parse::<Relationship>()
            .unwrap_err();
        assert!(matches!(err, ModelError::Wildcard(_)));
        let err = "document:1viewer@user:a"
            .parse::<Relationship>()
            .unwrap_err();
        assert!(matches!(err, ModelError::Malformed { .. }));
        let err = "document:1#viewer".parse::<Relationship>().unwrap_err();
        assert!(matches!(err, ModelError::Malformed { .. }));
        let err = "document:1#viewer@user"
            .parse::<Relationship>()
            .unwrap_err();
        assert!(matches!(err, ModelError::Malformed { .. }));
    }

    #[test]
    fn name_rules_follow_spicedb() {
        assert!(is_valid_type_name("user"));
        assert!(is_valid_type_name("org/sub/user"));
        assert!(!is_valid_type_name("us"));
        assert!(!is_valid_type_name("user_"));
        assert!(!is_valid_type_name("1user"));
        assert!(!is_valid_type_name("/user"));
        assert!(!is_valid_type_name("org//user"));
        assert!(is_valid_relation_name("abc"));
        assert!(!is_valid_relation_name("org/abc"));
        assert!(!is_valid_type_name("ns/user"));
        assert!(is_valid_relation_name(&"a".repeat(64)));
        assert!(!is_valid_relation_name(&"a".repeat(65)));
    }

    #[test]
    fn id_rules_follow_spicedb() {
        assert!(is_valid_object_id("a"));
        assert!(is_valid_object_id("A-z_0|9/=+"));
        assert!(is_valid_object_id(&"x".repeat(MAX_ID_LEN)));
        assert!(!is_valid_object_id(&"x".repeat(MAX_ID_LEN + 1)));
        assert!(!is_valid_object_id(""));
        assert!(!is_valid_object_id("a:b"));
        assert!(!is_valid_object_id("a#b"));
        assert!(!is_valid_object_id("*"));
    }
}
