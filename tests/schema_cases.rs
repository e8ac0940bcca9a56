//! Golden tests of the schema language, as data: `tests/schema_cases/ok/*.zed` must
//! compile and their `.expected` file is the formatted text; `tests/schema_cases/err/*.zed`
//! must fail and their `.expected` file lists the `LINE:COL: message` lines. Run with
//! `UPDATE_EXPECT=1` to rewrite the `.expected` files after an intended change.
//!
//! The example schemas of `schema/` must compile and already be in canonical form.

use std::fs;
use std::path::{Path, PathBuf};

use arbiter::schema::{format, parse_and_compile};

fn cases(dir: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<PathBuf> = fs::read_dir(&root)
        .unwrap_or_else(|err| panic!("{}: {err}", root.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "zed"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no cases in {}", root.display());
    files
}

/// Compares `actual` with the `.expected` file next to `input` (or rewrites it); returns
/// a failure description instead of panicking so that every case is reported.
fn check(input: &Path, actual: &str) -> Option<String> {
    let expected_path = input.with_extension("expected");
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        fs::write(&expected_path, actual).unwrap();
        return None;
    }
    let expected = fs::read_to_string(&expected_path).unwrap_or_default();
    (expected != actual).then(|| {
        format!(
            "{}: output differs from {} (UPDATE_EXPECT=1 to accept)\n--- expected\n{expected}--- actual\n{actual}",
            input.display(),
            expected_path.display()
        )
    })
}

fn report(failures: Vec<String>) {
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn ok_cases_compile_and_format_as_expected() {
    let mut failures = Vec::new();
    for input in cases("tests/schema_cases/ok") {
        let text = fs::read_to_string(&input).unwrap();
        let schema = match parse_and_compile(&text) {
            Ok(schema) => schema,
            Err(errors) => {
                failures.push(format!("{}: does not compile:\n{errors}", input.display()));
                continue;
            }
        };
        let again = format(&schema.source).unwrap();
        if again != schema.source {
            failures.push(format!("{}: formatting is not idempotent", input.display()));
        }
        let recompiled = parse_and_compile(&schema.source).unwrap();
        if recompiled != schema {
            failures.push(format!(
                "{}: formatted text compiles differently",
                input.display()
            ));
        }
        failures.extend(check(&input, &schema.source));
    }
    report(failures);
}

#[test]
fn err_cases_fail_with_expected_errors() {
    let mut failures = Vec::new();
    for input in cases("tests/schema_cases/err") {
        let text = fs::read_to_string(&input).unwrap();
        match parse_and_compile(&text) {
            Ok(_) => failures.push(format!("{}: compiles but should not", input.display())),
            Err(errors) => failures.extend(check(&input, &format!("{errors}\n"))),
        }
    }
    report(failures);
}

#[test]
fn example_schemas_compile_and_are_canonical() {
    let mut failures = Vec::new();
    for input in cases("schema") {
        let text = fs::read_to_string(&input).unwrap();
        match parse_and_compile(&text) {
            Ok(schema) if schema.source == text => {}
            Ok(_) => failures.push(format!(
                "{}: not in canonical form (run `arbiter schema fmt --write`)",
                input.display()
            )),
            Err(errors) => failures.push(format!("{}:\n{errors}", input.display())),
        }
    }
    report(failures);
}
