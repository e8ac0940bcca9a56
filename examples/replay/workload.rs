//! The peer harness's workload JSON (`../shared/peers/spicedb/bench.py`, oracle input
//! format: `{"schema", "relationships", "checks", "lookups", "meta"}`), SpiceDB's answers in
//! the oracle output format (`{"checks": [true, false, "error: …"], "lookups": [[ids]]}`,
//! also what `bench.py` writes to its results file), and the comparison of both.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One workload: the same questions SpiceDB answered.
#[derive(Debug, Deserialize)]
pub struct Workload {
    pub schema: String,
    pub relationships: Vec<String>,
    #[serde(default)]
    pub checks: Vec<CheckSpec>,
    #[serde(default)]
    pub lookups: Vec<LookupSpec>,
    #[serde(default)]
    pub meta: Value,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct CheckSpec {
    pub resource: String,
    pub permission: String,
    pub subject: String,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct LookupSpec {
    pub resource_type: String,
    pub permission: String,
    pub subject: String,
}

/// One check answer, as either engine gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    Allowed,
    Denied,
    Error(String),
}

impl Answer {
    /// The oracle-format value: `true`, `false` or `"error: …"`.
    pub fn to_json(&self) -> Value {
        match self {
            Self::Allowed => Value::Bool(true),
            Self::Denied => Value::Bool(false),
            Self::Error(message) => Value::String(format!("error: {message}")),
        }
    }

    fn from_json(value: &Value) -> Option<Self> {
        match value {
            Value::Bool(true) => Some(Self::Allowed),
            Value::Bool(false) => Some(Self::Denied),
            Value::String(text) if text.starts_with("error") => Some(Self::Error(text.clone())),
            _ => None,
        }
    }

    /// Same answer; any two errors count as equal (as the harness's `compare.py` does).
    fn agrees(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Error(_), Self::Error(_)) => true,
            _ => self == other,
        }
    }
}

/// One lookup answer: sorted resource ids, or an error.
pub type LookupAnswer = Result<Vec<String>, String>;

pub fn lookup_to_json(answer: &LookupAnswer) -> Value {
    match answer {
        Ok(ids) => Value::from(ids.clone()),
        Err(message) => Value::String(format!("error: {message}")),
    }
}

/// SpiceDB's answers to a workload.
#[derive(Debug, Deserialize)]
pub struct Expected {
    pub checks: Vec<Value>,
    #[serde(default)]
    pub lookups: Vec<Value>,
}

/// How far one engine's answers agree with SpiceDB's.
#[derive(Debug, Default, Serialize)]
pub struct Agreement {
    pub checks_compared: usize,
    pub checks_agree: usize,
    pub lookups_compared: usize,
    pub lookups_agree: usize,
    /// The first few disagreements, for the report.
    pub examples: Vec<String>,
}

impl Agreement {
    pub fn all_agree(&self) -> bool {
        self.checks_agree == self.checks_compared && self.lookups_agree == self.lookups_compared
    }

    pub fn line(&self, label: &str) -> String {
        format!(
            "{label}: agreement with SpiceDB: checks {}/{}, lookups {}/{}{}",
            self.checks_agree,
            self.checks_compared,
            self.lookups_agree,
            self.lookups_compared,
            if self.all_agree() {
                " — all agree"
            } else {
                " — DISAGREE"
            }
        )
    }
}

pub fn read_workload(path: &Path) -> anyhow::Result<Workload> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read workload `{}`", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("workload `{}` is not peer-harness JSON", path.display()))
}

pub fn read_expected(path: &Path) -> anyhow::Result<Expected> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read answers `{}`", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("answers `{}` are not in the oracle format", path.display()))
}

/// Compares answers item by item; a missing or unreadable expected value disagrees.
pub fn compare(
    workload: &Workload,
    expected: &Expected,
    checks: &[Answer],
    lookups: &[LookupAnswer],
) -> Agreement {
    let mut res = Agreement::default();
    for (idx, answer) in checks.iter().enumerate() {
        res.checks_compared += 1;
        let want = expected.checks.get(idx).and_then(Answer::from_json);
        if want.as_ref().is_some_and(|want| want.agrees(answer)) {
            res.checks_agree += 1;
        } else if res.examples.len() < 10 {
            let spec = &workload.checks[idx];
            res.examples.push(format!(
                "check {idx} {}#{}@{}: spicedb {:?}, arbiter {}",
                spec.resource,
                spec.permission,
                spec.subject,
                expected.checks.get(idx),
                answer.to_json()
            ));
        }
    }
    for (idx, answer) in lookups.iter().enumerate() {
        res.lookups_compared += 1;
        let agree = match (expected.lookups.get(idx), answer) {
            (Some(Value::Array(want)), Ok(ids)) => {
                let mut want: Vec<&str> = want.iter().filter_map(Value::as_str).collect();
                want.sort_unstable();
                want.len() == ids.len() && want.iter().zip(ids).all(|(a, b)| *a == b)
            }
            (Some(Value::String(text)), Err(_)) => text.starts_with("error"),
            _ => false,
        };
        if agree {
            res.lookups_agree += 1;
        } else if res.examples.len() < 10 {
            let spec = &workload.lookups[idx];
            res.examples.push(format!(
                "lookup {idx} {} {} {}: answers differ",
                spec.resource_type, spec.permission, spec.subject
            ));
        }
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload() -> Workload {
        serde_json::from_value(serde_json::json!({
            "schema": "definition user {}",
            "relationships": [],
            "checks": [
                {"resource": "doc:1", "permission": "view", "subject": "user:a"},
                {"resource": "doc:1", "permission": "view", "subject": "user:b"},
                {"resource": "doc:1", "permission": "nope", "subject": "user:a"},
            ],
            "lookups": [{"resource_type": "doc", "permission": "view", "subject": "user:a"}],
        }))
        .expect("workload")
    }

    fn expected() -> Expected {
        serde_json::from_value(serde_json::json!({
            "checks": [true, false, "error: unknown permission"],
            "lookups": [["2", "1"]],
        }))
        .expect("answers")
    }

    #[test]
    fn same_answers_agree_whatever_the_error_text_and_lookup_order() {
        let checks = [
            Answer::Allowed,
            Answer::Denied,
            Answer::Error("other".into()),
        ];
        let lookups = [Ok(vec!["1".to_string(), "2".to_string()])];
        let agreement = compare(&workload(), &expected(), &checks, &lookups);
        assert!(agreement.all_agree(), "{agreement:?}");
        assert_eq!((agreement.checks_agree, agreement.lookups_agree), (3, 1));
    }

    #[test]
    fn a_flipped_check_an_error_for_an_answer_and_a_missing_id_disagree() {
        let checks = [Answer::Denied, Answer::Error("x".into()), Answer::Denied];
        let lookups = [Ok(vec!["1".to_string()])];
        let agreement = compare(&workload(), &expected(), &checks, &lookups);
        assert!(!agreement.all_agree());
        assert_eq!((agreement.checks_agree, agreement.lookups_agree), (0, 0));
        assert_eq!(agreement.examples.len(), 4);
    }

    #[test]
    fn answers_beyond_the_expected_list_disagree() {
        let short: Expected =
            serde_json::from_value(serde_json::json!({"checks": [true]})).expect("answers");
        let checks = [Answer::Allowed, Answer::Allowed, Answer::Allowed];
        let agreement = compare(&workload(), &short, &checks, &[]);
        assert_eq!(agreement.checks_agree, 1);
        assert!(!agreement.all_agree());
    }
}
