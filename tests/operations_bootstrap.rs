//! `arbiter serve --bootstrap FILE` and `arbiter import --sync FILE` end to end (issue 16):
//! a good file is served with default deny; a bad file stops the start with
//! `FILE:LINE: message`, exit 1, and leaves the store as it was; SIGHUP re-syncs a changed
//! file (a removed line is revoked) and refuses a bad one while serving on; `import --sync
//! --dry-run` prints `+`/`-` lines and writes nothing; `--keys` scopes the sync endpoint, is
//! reloaded on SIGHUP, and a bad key file stops the start or, on reload, keeps the old keys.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use arbiter::engine::{self, Arbiter, Consistency, ReadRequest};
use arbiter::server::keys::sha256_hex;
use arbiter::store::RelationshipFilter;

const BIN: &str = env!("CARGO_BIN_EXE_arbiter");

const SCHEMA: &str = "schema: |-
  definition user {}
  definition app {
    relation reader: user
    relation writer: user
    permission read = reader + writer
    permission write = writer
  }
";

fn permissions(lines: &[&str]) -> String {
    let mut text = format!("{SCHEMA}relationships: |-\n");
    for line in lines {
        text.push_str(&format!("  {line}\n"));
    }
    text
}

struct Served {
    child: Child,
    url: String,
    log: std::path::PathBuf,
}

fn serve(args: &[&str], log: &Path) -> Served {
    let mut child = Command::new(BIN)
        .arg("serve")
        .args(["--addr", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| {
            panic!(
                "unexpected first line {line:?}: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            )
        })
        .to_string();
    Served {
        child,
        url,
        log: log.to_path_buf(),
    }
}

impl Served {
    fn run(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .args(["--server", &self.url])
            .output()
            .unwrap()
    }

    fn check(&self, resource: &str, permission: &str, subject: &str) -> Option<i32> {
        self.run(&["check", resource, permission, subject])
            .status
            .code()
    }

    fn hangup(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits (up to a generous bound, for a loaded machine) until the log holds `needle`.
    fn wait_for_log(&self, needle: &str, occurrences: usize) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            if log.matches(needle).count() >= occurrences {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no `{needle}` in the log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn terminate(mut self) {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(self.child.wait().unwrap().success());
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).to_string()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}

#[test]
fn issue16_bootstrap_serves_the_file_resyncs_on_sighup_and_refuses_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("perms.yaml");
    let db = dir.path().join("db");
    let log = dir.path().join("serve.log");
    std::fs::write(
        &file,
        permissions(&["app:billing#reader@user:ana", "app:billing#writer@user:bo"]),
    )
    .unwrap();
    let server = serve(
        &[
            "--db",
            db.to_str().unwrap(),
            "--bootstrap",
            file.to_str().unwrap(),
        ],
        &log,
    );
    assert_eq!(server.check("app:billing", "read", "user:ana"), Some(0));
    assert_eq!(server.check("app:billing", "write", "user:bo"), Some(0));
    // Default deny: nobody else, nothing else.
    assert_eq!(server.check("app:billing", "write", "user:ana"), Some(1));
    assert_eq!(server.check("app:billing", "read", "user:mallory"), Some(1));

    // Removing a line and sending SIGHUP revokes it.
    std::fs::write(&file, permissions(&["app:billing#writer@user:bo"])).unwrap();
    server.hangup();
    server.wait_for_log("permissions file synced", 2);
    assert_eq!(server.check("app:billing", "read", "user:ana"), Some(1));
    assert_eq!(server.check("app:billing", "read", "user:bo"), Some(0));

    // A bad file is refused and logged; the server keeps serving what it had.
    std::fs::write(&file, permissions(&["app:billing#owner@user:eve"])).unwrap();
    server.hangup();
    server.wait_for_log("permissions file refused", 1);
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(
        log_text.contains(&format!("{}:10:", file.display())),
        "{log_text}"
    );
    assert_eq!(server.check("app:billing", "read", "user:bo"), Some(0));
    assert_eq!(server.check("app:billing", "read", "user:eve"), Some(1));
    server.terminate();

    // At start-up a bad file stops the start with FILE:LINE, exit 1, and changes nothing.
    let out = Command::new(BIN)
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--db",
            db.to_str().unwrap(),
            "--bootstrap",
            file.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let message = stderr(&out);
    assert!(
        message.starts_with(&format!("{}:10: ", file.display())),
        "{message}"
    );
    assert!(message.contains("owner"), "{message}");
    let engine = Arbiter::open(&db, engine::Config::default()).unwrap();
    let filter = RelationshipFilter {
        resource_type: Some("app".to_string()),
        ..Default::default()
    };
    let page = engine
        .read(&ReadRequest::new(filter.clone()), Consistency::Full)
        .unwrap();
    let live: Vec<String> = page.relationships.iter().map(ToString::to_string).collect();
    assert_eq!(live, ["app:billing#writer@user:bo"]);
}

#[test]
fn issue16_import_sync_dry_run_then_apply_against_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("perms.yaml");
    let keys = dir.path().join("keys.yaml");
    std::fs::write(
        &keys,
        format!(
            "keys:\n  - name: deployer\n    sha256: {}\n    scopes: [admin]\n  - name: app\n    sha256: {}\n    scopes: [check]\n",
            sha256_hex("deploy-secret"),
            sha256_hex("app-secret")
        ),
    )
    .unwrap();
    std::fs::write(&file, permissions(&["app:a#reader@user:x"])).unwrap();
    let server = serve(
        &[
            "--memory",
            "--keys",
            keys.to_str().unwrap(),
            "--bootstrap",
            file.to_str().unwrap(),
        ],
        &dir.path().join("serve.log"),
    );
    std::fs::write(
        &file,
        permissions(&["app:a#writer@user:x", "app:b#reader@user:y"]),
    )
    .unwrap();
    let sync = |token: &str, dry_run: bool| {
        let mut args = vec!["import", "--sync", file.to_str().unwrap(), "--token", token];
        if dry_run {
            args.push("--dry-run");
        }
        server.run(&args)
    };
    let out = sync("app-secret", true);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        stderr(&out).contains("key `app` lacks the `admin` scope"),
        "{out:?}"
    );
    let out = sync("deploy-secret", true);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        stdout(&out),
        "- app:a#reader@user:x\n+ app:a#writer@user:x\n+ app:b#reader@user:y\ndry run: would be 2 added, 1 removed; nothing written\n"
    );
    let check = |resource: &str, permission: &str, subject: &str| {
        server
            .run(&[
                "check",
                resource,
                permission,
                subject,
                "--token",
                "app-secret",
            ])
            .status
            .code()
    };
    assert_eq!(check("app:a", "read", "user:x"), Some(0));
    assert_eq!(check("app:a", "write", "user:x"), Some(1));
    let out = sync("deploy-secret", false);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout(&out).contains("synced at revision "), "{out:?}");
    assert_eq!(check("app:a", "write", "user:x"), Some(0));
    assert_eq!(check("app:b", "read", "user:y"), Some(0));
    let out = sync("deploy-secret", false);
    assert_eq!(stdout(&out), "already in sync: nothing written\n");
    // A bad file is refused locally with its line, before the server is asked.
    std::fs::write(
        &file,
        permissions(&["app:a#writer@user:x", "app:b#nope@user:y"]),
    )
    .unwrap();
    let out = sync("deploy-secret", false);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stderr(&out).starts_with(&format!("{}:11: ", file.display())),
        "{out:?}"
    );
}

#[test]
fn issue16_bad_key_file_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.yaml");
    std::fs::write(
        &keys,
        format!(
            "keys:\n  - name: a\n    sha256: {}\n    scopes: [superuser]\n",
            sha256_hex("s")
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args([
            "serve",
            "--memory",
            "--addr",
            "127.0.0.1:0",
            "--keys",
            keys.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        stderr(&out).starts_with(&format!(
            "{}:2: key `a`: unknown scope `superuser`",
            keys.display()
        )),
        "{out:?}"
    );
}

#[test]
fn issue16_sighup_reloads_keys_and_a_bad_key_file_keeps_the_old_ones() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.yaml");
    let key_file = |name: &str, secret: &str, scope: &str| {
        format!(
            "keys:\n  - name: {name}\n    sha256: {}\n    scopes: [{scope}]\n",
            sha256_hex(secret)
        )
    };
    std::fs::write(&keys, key_file("old", "old-secret", "read")).unwrap();
    let server = serve(
        &[
            "--memory",
            "--keys",
            keys.to_str().unwrap(),
            "--token",
            "root",
        ],
        &dir.path().join("serve.log"),
    );
    let read = |token: &str| server.run(&["schema", "read", "--token", token]);
    // No schema yet: a known key gets past auth to a 503, an unknown one stops at 401.
    assert!(
        stderr(&read("old-secret")).contains("no_schema"),
        "{:?}",
        read("old-secret")
    );
    assert!(stderr(&read("new-secret")).contains("unauthenticated"));

    std::fs::write(&keys, key_file("new", "new-secret", "read")).unwrap();
    server.hangup();
    server.wait_for_log("key file reloaded", 1);
    assert!(stderr(&read("old-secret")).contains("unauthenticated"));
    assert!(stderr(&read("new-secret")).contains("no_schema"));
    // `--token` survives the reload as an admin key.
    assert!(stderr(&read("root")).contains("no_schema"));

    std::fs::write(&keys, key_file("broken", "x", "everything")).unwrap();
    server.hangup();
    server.wait_for_log("key file refused", 1);
    assert!(stderr(&read("new-secret")).contains("no_schema"));
    assert!(stderr(&read("x")).contains("unauthenticated"));
}
