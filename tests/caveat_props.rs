//! Caveat evaluation never panics: random well-typed CEL over every kind of parameter,
//! with arithmetic (`+ - * / %`, unary minus, conversions, indexing) on values at the
//! edges of their ranges, compiled and evaluated with random contexts. Tests run in a
//! debug build, where an integer overflow that wraps silently in release panics, so an
//! unchecked operation (as the `cel` crate's unary minus was, `docs/CAVEATS.md`) fails
//! here. An expression may be refused at compile and an evaluation may fail; neither may
//! panic.

use arbiter::caveat::{CaveatParam, CompiledCaveat, ParamType};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::Config;
use serde_json::{Map, Value, json};

/// The parameters every generated caveat declares.
const PARAMS: &[(&str, &str)] = &[
    ("a", "int"),
    ("b", "int"),
    ("u", "uint"),
    ("x", "double"),
    ("d", "duration"),
    ("e", "duration"),
    ("t", "timestamp"),
    ("s", "string"),
    ("l", "list<int>"),
    ("m", "map<int>"),
];

const INT_EDGES: &[&str] = &[
    "0",
    "1",
    "-1",
    "2",
    "9223372036854775807",
    "-9223372036854775807",
];
const DURATION_EDGES: &[&str] = &["0s", "1h", "-90m", "2562047h", "2562048h", "-2562047h"];
const TIMESTAMP_EDGES: &[&str] = &[
    "0001-01-01T00:00:00Z",
    "2026-12-02T00:00:00Z",
    "9999-12-31T23:59:59Z",
];

fn int_expr() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("a".to_string()),
        Just("b".to_string()),
        prop::sample::select(INT_EDGES).prop_map(str::to_string),
        Just("size(s)".to_string()),
        Just("size(l)".to_string()),
        Just("int(x)".to_string()),
        Just("int(s)".to_string()),
        Just("int(u)".to_string()),
        Just("l[0]".to_string()),
        Just("m[\"k\"]".to_string()),
    ];
    leaf.prop_recursive(3, 16, 2, |inner| {
        prop_oneof![
            inner.clone().prop_map(|it| format!("-({it})")),
            (
                inner.clone(),
                prop::sample::select(&["+", "-", "*", "/", "%"][..]),
                inner
            )
                .prop_map(|(l, op, r)| format!("({l} {op} {r})")),
        ]
    })
}

fn duration_expr() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("d".to_string()),
        Just("e".to_string()),
        prop::sample::select(DURATION_EDGES).prop_map(|it| format!("duration(\"{it}\")")),
        prop::sample::select(TIMESTAMP_EDGES).prop_map(|it| format!("(t - timestamp(\"{it}\"))")),
    ];
    leaf.prop_recursive(2, 8, 2, |inner| {
        (inner.clone(), prop::sample::select(&["+", "-"][..]), inner)
            .prop_map(|(l, op, r)| format!("({l} {op} {r})"))
    })
}

fn timestamp_expr() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("t".to_string()),
        prop::sample::select(TIMESTAMP_EDGES).prop_map(|it| format!("timestamp(\"{it}\")")),
        (duration_expr(), prop::sample::select(&["+", "-"][..]))
            .prop_map(|(d, op)| format!("(t {op} {d})")),
    ]
}

fn comparison() -> impl Strategy<Value = String> {
    let cmp = prop::sample::select(&["==", "!=", "<", "<=", ">", ">="][..]);
    prop_oneof![
        (int_expr(), cmp.clone(), int_expr()).prop_map(|(l, op, r)| format!("{l} {op} {r}")),
        (duration_expr(), cmp.clone(), duration_expr())
            .prop_map(|(l, op, r)| format!("{l} {op} {r}")),
        (timestamp_expr(), cmp.clone(), timestamp_expr())
            .prop_map(|(l, op, r)| format!("{l} {op} {r}")),
        (
            cmp.clone(),
            prop::sample::select(&["-x", "x * x", "x / 0.0", "double(a)"][..])
        )
            .prop_map(|(op, it)| format!("{it} {op} 1.5")),
        (
            cmp,
            prop::sample::select(&["u + 1u", "u - 1u", "u * u", "u % 2u"][..])
        )
            .prop_map(|(op, it)| format!("{it} {op} 3u")),
        int_expr().prop_map(|it| format!("l.exists(v, v + {it} > 0)")),
        int_expr().prop_map(|it| format!("{it} in l")),
    ]
}

fn boolean() -> impl Strategy<Value = String> {
    comparison().prop_recursive(2, 8, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(l, r)| format!("({l} && {r})")),
            (inner.clone(), inner.clone()).prop_map(|(l, r)| format!("({l} || {r})")),
            inner.clone().prop_map(|it| format!("!({it})")),
            (inner.clone(), inner.clone(), inner)
                .prop_map(|(c, l, r)| format!("({c} ? {l} : {r})")),
        ]
    })
}

/// A context with some of the parameters, each at an edge of its range or near one.
fn context() -> impl Strategy<Value = Map<String, Value>> {
    let int = prop::sample::select(
        &[
            0i64,
            1,
            -1,
            7,
            i64::MAX,
            i64::MIN,
            i64::MIN + 1,
            i64::MAX - 1,
        ][..],
    )
    .prop_map(Value::from);
    let values = (
        int.clone(),
        int,
        prop::sample::select(&[0u64, 1, u64::MAX][..]).prop_map(Value::from),
        prop::sample::select(&[0.0f64, 1.5, -1.5, 9.3e18, -9.3e18, 1e300][..])
            .prop_map(|it| json!(it)),
        prop::sample::select(DURATION_EDGES).prop_map(Value::from),
        prop::sample::select(DURATION_EDGES).prop_map(Value::from),
        prop::sample::select(TIMESTAMP_EDGES).prop_map(Value::from),
        prop::sample::select(&["", "a", "99999999999999999999", "-5"][..]).prop_map(Value::from),
        prop::collection::vec(prop::sample::select(&[0i64, i64::MAX, i64::MIN][..]), 0..3)
            .prop_map(|it| json!(it)),
        prop::sample::select(vec![json!({}), json!({"k": i64::MIN}), json!({"k": 1})]),
    );
    (values, prop::collection::vec(any::<bool>(), PARAMS.len())).prop_map(|(values, keep)| {
        let (a, b, u, x, d, e, t, s, l, m) = values;
        [a, b, u, x, d, e, t, s, l, m]
            .into_iter()
            .zip(PARAMS)
            .zip(keep)
            .filter(|(_, keep)| *keep)
            .map(|((value, (name, _)), _)| ((*name).to_string(), value))
            .collect()
    })
}

fn params() -> Vec<CaveatParam> {
    PARAMS
        .iter()
        .map(|(name, ty)| CaveatParam {
            name: (*name).to_string(),
            ty: ParamType::parse(ty).unwrap(),
        })
        .collect()
}

proptest! {
    #![proptest_config(Config { cases: 400, ..Config::default() })]

    #[test]
    fn evaluation_never_panics(expression in boolean(), stored in context(), request in context()) {
        let Ok(caveat) = CompiledCaveat::compile("edges", params(), &expression) else {
            // Refused at compile (a type the checker can tell is wrong): nothing to run.
            return Ok(());
        };
        for (stored, request) in [(None, Some(&request)), (Some(&stored), Some(&request)), (Some(&stored), None)] {
            // No panic, and the same answer twice (nothing depends on evaluation order
            // or leftover state).
            let first = format!("{:?}", caveat.evaluate(stored, request));
            let again = format!("{:?}", caveat.evaluate(stored, request));
            prop_assert_eq!(first, again, "{}", expression);
        }
    }
}

/// The generator reaches what the property is about: expressions that compile, and
/// evaluations that answer and that fail.
#[test]
fn the_generator_compiles_answers_and_fails() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (mut compiled, mut answered, mut failed) = (0, 0, 0);
    for _ in 0..300 {
        let expression = boolean().new_tree(&mut runner).unwrap().current();
        let request = context().new_tree(&mut runner).unwrap().current();
        let Ok(caveat) = CompiledCaveat::compile("edges", params(), &expression) else {
            continue;
        };
        compiled += 1;
        match caveat.evaluate(None, Some(&request)) {
            Ok(_) => answered += 1,
            Err(_) => failed += 1,
        }
    }
    assert!(compiled >= 100, "only {compiled} of 300 compiled");
    assert!(
        answered >= 20 && failed >= 20,
        "answered {answered}, failed {failed}"
    );
}
