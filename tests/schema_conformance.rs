//! Every schema embedded in the SpiceDB conformance corpus (`../shared/conformance/spicedb`,
//! key `schema` of each YAML file) either compiles, or fails only with
//! `not supported yet: …` errors. Any other error fails the test. The counts (compiled,
//! unsupported by construct) are printed: `cargo test --test schema_conformance -- --nocapture`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use arbiter::schema::{SchemaErrorKind, parse_and_compile};

#[derive(serde::Deserialize)]
struct ValidationFile {
    schema: Option<String>,
}

/// Loader tests whose schema is meant to be invalid, with the error arbiter must give.
const MEANT_INVALID: &[(&str, &str)] = &[(
    "validationfile/invalid_caveat.yaml",
    "unknown caveat `some_caveat`",
)];

fn corpus_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/spicedb")
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|err| panic!("{}: {err}", dir.display()));
    for entry in entries {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if name.ends_with(".yaml") || name.ends_with(".yaml.skip") {
            out.push(path);
        }
    }
}

#[test]
fn spicedb_schemas_compile_or_name_what_is_unsupported() {
    let root = corpus_root();
    let mut files = Vec::new();
    yaml_files(&root, &mut files);
    files.sort();
    assert!(files.len() > 50, "corpus not found at {}", root.display());

    let mut compiled = Vec::new();
    let mut unsupported_files = 0;
    let mut by_construct: BTreeMap<&str, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for file in &files {
        let name = file.strip_prefix(&root).unwrap().display().to_string();
        let text = fs::read_to_string(file).unwrap();
        let Ok(parsed) = yaml_serde::from_str::<ValidationFile>(&text) else {
            // Lists of golden results and other files that are not validation files.
            continue;
        };
        let Some(schema) = parsed.schema else {
            continue;
        };
        match parse_and_compile(&schema) {
            Ok(_) => compiled.push(name),
            Err(errors) => {
                let mut other = Vec::new();
                for err in errors.errors() {
                    match err.kind {
                        SchemaErrorKind::Unsupported(construct) => {
                            *by_construct.entry(construct).or_default() += 1;
                        }
                        _ => other.push(err.to_string()),
                    }
                }
                let meant_invalid = MEANT_INVALID.iter().any(|(file, reason)| {
                    *file == name && other.iter().any(|err| err.contains(reason))
                });
                if other.is_empty() {
                    unsupported_files += 1;
                } else if meant_invalid {
                    continue;
                } else {
                    failures.push(format!("{name}:\n  {}", other.join("\n  ")));
                }
            }
        }
    }
    println!(
        "SpiceDB corpus schemas: {} compiled, {unsupported_files} use unsupported constructs, {} failed",
        compiled.len(),
        failures.len()
    );
    for (construct, count) in &by_construct {
        println!("  not supported yet: {construct}: {count} occurrence(s)");
    }
    assert!(
        failures.is_empty(),
        "unexpected schema errors:\n{}",
        failures.join("\n")
    );
    assert!(
        compiled.len() >= 60,
        "only {} schemas compiled",
        compiled.len()
    );
}
