//! The parser: schema text → spanned [`SchemaAst`], with nom 8 over `nom_locate` spans.
//!
//! One function per production, each with its grammar line as doc. A production first
//! skips trivia (whitespace and comments), so a node's span starts at its first token and
//! ends after its last. Once a keyword commits to a production, a later mismatch is a
//! `Failure` (nom's cut), so the error points at the real mistake: `expected X, found Y`.
//!
//! Expressions follow SpiceDB's precedence exactly (DESIGN §2): the arrow binds tightest,
//! then union `|`/`+`, then intersection `&`, and exclusion `-` binds loosest; each binary
//! operator is left-associative. So `a | b - c` is `(a | b) - c` and `a & b | c` is
//! `a & (b | c)`.
//!
//! SpiceDB constructs arbiter does not implement fail with `not supported yet: …` at their
//! first token, never with a generic error and never with a different parse. After an
//! error the parser resynchronises at the next top-level keyword, so independent errors
//! in later definitions are reported too.

use nom::bytes::complete::{tag, take_while1};
use nom::error::{ErrorKind, ParseError};
use nom::{Err, IResult, Input as _, Parser};
use nom_locate::LocatedSpan;

use super::ast::{
    BinaryOp, CaveatAst, CaveatParamAst, DefinitionAst, ExprAst, ExprKindAst, Ident, MemberAst,
    PermissionAst, RelationAst, SchemaAst, Span, SubjectKindAst, SubjectTypeAst, UseAst,
};
use super::comments::{doc_before, scan_comments};
use super::error::{LineIndex, SchemaError, SchemaErrorKind, SchemaErrors};

/// The deepest nesting of parentheses accepted in one expression; guards the stack.
pub const MAX_NESTING: usize = 64;

/// Parses a whole schema text. On failure returns every independent syntax error.
pub fn parse(text: &str) -> Result<SchemaAst, SchemaErrors> {
    let index = LineIndex::new(text);
    let mut definitions = Vec::new();
    let mut caveats = Vec::new();
    let mut uses = Vec::new();
    let mut errors = Vec::new();
    let mut input = Input::new(text);
    loop {
        let item_start = match trivia(input) {
            Ok((rest, ())) => rest,
            Err(err) => {
                errors.push(to_schema_error(err, text, &index));
                break;
            }
        };
        if item_start.fragment().is_empty() {
            break;
        }
        match top_item(item_start) {
            Ok((rest, item)) => {
                match item {
                    TopItem::Definition(definition) => definitions.push(definition),
                    TopItem::Caveat(caveat) => caveats.push(caveat),
                    TopItem::Use(directive) => uses.push(directive),
                }
                input = rest;
            }
            Err(err) => {
                errors.push(to_schema_error(err, text, &index));
                match resync(text, item_start.location_offset() + 1) {
                    Some(offset) => input = Input::new(text).take_from(offset),
                    None => break,
                }
            }
        }
    }
    if let Some(errors) = SchemaErrors::from_vec(errors) {
        return Err(errors);
    }
    let comments = scan_comments(&mask_caveat_bodies(text, &caveats));
    for caveat in &mut caveats {
        caveat.doc = doc_before(text, &comments, caveat.span.start);
    }
    for definition in &mut definitions {
        definition.doc = doc_before(text, &comments, definition.span.start);
        for member in &mut definition.members {
            let doc = doc_before(text, &comments, member.span().start);
            match member {
                MemberAst::Relation(relation) => relation.doc = doc,
                MemberAst::Permission(permission) => permission.doc = doc,
            }
        }
    }
    Ok(SchemaAst {
        definitions,
        caveats,
        uses,
        comments,
    })
}

/// `text` with the expressions of `caveats` blanked out (same byte offsets), so that the
/// comment scan does not mistake CEL text (`"http://…"`) for schema comments.
fn mask_caveat_bodies(text: &str, caveats: &[CaveatAst]) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for caveat in caveats {
        let span = caveat.expression_span;
        for byte in bytes.iter_mut().take(span.end).skip(span.start) {
            if *byte != b'\n' {
                *byte = b' ';
            }
        }
    }
    // Only ASCII bytes of whole characters were replaced by ASCII spaces: still UTF-8.
    String::from_utf8(bytes).unwrap_or_else(|_| text.to_string())
}

/// One top-level item.
enum TopItem {
    Definition(DefinitionAst),
    Caveat(CaveatAst),
    Use(UseAst),
}

type Input<'a> = LocatedSpan<&'a str>;
type PResult<'a, O> = IResult<Input<'a>, O, Failure>;

/// Why a production did not match, and where (a byte offset into the text).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Failure {
    offset: usize,
    kind: FailureKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FailureKind {
    Expected(&'static str),
    Unsupported(&'static str),
    UnterminatedComment,
    TooDeep,
}

impl<'a> ParseError<Input<'a>> for Failure {
    fn from_error_kind(input: Input<'a>, _kind: ErrorKind) -> Self {
        Failure {
            offset: input.location_offset(),
            kind: FailureKind::Expected("valid syntax"),
        }
    }

    fn append(_input: Input<'a>, _kind: ErrorKind, other: Self) -> Self {
        other
    }
}

/// `top_item = definition | caveat | use | <unsupported SpiceDB top-level construct>`
fn top_item(input: Input) -> PResult<TopItem> {
    if input.fragment().starts_with('@') {
        return fail(&input, FailureKind::Unsupported("decorators (`@`)"));
    }
    let construct = match leading_word(&input) {
        "definition" => return definition(input).map(|(rest, it)| (rest, TopItem::Definition(it))),
        "caveat" => return caveat(input).map(|(rest, it)| (rest, TopItem::Caveat(it))),
        "use" => return use_directive(input).map(|(rest, it)| (rest, TopItem::Use(it))),
        "import" => "imports",
        "partial" => "partial definitions",
        _ => return fail(&input, FailureKind::Expected("`definition`")),
    };
    fail(&input, FailureKind::Unsupported(construct))
}

/// `use = "use" ("expiration" | "self")`
fn use_directive(input: Input) -> PResult<UseAst> {
    let start = input.location_offset();
    let (input, _) = keyword("use").parse(input)?;
    let (input, ()) = trivia(input)?;
    let (rest, flag) = expect(word(input), "`expiration` or `self` after `use`")?;
    if !matches!(flag.name.as_str(), "expiration" | "self") {
        return fail(
            &input,
            FailureKind::Expected("`expiration` or `self` after `use`"),
        );
    }
    let span = span_to(start, &rest);
    Ok((rest, UseAst { flag, span }))
}

/// `caveat = "caveat" type_name "(" param ("," param)* ","? ")" "{" cel_expression "}"`
fn caveat(input: Input) -> PResult<CaveatAst> {
    let start = input.location_offset();
    let (input, _) = keyword("caveat").parse(input)?;
    let (input, name) = expect(type_name(input), "a caveat name after `caveat`")?;
    let (mut input, _) = expect(symbol("(").parse(input), "`(` after the caveat name")?;
    let mut params = Vec::new();
    loop {
        let (after, ()) = trivia(input)?;
        if after.fragment().starts_with(')') && !params.is_empty() {
            input = after.take_from(1);
            break;
        }
        let (rest, param) = expect(caveat_param(after), "a parameter name")?;
        params.push(param);
        let (after, ()) = trivia(rest)?;
        if let Some(_comma) = after.fragment().strip_prefix(',') {
            input = after.take_from(1);
        } else if after.fragment().starts_with(')') {
            input = after.take_from(1);
            break;
        } else {
            return fail(
                &after,
                FailureKind::Expected("`,` or `)` after a parameter"),
            );
        }
    }
    let (body, _) = expect(symbol("{").parse(input), "`{` before the caveat expression")?;
    let body_start = body.location_offset();
    let Some(len) = cel_body_len(body.fragment()) else {
        return fail(
            &body,
            FailureKind::Expected("`}` to close the caveat expression"),
        );
    };
    let expression = body.fragment()[..len].to_string();
    if expression.trim().is_empty() {
        return fail(
            &body.take_from(len),
            FailureKind::Expected("a caveat expression"),
        );
    }
    let rest = body.take_from(len + 1);
    let span = span_to(start, &rest);
    let expression_span = Span {
        start: body_start,
        end: body_start + len,
    };
    let caveat = CaveatAst {
        name,
        params,
        expression,
        expression_span,
        span,
        doc: None,
    };
    Ok((rest, caveat))
}

/// `param = name type`, `type = name ("<" type ("," type)* ">")?` (kept as text).
fn caveat_param(input: Input) -> PResult<CaveatParamAst> {
    let (input, name) = word(input)?;
    let (input, ()) = trivia(input)?;
    let fragment = *input.fragment();
    let mut depth = 0usize;
    let mut len = 0;
    for (idx, c) in fragment.char_indices() {
        match c {
            '<' => depth += 1,
            '>' if depth > 0 => depth -= 1,
            ',' | ')' if depth == 0 => break,
            c if c.is_whitespace()
                && depth == 0
                && !fragment[idx..].trim_start().starts_with('<') =>
            {
                break;
            }
            '{' | '}' | '(' | '\n' => break,
            _ => {}
        }
        len = idx + c.len_utf8();
    }
    let type_text = fragment[..len].trim_end();
    if type_text.is_empty() {
        return fail(
            &input,
            FailureKind::Expected("a parameter type after the parameter name"),
        );
    }
    let start = input.location_offset();
    let rest = input.take_from(type_text.len());
    let param = CaveatParamAst {
        name,
        type_text: type_text.to_string(),
        type_span: Span {
            start,
            end: start + type_text.len(),
        },
    };
    Ok((rest, param))
}

/// The length of a CEL expression up to (not including) the `}` that closes the caveat:
/// braces nest, and string literals and `//` comments are skipped. `None` if unclosed.
fn cel_body_len(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut idx = 0;
    while idx < bytes.len() {
        match bytes[idx] {
            b'{' => depth += 1,
            b'}' if depth == 0 => return Some(idx),
            b'}' => depth -= 1,
            b'/' if bytes.get(idx + 1) == Some(&b'/') => {
                idx += text[idx..].find('\n')?;
                continue;
            }
            quote @ (b'"' | b'\'') => {
                let triple = [quote; 3];
                let raw = idx > 0 && matches!(bytes[idx - 1], b'r' | b'R');
                if bytes[idx..].starts_with(&triple) {
                    let close = text[idx + 3..].find(std::str::from_utf8(&triple).ok()?)?;
                    idx += 3 + close + 3;
                    continue;
                }
                idx += 1;
                while idx < bytes.len() && bytes[idx] != quote {
                    if bytes[idx] == b'\n' {
                        return None;
                    }
                    idx += if bytes[idx] == b'\\' && !raw { 2 } else { 1 };
                }
                if idx >= bytes.len() {
                    return None;
                }
            }
            _ => {}
        }
        idx += 1;
    }
    None
}

/// `definition = "definition" type_name "{" member* "}"`
fn definition(input: Input) -> PResult<DefinitionAst> {
    let start = input.location_offset();
    let (input, _) = keyword("definition").parse(input)?;
    let (input, name) = expect(type_name(input), "a type name after `definition`")?;
    let (mut input, _) = expect(symbol("{").parse(input), "`{` after the definition name")?;
    let mut members = Vec::new();
    loop {
        let (after, ()) = trivia(input)?;
        if after.fragment().starts_with('}') {
            let rest = after.take_from(1);
            let span = span_to(start, &rest);
            let definition = DefinitionAst {
                name,
                members,
                span,
                doc: None,
            };
            return Ok((rest, definition));
        }
        let (rest, member) = member(after)?;
        members.push(member);
        input = rest;
    }
}

/// `member = relation | permission`
fn member(input: Input) -> PResult<MemberAst> {
    let fragment = *input.fragment();
    if fragment.starts_with('@') {
        return fail(&input, FailureKind::Unsupported("decorators (`@`)"));
    }
    if fragment.starts_with("...") {
        return fail(
            &input,
            FailureKind::Unsupported("partial references (`...`)"),
        );
    }
    match leading_word(&input) {
        "relation" => relation(input).map(|(rest, it)| (rest, MemberAst::Relation(it))),
        "permission" => permission(input).map(|(rest, it)| (rest, MemberAst::Permission(it))),
        _ => fail(
            &input,
            FailureKind::Expected("`relation`, `permission` or `}`"),
        ),
    }
}

/// `relation = "relation" name ":" subject_type ("|" subject_type)*`
fn relation(input: Input) -> PResult<RelationAst> {
    let start = input.location_offset();
    let (input, _) = keyword("relation").parse(input)?;
    let (input, name) = expect(word(input), "a relation name after `relation`")?;
    let (mut input, _) = expect(symbol(":").parse(input), "`:` after the relation name")?;
    let mut subject_types = Vec::new();
    loop {
        let (rest, subject_type) = expect(subject_type(input), "a subject type")?;
        let (rest, subject_type) = with_clause(rest, subject_type)?;
        subject_types.push(subject_type);
        match symbol("|").parse(rest) {
            Ok((next, _)) => input = next,
            Err(Err::Error(_)) => {
                let span = span_to(start, &rest);
                let relation = RelationAst {
                    name,
                    subject_types,
                    span,
                    doc: None,
                };
                return Ok((rest, relation));
            }
            Err(err) => return Err(err),
        }
    }
}

/// `with_clause = ("with" (name ("and" "expiration")? | "expiration"))?`
fn with_clause(input: Input, mut subject_type: SubjectTypeAst) -> PResult<SubjectTypeAst> {
    let (after, ()) = trivia(input)?;
    if leading_word(&after) != "with" {
        return Ok((input, subject_type));
    }
    let (after_with, _) = word(after)?;
    let (mut rest, name) = expect(
        type_name(after_with),
        "a caveat name or `expiration` after `with`",
    )?;
    if name.name == "expiration" {
        subject_type.expiration = true;
    } else {
        subject_type.caveat = Some(name);
        let (after_name, ()) = trivia(rest)?;
        if leading_word(&after_name) == "and" {
            let (after_and, _) = word(after_name)?;
            let (after_expiration, flag) = expect(word(after_and), "`expiration` after `and`")?;
            if flag.name != "expiration" {
                return fail(
                    &after_and.take_from(flag.span.start - after_and.location_offset()),
                    FailureKind::Expected("`expiration` after `and`"),
                );
            }
            subject_type.expiration = true;
            rest = after_expiration;
        }
    }
    subject_type.span = span_to(subject_type.span.start, &rest);
    Ok((rest, subject_type))
}

/// `subject_type = type_name ("#" name | ":" "*")?`
fn subject_type(input: Input) -> PResult<SubjectTypeAst> {
    let (input, type_name) = type_name(input)?;
    let (rest, kind) = if let Ok((after, _)) = symbol("#").parse(input) {
        let (rest, relation) = expect(word(after), "a relation name after `#`")?;
        (rest, SubjectKindAst::SubjectSet(relation))
    } else if let Ok((after, _)) = symbol(":").parse(input) {
        let (rest, _) = expect(symbol("*").parse(after), "`*` after `:`")?;
        (rest, SubjectKindAst::Wildcard)
    } else {
        (input, SubjectKindAst::Object)
    };
    let span = span_to(type_name.span.start, &rest);
    Ok((
        rest,
        SubjectTypeAst {
            type_name,
            kind,
            caveat: None,
            expiration: false,
            span,
        },
    ))
}

/// `permission = "permission" name "=" expression`
fn permission(input: Input) -> PResult<PermissionAst> {
    let start = input.location_offset();
    let (input, _) = keyword("permission").parse(input)?;
    let (input, name) = expect(word(input), "a permission name after `permission`")?;
    let (input, _) = expect(symbol("=").parse(input), "`=` after the permission name")?;
    let (rest, expr) = expect(expression(input, 0), "an expression after `=`")?;
    let span = span_to(start, &rest);
    Ok((
        rest,
        PermissionAst {
            name,
            expr,
            span,
            doc: None,
        },
    ))
}

/// `expression = exclusion`
fn expression(input: Input, depth: usize) -> PResult<ExprAst> {
    binary(input, depth, BinaryOp::Exclusion)
}

/// `exclusion = intersection ("-" intersection)*`,
/// `intersection = union ("&" union)*`, `union = term (("|" | "+") term)*`;
/// all left-associative. A chain of one operator becomes one n-ary node (no recursion or
/// nesting per operand, however long the chain).
fn binary(input: Input, depth: usize, op: BinaryOp) -> PResult<ExprAst> {
    let (mut input, first) = operand(input, depth, op)?;
    let mut operands = vec![first];
    loop {
        let (after, ()) = trivia(input)?;
        let Some(op_len) = operator_len(after.fragment(), op) else {
            break;
        };
        let expected = match op {
            BinaryOp::Union => "an expression after `|`",
            BinaryOp::Intersection => "an expression after `&`",
            BinaryOp::Exclusion => "an expression after `-`",
        };
        let (rest, next) = expect(operand(after.take_from(op_len), depth, op), expected)?;
        operands.push(next);
        input = rest;
    }
    if operands.len() == 1
        && let Some(only) = operands.pop()
    {
        return Ok((input, only));
    }
    let span = Span {
        start: operands.first().map_or(0, |it| it.span.start),
        end: operands.last().map_or(0, |it| it.span.end),
    };
    let kind = ExprKindAst::Operation { op, operands };
    Ok((input, ExprAst { kind, span }))
}

/// The operand of operator `op`: the next tighter level.
fn operand(input: Input, depth: usize, op: BinaryOp) -> PResult<ExprAst> {
    match op {
        BinaryOp::Exclusion => binary(input, depth, BinaryOp::Intersection),
        BinaryOp::Intersection => binary(input, depth, BinaryOp::Union),
        BinaryOp::Union => term(input, depth),
    }
}

/// The length of operator `op` at the start of `fragment`, if it is there.
fn operator_len(fragment: &str, op: BinaryOp) -> Option<usize> {
    let found = match op {
        BinaryOp::Union => fragment.starts_with('|') || fragment.starts_with('+'),
        BinaryOp::Intersection => fragment.starts_with('&'),
        BinaryOp::Exclusion => fragment.starts_with('-') && !fragment.starts_with("->"),
    };
    found.then_some(1)
}

/// `term = "(" expression ")" | "nil" | name (("." | "->") name)?`
fn term(input: Input, depth: usize) -> PResult<ExprAst> {
    let (input, ()) = trivia(input)?;
    let start = input.location_offset();
    if input.fragment().starts_with('(') {
        if depth >= MAX_NESTING {
            return fail(&input, FailureKind::TooDeep);
        }
        let (rest, mut inner) = expect(
            expression(input.take_from(1), depth + 1),
            "an expression after `(`",
        )?;
        let (rest, _) = expect(symbol(")").parse(rest), "`)`")?;
        inner.span = span_to(start, &rest);
        return Ok((rest, inner));
    }
    match leading_word(&input) {
        "" | "relation" | "permission" | "definition" => {
            return reject(&input, "a relation or permission name, `nil` or `(`");
        }
        "self" => return fail(&input, FailureKind::Unsupported("`self`")),
        "nil" => {
            let (rest, _) = word(input)?;
            let span = span_to(start, &rest);
            let kind = ExprKindAst::Nil;
            return Ok((rest, ExprAst { kind, span }));
        }
        _ => {}
    }
    let (rest, name) = word(input)?;
    let (after, ()) = trivia(rest)?;
    let Some(arrow_len) = arrow_len(after.fragment()) else {
        let span = name.span;
        let kind = ExprKindAst::Ref(name);
        return Ok((rest, ExprAst { kind, span }));
    };
    let (rest, computed) = expect(
        word(after.take_from(arrow_len)),
        "a relation or permission name after the arrow",
    )?;
    let (next, ()) = trivia(rest)?;
    if next.fragment().starts_with('(') {
        let construct = match computed.name.as_str() {
            "any" => "`.any()` arrows",
            "all" => "`.all()` arrows",
            _ => {
                return fail(
                    &next,
                    FailureKind::Expected("an operator or the end of the expression"),
                );
            }
        };
        return fail(&after, FailureKind::Unsupported(construct));
    }
    if arrow_len_at(&next).is_some() {
        return fail(&next, FailureKind::Unsupported("nested arrows"));
    }
    let span = span_to(start, &rest);
    let kind = ExprKindAst::Arrow {
        tupleset: name,
        computed,
    };
    Ok((rest, ExprAst { kind, span }))
}

/// The length of an arrow (`.` or `->`) at the start of `fragment`, if there is one.
fn arrow_len(fragment: &str) -> Option<usize> {
    if fragment.starts_with("->") {
        Some(2)
    } else if fragment.starts_with('.') && !fragment.starts_with("..") {
        Some(1)
    } else {
        None
    }
}

fn arrow_len_at(input: &Input) -> Option<usize> {
    arrow_len(input.fragment())
}

/// `type_name = name ("/" name)*` — no space around `/`.
fn type_name(input: Input) -> PResult<Ident> {
    let (mut rest, first) = word(input)?;
    let mut name = first.name;
    loop {
        let fragment = *rest.fragment();
        if !fragment.starts_with('/') || fragment.starts_with("//") || fragment.starts_with("/*") {
            break;
        }
        let after_slash = rest.take_from(1);
        let Ok((after, part)) = raw_word(after_slash) else {
            return fail(&after_slash, FailureKind::Expected("a name after `/`"));
        };
        name.push('/');
        name.push_str(part.fragment());
        rest = after;
    }
    let span = span_to(first.span.start, &rest);
    Ok((rest, Ident { name, span }))
}

/// `name = [A-Za-z0-9_]+` after trivia. The compiler checks the stricter naming rules,
/// so that a bad name is reported by name rather than as a syntax error.
fn word(input: Input) -> PResult<Ident> {
    let (input, ()) = trivia(input)?;
    let start = input.location_offset();
    let (rest, text) = match raw_word(input) {
        Ok(it) => it,
        Err(_) => return reject(&input, "a name"),
    };
    let name = text.fragment().to_string();
    let span = span_to(start, &rest);
    Ok((rest, Ident { name, span }))
}

fn raw_word(input: Input) -> PResult<Input> {
    take_while1(is_word_char).parse(input)
}

/// A keyword: the exact word, not a prefix of a longer name.
fn keyword<'a>(kw: &'static str) -> impl Parser<Input<'a>, Output = Input<'a>, Error = Failure> {
    move |input: Input<'a>| {
        let (input, ()) = trivia(input)?;
        let (rest, found) = tag(kw).parse(input)?;
        if rest.fragment().starts_with(is_word_char) {
            return reject(&input, "a keyword");
        }
        Ok((rest, found))
    }
}

/// A punctuation token after trivia.
fn symbol<'a>(text: &'static str) -> impl Parser<Input<'a>, Output = Input<'a>, Error = Failure> {
    move |input: Input<'a>| {
        let (input, ()) = trivia(input)?;
        tag(text).parse(input)
    }
}

/// `trivia = (whitespace | "//" … newline | "/*" … "*/")*`
fn trivia(mut input: Input) -> PResult<()> {
    loop {
        let fragment = *input.fragment();
        let trimmed = fragment.trim_start();
        input = input.take_from(fragment.len() - trimmed.len());
        if trimmed.starts_with("//") {
            input = input.take_from(trimmed.find('\n').unwrap_or(trimmed.len()));
        } else if let Some(body) = trimmed.strip_prefix("/*") {
            match body.find("*/") {
                Some(len) => input = input.take_from(len + 4),
                None => return fail(&input, FailureKind::UnterminatedComment),
            }
        } else {
            return Ok((input, ()));
        }
    }
}

/// The name at the start of `input` (no trivia skipped), or `""`.
fn leading_word<'a>(input: &Input<'a>) -> &'a str {
    let fragment: &'a str = input.fragment();
    let len = fragment
        .find(|c: char| !is_word_char(c))
        .unwrap_or(fragment.len());
    &fragment[..len]
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn span_to(start: usize, rest: &Input) -> Span {
    Span {
        start,
        end: rest.location_offset(),
    }
}

/// A recoverable mismatch: another alternative may still match.
fn reject<'a, O>(input: &Input<'a>, expected: &'static str) -> PResult<'a, O> {
    Err(Err::Error(Failure {
        offset: input.location_offset(),
        kind: FailureKind::Expected(expected),
    }))
}

/// A committed failure (nom's cut): no alternative is tried.
fn fail<'a, O>(input: &Input<'a>, kind: FailureKind) -> PResult<'a, O> {
    Err(Err::Failure(Failure {
        offset: input.location_offset(),
        kind,
    }))
}

/// Cuts: turns a mismatch of a required part into a failure saying what was expected.
fn expect<'a, O>(res: PResult<'a, O>, expected: &'static str) -> PResult<'a, O> {
    match res {
        Err(Err::Error(failure)) => Err(Err::Failure(Failure {
            offset: failure.offset,
            kind: FailureKind::Expected(expected),
        })),
        other => other,
    }
}

/// The offset of the next top-level keyword after `from`, outside comments: `definition`
/// anywhere, or `caveat`, `use`, `import`, `partial` or a decorator `@` first on a line.
fn resync(text: &str, from: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut pos = from;
    // Do not resynchronise in the middle of a word.
    while pos < bytes.len() && pos > 0 && is_word_char(char::from(bytes[pos - 1])) {
        pos += 1;
    }
    while pos < bytes.len() {
        let rest = text.get(pos..)?;
        if rest.starts_with("//") {
            pos += rest.find('\n').unwrap_or(rest.len());
        } else if let Some(body) = rest.strip_prefix("/*") {
            pos += body.find("*/").map_or(rest.len(), |len| len + 4);
        } else if rest.starts_with(is_word_char) {
            let len = rest.find(|c: char| !is_word_char(c)).unwrap_or(rest.len());
            let found = &rest[..len];
            let is_top = found == "definition"
                || (first_on_line(text, pos)
                    && matches!(found, "caveat" | "use" | "import" | "partial"));
            if is_top {
                return Some(pos);
            }
            pos += len;
        } else {
            if rest.starts_with('@') && first_on_line(text, pos) {
                return Some(pos);
            }
            pos += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    None
}

/// Whether only whitespace precedes `pos` on its line.
fn first_on_line(text: &str, pos: usize) -> bool {
    let line_start = text[..pos].rfind('\n').map_or(0, |idx| idx + 1);
    text[line_start..pos].trim().is_empty()
}

fn to_schema_error(err: Err<Failure>, text: &str, index: &LineIndex) -> SchemaError {
    let failure = match err {
        Err::Error(failure) | Err::Failure(failure) => failure,
        Err::Incomplete(_) => Failure {
            offset: text.len(),
            kind: FailureKind::Expected("more input"),
        },
    };
    let offset = failure.offset.min(text.len());
    let token = next_token(text, offset);
    let kind = match failure.kind {
        FailureKind::Expected(expected) => SchemaErrorKind::Syntax {
            expected,
            found: if token.is_empty() {
                "end of input".to_string()
            } else if token.trim().is_empty() {
                "whitespace".to_string()
            } else {
                format!("`{token}`")
            },
        },
        FailureKind::Unsupported(construct) => SchemaErrorKind::Unsupported(construct),
        FailureKind::UnterminatedComment => SchemaErrorKind::UnterminatedComment,
        FailureKind::TooDeep => SchemaErrorKind::TooDeep(MAX_NESTING),
    };
    let span = Span {
        start: offset,
        end: offset + token.len(),
    };
    index.error(span, kind)
}

/// The token at `offset`: a name, or one character; empty at the end.
fn next_token(text: &str, offset: usize) -> &str {
    let Some(rest) = text.get(offset..) else {
        return "";
    };
    let len = match rest.find(|c: char| !is_word_char(c)) {
        Some(0) => rest.chars().next().map_or(0, char::len_utf8),
        Some(len) => len,
        None => rest.len(),
    };
    &rest[..len.min(64)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(text: &str) -> Input<'_> {
        Input::new(text)
    }

    fn expr_text(expr: &ExprAst) -> String {
        match &expr.kind {
            ExprKindAst::Nil => "nil".into(),
            ExprKindAst::Ref(name) => name.name.clone(),
            ExprKindAst::Arrow { tupleset, computed } => {
                format!("{}.{}", tupleset.name, computed.name)
            }
            ExprKindAst::Operation { op, operands } => {
                let separator = format!(" {} ", op.symbol());
                let texts: Vec<String> = operands.iter().map(expr_text).collect();
                format!("({})", texts.join(&separator))
            }
        }
    }

    fn parse_expr(text: &str) -> (String, String) {
        let (rest, expr) = expression(input(text), 0).unwrap();
        (expr_text(&expr), rest.fragment().to_string())
    }

    fn first_error(text: &str) -> String {
        parse(text).unwrap_err().errors()[0].to_string()
    }

    #[test]
    fn trivia_skips_whitespace_and_comments() {
        let (rest, ()) = trivia(input("  // a\n /* b */ /** c */ x")).unwrap();
        assert_eq!(*rest.fragment(), "x");
        assert!(trivia(input(" /* open")).is_err());
    }

    #[test]
    fn type_name_takes_namespaces() {
        let (rest, name) = type_name(input(" ns/sub/user rest")).unwrap();
        assert_eq!(name.name, "ns/sub/user");
        assert_eq!(name.span, Span { start: 1, end: 12 });
        assert_eq!(*rest.fragment(), " rest");
        let (rest, name) = type_name(input("user// comment")).unwrap();
        assert_eq!(name.name, "user");
        assert_eq!(*rest.fragment(), "// comment");
    }

    #[test]
    fn subject_type_forms() {
        let (rest, it) = subject_type(input("user | x")).unwrap();
        assert_eq!(it.kind, SubjectKindAst::Object);
        assert_eq!(*rest.fragment(), " | x");
        let (rest, it) = subject_type(input("group#member }")).unwrap();
        assert!(matches!(it.kind, SubjectKindAst::SubjectSet(ref rel) if rel.name == "member"));
        assert_eq!(*rest.fragment(), " }");
        let (rest, it) = subject_type(input("user:*\n")).unwrap();
        assert_eq!(it.kind, SubjectKindAst::Wildcard);
        assert_eq!(it.span, Span { start: 0, end: 6 });
        assert_eq!(*rest.fragment(), "\n");
    }

    #[test]
    fn relation_lists_subject_types() {
        let (rest, it) =
            relation(input("relation viewer: user | group#member | user:*\n}")).unwrap();
        assert_eq!(it.name.name, "viewer");
        assert_eq!(it.subject_types.len(), 3);
        assert_eq!(*rest.fragment(), "\n}");
    }

    #[test]
    fn permission_takes_an_expression() {
        let (rest, it) = permission(input("permission view = a + b\n}")).unwrap();
        assert_eq!(it.name.name, "view");
        assert_eq!(expr_text(&it.expr), "(a | b)");
        assert_eq!(*rest.fragment(), "\n}");
    }

    #[test]
    fn definition_holds_members() {
        let text = "definition ns/doc {\n relation a: user\n permission b = a\n} x";
        let (rest, it) = definition(input(text)).unwrap();
        assert_eq!(it.name.name, "ns/doc");
        assert_eq!(it.members.len(), 2);
        assert_eq!(*rest.fragment(), " x");
        let (_, it) = definition(input("definition user {}")).unwrap();
        assert!(it.members.is_empty());
    }

    #[test]
    fn precedence_follows_spicedb() {
        assert_eq!(parse_expr("a | b - c").0, "((a | b) - c)");
        assert_eq!(parse_expr("a - b | c").0, "(a - (b | c))");
        assert_eq!(parse_expr("a & b | c").0, "(a & (b | c))");
        assert_eq!(parse_expr("a | b & c").0, "((a | b) & c)");
        assert_eq!(parse_expr("a - b & c").0, "(a - (b & c))");
        assert_eq!(parse_expr("a - b - c").0, "(a - b - c)");
        assert_eq!(parse_expr("(a - b) - c").0, "((a - b) - c)");
        assert_eq!(parse_expr("a & b & c").0, "(a & b & c)");
        assert_eq!(parse_expr("a + b + c").0, "(a | b | c)");
        assert_eq!(parse_expr("a - (b - c)").0, "(a - (b - c))");
        assert_eq!(parse_expr("p.v | q->w - r").0, "((p.v | q.w) - r)");
    }

    #[test]
    fn expression_forms_and_rest() {
        assert_eq!(parse_expr("nil }"), ("nil".into(), " }".into()));
        assert_eq!(
            parse_expr("parent->view\n relation"),
            ("parent.view".into(), "\n relation".into())
        );
        assert_eq!(
            parse_expr("parent . view"),
            ("parent.view".into(), "".into())
        );
        assert_eq!(parse_expr("(a)"), ("a".into(), "".into()));
    }

    #[test]
    fn unsupported_constructs_are_named_at_their_position() {
        let cases = [
            ("import \"x.zed\"\n", "1:1: not supported yet: imports"),
            (
                "partial p {}\n",
                "1:1: not supported yet: partial definitions",
            ),
            (
                "@deprecated\ndefinition a {}",
                "1:1: not supported yet: decorators (`@`)",
            ),
            (
                "definition a {\n @x\n}",
                "2:2: not supported yet: decorators (`@`)",
            ),
            (
                "definition a {\n  ...p\n}",
                "2:3: not supported yet: partial references (`...`)",
            ),
            (
                "definition a { permission p = r.any(v) }",
                "1:32: not supported yet: `.any()` arrows",
            ),
            (
                "definition a { permission p = r.all(v) }",
                "1:32: not supported yet: `.all()` arrows",
            ),
            (
                "definition a { permission p = r + self }",
                "1:35: not supported yet: `self`",
            ),
            (
                "definition a { permission p = r->s->t }",
                "1:35: not supported yet: nested arrows",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(first_error(text), expected, "{text}");
        }
    }

    #[test]
    fn syntax_errors_say_what_was_expected() {
        let cases = [
            (
                "definition {}",
                "1:12: expected a type name after `definition`, found `{`",
            ),
            (
                "definition a b",
                "1:14: expected `{` after the definition name, found `b`",
            ),
            (
                "definition a {",
                "1:15: expected `relation`, `permission` or `}`, found end of input",
            ),
            (
                "definition a { relation r user }",
                "1:27: expected `:` after the relation name, found `user`",
            ),
            (
                "definition a { relation r: }",
                "1:28: expected a subject type, found `}`",
            ),
            (
                "definition a { relation r: user# }",
                "1:34: expected a relation name after `#`, found `}`",
            ),
            (
                "definition a { relation r: user: }",
                "1:34: expected `*` after `:`, found `}`",
            ),
            (
                "definition a { permission p }",
                "1:29: expected `=` after the permission name, found `}`",
            ),
            (
                "definition a { permission p = }",
                "1:31: expected an expression after `=`, found `}`",
            ),
            (
                "definition a { permission p = a - }",
                "1:35: expected an expression after `-`, found `}`",
            ),
            (
                "definition a { permission p = (a }",
                "1:34: expected `)`, found `}`",
            ),
            (
                "definition a { permission p = a. }",
                "1:34: expected a relation or permission name after the arrow, found `}`",
            ),
            (
                "definition a { relation r: ns/ }",
                "1:31: expected a name after `/`, found whitespace",
            ),
            ("/* open", "1:1: unterminated comment: expected `*/`"),
            (
                "relation r: user",
                "1:1: expected `definition`, found `relation`",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(first_error(text), expected, "{text}");
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let text = format!(
            "definition a {{ permission p = {}b{} }}",
            "(".repeat(500),
            ")".repeat(500)
        );
        assert_eq!(
            first_error(&text),
            "1:95: expression nests deeper than 64 levels of parentheses"
        );
        let ok = format!(
            "definition a {{ permission p = {}b{} }}",
            "(".repeat(60),
            ")".repeat(60)
        );
        assert!(parse(&ok).is_ok());
    }

    #[test]
    fn errors_in_independent_definitions_are_all_reported() {
        let text = "use flags\n\ndefinition a {\n relation r user\n}\n\ncaveat c(x) {\n  x == 1\n}\n\ndefinition b { permission p = }\ndefinition ok {}\n";
        let errors: Vec<String> = parse(text)
            .unwrap_err()
            .errors()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            errors,
            [
                "1:5: expected `expiration` or `self` after `use`, found `flags`",
                "4:13: expected `:` after the relation name, found `user`",
                "7:11: expected a parameter type after the parameter name, found `)`",
                "11:31: expected an expression after `=`, found `}`",
            ]
        );
    }

    #[test]
    fn docs_attach_to_the_next_item() {
        let text = "/** A user. */\ndefinition user {}\n// not a doc\ndefinition doc {\n  /** Who reads. */\n  relation reader: user\n  permission read = reader\n}";
        let ast = parse(text).unwrap();
        assert_eq!(ast.definitions[0].doc.as_deref(), Some("A user."));
        assert_eq!(ast.definitions[1].doc, None);
        assert_eq!(ast.definitions[1].members[0].doc(), Some("Who reads."));
        assert_eq!(ast.definitions[1].members[1].doc(), None);
        assert_eq!(ast.comments.len(), 3);
    }

    #[test]
    fn use_self_on_one_line_resyncs_to_the_definition() {
        let text = "use self definition user {\n relation related: user\n permission me = related + self\n}";
        let errors = parse(text).unwrap_err();
        let messages: Vec<String> = errors.errors().iter().map(ToString::to_string).collect();
        assert_eq!(messages, ["3:28: not supported yet: `self`"]);
    }

    #[test]
    fn use_directives_take_a_known_flag() {
        let ast = parse("use expiration\nuse self\ndefinition user {}").unwrap();
        let flags: Vec<&str> = ast.uses.iter().map(|it| it.flag.name.as_str()).collect();
        assert_eq!(flags, ["expiration", "self"]);
        assert_eq!(ast.uses[0].span, Span { start: 0, end: 14 });
    }

    #[test]
    fn caveat_takes_params_and_keeps_the_expression_verbatim() {
        let text = "caveat ns/ip_ok(ip ipaddress, allowed list< string >, m map<int>,) {\n  allowed.exists(c, ip.in_cidr(c)) && {\"k\": \"}\"}.size() == 1 // }\n} x";
        let (rest, it) = caveat(input(text)).unwrap();
        assert_eq!(*rest.fragment(), " x");
        assert_eq!(it.name.name, "ns/ip_ok");
        let params: Vec<(&str, &str)> = it
            .params
            .iter()
            .map(|p| (p.name.name.as_str(), p.type_text.as_str()))
            .collect();
        assert_eq!(
            params,
            [
                ("ip", "ipaddress"),
                ("allowed", "list< string >"),
                ("m", "map<int>")
            ]
        );
        assert!(it.expression.trim().starts_with("allowed.exists"));
        assert!(it.expression.trim_end().ends_with("// }"));
        assert_eq!(
            &text[it.expression_span.start..it.expression_span.end],
            it.expression
        );
    }

    #[test]
    fn caveat_syntax_errors_say_what_was_expected() {
        let cases = [
            (
                "caveat {}",
                "1:8: expected a caveat name after `caveat`, found `{`",
            ),
            (
                "caveat c {}",
                "1:10: expected `(` after the caveat name, found `{`",
            ),
            (
                "caveat c() {}",
                "1:10: expected a parameter name, found `)`",
            ),
            (
                "caveat c(a int b int) {}",
                "1:16: expected `,` or `)` after a parameter, found `b`",
            ),
            (
                "caveat c(a int) a",
                "1:17: expected `{` before the caveat expression, found `a`",
            ),
            (
                "caveat c(a int) { a == \"}",
                "1:18: expected `}` to close the caveat expression, found whitespace",
            ),
            (
                "caveat c(a int) {  }",
                "1:20: expected a caveat expression, found `}`",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(first_error(text), expected, "{text}");
        }
    }

    #[test]
    fn with_clauses_on_every_subject_form() {
        let text = "relation r: user with c | group#member with c and expiration | user:* with expiration | ns/t with ns/c\n}";
        let (rest, it) = relation(input(text)).unwrap();
        assert_eq!(*rest.fragment(), "\n}");
        let clauses: Vec<(Option<&str>, bool)> = it
            .subject_types
            .iter()
            .map(|st| (st.caveat.as_ref().map(|c| c.name.as_str()), st.expiration))
            .collect();
        assert_eq!(
            clauses,
            [
                (Some("c"), false),
                (Some("c"), true),
                (None, true),
                (Some("ns/c"), false)
            ]
        );
        assert_eq!(
            &text[it.subject_types[1].span.start..it.subject_types[1].span.end],
            "group#member with c and expiration"
        );
        let errors = [
            (
                "definition a { relation r: user with }",
                "1:38: expected a caveat name or `expiration` after `with`, found `}`",
            ),
            (
                "definition a { relation r: user with c and }",
                "1:44: expected `expiration` after `and`, found `}`",
            ),
            (
                "definition a { relation r: user with c and d }",
                "1:44: expected `expiration` after `and`, found `d`",
            ),
        ];
        for (text, expected) in errors {
            assert_eq!(first_error(text), expected, "{text}");
        }
    }

    #[test]
    fn comment_markers_inside_caveat_expressions_are_not_comments() {
        let text =
            "/** doc */\ncaveat c(u string) {\n  u == \"http://x/*y\"\n}\ndefinition user {}";
        let ast = parse(text).unwrap();
        assert_eq!(ast.comments.len(), 1);
        assert_eq!(ast.caveats[0].doc.as_deref(), Some("doc"));
    }
}
