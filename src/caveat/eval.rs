//! Three-valued (Kleene) partial evaluation of a checked caveat, with SpiceDB's
//! semantics: a parameter absent from the merged context is *missing*; `&&`, `||`, `!` and
//! the ternary combine true / false / missing as Kleene logic does (so `false && missing`
//! is false and `true || missing` is true); every other subexpression that references a
//! missing parameter is missing (naming the missing parameters it references), and one
//! that references none is evaluated by the `cel` interpreter.
//!
//! CEL's logical operators are commutative over errors: `error && false` is false and
//! `error || true` is true; `error || missing` and `error && missing` are missing (an
//! unknown wins over an error, as in cel-go and so in SpiceDB); otherwise an error stays
//! an error (never true).

use std::sync::LazyLock;

use cel::context::VariableResolver;
use cel::{Context, IdedExpr, Value};

use super::CaveatParam;

/// A checked caveat expression, ready to evaluate many times.
#[derive(Clone, Debug)]
pub(crate) enum Node {
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
    /// `cond ? then : otherwise`, always three children.
    Cond(Vec<Node>),
    /// Anything else, evaluated by `cel`; `params` is the set (bit per parameter index) of
    /// parameters it references.
    Leaf {
        expr: IdedExpr,
        params: u64,
    },
}

/// The three-valued result of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tri {
    Known(bool),
    /// Undecided: the set of missing parameters that decide it.
    Missing(u64),
}

/// What one evaluation knows: which parameters are missing, and the `cel` context that
/// resolves the present ones.
pub(crate) struct Env<'a> {
    pub missing: u64,
    pub context: &'a Context<'a>,
}

/// The functions every evaluation can call: `cel`'s standard library, `in_cidr`, and the
/// checked operations of [`super::values`] (`duration()` replaced by a bounded one). Built
/// once per process; each evaluation adds a child scope with its parameter values.
pub(crate) static FUNCTIONS: LazyLock<Context<'static>> = LazyLock::new(|| {
    let mut context = Context::default();
    context.add_function("in_cidr", super::values::in_cidr);
    context.add_function(super::values::CHECKED_NEGATE, super::values::checked_negate);
    context.add_function(super::values::CHECKED_ADD, super::values::checked_add);
    context.add_function(super::values::CHECKED_SUB, super::values::checked_sub);
    context.add_function("duration", super::values::checked_duration);
    context
});

/// Resolves parameter names to this evaluation's values (no map is built per evaluation).
pub(crate) struct ParamValues<'a> {
    pub params: &'a [CaveatParam],
    pub values: &'a [Option<Value>],
}

impl VariableResolver for ParamValues<'_> {
    fn resolve(&self, variable: &str) -> Option<Value> {
        let idx = self
            .params
            .iter()
            .position(|param| param.name == variable)?;
        self.values.get(idx).cloned().flatten()
    }
}

impl Node {
    /// The parameters this node references.
    pub(crate) fn params(&self) -> u64 {
        match self {
            Node::And(children) | Node::Or(children) | Node::Cond(children) => {
                children.iter().fold(0, |acc, child| acc | child.params())
            }
            Node::Not(child) => child.params(),
            Node::Leaf { params, .. } => *params,
        }
    }

    /// Evaluates three-valued; an error is a message (lowercase).
    pub(crate) fn eval(&self, env: &Env) -> Result<Tri, String> {
        match self {
            Node::And(children) => combine(children, env, false),
            Node::Or(children) => combine(children, env, true),
            Node::Not(child) => Ok(match child.eval(env)? {
                Tri::Known(value) => Tri::Known(!value),
                missing => missing,
            }),
            Node::Cond(children) => {
                let [cond, then, otherwise] = children.as_slice() else {
                    return Err("malformed conditional".to_string());
                };
                match cond.eval(env)? {
                    Tri::Known(true) => then.eval(env),
                    Tri::Known(false) => otherwise.eval(env),
                    Tri::Missing(missing) => Ok(Tri::Missing(
                        missing | ((then.params() | otherwise.params()) & env.missing),
                    )),
                }
            }
            Node::Leaf { expr, params } => {
                let missing = params & env.missing;
                if missing != 0 {
                    return Ok(Tri::Missing(missing));
                }
                match env.context.resolve(expr) {
                    Ok(Value::Bool(value)) => Ok(Tri::Known(value)),
                    Ok(other) => Err(format!("expected a boolean, found {}", other.type_of())),
                    Err(err) => Err(lowercase_first(&err.to_string())),
                }
            }
        }
    }
}

/// Kleene `&&` (`decisive = false`) or `||` (`decisive = true`) over `children`: the
/// decisive value wins over missing values and errors; then missing (CEL's logic lets
/// unknowns win over errors, and SpiceDB answers `error || missing` conditional); then
/// an error.
fn combine(children: &[Node], env: &Env, decisive: bool) -> Result<Tri, String> {
    let mut missing = 0;
    let mut first_error = None;
    for child in children {
        match child.eval(env) {
            Ok(Tri::Known(value)) if value == decisive => return Ok(Tri::Known(decisive)),
            Ok(Tri::Known(_)) => {}
            Ok(Tri::Missing(more)) => missing |= more,
            Err(err) => {
                first_error.get_or_insert(err);
            }
        }
    }
    if missing != 0 {
        return Ok(Tri::Missing(missing));
    }
    match first_error {
        Some(err) => Err(err),
        None => Ok(Tri::Known(!decisive)),
    }
}

fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}
