//! Permissions as code: reading a permissions file (a SpiceDB validation file) into the
//! desired state of an [`engine` sync](crate::engine::SyncRequest), for
//! `arbiter serve --bootstrap FILE`, SIGHUP reloads and `arbiter import --sync FILE`.
//!
//! The file is checked completely before anything touches a store: it is loaded into a
//! scratch in-memory engine by the same loader `arbiter validate` uses (schema,
//! relationships, repeated lines), and its own `assertions` and `validation` blocks must
//! hold. Every problem is reported as `FILE:LINE: message`.
//!
//! **What a sync owns.** By default, every relationship whose resource type the file's
//! schema defines: the file is the whole truth for those types, and a relationship of such
//! a type that is not in the file is deleted. A file can narrow that with one extra
//! top-level key, which SpiceDB's loader ignores (so the file still loads in SpiceDB):
//!
//! ```yaml
//! sync:
//!   resource_types: [app, environment]
//! ```
//!
//! Then only relationships of those resource types are owned; relationships of other
//! types are left as they are (and must still fit the schema), and a file relationship of
//! another type is refused.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Deserialize;

use crate::engine::SyncRequest;
use crate::validation::file::ValidationFile;
use crate::validation::{FileReport, Finding, Session, ValidationError, parse};

/// A permissions file that cannot be used; renders as `FILE:LINE: message` lines.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.trim_end())]
pub struct PermissionsFileError(pub String);

#[derive(Deserialize)]
struct Extra {
    sync: Option<SyncSection>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SyncSection {
    resource_types: Vec<String>,
}

/// Reads, validates and turns `path` into the desired state of a sync.
pub fn read(path: &Path) -> Result<SyncRequest, PermissionsFileError> {
    let text = std::fs::read_to_string(path).map_err(|err| {
        PermissionsFileError(format!("{}: cannot read file: {err}", path.display()))
    })?;
    parse(path, &text)
}

/// Like [`read`], for the `text` of the file at `path` (used for `schemaFile` and messages).
pub fn parse(path: &Path, text: &str) -> Result<SyncRequest, PermissionsFileError> {
    let fail = |line: usize, error: ValidationError| {
        let report = FileReport {
            path: path.to_path_buf(),
            n_checked: 0,
            findings: vec![Finding { line, error }],
        };
        PermissionsFileError(report.render_findings())
    };
    let file = ValidationFile::parse(path, text).map_err(|(line, error)| fail(line, error))?;
    let Some(schema) = &file.schema else {
        return Err(fail(0, ValidationError::NoSchema));
    };
    let mut session = Session::new().map_err(|error| fail(0, error))?;
    let mut findings = session.load(&file);
    if findings.is_empty() {
        findings = session.run(&file).1;
    }
    if !findings.is_empty() {
        let report = FileReport {
            path: path.to_path_buf(),
            n_checked: 0,
            findings,
        };
        return Err(PermissionsFileError(report.render_findings()));
    }
    let defined: Vec<String> = session
        .engine()
        .schema()
        .map(|schema| {
            schema
                .definitions
                .iter()
                .map(|it| it.name.clone())
                .collect()
        })
        .unwrap_or_default();
    let resource_types = scope(path, text, &defined)?;
    let owned: BTreeSet<&str> = resource_types.iter().map(String::as_str).collect();
    let mut relationships = Vec::with_capacity(file.relationships.len());
    for located in &file.relationships {
        let relationship =
            parse::relationship(&located.text).map_err(|error| fail(located.line, error))?;
        if !owned.contains(relationship.resource.object_type.as_str()) {
            return Err(PermissionsFileError(format!(
                "{}:{}: relationship `{}` is outside the sync scope: its resource type `{}` is not in `sync.resource_types`",
                path.display(),
                located.line,
                located.text,
                relationship.resource.object_type
            )));
        }
        relationships.push(relationship);
    }
    Ok(SyncRequest {
        schema: Some(schema.text.clone()),
        resource_types,
        relationships,
    })
}

/// The resource types the file owns: `sync.resource_types` if present, else every type
/// the schema defines.
fn scope(path: &Path, text: &str, defined: &[String]) -> Result<Vec<String>, PermissionsFileError> {
    let line = key_line(text, "sync");
    let at = |line: usize, message: String| {
        PermissionsFileError(format!("{}:{line}: {message}", path.display()))
    };
    let extra: Extra = yaml_serde::from_str(text).map_err(|err| {
        let line = err.location().map_or(line, |loc| loc.line());
        at(line, format!("invalid `sync` section: {err}"))
    })?;
    let Some(section) = extra.sync else {
        return Ok(defined.to_vec());
    };
    if section.resource_types.is_empty() {
        return Err(at(
            line,
            "`sync.resource_types` is empty: a sync must own at least one resource type"
                .to_string(),
        ));
    }
    let mut seen = BTreeSet::new();
    for resource_type in &section.resource_types {
        if !defined.contains(resource_type) {
            return Err(at(
                line,
                format!(
                    "`sync.resource_types` names `{resource_type}`, which the schema does not define"
                ),
            ));
        }
        if !seen.insert(resource_type) {
            return Err(at(
                line,
                format!("`sync.resource_types` names `{resource_type}` twice"),
            ));
        }
    }
    Ok(section.resource_types)
}

/// The 1-based line of the top-level key `key`, or 1.
fn key_line(text: &str, key: &str) -> usize {
    text.lines()
        .position(|line| {
            line.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with(':'))
        })
        .map_or(1, |idx| idx + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str = "schema: |-\n  definition user {}\n  definition app { relation reader: user }\n  definition team { relation member: user }\n";

    fn parse_text(text: &str) -> Result<SyncRequest, String> {
        parse(Path::new("perms.yaml"), text).map_err(|err| err.to_string())
    }

    #[test]
    fn default_scope_is_every_defined_type() {
        let request = parse_text(&format!(
            "{SCHEMA}relationships: |-\n  app:a#reader@user:x\n"
        ))
        .unwrap();
        assert_eq!(request.resource_types, ["user", "app", "team"]);
        assert_eq!(request.relationships.len(), 1);
    }

    #[test]
    fn sync_key_narrows_the_scope_and_refuses_what_is_outside() {
        let request = parse_text(&format!(
            "{SCHEMA}sync:\n  resource_types: [app]\nrelationships: |-\n  app:a#reader@user:x\n"
        ))
        .unwrap();
        assert_eq!(request.resource_types, ["app"]);
        let err = parse_text(&format!(
            "{SCHEMA}sync:\n  resource_types: [app]\nrelationships: |-\n  app:a#reader@user:x\n  team:t#member@user:x\n"
        ))
        .unwrap_err();
        assert!(
            err.starts_with(
                "perms.yaml:9: relationship `team:t#member@user:x` is outside the sync scope"
            ),
            "{err}"
        );
    }

    #[test]
    fn bad_files_name_their_line() {
        let cases = [
            (
                format!("{SCHEMA}relationships: |-\n  app:a#writer@user:x\n"),
                "perms.yaml:6: relationship `app:a#writer@user:x`",
            ),
            (
                format!("{SCHEMA}sync:\n  resource_types: [nope]\n"),
                "perms.yaml:5: `sync.resource_types` names `nope`",
            ),
            (
                format!("{SCHEMA}sync:\n  resource_types: [app]\n  other: 1\n"),
                "perms.yaml:",
            ),
            (
                format!("{SCHEMA}sync:\n  resource_types: []\n"),
                "perms.yaml:5: `sync.resource_types` is empty",
            ),
            (
                "relationships: |-\n  app:a#reader@user:x\n".to_string(),
                "perms.yaml: no schema",
            ),
            (
                format!(
                    "{SCHEMA}relationships: |-\n  app:a#reader@user:x\nassertions:\n  assertTrue:\n    - app:a#reader@user:y\n"
                ),
                "perms.yaml:9: assertTrue `app:a#reader@user:y` does not hold",
            ),
            (
                "schema: |-\n  definition user {\n".to_string(),
                "perms.yaml:",
            ),
        ];
        for (text, expected) in cases {
            let err = parse_text(&text).unwrap_err();
            assert!(err.starts_with(expected), "{err}\n  expected: {expected}");
        }
    }
}
