//! Property tests of the relationship text form: printing any valid relationship (with
//! or without caveat and expiration) and parsing it back gives the same relationship,
//! and the printed text is canonical (printing the parsed text again changes nothing).

use arbiter::model::{Relationship, RelationshipCaveat, Timestamp};
use proptest::prelude::*;
use serde_json::{Map, Value};

const TYPES: [&str; 4] = ["doc", "user", "group", "org/team"];
const RELATIONS: [&str; 3] = ["viewer", "member", "ip_scope"];
const CAVEATS: [&str; 3] = ["ip_allowlist", "org/cav", "abc"];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |it| it.is_finite())
            .prop_map(Value::from),
        any::<String>().prop_map(Value::String),
        Just(Value::String("]}[{:\"\\".into())),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

fn caveat() -> impl Strategy<Value = RelationshipCaveat> {
    (
        0..CAVEATS.len(),
        prop::collection::btree_map("[a-z_]{1,8}", json_value(), 0..4),
    )
        .prop_map(|(name, context)| {
            let context: Map<String, Value> = context.into_iter().collect();
            RelationshipCaveat::new(CAVEATS[name], context).expect("a valid caveat")
        })
}

fn timestamp() -> impl Strategy<Value = Timestamp> {
    (-62_135_596_800i64..=253_402_300_799, 0..1_000_000_000u32)
        .prop_map(|(seconds, nanos)| Timestamp::from_unix(seconds, nanos).expect("in range"))
}

fn relationship() -> impl Strategy<Value = Relationship> {
    (
        0..TYPES.len(),
        "[a-zA-Z0-9/_|=+-]{1,12}",
        0..RELATIONS.len(),
        0..TYPES.len(),
        prop_oneof!["[a-zA-Z0-9/_|=+-]{1,12}", Just("*".to_string())],
        prop::option::of(0..RELATIONS.len()),
        prop::option::of(caveat()),
        prop::option::of(timestamp()),
    )
        .prop_map(|(rt, rid, rel, st, sid, srel, caveat, expiration)| {
            let srel = if sid == "*" { None } else { srel };
            let subject_relation = srel
                .map(|it| format!("#{}", RELATIONS[it]))
                .unwrap_or_default();
            let text = format!(
                "{}:{rid}#{}@{}:{sid}{subject_relation}",
                TYPES[rt], RELATIONS[rel], TYPES[st]
            );
            let mut res: Relationship = text.parse().expect("a valid tuple");
            res.caveat = caveat;
            res.expiration = expiration;
            res
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn printing_then_parsing_is_the_identity(rel in relationship()) {
        let text = rel.to_string();
        let back: Relationship = text.parse().map_err(|err| TestCaseError::fail(format!("{text}: {err}")))?;
        prop_assert_eq!(&back, &rel);
        prop_assert_eq!(back.to_string(), text);
    }

    #[test]
    fn parsing_never_panics(text in "[a-z:#@\\[\\]{}\",0-9.TZ+-]{0,40}") {
        let _ = text.parse::<Relationship>();
    }
}

#[test]
fn timestamps_print_then_parse_back() {
    for (seconds, nanos) in [(0, 0), (-1, 999_999_999), (1_796_083_200, 500_000_000)] {
        let ts = Timestamp::from_unix(seconds, nanos).expect("in range");
        assert_eq!(ts.to_string().parse::<Timestamp>(), Ok(ts));
    }
}
