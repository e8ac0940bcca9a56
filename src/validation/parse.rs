//! The three small syntaxes inside a validation file: relationship lines, assertion
//! strings, and expected-relation entries (`[user:alice] is <doc:1#viewer>`).
//!
//! Relationships may carry SpiceDB's caveat and expiration suffixes; an assertion may
//! carry a caveat context (` with {\"ip\": \"10.0.0.1\"}`); an expected subject may carry
//! SpiceDB's caveat marker `[user:tom[...]]`.

use std::fmt;

use crate::model::{ObjectRef, Relationship, SubjectRef};

use super::ValidationError;

/// A feature name for [`ValidationError::Unsupported`].
pub const CAVEATS: &str = "caveats";
/// A feature name for [`ValidationError::Unsupported`].
pub const EXPIRATION: &str = "expiration";

/// One relationship line: `res#rel@subject`, optionally with `[caveat:{…}]` and
/// `[expiration:…]` suffixes.
pub fn relationship(line: &str) -> Result<Relationship, ValidationError> {
    line.parse()
        .map_err(|source| ValidationError::InvalidRelationship {
            text: line.to_string(),
            source,
        })
}

/// One assertion without a context: `res#permission@subject` (a context is refused as
/// unsupported here; [`assertion_with_context`] reads it).
pub fn assertion(text: &str) -> Result<Relationship, ValidationError> {
    let (res, context) = assertion_with_context(text)?;
    if context.is_some() {
        return Err(ValidationError::Unsupported(format!(
            "{CAVEATS} (assertion context in `{}`)",
            text.trim()
        )));
    }
    Ok(res)
}

/// One assertion: `res#permission@subject`, optionally ` with {context}`, a JSON object
/// of caveat parameter values.
pub fn assertion_with_context(
    text: &str,
) -> Result<(Relationship, Option<crate::engine::Context>), ValidationError> {
    let trimmed = text.trim();
    let (check, context) = match trimmed.split_once(" with ") {
        Some((check, context)) => {
            let context = match serde_json::from_str::<serde_json::Value>(context.trim()) {
                Ok(serde_json::Value::Object(map)) => map,
                _ => {
                    return Err(ValidationError::InvalidAssertion {
                        text: trimmed.to_string(),
                        source: crate::model::ModelError::Malformed {
                            what: "assertion",
                            input: trimmed.to_string(),
                            expected: "a JSON object after ` with `",
                        },
                    });
                }
            };
            (check.trim(), Some(context))
        }
        None => (trimmed, None),
    };
    let res: Relationship = check
        .parse()
        .map_err(|source| ValidationError::InvalidAssertion {
            text: trimmed.to_string(),
            source,
        })?;
    if res.is_conditional() {
        return Err(ValidationError::InvalidAssertion {
            text: trimmed.to_string(),
            source: crate::model::ModelError::Malformed {
                what: "assertion",
                input: trimmed.to_string(),
                expected: "`type:id#permission@subject` without `[…]` suffixes",
            },
        });
    }
    Ok((res, context))
}

/// An object and one of its relations or permissions: `doc:1#viewer`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectRelation {
    pub object: ObjectRef,
    pub relation: String,
}

impl fmt::Display for ObjectRelation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.object, self.relation)
    }
}

/// Parses `type:id#relation`.
pub fn object_relation(text: &str) -> Result<ObjectRelation, ValidationError> {
    let invalid = |reason: String| ValidationError::InvalidExpected {
        text: text.to_string(),
        reason,
    };
    let trimmed = text.trim();
    let (object, relation) = trimmed
        .split_once('#')
        .ok_or_else(|| invalid("expected `type:id#relation`".to_string()))?;
    let object: ObjectRef = object.parse().map_err(|err| invalid(format!("{err}")))?;
    if !crate::model::is_valid_relation_name(relation) {
        return Err(invalid(format!("invalid relation name `{relation}`")));
    }
    Ok(ObjectRelation {
        object,
        relation: relation.to_string(),
    })
}

/// A subject of an expected relation or of an expansion: an object, a subject set, or a
/// wildcard with the subjects it excludes; and the relations directly holding it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundSubject {
    pub subject: SubjectRef,
    /// Only for a wildcard: subjects of its type it does not reach, sorted.
    pub excluded: Vec<SubjectRef>,
    /// The `<object#relation>` list, sorted and without duplicates.
    pub resources: Vec<ObjectRelation>,
}

impl fmt::Display for FoundSubject {
    /// SpiceDB's notation: `[user:* - {user:fred}] is <doc:1#viewer>/<doc:1#editor>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}", self.subject)?;
        if !self.excluded.is_empty() {
            let excluded: Vec<String> = self.excluded.iter().map(ToString::to_string).collect();
            write!(f, " - {{{}}}", excluded.join(", "))?;
        }
        write!(f, "] is ")?;
        let resources: Vec<String> = self
            .resources
            .iter()
            .map(|resource| format!("<{resource}>"))
            .collect();
        write!(f, "{}", resources.join("/"))
    }
}

/// Parses an expected-relation entry: `[SUBJECT] is <ONR>/<ONR>…` where SUBJECT is
/// `type:id`, `type:id#relation`, `type:*` or `type:* - {type:id, …}`.
pub fn expected_subject(text: &str) -> Result<FoundSubject, ValidationError> {
    let invalid = |reason: &str| ValidationError::InvalidExpected {
        text: text.to_string(),
        reason: reason.to_string(),
    };
    let open = text
        .find('[')
        .ok_or_else(|| invalid("expected `[subject] is <type:id#relation>`"))?;
    let close = text
        .rfind(']')
        .filter(|close| *close > open)
        .ok_or_else(|| invalid("expected `]` after the subject"))?;
    let inside = text[open + 1..close].trim();
    let (subject_text, exceptions) = match inside.split_once(" - ") {
        Some((subject, exceptions)) => (subject.trim(), Some(exceptions.trim())),
        None => (inside, None),
    };
    if subject_text.ends_with("[...]") || exceptions.is_some_and(|it| it.contains("[...]")) {
        return Err(ValidationError::Unsupported(format!(
            "{CAVEATS} (caveated subject in `{text}`)"
        )));
    }
    let subject = parse_subject(subject_text).map_err(|reason| invalid(&reason))?;
    let mut excluded = Vec::new();
    if let Some(exceptions) = exceptions {
        if !subject.is_wildcard() {
            return Err(invalid("only a wildcard subject can have exceptions"));
        }
        let list = exceptions
            .strip_prefix('{')
            .and_then(|it| it.strip_suffix('}'))
            .ok_or_else(|| invalid("expected `{subject, …}` after ` - `"))?;
        for item in list.split(',') {
            excluded.push(parse_subject(item.trim()).map_err(|reason| invalid(&reason))?);
        }
        excluded.sort();
        excluded.dedup();
    }
    let mut resources = Vec::new();
    let mut rest = &text[close + 1..];
    while let Some(start) = rest.find('<') {
        let end = rest[start..]
            .find('>')
            .ok_or_else(|| invalid("expected `>` after `<`"))?;
        resources.push(object_relation(&rest[start + 1..start + end])?);
        rest = &rest[start + end + 1..];
    }
    resources.sort();
    resources.dedup();
    Ok(FoundSubject {
        subject,
        excluded,
        resources,
    })
}

fn parse_subject(text: &str) -> Result<SubjectRef, String> {
    text.parse::<SubjectRef>().map_err(|err| err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relationship_suffixes_are_read() {
        for line in [
            "doc:1#viewer@user:tom[some_caveat]",
            "doc:1#viewer@user:tom[expiration:2323-01-02T13:14:15Z]",
            "doc:1#viewer@user:tom[cav:{\"a\":1}][expiration:2123-01-02T13:14:15Z]",
        ] {
            let rel = relationship(line).unwrap_or_else(|err| panic!("{line}: {err}"));
            assert!(rel.is_conditional(), "{line}");
        }
        assert_eq!(
            relationship("doc:1#viewer@user:tom#...")
                .map(|it| it.to_string())
                .ok(),
            Some("doc:1#viewer@user:tom".to_string())
        );
        assert!(matches!(
            relationship("doc:1viewer@user:tom"),
            Err(ValidationError::InvalidRelationship { .. })
        ));
    }

    #[test]
    fn assertion_context_is_read_and_must_be_an_object() {
        let (rel, context) = assertion_with_context("doc:1#view@user:tom with {\"a\": 1}").unwrap();
        assert_eq!(rel.to_string(), "doc:1#view@user:tom");
        assert_eq!(context.unwrap().get("a"), Some(&serde_json::json!(1)));
        assert!(matches!(
            assertion_with_context("doc:1#view@user:tom with [1]"),
            Err(ValidationError::InvalidAssertion { .. })
        ));
        assert!(matches!(
            assertion("doc:1#view@user:tom with {\"a\": 1}"),
            Err(ValidationError::Unsupported(_))
        ));
        assert_eq!(
            assertion(" doc:1#view@group:eng#member ")
                .map(|it| it.to_string())
                .ok(),
            Some("doc:1#view@group:eng#member".to_string())
        );
    }

    #[test]
    fn expected_subjects_round_trip() {
        for text in [
            "[user:alice] is <doc:1#viewer>",
            "[group:eng#member] is <doc:1#editor>/<doc:1#viewer>",
            "[user:* - {user:fred, user:jimmy}] is <document:somedoc#viewer>",
            "[user:*] is <abc/doc:x|y#viewer>",
        ] {
            let parsed = expected_subject(text).unwrap_or_else(|err| panic!("{text}: {err}"));
            assert_eq!(parsed.to_string(), text);
        }
    }

    #[test]
    fn expected_subjects_are_normalised() {
        let parsed = expected_subject("[user:jimmy]   is <doc:1#writer>/<doc:1#viewer>").unwrap();
        assert_eq!(
            parsed.to_string(),
            "[user:jimmy] is <doc:1#viewer>/<doc:1#writer>"
        );
        let parsed = expected_subject("[user:* - {user:b,user:a}] is <doc:1#viewer>").unwrap();
        assert_eq!(
            parsed.to_string(),
            "[user:* - {user:a, user:b}] is <doc:1#viewer>"
        );
    }

    #[test]
    fn expected_subject_errors() {
        assert!(matches!(
            expected_subject("[user:tom[...]] is <doc:1#viewer>"),
            Err(ValidationError::Unsupported(_))
        ));
        for bad in [
            "user:tom is <doc:1#viewer>",
            "[user:tom - {user:a}] is <doc:1#viewer>",
            "[user:tom] is <doc:1>",
            "[user:tom] is <doc:1#viewer",
            "[User:tom] is <doc:1#viewer>",
        ] {
            assert!(
                matches!(
                    expected_subject(bad),
                    Err(ValidationError::InvalidExpected { .. })
                ),
                "{bad}"
            );
        }
    }
}
