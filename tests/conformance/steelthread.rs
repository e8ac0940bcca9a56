//! SpiceDB's steel-thread goldens (`steelthread/`): lookups run by SpiceDB on larger data
//! files, with SpiceDB's answers checked in (`steelresults/`). arbiter loads the same data
//! file with the validation runner and must give the same answers:
//! - `lookupResources`: the same resource ids;
//! - `cursoredLookupResources`: paging with the same page size gives the same ids overall,
//!   each once, every page but the last full (arbiter pages in id order, SpiceDB in its own
//!   order, so pages are not compared one by one);
//! - `lookupSubjects`: the same subject ids, wildcard and exceptions (SpiceDB's
//!   `* - [a, b]`).
//!
//! The other steel-thread operations (schema writes, import/export, relationship reads,
//! bulk checks) exercise APIs that the validation runner does not drive; they are not
//! counted here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use arbiter::engine::{Arbiter, Consistency, LookupResourcesRequest, LookupSubjectsRequest};
use arbiter::model::{ObjectRef, SubjectRef};
use arbiter::validation::{Outcome, Session, ValidationFile};
use serde::Deserialize;

use super::Verdict;

#[derive(Deserialize)]
struct Operations {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    datafile: String,
    name: String,
    operations: Vec<Operation>,
}

#[derive(Deserialize)]
struct Operation {
    name: String,
    operation: String,
    arguments: Arguments,
    results_file: String,
}

#[derive(Deserialize)]
struct Arguments {
    resource_type: Option<String>,
    resource_object_id: Option<String>,
    permission: Option<String>,
    subject_type: Option<String>,
    subject_object_id: Option<String>,
    page_size: Option<usize>,
}

const LOOKUPS: [&str; 3] = [
    "lookupResources",
    "cursoredLookupResources",
    "lookupSubjects",
];

/// Runs every lookup operation of `steelthread/operations.json`; one verdict per operation.
pub fn run(root: &Path) -> Vec<(String, Verdict)> {
    let dir = root.join("steelthread");
    let operations: Operations = match std::fs::read_to_string(dir.join("operations.json"))
        .map_err(|err| err.to_string())
        .and_then(|text| serde_json::from_str(&text).map_err(|err| err.to_string()))
    {
        Ok(operations) => operations,
        Err(err) => {
            return vec![(
                "steelthread/operations.json".to_string(),
                Verdict::Failed(format!("    cannot read: {err}")),
            )];
        }
    };
    let mut sessions: BTreeMap<String, Result<Session, Verdict>> = BTreeMap::new();
    let mut results = Vec::new();
    for case in &operations.cases {
        for operation in &case.operations {
            if !LOOKUPS.contains(&operation.operation.as_str()) {
                continue;
            }
            let name = format!(
                "steelthread {} / {} [{}]",
                case.name, operation.name, case.datafile
            );
            let session = sessions
                .entry(case.datafile.clone())
                .or_insert_with(|| load(&dir.join("testdata").join(&case.datafile)));
            let verdict = match session {
                Err(Verdict::Skipped(reason)) => Verdict::Skipped(reason.clone()),
                Err(other) => {
                    Verdict::Failed(format!("    the data file does not load: {other:?}"))
                }
                Ok(session) => {
                    let golden = dir.join("steelresults").join(&operation.results_file);
                    compare(session.engine(), operation, &golden).map_or_else(
                        |err| Verdict::Failed(format!("    {err}")),
                        |()| Verdict::Passed,
                    )
                }
            };
            results.push((name, verdict));
        }
    }
    results
}

fn load(path: &Path) -> Result<Session, Verdict> {
    let file = ValidationFile::read(path)
        .map_err(|(line, err)| Verdict::Failed(format!("{line}: {err}")))?;
    let mut session = Session::new().map_err(|err| Verdict::Failed(err.to_string()))?;
    let report = arbiter::validation::FileReport {
        path: path.to_path_buf(),
        n_checked: 0,
        findings: session.load(&file),
    };
    match report.outcome() {
        Outcome::Passed => Ok(session),
        Outcome::Unsupported(features) => Err(Verdict::Skipped(features.join(", "))),
        Outcome::Failed => Err(Verdict::Failed(report.render_findings())),
    }
}

fn compare(engine: &Arbiter, operation: &Operation, golden: &Path) -> Result<(), String> {
    let args = &operation.arguments;
    let text =
        std::fs::read_to_string(golden).map_err(|err| format!("{}: {err}", golden.display()))?;
    let field = |value: &Option<String>, what: &str| {
        value
            .clone()
            .ok_or_else(|| format!("operation without `{what}`"))
    };
    let resource_type = field(&args.resource_type, "resource_type")?;
    let permission = field(&args.permission, "permission")?;
    let subject_type = field(&args.subject_type, "subject_type")?;
    match operation.operation.as_str() {
        "lookupSubjects" => {
            let resource = ObjectRef {
                object_type: resource_type,
                object_id: field(&args.resource_object_id, "resource_object_id")?,
            };
            let expected: Vec<String> =
                yaml_serde::from_str(&text).map_err(|err| err.to_string())?;
            let answer = engine
                .lookup_subjects(
                    &LookupSubjectsRequest::new(resource.clone(), &permission, &subject_type),
                    Consistency::Full,
                )
                .map_err(|err| err.to_string())?;
            let mut got: BTreeSet<String> = answer
                .subjects
                .iter()
                .filter(|it| *it != "*")
                .cloned()
                .collect();
            if answer.subjects.iter().any(|it| it == "*") {
                let excluded = answer.excluded.join(", ");
                got.insert(if excluded.is_empty() {
                    "*".to_string()
                } else {
                    format!("* - [{excluded}]")
                });
            }
            let expected: BTreeSet<String> = expected.into_iter().collect();
            same(&got, &expected)
        }
        "lookupResources" | "cursoredLookupResources" => {
            let subject = SubjectRef {
                object: ObjectRef {
                    object_type: subject_type,
                    object_id: field(&args.subject_object_id, "subject_object_id")?,
                },
                relation: None,
            };
            let expected: BTreeSet<String> = match args.page_size {
                None => yaml_serde::from_str::<Vec<String>>(&text),
                Some(_) => yaml_serde::from_str::<Vec<Vec<String>>>(&text)
                    .map(|pages| pages.into_iter().flatten().collect()),
            }
            .map_err(|err| err.to_string())?
            .into_iter()
            .collect();
            let page_size = args.page_size.unwrap_or(0);
            let mut got: Vec<String> = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let page = engine
                    .lookup_resources(
                        &LookupResourcesRequest {
                            limit: page_size,
                            cursor: cursor.clone(),
                            ..LookupResourcesRequest::new(
                                &resource_type,
                                &permission,
                                subject.clone(),
                            )
                        },
                        Consistency::Full,
                    )
                    .map_err(|err| err.to_string())?;
                let n_page = page.resources.len();
                got.extend(page.resources);
                cursor = page.cursor;
                if cursor.is_none() {
                    break;
                }
                if n_page != page_size {
                    return Err(format!(
                        "a page of {n_page} before the last, with page size {page_size}"
                    ));
                }
            }
            let n_got = got.len();
            let got: BTreeSet<String> = got.into_iter().collect();
            if got.len() != n_got {
                return Err("an id was listed on two pages".to_string());
            }
            same(&got, &expected)
        }
        other => Err(format!("operation `{other}` is not a lookup")),
    }
}

fn same(got: &BTreeSet<String>, expected: &BTreeSet<String>) -> Result<(), String> {
    if got == expected {
        return Ok(());
    }
    let missing: Vec<&String> = expected.difference(got).take(10).collect();
    let extra: Vec<&String> = got.difference(expected).take(10).collect();
    Err(format!(
        "{} ids, SpiceDB {}; missing {missing:?}, extra {extra:?}",
        got.len(),
        expected.len()
    ))
}
