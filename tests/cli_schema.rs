//! `arbiter schema check` and `arbiter schema fmt` as a user runs them: exit codes, and
//! `FILE:LINE:COL: message` lines on stderr.

use std::process::Command;

fn arbiter(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_arbiter"))
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn check_accepts_the_example_schemas() {
    let files: Vec<String> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/schema"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "zed"))
        .map(|path| path.display().to_string())
        .collect();
    let mut args = vec!["schema", "check"];
    args.extend(files.iter().map(String::as_str));
    let (code, _, stderr) = arbiter(&args);
    assert_eq!((code, stderr.as_str()), (0, ""));
}

#[test]
fn check_reports_file_line_column_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.zed");
    std::fs::write(
        &bad,
        "definition user {}\ndefinition doc {\n    relation viewer: usr\n}\n",
    )
    .unwrap();
    let bad = bad.display().to_string();
    let (code, _, stderr) = arbiter(&["schema", "check", &bad]);
    assert_eq!(code, 1);
    assert_eq!(stderr, format!("{bad}:3:22: unknown type `usr`\n"));
    let (code, _, stderr) = arbiter(&["schema", "check", "/nonexistent/x.zed"]);
    assert_eq!(code, 2);
    assert!(
        stderr.starts_with("/nonexistent/x.zed: cannot read file"),
        "{stderr}"
    );
}

#[test]
fn fmt_prints_or_rewrites_canonical_text() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.zed");
    std::fs::write(
        &file,
        "definition user{}\ndefinition doc{relation viewer:user permission view=viewer+viewer}",
    )
    .unwrap();
    let path = file.display().to_string();
    let expected = "definition user {}\n\ndefinition doc {\n    relation viewer: user\n    permission view = viewer | viewer\n}\n";
    let (code, stdout, _) = arbiter(&["schema", "fmt", &path]);
    assert_eq!((code, stdout.as_str()), (0, expected));
    let (code, _, _) = arbiter(&["schema", "fmt", &path, "--write"]);
    assert_eq!(code, 0);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), expected);
}
