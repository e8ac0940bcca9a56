//! The DESIGN §1 tickets, tested as a user would: every schema in `schema/` has a
//! validation file beside it (`schema/<name>.yaml`) that encodes its ticket, run here by the
//! same runner as `arbiter validate` and then cross-checked (check against lookups and
//! expand). What a validation file cannot say is tested through the API below: a tuple
//! naming an unknown tier is rejected at write, a check of an unknown permission is an
//! error, lookup resources lists exactly the models a user may execute, and with no schema
//! every check is an error. The last tests run the `arbiter validate` binary itself.

mod consistency;

use std::path::{Path, PathBuf};
use std::process::Command;

use arbiter::engine::{
    Arbiter, CheckRequest, Config, Consistency, EngineError, LookupResourcesRequest,
};
use arbiter::model::{Relationship, SubjectRef};
use arbiter::store::{Update, UpdateOp};
use arbiter::validation::parse::{self, ObjectRelation};
use arbiter::validation::{Outcome, Session, ValidationFile, run_file};

use consistency::cross_check;

fn schema_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schema")
}

/// The files of `schema/` ending in `.ext`, sorted.
fn schema_files(ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(schema_dir())
        .expect("schema/ is readable")
        .filter_map(|entry| entry.ok().map(|it| it.path()))
        .filter(|path| path.extension().is_some_and(|it| it == ext))
        .collect();
    files.sort();
    files
}

/// A session with `schema/<name>.yaml` loaded (its assertions not run).
fn loaded(name: &str) -> Session {
    let path = schema_dir().join(format!("{name}.yaml"));
    let file = ValidationFile::read(&path).unwrap_or_else(|(line, err)| panic!("{line}: {err}"));
    let mut session = Session::new().expect("an in-memory engine opens");
    let findings = session.load(&file);
    assert!(
        findings.is_empty(),
        "{name}.yaml does not load: {findings:?}"
    );
    session
}

fn check(engine: &Arbiter, assertion: &str) -> Result<bool, EngineError> {
    let Relationship {
        resource,
        relation,
        subject,
        ..
    } = assertion.parse().expect("a valid check in text form");
    let request = CheckRequest {
        resource,
        permission: relation,
        subject,
        context: None,
    };
    engine
        .check(&request, Consistency::Full)
        .map(|decision| decision.allowed)
}

#[test]
fn every_example_schema_has_a_passing_validation_file() {
    let schemas = schema_files("zed");
    assert!(
        schemas.len() >= 5,
        "schema/ holds {} schemas",
        schemas.len()
    );
    for schema in &schemas {
        let yaml = schema.with_extension("yaml");
        assert!(
            yaml.is_file(),
            "{} has no validation file",
            schema.display()
        );
    }
    for yaml in schema_files("yaml") {
        let report = run_file(&yaml);
        assert_eq!(
            report.outcome(),
            Outcome::Passed,
            "{}",
            report.render_findings()
        );
        assert!(report.n_checked >= 10, "{} checks little", yaml.display());

        // The validation file names its schema with `schemaFile`, beside it.
        let file =
            ValidationFile::read(&yaml).unwrap_or_else(|(line, err)| panic!("{line}: {err}"));
        let mut session = Session::new().expect("an in-memory engine opens");
        assert!(session.load(&file).is_empty());
        let relationships: Vec<Relationship> = file
            .relationships
            .iter()
            .map(|it| parse::relationship(&it.text).expect("loaded, so valid"))
            .collect();
        let (stats, problems) = cross_check(&session, &relationships, 20);
        assert!(
            problems.is_empty(),
            "{}: the engine disagrees with itself:\n{}",
            yaml.display(),
            problems.join("\n")
        );
        println!(
            "{}: {} assertions and expected relations hold; {} checks agree with {} lookups and expands",
            yaml.display(),
            report.n_checked,
            stats.n_checks,
            stats.n_lookups
        );
    }
}

#[test]
fn a_tuple_naming_an_unknown_tier_is_rejected_at_write() {
    let session = loaded("apikey_tiers");
    let engine = session.engine();
    for unknown in [
        "service:billing#admin@api_key:k9",
        "service:billing#superuser@api_key:k9",
        "organization:acme#full_acess@api_key:k9",
    ] {
        let update = Update {
            op: UpdateOp::Touch,
            relationship: unknown.parse().expect("valid text form"),
        };
        let before = engine.head();
        let res = engine.write(&[update], &[]);
        assert!(
            matches!(res, Err(EngineError::InvalidRelationship(_))),
            "{unknown}: {res:?}"
        );
        assert_eq!(engine.head(), before, "{unknown}: something was written");
    }
    // A rejected batch writes nothing, even its valid part.
    let batch = [
        "service:billing#full_access@api_key:k9",
        "service:billing#admin@api_key:k9",
    ]
    .map(|text| Update {
        op: UpdateOp::Touch,
        relationship: text.parse().expect("valid text form"),
    });
    assert!(engine.write(&batch, &[]).is_err());
    assert_eq!(
        check(engine, "service:billing#delete@api_key:k9").ok(),
        Some(false)
    );
    // Writing a permission (a computed name) is refused too.
    let permission = Update {
        op: UpdateOp::Touch,
        relationship: "service:billing#delete@api_key:k9".parse().expect("valid"),
    };
    assert!(engine.write(&[permission], &[]).is_err());
}

#[test]
fn a_check_of_an_unknown_permission_is_an_error_never_allowed() {
    let session = loaded("apikey_tiers");
    let engine = session.engine();
    for unknown in [
        "service:billing#admin@api_key:k_full",
        "service:billing#delete_all@api_key:k_full",
        "unknown_type:billing#delete@api_key:k_full",
    ] {
        let res = check(engine, unknown);
        assert!(res.is_err(), "{unknown}: {res:?}");
    }
    assert_eq!(
        check(engine, "service:billing#delete@api_key:k_full").ok(),
        Some(true)
    );
}

#[test]
fn lookup_resources_lists_exactly_the_models_a_user_may_execute() {
    let session = loaded("models");
    let engine = session.engine();
    let models = ["private_cv", "public_llm", "team_model"];
    for (user, executable) in [
        ("stranger", &["public_llm"][..]),
        ("frank", &["private_cv", "public_llm"][..]),
        ("dana", &["public_llm"][..]),
        ("erin", &["private_cv", "public_llm"][..]),
        ("gina", &["public_llm", "team_model"][..]),
        ("hank", &["public_llm", "team_model"][..]),
    ] {
        let subject: SubjectRef = format!("user:{user}").parse().expect("valid subject");
        let mut page = engine
            .lookup_resources(
                &LookupResourcesRequest::new("model", "execute", subject.clone()),
                Consistency::Full,
            )
            .expect("lookup resources answers");
        // Walk order, not sorted.
        page.resources.sort();
        assert_eq!(page.resources, executable, "models {user} may execute");
        // `Model.objects.executable(user)` agrees with `model.is_executable(user)`.
        for model in models {
            let allowed = check(engine, &format!("model:{model}#execute@user:{user}"));
            assert_eq!(
                allowed.ok(),
                Some(executable.contains(&model)),
                "{model} for {user}"
            );
        }
    }
    // Paging through the list gives the same models.
    let subject: SubjectRef = "user:gina".parse().expect("valid subject");
    let first = engine
        .lookup_resources(
            &LookupResourcesRequest {
                limit: 1,
                ..LookupResourcesRequest::new("model", "execute", subject.clone())
            },
            Consistency::Full,
        )
        .expect("first page");
    assert_eq!(first.resources.len(), 1);
    let second = engine
        .lookup_resources(
            &LookupResourcesRequest {
                limit: 1,
                cursor: first.cursor.clone(),
                ..LookupResourcesRequest::new("model", "execute", subject.clone())
            },
            Consistency::Full,
        )
        .expect("second page");
    let mut both = [first.resources, second.resources].concat();
    both.sort();
    assert_eq!(both, ["public_llm", "team_model"]);
    assert_eq!(second.cursor, None);
}

#[test]
fn without_a_schema_every_check_is_an_error() {
    let engine = Arbiter::in_memory(Config::default()).expect("an in-memory engine opens");
    let res = check(&engine, "endpoint:orders#get@client:dashboard");
    assert!(matches!(res, Err(EngineError::NoSchema)), "{res:?}");
}

/// The expand tree of a permission that is a single reference (`permission post =
/// writer`) attributes its subjects to the relation that holds them, as SpiceDB does.
#[test]
fn expand_of_a_single_reference_permission_names_the_relation() {
    let session = loaded("client_apps");
    let found = session
        .found_subjects(&ObjectRelation {
            object: "endpoint:orders".parse().expect("valid object"),
            relation: "post".to_string(),
        })
        .expect("expand answers");
    let found: Vec<String> = found.iter().map(ToString::to_string).collect();
    assert_eq!(found, ["[client:checkout] is <endpoint:orders#writer>"]);
}

#[test]
fn arbiter_validate_passes_the_example_files() {
    let output = Command::new(env!("CARGO_BIN_EXE_arbiter"))
        .arg("validate")
        .args(schema_files("yaml"))
        .output()
        .expect("the binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(stdout.matches(": ok (").count(), schema_files("yaml").len());
}

#[test]
fn arbiter_validate_names_the_file_line_and_assertion_that_failed() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("wrong.yaml");
    std::fs::write(
        &path,
        "schema: |\n  definition user {}\n  definition doc {\n    relation viewer: user | user:*\n    relation banned: user\n    permission view = viewer - banned\n  }\nrelationships: |\n  doc:1#viewer@user:*\n  doc:1#banned@user:fred\nassertions:\n  assertTrue:\n    - doc:1#view@user:ann\n    - doc:1#view@user:fred\nvalidation:\n  doc:1#view:\n    - '[user:*] is <doc:1#viewer>'\n",
    )
    .expect("written");
    let output = Command::new(env!("CARGO_BIN_EXE_arbiter"))
        .arg("validate")
        .arg(&path)
        .output()
        .expect("the binary runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let file = path.display();
    assert_eq!(
        stderr,
        format!(
            "{file}:14: assertTrue `doc:1#view@user:fred` does not hold: the check answered denied\n\
             {file}:17: `doc:1#view`: expected `[user:*] is <doc:1#viewer>`, found `[user:* - {{user:fred}}] is <doc:1#viewer>`\n"
        )
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(stdout, format!("{file}: FAILED (2 problem(s))\n"));
}
