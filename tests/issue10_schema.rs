//! Regressions of issue 10, part 1 and the empty schema of part 2: no schema text may
//! crash parse, compile, format or a check, whatever its width or depth, and what the
//! compiler accepts the engine can evaluate within a 2 MiB stack (a tokio worker's).
//!
//! Each case runs on a thread with a 2 MiB stack, so a regression overflows here (and
//! aborts this test binary) instead of passing on the main thread's larger stack.

use arbiter::engine::{Arbiter, CheckRequest, Config, Consistency, EngineError, ExpandRequest};
use arbiter::schema::{MAX_EXPR_NESTING, format, parse, parse_and_compile};
use arbiter::store::{Update, UpdateOp};

/// The stack of a tokio worker thread (and of any thread spawned without a size).
const WORKER_STACK: usize = 2 * 1024 * 1024;

/// The stack the cases run on: a worker's, or `STACK_KIB` KiB to measure the margin
/// (`STACK_KIB=1024 cargo test --test issue10_schema` passes in a debug build).
fn stack_size() -> usize {
    std::env::var("STACK_KIB")
        .ok()
        .and_then(|it| it.parse::<usize>().ok())
        .map_or(WORKER_STACK, |kib| kib * 1024)
}

/// Runs `body` on a thread with a tokio worker's stack; its panics fail the test.
fn on_worker_stack<T: Send + 'static>(body: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(stack_size())
        .spawn(body)
        .unwrap()
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

fn engine(depth_limit: u32, schema: &str) -> Arbiter {
    let engine = Arbiter::in_memory(Config {
        depth_limit,
        cache_capacity: 0,
        ..Config::default()
    })
    .unwrap();
    engine.write_schema(schema).unwrap();
    engine
}

/// Writes `texts` in batches the store accepts.
fn touch(engine: &Arbiter, texts: &[String]) {
    for batch in texts.chunks(100) {
        let updates: Vec<Update> = batch
            .iter()
            .map(|text| Update {
                op: UpdateOp::Touch,
                relationship: text.parse().unwrap(),
            })
            .collect();
        engine.write(&updates, &[]).unwrap().unwrap();
    }
}

/// The answer, or the error's message.
fn check(
    engine: &Arbiter,
    resource: &str,
    permission: &str,
    subject: &str,
) -> Result<bool, String> {
    let request = CheckRequest {
        resource: resource.parse().unwrap(),
        permission: permission.to_string(),
        subject: subject.parse().unwrap(),
        context: None,
    };
    engine
        .check(&request, Consistency::Full)
        .map(|decision| decision.allowed)
        .map_err(|err| err.to_string())
}

/// `definition doc { relation r000…: user  permission p = r000 OP r001 OP … }`.
fn chain_schema(op: &str, n_terms: usize) -> String {
    let relations: String = (0..n_terms)
        .map(|idx| format!("    relation r{idx:05}: user\n"))
        .collect();
    let expr = (0..n_terms)
        .map(|idx| format!("r{idx:05}"))
        .collect::<Vec<_>>()
        .join(&format!(" {op} "));
    format!(
        "definition user {{}}\n\ndefinition doc {{\n{relations}    permission ppp = {expr}\n}}\n"
    )
}

/// Parse, compile, format, re-parse and drop, all on a worker's stack; the formatted text
/// compiles to the same schema.
fn round_trip(text: String) {
    on_worker_stack(move || {
        let schema = parse_and_compile(&text).unwrap();
        let formatted = format(&text).unwrap();
        assert_eq!(formatted, schema.source);
        assert_eq!(parse_and_compile(&formatted).unwrap(), schema);
        drop(parse(&text).unwrap());
    });
}

#[test]
fn issue10_flat_union_20000_terms() {
    round_trip(chain_schema("+", 20_000));
    round_trip(chain_schema("&", 20_000));
    let text = chain_schema("+", 20_000);
    on_worker_stack(move || {
        let engine = engine(50, &text);
        touch(&engine, &["doc:d1#r19999@user:alice".to_string()]);
        assert_eq!(check(&engine, "doc:d1", "ppp", "user:alice"), Ok(true));
        assert_eq!(check(&engine, "doc:d1", "ppp", "user:bob"), Ok(false));
    });
}

#[test]
fn issue10_relation_with_5000_subject_types() {
    let definitions: String = (0..5_000)
        .map(|idx| format!("definition t{idx:05} {{\n    relation member: user\n}}\n\n"))
        .collect();
    let types = (0..5_000)
        .map(|idx| format!("t{idx:05}"))
        .collect::<Vec<_>>()
        .join(" | ");
    let text = format!(
        "definition user {{}}\n\n{definitions}definition doc {{\n    relation owner: {types}\n    permission ppp = owner.member + owner.missing\n}}\n"
    );
    let error = parse_and_compile(&text).unwrap_err().to_string();
    assert!(error.contains("… (5000 in all)"), "{}", &error[..300]);
    assert!(
        error.len() < 500,
        "the message stays short: {} bytes",
        error.len()
    );
    round_trip(text.replace(" + owner.missing", ""));
}

#[test]
fn issue10_exclusion_chain_5000_terms() {
    round_trip(chain_schema("-", 5_000));
    let text = chain_schema("-", 5_000);
    on_worker_stack(move || {
        let engine = engine(50, &text);
        touch(
            &engine,
            &[
                "doc:d1#r00000@user:alice".to_string(),
                "doc:d1#r00000@user:bob".to_string(),
                "doc:d1#r04999@user:bob".to_string(),
            ],
        );
        assert_eq!(check(&engine, "doc:d1", "ppp", "user:alice"), Ok(true));
        assert_eq!(check(&engine, "doc:d1", "ppp", "user:bob"), Ok(false));
        assert_eq!(check(&engine, "doc:d1", "ppp", "user:carol"), Ok(false));
    });
}

#[test]
fn issue10_deep_arrow_exclusion_check_does_not_overflow() {
    // The reproduction: 100 exclusions after an arrow, 61 folders in a parent chain, the
    // default depth limit.
    let excluded = " - xxx".repeat(100);
    let text = format!(
        "definition user {{}}\n\ndefinition folder {{\n    relation parent: folder\n    relation viewer: user\n    relation xxx: user\n    permission view = viewer + parent.view{excluded}\n}}\n"
    );
    on_worker_stack(move || {
        let engine = engine(Config::default().depth_limit, &text);
        let parents: Vec<String> = (0..61)
            .map(|idx| format!("folder:f{idx}#parent@folder:f{}", idx + 1))
            .collect();
        touch(&engine, &parents);
        touch(&engine, &["folder:f40#viewer@user:alice".to_string()]);
        assert_eq!(check(&engine, "folder:f0", "view", "user:alice"), Ok(true));
        assert_eq!(
            check(&engine, "folder:f0", "view", "user:bob"),
            Err(EngineError::DepthExceeded(50).to_string())
        );
        assert_eq!(check(&engine, "folder:f20", "view", "user:bob"), Ok(false));
    });
}

/// The deepest expression the compiler accepts, with the arrow that recurses at its very
/// bottom: `((((parent.view | viewer) & everyone) | viewer) & …) - banned`.
fn deepest_recursive_view(recursive: &str) -> String {
    let mut expr = format!("{recursive} | viewer");
    for level in 2..MAX_EXPR_NESTING {
        expr = if level % 2 == 0 {
            format!("({expr}) & everyone")
        } else {
            format!("({expr}) | viewer")
        };
    }
    format!("({expr}) - banned")
}

#[test]
fn issue10_max_nesting_at_depth_limit_200_fits_a_worker_stack() {
    let view = deepest_recursive_view("parent.view");
    let text = format!(
        "definition user {{}}\n\ndefinition folder {{\n    relation parent: folder\n    relation viewer: user\n    relation everyone: user:*\n    relation banned: user\n    permission view = {view}\n}}\n"
    );
    let schema = parse_and_compile(&text).unwrap();
    let nesting = schema
        .relations
        .iter()
        .filter_map(|relation| match &relation.kind {
            arbiter::schema::RelationKind::Permission { expr } => Some(expr.nesting()),
            arbiter::schema::RelationKind::Relation { .. } => None,
        })
        .max();
    assert_eq!(
        nesting,
        Some(MAX_EXPR_NESTING),
        "the worst case is the limit"
    );
    on_worker_stack(move || {
        let engine = engine(arbiter::engine::MAX_DEPTH_LIMIT, &text);
        // f0 → f1 → … → f199: the check of f0 reaches f199 at depth 199, its `viewer` at
        // 200, the limit. g0 → … → g260 goes past it.
        let mut parents: Vec<String> = (0..199)
            .map(|idx| format!("folder:f{idx}#parent@folder:f{}", idx + 1))
            .collect();
        parents.extend((0..260).map(|idx| format!("folder:g{idx}#parent@folder:g{}", idx + 1)));
        parents.extend((0..200).map(|idx| format!("folder:f{idx}#everyone@user:*")));
        touch(&engine, &parents);
        touch(&engine, &["folder:f199#viewer@user:alice".to_string()]);
        // Every level is walked at the full nesting: 200 levels deep and back.
        assert_eq!(check(&engine, "folder:f0", "view", "user:alice"), Ok(true));
        assert_eq!(check(&engine, "folder:f0", "view", "user:bob"), Ok(false));
        assert_eq!(
            check(&engine, "folder:g0", "view", "user:bob"),
            Err(EngineError::DepthExceeded(200).to_string())
        );
    });
}

#[test]
fn issue10_max_nesting_through_nested_groups_fits_a_worker_stack() {
    // The other native recursion of a check: a subject set naming a permission, whose
    // expression names the relation holding the next subject set.
    let all = deepest_recursive_view("member");
    let text = format!(
        "definition user {{}}\n\ndefinition group {{\n    relation member: user | group#all\n    relation viewer: user\n    relation everyone: user:*\n    relation banned: user\n    permission all = {all}\n}}\n"
    );
    on_worker_stack(move || {
        let engine = engine(arbiter::engine::MAX_DEPTH_LIMIT, &text);
        let mut tuples: Vec<String> = (0..300)
            .map(|idx| format!("group:g{idx}#member@group:g{}#all", idx + 1))
            .collect();
        tuples.extend((0..=300).map(|idx| format!("group:g{idx}#everyone@user:*")));
        tuples.push("group:g66#member@user:alice".to_string());
        touch(&engine, &tuples);
        assert_eq!(check(&engine, "group:g0", "all", "user:alice"), Ok(true));
        assert_eq!(
            check(&engine, "group:g0", "all", "user:bob"),
            Err(EngineError::DepthExceeded(200).to_string())
        );
        assert_eq!(check(&engine, "group:g250", "all", "user:bob"), Ok(false));
    });
}

#[test]
fn issue10_nesting_deeper_than_the_limit_is_refused_with_its_position() {
    let mut expr = "aaa".to_string();
    for level in 0..=MAX_EXPR_NESTING {
        let op = if level % 2 == 0 { "&" } else { "|" };
        expr = format!("aaa {op} ({expr})");
    }
    let text =
        format!("definition doc {{\n    relation aaa: doc\n    permission ppp = {expr}\n}}\n");
    let errors = parse_and_compile(&text).unwrap_err().to_string();
    assert_eq!(
        errors,
        format!(
            "3:22: expression nests deeper than {MAX_EXPR_NESTING} levels of operators; split it into several permissions"
        )
    );
    // The server's path refuses it the same way.
    let engine = Arbiter::in_memory(Config::default()).unwrap();
    let refused = engine.write_schema(&text).unwrap_err().to_string();
    assert!(refused.contains("3:22"), "{refused}");
    assert!(refused.contains("nests deeper than"), "{refused}");
}

#[test]
fn issue10_deep_parentheses_are_refused_not_a_crash() {
    for depth in [65, 1_000, 100_000] {
        let text = format!(
            "definition doc {{\n    relation aaa: doc\n    permission ppp = {}aaa{}\n}}\n",
            "(".repeat(depth),
            ")".repeat(depth)
        );
        let error = on_worker_stack(move || parse_and_compile(&text).unwrap_err().to_string());
        assert_eq!(
            error, "3:86: expression nests deeper than 64 levels of parentheses",
            "{depth}"
        );
    }
    let text = format!(
        "definition doc {{\n    relation aaa: doc\n    permission ppp = {}aaa{}\n}}\n",
        "(".repeat(64),
        ")".repeat(64)
    );
    on_worker_stack(move || parse_and_compile(&text).unwrap());
}

#[test]
fn issue10_empty_schema_is_refused() {
    let engine = Arbiter::in_memory(Config::default()).unwrap();
    for text in ["", "   \n\t", "// nothing\n/* at all */\n"] {
        let errors = parse_and_compile(text).unwrap_err().to_string();
        assert_eq!(
            errors, "1:1: the schema defines nothing: expected at least one `definition`",
            "{text:?}"
        );
        assert!(
            matches!(
                engine.write_schema(text),
                Err(EngineError::InvalidSchema(_))
            ),
            "{text:?}"
        );
    }
    assert!(engine.schema().is_none(), "nothing was stored");
}

#[test]
fn issue10_stored_schema_that_no_longer_compiles_is_reported_not_loaded() {
    use arbiter::store::Store;
    use arbiter::store::memory::MemoryStore;
    // A schema an older version accepted (it defines nothing) is in the store.
    let store = MemoryStore::new();
    store.write_schema("// nothing yet\n").unwrap();
    let engine = Arbiter::with_store(Box::new(store), Config::default()).unwrap();
    let err = engine.require_schema().unwrap_err();
    assert!(
        matches!(err, EngineError::StoredSchemaInvalid(_)),
        "{err:?}"
    );
    assert_eq!(err.code(), "no_schema");
    assert_eq!(
        err.to_string(),
        "no schema is loaded: the stored schema no longer compiles (revision 1: invalid schema: 1:1: the schema defines nothing: expected at least one `definition`); write a corrected schema"
    );
    // Checks fail closed with the same reason.
    assert_eq!(
        check(&engine, "doc:d1", "view", "user:alice"),
        Err(err.to_string())
    );
    // A corrected schema can be written, and then everything works.
    engine
        .write_schema("definition user {}\ndefinition doc { relation viewer: user }")
        .unwrap();
    assert!(engine.require_schema().is_ok());
    assert_eq!(check(&engine, "doc:d1", "viewer", "user:alice"), Ok(false));
}

/// Found by `cargo fuzz run schema` (fuzz/corpus/schema/regression_doc_after_member.zed): a
/// doc comment on the line of the previous member, before a member with a comment inside,
/// was printed as that member's trailing comment with the inner comment after it, so the
/// formatted schema lost the doc.
#[test]
fn issue10_fuzz_doc_comment_after_a_member_stays_with_the_next_member() {
    let text = "definition user {}\n\ndefinition doc {\n  relation reader: user\n  relation banned: user:*/** Readers who are not banned. */\n  permission read = reader - /* never */ banned\n}\n";
    round_trip(text.to_string());
    let schema = parse_and_compile(text).unwrap();
    assert_eq!(
        schema.relation("doc", "read").unwrap().doc.as_deref(),
        Some("Readers who are not banned.")
    );
    assert_eq!(
        schema.source,
        "definition user {}\n\ndefinition doc {\n    relation reader: user\n    relation banned: user:*\n    /* never */\n    /** Readers who are not banned. */\n    permission read = reader - banned\n}\n"
    );
}

/// A recursive expand of `view` on `resource`, as a worker thread would run it.
fn expand_recursive(engine: &Arbiter, resource: &str) -> Result<usize, String> {
    engine
        .expand(
            &ExpandRequest::new(
                resource.parse().unwrap(),
                "view",
                arbiter::engine::ExpandDepth::Recursive,
            ),
            Consistency::Full,
        )
        .map(|expansion| format!("{:?}", expansion.tree).len())
        .map_err(|err| err.to_string())
}

#[test]
fn issue10_recursive_expand_at_depth_limit_200_fits_a_worker_stack() {
    // Found after the check fix: expand recursed per level and per operator on the
    // caller's stack and overflowed a 2 MiB thread at the depth limit even for a simple
    // permission. It now runs on a thread of its own sized for the worst case.
    let view = deepest_recursive_view("parent.view");
    let text = format!(
        "definition user {{}}\n\ndefinition folder {{\n    relation parent: folder\n    relation viewer: user\n    relation everyone: user:*\n    relation banned: user\n    permission view = {view}\n}}\n"
    );
    on_worker_stack(move || {
        let engine = engine(arbiter::engine::MAX_DEPTH_LIMIT, &text);
        let parents: Vec<String> = (0..199)
            .map(|idx| format!("folder:f{idx}#parent@folder:f{}", idx + 1))
            .collect();
        touch(&engine, &parents);
        touch(&engine, &["folder:f199#viewer@user:alice".to_string()]);
        let expanded = expand_recursive(&engine, "folder:f0");
        assert!(
            matches!(expanded, Ok(len) if len > 0)
                || expanded == Err(EngineError::DepthExceeded(200).to_string())
                || expanded.as_ref().is_err_and(|err| err.contains("expand")),
            "{expanded:?}"
        );
    });
}

#[test]
fn issue10_recursive_expand_of_a_simple_deep_chain_fits_a_worker_stack() {
    let text = "definition user {}\n\ndefinition folder {\n    relation parent: folder\n    relation viewer: user\n    relation everyone: user:*\n    permission view = (parent.view | viewer) & everyone\n}\n";
    on_worker_stack(move || {
        let engine = engine(arbiter::engine::MAX_DEPTH_LIMIT, text);
        let mut tuples: Vec<String> = (0..199)
            .map(|idx| format!("folder:f{idx}#parent@folder:f{}", idx + 1))
            .collect();
        tuples.extend((0..200).map(|idx| format!("folder:f{idx}#everyone@user:*")));
        touch(&engine, &tuples);
        // 40 folders deep: a tree of a few levels per folder, answered.
        assert!(expand_recursive(&engine, "folder:f159").is_ok_and(|len| len > 0));
        // 200 folders deep: deeper than a tree may nest, refused (not a crash).
        let deep = expand_recursive(&engine, "folder:f0");
        assert!(
            deep.as_ref().is_err_and(|err| err.contains("too deep")),
            "{deep:?}"
        );
    });
}
