//! Validation files: SpiceDB's YAML format for testing a schema with data and expected
//! answers, run against an in-memory [`Arbiter`](crate::engine::Arbiter). One runner serves
//! `arbiter validate`, the example schemas' tests and the SpiceDB conformance test.
//!
//! A file has a `schema` (or a `schemaFile` beside it), `relationships` (one per line),
//! `assertions` (`assertTrue` / `assertFalse`: checks that must be allowed / denied) and
//! `validation` (expected relations: for `object#relation`, exactly which subjects a
//! recursive expand reaches and through which relations). See `docs/VALIDATION.md`.
//!
//! Layout: [`file`] reads the YAML and finds the line of every item; [`parse`] reads the
//! small syntaxes inside (relationships, assertions, expected subjects); [`membership`]
//! turns an expand tree into found subjects; [`run`] loads a file into an engine and
//! evaluates it. Every problem is a [`Finding`]: a line and a [`ValidationError`]. Features
//! arbiter lacks (caveats, expiration, …) are [`ValidationError::Unsupported`] findings, so
//! a caller can tell "not supported yet" from "wrong".

pub mod file;
pub mod membership;
pub mod parse;
pub mod run;

use std::path::{Path, PathBuf};

use crate::engine::EngineError;
use crate::model::ModelError;
use crate::schema::admit::AdmitError;

pub use file::ValidationFile;
pub use run::Session;

/// Everything that can be wrong with a validation file or fail in it.
#[derive(Debug, thiserror::Error)]
pub enum ValidationError {
    #[error("cannot read file: {0}")]
    Io(std::io::Error),
    #[error("invalid YAML: {0}")]
    Yaml(String),
    /// A key SpiceDB's validation files do not have (often a misspelling).
    #[error(
        "unknown key `{0}`: expected `schema`, `schemaFile`, `relationships`, `assertions` (with `assertTrue`, `assertFalse`, `assertCaveated`), `validation` or `sync`"
    )]
    UnknownKey(String),
    #[error("relationships must be specified in `relationships`, not in the legacy key `{0}`")]
    LegacyKey(&'static str),
    #[error("only one of `schema` or `schemaFile` can be specified")]
    SchemaAndSchemaFile,
    #[error("schema file `{0}` is not inside the folder of the validation file")]
    SchemaFileNotLocal(String),
    #[error("cannot read schema file `{path}`: {source}")]
    SchemaFile {
        path: String,
        source: std::io::Error,
    },
    /// A schema error; `place` is `line L, column C` of an inline schema, or
    /// `FILE:L:C` of a schema file.
    #[error("invalid schema at {place}: {message}")]
    InvalidSchema { place: String, message: String },
    #[error("no schema: the file needs `schema` or `schemaFile`")]
    NoSchema,
    #[error("invalid relationship `{text}`: {source}")]
    InvalidRelationship { text: String, source: ModelError },
    /// A relationship the schema does not admit.
    #[error(transparent)]
    Rejected(Box<AdmitError>),
    #[error("found repeated relationship `{0}`")]
    RepeatedRelationship(String),
    #[error("invalid assertion `{text}`: {source}")]
    InvalidAssertion { text: String, source: ModelError },
    /// `kind` is `assertTrue` or `assertFalse`; `answer` is `allowed` or `denied`.
    #[error("{kind} `{text}` does not hold: the check answered {answer}")]
    AssertionFailed {
        kind: &'static str,
        text: String,
        answer: &'static str,
    },
    #[error("{kind} `{text}` could not be checked: {source}")]
    CheckFailed {
        kind: &'static str,
        text: String,
        source: Box<EngineError>,
    },
    #[error("invalid expected relation `{text}`: {reason}")]
    InvalidExpected { text: String, reason: String },
    #[error("`{resource}` could not be expanded: {source}")]
    ExpandFailed {
        resource: String,
        source: Box<EngineError>,
    },
    /// The engine's expand tree held a subject that is not in text form (an engine bug).
    #[error("the expansion holds an unreadable subject `{subject}`: {reason}")]
    InvalidExpansion { subject: String, reason: String },
    #[error("`{resource}`: expected subject not found: `{expected}`")]
    MissingSubject { resource: String, expected: String },
    #[error("`{resource}`: expected `{expected}`, found `{found}`")]
    DifferentSubject {
        resource: String,
        expected: String,
        found: String,
    },
    #[error("`{resource}`: subject found but not listed: `{found}`")]
    ExtraSubject { resource: String, found: String },
    /// The file needs a feature arbiter does not implement yet, named first.
    #[error("not supported yet: {0}")]
    Unsupported(String),
    #[error(transparent)]
    Engine(Box<EngineError>),
}

/// One problem, at a 1-based line of the file (0 when no line applies).
#[derive(Debug)]
pub struct Finding {
    pub line: usize,
    pub error: ValidationError,
}

/// The outcome of running one validation file (or several loaded together).
#[derive(Debug)]
pub struct FileReport {
    pub path: PathBuf,
    /// How many assertions and expected-relation blocks were evaluated.
    pub n_checked: usize,
    pub findings: Vec<Finding>,
}

/// What a report amounts to.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    /// The file needs these features (deduplicated, in order of appearance).
    Unsupported(Vec<String>),
    Failed,
}

impl FileReport {
    pub fn outcome(&self) -> Outcome {
        let mut features: Vec<String> = Vec::new();
        for finding in &self.findings {
            if let ValidationError::Unsupported(what) = &finding.error {
                // `caveats (relationship `…`)` → `caveats`
                let feature = what.split(" (").next().unwrap_or(what).to_string();
                if !features.contains(&feature) {
                    features.push(feature);
                }
            }
        }
        if !features.is_empty() {
            Outcome::Unsupported(features)
        } else if self.findings.is_empty() {
            Outcome::Passed
        } else {
            Outcome::Failed
        }
    }

    /// `FILE:LINE: message` per finding, one per line.
    pub fn render_findings(&self) -> String {
        let mut out = String::new();
        for finding in &self.findings {
            let file = self.path.display();
            if finding.line == 0 {
                out.push_str(&format!("{file}: {}\n", finding.error));
            } else {
                out.push_str(&format!("{file}:{}: {}\n", finding.line, finding.error));
            }
        }
        out
    }
}

/// Reads `path`, loads it into a fresh in-memory engine and runs its assertions and
/// expected relations.
pub fn run_file(path: &Path) -> FileReport {
    let mut report = FileReport {
        path: path.to_path_buf(),
        n_checked: 0,
        findings: Vec::new(),
    };
    let file = match ValidationFile::read(path) {
        Ok(file) => file,
        Err((line, error)) => {
            report.findings.push(Finding { line, error });
            return report;
        }
    };
    let mut session = match Session::new() {
        Ok(session) => session,
        Err(error) => {
            report.findings.push(Finding { line: 0, error });
            return report;
        }
    };
    report.findings = session.load(&file);
    if report.findings.is_empty() {
        let (n_checked, findings) = session.run(&file);
        report.n_checked = n_checked;
        report.findings = findings;
    }
    report
}
