//! The self-consistency oracle of SpiceDB's consistency suite, for arbiter: after a
//! validation file is loaded, check, lookup resources, lookup subjects and the recursive
//! expand must agree with each other on every question one can enumerate from its
//! relationships. Assertions cover what someone wrote down; this covers everything else,
//! and is what catches lookup and expand bugs.
//!
//! Enumerated: every object that appears in a relationship (as resource or subject), every
//! subject set and wildcard that appears as a subject, and every relation and permission of
//! every definition. For each (resource type, permission):
//! - check answers a matrix over (object of that type, subject), three-valued: *has*,
//!   *no*, or *conditional* with the missing caveat parameters (no request context);
//! - lookup resources of each subject must list exactly the objects check answers *has*
//!   for in `resources`, and exactly the *conditional* ones, with the same missing
//!   parameters, in `conditional` (wildcard subjects included: "which resources are
//!   public?");
//! - lookup subjects of each object and subject type must agree with check on every
//!   enumerated subject of that type: a listed id is *has*, an id in `conditional` is
//!   conditional with its missing parameters, otherwise `*` decides (listed: *has* unless
//!   excluded; conditional: that answer unless excluded); it lists `*` exactly when check
//!   answers the wildcard subject *has*, and lists no id that check denies;
//! - the subjects found by a recursive expand (as `validation:` blocks compare them) must
//!   agree with check the same way — for files without caveated or expiring relationships
//!   (an expand tree names caveats but does not evaluate them, so it has no three-valued
//!   answer to compare).
//!
//! Large files are sampled: at most [`MAX_SAMPLE`] objects of each type and subjects of
//! each kind enter the matrix, evenly spread over the sorted lists (SpiceDB's 71 000-
//! relationship loader file would otherwise ask billions of checks). The lookups still run
//! over the whole data; their answers are compared on the sampled objects.

use std::collections::{BTreeMap, BTreeSet};

use arbiter::engine::{
    Arbiter, CheckRequest, Consistency, LookupResourcesRequest, LookupSubjectsRequest,
    Permissionship,
};
use arbiter::model::{ObjectRef, Relationship, SubjectRef};
use arbiter::validation::Session;
use arbiter::validation::parse::ObjectRelation;

/// The most objects of one type (and subjects of one type) a cross-check enumerates.
pub const MAX_SAMPLE: usize = 64;

/// What one cross-check run did.
#[derive(Debug, Default)]
pub struct Stats {
    pub n_checks: usize,
    pub n_lookups: usize,
}

/// A three-valued answer: *has*, *no*, or conditional on the named parameters (sorted).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Answer {
    Has,
    No,
    Conditional(Vec<String>),
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Has => f.write_str("has"),
            Self::No => f.write_str("no"),
            Self::Conditional(missing) => write!(f, "conditional on {missing:?}"),
        }
    }
}

fn conditional(missing: &[String]) -> Answer {
    let mut missing = missing.to_vec();
    missing.sort();
    Answer::Conditional(missing)
}

/// At most [`MAX_SAMPLE`] of `items`, evenly spread (all of them when few).
fn sample<T: Clone + Ord>(items: &BTreeSet<T>) -> BTreeSet<T> {
    if items.len() <= MAX_SAMPLE {
        return items.clone();
    }
    let step = items.len().div_ceil(MAX_SAMPLE);
    items.iter().step_by(step).cloned().collect()
}

/// Cross-checks the engine of `session` against itself over everything `relationships`
/// mention. Returns the statistics and one line per disagreement (at most `max_problems`).
pub fn cross_check(
    session: &Session,
    relationships: &[Relationship],
    max_problems: usize,
) -> (Stats, Vec<String>) {
    let engine = session.engine();
    let mut stats = Stats::default();
    let mut problems = Vec::new();
    let Some(schema) = engine.schema() else {
        return (stats, problems);
    };
    let conditional_data = relationships.iter().any(Relationship::is_conditional);

    let mut mentioned: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut subject_sets: BTreeSet<SubjectRef> = BTreeSet::new();
    for rel in relationships {
        let resource = &rel.resource;
        mentioned
            .entry(resource.object_type.clone())
            .or_default()
            .insert(resource.object_id.clone());
        if !rel.subject.is_wildcard() {
            let object = &rel.subject.object;
            mentioned
                .entry(object.object_type.clone())
                .or_default()
                .insert(object.object_id.clone());
        }
        subject_sets.insert(rel.subject.clone());
    }
    let objects: BTreeMap<String, BTreeSet<String>> = mentioned
        .iter()
        .map(|(object_type, ids)| (object_type.clone(), sample(ids)))
        .collect();
    let mut subjects = sample(&subject_sets);
    for (object_type, ids) in &objects {
        for id in ids {
            subjects.insert(plain_subject(object_type, id));
        }
    }
    let mut problem = |text: String| {
        if problems.len() < max_problems {
            problems.push(text);
        }
    };

    for definition in &schema.definitions {
        let Some(ids) = objects.get(&definition.name) else {
            continue;
        };
        for relation_id in &definition.relations {
            let permission = &schema.relations[relation_id.0 as usize].name;
            // answers[(resource id, subject)] = check answer
            let mut answers: BTreeMap<(String, SubjectRef), Answer> = BTreeMap::new();
            for id in ids {
                let resource = object(&definition.name, id);
                for subject in &subjects {
                    stats.n_checks += 1;
                    match check(engine, &resource, permission, subject) {
                        Ok(answer) => {
                            answers.insert((id.clone(), subject.clone()), answer);
                        }
                        Err(err) => {
                            problem(format!("check {resource}#{permission}@{subject}: {err}"))
                        }
                    }
                }
            }

            // Lookup resources, per subject.
            for subject in &subjects {
                stats.n_lookups += 1;
                let expected: BTreeMap<&String, &Answer> = ids
                    .iter()
                    .filter_map(|id| {
                        let answer = answers.get(&(id.clone(), subject.clone()))?;
                        (*answer != Answer::No).then_some((id, answer))
                    })
                    .collect();
                match engine.lookup_resources(
                    &LookupResourcesRequest::new(&definition.name, permission, subject.clone()),
                    Consistency::Full,
                ) {
                    Ok(page) => {
                        let mut got: BTreeMap<&String, Answer> = BTreeMap::new();
                        for id in &page.resources {
                            got.insert(id, Answer::Has);
                        }
                        for it in &page.conditional {
                            got.insert(&it.id, conditional(&it.missing_context));
                        }
                        let got_sampled: BTreeMap<&String, &Answer> = got
                            .iter()
                            .filter(|(id, _)| ids.contains(**id))
                            .map(|(id, answer)| (*id, answer))
                            .collect();
                        if got_sampled != expected {
                            problem(format!(
                                "lookup resources {}#{permission}@{subject}: got {got_sampled:?}, check answers {expected:?}",
                                definition.name
                            ));
                        }
                        // An id no relationship mentions: check must answer the same.
                        let unmentioned = got.iter().filter(|(id, _)| {
                            !mentioned
                                .get(&definition.name)
                                .is_some_and(|all| all.contains(**id))
                        });
                        for (id, answer) in unmentioned {
                            stats.n_checks += 1;
                            let resource = object(&definition.name, id);
                            match check(engine, &resource, permission, subject) {
                                Ok(checked) if checked == *answer => {}
                                other => problem(format!(
                                    "lookup resources {}#{permission}@{subject} lists `{id}` as {answer}, check answers {other:?}",
                                    definition.name
                                )),
                            }
                        }
                    }
                    Err(err) => problem(format!(
                        "lookup resources {}#{permission}@{subject}: {err}",
                        definition.name
                    )),
                }
            }

            // Lookup subjects and expand, per resource and subject type.
            for id in ids {
                let resource = object(&definition.name, id);
                let found = if conditional_data {
                    None
                } else {
                    let found = session
                        .found_subjects(&ObjectRelation {
                            object: resource.clone(),
                            relation: permission.clone(),
                        })
                        .map_err(|err| err.to_string());
                    if let Err(err) = &found {
                        problem(format!("expand {resource}#{permission}: {err}"));
                    }
                    found.ok()
                };
                for subject_type in objects.keys() {
                    if schema.definition(subject_type).is_none() {
                        continue;
                    }
                    stats.n_lookups += 1;
                    let answer = match engine.lookup_subjects(
                        &LookupSubjectsRequest::new(resource.clone(), permission, subject_type),
                        Consistency::Full,
                    ) {
                        Ok(answer) => answer,
                        Err(err) => {
                            problem(format!(
                                "lookup subjects {resource}#{permission} of `{subject_type}`: {err}"
                            ));
                            continue;
                        }
                    };
                    let listed: BTreeSet<&str> =
                        answer.subjects.iter().map(String::as_str).collect();
                    let excluded: BTreeSet<&str> =
                        answer.excluded.iter().map(String::as_str).collect();
                    let conditional_ids: BTreeMap<&str, Answer> = answer
                        .conditional
                        .iter()
                        .map(|it| (it.id.as_str(), conditional(&it.missing_context)))
                        .collect();
                    let star = if listed.contains("*") {
                        Answer::Has
                    } else {
                        conditional_ids.get("*").cloned().unwrap_or(Answer::No)
                    };
                    let by_lookup = |subject_id: &str| {
                        if listed.contains(subject_id) {
                            Answer::Has
                        } else if let Some(answer) = conditional_ids.get(subject_id) {
                            answer.clone()
                        } else if excluded.contains(subject_id) {
                            Answer::No
                        } else {
                            star.clone()
                        }
                    };
                    let (expand_ids, expand_star) = match &found {
                        Some(found) => expand_view(found, subject_type),
                        None => (BTreeMap::new(), false),
                    };
                    for subject_id in objects.get(subject_type).into_iter().flatten() {
                        let Some(checked) =
                            answers.get(&(id.clone(), plain_subject(subject_type, subject_id)))
                        else {
                            continue;
                        };
                        let looked_up = by_lookup(subject_id);
                        if looked_up != *checked {
                            problem(format!(
                                "lookup subjects {resource}#{permission} of `{subject_type}` says {looked_up} for `{subject_id}` (subjects {listed:?}, conditional {conditional_ids:?}, excluded {excluded:?}), check says {checked}"
                            ));
                        }
                        let by_expand = expand_ids
                            .get(subject_id.as_str())
                            .copied()
                            .unwrap_or(expand_star);
                        if found.is_some() && by_expand != (*checked == Answer::Has) {
                            problem(format!(
                                "expand {resource}#{permission} says {by_expand} for `{subject_type}:{subject_id}`, check says {checked}"
                            ));
                        }
                    }
                    let explicit = listed
                        .iter()
                        .map(|it| (*it, Answer::Has))
                        .chain(conditional_ids.iter().map(|(id, it)| (*id, it.clone())));
                    for (listed_id, answer) in explicit.filter(|(id, _)| *id != "*") {
                        if objects
                            .get(subject_type)
                            .is_some_and(|ids| ids.contains(listed_id))
                        {
                            continue;
                        }
                        // An id outside the sample: check must answer the same.
                        let subject = plain_subject(subject_type, listed_id);
                        stats.n_checks += 1;
                        match check(engine, &resource, permission, &subject) {
                            Ok(checked) if checked == answer => {}
                            other => problem(format!(
                                "lookup subjects {resource}#{permission} lists `{subject}` as {answer}, check answers {other:?}"
                            )),
                        }
                    }
                    let wildcard = wildcard_subject(subject_type);
                    if let Some(checked) = answers.get(&(id.clone(), wildcard.clone())) {
                        if star != *checked {
                            problem(format!(
                                "lookup subjects {resource}#{permission} of `{subject_type}` answers `*` {star}; check of `{wildcard}` says {checked}"
                            ));
                        }
                        if found.is_some() && expand_star != (*checked == Answer::Has) {
                            problem(format!(
                                "expand {resource}#{permission} finds `{wildcard}`: {expand_star}; check says {checked}"
                            ));
                        }
                    }
                }
            }
        }
    }
    (stats, problems)
}

/// From the subjects an expand found: each explicitly decided id of `subject_type` (found
/// as itself: true; excluded from the wildcard: false), and whether the wildcard holds.
fn expand_view(
    found: &[arbiter::validation::parse::FoundSubject],
    subject_type: &str,
) -> (BTreeMap<String, bool>, bool) {
    let mut ids = BTreeMap::new();
    let mut star = false;
    for it in found {
        if it.subject.object.object_type != subject_type || it.subject.relation.is_some() {
            continue;
        }
        if it.subject.is_wildcard() {
            star = true;
            for excluded in &it.excluded {
                ids.entry(excluded.object.object_id.clone())
                    .or_insert(false);
            }
        } else {
            ids.insert(it.subject.object.object_id.clone(), true);
        }
    }
    (ids, star)
}

fn check(
    engine: &Arbiter,
    resource: &ObjectRef,
    permission: &str,
    subject: &SubjectRef,
) -> Result<Answer, String> {
    let request = CheckRequest {
        resource: resource.clone(),
        permission: permission.to_string(),
        subject: subject.clone(),
        context: None,
    };
    engine
        .check(&request, Consistency::Full)
        .map(|decision| match decision.permissionship {
            Permissionship::HasPermission => Answer::Has,
            Permissionship::NoPermission => Answer::No,
            Permissionship::ConditionalPermission => conditional(&decision.missing_context),
        })
        .map_err(|err| err.to_string())
}

fn object(object_type: &str, id: &str) -> ObjectRef {
    ObjectRef {
        object_type: object_type.to_string(),
        object_id: id.to_string(),
    }
}

fn plain_subject(object_type: &str, id: &str) -> SubjectRef {
    SubjectRef {
        object: object(object_type, id),
        relation: None,
    }
}

fn wildcard_subject(object_type: &str) -> SubjectRef {
    plain_subject(object_type, "*")
}
