//! Every SpiceDB conformance file (`../shared/conformance/spicedb/*.yaml`, the consistency
//! suite) whose schema uses caveats or expiration must parse and compile now, except those
//! that also need `.all()` arrows or `self` (another step's constructs). The list of files
//! covered is printed with `--nocapture`; the test fails if it shrinks to nothing.

use std::fs;
use std::path::{Path, PathBuf};

use arbiter::schema::parse_and_compile;

#[derive(serde::Deserialize)]
struct ValidationFile {
    schema: Option<String>,
}

fn corpus_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/spicedb")
}

fn uses_caveats_or_expiration(schema: &str) -> bool {
    schema.contains("caveat") || schema.contains("expiration")
}

fn needs_later_constructs(schema: &str) -> bool {
    schema.contains(".all(")
        || schema.lines().any(|line| {
            let line = line.trim();
            line == "use self"
                || (line.starts_with("permission")
                    && line
                        .split(|c: char| !c.is_alphanumeric() && c != '_')
                        .any(|word| word == "self"))
        })
}

#[test]
fn spicedb_schemas_with_caveats_or_expiration_compile() {
    let root = corpus_root();
    let mut files: Vec<PathBuf> = fs::read_dir(&root)
        .unwrap_or_else(|err| panic!("{}: {err}", root.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    let mut covered = Vec::new();
    let mut failures = Vec::new();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let text = fs::read_to_string(file).unwrap();
        let Ok(ValidationFile {
            schema: Some(schema),
        }) = yaml_serde::from_str::<ValidationFile>(&text)
        else {
            continue;
        };
        if !uses_caveats_or_expiration(&schema) || needs_later_constructs(&schema) {
            continue;
        }
        covered.push(name.clone());
        if let Err(errors) = parse_and_compile(&schema) {
            failures.push(format!("{name}:\n{errors}"));
        }
    }
    println!(
        "compiled {} caveat/expiration schemas: {}",
        covered.len(),
        covered.join(", ")
    );
    assert!(
        covered.len() >= 15,
        "expected the corpus's caveat files, found {covered:?}"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
