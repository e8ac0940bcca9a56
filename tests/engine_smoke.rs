use arbiter::engine::*;
use arbiter::store::{Update, UpdateOp};

#[test]
fn smoke() {
    let engine = Arbiter::in_memory(Config::default()).unwrap();
    engine.write_schema("definition user {}\ndefinition group { relation member: user | group#member }\ndefinition doc { relation viewer: user | group#member | user:*\n relation banned: user\n permission view = viewer - banned }").unwrap();
    let ups: Vec<Update> = [
        "group:g1#member@user:alice",
        "group:g2#member@group:g1#member",
        "doc:d1#viewer@group:g2#member",
        "doc:d2#viewer@user:*",
        "doc:d2#banned@user:bob",
    ]
    .iter()
    .map(|t| Update {
        op: UpdateOp::Touch,
        relationship: t.parse().unwrap(),
    })
    .collect();
    engine.write(&ups, &[]).unwrap().unwrap();
    let chk = |r: &str, p: &str, s: &str| {
        engine
            .check(
                &CheckRequest {
                    resource: r.parse().unwrap(),
                    permission: p.into(),
                    subject: s.parse().unwrap(),
                },
                Consistency::Full,
            )
            .unwrap()
            .allowed
    };
    assert!(chk("doc:d1", "view", "user:alice"));
    assert!(!chk("doc:d1", "view", "user:bob"));
    assert!(chk("doc:d2", "view", "user:alice"));
    assert!(!chk("doc:d2", "view", "user:bob"));
    assert!(chk("doc:d2", "view", "user:*"));
    assert!(chk("doc:d1", "view", "group:g1#member"));
    let page = engine
        .lookup_resources(
            "doc",
            "view",
            &"user:alice".parse().unwrap(),
            0,
            None,
            Consistency::Full,
        )
        .unwrap();
    assert_eq!(page.resources, ["d1", "d2"]);
    let subj = engine
        .lookup_subjects(
            &"doc:d2".parse().unwrap(),
            "view",
            "user",
            Consistency::Full,
        )
        .unwrap();
    println!("{subj:?}");
    let tree = engine
        .expand(
            &"doc:d1".parse().unwrap(),
            "view",
            ExpandDepth::Recursive,
            Consistency::Full,
        )
        .unwrap();
    println!("{}", serde_json::to_string(&tree.tree).unwrap());
}
