//! A request's caveat context, checked up front against the schema (docs/CAVEATS.md,
//! "The request context"): a key that some caveat declares as a parameter must convert to
//! the type every such caveat declares for it, or the request fails before any walk.
//!
//! Why up front: a walk evaluates only the caveats it reaches, in an order that depends on
//! the data, so a wrong-typed value met during the walk would fail one request and pass
//! unnoticed in the next. Checked here, the same context is refused for every question,
//! whatever the relationships are. Keys no caveat declares are accepted (one context serves
//! every caveat a request meets, and SpiceDB accepts them too).

use rustc_hash::FxHashMap;

use crate::caveat::ParamType;
use crate::caveat::values::json_to_value;
use crate::schema::Schema;

use super::{Context, ContextValueError, EngineError};

/// The longest rendering of a refused value quoted in the error.
const MAX_QUOTED_VALUE: usize = 64;

/// Per schema (computed once, in [`super::plan::Plan`]): every caveat parameter name with
/// the types caveats declare for it.
#[derive(Debug, Default)]
pub(crate) struct ContextTypes {
    /// Parameter name → each distinct declared type, with the first caveat (in schema
    /// order) that declares the name with that type.
    by_param: FxHashMap<String, Vec<Declared>>,
}

#[derive(Debug)]
struct Declared {
    caveat: String,
    ty: ParamType,
}

impl ContextTypes {
    pub fn build(schema: &Schema) -> Self {
        let mut by_param: FxHashMap<String, Vec<Declared>> = FxHashMap::default();
        for caveat in &schema.caveats {
            for param in caveat.params() {
                let declared = by_param.entry(param.name.clone()).or_default();
                // The same type twice needs converting once.
                if declared.iter().all(|it| it.ty != param.ty) {
                    declared.push(Declared {
                        caveat: caveat.name().to_string(),
                        ty: param.ty.clone(),
                    });
                }
            }
        }
        Self { by_param }
    }

    /// `Ok` when every key of `context` that a caveat declares converts to each type
    /// declared for it; otherwise the error for the first such key (in key order) and
    /// caveat. No context, or an empty one, costs nothing.
    #[inline]
    pub fn validate(&self, context: Option<&Context>) -> Result<(), EngineError> {
        match context {
            Some(context) if !context.is_empty() && !self.by_param.is_empty() => {
                self.validate_keys(context)
            }
            _ => Ok(()),
        }
    }

    fn validate_keys(&self, context: &Context) -> Result<(), EngineError> {
        for (key, value) in context {
            for declared in self.by_param.get(key).into_iter().flatten() {
                if let Err(reason) = json_to_value(&declared.ty, value) {
                    return Err(EngineError::InvalidContext(Box::new(ContextValueError {
                        key: key.clone(),
                        caveat: declared.caveat.clone(),
                        expected: declared.ty.to_string(),
                        given: quoted(value),
                        reason,
                    })));
                }
            }
        }
        Ok(())
    }
}

/// `value` as compact JSON, cut to [`MAX_QUOTED_VALUE`] characters (then ending in `…`).
fn quoted(value: &serde_json::Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(MAX_QUOTED_VALUE) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn types(schema: &str) -> ContextTypes {
        ContextTypes::build(&crate::schema::parse_and_compile(schema).unwrap())
    }

    fn context(value: serde_json::Value) -> Context {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn a_declared_key_must_convert_to_every_type_declared_for_it() {
        let types = types(
            "caveat cav_a(n uint, s string) { n == 1 && s == \"x\" }
             caveat cav_b(n int) { n < 0 }
             caveat cav_c(n uint) { n == 2 }
             definition user {}",
        );
        assert_eq!(types.by_param["n"].len(), 2, "uint is kept once");
        let cases = [
            (json!({}), None),
            (json!({"n": 1, "s": "x", "other": {"any": "thing"}}), None),
            (json!({"n": 2.0}), None),
            (json!({"n": -1}), Some("cav_a")),
            (json!({"n": {"wrong": true}}), Some("cav_a")),
            (json!({"n": 1, "s": 3}), Some("cav_a")),
        ];
        for (value, failing_caveat) in cases {
            let res = types.validate(Some(&context(value.clone())));
            match (res, failing_caveat) {
                (Ok(()), None) => {}
                (Err(EngineError::InvalidContext(err)), Some(want)) => {
                    assert_eq!(err.caveat, want, "{value}");
                }
                (res, want) => panic!("{value}: expected a failure in {want:?}, got {res:?}"),
            }
        }
        assert!(types.validate(None).is_ok());
    }

    #[test]
    fn the_error_names_the_key_the_caveat_the_type_and_the_value() {
        let types = types("caveat cv_a(n2 uint) { n2 == 1 } definition user {}");
        let err = types
            .validate(Some(&context(json!({"n2": {"wrong": true}}))))
            .unwrap_err();
        assert_eq!(err.code(), "invalid_argument");
        assert_eq!(
            err.to_string(),
            "invalid `context`: key `n2` must be a `uint` (a parameter of caveat `cv_a`), \
             given `{\"wrong\":true}`: expected an integer (`uint`), found an object"
        );
        let long = "x".repeat(200);
        let err = types
            .validate(Some(&context(json!({ "n2": long }))))
            .unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("`\"{}…`", "x".repeat(63)))
        );
    }
}
