//! The engine's two uses of the schema layer's admission rules and compiler: compiling
//! schema text (errors become [`SchemaProblem`]s with line and column), and refusing a
//! schema change that would orphan stored relationships.

use crate::schema::admit::{self, Orphan};
use crate::schema::{Schema, parse_and_compile};
use crate::store::Store;

use super::{EngineError, SchemaProblem};

/// Compiles `text` into a schema.
pub(crate) fn compile(text: &str) -> Result<Schema, EngineError> {
    parse_and_compile(text).map_err(|errors| {
        EngineError::InvalidSchema(
            errors
                .errors()
                .iter()
                .map(|err| SchemaProblem {
                    line: err.loc.line,
                    column: err.loc.column,
                    message: err.kind.to_string(),
                })
                .collect(),
        )
    })
}

/// Refuses `new` when a live relationship would not fit it: names the first change that
/// orphans any, with how many it orphans and an example.
pub(crate) fn refuse_orphans(
    store: &dyn Store,
    old: Option<&Schema>,
    new: &Schema,
) -> Result<(), EngineError> {
    let orphans: Vec<Orphan> = match old {
        Some(old) => admit::orphaned_usages(old, new),
        None => Vec::new(),
    };
    // With no previous schema, every stored relationship must fit the new one.
    let check_all = old.is_none();
    if orphans.is_empty() && !check_all {
        return Ok(());
    }
    let mut counts = vec![0usize; orphans.len()];
    let mut examples: Vec<Option<String>> = vec![None; orphans.len()];
    let mut misfit: Option<(String, String, usize)> = None;
    store.for_each_live(&mut |relationship| {
        for (idx, orphan) in orphans.iter().enumerate() {
            if orphan.matches(&relationship) {
                counts[idx] += 1;
                examples[idx].get_or_insert_with(|| relationship.to_string());
            }
        }
        if check_all && let Err(err) = admit::check_relationship(new, &relationship) {
            let entry =
                misfit.get_or_insert_with(|| (err.to_string(), relationship.to_string(), 0));
            entry.2 += 1;
        }
    })?;
    for (idx, orphan) in orphans.iter().enumerate() {
        if let Some(example) = examples[idx].take() {
            return Err(EngineError::SchemaOrphans {
                what: orphan.description.clone(),
                count: counts[idx],
                example,
            });
        }
    }
    match misfit {
        Some((what, example, count)) => Err(EngineError::SchemaOrphans {
            what,
            count,
            example,
        }),
        None => Ok(()),
    }
}
