//! The SpiceDB consistency-suite files (`../shared/conformance/spicedb/*.yaml`) through
//! the engine: every file whose schema compiles and whose relationships carry no caveat
//! or expiration runs its `assertTrue` / `assertFalse` checks (assertions with a caveat
//! context are skipped). The counts are printed; any wrong answer fails.
//!
//! The validation-file runner (`arbiter validate`) covers these files end to end; this
//! test pins the engine's answers on its own.

use std::path::Path;

use arbiter::engine::{
    Arbiter, CheckRequest, Config, Consistency, LookupResourcesRequest, LookupSubjectsRequest,
};
use arbiter::model::Relationship;
use arbiter::store::{Update, UpdateOp};

fn parse_check(text: &str) -> Option<CheckRequest> {
    let (resource, subject) = text.split_once('@')?;
    let (resource, permission) = resource.split_once('#')?;
    Some(CheckRequest {
        resource: resource.parse().ok()?,
        permission: permission.to_string(),
        subject: subject.parse().ok()?,
        context: None,
    })
}

fn strings(value: &yaml_serde::Value) -> Vec<String> {
    value
        .as_sequence()
        .map(|items| {
            items
                .iter()
                .filter_map(|it| it.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn spicedb_consistency_suite_assertions() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/spicedb");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!("conformance corpus not found at {}: skipped", dir.display());
        return;
    };
    let mut paths: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    paths.sort();
    let (mut files_run, mut checked, mut skipped_files) = (0, 0, 0);
    let mut failures = Vec::new();
    for path in &paths {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(path).unwrap();
        let doc: yaml_serde::Value = yaml_serde::from_str(&text).unwrap();
        let schema = doc["schema"].as_str().unwrap_or_default();
        let relationships = doc["relationships"].as_str().unwrap_or_default();
        let engine = Arbiter::in_memory(Config::default()).unwrap();
        if engine.write_schema(schema).is_err() || relationships.contains('[') {
            skipped_files += 1;
            continue;
        }
        let updates: Vec<Update> = relationships
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with("//"))
            .map(|line| Update {
                op: UpdateOp::Touch,
                relationship: line
                    .parse::<Relationship>()
                    .unwrap_or_else(|err| panic!("{name}: `{line}`: {err}")),
            })
            .collect();
        for chunk in updates.chunks(400) {
            match engine.write(chunk, &[]) {
                Ok(Ok(_)) => {}
                other => panic!("{name}: write failed: {other:?}"),
            }
        }
        files_run += 1;
        let assertions = &doc["assertions"];
        for (expected, key) in [(true, "assertTrue"), (false, "assertFalse")] {
            for item in strings(&assertions[key]) {
                if item.contains(" with ") {
                    continue;
                }
                let Some(request) = parse_check(&item) else {
                    failures.push(format!("{name}: cannot parse `{item}`"));
                    continue;
                };
                checked += 1;
                match engine.check(&request, Consistency::Full) {
                    Ok(decision) if decision.allowed == expected => {}
                    Ok(decision) => failures.push(format!(
                        "{name}: `{item}` expected {expected}, got {}",
                        decision.allowed
                    )),
                    Err(err) => failures.push(format!("{name}: `{item}`: {err}")),
                }
            }
        }
    }
    eprintln!(
        "{files_run} files run ({skipped_files} skipped: unsupported constructs), {checked} assertions checked"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// SpiceDB's steel-thread golden results for lookups (`steelthread/operations.json`):
/// lookup subjects (`* - [excluded]` and ids) and uncursored lookup resources, compared as
/// sorted lists.
#[test]
fn spicedb_steelthread_lookups() {
    let root =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/spicedb/steelthread");
    let Ok(text) = std::fs::read_to_string(root.join("operations.json")) else {
        eprintln!("steel-thread corpus not found: skipped");
        return;
    };
    let operations: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut compared = 0;
    for case in operations["cases"].as_array().unwrap() {
        let datafile = case["datafile"].as_str().unwrap();
        let Ok(data) = std::fs::read_to_string(root.join("testdata").join(datafile)) else {
            continue;
        };
        let data: yaml_serde::Value = yaml_serde::from_str(&data).unwrap();
        let engine = Arbiter::in_memory(Config::default()).unwrap();
        let relationships = data["relationships"].as_str().unwrap_or_default();
        if engine
            .write_schema(data["schema"].as_str().unwrap_or_default())
            .is_err()
            || relationships.contains('[')
        {
            continue;
        }
        let updates: Vec<Update> = relationships
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with("//"))
            .map(|line| Update {
                op: UpdateOp::Touch,
                relationship: line.parse::<Relationship>().unwrap(),
            })
            .collect();
        for chunk in updates.chunks(400) {
            assert!(matches!(engine.write(chunk, &[]), Ok(Ok(_))), "{datafile}");
        }
        for op in case["operations"].as_array().unwrap() {
            let args = &op["arguments"];
            let arg = |key: &str| args[key].as_str().unwrap_or_default().to_string();
            let got: Vec<String> = match op["operation"].as_str().unwrap() {
                "lookupSubjects" => {
                    let resource =
                        format!("{}:{}", arg("resource_type"), arg("resource_object_id"));
                    let answer = engine
                        .lookup_subjects(
                            &LookupSubjectsRequest::new(
                                resource.parse().unwrap(),
                                arg("permission"),
                                arg("subject_type"),
                            ),
                            Consistency::Full,
                        )
                        .unwrap();
                    answer
                        .subjects
                        .iter()
                        .map(|id| {
                            if id == "*" && !answer.excluded.is_empty() {
                                format!("* - [{}]", answer.excluded.join(", "))
                            } else {
                                id.clone()
                            }
                        })
                        .collect()
                }
                "lookupResources" => {
                    let subject = format!("{}:{}", arg("subject_type"), arg("subject_object_id"));
                    engine
                        .lookup_resources(
                            &LookupResourcesRequest::new(
                                arg("resource_type"),
                                arg("permission"),
                                subject.parse().unwrap(),
                            ),
                            Consistency::Full,
                        )
                        .unwrap()
                        .resources
                }
                _ => continue,
            };
            let results = root
                .join("steelresults")
                .join(op["results_file"].as_str().unwrap());
            let expected: Vec<String> =
                yaml_serde::from_str(&std::fs::read_to_string(&results).unwrap()).unwrap();
            let (mut got, mut expected) = (got, expected);
            got.sort();
            expected.sort();
            assert_eq!(got, expected, "{datafile}: {}", op["name"]);
            compared += 1;
        }
    }
    eprintln!("{compared} steel-thread lookups compared");
    assert!(compared > 0);
}
