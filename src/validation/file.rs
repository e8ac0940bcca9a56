//! Reading a validation file: the YAML keys SpiceDB's loader knows, the schema (inline or
//! from `schemaFile`), and the source line of every relationship, assertion and expected
//! relation, so that a failure can name its line.
//!
//! The YAML decoder gives values without positions, so lines are found by searching the raw
//! text: each item is looked for after the key that opens its block and after the item
//! before it. Items are verbatim YAML text in every file we know of (plain or quoted
//! scalars, block scalars); an item written with escapes that cannot be found gets the
//! line of its block's key instead.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use super::ValidationError;

/// A text item of the file with the 1-based line it was found on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located {
    pub line: usize,
    pub text: String,
}

/// Where the schema came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SchemaOrigin {
    /// The `schema:` key, on this line.
    Inline { line: usize },
    /// The `schemaFile:` key, on this line, naming this file.
    File { line: usize, path: PathBuf },
}

/// The schema of a validation file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaSource {
    pub text: String,
    pub origin: SchemaOrigin,
}

/// One key of the `validation:` block: an `object#relation` and its expected subjects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectedBlock {
    pub resource: Located,
    pub subjects: Vec<Located>,
}

/// A validation file, read and split into located items, not yet interpreted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ValidationFile {
    pub path: PathBuf,
    pub schema: Option<SchemaSource>,
    /// Non-blank, non-comment lines of `relationships`, trimmed.
    pub relationships: Vec<Located>,
    pub assert_true: Vec<Located>,
    pub assert_false: Vec<Located>,
    pub assert_caveated: Vec<Located>,
    pub expected: Vec<ExpectedBlock>,
}

/// The keys of SpiceDB's validation-file YAML. Any other key is an error naming its line:
/// a misspelt `assertion:` or `assertTrues:` must not turn a file into "ok (0 checked)".
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    schema: Option<String>,
    #[serde(rename = "schemaFile")]
    schema_file: Option<String>,
    relationships: Option<String>,
    assertions: Option<RawAssertions>,
    validation: Option<BTreeMap<String, Option<Vec<String>>>>,
    /// Pre-schema key: SpiceDB refuses a file that still uses it.
    validation_tuples: Option<yaml_serde::Value>,
    /// arbiter's one extension: the scope of a permissions-file sync
    /// (`sync: {resource_types: [...]}`, read and checked by the sync module; SpiceDB ignores
    /// it). Known here so that a file carrying it still loads as a validation file.
    #[expect(dead_code, reason = "read by the sync module, only accepted here")]
    sync: Option<yaml_serde::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAssertions {
    #[serde(rename = "assertTrue")]
    assert_true: Option<Vec<String>>,
    #[serde(rename = "assertFalse")]
    assert_false: Option<Vec<String>>,
    #[serde(rename = "assertCaveated")]
    assert_caveated: Option<Vec<String>>,
}

impl ValidationFile {
    /// Reads and splits the file at `path`; a `schemaFile` is read relative to its folder.
    pub fn read(path: &Path) -> Result<Self, (usize, ValidationError)> {
        let text = std::fs::read_to_string(path).map_err(|err| (0, ValidationError::Io(err)))?;
        Self::parse(path, &text)
    }

    /// Splits `text`, the content of the file at `path` (used for `schemaFile` and messages).
    pub fn parse(path: &Path, text: &str) -> Result<Self, (usize, ValidationError)> {
        Self::parse_with(path, text, None)
    }

    /// Splits `text` without touching the file system: a `schemaFile` stands for
    /// `schema_file_text` (the playground's schema), and is an error without it.
    pub fn parse_detached(
        text: &str,
        schema_file_text: Option<&str>,
    ) -> Result<Self, (usize, ValidationError)> {
        Self::parse_with(Path::new("validation.yaml"), text, Some(schema_file_text))
    }

    /// `detached`: `None` reads a `schemaFile` from disk, `Some(text)` takes its text.
    fn parse_with(
        path: &Path,
        text: &str,
        detached: Option<Option<&str>>,
    ) -> Result<Self, (usize, ValidationError)> {
        let raw: RawFile = yaml_serde::from_str(text).map_err(|err| {
            let line = err.location().map_or(0, |loc| loc.line());
            let message = err.to_string();
            // `unknown field `k`, …` at the top, `assertions: unknown field `k`, …` below.
            let unknown = message
                .split_once("unknown field `")
                .and_then(|(_, rest)| rest.split_once('`'))
                .map(|(key, _)| key.to_string());
            match unknown {
                Some(key) => (line, ValidationError::UnknownKey(key)),
                None => (line, ValidationError::Yaml(message)),
            }
        })?;
        let source = SourceText::new(text);
        if raw.validation_tuples.is_some() {
            let line = source.key_line(0, "validation_tuples").unwrap_or(0);
            return Err((line, ValidationError::LegacyKey("validation_tuples")));
        }
        let schema = read_schema(path, &source, raw.schema, raw.schema_file, detached)?;

        let mut file = Self {
            path: path.to_path_buf(),
            schema,
            ..Self::default()
        };
        if let Some(relationships) = raw.relationships {
            let start = source.key_line(0, "relationships").unwrap_or(0);
            let lines = relationships
                .split('\n')
                .map(str::trim)
                .filter(|line| !line.is_empty() && !line.starts_with("//"));
            file.relationships = source.locate_all(start, lines);
        }
        if let Some(assertions) = raw.assertions {
            let start = source.key_line(0, "assertions").unwrap_or(0);
            let block = |key: &str, items: Option<Vec<String>>| {
                let key_line = source.key_line(start, key).unwrap_or(start);
                let items = items.unwrap_or_default();
                source.locate_all(key_line, items.iter().map(String::as_str))
            };
            file.assert_true = block("assertTrue", assertions.assert_true);
            file.assert_false = block("assertFalse", assertions.assert_false);
            file.assert_caveated = block("assertCaveated", assertions.assert_caveated);
        }
        if let Some(validation) = raw.validation {
            let start = source.key_line(0, "validation").unwrap_or(0);
            for (resource, subjects) in validation {
                let resource_line = source.key_line(start, &resource).unwrap_or(start);
                let subjects = subjects.unwrap_or_default();
                file.expected.push(ExpectedBlock {
                    resource: Located {
                        line: resource_line,
                        text: resource,
                    },
                    subjects: source.locate_all(resource_line, subjects.iter().map(String::as_str)),
                });
            }
            file.expected.sort_by_key(|block| block.resource.line);
        }
        Ok(file)
    }
}

/// Takes the schema from `schema` or `schemaFile` (never both).
fn read_schema(
    path: &Path,
    source: &SourceText<'_>,
    inline: Option<String>,
    schema_file: Option<String>,
    detached: Option<Option<&str>>,
) -> Result<Option<SchemaSource>, (usize, ValidationError)> {
    match (inline, schema_file) {
        (Some(_), Some(_)) => {
            let line = source.key_line(0, "schemaFile").unwrap_or(0);
            Err((line, ValidationError::SchemaAndSchemaFile))
        }
        (Some(text), None) => Ok(Some(SchemaSource {
            text,
            origin: SchemaOrigin::Inline {
                line: source.key_line(0, "schema").unwrap_or(0),
            },
        })),
        (None, Some(name)) => {
            let line = source.key_line(0, "schemaFile").unwrap_or(0);
            if !is_local(Path::new(&name)) {
                return Err((line, ValidationError::SchemaFileNotLocal(name)));
            }
            let folder = path.parent().unwrap_or(Path::new("."));
            let schema_path = folder.join(&name);
            if let Some(given) = detached {
                let text = given.ok_or_else(|| {
                    let source = std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "no schema text was given for it",
                    );
                    (line, ValidationError::SchemaFile { path: name, source })
                })?;
                return Ok(Some(SchemaSource {
                    text: text.to_string(),
                    origin: SchemaOrigin::File {
                        line,
                        path: schema_path,
                    },
                }));
            }
            let text = std::fs::read_to_string(&schema_path).map_err(|source| {
                (
                    line,
                    ValidationError::SchemaFile {
                        path: name.clone(),
                        source,
                    },
                )
            })?;
            Ok(Some(SchemaSource {
                text,
                origin: SchemaOrigin::File {
                    line,
                    path: schema_path,
                },
            }))
        }
        (None, None) => Ok(None),
    }
}

/// Whether `path` stays inside the folder it is relative to: not absolute, and no `..`
/// climbs above its start.
fn is_local(path: &Path) -> bool {
    let mut depth: usize = 0;
    for component in path.components() {
        match component {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => match depth.checked_sub(1) {
                Some(up) => depth = up,
                None => return false,
            },
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

/// The raw text, split in lines, for finding where items are.
struct SourceText<'a> {
    lines: Vec<&'a str>,
}

impl<'a> SourceText<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            lines: text.lines().collect(),
        }
    }

    /// The 1-based line, after line `after`, on which the mapping key `key` starts.
    fn key_line(&self, after: usize, key: &str) -> Option<usize> {
        self.lines
            .iter()
            .enumerate()
            .skip(after)
            .find(|(_, line)| {
                let line = line.trim_start();
                let quoted = |quote: char| {
                    line.strip_prefix(quote)
                        .and_then(|rest| rest.strip_prefix(key))
                        .and_then(|rest| rest.strip_prefix(quote))
                };
                let line = quoted('"')
                    .or_else(|| quoted('\''))
                    .or_else(|| line.strip_prefix(key));
                line.is_some_and(|rest| rest.trim_start().starts_with(':'))
            })
            .map(|(idx, _)| idx + 1)
    }

    /// The first 1-based line at or after line `from` (1-based; 0 = the start) that
    /// contains `needle`.
    fn find(&self, from: usize, needle: &str) -> Option<usize> {
        let skip = from.saturating_sub(1);
        self.lines
            .iter()
            .enumerate()
            .skip(skip)
            .find(|(_, line)| line.contains(needle))
            .map(|(idx, _)| idx + 1)
    }

    /// Locates `items` in order, each after the one before; an item not found gets the
    /// line of the block's key (`start`) and does not move the search on.
    fn locate_all<'i>(&self, start: usize, items: impl Iterator<Item = &'i str>) -> Vec<Located> {
        let mut cursor = start;
        items
            .map(|item| {
                let line = match self.find(cursor.max(start + 1), item.trim()) {
                    Some(line) => {
                        cursor = line + 1;
                        line
                    }
                    None => start,
                };
                Located {
                    line,
                    text: item.to_string(),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> ValidationFile {
        ValidationFile::parse(Path::new("test.yaml"), text)
            .unwrap_or_else(|(line, err)| panic!("{line}: {err}"))
    }

    #[test]
    fn items_get_their_lines() {
        let file = parse(
            "---\nschema: |\n  definition user {}\nrelationships: |\n  doc:1#viewer@user:a\n\n  // note\n  doc:1#viewer@user:b\nassertions:\n  assertTrue:\n    - doc:1#viewer@user:a\n  assertFalse:\n    - \"doc:1#viewer@user:c\"\nvalidation:\n  doc:1#viewer:\n    - \"[user:a] is <doc:1#viewer>\"\n",
        );
        let lines: Vec<(usize, &str)> = file
            .relationships
            .iter()
            .map(|it| (it.line, it.text.as_str()))
            .collect();
        assert_eq!(
            lines,
            [(5, "doc:1#viewer@user:a"), (8, "doc:1#viewer@user:b")]
        );
        assert_eq!(file.assert_true[0].line, 11);
        assert_eq!(file.assert_false[0].line, 13);
        assert_eq!(file.expected[0].resource.line, 15);
        assert_eq!(file.expected[0].subjects[0].line, 16);
        assert_eq!(
            file.schema.map(|it| it.origin),
            Some(SchemaOrigin::Inline { line: 2 })
        );
    }

    #[test]
    fn folded_relationships_keep_one_per_line() {
        let file = parse("relationships: >-\n  doc:1#viewer@user:a\n\n  doc:1#viewer@user:b\n");
        let texts: Vec<&str> = file
            .relationships
            .iter()
            .map(|it| it.text.as_str())
            .collect();
        assert_eq!(texts, ["doc:1#viewer@user:a", "doc:1#viewer@user:b"]);
        assert_eq!(file.relationships[1].line, 4);
    }

    #[test]
    fn repeated_items_move_on() {
        let file = parse("assertions:\n  assertTrue:\n    - a:1#b@c:d\n    - a:1#b@c:d\n");
        let lines: Vec<usize> = file.assert_true.iter().map(|it| it.line).collect();
        assert_eq!(lines, [3, 4]);
    }

    #[test]
    fn loader_errors() {
        let err = |text: &str| {
            ValidationFile::parse(Path::new("dir/test.yaml"), text)
                .err()
                .map(|(line, err)| format!("{line}: {err}"))
        };
        assert_eq!(
            err("---\nvalidation_tuples:\n  - a\n").as_deref(),
            Some(
                "2: relationships must be specified in `relationships`, not in the legacy key `validation_tuples`"
            )
        );
        assert_eq!(
            err("schema: x\nschemaFile: y.zed\n").as_deref(),
            Some("2: only one of `schema` or `schemaFile` can be specified")
        );
        assert_eq!(
            err("schemaFile: ../../x.zed\n").as_deref(),
            Some("1: schema file `../../x.zed` is not inside the folder of the validation file")
        );
        assert!(
            err("schemaFile: ./missing.zed\n")
                .is_some_and(|it| it.starts_with("1: cannot read schema file `./missing.zed`"))
        );
        assert!(err("schema: [unclosed\n").is_some_and(|it| it.contains("invalid YAML")));
    }

    #[test]
    fn issue10_validation_file_misspelt_key_is_an_error() {
        let err = |text: &str| {
            ValidationFile::parse(Path::new("dir/test.yaml"), text)
                .err()
                .map(|(line, err)| format!("{line}: {err}"))
                .unwrap_or_else(|| format!("accepted: {text}"))
        };
        let schema = "schema: |\n  definition user {}\n";
        let cases = [
            (
                format!("{schema}assertion:\n  assertTrue: []\n"),
                "3: ",
                "`assertion`",
            ),
            (
                format!(
                    "{schema}assertions:\n  assertTrue:\n    - a:1#b@c:d\n  asertFalse:\n    - a:1#b@c:d\n"
                ),
                "6: ",
                "`asertFalse`",
            ),
            (
                format!("{schema}relationship: |\n  doc:1#viewer@user:a\n"),
                "3: ",
                "`relationship`",
            ),
            (
                format!("{schema}validations:\n  doc:1#viewer: []\n"),
                "3: ",
                "`validations`",
            ),
            (format!("{schema}Assertions: {{}}\n"), "3: ", "`Assertions`"),
        ];
        for (text, line, key) in cases {
            let message = err(&text);
            assert!(
                message.starts_with(&format!("{line}unknown key {key}: expected")),
                "{message}"
            );
        }
    }

    #[test]
    fn locality() {
        assert!(is_local(Path::new("./a.zed")));
        assert!(is_local(Path::new("sub/../a.zed")));
        assert!(!is_local(Path::new("../a.zed")));
        assert!(!is_local(Path::new("/etc/a.zed")));
    }
}
