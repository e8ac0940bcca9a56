//! The SQL text of the PostgreSQL store and the conversion between rows and
//! [`Relationship`]s. Nothing else in the backend spells a column name.
//!
//! Read order is the model's ([`ReadOrder`], picked by the filter): the six tuple
//! columns in that order, each compared byte-wise (the columns use the "C" collation).

use serde_json::Value;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::model::{
    ObjectRef, ReadOrder, Relationship, RelationshipCaveat, RelationshipFilter, SubjectRef,
    Timestamp,
};

use super::PgError;

/// The `deleted_rev` of a live version (`i64::MAX`).
pub const LIVE: i64 = i64::MAX;

/// The columns of a relationship version, in [`decode`]'s order.
pub const COLUMNS: &str = "resource_type, resource_id, relation, subject_type, subject_id, \
     subject_relation, caveat_name, caveat_context, expiration_seconds, expiration_nanos";

/// The six tuple columns in `order`, comma-separated.
pub fn order_columns(order: ReadOrder) -> String {
    order_column_list(order).join(", ")
}

/// The six tuple columns in `order`, one by one.
fn order_column_list(order: ReadOrder) -> [&'static str; 6] {
    match order {
        ReadOrder::ByResource => [
            "resource_type",
            "resource_id",
            "relation",
            "subject_type",
            "subject_id",
            "subject_relation",
        ],
        ReadOrder::BySubject => [
            "subject_type",
            "subject_id",
            "subject_relation",
            "resource_type",
            "relation",
            "resource_id",
        ],
    }
}

/// The six tuple names of `rel` in `order` (subject relation `""` for none).
pub fn order_values(order: ReadOrder, rel: &Relationship) -> [String; 6] {
    order.key(rel).map(str::to_string)
}

/// A `WHERE` fragment and its parameters, built up condition by condition.
#[derive(Default)]
pub struct Conditions {
    pub clauses: Vec<String>,
    pub params: Vec<Param>,
}

/// One parameter of a query: the store only ever binds text and 64-bit integers.
pub enum Param {
    Text(String),
    Int(i64),
}

impl Conditions {
    /// `column = $n` for text.
    pub fn text(&mut self, column: &str, value: &str) {
        self.params.push(Param::Text(value.to_string()));
        self.clauses
            .push(format!("{column} = ${}", self.params.len()));
    }

    /// Adds a parameter and returns its placeholder.
    pub fn bind(&mut self, param: Param) -> String {
        self.params.push(param);
        format!("${}", self.params.len())
    }

    /// Every field the filter sets.
    pub fn filter(&mut self, filter: &RelationshipFilter) {
        // The columns and the filter's fields in one order: the model spells out which
        // field is which column (and the subject relation `...` as stored, `""`).
        let order = ReadOrder::ByResource;
        for (column, value) in order_column_list(order)
            .into_iter()
            .zip(order.filter_fields(filter))
        {
            if let Some(value) = value {
                self.text(column, value);
            }
        }
    }

    /// Versions visible at revision `at`.
    pub fn visible_at(&mut self, at: i64) {
        let at = self.bind(Param::Int(at));
        self.clauses
            .push(format!("created_rev <= {at} AND deleted_rev > {at}"));
    }

    /// Live versions only.
    pub fn live(&mut self) {
        self.clauses.push(format!("deleted_rev = {LIVE}"));
    }

    /// Tuples strictly after `after` in `order`. Leading columns that `filter` pins to the
    /// cursor's own values are left out of the row comparison: equal on every row read,
    /// they change nothing in it, but would keep PostgreSQL from using it as an index
    /// bound where the index orders them differently (the by-subject index leads with the
    /// subject's id, then its type).
    pub fn after(&mut self, order: ReadOrder, after: &Relationship, filter: &RelationshipFilter) {
        let values = order_values(order, after);
        let columns = order_column_list(order);
        let pinned = order
            .filter_fields(filter)
            .into_iter()
            .zip(&values)
            .take_while(|(pinned, value)| *pinned == Some(value.as_str()))
            .count();
        if pinned == columns.len() {
            // The filter pins the cursor's whole tuple: nothing comes after it.
            self.clauses.push("FALSE".to_string());
            return;
        }
        let placeholders: Vec<String> = values[pinned..]
            .iter()
            .map(|value| self.bind(Param::Text(value.clone())))
            .collect();
        self.clauses.push(format!(
            "({}) > ({})",
            columns[pinned..].join(", "),
            placeholders.join(", ")
        ));
    }

    /// `WHERE …` (or nothing).
    pub fn where_clause(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.clauses.join(" AND "))
        }
    }

    /// The parameters as the driver wants them.
    pub fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|param| match param {
                Param::Text(it) => it as &(dyn ToSql + Sync),
                Param::Int(it) => it as &(dyn ToSql + Sync),
            })
            .collect()
    }
}

/// The caveat and expiration columns of `rel`, for binding.
pub struct Conditional {
    pub caveat_name: Option<String>,
    pub caveat_context: Option<Value>,
    pub expiration_seconds: Option<i64>,
    pub expiration_nanos: Option<i32>,
}

impl Conditional {
    pub fn of(rel: &Relationship) -> Self {
        Self {
            caveat_name: rel.caveat.as_ref().map(|it| it.name.clone()),
            caveat_context: rel
                .caveat
                .as_ref()
                .map(|it| Value::Object(it.context.clone())),
            expiration_seconds: rel.expiration.map(Timestamp::unix_seconds),
            // INVARIANT: nanos are below 1e9, which fits an i32.
            expiration_nanos: rel
                .expiration
                .map(|it| i32::try_from(it.subsec_nanos()).unwrap_or(i32::MAX)),
        }
    }
}

/// A relationship from the [`COLUMNS`] of `row`, starting at column 0.
pub fn decode(row: &Row) -> Result<Relationship, PgError> {
    let text = |idx: usize| -> Result<String, PgError> { Ok(row.try_get::<_, String>(idx)?) };
    let subject_relation = text(5)?;
    let resource = ObjectRef {
        object_type: text(0)?,
        object_id: text(1)?,
    };
    let subject = SubjectRef {
        object: ObjectRef {
            object_type: text(3)?,
            object_id: text(4)?,
        },
        relation: (!subject_relation.is_empty()).then_some(subject_relation),
    };
    let mut rel = Relationship {
        resource,
        relation: text(2)?,
        subject,
        caveat: None,
        expiration: None,
    };
    let caveat_name: Option<String> = row.try_get(6)?;
    if let Some(name) = caveat_name {
        let context = match row.try_get::<_, Option<Value>>(7)? {
            None => serde_json::Map::new(),
            Some(Value::Object(map)) => map,
            Some(other) => {
                return Err(PgError::Corrupt(format!(
                    "caveat context of `{rel}` is not an object: {other}"
                )));
            }
        };
        rel = rel.with_caveat(RelationshipCaveat { name, context });
    }
    let seconds: Option<i64> = row.try_get(8)?;
    let nanos: Option<i32> = row.try_get(9)?;
    if let (Some(seconds), Some(nanos)) = (seconds, nanos) {
        let nanos = u32::try_from(nanos)
            .map_err(|_| PgError::Corrupt(format!("negative expiration nanos of `{rel}`")))?;
        let at = Timestamp::from_unix(seconds, nanos)
            .map_err(|err| PgError::Corrupt(format!("expiration of `{rel}`: {err}")))?;
        rel = rel.with_expiration(at);
    }
    Ok(rel)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cursor clause of `filter` (its text with the bound values in place).
    fn after_clause(filter: &RelationshipFilter, cursor: &str) -> String {
        let mut conditions = Conditions::default();
        let cursor: Relationship = cursor.parse().unwrap();
        conditions.after(filter.read_order(), &cursor, filter);
        let mut clause = conditions.clauses.join(" AND ");
        for (at, param) in conditions.params.iter().enumerate().rev() {
            if let Param::Text(text) = param {
                clause = clause.replace(&format!("${}", at + 1), &format!("'{text}'"));
            }
        }
        clause
    }

    #[test]
    fn issue12_the_cursor_comparison_leaves_out_the_leading_columns_the_filter_pins() {
        let subject = |ty: &str, id: Option<&str>, rel: Option<&str>| RelationshipFilter {
            subject_type: Some(ty.into()),
            subject_id: id.map(Into::into),
            subject_relation: rel.map(Into::into),
            ..Default::default()
        };
        let cases = [
            (
                RelationshipFilter::default(),
                "doc:1#viewer@user:u",
                "(resource_type, resource_id, relation, subject_type, subject_id, subject_relation) > ('doc', '1', 'viewer', 'user', 'u', '')",
            ),
            (
                subject("user", Some("u"), None),
                "doc:1#viewer@user:u",
                "(subject_relation, resource_type, relation, resource_id) > ('', 'doc', 'viewer', '1')",
            ),
            (
                subject("user", Some("u"), Some("...")),
                "doc:1#viewer@user:u",
                "(resource_type, relation, resource_id) > ('doc', 'viewer', '1')",
            ),
            (
                subject("user", None, None),
                "doc:1#viewer@user:u",
                "(subject_id, subject_relation, resource_type, relation, resource_id) > ('u', '', 'doc', 'viewer', '1')",
            ),
            // A cursor outside what the filter pins keeps the whole comparison.
            (
                subject("user", Some("u"), None),
                "doc:1#viewer@group:g#member",
                "(subject_type, subject_id, subject_relation, resource_type, relation, resource_id) > ('group', 'g', 'member', 'doc', 'viewer', '1')",
            ),
            (
                RelationshipFilter {
                    resource_type: Some("doc".into()),
                    resource_id: Some("1".into()),
                    relation: Some("viewer".into()),
                    subject_type: Some("user".into()),
                    subject_id: Some("u".into()),
                    subject_relation: Some("...".into()),
                },
                "doc:1#viewer@user:u",
                "FALSE",
            ),
        ];
        for (filter, cursor, want) in cases {
            assert_eq!(
                after_clause(&filter, cursor),
                want,
                "{filter:?} after {cursor}"
            );
        }
    }
}
