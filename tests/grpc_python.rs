//! Runs the pytest suite `tests/python/` (SpiceDB's own Python client, PyPI `authzed`,
//! against a real `arbiter serve`) so that `cargo test` covers it.
//!
//! The interpreter is `$ARBITER_PYTHON`, else the virtualenv `target/pyvenv/bin/python`
//! that `.ci/run` creates from `tests/python/requirements.txt`. Without one the test skips
//! loudly, and fails instead when `ARBITER_CI=1` (CI must run it).

use std::path::PathBuf;
use std::process::Command;

fn python() -> Option<PathBuf> {
    if let Some(explicit) = std::env::var_os("ARBITER_PYTHON") {
        return Some(PathBuf::from(explicit));
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/pyvenv/bin/python");
    venv.is_file().then_some(venv)
}

#[test]
fn authzed_python_client_drives_arbiter() {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let Some(python) = python() else {
        let reason =
            "no python with `authzed`: set ARBITER_PYTHON or create target/pyvenv (see .ci/run)";
        assert!(
            std::env::var("ARBITER_CI").as_deref() != Ok("1"),
            "ARBITER_CI=1 but {reason}"
        );
        eprintln!("SKIPPED: {reason}");
        return;
    };
    let output = Command::new(&python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg(manifest.join("tests/python"))
        .env("ARBITER_BIN", env!("CARGO_BIN_EXE_arbiter"))
        .current_dir(&manifest)
        .output()
        .expect("python starts");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "pytest failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(stdout.contains("passed"), "pytest ran no test:\n{stdout}");
}
