//! The caveat type-checker, run once per caveat at schema compile: parse the CEL
//! expression with the `cel` crate's parser, check that it names only declared parameters
//! and known functions, infer its type where it can be determined (it must be `bool`), and
//! build the evaluation tree of [`super::eval`].
//!
//! The `cel` crate has no checker of its own. Inference here is deliberately simple: types
//! flow from literals and parameters through operators, indexing and the known functions;
//! anything it cannot determine (an `any` parameter, a comprehension variable) is `dyn` and
//! accepted, as CEL's own checker accepts `dyn`. It refuses what can never evaluate: an
//! unknown identifier or function, a comparison between different kinds of values (`int`
//! with `string`), a logical operator on a non-boolean, `in_cidr` on a non-`ipaddress`, and
//! a result that is known not to be a boolean.

use cel::common::ast::operators;
use cel::common::ast::{CallExpr, EntryExpr, Expr, IdedExpr};
use cel::common::value::CelVal;

use super::eval::Node;
use super::types::ParamType;
use super::{CaveatCompileError, CaveatParam};

/// The most parameters one caveat may declare (evaluation tracks them in a 64-bit set).
pub const MAX_PARAMS: usize = 64;

/// The deepest expression tree accepted (operator chains such as `a + a + …` nest one
/// level per operator); every later walk, ours and `cel`'s, is recursive.
pub const MAX_DEPTH: usize = 100;

/// The most operator characters (outside string literals) an expression may hold: the
/// `cel` parser and the trees it builds recurse once per operator of a chain, so a bound
/// on them, checked before parsing, keeps every walk off the end of the stack.
pub const MAX_OPERATORS: usize = 256;

/// How the `cel` parser words the error of nesting past its recursion limit.
const PARSER_LIMIT: &str = "Recursion limit of ";

/// The limit named in the `cel` parser's recursion error, as it printed it.
fn parser_limit(message: &str) -> &str {
    message
        .split_once(PARSER_LIMIT)
        .and_then(|(_, rest)| rest.split(|c: char| !c.is_ascii_digit()).next())
        .filter(|digits| !digits.is_empty())
        .unwrap_or("the parser's")
}

/// A type as inferred: `None` is `dyn` (not determinable here).
type Ty = Option<ParamType>;

/// Functions and methods the evaluator provides, with their result type (`None`: same as
/// the argument or not determinable).
const FUNCTIONS: &[(&str, Option<ParamType>)] = &[
    ("contains", Some(ParamType::Bool)),
    ("startsWith", Some(ParamType::Bool)),
    ("endsWith", Some(ParamType::Bool)),
    ("matches", Some(ParamType::Bool)),
    ("in_cidr", Some(ParamType::Bool)),
    ("size", Some(ParamType::Int)),
    ("int", Some(ParamType::Int)),
    ("uint", Some(ParamType::Uint)),
    ("double", Some(ParamType::Double)),
    ("string", Some(ParamType::String)),
    ("bytes", Some(ParamType::Bytes)),
    ("duration", Some(ParamType::Duration)),
    ("timestamp", Some(ParamType::Timestamp)),
    ("getFullYear", Some(ParamType::Int)),
    ("getMonth", Some(ParamType::Int)),
    ("getDayOfYear", Some(ParamType::Int)),
    ("getDayOfMonth", Some(ParamType::Int)),
    ("getDate", Some(ParamType::Int)),
    ("getDayOfWeek", Some(ParamType::Int)),
    ("getHours", Some(ParamType::Int)),
    ("getMinutes", Some(ParamType::Int)),
    ("getSeconds", Some(ParamType::Int)),
    ("getMilliseconds", Some(ParamType::Int)),
    ("max", None),
    ("min", None),
];

/// The stack the `cel` parser runs on. Its generated parser recurses through about ten
/// rules per level of parentheses up to its limit of 96 levels, which in a debug build
/// overflows a 2 MiB thread (a test's, a tokio worker's); only the pages touched are used.
const PARSE_STACK: usize = 64 << 20;

/// Parses and checks `expression` against `params`; returns the evaluation tree. Runs on a
/// thread of its own with [`PARSE_STACK`], so no expression can overflow the caller's stack.
pub(crate) fn check(
    params: &[CaveatParam],
    expression: &str,
) -> Result<(IdedExpr, Node), Vec<CaveatCompileError>> {
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("caveat-parse".into())
            .stack_size(PARSE_STACK)
            .spawn_scoped(scope, || check_here(params, expression))
            .map_err(|err| {
                vec![CaveatCompileError {
                    offset: 0,
                    message: format!("cannot start the caveat parser's thread: {err}"),
                }]
            })?
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// [`check`] on the current thread's stack.
fn check_here(
    params: &[CaveatParam],
    expression: &str,
) -> Result<(IdedExpr, Node), Vec<CaveatCompileError>> {
    if params.len() > MAX_PARAMS {
        return Err(vec![CaveatCompileError {
            offset: 0,
            message: format!(
                "too many parameters: {} (at most {MAX_PARAMS})",
                params.len()
            ),
        }]);
    }
    let n_operators = count_operators(expression);
    if n_operators > MAX_OPERATORS {
        return Err(vec![CaveatCompileError {
            offset: 0,
            message: format!(
                "caveat expression too complex: {n_operators} operator characters (at most {MAX_OPERATORS})"
            ),
        }]);
    }
    let program = cel::Program::compile(expression).map_err(|errors| {
        // The parser stops at its own nesting limit and then reports what it could not
        // build from the cut-off tree: that first error is the one to tell, in our words.
        if let Some(err) = errors.errors.iter().find(|err| err.msg.contains(PARSER_LIMIT)) {
            return vec![CaveatCompileError {
                offset: offset_of(expression, err.pos),
                message: format!(
                    "caveat expression nested too deeply: more than {} levels of parentheses or brackets",
                    parser_limit(&err.msg)
                ),
            }];
        }
        errors
            .errors
            .iter()
            .map(|err| CaveatCompileError {
                offset: offset_of(expression, err.pos),
                message: format!("invalid caveat expression: {}", lowercase_first(&err.msg)),
            })
            .collect::<Vec<_>>()
    })?;
    let root = program.expression();
    if depth(root) > MAX_DEPTH {
        return Err(vec![CaveatCompileError {
            offset: 0,
            message: format!("caveat expression nested too deeply: more than {MAX_DEPTH} levels"),
        }]);
    }
    let mut checker = Checker {
        params,
        expression,
        bound: Vec::new(),
        errors: Vec::new(),
    };
    let ty = checker.infer(root);
    if checker.errors.is_empty()
        && let Some(ty) = ty.filter(|ty| *ty != ParamType::Bool)
    {
        checker.error(
            0,
            format!("caveat expression must be a boolean, found `{ty}`"),
        );
    }
    if !checker.errors.is_empty() {
        return Err(checker.errors);
    }
    let mut root = root.clone();
    checked_operations(&mut root);
    let node = build(&root, params);
    Ok((root, node))
}

/// Replaces every unary minus, `+` and `-` in the tree by the checked functions of
/// [`super::values`], which fail on overflow as cel-go does (the `cel` crate's own minus
/// wraps, and its durations reach far beyond cel-go's int64 of nanoseconds).
fn checked_operations(root: &mut IdedExpr) {
    let mut stack = vec![root];
    while let Some(expr) = stack.pop() {
        match &mut expr.expr {
            Expr::Call(call) => {
                if call.target.is_none() {
                    let checked = match (call.func_name.as_str(), call.args.len()) {
                        (operators::NEGATE, 1) => Some(super::values::CHECKED_NEGATE),
                        (operators::ADD, 2) => Some(super::values::CHECKED_ADD),
                        (operators::SUBSTRACT, 2) => Some(super::values::CHECKED_SUB),
                        _ => None,
                    };
                    if let Some(checked) = checked {
                        call.func_name = checked.to_string();
                    }
                }
                stack.extend(call.target.iter_mut().map(|it| &mut **it));
                stack.extend(call.args.iter_mut());
            }
            Expr::Select(select) => stack.push(&mut select.operand),
            Expr::List(list) => stack.extend(list.elements.iter_mut()),
            Expr::Map(map) => {
                for entry in &mut map.entries {
                    if let EntryExpr::MapEntry(entry) = &mut entry.expr {
                        stack.push(&mut entry.key);
                        stack.push(&mut entry.value);
                    }
                }
            }
            Expr::Comprehension(it) => {
                let it = &mut **it;
                stack.push(&mut it.iter_range);
                stack.push(&mut it.accu_init);
                stack.push(&mut it.loop_cond);
                stack.push(&mut it.loop_step);
                stack.push(&mut it.result);
            }
            Expr::Ident(_) | Expr::Literal(_) | Expr::Struct(_) | Expr::Unspecified => {}
        }
    }
}

struct Checker<'a> {
    params: &'a [CaveatParam],
    expression: &'a str,
    /// Variables bound by enclosing comprehensions (macros), innermost last.
    bound: Vec<(String, Ty)>,
    errors: Vec<CaveatCompileError>,
}

impl Checker<'_> {
    fn error(&mut self, offset: usize, message: String) {
        self.errors.push(CaveatCompileError { offset, message });
    }

    fn infer(&mut self, expr: &IdedExpr) -> Ty {
        match &expr.expr {
            Expr::Unspecified => None,
            Expr::Literal(literal) => literal_type(literal),
            Expr::Ident(name) => self.ident(name),
            Expr::Select(select) => {
                let operand = self.infer(&select.operand);
                if select.test {
                    return Some(ParamType::Bool);
                }
                match operand {
                    Some(ParamType::Map(inner)) => normalize(*inner),
                    _ => None,
                }
            }
            Expr::List(list) => {
                let items: Vec<Ty> = list.elements.iter().map(|it| self.infer(it)).collect();
                let first = items.first().cloned().flatten();
                let uniform =
                    first.filter(|first| items.iter().all(|it| it.as_ref() == Some(first)));
                Some(ParamType::List(Box::new(uniform.unwrap_or(ParamType::Any))))
            }
            Expr::Map(map) => {
                for entry in &map.entries {
                    if let EntryExpr::MapEntry(entry) = &entry.expr {
                        self.infer(&entry.key);
                        self.infer(&entry.value);
                    }
                }
                None
            }
            Expr::Struct(_) => {
                self.error(0, "message construction is not supported in caveats".into());
                None
            }
            Expr::Comprehension(comprehension) => {
                self.infer(&comprehension.iter_range);
                let accu = self.infer(&comprehension.accu_init);
                let depth = self.bound.len();
                self.bound.push((comprehension.iter_var.clone(), None));
                if let Some(var2) = &comprehension.iter_var2 {
                    self.bound.push((var2.clone(), None));
                }
                self.bound.push((comprehension.accu_var.clone(), accu));
                self.infer(&comprehension.loop_cond);
                self.infer(&comprehension.loop_step);
                let res = self.infer(&comprehension.result);
                self.bound.truncate(depth);
                res
            }
            Expr::Call(call) => self.call(call),
        }
    }

    fn ident(&mut self, name: &str) -> Ty {
        if let Some((_, ty)) = self.bound.iter().rev().find(|(bound, _)| bound == name) {
            return ty.clone();
        }
        if let Some(param) = self.params.iter().find(|param| param.name == name) {
            return normalize(param.ty.clone());
        }
        let offset = find_word(self.expression, name).unwrap_or(0);
        self.error(offset, format!("unknown parameter `{name}`"));
        None
    }

    fn call(&mut self, call: &CallExpr) -> Ty {
        let target = call.target.as_ref().map(|target| self.infer(target));
        let args: Vec<Ty> = call.args.iter().map(|arg| self.infer(arg)).collect();
        let name = call.func_name.as_str();
        let bool_ty = Some(ParamType::Bool);
        match name {
            operators::LOGICAL_AND | operators::LOGICAL_OR | operators::LOGICAL_NOT => {
                for arg in args.iter().flatten() {
                    if *arg != ParamType::Bool {
                        let op = operator_text(name);
                        self.error(0, format!("`{op}` needs boolean operands, found `{arg}`"));
                    }
                }
                bool_ty
            }
            operators::NOT_STRICTLY_FALSE => bool_ty,
            operators::EQUALS
            | operators::NOT_EQUALS
            | operators::LESS
            | operators::LESS_EQUALS
            | operators::GREATER
            | operators::GREATER_EQUALS => {
                if let [Some(lhs), Some(rhs)] = args.as_slice()
                    && lhs.family() != rhs.family()
                {
                    let op = operator_text(name);
                    self.error(
                        0,
                        format!("cannot compare `{lhs}` with `{rhs}` using `{op}`"),
                    );
                }
                bool_ty
            }
            operators::IN => {
                if let [_, Some(container)] = args.as_slice()
                    && !matches!(container, ParamType::List(_) | ParamType::Map(_))
                {
                    self.error(
                        0,
                        format!("`in` needs a list or a map, found `{container}`"),
                    );
                }
                bool_ty
            }
            operators::CONDITIONAL => match args.as_slice() {
                [cond, then, otherwise] => {
                    if let Some(cond) = cond.as_ref().filter(|it| **it != ParamType::Bool) {
                        self.error(0, format!("a condition must be a boolean, found `{cond}`"));
                    }
                    if then == otherwise {
                        then.clone()
                    } else {
                        None
                    }
                }
                _ => None,
            },
            operators::INDEX => match args.first().cloned().flatten() {
                Some(ParamType::List(inner) | ParamType::Map(inner)) => normalize(*inner),
                _ => None,
            },
            operators::ADD
            | operators::SUBSTRACT
            | operators::MULTIPLY
            | operators::DIVIDE
            | operators::MODULO
            | operators::NEGATE => arithmetic(name, &args),
            "in_cidr" => {
                if let Some(Some(target)) = &target
                    && *target != ParamType::IpAddress
                {
                    self.error(
                        0,
                        format!("`in_cidr` is a method of `ipaddress`, not of `{target}`"),
                    );
                }
                bool_ty
            }
            _ => match FUNCTIONS.iter().find(|(known, _)| *known == name) {
                Some((_, ty)) => ty.clone(),
                None => {
                    let offset = find_word(self.expression, name).unwrap_or(0);
                    self.error(offset, format!("unknown function `{name}`"));
                    None
                }
            },
        }
    }
}

fn arithmetic(name: &str, args: &[Ty]) -> Ty {
    match (name, args) {
        (operators::NEGATE, [ty]) => ty.clone(),
        (operators::SUBSTRACT, [Some(ParamType::Timestamp), Some(ParamType::Timestamp)]) => {
            Some(ParamType::Duration)
        }
        (
            operators::ADD | operators::SUBSTRACT,
            [Some(ParamType::Timestamp), Some(ParamType::Duration)],
        )
        | (operators::ADD, [Some(ParamType::Duration), Some(ParamType::Timestamp)]) => {
            Some(ParamType::Timestamp)
        }
        (_, [lhs, rhs]) if lhs == rhs => lhs.clone(),
        _ => None,
    }
}

fn literal_type(literal: &CelVal) -> Ty {
    match literal {
        CelVal::Boolean(_) => Some(ParamType::Bool),
        CelVal::Int(_) => Some(ParamType::Int),
        CelVal::UInt(_) => Some(ParamType::Uint),
        CelVal::Double(_) => Some(ParamType::Double),
        CelVal::String(_) => Some(ParamType::String),
        CelVal::Bytes(_) => Some(ParamType::Bytes),
        _ => None,
    }
}

fn normalize(ty: ParamType) -> Ty {
    (ty != ParamType::Any).then_some(ty)
}

/// The operator and bracket characters of `text` outside string literals.
fn count_operators(text: &str) -> usize {
    let mut count = 0;
    let mut quote: Option<u8> = None;
    let mut escaped = false;
    for byte in text.bytes() {
        if let Some(open) = quote {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == open {
                quote = None;
            }
            continue;
        }
        match byte {
            b'"' | b'\'' => quote = Some(byte),
            b'+' | b'-' | b'*' | b'/' | b'%' | b'<' | b'>' | b'=' | b'!' | b'&' | b'|' | b'?'
            | b'.' | b'(' | b'[' | b'{' => count += 1,
            _ => {}
        }
    }
    count
}

/// The depth of the expression tree, computed without recursion.
fn depth(root: &IdedExpr) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(root, 1usize)];
    while let Some((expr, level)) = stack.pop() {
        deepest = deepest.max(level);
        if level > MAX_DEPTH {
            break;
        }
        match &expr.expr {
            Expr::Call(call) => {
                stack.extend(call.target.iter().map(|it| (&**it, level + 1)));
                stack.extend(call.args.iter().map(|it| (it, level + 1)));
            }
            Expr::Select(select) => stack.push((&select.operand, level + 1)),
            Expr::List(list) => stack.extend(list.elements.iter().map(|it| (it, level + 1))),
            Expr::Map(map) => {
                for entry in &map.entries {
                    if let EntryExpr::MapEntry(entry) = &entry.expr {
                        stack.push((&entry.key, level + 1));
                        stack.push((&entry.value, level + 1));
                    }
                }
            }
            Expr::Comprehension(it) => {
                for child in [
                    &it.iter_range,
                    &it.accu_init,
                    &it.loop_cond,
                    &it.loop_step,
                    &it.result,
                ] {
                    stack.push((child, level + 1));
                }
            }
            Expr::Ident(_) | Expr::Literal(_) | Expr::Struct(_) | Expr::Unspecified => {}
        }
    }
    deepest
}

/// Builds the evaluation tree: logical operators and the ternary become three-valued
/// nodes, every other subexpression a leaf that `cel` evaluates, tagged with the set of
/// parameters it references.
fn build(expr: &IdedExpr, params: &[CaveatParam]) -> Node {
    if let Expr::Call(call) = &expr.expr
        && call.target.is_none()
    {
        let children = || call.args.iter().map(|arg| build(arg, params)).collect();
        match (call.func_name.as_str(), call.args.len()) {
            (operators::LOGICAL_AND, 2..) => return Node::And(children()),
            (operators::LOGICAL_OR, 2..) => return Node::Or(children()),
            (operators::LOGICAL_NOT, 1) => {
                return Node::Not(Box::new(build(&call.args[0], params)));
            }
            (operators::CONDITIONAL, 3) => return Node::Cond(children()),
            _ => {}
        }
    }
    let mut mask = 0;
    let mut bound = Vec::new();
    referenced(expr, params, &mut bound, &mut mask);
    Node::Leaf {
        expr: expr.clone(),
        params: mask,
    }
}

/// Adds to `mask` the parameters `expr` references (free identifiers only).
fn referenced(expr: &IdedExpr, params: &[CaveatParam], bound: &mut Vec<String>, mask: &mut u64) {
    match &expr.expr {
        Expr::Ident(name) => {
            if bound.iter().any(|it| it == name) {
                return;
            }
            if let Some(idx) = params.iter().position(|param| &param.name == name) {
                *mask |= 1 << idx;
            }
        }
        Expr::Call(call) => {
            if let Some(target) = &call.target {
                referenced(target, params, bound, mask);
            }
            for arg in &call.args {
                referenced(arg, params, bound, mask);
            }
        }
        Expr::Select(select) => referenced(&select.operand, params, bound, mask),
        Expr::List(list) => {
            for item in &list.elements {
                referenced(item, params, bound, mask);
            }
        }
        Expr::Map(map) => {
            for entry in &map.entries {
                if let EntryExpr::MapEntry(entry) = &entry.expr {
                    referenced(&entry.key, params, bound, mask);
                    referenced(&entry.value, params, bound, mask);
                }
            }
        }
        Expr::Comprehension(comprehension) => {
            referenced(&comprehension.iter_range, params, bound, mask);
            referenced(&comprehension.accu_init, params, bound, mask);
            let depth = bound.len();
            bound.push(comprehension.iter_var.clone());
            bound.extend(comprehension.iter_var2.clone());
            bound.push(comprehension.accu_var.clone());
            referenced(&comprehension.loop_cond, params, bound, mask);
            referenced(&comprehension.loop_step, params, bound, mask);
            referenced(&comprehension.result, params, bound, mask);
            bound.truncate(depth);
        }
        Expr::Struct(_) | Expr::Literal(_) | Expr::Unspecified => {}
    }
}

/// The byte offset of the first occurrence of `word` as a whole word outside string
/// literals, if any.
fn find_word(text: &str, word: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut idx = 0;
    let mut quote: Option<u8> = None;
    while idx < bytes.len() {
        let byte = bytes[idx];
        if let Some(open) = quote {
            if byte == b'\\' {
                idx += 2;
                continue;
            }
            if byte == open {
                quote = None;
            }
            idx += 1;
            continue;
        }
        if byte == b'"' || byte == b'\'' {
            quote = Some(byte);
            idx += 1;
            continue;
        }
        let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        if bytes[idx..].starts_with(word.as_bytes())
            && (idx == 0 || !is_word(bytes[idx - 1]))
            && bytes.get(idx + word.len()).is_none_or(|b| !is_word(*b))
        {
            return Some(idx);
        }
        idx += 1;
    }
    None
}

/// The byte offset of a 1-based line and 0-based column (as `cel` reports them).
fn offset_of(text: &str, pos: (isize, isize)) -> usize {
    let (line, column) = pos;
    let mut offset = 0;
    for (idx, line_text) in text.split_inclusive('\n').enumerate() {
        if idx as isize + 1 == line {
            let column = usize::try_from(column).unwrap_or(0);
            let within = line_text
                .char_indices()
                .nth(column)
                .map_or(line_text.len(), |(at, _)| at);
            return offset + within;
        }
        offset += line_text.len();
    }
    0
}

fn operator_text(name: &str) -> &str {
    match name {
        operators::LOGICAL_AND => "&&",
        operators::LOGICAL_OR => "||",
        operators::LOGICAL_NOT => "!",
        operators::EQUALS => "==",
        operators::NOT_EQUALS => "!=",
        operators::LESS => "<",
        operators::LESS_EQUALS => "<=",
        operators::GREATER => ">",
        operators::GREATER_EQUALS => ">=",
        other => other,
    }
}

fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(spec: &[(&str, &str)]) -> Vec<CaveatParam> {
        spec.iter()
            .map(|(name, ty)| CaveatParam {
                name: (*name).to_string(),
                ty: ParamType::parse(ty).unwrap(),
            })
            .collect()
    }

    fn first_error(spec: &[(&str, &str)], expression: &str) -> (usize, String) {
        let errors = check(&params(spec), expression).unwrap_err();
        (errors[0].offset, errors[0].message.clone())
    }

    #[test]
    fn well_typed_expressions_pass() {
        let spec = [
            ("a", "int"),
            ("s", "string"),
            ("ip", "ipaddress"),
            ("allowed", "list<string>"),
            ("m", "map<int>"),
            ("t", "timestamp"),
            ("d", "duration"),
            ("x", "any"),
        ];
        for expression in [
            "a == 1",
            "a == 1 && s.startsWith(\"x\")",
            "ip.in_cidr(\"10.0.0.0/8\")",
            "allowed.exists(c, ip.in_cidr(c))",
            "s in allowed",
            "m[\"k\"] > 2 || m.k < 1",
            "t + d > timestamp(\"2026-01-01T00:00:00Z\")",
            "x",
            "a > 0 ? s == \"y\" : s == \"z\"",
            "has(m.k)",
            "size(allowed) > 0",
        ] {
            assert!(check(&params(&spec), expression).is_ok(), "{expression}");
        }
    }

    #[test]
    fn mistakes_are_refused_with_a_position() {
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, usize, &'a str);
        let cases: &[Case] = &[
            (
                &[("a", "int")],
                "a == 1 && b == 2",
                10,
                "unknown parameter `b`",
            ),
            (
                &[("a", "int")],
                "\"b\" == 'b' || b",
                14,
                "unknown parameter `b`",
            ),
            (
                &[("a", "int")],
                "a + 1",
                0,
                "caveat expression must be a boolean, found `int`",
            ),
            (
                &[("a", "int")],
                "a == \"x\"",
                0,
                "cannot compare `int` with `string` using `==`",
            ),
            (
                &[("a", "int")],
                "a && true",
                0,
                "`&&` needs boolean operands, found `int`",
            ),
            (
                &[("s", "string")],
                "s.in_cidr(\"1.0.0.0/8\")",
                0,
                "`in_cidr` is a method of `ipaddress`, not of `string`",
            ),
            (
                &[("a", "int")],
                "frobnicate(a)",
                0,
                "unknown function `frobnicate`",
            ),
        ];
        for (spec, expression, offset, message) in cases {
            assert_eq!(
                first_error(spec, expression),
                (*offset, (*message).to_string()),
                "{expression}"
            );
        }
        let chain = format!("a{} > 0", " + a".repeat(5000));
        let (_, message) = first_error(&[("a", "int")], &chain);
        assert!(message.contains("too complex"), "{message}");
        let chain = format!("a{} > 0", " + a".repeat(150));
        let (_, message) = first_error(&[("a", "int")], &chain);
        assert!(message.contains("nested too deeply"), "{message}");
        // A raw string hides its quote from the operator count, so the parser's own
        // nesting limit is what stops these; one clear error, not the parser's cascade.
        for open in ["(", "["] {
            let close = if open == "(" { ")" } else { "]" };
            let nested = format!(
                "r'\\' == '' || {}a == 1{}",
                open.repeat(500),
                close.repeat(500)
            );
            let errors = check(&params(&[("a", "int")]), &nested).unwrap_err();
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert!(
                errors[0]
                    .message
                    .starts_with("caveat expression nested too deeply: more than "),
                "{}",
                errors[0].message
            );
        }
        let list = format!("a in [{}]", vec!["\"10.0.0.0/8\""; 400].join(", "));
        assert!(check(&params(&[("a", "string")]), &list).is_ok());
        let (_, message) = first_error(&[("a", "int")], "a ==");
        assert!(
            message.starts_with("invalid caveat expression: "),
            "{message}"
        );
    }

    #[test]
    fn leaves_know_the_parameters_they_reference() {
        let (_, node) = check(
            &params(&[("a", "int"), ("b", "int"), ("c", "list<int>")]),
            "a == 1 && c.exists(a, a == b)",
        )
        .unwrap();
        let Node::And(children) = node else {
            panic!("expected an and node")
        };
        assert!(matches!(children[0], Node::Leaf { params: 0b001, .. }));
        // `a` inside the comprehension is the loop variable, not the parameter.
        assert!(matches!(children[1], Node::Leaf { params: 0b110, .. }));
    }
}
