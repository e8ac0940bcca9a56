//! Loading validation files into an engine and evaluating them.
//!
//! A [`Session`] owns one in-memory engine. [`Session::load`] installs a file's schema and
//! writes its relationships (all or nothing: any bad line stops the load, and every bad
//! line is reported); [`Session::run`] evaluates its assertions and expected relations.
//! Several files can be loaded into one session, as SpiceDB's loader allows (a file of
//! relationships for a schema given by an earlier file).

use std::collections::BTreeSet;

use crate::engine::{Arbiter, CheckRequest, Config, Consistency, ExpandDepth};
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
            if !seen.insert(relationship.clone()) {
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
            ("assertTrue", &file.assert_true, true),
            ("assertFalse", &file.assert_false, false),
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
        for item in &file.assert_caveated {
            findings.push(Finding {
                line: item.line,
                error: ValidationError::Unsupported(format!(
                    "{CAVEATS} (assertCaveated `{}`)",
                    item.text
                )),
            });
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
        expected: bool,
    ) -> Result<(), ValidationError> {
        let Relationship {
            resource,
            relation,
            subject,
        } = parse::assertion(text)?;
        let request = CheckRequest {
            resource,
            permission: relation,
            subject,
        };
        let decision = self
            .engine
            .check(&request, Consistency::Full)
            .map_err(|source| ValidationError::CheckFailed {
                kind,
                text: text.trim().to_string(),
                source: Box::new(source),
            })?;
        if decision.allowed == expected {
            return Ok(());
        }
        Err(ValidationError::AssertionFailed {
            kind,
            text: text.trim().to_string(),
            answer: if decision.allowed {
                "allowed"
            } else {
                "denied"
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
        let expansion = self
            .engine
            .expand(
                &resource.object,
                &resource.relation,
                ExpandDepth::Recursive,
                Consistency::Full,
            )
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
