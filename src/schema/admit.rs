//! What a compiled schema admits: validation of one relationship before it is written, and
//! the compatibility of a schema change with the relationships already stored.
//!
//! Both are pure functions of the compiled [`Schema`]; the engine calls them under its
//! write lock. A write is checked with [`check_relationship`]: unknown type or relation,
//! a tuple on a permission, a subject type, subject set or wildcard the relation does not
//! admit, or a malformed part each yield an [`AdmitError`] that names the relationship.
//! A schema change is checked with [`orphaned_usages`]: every way the new schema stops
//! admitting tuples the old one admitted, each as a filter the engine can count stored
//! tuples with (refusing the change when any match).

use std::fmt;

use crate::model::RelationshipFilter;
use crate::model::{ModelError, Relationship, WILDCARD_ID};
use crate::schema::compiled::{AllowedSubject, RelationKind, Schema};

/// Why a relationship may not be written under a schema.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AdmitError {
    /// The relationship names a caveat the schema does not declare.
    #[error("relationship `{relationship}`: caveat `{caveat}` is not defined in the schema")]
    UnknownCaveat {
        relationship: String,
        caveat: String,
    },
    /// The stored context does not fit the caveat's parameters.
    #[error("relationship `{relationship}`: {source}")]
    InvalidContext {
        relationship: String,
        source: Box<crate::caveat::CaveatError>,
    },
    /// The relation admits the subject, but not with this caveat (or without one).
    /// `message`: ``relation `doc#viewer` does not admit `user` with caveat `c`; it admits …``.
    #[error("relationship `{relationship}`: {message}")]
    CaveatNotAllowed {
        relationship: String,
        message: String,
    },
    /// The relation admits the subject, but not with an expiration.
    #[error("relationship `{relationship}`: {message}")]
    ExpirationNotAllowed {
        relationship: String,
        message: String,
    },
    #[error("relationship `{relationship}`: {source}")]
    Malformed {
        relationship: String,
        source: ModelError,
    },
    #[error("relationship `{relationship}`: type `{type_name}` is not defined in the schema")]
    UnknownType {
        relationship: String,
        type_name: String,
    },
    #[error("relationship `{relationship}`: type `{type_name}` has no relation `{relation}`")]
    UnknownRelation {
        relationship: String,
        type_name: String,
        relation: String,
    },
    #[error(
        "relationship `{relationship}`: `{type_name}#{relation}` is a permission, which is computed and cannot be written"
    )]
    Permission {
        relationship: String,
        type_name: String,
        relation: String,
    },
    #[error(
        "relationship `{relationship}`: relation `{type_name}#{relation}` does not admit subjects of the form `{subject}`; it admits {allowed}"
    )]
    SubjectNotAllowed {
        relationship: String,
        type_name: String,
        relation: String,
        /// The subject's shape: `user`, `user:*` or `group#member`.
        subject: String,
        /// The admitted shapes, each in backticks.
        allowed: String,
    },
}

/// Checks that `schema` admits `rel`: its resource type exists and has a relation (not a
/// permission) of that name, and that relation admits the subject's shape.
pub fn check_relationship(schema: &Schema, rel: &Relationship) -> Result<(), AdmitError> {
    let text = || rel.to_string();
    crate::model::check_relationship(rel).map_err(|source| AdmitError::Malformed {
        relationship: text(),
        source,
    })?;
    let type_name = &rel.resource.object_type;
    let definition = schema
        .definition(type_name)
        .ok_or_else(|| AdmitError::UnknownType {
            relationship: text(),
            type_name: type_name.clone(),
        })?;
    let relation_id = *definition
        .relation_by_name
        .get(&rel.relation)
        .ok_or_else(|| AdmitError::UnknownRelation {
            relationship: text(),
            type_name: type_name.clone(),
            relation: rel.relation.clone(),
        })?;
    let allowed = match &schema.relation_by_id(relation_id).kind {
        RelationKind::Relation { allowed } => allowed,
        RelationKind::Permission { .. } => {
            return Err(AdmitError::Permission {
                relationship: text(),
                type_name: type_name.clone(),
                relation: rel.relation.clone(),
            });
        }
    };
    let subject = &rel.subject;
    let shape = SubjectShape {
        type_name: &subject.object.object_type,
        wildcard: subject.object.object_id == WILDCARD_ID,
        relation: subject.relation.as_deref(),
    };
    let caveat = match &rel.caveat {
        None => None,
        Some(caveat) => {
            let id = *schema.caveat_by_name.get(&caveat.name).ok_or_else(|| {
                AdmitError::UnknownCaveat {
                    relationship: text(),
                    caveat: caveat.name.clone(),
                }
            })?;
            crate::caveat::validate_context(schema.caveat_by_id(id), &caveat.context).map_err(
                |source| AdmitError::InvalidContext {
                    relationship: text(),
                    source: Box::new(source),
                },
            )?;
            Some(id)
        }
    };
    // INVARIANT: a subject type `user with c` admits only tuples carrying `c`, and `user`
    // only tuples without a caveat: an uncaveated tuple under `user with c` would grant
    // without the condition. An expiration needs `with expiration` on the same type.
    let shapes: Vec<_> = schema
        .subject_types(relation_id)
        .iter()
        .filter(|it| shape.admitted_by(schema, it.subject))
        .collect();
    let with_caveat: Vec<_> = shapes.iter().filter(|it| it.caveat == caveat).collect();
    if with_caveat
        .iter()
        .any(|it| it.expiration || rel.expiration.is_none())
    {
        return Ok(());
    }
    let allowed = describe_subject_types(schema, relation_id, allowed);
    if shapes.is_empty() {
        return Err(AdmitError::SubjectNotAllowed {
            relationship: text(),
            type_name: type_name.clone(),
            relation: rel.relation.clone(),
            subject: shape.to_string(),
            allowed,
        });
    }
    if with_caveat.is_empty() {
        let condition = match &rel.caveat {
            Some(caveat) => format!("with caveat `{}`", caveat.name),
            None => "without a caveat".to_string(),
        };
        return Err(AdmitError::CaveatNotAllowed {
            relationship: text(),
            message: format!(
                "relation `{type_name}#{}` does not admit `{shape}` {condition}; it admits {allowed}",
                rel.relation
            ),
        });
    }
    Err(AdmitError::ExpirationNotAllowed {
        relationship: text(),
        message: format!(
            "relation `{type_name}#{}` does not admit `{shape}` with an expiration; it admits {allowed}",
            rel.relation
        ),
    })
}

/// One way a schema change would orphan stored relationships.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Orphan {
    /// Selects the stored relationships the change would orphan (together with
    /// [`Orphan::subject_ids`]).
    pub filter: RelationshipFilter,
    /// Which subject ids count: a narrowing that removes `user` but keeps `user:*` must not
    /// count wildcard tuples, and a filter cannot say "any id but `*`".
    pub subject_ids: SubjectIds,
    /// What changed, for the refusal message: ``relation `doc#viewer` was removed``.
    pub description: String,
}

/// Which subject ids an [`Orphan`] covers beyond its filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubjectIds {
    /// Whatever the filter selects.
    Any,
    /// Only concrete subjects, never the wildcard `*`.
    Concrete,
}

impl Orphan {
    /// Whether a stored relationship is one this change would orphan.
    pub fn matches(&self, rel: &Relationship) -> bool {
        self.filter.matches(rel)
            && match self.subject_ids {
                SubjectIds::Any => true,
                SubjectIds::Concrete => rel.subject.object.object_id != WILDCARD_ID,
            }
    }
}

/// Every usage `old` admits that `new` does not: removed types (as resource and as
/// subject), removed relations, relations turned into permissions, and subject shapes a
/// relation no longer admits (a type, a wildcard or a subject set). Names are compared,
/// not ids, since the two schemas intern independently. Usages covered by a removed type
/// are reported once, as the removed type.
pub fn orphaned_usages(old: &Schema, new: &Schema) -> Vec<Orphan> {
    let mut res = Vec::new();
    for definition in &old.definitions {
        let type_name = &definition.name;
        if new.definition(type_name).is_none() {
            res.push(Orphan {
                filter: RelationshipFilter {
                    resource_type: Some(type_name.clone()),
                    ..Default::default()
                },
                subject_ids: SubjectIds::Any,
                description: format!("type `{type_name}` was removed"),
            });
            res.push(Orphan {
                filter: RelationshipFilter {
                    subject_type: Some(type_name.clone()),
                    ..Default::default()
                },
                subject_ids: SubjectIds::Any,
                description: format!("type `{type_name}` was removed but is used as a subject"),
            });
            continue;
        }
        for relation_id in &definition.relations {
            let old_relation = old.relation_by_id(*relation_id);
            let RelationKind::Relation { allowed } = &old_relation.kind else {
                continue;
            };
            let name = &old_relation.name;
            let whole = RelationshipFilter {
                resource_type: Some(type_name.clone()),
                relation: Some(name.clone()),
                ..Default::default()
            };
            let new_allowed = match new.relation(type_name, name).map(|it| &it.kind) {
                None => {
                    res.push(Orphan {
                        filter: whole,
                        subject_ids: SubjectIds::Any,
                        description: format!("relation `{type_name}#{name}` was removed"),
                    });
                    continue;
                }
                Some(RelationKind::Permission { .. }) => {
                    res.push(Orphan {
                        filter: whole,
                        subject_ids: SubjectIds::Any,
                        description: format!("relation `{type_name}#{name}` became a permission"),
                    });
                    continue;
                }
                Some(RelationKind::Relation { allowed }) => allowed,
            };
            for old_subject in allowed {
                let shape = allowed_name(old, *old_subject);
                if new.definition(shape.type_name).is_none() {
                    continue;
                }
                let still = new_allowed.iter().any(|it| allowed_name(new, *it) == shape);
                if still {
                    continue;
                }
                let mut filter = whole.clone();
                filter.subject_type = Some(shape.type_name.to_string());
                let mut subject_ids = SubjectIds::Any;
                match (shape.wildcard, shape.relation) {
                    (true, _) => filter.subject_id = Some(WILDCARD_ID.to_string()),
                    (false, Some(rel)) => filter.subject_relation = Some(rel.to_string()),
                    (false, None) => {
                        filter.subject_relation = Some(crate::model::ELLIPSIS.to_string());
                        subject_ids = SubjectIds::Concrete;
                    }
                }
                res.push(Orphan {
                    filter,
                    subject_ids,
                    description: format!(
                        "relation `{type_name}#{name}` no longer admits `{shape}`"
                    ),
                });
            }
        }
    }
    res
}

/// The shape of a subject or of an allowed subject type, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SubjectShape<'a> {
    type_name: &'a str,
    wildcard: bool,
    relation: Option<&'a str>,
}

impl SubjectShape<'_> {
    fn admitted_by(&self, schema: &Schema, allowed: AllowedSubject) -> bool {
        allowed_name(schema, allowed) == *self
    }
}

impl fmt::Display for SubjectShape<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.type_name)?;
        if self.wildcard {
            write!(f, ":*")?;
        }
        if let Some(rel) = self.relation {
            write!(f, "#{rel}")?;
        }
        Ok(())
    }
}

fn allowed_name(schema: &Schema, allowed: AllowedSubject) -> SubjectShape<'_> {
    match allowed {
        AllowedSubject::Object(type_id) => SubjectShape {
            type_name: &schema.definition_by_id(type_id).name,
            wildcard: false,
            relation: None,
        },
        AllowedSubject::Wildcard(type_id) => SubjectShape {
            type_name: &schema.definition_by_id(type_id).name,
            wildcard: true,
            relation: None,
        },
        AllowedSubject::SubjectSet(type_id, relation_id) => SubjectShape {
            type_name: &schema.definition_by_id(type_id).name,
            wildcard: false,
            relation: Some(&schema.relation_by_id(relation_id).name),
        },
    }
}

fn describe_allowed(schema: &Schema, allowed: &[AllowedSubject]) -> String {
    if allowed.is_empty() {
        return "no subjects".to_string();
    }
    let names: Vec<String> = allowed
        .iter()
        .map(|it| format!("`{}`", allowed_name(schema, *it)))
        .collect();
    names.join(", ")
}

/// The admitted subject types of a relation as written, with their `with` clauses.
fn describe_subject_types(
    schema: &Schema,
    relation_id: crate::schema::RelationId,
    allowed: &[AllowedSubject],
) -> String {
    let types = schema.subject_types(relation_id);
    if types.is_empty() {
        return describe_allowed(schema, allowed);
    }
    let names: Vec<String> = types
        .iter()
        .map(|it| {
            let mut text = allowed_name(schema, it.subject).to_string();
            match (it.caveat, it.expiration) {
                (Some(caveat), true) => {
                    text.push_str(&format!(
                        " with {} and expiration",
                        schema.caveat_by_id(caveat).name()
                    ));
                }
                (Some(caveat), false) => {
                    text.push_str(&format!(" with {}", schema.caveat_by_id(caveat).name()));
                }
                (None, true) => text.push_str(" with expiration"),
                (None, false) => {}
            }
            format!("`{text}`")
        })
        .collect();
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(text: &str) -> Schema {
        crate::schema::parse_and_compile(text)
            .unwrap_or_else(|err| panic!("test schema does not compile: {err:?}"))
    }

    fn base() -> Schema {
        schema(
            "definition user {}
             definition group { relation member: user | group#member }
             definition doc {
                 relation viewer: user | user:* | group#member
                 relation editor: user
                 permission view = viewer + editor
             }",
        )
    }

    fn check(text: &str) -> Result<(), String> {
        let rel: Relationship = text.parse().unwrap();
        check_relationship(&base(), &rel).map_err(|err| err.to_string())
    }

    #[test]
    fn admitted_relationships_pass() {
        for text in [
            "doc:1#viewer@user:alice",
            "doc:1#viewer@user:*",
            "doc:1#viewer@group:eng#member",
            "group:eng#member@group:ops#member",
        ] {
            assert_eq!(check(text), Ok(()), "{text}");
        }
    }

    #[test]
    fn each_refusal_names_the_relationship_and_the_reason() {
        let cases = [
            (
                "folder:1#viewer@user:a",
                "relationship `folder:1#viewer@user:a`: type `folder` is not defined in the schema",
            ),
            (
                "doc:1#owner@user:a",
                "relationship `doc:1#owner@user:a`: type `doc` has no relation `owner`",
            ),
            (
                "doc:1#view@user:a",
                "relationship `doc:1#view@user:a`: `doc#view` is a permission, which is computed and cannot be written",
            ),
            (
                "doc:1#editor@user:*",
                "relationship `doc:1#editor@user:*`: relation `doc#editor` does not admit subjects of the form `user:*`; it admits `user`",
            ),
            (
                "doc:1#editor@group:eng#member",
                "relationship `doc:1#editor@group:eng#member`: relation `doc#editor` does not admit subjects of the form `group#member`; it admits `user`",
            ),
            (
                "doc:1#viewer@group:eng",
                "relationship `doc:1#viewer@group:eng`: relation `doc#viewer` does not admit subjects of the form `group`; it admits `user`, `user:*`, `group#member`",
            ),
            (
                "doc:1#viewer@robot:r",
                "relationship `doc:1#viewer@robot:r`: relation `doc#viewer` does not admit subjects of the form `robot`; it admits `user`, `user:*`, `group#member`",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(check(text), Err(expected.to_string()));
        }
    }

    #[test]
    fn a_malformed_id_is_refused_with_the_relationship() {
        let mut rel: Relationship = "doc:1#viewer@user:a".parse().unwrap();
        rel.resource.object_id = "a b".into();
        let err = check_relationship(&base(), &rel).unwrap_err().to_string();
        assert!(
            err.starts_with("relationship `doc:a b#viewer@user:a`: invalid object id `a b`"),
            "{err}"
        );
    }

    fn descriptions(old: &Schema, new: &Schema) -> Vec<String> {
        orphaned_usages(old, new)
            .into_iter()
            .map(|it| it.description)
            .collect()
    }

    #[test]
    fn an_identical_or_wider_schema_orphans_nothing() {
        assert!(orphaned_usages(&base(), &base()).is_empty());
        let wider = schema(
            "definition user {}
             definition robot {}
             definition group { relation member: user | group#member | robot }
             definition doc {
                 permission view = viewer + editor
                 relation viewer: group#member | user:* | user | robot
                 relation editor: user | user:*
                 relation owner: user
             }",
        );
        assert!(orphaned_usages(&base(), &wider).is_empty());
    }

    #[test]
    fn every_narrowing_is_reported_with_its_filter() {
        let narrower = schema(
            "definition user {}
             definition group { relation member: user }
             definition doc {
                 relation viewer: user:*
                 permission editor = viewer
             }",
        );
        assert_eq!(
            descriptions(&base(), &narrower),
            [
                "relation `group#member` no longer admits `group#member`",
                "relation `doc#viewer` no longer admits `user`",
                "relation `doc#viewer` no longer admits `group#member`",
                "relation `doc#editor` became a permission",
            ]
        );
        let orphans = orphaned_usages(&base(), &narrower);
        let viewer_user = &orphans[1];
        assert_eq!(viewer_user.subject_ids, SubjectIds::Concrete);
        assert!(viewer_user.matches(&"doc:1#viewer@user:a".parse().unwrap()));
        assert!(!viewer_user.matches(&"doc:1#viewer@user:*".parse().unwrap()));
        assert!(!viewer_user.matches(&"doc:1#viewer@group:g#member".parse().unwrap()));
        assert!(orphans[2].matches(&"doc:1#viewer@group:g#member".parse().unwrap()));
    }

    #[test]
    fn removed_types_and_relations_are_reported_once() {
        let smaller = schema(
            "definition user {}
             definition doc { relation viewer: user | user:* }",
        );
        assert_eq!(
            descriptions(&base(), &smaller),
            [
                "type `group` was removed",
                "type `group` was removed but is used as a subject",
                "relation `doc#editor` was removed",
            ]
        );
        let orphans = orphaned_usages(&base(), &smaller);
        assert!(orphans[1].matches(&"doc:1#viewer@group:g#member".parse().unwrap()));
        assert!(orphans[0].matches(&"group:g#member@user:a".parse().unwrap()));
    }

    #[test]
    fn caveat_only_subject_types_refuse_uncaveated_relationships() {
        let schema = schema(
            "caveat cav(a int) { a == 1 }
             definition user {}
             definition doc { relation only: user with cav  relation both: user | user with cav }",
        );
        let only: Relationship = "doc:1#only@user:tom".parse().unwrap();
        assert!(matches!(
            check_relationship(&schema, &only),
            Err(AdmitError::CaveatNotAllowed { .. })
        ));
        let both: Relationship = "doc:1#both@user:tom".parse().unwrap();
        assert!(check_relationship(&schema, &both).is_ok());
    }

    /// Issue 11: each relationship with a caveat or an expiration is admitted only as the
    /// schema's `with` clauses say, and each refusal names the relationship and the rule.
    #[test]
    fn issue11_caveats_and_expirations_are_validated_on_write() {
        let schema = schema(
            "use expiration
             caveat ip_allowlist(cidr string, ip ipaddress) { ip.in_cidr(cidr) }
             caveat tier(level int) { level > 1 }
             definition user {}
             definition group { relation member: user }
             definition doc {
                 relation viewer: user | user with ip_allowlist | group#member with tier
                 relation temp: user with expiration | user with ip_allowlist and expiration
                 relation plain: user
             }",
        );
        let cases: &[(&str, Option<&str>)] = &[
            ("doc:1#viewer@user:tom", None),
            (
                r#"doc:1#viewer@user:tom[ip_allowlist:{"cidr":"10.0.0.0/8"}]"#,
                None,
            ),
            ("doc:1#viewer@user:tom[ip_allowlist]", None),
            ("doc:1#viewer@group:g#member[tier]", None),
            ("doc:1#temp@user:tom[expiration:2026-12-01T00:00:00Z]", None),
            (
                "doc:1#temp@user:tom[ip_allowlist][expiration:2026-12-01T00:00:00Z]",
                None,
            ),
            // Expiring in the past is accepted, as SpiceDB does (never visible).
            ("doc:1#temp@user:tom[expiration:2000-01-01T00:00:00Z]", None),
            (
                "doc:1#viewer@user:tom[tier]",
                Some("does not admit `user` with caveat `tier`"),
            ),
            (
                "doc:1#viewer@group:g#member",
                Some("does not admit `group#member` without a caveat"),
            ),
            (
                "doc:1#viewer@user:tom[nope]",
                Some("caveat `nope` is not defined in the schema"),
            ),
            (
                r#"doc:1#viewer@user:tom[ip_allowlist:{"cidr":5}]"#,
                Some("invalid value for parameter `cidr` of caveat `ip_allowlist`"),
            ),
            (
                r#"doc:1#viewer@user:tom[ip_allowlist:{"other":"x"}]"#,
                Some("caveat `ip_allowlist` has no parameter `other`"),
            ),
            (
                "doc:1#viewer@user:tom[expiration:2026-12-01T00:00:00Z]",
                Some("does not admit `user` with an expiration"),
            ),
            // `with expiration` makes the expiration optional (as `Schema::admits`).
            ("doc:1#temp@user:tom", None),
            (
                "doc:1#plain@user:tom[expiration:2026-12-01T00:00:00Z]",
                Some("does not admit `user` with an expiration; it admits `user`"),
            ),
        ];
        for (text, want) in cases {
            let rel: Relationship = text.parse().unwrap();
            match (check_relationship(&schema, &rel), want) {
                (Ok(()), None) => {}
                (Err(err), Some(want)) => {
                    let message = err.to_string();
                    assert!(message.contains(want), "{text}: {message}");
                    assert!(
                        message.starts_with("relationship `doc:1#"),
                        "{text}: {message}"
                    );
                }
                (got, want) => panic!("{text}: expected {want:?}, got {got:?}"),
            }
        }
    }
}
