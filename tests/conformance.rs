//! SpiceDB conformance: every validation file of SpiceDB's corpus
//! (`../shared/conformance/spicedb/`: the consistency-suite files at the top level, the
//! server bootstrap files in `other/`, the loader tests in `validationfile/`) runs through
//! the same runner as `arbiter validate`.
//!
//! A file meant to load must pass its assertions, and then its data is cross-checked:
//! check, lookup resources, lookup subjects and expand must agree on every question the
//! relationships allow (see `consistency/mod.rs`). A file meant to fail (loader tests,
//! per SpiceDB's `loader_test.go`) must fail with the reason named here. A file that needs
//! a feature arbiter does not support would be skipped, by name and feature, never silently
//! — and the test fails if any file is skipped: the whole corpus (120 files) runs.
//! SpiceDB's steel-thread goldens (lookups on larger data files, with SpiceDB's answers)
//! are compared too; see `conformance/steelthread.rs`.
//!
//! The test prints `spicedb conformance: N passed, M skipped, F failed`, then the skipped
//! files with their reasons; any failure fails it. It runs without the libtest harness
//! (`harness = false` in Cargo.toml) so that `cargo test` always shows that summary.

mod consistency;
#[path = "conformance/steelthread.rs"]
mod steelthread;

use std::path::{Path, PathBuf};

use arbiter::model::Relationship;
use arbiter::validation::parse;
use arbiter::validation::{FileReport, Finding, Outcome, Session, ValidationFile, run_file};

use consistency::{Stats, cross_check};

/// Loader tests meant to fail, with a fragment of the reason arbiter must give.
const MEANT_TO_FAIL: &[(&str, &str)] = &[
    // No schema in this file; it loads only after initial_schema_and_rels.yaml (below).
    ("validationfile/just_rels.yaml", "no schema"),
    (
        "validationfile/legacy.yaml",
        "legacy key `validation_tuples`",
    ),
    // Upstream fails on a parse error inside the .zed, which the corpus did not copy: the
    // file is missing here, so the failure is that it cannot be read.
    (
        "validationfile/loader_using_invalid_schemafile.yaml",
        "cannot read schema file `./invalid_schemafile.zed`",
    ),
    (
        "validationfile/loader_using_missing_schemafile.yaml",
        "cannot read schema file `./non_existant_schemafile.zed`",
    ),
    (
        "validationfile/loader_using_non-local_schemafile.yaml",
        "is not inside the folder of the validation file",
    ),
    (
        "validationfile/schema_and_schemafile.yaml",
        "only one of `schema` or `schemaFile`",
    ),
    // These fail upstream for caveat reasons, and here for the same ones.
    // The schema names a caveat it does not declare.
    (
        "validationfile/invalid_caveat.yaml",
        "unknown caveat `some_caveat`",
    ),
    // A caveated relationship on a relation that admits the subject type only plain.
    (
        "validationfile/invalid_caveated_rel.yaml",
        "does not admit `user` with caveat `some_caveat`",
    ),
    // `[some_caveat{…}]`: the colon before the context is missing.
    (
        "validationfile/invalid_caveated_rel_syntax.yaml",
        "expected a json object after `:`",
    ),
    // The same tuple twice, once caveated and once not.
    (
        "validationfile/repeated_relationship.yaml",
        "found repeated relationship",
    ),
];

/// Loads fine upstream, but the schema file it names was not copied into the corpus; it
/// runs next to a schema file written by this test instead (see [`with_local_schema_file`]).
const SCHEMA_FILE_NOT_COPIED: &str = "validationfile/loader_using_schemafile.yaml";

/// The cross-check stops listing disagreements of one file after this many.
const MAX_PROBLEMS_PER_FILE: usize = 20;

#[derive(Debug)]
enum Verdict {
    Passed,
    Skipped(String),
    Failed(String),
}

fn main() {
    let root = corpus_root();
    let mut files = Vec::new();
    for (dir, with_skip) in [("", true), ("other", false), ("validationfile", false)] {
        files.extend(yaml_files(&root.join(dir), with_skip));
    }
    assert!(
        files.len() >= 90,
        "the SpiceDB corpus was not found at {} (found {} files)",
        root.display(),
        files.len()
    );

    let mut results: Vec<(String, Verdict)> = Vec::new();
    let mut stats = Stats::default();
    for path in &files {
        let name = relative_name(&root, path);
        let verdict = if name == SCHEMA_FILE_NOT_COPIED {
            with_local_schema_file(path, &mut stats)
        } else {
            match MEANT_TO_FAIL.iter().find(|(file, _)| *file == name) {
                Some((_, reason)) => expect_failure(path, reason),
                None => run_session(std::slice::from_ref(path), &mut stats),
            }
        };
        results.push((name, verdict));
    }
    results.push((
        "validationfile/initial_schema_and_rels.yaml + just_rels.yaml".to_string(),
        run_session(
            &[
                root.join("validationfile/initial_schema_and_rels.yaml"),
                root.join("validationfile/just_rels.yaml"),
            ],
            &mut stats,
        ),
    ));
    let steel = steelthread::run(&root);
    let n_steel = steel.len();
    let n_steel_passed = count(&steel, |it| matches!(it, Verdict::Passed));
    results.extend(steel);

    let n_passed = count(&results, |it| matches!(it, Verdict::Passed));
    let n_skipped = count(&results, |it| matches!(it, Verdict::Skipped(_)));
    let n_failed = count(&results, |it| matches!(it, Verdict::Failed(_)));
    println!("spicedb conformance: {n_passed} passed, {n_skipped} skipped, {n_failed} failed");
    println!(
        "  cross-check: {} checks compared with {} lookups and expands",
        stats.n_checks, stats.n_lookups
    );
    println!(
        "  steel-thread goldens: {n_steel_passed} of {n_steel} lookups answer as SpiceDB does"
    );
    for (name, verdict) in &results {
        if let Verdict::Skipped(reason) = verdict {
            println!("  skipped {name}: not supported yet: {reason}");
        }
    }
    for (name, verdict) in &results {
        if let Verdict::Failed(reason) = verdict {
            println!("  FAILED {name}:\n{reason}");
        }
    }
    // Every file of the corpus runs: none may be skipped, and all 120 must pass (a runner
    // that silently loses files would otherwise still look green).
    let mut ok = n_failed == 0;
    if n_skipped > 0 {
        println!("  {n_skipped} files were skipped: every file must run");
        ok = false;
    }
    if n_passed < 120 {
        println!("  only {n_passed} files passed: expected 120");
        ok = false;
    }
    if stats.n_checks <= 5_000 {
        println!("  the cross-check ran only {} checks", stats.n_checks);
        ok = false;
    }
    if !ok {
        std::process::exit(1);
    }
}

/// Runs a file meant to fail: it must fail, with `reason` among its findings.
fn expect_failure(path: &Path, reason: &str) -> Verdict {
    let report = run_file(path);
    match report.outcome() {
        Outcome::Unsupported(features) => {
            Verdict::Skipped(format!("{} (meant to fail)", features.join(", ")))
        }
        Outcome::Passed => {
            Verdict::Failed(format!("    meant to fail with `{reason}`, but passed"))
        }
        Outcome::Failed => {
            if report
                .findings
                .iter()
                .any(|it| it.error.to_string().contains(reason))
            {
                Verdict::Passed
            } else {
                Verdict::Failed(format!(
                    "    meant to fail with `{reason}`, failed otherwise:\n{}",
                    indent(&report.render_findings())
                ))
            }
        }
    }
}

/// Loads `paths` one after the other into one session and runs each: every one must pass.
/// Then cross-checks the engine over all their relationships, adding to `stats`.
fn run_session(paths: &[PathBuf], stats: &mut Stats) -> Verdict {
    let mut session = match Session::new() {
        Ok(session) => session,
        Err(err) => return Verdict::Failed(format!("    {err}")),
    };
    let mut relationships: Vec<Relationship> = Vec::new();
    for path in paths {
        let mut report = FileReport {
            path: path.clone(),
            n_checked: 0,
            findings: Vec::new(),
        };
        match ValidationFile::read(path) {
            Err((line, error)) => report.findings.push(Finding { line, error }),
            Ok(file) => {
                report.findings = session.load(&file);
                if report.findings.is_empty() {
                    report.findings = session.run(&file).1;
                    relationships.extend(
                        file.relationships
                            .iter()
                            .filter_map(|it| parse::relationship(&it.text).ok()),
                    );
                }
            }
        }
        match report.outcome() {
            Outcome::Passed => {}
            Outcome::Unsupported(features) => return Verdict::Skipped(features.join(", ")),
            Outcome::Failed => {
                return Verdict::Failed(indent(&report.render_findings()));
            }
        }
    }
    let (file_stats, problems) = cross_check(&session, &relationships, MAX_PROBLEMS_PER_FILE);
    stats.n_checks += file_stats.n_checks;
    stats.n_lookups += file_stats.n_lookups;
    if problems.is_empty() {
        Verdict::Passed
    } else {
        Verdict::Failed(format!(
            "    the engine disagrees with itself:\n{}",
            indent(&problems.join("\n"))
        ))
    }
}

/// `loader_using_schemafile.yaml` names `./separate_schemafile.zed`, which the corpus does
/// not carry. Run it from a temporary folder next to a schema written here that admits its
/// relationships, to test `schemaFile` resolution with SpiceDB's own file.
fn with_local_schema_file(path: &Path, stats: &mut Stats) -> Verdict {
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(err) => return Verdict::Failed(format!("    cannot create a temporary folder: {err}")),
    };
    let schema = "definition example/user {}\n\
                  definition example/project {\n\
                      relation owner: example/user\n\
                      relation reader: example/user\n\
                      relation writer: example/user\n\
                  }\n";
    let copy = dir.path().join("loader_using_schemafile.yaml");
    let written = std::fs::copy(path, &copy)
        .and_then(|_| std::fs::write(dir.path().join("separate_schemafile.zed"), schema));
    if let Err(err) = written {
        return Verdict::Failed(format!("    cannot prepare the temporary folder: {err}"));
    }
    run_session(&[copy], stats)
}

fn corpus_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/spicedb")
}

/// The `.yaml` files of `dir` (and `.yaml.skip` if `with_skip`), sorted.
fn yaml_files(dir: &Path, with_skip: bool) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|it| it.path()))
        .filter(|path| {
            let name = path.to_string_lossy();
            path.is_file()
                && (name.ends_with(".yaml") || (with_skip && name.ends_with(".yaml.skip")))
        })
        .collect();
    files.sort();
    files
}

fn relative_name(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .to_string()
}

fn count(results: &[(String, Verdict)], pred: impl Fn(&Verdict) -> bool) -> usize {
    results.iter().filter(|(_, verdict)| pred(verdict)).count()
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|line| format!("      {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}
