//! The self-consistency oracle of SpiceDB's consistency suite, for arbiter: after a
//! validation file is loaded, check, lookup resources, lookup subjects and the recursive
//! expand must agree with each other on every question one can enumerate from its
//! relationships. Assertions cover what someone wrote down; this covers everything else,
//! and is what catches lookup and expand bugs.
//!
//! Enumerated: every object that appears in a relationship (as resource or subject), every
//! subject set and wildcard that appears as a subject, and every relation and permission of
//! every definition. For each (resource type, permission):
//! - check answers a matrix over (object of that type, subject);
//! - lookup resources of each subject must list exactly the objects check allows
//!   (wildcard subjects included: "which resources are public?");
//! - lookup subjects of each object and subject type must agree with check on every
//!   enumerated subject of that type (a listed id, or `*` not excluding it), list `*`
//!   exactly when check allows the wildcard subject, and list no id that check denies;
//! - the subjects found by a recursive expand (as `validation:` blocks compare them) must
//!   agree with check the same way.

use std::collections::{BTreeMap, BTreeSet};

use arbiter::engine::{Arbiter, CheckRequest, Consistency};
use arbiter::model::{ObjectRef, Relationship, SubjectRef};
use arbiter::validation::Session;
use arbiter::validation::parse::ObjectRelation;

/// What one cross-check run did.
#[derive(Debug, Default)]
pub struct Stats {
    pub n_checks: usize,
    pub n_lookups: usize,
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

    let mut objects: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut subjects: BTreeSet<SubjectRef> = BTreeSet::new();
    for rel in relationships {
        let resource = &rel.resource;
        objects
            .entry(resource.object_type.clone())
            .or_default()
            .insert(resource.object_id.clone());
        if !rel.subject.is_wildcard() {
            let object = &rel.subject.object;
            objects
                .entry(object.object_type.clone())
                .or_default()
                .insert(object.object_id.clone());
        }
        subjects.insert(rel.subject.clone());
    }
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
            // allowed[(resource id, subject)] = check answer
            let mut allowed: BTreeMap<(String, SubjectRef), bool> = BTreeMap::new();
            for id in ids {
                let resource = object(&definition.name, id);
                for subject in &subjects {
                    stats.n_checks += 1;
                    match check(engine, &resource, permission, subject) {
                        Ok(answer) => {
                            allowed.insert((id.clone(), subject.clone()), answer);
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
                let expected: BTreeSet<&String> = ids
                    .iter()
                    .filter(|id| allowed.get(&((*id).clone(), subject.clone())) == Some(&true))
                    .collect();
                match engine.lookup_resources(
                    &definition.name,
                    permission,
                    subject,
                    0,
                    None,
                    Consistency::Full,
                ) {
                    Ok(page) => {
                        let got: BTreeSet<&String> = page.resources.iter().collect();
                        if got != expected {
                            problem(format!(
                                "lookup resources {}#{permission}@{subject}: got {got:?}, check allows {expected:?}",
                                definition.name
                            ));
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
                let found = session
                    .found_subjects(&ObjectRelation {
                        object: resource.clone(),
                        relation: permission.clone(),
                    })
                    .map_err(|err| err.to_string());
                if let Err(err) = &found {
                    problem(format!("expand {resource}#{permission}: {err}"));
                }
                for subject_type in objects.keys() {
                    if schema.definition(subject_type).is_none() {
                        continue;
                    }
                    stats.n_lookups += 1;
                    let answer = match engine.lookup_subjects(
                        &resource,
                        permission,
                        subject_type,
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
                    let star = listed.contains("*");
                    let (expand_ids, expand_star) = match &found {
                        Ok(found) => expand_view(found, subject_type),
                        Err(_) => (BTreeMap::new(), false),
                    };
                    for subject_id in objects.get(subject_type).into_iter().flatten() {
                        let Some(&checked) =
                            allowed.get(&(id.clone(), plain_subject(subject_type, subject_id)))
                        else {
                            continue;
                        };
                        let by_lookup = listed.contains(subject_id.as_str())
                            || (star && !excluded.contains(subject_id.as_str()));
                        if by_lookup != checked {
                            problem(format!(
                                "lookup subjects {resource}#{permission} of `{subject_type}` says {by_lookup} for `{subject_id}` (subjects {listed:?}, excluded {excluded:?}), check says {checked}"
                            ));
                        }
                        let by_expand = expand_ids
                            .get(subject_id.as_str())
                            .copied()
                            .unwrap_or(expand_star);
                        if found.is_ok() && by_expand != checked {
                            problem(format!(
                                "expand {resource}#{permission} says {by_expand} for `{subject_type}:{subject_id}`, check says {checked}"
                            ));
                        }
                    }
                    for listed_id in listed.iter().filter(|it| **it != "*") {
                        if objects
                            .get(subject_type)
                            .is_some_and(|ids| ids.contains(*listed_id))
                        {
                            continue;
                        }
                        // An id no relationship mentions: check must still allow it.
                        let subject = plain_subject(subject_type, listed_id);
                        stats.n_checks += 1;
                        if !matches!(check(engine, &resource, permission, &subject), Ok(true)) {
                            problem(format!(
                                "lookup subjects {resource}#{permission} lists `{subject}`, which check denies"
                            ));
                        }
                    }
                    let wildcard = wildcard_subject(subject_type);
                    if let Some(&checked) = allowed.get(&(id.clone(), wildcard.clone())) {
                        if star != checked {
                            problem(format!(
                                "lookup subjects {resource}#{permission} of `{subject_type}` lists `*`: {star}; check of `{wildcard}` says {checked}"
                            ));
                        }
                        if found.is_ok() && expand_star != checked {
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
) -> Result<bool, String> {
    let request = CheckRequest {
        resource: resource.clone(),
        permission: permission.to_string(),
        subject: subject.clone(),
    };
    engine
        .check(&request, Consistency::Full)
        .map(|decision| decision.allowed)
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
