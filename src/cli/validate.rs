//! `arbiter validate FILE…`: runs validation files (schema, relationships, assertions,
//! expected relations) against an in-memory engine; see `docs/VALIDATION.md`.
//!
//! Each failure goes to stderr as `FILE:LINE: message`; each file ends with one status
//! line on stdout. Exit 0 only if every file passed; 1 if any assertion or expected
//! relation failed, a file is invalid, or a file needs a feature arbiter does not support
//! yet; 2 if a file cannot be read.

use std::path::PathBuf;

use super::{EXIT_ERROR, EXIT_INVALID, EXIT_OK};
use crate::validation::{Outcome, ValidationError, run_file};

/// Runs every file (all of them, even after a failure).
pub fn run(files: &[PathBuf]) -> u8 {
    let mut code = EXIT_OK;
    for file in files {
        let report = run_file(file);
        eprint!("{}", report.render_findings());
        let file_code = match report.outcome() {
            Outcome::Passed => {
                println!("{}: ok ({} checked)", file.display(), report.n_checked);
                EXIT_OK
            }
            Outcome::Unsupported(features) => {
                println!(
                    "{}: not supported yet: {}",
                    file.display(),
                    features.join(", ")
                );
                EXIT_INVALID
            }
            Outcome::Failed => {
                let unreadable = report
                    .findings
                    .iter()
                    .any(|it| matches!(it.error, ValidationError::Io(_)));
                println!(
                    "{}: FAILED ({} problem(s))",
                    file.display(),
                    report.findings.len()
                );
                if unreadable { EXIT_ERROR } else { EXIT_INVALID }
            }
        };
        code = code.max(file_code);
    }
    code
}
