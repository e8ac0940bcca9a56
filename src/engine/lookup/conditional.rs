//! The three-valued end of lookup subjects: every candidate the gathering walk found is
//! checked by [`CondChecker`] with the request's context and the request's one "now", so
//! that a lookup answers, id by id, exactly what a check would: *has* ids, *conditional*
//! ids with the parameters they miss, and the rest dropped (or, under a wildcard grant,
//! reported as excluded). Lookup resources judges each resource as its walk reaches it
//! (`resources.rs`), so that its pages stream.
//!
//! The earliest expiration any check read is kept: a cached lookup result must not be
//! served at or after it (see [`super::super::pages`]).

use crate::model::Timestamp;

use super::super::EngineError;
use super::super::check::{Goal, Snapshot, Subject};
use super::super::conditional::{Answer, CondChecker, Context};

/// The answers of the candidates checked so far.
#[derive(Debug, Default)]
pub(crate) struct Judged {
    /// Ids with the answer `has`, or `conditional` with the missing parameters (sorted,
    /// each once); in the order checked.
    pub held: Vec<(String, Option<Vec<String>>)>,
    /// Ids with the answer `no`.
    pub denied: Vec<String>,
    /// The earliest expiration of a relationship a check read.
    pub earliest_expiry: Option<Timestamp>,
}

impl Judged {
    fn record(&mut self, name: String, answer: Answer) {
        match answer {
            Answer::Has => self.held.push((name, None)),
            Answer::No => self.denied.push(name),
            Answer::Conditional(mut missing) => {
                missing.sort_unstable();
                missing.dedup();
                self.held.push((name, Some(missing)));
            }
        }
    }

    fn expires(&mut self, at: Option<Timestamp>) {
        if let Some(at) = at {
            self.earliest_expiry = Some(self.earliest_expiry.map_or(at, |it| it.min(at)));
        }
    }

    /// `held` sorted by id: the ids and, parallel, the missing parameters of each.
    pub fn into_sorted(mut self) -> (Vec<String>, Vec<Option<Vec<String>>>, Vec<String>) {
        self.held.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        self.denied.sort_unstable();
        let (ids, missing) = self.held.into_iter().unzip();
        (ids, missing, self.denied)
    }
}

/// Lookup subjects: checks `goal` for each subject of `subjects`, naming each by `name`.
pub(crate) fn judge_subjects(
    snap: Snapshot<'_>,
    goal: Goal,
    context: Option<&Context>,
    now: Timestamp,
    subjects: impl Iterator<Item = Subject>,
    name: impl Fn(Subject) -> String,
    out: &mut Judged,
) -> Result<(), EngineError> {
    for subject in subjects {
        snap.budget.tick()?;
        let mut checker = CondChecker::new(snap, subject, context, now);
        let answer = checker.check(goal)?;
        out.expires(checker.earliest_expiry);
        out.record(name(subject), answer);
    }
    Ok(())
}
