//! Caveat evaluation as data: `tests/caveat_eval/cases.json` declares caveats and cases
//! (stored context, request context, expected answer: `"true"`, `"false"`, the list of
//! missing parameters, or `{"error": FRAGMENT}`). A new case needs no Rust. Stored-context
//! validation for writes is checked below the data cases.

use std::collections::BTreeMap;

use arbiter::caveat::{
    CaveatError, CaveatParam, CaveatResult, CompiledCaveat, ParamType, validate_context,
};
use serde_json::{Map, Value, json};

#[derive(serde::Deserialize)]
struct Cases {
    caveats: BTreeMap<String, CaveatSpec>,
    cases: Vec<Case>,
}

#[derive(serde::Deserialize)]
struct CaveatSpec {
    /// Parameter name → type; order does not matter for evaluation.
    params: BTreeMap<String, String>,
    expr: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    caveat: String,
    stored: Option<Map<String, Value>>,
    request: Option<Map<String, Value>>,
    expect: Value,
    #[expect(dead_code, reason = "explains the case to a reader of the data file")]
    why: Option<String>,
}

fn compile(name: &str, spec: &CaveatSpec) -> CompiledCaveat {
    let params = spec
        .params
        .iter()
        .map(|(name, ty)| CaveatParam {
            name: name.clone(),
            ty: ParamType::parse(ty).unwrap(),
        })
        .collect();
    CompiledCaveat::compile(name, params, &spec.expr)
        .unwrap_or_else(|err| panic!("caveat `{name}` does not compile: {err:?}"))
}

/// Checks one answer against its expectation; `None` when it matches.
fn check(actual: &Result<CaveatResult, CaveatError>, expect: &Value) -> Option<String> {
    let matches = match (actual, expect) {
        (Ok(CaveatResult::True), Value::String(it)) => it == "true",
        (Ok(CaveatResult::False), Value::String(it)) => it == "false",
        (Ok(CaveatResult::Missing(missing)), Value::Array(names)) => {
            let names: Vec<&str> = names.iter().filter_map(Value::as_str).collect();
            *missing == names
        }
        (Err(err), Value::Object(it)) => it
            .get("error")
            .and_then(Value::as_str)
            .is_some_and(|fragment| err.to_string().contains(fragment)),
        _ => false,
    };
    (!matches).then(|| format!("expected {expect}, got {actual:?}"))
}

#[test]
fn caveat_cases_evaluate_three_valued() {
    let text = include_str!("caveat_eval/cases.json");
    let cases: Cases = serde_json::from_str(text).unwrap();
    let caveats: BTreeMap<&str, CompiledCaveat> = cases
        .caveats
        .iter()
        .map(|(name, spec)| (name.as_str(), compile(name, spec)))
        .collect();
    let mut failures = Vec::new();
    for (idx, case) in cases.cases.iter().enumerate() {
        let caveat = &caveats[case.caveat.as_str()];
        let actual = caveat.evaluate(case.stored.as_ref(), case.request.as_ref());
        if let Some(failure) = check(&actual, &case.expect) {
            failures.push(format!("case {idx} (`{}`): {failure}", case.caveat));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(cases.cases.len() >= 30);
}

#[test]
fn stored_context_must_match_the_parameters() {
    let caveat = CompiledCaveat::compile(
        "ip_allowlist",
        vec![
            CaveatParam {
                name: "cidrs".into(),
                ty: ParamType::parse("list<string>").unwrap(),
            },
            CaveatParam {
                name: "ip".into(),
                ty: ParamType::IpAddress,
            },
        ],
        "cidrs.exists(c, ip.in_cidr(c))",
    )
    .unwrap();
    let cases = [
        (json!({"cidrs": ["10.0.0.0/8"]}), None),
        (json!({}), None),
        (
            json!({"cidr": "10.0.0.0/8"}),
            Some("caveat `ip_allowlist` has no parameter `cidr`"),
        ),
        (
            json!({"cidrs": "10.0.0.0/8"}),
            Some(
                "invalid value for parameter `cidrs` of caveat `ip_allowlist`: expected an array (`list<string>`), found a string",
            ),
        ),
        (
            json!({"ip": "300.1.1.1"}),
            Some(
                "invalid value for parameter `ip` of caveat `ip_allowlist`: invalid ip address `300.1.1.1`",
            ),
        ),
    ];
    for (context, expected) in cases {
        let res = validate_context(&caveat, context.as_object().unwrap());
        assert_eq!(
            res.err().map(|err| err.to_string()),
            expected.map(str::to_string),
            "{context}"
        );
    }
}

#[test]
fn compiled_schema_hands_out_each_caveat_compiled_once() {
    let schema = arbiter::schema::parse_and_compile(
        "caveat ip_allowlist(cidr string, ip ipaddress) { ip.in_cidr(cidr) }
         definition user {}
         definition key { relation scope: user | user with ip_allowlist }",
    )
    .unwrap();
    let caveat = schema.caveat("ip_allowlist").unwrap();
    let stored = json!({"cidr": "10.0.0.0/8"});
    let inside = json!({"ip": "10.9.9.9"});
    assert_eq!(
        caveat
            .evaluate(stored.as_object(), inside.as_object())
            .unwrap(),
        CaveatResult::True
    );
    let scope = schema.relation("key", "scope").unwrap().id;
    let user = arbiter::schema::AllowedSubject::Object(schema.definition("user").unwrap().id);
    let id = schema.caveat_by_name["ip_allowlist"];
    assert!(schema.admits(scope, user, None, false));
    assert!(schema.admits(scope, user, Some(id), false));
    assert!(!schema.admits(scope, user, None, true));
}
