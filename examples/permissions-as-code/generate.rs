//! Renders the permissions file of one environment from the application list Terraform
//! keeps (`terraform output -json apps`, the `value` part): which applications may read and
//! which may write each environment. Shared by `main.rs` and the test that checks the
//! committed files are up to date.

use std::collections::BTreeMap;
use std::fmt::Write;

/// The applications of one environment.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    pub readers: Vec<String>,
    pub writers: Vec<String>,
}

const SCHEMA: &str = "\
schema: |-
  // Applications are the subjects; an environment is what they read or write.
  definition app {}

  definition environment {
    relation reader: app
    relation writer: app

    permission read = reader + writer
    permission write = writer
  }
";

/// The permissions file of environment `name` in `apps` (JSON: environment → readers and
/// writers). Unknown environments and malformed JSON are errors, never an empty file.
pub fn render(apps: &str, name: &str) -> Result<String, String> {
    let environments: BTreeMap<String, Environment> =
        serde_json::from_str(apps).map_err(|err| format!("invalid apps json: {err}"))?;
    let environment = environments
        .get(name)
        .ok_or_else(|| format!("no environment `{name}` in the apps json"))?;
    let mut out =
        format!("# Generated from apps.json for `{name}`; do not edit by hand.\n{SCHEMA}");
    out.push_str("relationships: |-\n");
    for app in &environment.readers {
        let _ = writeln!(out, "  environment:{name}#reader@app:{app}");
    }
    for app in &environment.writers {
        let _ = writeln!(out, "  environment:{name}#writer@app:{app}");
    }
    // The file checks itself: `serve --bootstrap` refuses it if any assertion fails.
    out.push_str("assertions:\n  assertTrue:\n");
    for app in environment.readers.iter().chain(&environment.writers) {
        let _ = writeln!(out, "    - environment:{name}#read@app:{app}");
    }
    for app in &environment.writers {
        let _ = writeln!(out, "    - environment:{name}#write@app:{app}");
    }
    out.push_str("  assertFalse:\n");
    for app in &environment.readers {
        let _ = writeln!(out, "    - environment:{name}#write@app:{app}");
    }
    // Default deny: an application Terraform does not list gets nothing.
    let _ = writeln!(out, "    - environment:{name}#read@app:not-listed");
    Ok(out)
}
