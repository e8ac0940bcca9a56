//! Parse + compile benchmarks: a generated 1,000-definition schema (target under 50 ms),
//! and the example schemas of `schema/`.

use std::fmt::Write;
use std::hint::black_box;

use arbiter::schema::{format, parse_and_compile};
use criterion::{Criterion, criterion_group, criterion_main};

/// `n` definitions shaped like real ones: users, nested groups, and resources with a
/// parent, several relations (subject sets, wildcards) and permissions using every
/// operator and arrows.
fn generated_schema(n: usize) -> String {
    let mut text = String::from(
        "/** A person. */\ndefinition user {}\n\ndefinition group {\n    relation member: user | group#member\n}\n",
    );
    for idx in 2..n {
        let parent = if idx > 2 {
            format!("res_{}", idx - 1)
        } else {
            "group".to_string()
        };
        let arrow = if idx > 2 {
            "parent.view"
        } else {
            "parent.member"
        };
        write!(
            text,
            "\n/** Resource {idx}. */\ndefinition res_{idx} {{\n    relation parent: {parent}\n    relation owner: user | group#member\n    relation editor: user | group#member\n    relation viewer: user | user:* | group#member\n    relation banned: user\n    permission edit = owner | editor\n    permission view = (viewer | edit | {arrow}) - banned\n    permission share = edit & owner\n}}\n"
        )
        .unwrap();
    }
    text
}

fn benches(c: &mut Criterion) {
    let large = generated_schema(1000);
    assert_eq!(parse_and_compile(&large).unwrap().definitions.len(), 1000);
    c.bench_function("parse_and_compile 1000 definitions", |b| {
        b.iter(|| parse_and_compile(black_box(&large)).unwrap())
    });
    c.bench_function("format 1000 definitions", |b| {
        b.iter(|| format(black_box(&large)).unwrap())
    });
    let models = include_str!("../schema/models.zed");
    c.bench_function("parse_and_compile schema/models.zed", |b| {
        b.iter(|| parse_and_compile(black_box(models)).unwrap())
    });
}

criterion_group!(schema_benches, benches);
criterion_main!(schema_benches);
