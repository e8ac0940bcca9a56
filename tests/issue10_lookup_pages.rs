//! Issue 10 item 5 (and issue 14 item 4): a lookup page costs in proportion to the page.
//! Lookup resources and lookup subjects stream in walk order and resume from their cursor;
//! these tests page through many results with several page sizes and check that the pages
//! together are exactly the unpaged answer (no duplicate, no gap), also when the kept walk
//! was evicted (the page walks again and skips), when writes happen between pages (the
//! cursor pins the revision), and that a cursor that does not match its listing is
//! refused.

use std::collections::BTreeSet;

use arbiter::engine::{
    Arbiter, CheckRequest, Config, Consistency, EngineError, LookupResourcesRequest,
    LookupSubjectsRequest,
};
use arbiter::model::{ObjectRef, Revision, SubjectRef};
use arbiter::store::{Update, UpdateOp};

const SCHEMA: &str = "
definition user {}
definition group {
    relation member: user | group#member
}
definition folder {
    relation parent: folder
    relation viewer: user | user:* | group#member
    relation banned: user
    relation owner: user
    permission view = (viewer + parent->view) - banned
    permission edit = owner & view
}
definition doc {
    relation folder: folder
    relation viewer: user | group#member
    permission view = viewer + folder->view
}
";

fn update(op: UpdateOp, text: &str) -> Update {
    Update {
        op,
        relationship: text.parse().unwrap(),
    }
}

fn write(engine: &Arbiter, op: UpdateOp, texts: &[String]) -> Revision {
    let updates: Vec<Update> = texts.iter().map(|it| update(op, it)).collect();
    let mut revision = Revision(0);
    for chunk in updates.chunks(400) {
        revision = engine.write(chunk, &[]).unwrap().unwrap();
    }
    revision
}

/// Users in the innermost group.
const MEMBERS: usize = 1_500;

/// Listings of two documents each.
const FILLERS: usize = 200;

/// Starts a new listing (first page of one) for each filler: more than the page cache
/// keeps, so every walk kept before is evicted.
fn evict(engine: &Arbiter) {
    for n in 0..FILLERS {
        let filler = ("doc", "view", &*format!("user:filler{n}"));
        let (ids, next, _) = page(engine, filler, 1, None, Consistency::Full).unwrap();
        assert_eq!((ids.len(), next.is_some()), (1, true));
    }
}

/// A few thousand relationships: nested groups, folder trees, documents in folders,
/// banned users, owners, a public folder; deterministic.
fn data() -> Vec<String> {
    let mut out = Vec::new();
    for g in 1..12 {
        out.push(format!("group:g{g}#member@group:g{}#member", g / 2));
    }
    out.push("group:g0#member@user:alice".to_string());
    out.push("group:g7#member@user:alice".to_string());
    out.push("group:g5#member@user:bob".to_string());
    for n in 0..MEMBERS {
        out.push(format!("group:g0#member@user:m{n}"));
    }
    for f in 0..300 {
        if f > 0 {
            out.push(format!("folder:f{f}#parent@folder:f{}", (f * 7) % f));
        }
        match f % 5 {
            0 => out.push(format!("folder:f{f}#viewer@group:g{}#member", f % 12)),
            1 => out.push(format!("folder:f{f}#viewer@user:alice")),
            2 => out.push(format!("folder:f{f}#banned@user:alice")),
            3 => out.push(format!("folder:f{f}#owner@user:alice")),
            _ => {}
        }
        if f % 37 == 0 {
            out.push(format!("folder:f{f}#viewer@user:*"));
        }
    }
    // Short listings (two documents each) that other listings' kept walks make way for.
    for n in 0..FILLERS {
        out.push(format!("doc:x{n}a#viewer@user:filler{n}"));
        out.push(format!("doc:x{n}b#viewer@user:filler{n}"));
    }
    for d in 0..2_000 {
        out.push(format!("doc:d{d}#folder@folder:f{}", (d * 13) % 300));
        if d % 9 == 0 {
            out.push(format!("doc:d{d}#viewer@user:alice"));
        }
        if d % 11 == 0 {
            out.push(format!("doc:d{d}#viewer@group:g{}#member", d % 12));
        }
    }
    out
}

fn engine() -> Arbiter {
    let engine = Arbiter::in_memory(Config::default()).unwrap();
    engine.write_schema(SCHEMA).unwrap();
    write(&engine, UpdateOp::Touch, &data());
    engine
}

/// The lookups paged below: resource type, permission, subject.
const LOOKUPS: [(&str, &str, &str); 6] = [
    ("doc", "view", "user:alice"),
    ("folder", "view", "user:alice"),
    ("folder", "edit", "user:alice"),
    ("doc", "view", "user:bob"),
    ("doc", "view", "group:g3#member"),
    ("doc", "view", "user:nobody"),
];

const PAGE_SIZES: [usize; 6] = [1, 3, 64, 500, 100_000, 0];

fn subject(text: &str) -> SubjectRef {
    text.parse().unwrap()
}

fn page(
    engine: &Arbiter,
    (ty, permission, who): (&str, &str, &str),
    limit: usize,
    cursor: Option<&str>,
    consistency: Consistency,
) -> Result<(Vec<String>, Option<String>, Revision), EngineError> {
    engine
        .lookup_resources(
            &LookupResourcesRequest {
                limit,
                cursor: cursor.map(str::to_string),
                ..LookupResourcesRequest::new(ty, permission, subject(who))
            },
            consistency,
        )
        .map(|it| (it.resources, it.cursor, it.revision))
}

/// Every page of one listing from `cursor` on, at most `max_pages` (then the cursor to go
/// on with); checks each page's size.
fn pages(
    engine: &Arbiter,
    lookup: (&str, &str, &str),
    limit: usize,
    mut cursor: Option<String>,
    max_pages: usize,
) -> (Vec<String>, Option<String>, Revision) {
    let mut all = Vec::new();
    let mut revision = Revision(0);
    for _ in 0..max_pages {
        let (ids, next, rev) = page(engine, lookup, limit, cursor.as_deref(), Consistency::Full)
            .unwrap_or_else(|err| panic!("{lookup:?} limit {limit}: {err}"));
        revision = rev;
        if limit > 0 {
            assert!(ids.len() <= limit, "{lookup:?}: a page of {}", ids.len());
            if next.is_some() {
                assert_eq!(ids.len(), limit, "{lookup:?}: a short page before the last");
            }
        }
        all.extend(ids);
        cursor = next;
        if cursor.is_none() {
            break;
        }
    }
    (all, cursor, revision)
}

/// `ids` as a set, asserting that none is listed twice.
fn as_set(ids: Vec<String>, what: &str) -> BTreeSet<String> {
    let n = ids.len();
    let set: BTreeSet<String> = ids.into_iter().collect();
    assert_eq!(set.len(), n, "{what}: an id was listed twice");
    set
}

fn unpaged(engine: &Arbiter, lookup: (&str, &str, &str), at: Revision) -> BTreeSet<String> {
    let (ids, cursor, _) = page(
        engine,
        lookup,
        0,
        None,
        Consistency::AtExactSnapshot { revision: at },
    )
    .unwrap();
    assert_eq!(cursor, None);
    as_set(ids, "unpaged")
}

#[test]
fn issue10_pages_of_every_size_are_exactly_the_unpaged_answer() {
    let engine = engine();
    let head = engine.lookup_stats();
    for lookup in LOOKUPS {
        let (ids, _, revision) = page(&engine, lookup, 0, None, Consistency::Full).unwrap();
        let whole = as_set(ids, "unpaged");
        // The unpaged answer is the set of objects a check allows.
        let (ty, permission, who) = lookup;
        let n_objects = if ty == "doc" { 2_000 } else { 300 };
        let prefix = if ty == "doc" { "d" } else { "f" };
        let allowed: BTreeSet<String> = (0..n_objects)
            .map(|n| format!("{prefix}{n}"))
            .filter(|id| {
                let request = CheckRequest {
                    resource: format!("{ty}:{id}").parse().unwrap(),
                    permission: permission.to_string(),
                    subject: subject(who),
                    context: None,
                };
                engine.check(&request, Consistency::Full).unwrap().allowed
            })
            .collect();
        assert_eq!(whole, allowed, "{lookup:?}");
        for limit in PAGE_SIZES {
            let (ids, cursor, rev) = pages(&engine, lookup, limit, None, usize::MAX);
            assert_eq!((cursor, rev), (None, revision));
            assert_eq!(as_set(ids, "paged"), whole, "{lookup:?} limit {limit}");
        }
    }
    // Some listings are long: the interesting ones really have many pages.
    let (ids, _, _) = page(&engine, LOOKUPS[0], 0, None, Consistency::Full).unwrap();
    assert!(ids.len() > 1_000, "{}", ids.len());
    // Later pages resumed kept walks.
    assert!(engine.lookup_stats().resumed_pages > head.resumed_pages + 1_000);
}

#[test]
fn issue10_pages_resume_after_the_kept_walk_was_evicted() {
    let engine = engine();
    for lookup in LOOKUPS {
        for limit in [1, 7, 250] {
            let (first, cursor, revision) = pages(&engine, lookup, limit, None, 3);
            let Some(cursor) = cursor else {
                continue;
            };
            let before = engine.lookup_stats();
            evict(&engine);
            let (rest, end, _) = pages(&engine, lookup, limit, Some(cursor), usize::MAX);
            assert_eq!(end, None);
            // The first page after the eviction walked again (one more walk than the
            // fillers'), and skipped what the first pages returned.
            let after = engine.lookup_stats();
            let walks = before.walks + FILLERS as u64 + 1;
            assert!(after.walks >= walks, "{lookup:?} limit {limit}");
            let all = as_set([first, rest].concat(), "paged");
            assert_eq!(
                all,
                unpaged(&engine, lookup, revision),
                "{lookup:?} {limit}"
            );
        }
    }
}

#[test]
fn issue10_writes_between_pages_do_not_change_the_listing() {
    let engine = engine();
    let lookup = LOOKUPS[0];
    let cases = [(10, false), (10, true), (333, false), (333, true)];
    for (round, (limit, evicted)) in cases.into_iter().enumerate() {
        let (first, cursor, revision) = pages(&engine, lookup, limit, None, 2);
        let before = unpaged(&engine, lookup, revision);
        // New documents for alice, and some of hers taken away (deleted tuples, a ban).
        let added: Vec<String> = (0..50)
            .map(|d| format!("doc:new{round}_{d}#viewer@user:alice"))
            .collect();
        write(&engine, UpdateOp::Touch, &added);
        let removed: Vec<String> = (0..2_000)
            .step_by(9)
            .skip(round * 40)
            .take(40)
            .map(|d| format!("doc:d{d}#viewer@user:alice"))
            .collect();
        write(&engine, UpdateOp::Delete, &removed);
        write(
            &engine,
            UpdateOp::Touch,
            &["folder:f1#banned@user:alice".to_string()],
        );
        if evicted {
            evict(&engine);
        }
        let (rest, end, rev) = pages(&engine, lookup, limit, cursor, usize::MAX);
        assert_eq!((end, rev), (None, revision));
        let all = as_set([first, rest].concat(), "paged");
        assert_eq!(all, before, "limit {limit}, evicted {evicted}");
        // The head's answer did change.
        let (now, _, head) = page(&engine, lookup, 0, None, Consistency::Full).unwrap();
        assert!(head > revision);
        assert_ne!(as_set(now, "head"), before);
    }
}

#[test]
fn issue10_a_cursor_that_does_not_match_its_listing_is_refused() {
    let engine = engine();
    let lookup = LOOKUPS[0];
    let (_, cursor, _) = page(&engine, lookup, 5, None, Consistency::Full).unwrap();
    let cursor = cursor.unwrap();
    let (revision, rest) = cursor.split_once('.').unwrap();
    let (offset, digest) = rest.split_once('.').unwrap();
    // The same cursor with its digest's first hex digit changed.
    let (first, tail) = digest.split_at(1);
    let flipped = format!(
        "{revision}.{offset}.{}{tail}",
        if first == "0" { "1" } else { "0" }
    );
    let refused = [
        flipped,
        format!("{revision}.999999.{digest}"),
        format!("{revision}.4.{digest}"),
        format!("{revision}.0.{digest}"),
        "d9".to_string(),
        format!("{revision}:d9"),
    ];
    for bad in refused {
        for ty in ["doc", "folder"] {
            let got = page(
                &engine,
                (ty, lookup.1, lookup.2),
                5,
                Some(&bad),
                Consistency::Full,
            );
            assert!(
                matches!(
                    got,
                    Err(EngineError::InvalidInput {
                        field: "cursor",
                        ..
                    })
                ),
                "{bad}: {got:?}"
            );
        }
    }
    // The good cursor still works after all that.
    let (ids, _, _) = page(&engine, lookup, 5, Some(&cursor), Consistency::Full).unwrap();
    assert_eq!(ids.len(), 5);
}

#[test]
fn issue10_depth_first_lookup_lists_a_resource_it_first_reaches_too_deep() {
    // Depth limit 5. `doc:near` is viewed by alice directly and through a chain of 8
    // groups; the walk may reach it through the chain first (deeper than the limit), and
    // must still list it, as its check allows it. `doc:far` is reachable only through
    // the chain: its check and the lookup are both DepthExceeded.
    let engine = Arbiter::in_memory(Config {
        depth_limit: 5,
        ..Config::default()
    })
    .unwrap();
    engine.write_schema(SCHEMA).unwrap();
    let mut texts: Vec<String> = vec!["group:c8#member@user:alice".to_string()];
    for n in 1..=8 {
        texts.push(format!("group:c{}#member@group:c{n}#member", n - 1));
    }
    texts.push("doc:near#viewer@group:c0#member".to_string());
    texts.push("doc:near#viewer@user:alice".to_string());
    write(&engine, UpdateOp::Touch, &texts);
    let check = |doc: &str| {
        engine
            .check(
                &CheckRequest {
                    resource: ObjectRef {
                        object_type: "doc".to_string(),
                        object_id: doc.to_string(),
                    },
                    permission: "view".to_string(),
                    subject: subject("user:alice"),
                    context: None,
                },
                Consistency::Full,
            )
            .map(|it| it.allowed)
    };
    assert!(check("near").unwrap());
    for limit in [0, 1] {
        let (ids, cursor, _) = page(
            &engine,
            ("doc", "view", "user:alice"),
            limit,
            None,
            Consistency::Full,
        )
        .unwrap();
        assert_eq!((ids, cursor), (vec!["near".to_string()], None));
    }
    write(
        &engine,
        UpdateOp::Touch,
        &["doc:far#viewer@group:c0#member".to_string()],
    );
    assert!(matches!(check("far"), Err(EngineError::DepthExceeded(5))));
    let got = page(
        &engine,
        ("doc", "view", "user:alice"),
        0,
        None,
        Consistency::Full,
    );
    assert!(matches!(got, Err(EngineError::DepthExceeded(5))), "{got:?}");
}

/// The lookup subjects paged below: resource, permission, subject type. `doc:d0` and
/// `folder:f12` are granted to `user:*` (the whole sorted result, with `excluded`).
const SUBJECT_LOOKUPS: [(&str, &str, &str); 6] = [
    ("folder:f5", "view", "user"),
    ("doc:d10", "view", "user"),
    ("folder:f3", "edit", "user"),
    ("doc:d0", "view", "user"),
    ("folder:f12", "view", "user"),
    ("doc:d1", "view", "group"),
];

type SubjectsPage = (Vec<String>, Vec<String>, Option<String>, Revision);

fn subjects_page(
    engine: &Arbiter,
    (resource, permission, ty): (&str, &str, &str),
    limit: usize,
    cursor: Option<&str>,
    consistency: Consistency,
) -> Result<SubjectsPage, EngineError> {
    let resource: ObjectRef = resource.parse().unwrap();
    engine
        .lookup_subjects(
            &LookupSubjectsRequest {
                limit,
                cursor: cursor.map(str::to_string),
                ..LookupSubjectsRequest::new(resource.clone(), permission, ty)
            },
            consistency,
        )
        .map(|it| (it.subjects, it.excluded, it.cursor, it.revision))
}

/// Every page of one lookup subjects from `cursor` on (at most `max_pages`): the subjects,
/// the excluded ids (first page only), the cursor to go on with and the revision.
fn subject_pages(
    engine: &Arbiter,
    lookup: (&str, &str, &str),
    limit: usize,
    mut cursor: Option<String>,
    max_pages: usize,
) -> SubjectsPage {
    let (mut all, mut excluded, mut revision) = (Vec::new(), Vec::new(), Revision(0));
    for _ in 0..max_pages {
        let first = cursor.is_none();
        let (ids, out, next, rev) =
            subjects_page(engine, lookup, limit, cursor.as_deref(), Consistency::Full)
                .unwrap_or_else(|err| panic!("{lookup:?} limit {limit}: {err}"));
        revision = rev;
        if limit > 0 {
            assert!(ids.len() <= limit, "{lookup:?}: a page of {}", ids.len());
            if next.is_some() {
                assert_eq!(ids.len(), limit, "{lookup:?}: a short page before the last");
            }
        }
        if !first {
            assert!(out.is_empty(), "{lookup:?}: excluded after the first page");
        }
        excluded.extend(out);
        all.extend(ids);
        cursor = next;
        if cursor.is_none() {
            break;
        }
    }
    (all, excluded, cursor, revision)
}

#[test]
fn issue10_lookup_subjects_pages_of_every_size_are_exactly_the_unpaged_answer() {
    let engine = engine();
    for lookup in SUBJECT_LOOKUPS {
        let (ids, excluded, cursor, revision) =
            subjects_page(&engine, lookup, 0, None, Consistency::Full).unwrap();
        assert_eq!(cursor, None);
        let whole = as_set(ids, "unpaged");
        // Every listed subject is allowed by a check.
        let (resource, permission, ty) = lookup;
        for id in whole.iter().filter(|it| *it != "*") {
            let request = CheckRequest {
                resource: resource.parse().unwrap(),
                permission: permission.to_string(),
                subject: subject(&format!("{ty}:{id}")),
                context: None,
            };
            let decision = engine.check(&request, Consistency::Full).unwrap();
            assert!(decision.allowed, "{lookup:?}: {id}");
        }
        for limit in PAGE_SIZES {
            let (ids, out, cursor, rev) = subject_pages(&engine, lookup, limit, None, usize::MAX);
            assert_eq!((cursor, rev), (None, revision));
            assert_eq!(as_set(ids, "paged"), whole, "{lookup:?} limit {limit}");
            assert_eq!(out, excluded, "{lookup:?} limit {limit}");
        }
    }
    // The listings are long enough to page, and two are wildcard grants.
    let (ids, _, _, _) =
        subjects_page(&engine, SUBJECT_LOOKUPS[0], 0, None, Consistency::Full).unwrap();
    assert!(ids.len() > MEMBERS, "{}", ids.len());
    for wildcard in [SUBJECT_LOOKUPS[3], SUBJECT_LOOKUPS[4]] {
        let (ids, _, _, _) = subjects_page(&engine, wildcard, 0, None, Consistency::Full).unwrap();
        assert_eq!(ids.first().map(String::as_str), Some("*"), "{wildcard:?}");
    }
}

#[test]
fn issue10_lookup_subjects_pages_resume_after_eviction_and_writes() {
    let engine = engine();
    for (round, lookup) in SUBJECT_LOOKUPS.into_iter().enumerate() {
        for limit in [1, 7, 250] {
            let (first, _, cursor, revision) = subject_pages(&engine, lookup, limit, None, 3);
            let Some(cursor) = cursor else {
                continue;
            };
            let (before, _, _, _) = subjects_page(
                &engine,
                lookup,
                0,
                None,
                Consistency::AtExactSnapshot { revision },
            )
            .unwrap();
            // More members, and some taken away, then other listings evict the walk.
            let added: Vec<String> = (0..30)
                .map(|n| format!("group:g0#member@user:late{round}_{limit}_{n}"))
                .collect();
            write(&engine, UpdateOp::Touch, &added);
            let removed: Vec<String> = (0..MEMBERS)
                .skip(round * 60 + limit)
                .take(20)
                .map(|n| format!("group:g0#member@user:m{n}"))
                .collect();
            write(&engine, UpdateOp::Delete, &removed);
            evict(&engine);
            let (rest, _, end, rev) =
                subject_pages(&engine, lookup, limit, Some(cursor), usize::MAX);
            assert_eq!((end, rev), (None, revision));
            let all = as_set([first, rest].concat(), "paged");
            assert_eq!(all, as_set(before, "unpaged"), "{lookup:?} limit {limit}");
        }
    }
}

/// The lookups' schema with a caveat on documents' viewers: one caveated tuple stored puts
/// every lookup in the three-valued mode.
fn three_valued_engine() -> Arbiter {
    let schema = SCHEMA.replace(
        "definition doc {\n    relation folder: folder\n    relation viewer: user | group#member",
        "caveat has_tier(tier int) {\n  tier >= 2\n}\ndefinition doc {\n    relation folder: folder\n    relation viewer: user | group#member | user with has_tier",
    );
    let engine = Arbiter::in_memory(Config::default()).unwrap();
    engine.write_schema(&schema).unwrap();
    let mut texts = data();
    // Not on the documents alice views plainly (one live version per tuple).
    for d in (0..2_000).step_by(7).filter(|d| d % 9 != 0) {
        texts.push(format!("doc:d{d}#viewer@user:alice[has_tier]"));
    }
    write(&engine, UpdateOp::Touch, &texts);
    engine
}

/// One three-valued page: definite ids, conditional ids, the next cursor.
fn three_valued_page(
    engine: &Arbiter,
    (ty, permission, who): (&str, &str, &str),
    context: Option<serde_json::Map<String, serde_json::Value>>,
    limit: usize,
    cursor: Option<String>,
) -> (Vec<String>, Vec<String>, Option<String>) {
    let page = engine
        .lookup_resources(
            &LookupResourcesRequest {
                limit,
                cursor,
                context,
                ..LookupResourcesRequest::new(ty, permission, subject(who))
            },
            Consistency::Full,
        )
        .unwrap_or_else(|err| panic!("{ty}#{permission}@{who} limit {limit}: {err}"));
    let conditional = page.conditional.into_iter().map(|it| it.id).collect();
    (page.resources, conditional, page.cursor)
}

#[test]
fn issue10_three_valued_lookup_pages_stream_and_are_exactly_the_unpaged_answer() {
    let engine = three_valued_engine();
    let tier = |n: i64| {
        let mut context = serde_json::Map::new();
        context.insert("tier".to_string(), serde_json::json!(n));
        Some(context)
    };
    for context in [None, tier(1), tier(3)] {
        for lookup in LOOKUPS {
            let (definite, conditional, cursor) =
                three_valued_page(&engine, lookup, context.clone(), 0, None);
            assert_eq!(cursor, None);
            let what = format!("{lookup:?} {context:?}");
            let whole = (as_set(definite, &what), as_set(conditional, &what));
            for limit in [1, 64, 500] {
                let (mut definite, mut conditional) = (Vec::new(), Vec::new());
                let mut cursor = None;
                loop {
                    let (ids, conds, next) =
                        three_valued_page(&engine, lookup, context.clone(), limit, cursor);
                    assert!(ids.len() + conds.len() <= limit, "{what}");
                    definite.extend(ids);
                    conditional.extend(conds);
                    cursor = next;
                    if cursor.is_none() {
                        break;
                    }
                }
                let paged = (as_set(definite, &what), as_set(conditional, &what));
                assert_eq!(paged, whole, "{what} limit {limit}");
            }
        }
    }
    // Without a context alice's caveated documents are conditional; with tier 3 definite.
    let alice = LOOKUPS[0];
    let (_, conditional, _) = three_valued_page(&engine, alice, None, 0, None);
    assert!(conditional.len() > 20, "{}", conditional.len());
    let (_, conditional, _) = three_valued_page(&engine, alice, tier(3), 0, None);
    assert!(conditional.is_empty());
    // The first page walks a part of the listing, not all of it.
    let before = engine.lookup_stats();
    three_valued_page(&engine, alice, None, 0, None);
    let whole_steps = engine.lookup_stats().steps - before.steps;
    let before = engine.lookup_stats();
    let (ids, conds, next) = three_valued_page(&engine, alice, None, 10, None);
    let first_steps = engine.lookup_stats().steps - before.steps;
    assert_eq!((ids.len() + conds.len(), next.is_some()), (10, true));
    assert!(
        first_steps * 10 < whole_steps,
        "a first page of 10 took {first_steps} steps, the whole listing {whole_steps}"
    );
}
