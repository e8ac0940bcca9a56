//! Caveats (DESIGN §2, §3): SpiceDB's CEL conditions on relationships, type-checked once
//! at schema compile and evaluated three-valued with the context a check carries.
//!
//! The `cel` crate parses and interprets CEL; it has no type checker and no partial
//! evaluation, so this module adds both: [`check`] (at compile: only declared parameters,
//! known functions, a boolean result) and [`eval`] (Kleene logic over what is known,
//! naming exactly the parameters still missing). [`values`] converts JSON context to CEL
//! values of the declared [`types`], including SpiceDB's `ipaddress` with `in_cidr`.
//!
//! # The API the engine calls
//!
//! ```
//! use arbiter::caveat::{CaveatParam, CaveatResult, CompiledCaveat, ParamType};
//! let caveat = CompiledCaveat::compile(
//!     "ip_allowlist",
//!     vec![
//!         CaveatParam { name: "cidr".into(), ty: ParamType::String },
//!         CaveatParam { name: "ip".into(), ty: ParamType::IpAddress },
//!     ],
//!     "ip.in_cidr(cidr)",
//! )
//! .unwrap();
//! let stored = serde_json::json!({"cidr": "10.0.0.0/8"});
//! let request = serde_json::json!({"ip": "10.1.2.3"});
//! let res = caveat.evaluate(stored.as_object(), request.as_object()).unwrap();
//! assert_eq!(res, CaveatResult::True);
//! let res = caveat.evaluate(stored.as_object(), None).unwrap();
//! assert_eq!(res, CaveatResult::Missing(vec!["ip".into()]));
//! ```
//!
//! - [`CompiledCaveat::compile`] once per caveat per schema (the schema compiler does it;
//!   [`crate::schema::Schema::caveat`] hands it out); evaluation never parses.
//! - [`CompiledCaveat::evaluate`]`(stored, request)`: the stored relationship's context wins
//!   over the request's for the same key; request keys that are not parameters are
//!   ignored (a request's context serves every caveat of a check). Any error (a value of
//!   the wrong type, a runtime error) is `Err`, never `True`.
//! - [`validate_context`] for writes: a stored context may only hold declared parameters,
//!   each of its declared type.

mod check;
mod eval;
mod numeric;
pub mod types;
pub mod values;

use std::fmt;

use cel::Value;
use serde_json::Map as JsonMap;
use serde_json::Value as Json;

pub use check::MAX_PARAMS;
pub use types::ParamType;

use eval::{Env, FUNCTIONS, Node, ParamValues, Tri};

/// The answer of one caveat evaluation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CaveatResult {
    True,
    False,
    /// Undecided: these parameters (in declaration order) are missing and decide it.
    Missing(Vec<String>),
}

/// One declared parameter: `name type`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaveatParam {
    pub name: String,
    pub ty: ParamType,
}

/// A caveat, parsed and checked once; evaluate it any number of times.
#[derive(Clone)]
pub struct CompiledCaveat {
    name: String,
    params: Vec<CaveatParam>,
    /// The expression as written (for display).
    expression: String,
    /// The parsed expression (for equality: formatting changes whitespace only).
    ast: cel::IdedExpr,
    root: Node,
}

/// A problem in a caveat found at compile time; `offset` is a byte offset into the
/// expression text (0 when only the whole expression can be blamed).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CaveatCompileError {
    pub offset: usize,
    pub message: String,
}

/// A problem with a context or an evaluation. Never means "allowed".
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CaveatError {
    /// A stored context names a key the caveat does not declare.
    #[error("caveat `{caveat}` has no parameter `{name}`")]
    UnknownParameter { caveat: String, name: String },
    /// A context value does not fit its parameter's type.
    #[error("invalid value for parameter `{param}` of caveat `{caveat}`: {reason}")]
    InvalidValue {
        caveat: String,
        param: String,
        reason: String,
    },
    /// The expression failed at runtime (overflow, type mismatch, bad cidr, …).
    #[error("evaluating caveat `{caveat}` failed: {message}")]
    Evaluation { caveat: String, message: String },
}

impl CompiledCaveat {
    /// Parses and type-checks `expression` over `params`. Errors point into the expression.
    pub fn compile(
        name: &str,
        params: Vec<CaveatParam>,
        expression: &str,
    ) -> Result<Self, Vec<CaveatCompileError>> {
        let (ast, root) = check::check(&params, expression)?;
        Ok(Self {
            name: name.to_string(),
            params,
            expression: expression.to_string(),
            ast,
            root,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The declared parameters, in declaration order.
    pub fn params(&self) -> &[CaveatParam] {
        &self.params
    }

    /// The parameter called `name`, if declared.
    pub fn param(&self, name: &str) -> Option<&CaveatParam> {
        self.params.iter().find(|param| param.name == name)
    }

    /// The CEL expression as written in the schema.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// Evaluates with the merged context: `stored` (the relationship's) wins over
    /// `request` for the same key. See the module doc.
    pub fn evaluate(
        &self,
        stored: Option<&JsonMap<String, Json>>,
        request: Option<&JsonMap<String, Json>>,
    ) -> Result<CaveatResult, CaveatError> {
        let mut values: Vec<Option<Value>> = Vec::with_capacity(self.params.len());
        let mut missing = 0u64;
        for (idx, param) in self.params.iter().enumerate() {
            let json = stored
                .and_then(|it| it.get(&param.name))
                .or_else(|| request.and_then(|it| it.get(&param.name)));
            match json {
                Some(json) => values.push(Some(self.convert(param, json)?)),
                None => {
                    missing |= 1 << idx;
                    values.push(None);
                }
            }
        }
        let resolver = ParamValues {
            params: &self.params,
            values: &values,
        };
        let mut context = FUNCTIONS.new_inner_scope();
        context.set_variable_resolver(&resolver);
        let env = Env {
            missing,
            context: &context,
        };
        let res = self
            .root
            .eval(&env)
            .map_err(|message| CaveatError::Evaluation {
                caveat: self.name.clone(),
                message,
            })?;
        Ok(match res {
            Tri::Known(true) => CaveatResult::True,
            Tri::Known(false) => CaveatResult::False,
            Tri::Missing(mask) => CaveatResult::Missing(
                self.params
                    .iter()
                    .enumerate()
                    .filter(|(idx, _)| mask & (1 << idx) != 0)
                    .map(|(_, param)| param.name.clone())
                    .collect(),
            ),
        })
    }

    fn convert(&self, param: &CaveatParam, json: &Json) -> Result<Value, CaveatError> {
        values::json_to_value(&param.ty, json).map_err(|reason| CaveatError::InvalidValue {
            caveat: self.name.clone(),
            param: param.name.clone(),
            reason,
        })
    }
}

/// Checks a relationship's stored context against the caveat: every key is a declared
/// parameter and every value has its parameter's type.
pub fn validate_context(
    caveat: &CompiledCaveat,
    context: &JsonMap<String, Json>,
) -> Result<(), CaveatError> {
    for (key, json) in context {
        let Some(param) = caveat.param(key) else {
            return Err(CaveatError::UnknownParameter {
                caveat: caveat.name.clone(),
                name: key.clone(),
            });
        };
        caveat.convert(param, json)?;
    }
    Ok(())
}

impl fmt::Debug for CompiledCaveat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompiledCaveat")
            .field("name", &self.name)
            .field("params", &self.params)
            .field("expression", &self.expression)
            .finish_non_exhaustive()
    }
}

/// Two compiled caveats are equal when their name, parameters and parsed expression are
/// (so reformatting the expression's whitespace keeps a schema equal).
impl PartialEq for CompiledCaveat {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.params == other.params && self.ast == other.ast
    }
}

impl Eq for CompiledCaveat {}
