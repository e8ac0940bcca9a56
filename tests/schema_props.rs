//! Property tests of the schema language.
//!
//! - The parser and compiler never panic or hang, on random text made of schema tokens and
//!   on mutations of valid schemas.
//! - On generated valid schemas (random spellings, parentheses, comments and layout):
//!   the compiled expressions are the ones the generator meant (so the parser's precedence
//!   is right), formatting is idempotent, and the formatted text compiles to the same
//!   schema.
//!
//! Case counts stay modest so that the debug `cargo test` stays fast.

use std::collections::HashMap;

use arbiter::schema::{Expr, RelationKind, Schema, format, parse_and_compile};
use proptest::prelude::*;
use proptest::test_runner::Config;

const TOKENS: &[&str] = &[
    "definition",
    "relation",
    "permission",
    "caveat",
    "use",
    "with",
    "expiration",
    "nil",
    "self",
    "user",
    "doc",
    "ns/doc",
    "viewer",
    "view",
    "parent",
    "any",
    "all",
    "{",
    "}",
    "(",
    ")",
    ":",
    "=",
    "|",
    "+",
    "&",
    "-",
    "->",
    ".",
    "#",
    "*",
    ":*",
    "@",
    "...",
    "//",
    "/*",
    "*/",
    "/**",
    "\n",
    " ",
    "\t",
    "é",
    "1",
    "_",
];

fn token_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..80).prop_map(|tokens| {
        let mut text = String::new();
        for token in tokens {
            text.push_str(token);
            text.push(' ');
        }
        text
    })
}

const VALID: &str = include_str!("../schema/models.zed");
const VALID_2: &str = include_str!("../schema/scoped_keys.zed");

/// A few byte-level edits of a valid schema, kept on char boundaries.
fn mutated() -> impl Strategy<Value = String> {
    let edit = (
        0usize..2000,
        0usize..20,
        prop::sample::select(TOKENS),
        0u8..3,
    );
    (any::<bool>(), prop::collection::vec(edit, 1..6)).prop_map(|(first, edits)| {
        let mut text = if first { VALID } else { VALID_2 }.to_string();
        for (pos, len, token, kind) in edits {
            let mut start = pos % (text.len() + 1);
            while !text.is_char_boundary(start) {
                start -= 1;
            }
            let mut end = (start + len).min(text.len());
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            match kind {
                0 => text.replace_range(start..end, ""),
                1 => text.insert_str(start, token),
                _ => text.replace_range(start..end, token),
            }
        }
        text
    })
}

fn exercise(text: &str) {
    let _ = parse_and_compile(text);
    if let Ok(formatted) = format(text) {
        // Whatever parses formats, and the result parses again.
        assert!(
            format(&formatted).is_ok(),
            "formatted text does not parse:\n{formatted}"
        );
    }
}

proptest! {
    #![proptest_config(Config { cases: 300, ..Config::default() })]

    #[test]
    fn never_panics_on_random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        exercise(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn never_panics_on_token_soup(text in token_soup()) {
        exercise(&text);
    }

    #[test]
    fn never_panics_on_mutated_schemas(text in mutated()) {
        exercise(&text);
    }
}

/// A generated permission expression, as the generator means it.
#[derive(Clone, Debug)]
enum Gen {
    Nil,
    Ref(String),
    Arrow(String, String),
    Bin(Op, Box<Gen>, Box<Gen>),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    Union,
    Intersection,
    Exclusion,
}

impl Op {
    /// Higher binds looser (SpiceDB: union, then intersection, then exclusion).
    fn looseness(self) -> u8 {
        match self {
            Op::Union => 1,
            Op::Intersection => 2,
            Op::Exclusion => 3,
        }
    }
}

/// One generated definition: relations (name, subject types, admits a wildcard) and
/// permissions (name, expression).
#[derive(Clone, Debug)]
struct GenDefinition {
    relations: Vec<(String, Vec<String>, bool)>,
    permissions: Vec<(String, Gen)>,
}

/// Random choices used while rendering: spellings, extra parentheses, comments, layout.
#[derive(Clone, Debug)]
struct Style(Vec<u8>);

impl Style {
    fn pick(&mut self, n: u8) -> u8 {
        let it = self.0.pop().unwrap_or(0);
        self.0.insert(0, it.wrapping_mul(31).wrapping_add(7));
        it % n
    }
}

fn expr_strategy(refs: Vec<String>, arrows: Vec<String>) -> impl Strategy<Value = Gen> {
    let mut leaves: Vec<BoxedStrategy<Gen>> = vec![Just(Gen::Nil).boxed()];
    leaves.push(prop::sample::select(refs).prop_map(Gen::Ref).boxed());
    if !arrows.is_empty() {
        leaves.push(
            prop::sample::select(arrows)
                .prop_map(|tupleset| Gen::Arrow(tupleset, "rel_0".to_string()))
                .boxed(),
        );
    }
    let leaf = prop::strategy::Union::new(leaves);
    leaf.prop_recursive(4, 24, 2, |inner| {
        (
            prop::sample::select(vec![Op::Union, Op::Intersection, Op::Exclusion]),
            inner.clone(),
            inner,
        )
            .prop_map(|(op, lhs, rhs)| Gen::Bin(op, Box::new(lhs), Box::new(rhs)))
    })
}

fn schema_strategy() -> impl Strategy<Value = Vec<GenDefinition>> {
    (1usize..4).prop_flat_map(|n_types| {
        let types: Vec<String> = (0..n_types).map(|idx| format!("typ_{idx}")).collect();
        let subject = prop::sample::select(
            types
                .iter()
                .flat_map(|ty| [ty.clone(), format!("{ty}:*"), format!("{ty}#rel_0")])
                .collect::<Vec<_>>(),
        );
        let relation = prop::collection::vec(subject, 1..4);
        let definition = prop::collection::vec(relation, 1..4).prop_flat_map(|relations| {
            let relations: Vec<(String, Vec<String>, bool)> = relations
                .into_iter()
                .enumerate()
                .map(|(idx, mut subjects)| {
                    subjects.sort();
                    subjects.dedup();
                    let wildcard = subjects.iter().any(|it| it.ends_with(":*"));
                    (format!("rel_{idx}"), subjects, wildcard)
                })
                .collect();
            let arrows: Vec<String> = relations
                .iter()
                .filter(|(_, _, wildcard)| !wildcard)
                .map(|(name, _, _)| name.clone())
                .collect();
            let names: Vec<String> = relations.iter().map(|(name, _, _)| name.clone()).collect();
            (0usize..4).prop_flat_map(move |n_permissions| {
                let relations = relations.clone();
                // Permission k may name relations and permissions before it: no cycles.
                let exprs: Vec<_> = (0..n_permissions)
                    .map(|k| {
                        let mut refs = names.clone();
                        refs.extend((0..k).map(|idx| format!("perm_{idx}")));
                        expr_strategy(refs, arrows.clone())
                    })
                    .collect();
                exprs.prop_map(move |exprs| GenDefinition {
                    relations: relations.clone(),
                    permissions: exprs
                        .into_iter()
                        .enumerate()
                        .map(|(idx, expr)| (format!("perm_{idx}"), expr))
                        .collect(),
                })
            })
        });
        prop::collection::vec(definition, n_types)
    })
}

fn render(definitions: &[GenDefinition], style: &mut Style) -> String {
    let mut out = String::new();
    for (idx, definition) in definitions.iter().enumerate() {
        if style.pick(3) == 0 {
            out.push_str("/** doc */\n");
        }
        out.push_str(&format!("definition typ_{idx} {{"));
        out.push_str(["\n", " ", "\n\n  "][usize::from(style.pick(3))]);
        for (name, subjects, _) in &definition.relations {
            out.push_str(&format!("relation {name}: {}", subjects.join(" | ")));
            out.push_str(["\n", " // note\n", "\n\n", " "][usize::from(style.pick(4))]);
        }
        for (name, expr) in &definition.permissions {
            if style.pick(4) == 0 {
                out.push_str("/* before */ ");
            }
            out.push_str(&format!("permission {name} = "));
            render_expr(expr, style, &mut out);
            out.push('\n');
        }
        out.push_str("}\n");
    }
    out
}

fn render_expr(expr: &Gen, style: &mut Style, out: &mut String) {
    match expr {
        Gen::Nil => out.push_str("nil"),
        Gen::Ref(name) => out.push_str(name),
        Gen::Arrow(tupleset, computed) => {
            let arrow = if style.pick(2) == 0 { "." } else { "->" };
            out.push_str(&format!("{tupleset}{arrow}{computed}"));
        }
        Gen::Bin(op, lhs, rhs) => {
            render_operand(lhs, *op, false, style, out);
            out.push_str(match op {
                Op::Union if style.pick(2) == 0 => " + ",
                Op::Union => " | ",
                Op::Intersection => " & ",
                Op::Exclusion => " - ",
            });
            render_operand(rhs, *op, true, style, out);
        }
    }
}

/// Parentheses where SpiceDB's precedence requires them, and sometimes where not.
fn render_operand(expr: &Gen, parent: Op, is_rhs: bool, style: &mut Style, out: &mut String) {
    let required = match expr {
        Gen::Bin(op, ..) => op.looseness() > parent.looseness() || (is_rhs && *op == parent),
        _ => false,
    };
    if required || style.pick(5) == 0 {
        out.push('(');
        render_expr(expr, style, out);
        out.push(')');
    } else {
        render_expr(expr, style, out);
    }
}

/// The compiled form the generator means, flattening unions and intersections.
fn expected_expr(expr: &Gen, names: &HashMap<String, arbiter::schema::RelationId>) -> Expr {
    match expr {
        Gen::Nil => Expr::Nil,
        Gen::Ref(name) => Expr::Ref(names[name]),
        Gen::Arrow(tupleset, _) => match expected_expr(&Gen::Ref(tupleset.clone()), names) {
            Expr::Ref(id) => Expr::Ref(id),
            other => other,
        },
        Gen::Bin(Op::Exclusion, lhs, rhs) => {
            // A chain `a - b - c` is `a - (b | c)`: one exclusion of a flat union.
            let (base, mut subtracted) = match expected_expr(lhs, names) {
                Expr::Exclusion(base, inner) => (*base, union_operands(*inner)),
                other => (other, Vec::new()),
            };
            subtracted.extend(union_operands(expected_expr(rhs, names)));
            let subtracted = if subtracted.len() == 1 {
                subtracted.remove(0)
            } else {
                Expr::Union(subtracted)
            };
            Expr::Exclusion(Box::new(base), Box::new(subtracted))
        }
        Gen::Bin(op, ..) => {
            let mut operands = Vec::new();
            flatten(expr, *op, names, &mut operands);
            if *op == Op::Union {
                Expr::Union(operands)
            } else {
                Expr::Intersection(operands)
            }
        }
    }
}

fn union_operands(expr: Expr) -> Vec<Expr> {
    match expr {
        Expr::Union(children) => children,
        other => vec![other],
    }
}

fn flatten(
    expr: &Gen,
    op: Op,
    names: &HashMap<String, arbiter::schema::RelationId>,
    out: &mut Vec<Expr>,
) {
    match expr {
        Gen::Bin(inner, lhs, rhs) if *inner == op => {
            flatten(lhs, op, names, out);
            flatten(rhs, op, names, out);
        }
        _ => out.push(expected_expr(expr, names)),
    }
}

/// Replaces each arrow by a reference to its tupleset, to compare shapes with
/// [`expected_expr`] (the arrow targets are checked by the compiler's own tests).
fn arrows_as_refs(expr: &Expr) -> Expr {
    match expr {
        Expr::Arrow(arrow) => Expr::Ref(arrow.tupleset),
        Expr::Union(children) => Expr::Union(children.iter().map(arrows_as_refs).collect()),
        Expr::Intersection(children) => {
            Expr::Intersection(children.iter().map(arrows_as_refs).collect())
        }
        Expr::Exclusion(base, subtracted) => Expr::Exclusion(
            Box::new(arrows_as_refs(base)),
            Box::new(arrows_as_refs(subtracted)),
        ),
        other => other.clone(),
    }
}

fn check_meaning(schema: &Schema, definitions: &[GenDefinition]) {
    for (idx, definition) in definitions.iter().enumerate() {
        let type_name = format!("typ_{idx}");
        let names = &schema.definition(&type_name).unwrap().relation_by_name;
        let names: HashMap<String, _> = names.iter().map(|(k, v)| (k.clone(), *v)).collect();
        for (name, expr) in &definition.permissions {
            let RelationKind::Permission { expr: compiled } =
                &schema.relation(&type_name, name).unwrap().kind
            else {
                panic!("{name} is not a permission");
            };
            assert_eq!(
                arrows_as_refs(compiled),
                expected_expr(expr, &names),
                "{type_name}#{name}"
            );
        }
    }
}

proptest! {
    #![proptest_config(Config { cases: 200, ..Config::default() })]

    #[test]
    fn formatting_is_stable_and_keeps_the_meaning(
        definitions in schema_strategy(),
        style in prop::collection::vec(any::<u8>(), 1..64),
    ) {
        let text = render(&definitions, &mut Style(style));
        let schema = parse_and_compile(&text)
            .unwrap_or_else(|errors| panic!("generated schema does not compile:\n{errors}\n{text}"));
        check_meaning(&schema, &definitions);
        let formatted = format(&text).unwrap();
        prop_assert_eq!(&formatted, &schema.source);
        prop_assert_eq!(format(&formatted).unwrap(), formatted.clone());
        let again = parse_and_compile(&formatted).unwrap();
        prop_assert_eq!(again, schema);
    }
}
