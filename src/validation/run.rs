//! Loading validation files into an engine and evaluating them.
//!
//! A [`Session`] owns one in-memory engine. [`Session::load`] installs a file's schema and
//! writes its relationships (all or nothing: any bad line stops the load, and every bad
//! line is reported); [`Session::run`] evaluates its assertions and expected relations.
//! Several files can be loaded into one session, as SpiceDB's loader allows (a file of
//! relationships for a schema given by an earlier file).

use std::collections::BTreeSet;

use crate::engine::{
    Arbiter, CheckRequest, Config, Consistency, ExpandDepth, ExpandRequest, Permissionship,
};
use crate::model::Relationship;
use crate::schema::admit::check_relationship;
use crate::schema::{SchemaErrorKind, parse_and_compile};

use super::file::{ExpectedBlock, Located, SchemaOrigin, SchemaSource, ValidationFile};
use super::membership::Membership;
use super::parse::{self, CAVEATS, FoundSubject};
use super::{Finding, ValidationError};

/// An in-memory engine that validation files are loaded into.
pub struct Session {
    engine: Arbiter,
}

impl Session {
    /// A session over a fresh in-memory engine with the default configuration.
    pub fn new() -> Result<Self, ValidationError> {
        let engine = Arbiter::in_memory(Config::default())
            .map_err(|err| ValidationError::Engine(Box::new(err)))?;
        Ok(Self { engine })
    }

    /// The engine, for callers that ask it more than the file does.
    pub fn engine(&self) -> &Arbiter {
        &self.engine
    }

    /// Installs the file's schema (if it has one) and writes its relationships. Returns
    /// every problem found; when there is any, nothing of the relationships was written.
    pub fn load(&mut self, file: &ValidationFile) -> Vec<Finding> {
        let mut findings = Vec::new();
        if let Some(schema) = &file.schema {
            self.install_schema(schema, &mut findings);
            if !findings.is_empty() {
                return findings;
            }
        }
        if file.relationships.is_empty() {
            return findings;
        }
        let Some(schema) = self.engine.schema() else {
            let line = file.relationships.first().map_or(0, |it| it.line);
            findings.push(Finding {
                line,
                error: ValidationError::NoSchema,
            });
            return findings;
        };
        let mut seen = BTreeSet::new();
        let mut relationships = Vec::with_capacity(file.relationships.len());
        for Located { line, text } in &file.relationships {
            let line = *line;
            let relationship = match parse::relationship(text) {
                Ok(relationship) => relationship,
                Err(error) => {
                    findings.push(Finding { line, error });
                    continue;
                }
            };
            // A tuple is one relationship whatever its caveat or expiration (SpiceDB's
            // rule): the same tuple twice is refused even when the suffixes differ.
            let tuple = (
                relationship.resource.clone(),
                relationship.relation.clone(),
                relationship.subject.clone(),
            );
            if !seen.insert(tuple) {
                findings.push(Finding {
                    line,
                    error: ValidationError::RepeatedRelationship(text.clone()),
                });
                continue;
            }
            if let Err(err) = check_relationship(&schema, &relationship) {
                findings.push(Finding {
                    line,
                    error: ValidationError::Rejected(Box::new(err)),
                });
                continue;
            }
            relationships.push(relationship);
        }
        if findings.is_empty()
            && let Err(err) = self.engine.import(&mut relationships.into_iter())
        {
            findings.push(Finding {
                line: file.relationships.first().map_or(0, |it| it.line),
                error: ValidationError::Engine(Box::new(err)),
            });
        }
        findings
    }

    /// Evaluates the file's assertions and expected relations against what is loaded.
    /// Returns how many were evaluated and every one that failed.
    pub fn run(&self, file: &ValidationFile) -> (usize, Vec<Finding>) {
        let mut findings = Vec::new();
        let mut n_checked = 0;
        for (kind, items, expected) in [
            (
                "assertTrue",
                &file.assert_true,
                Permissionship::HasPermission,
            ),
            (
                "assertFalse",
                &file.assert_false,
                Permissionship::NoPermission,
            ),
            (
                "assertCaveated",
                &file.assert_caveated,
                Permissionship::ConditionalPermission,
            ),
        ] {
            for item in items {
                n_checked += 1;
                if let Err(error) = self.assertion(kind, &item.text, expected) {
                    findings.push(Finding {
                        line: item.line,
                        error,
                    });
                }
            }
        }
        for block in &file.expected {
            n_checked += 1;
            self.expected_relations(block, &mut findings);
        }
        (n_checked, findings)
    }

    fn install_schema(&mut self, schema: &SchemaSource, findings: &mut Vec<Finding>) {
        let line = match &schema.origin {
            SchemaOrigin::Inline { line } | SchemaOrigin::File { line, .. } => *line,
        };
        let compiled = match parse_and_compile(&schema.text) {
            Ok(compiled) => compiled,
            Err(errors) => {
                let unsupported: Vec<&str> = errors
                    .errors()
                    .iter()
                    .filter_map(|err| match err.kind {
                        SchemaErrorKind::Unsupported(construct) => Some(construct),
                        _ => None,
                    })
                    .collect();
                if unsupported.is_empty() {
                    for err in errors.errors() {
                        let place = match &schema.origin {
                            SchemaOrigin::Inline { .. } => {
                                format!("line {}, column {}", err.loc.line, err.loc.column)
                            }
                            SchemaOrigin::File { path, .. } => {
                                format!("{}:{}:{}", path.display(), err.loc.line, err.loc.column)
                            }
                        };
                        findings.push(Finding {
                            line,
                            error: ValidationError::InvalidSchema {
                                place,
                                message: err.kind.to_string(),
                            },
                        });
                    }
                } else {
                    let mut constructs: Vec<&str> = Vec::new();
                    for construct in unsupported {
                        if !constructs.contains(&construct) {
                            constructs.push(construct);
                        }
                    }
                    for construct in constructs {
                        findings.push(Finding {
                            line,
                            error: ValidationError::Unsupported(feature_of(construct)),
                        });
                    }
                }
                return;
            }
        };
        if let Err(err) = self.engine.write_compiled_schema(compiled, &schema.text) {
            findings.push(Finding {
                line,
                error: ValidationError::Engine(Box::new(err)),
            });
        }
    }

    fn assertion(
        &self,
        kind: &'static str,
        text: &str,
        expected: Permissionship,
    ) -> Result<(), ValidationError> {
        let (
            Relationship {
                resource,
                relation,
                subject,
                ..
            },
            context,
        ) = parse::assertion_with_context(text)?;
        let request = CheckRequest {
            resource,
            permission: relation,
            subject,
            context,
        };
        let decision = self
            .engine
            .check(&request, Consistency::Full)
            .map_err(|source| ValidationError::CheckFailed {
                kind,
                text: text.trim().to_string(),
                source: Box::new(source),
            })?;
        if decision.permissionship == expected {
            return Ok(());
        }
        Err(ValidationError::AssertionFailed {
            kind,
            text: text.trim().to_string(),
            answer: match decision.permissionship {
                Permissionship::HasPermission => "allowed",
                Permissionship::NoPermission => "denied",
                Permissionship::ConditionalPermission => "conditional",
            },
        })
    }

    fn expected_relations(&self, block: &ExpectedBlock, findings: &mut Vec<Finding>) {
        let resource_line = block.resource.line;
        let resource = match parse::object_relation(&block.resource.text) {
            Ok(resource) => resource,
            Err(error) => {
                findings.push(Finding {
                    line: resource_line,
                    error,
                });
                return;
            }
        };
        let mut expected: Vec<(usize, FoundSubject)> = Vec::new();
        for item in &block.subjects {
            match parse::expected_subject(&item.text) {
                Ok(subject) => expected.push((item.line, subject)),
                Err(error) => findings.push(Finding {
                    line: item.line,
                    error,
                }),
            }
        }
        let found = match self.found_subjects(&resource) {
            Ok(found) => found,
            Err(error) => {
                findings.push(Finding {
                    line: resource_line,
                    error,
                });
                return;
            }
        };
        let resource_text = resource.to_string();
        for (line, want) in &expected {
            let error = match found.iter().find(|it| it.subject == want.subject) {
                None => ValidationError::MissingSubject {
                    resource: resource_text.clone(),
                    expected: want.to_string(),
                },
                Some(got) if got != want => ValidationError::DifferentSubject {
                    resource: resource_text.clone(),
                    expected: want.to_string(),
                    found: got.to_string(),
                },
                Some(_) => continue,
            };
            findings.push(Finding { line: *line, error });
        }
        for got in &found {
            if !expected.iter().any(|(_, want)| want.subject == got.subject) {
                findings.push(Finding {
                    line: resource_line,
                    error: ValidationError::ExtraSubject {
                        resource: resource_text.clone(),
                        found: got.to_string(),
                    },
                });
            }
        }
    }

    /// The subjects a recursive expansion of `resource` reaches, sorted.
    pub fn found_subjects(
        &self,
        resource: &parse::ObjectRelation,
    ) -> Result<Vec<FoundSubject>, ValidationError> {
        let request = ExpandRequest {
            resource: resource.object.clone(),
            permission: resource.relation.clone(),
            depth: ExpandDepth::Recursive,
        };
        let expansion = self
            .engine
            .expand(&request, Consistency::Full)
            .map_err(|source| ValidationError::ExpandFailed {
                resource: resource.to_string(),
                source: Box::new(source),
            })?;
        Ok(Membership::of_tree(&expansion.tree)?.found())
    }
}

/// The feature name for a schema construct the parser does not support, so that a file is
/// reported as needing `caveats`, not as needing `caveats (`with`)`.
fn feature_of(construct: &str) -> String {
    let feature = if construct.contains("caveat") {
        CAVEATS
    } else if construct.contains("expiration") {
        parse::EXPIRATION
    } else {
        return construct.to_string();
    };
    format!("{feature} (schema: {construct})")
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const SCHEMA: &str = "schema: |\n  definition user {}\n  definition doc {\n    relation viewer: user\n    relation owner: user\n    permission view = viewer + owner\n  }\n";

    fn file(text: &str) -> ValidationFile {
        ValidationFile::parse(Path::new("t.yaml"), text)
            .unwrap_or_else(|(line, err)| panic!("{line}: {err}"))
    }

    /// `LINE: message` of every finding of loading and (if it loaded) running `text`.
    fn findings(text: &str) -> Vec<String> {
        let file = file(text);
        let mut session = Session::new().unwrap();
        let mut findings = session.load(&file);
        if findings.is_empty() {
            findings = session.run(&file).1;
        }
        findings
            .iter()
            .map(|it| format!("{}: {}", it.line, it.error))
            .collect()
    }

    #[test]
    fn a_good_file_has_no_findings() {
        let text = format!(
            "{SCHEMA}relationships: |\n  doc:1#viewer@user:ann\nassertions:\n  assertTrue:\n    - doc:1#view@user:ann\n  assertFalse:\n    - doc:1#view@user:bob\nvalidation:\n  doc:1#view:\n    - '[user:ann] is <doc:1#viewer>'\n"
        );
        let file = file(&text);
        let mut session = Session::new().unwrap();
        assert!(session.load(&file).is_empty());
        let (n_checked, findings) = session.run(&file);
        assert_eq!(n_checked, 3);
        assert!(findings.is_empty(), "{findings:?}");
    }

    #[test]
    fn bad_relationships_are_all_reported_and_none_written() {
        let text = format!(
            "{SCHEMA}relationships: |\n  doc:1#viewer@user:ann\n  doc:1#viewer@user:ann\n  doc:1#editor@user:ann\n  doc:1#view@user:ann\n  doc:1#viewer@usr:x\n  doc:1viewer@user:ann\n"
        );
        let found = findings(&text);
        assert_eq!(found.len(), 5, "{found:#?}");
        assert!(found[0].starts_with("10: found repeated relationship"));
        assert!(found[1].starts_with(
            "11: relationship `doc:1#editor@user:ann`: type `doc` has no relation `editor`"
        ));
        assert!(found[2].starts_with("12: relationship `doc:1#view@user:ann`"));
        assert!(found[3].starts_with("13: relationship `doc:1#viewer@usr:x`"));
        assert!(found[4].starts_with("14: invalid relationship `doc:1viewer@user:ann`"));
    }

    #[test]
    fn failed_assertions_name_their_line() {
        let text = format!(
            "{SCHEMA}relationships: |\n  doc:1#viewer@user:ann\nassertions:\n  assertTrue:\n    - doc:1#view@user:bob\n  assertFalse:\n    - doc:1#view@user:ann\n    - doc:1#nope@user:ann\n"
        );
        let found = findings(&text);
        assert_eq!(found.len(), 3, "{found:#?}");
        assert_eq!(
            found[0],
            "12: assertTrue `doc:1#view@user:bob` does not hold: the check answered denied"
        );
        assert_eq!(
            found[1],
            "14: assertFalse `doc:1#view@user:ann` does not hold: the check answered allowed"
        );
        assert!(
            found[2].starts_with("15: assertFalse `doc:1#nope@user:ann` could not be checked:"),
            "{}",
            found[2]
        );
    }

    #[test]
    fn schema_problems() {
        let invalid = findings("schema: |\n  definition doc {\n    relation viewer: usr\n  }\n");
        assert_eq!(invalid.len(), 1);
        assert!(
            invalid[0].starts_with("1: invalid schema at line 2, column"),
            "{invalid:?}"
        );
        let unsupported = findings(
            "schema: |\n  definition user {}\n  definition doc { relation r: user  permission p = r->s->t }\n",
        );
        assert_eq!(unsupported, ["1: not supported yet: nested arrows"]);
        let no_schema = findings("relationships: |\n  doc:1#viewer@user:ann\n");
        assert_eq!(
            no_schema,
            ["2: no schema: the file needs `schema` or `schemaFile`"]
        );
    }

    #[test]
    fn files_load_into_one_session_in_turn() {
        let mut session = Session::new().unwrap();
        assert!(session.load(&file(SCHEMA)).is_empty());
        let data = file(
            "relationships: |\n  doc:1#viewer@user:ann\nassertions:\n  assertTrue:\n    - doc:1#view@user:ann\n",
        );
        assert!(session.load(&data).is_empty());
        let (n_checked, findings) = session.run(&data);
        assert_eq!((n_checked, findings.len()), (1, 0));
    }

    /// Issue 11: assertCaveated and assertion contexts are evaluated, three-valued.
    #[test]
    fn issue11_caveated_assertions_are_answered_three_valued() {
        let text = "schema: |\n  caveat ip_allowlist(cidr string, ip ipaddress) { ip.in_cidr(cidr) }\n  definition user {}\n  definition doc {\n    relation viewer: user with ip_allowlist\n    permission view = viewer\n  }\nrelationships: |\n  doc:1#viewer@user:ann[ip_allowlist:{\"cidr\":\"10.0.0.0/8\"}]\nassertions:\n  assertCaveated:\n    - doc:1#view@user:ann\n  assertTrue:\n    - 'doc:1#view@user:ann with {\"ip\": \"10.1.2.3\"}'\n  assertFalse:\n    - 'doc:1#view@user:ann with {\"ip\": \"11.1.2.3\"}'\n    - doc:1#view@user:ann\n";
        let found = findings(text);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(
            found[0].ends_with(
                "assertFalse `doc:1#view@user:ann` does not hold: the check answered conditional"
            ),
            "{found:#?}"
        );
    }
}
