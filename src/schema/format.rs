//! The formatter: prints a [`SchemaAst`] as canonical text.
//!
//! Canonical means: definitions in source order separated by one blank line; members in
//! source order, indented by four spaces, one per line (blank lines between members are
//! kept, collapsed to one); the canonical spellings `|` and `.` (not `+` and `->`); one
//! space around binary operators; and parentheses around every operand that is itself a
//! different operator (or a later operand of an exclusion), so that a reader never needs
//! the precedence table: `(a | b) - c`, `a & (b | c)`.
//!
//! Every comment is printed back: comments before an item stay before it, a comment on
//! the same line after an item stays there, and comments before a closing `}` stay inside
//! it. A comment in the middle of a relation or permission moves up, before the comments
//! that precede the member (so that a doc comment stays right before its member).
//! Properties (tested): formatting is idempotent, and the formatted text compiles to the
//! same schema as the original.

use super::ast::{
    BinaryOp, CaveatAst, Comment, DefinitionAst, ExprAst, ExprKindAst, MemberAst, SchemaAst,
    SubjectKindAst, SubjectTypeAst, UseAst,
};
use crate::caveat::ParamType;

const INDENT: &str = "    ";

/// The canonical text of `ast`; `text` is the source it was parsed from (comments and
/// blank lines are read from it).
pub fn format_ast(ast: &SchemaAst, text: &str) -> String {
    let mut printer = Printer {
        text,
        comments: &ast.comments,
        next_comment: 0,
        out: String::new(),
    };
    let mut items: Vec<(usize, TopItem)> = Vec::new();
    items.extend(ast.uses.iter().map(|it| (it.span.start, TopItem::Use(it))));
    items.extend(
        ast.caveats
            .iter()
            .map(|it| (it.span.start, TopItem::Caveat(it))),
    );
    items.extend(
        ast.definitions
            .iter()
            .map(|it| (it.span.start, TopItem::Definition(it))),
    );
    items.sort_by_key(|(start, _)| *start);
    let mut last_end = None;
    for (idx, (_, item)) in items.iter().enumerate() {
        if idx > 0 {
            printer.out.push('\n');
        }
        last_end = Some(match item {
            TopItem::Use(directive) => printer.use_directive(directive),
            TopItem::Caveat(caveat) => printer.caveat(caveat),
            TopItem::Definition(definition) => printer.definition(definition),
        });
    }
    let rest = printer.take_before(text.len() + 1);
    printer.comment_block(rest, last_end, "");
    printer.out
}

/// The canonical text of one permission expression.
pub fn format_expr(expr: &ExprAst) -> String {
    let mut out = String::new();
    write_expr(expr, &mut out);
    out
}

/// A top-level item, for printing all kinds in source order.
enum TopItem<'a> {
    Use(&'a UseAst),
    Caveat(&'a CaveatAst),
    Definition(&'a DefinitionAst),
}

struct Printer<'a> {
    text: &'a str,
    /// All comments in source order; `next_comment` is the first not yet printed.
    comments: &'a [Comment],
    next_comment: usize,
    out: String,
}

impl<'a> Printer<'a> {
    /// Prints one definition and its trailing comment; returns where it ended in the source.
    fn definition(&mut self, definition: &DefinitionAst) -> usize {
        let leading = self.take_before(definition.span.start);
        let last = self.comment_block(leading, None, "");
        self.blank_line_if(last, definition.span.start);
        self.out.push_str("definition ");
        self.out.push_str(&definition.name.name);
        self.out.push_str(" {");
        let has_inner_comment = self
            .comments
            .get(self.next_comment)
            .is_some_and(|comment| comment.span.start < definition.span.end);
        if definition.members.is_empty() && !has_inner_comment {
            self.out.push('}');
        } else {
            self.out.push('\n');
            let mut prev_end = None;
            for member in &definition.members {
                prev_end = Some(self.member(member, prev_end));
            }
            let closing = self.take_before(definition.span.end);
            self.comment_block(closing, prev_end, INDENT);
            self.out.push('}');
        }
        let end = self.trailing_comment(definition.span.end);
        self.out.push('\n');
        end
    }

    /// Prints `use FLAG`; returns where it ended in the source.
    fn use_directive(&mut self, directive: &UseAst) -> usize {
        let leading = self.take_before(directive.span.start);
        let last = self.comment_block(leading, None, "");
        self.blank_line_if(last, directive.span.start);
        self.out.push_str("use ");
        self.out.push_str(&directive.flag.name);
        let end = self.trailing_comment(directive.span.end);
        self.out.push('\n');
        end
    }

    /// Prints one caveat: its header canonically, its expression as written (re-indented);
    /// returns where it ended in the source.
    fn caveat(&mut self, caveat: &CaveatAst) -> usize {
        let leading = self.take_before(caveat.span.start);
        let last = self.comment_block(leading, None, "");
        self.blank_line_if(last, caveat.span.start);
        // Comments inside the header go before the caveat.
        for comment in self.take_before(caveat.span.end) {
            self.comment(comment, "");
            self.out.push('\n');
        }
        self.out.push_str("caveat ");
        self.out.push_str(&caveat.name.name);
        self.out.push('(');
        for (idx, param) in caveat.params.iter().enumerate() {
            if idx > 0 {
                self.out.push_str(", ");
            }
            self.out.push_str(&param.name.name);
            self.out.push(' ');
            match ParamType::parse(&param.type_text) {
                Ok(ty) => self.out.push_str(&ty.to_string()),
                Err(_) => self.out.push_str(&param.type_text),
            }
        }
        self.out.push_str(") {\n");
        for line in expression_lines(&caveat.expression) {
            if !line.is_empty() {
                self.out.push_str(INDENT);
                self.out.push_str(line);
            }
            self.out.push('\n');
        }
        self.out.push('}');
        let end = self.trailing_comment(caveat.span.end);
        self.out.push('\n');
        end
    }

    /// Prints one member with its comments; returns where it ended in the source.
    fn member(&mut self, member: &MemberAst, prev_end: Option<usize>) -> usize {
        let span = member.span();
        let leading = self.take_before(span.start);
        let block_start = leading
            .first()
            .map_or(span.start, |comment| comment.span.start);
        self.blank_line_if(prev_end, block_start);
        // Comments from inside the member go first, so that a doc comment still directly
        // precedes the member.
        for comment in self.take_before(span.end) {
            self.comment(comment, INDENT);
            self.out.push('\n');
        }
        let last = self.comment_block(leading, None, INDENT);
        self.blank_line_if(last, span.start);
        self.out.push_str(INDENT);
        match member {
            MemberAst::Relation(relation) => {
                self.out.push_str("relation ");
                self.out.push_str(&relation.name.name);
                self.out.push_str(": ");
                for (idx, subject_type) in relation.subject_types.iter().enumerate() {
                    if idx > 0 {
                        self.out.push_str(" | ");
                    }
                    write_subject_type(subject_type, &mut self.out);
                }
            }
            MemberAst::Permission(permission) => {
                self.out.push_str("permission ");
                self.out.push_str(&permission.name.name);
                self.out.push_str(" = ");
                write_expr(&permission.expr, &mut self.out);
            }
        }
        let end = self.trailing_comment(span.end);
        self.out.push('\n');
        end
    }

    /// Prints `comments` one per line, keeping (single) blank lines between them; returns
    /// where the last one ended, or `prev_end` if there were none.
    fn comment_block(
        &mut self,
        comments: &[Comment],
        prev_end: Option<usize>,
        indent: &str,
    ) -> Option<usize> {
        let mut last = prev_end;
        for comment in comments {
            self.blank_line_if(last, comment.span.start);
            self.comment(comment, indent);
            self.out.push('\n');
            last = Some(comment.span.end);
        }
        last
    }

    /// The comments that start before `offset` and are not printed yet.
    fn take_before(&mut self, offset: usize) -> &'a [Comment] {
        let comments: &'a [Comment] = self.comments;
        let start = self.next_comment.min(comments.len());
        let len = comments[start..].partition_point(|comment| comment.span.start < offset);
        self.next_comment = start + len;
        &comments[start..start + len]
    }

    /// Prints the comment that follows `end` on the same line, if any; returns where the
    /// printed text ended in the source.
    fn trailing_comment(&mut self, end: usize) -> usize {
        let Some(comment) = self.comments.get(self.next_comment) else {
            return end;
        };
        let between = self.text.get(end..comment.span.start).unwrap_or("\n");
        if between.contains('\n') || !between.trim().is_empty() {
            return end;
        }
        // A doc comment documents what follows it: it stays with the next item (found by
        // fuzzing: after a member, with a comment inside the next member, it moved away
        // from the member it documented).
        if super::comments::doc_text(&comment.text).is_some() {
            return end;
        }
        self.next_comment += 1;
        self.out.push(' ');
        self.comment(comment, INDENT);
        comment.span.end
    }

    /// Pushes an empty line if the source had one between `prev_end` and `next_start`.
    fn blank_line_if(&mut self, prev_end: Option<usize>, next_start: usize) {
        let Some(prev_end) = prev_end else {
            return;
        };
        let between = self.text.get(prev_end..next_start).unwrap_or("");
        if between.matches('\n').count() >= 2 {
            self.out.push('\n');
        }
    }

    /// Prints a comment; the continuation lines of a block comment are re-indented (a
    /// line starting with `*` gets one more space, to line up under `/*`).
    fn comment(&mut self, comment: &Comment, indent: &str) {
        if !self.out.ends_with(' ') {
            self.out.push_str(indent);
        }
        for (idx, line) in comment.text.lines().enumerate() {
            if idx == 0 {
                self.out.push_str(line.trim_end());
                continue;
            }
            self.out.push('\n');
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            self.out.push_str(indent);
            if line.starts_with('*') {
                self.out.push(' ');
            }
            self.out.push_str(line);
        }
    }
}

fn write_subject_type(subject_type: &SubjectTypeAst, out: &mut String) {
    out.push_str(&subject_type.type_name.name);
    match &subject_type.kind {
        SubjectKindAst::Object => {}
        SubjectKindAst::Wildcard => out.push_str(":*"),
        SubjectKindAst::SubjectSet(relation) => {
            out.push('#');
            out.push_str(&relation.name);
        }
    }
    match (&subject_type.caveat, subject_type.expiration) {
        (Some(caveat), true) => {
            out.push_str(" with ");
            out.push_str(&caveat.name);
            out.push_str(" and expiration");
        }
        (Some(caveat), false) => {
            out.push_str(" with ");
            out.push_str(&caveat.name);
        }
        (None, true) => out.push_str(" with expiration"),
        (None, false) => {}
    }
}

/// The lines of a caveat expression without surrounding blank lines, the first trimmed,
/// the others with their common indentation removed (relative indentation kept), trailing
/// whitespace dropped. Idempotent: printing the result back gives the same lines.
fn expression_lines(expression: &str) -> Vec<&str> {
    let trimmed = expression.trim();
    let mut lines: Vec<&str> = trimmed.lines().map(str::trim_end).collect();
    let indent = lines
        .iter()
        .skip(1)
        .filter(|line| !line.trim().is_empty())
        .map(|line| line.len() - line.trim_start().len())
        .min()
        .unwrap_or(0);
    for line in lines.iter_mut().skip(1) {
        *line = line.get(indent..).unwrap_or("").trim_end();
    }
    lines
}

fn write_expr(expr: &ExprAst, out: &mut String) {
    match &expr.kind {
        ExprKindAst::Nil => out.push_str("nil"),
        ExprKindAst::Ref(name) => out.push_str(&name.name),
        ExprKindAst::Arrow { tupleset, computed } => {
            out.push_str(&tupleset.name);
            out.push('.');
            out.push_str(&computed.name);
        }
        ExprKindAst::Operation { op, operands } => {
            for (idx, operand) in operands.iter().enumerate() {
                if idx > 0 {
                    out.push(' ');
                    out.push_str(op.symbol());
                    out.push(' ');
                }
                write_operand(operand, *op, idx > 0, out);
            }
        }
    }
}

/// An operand of `parent`: parenthesised if it is a different operator, or a later
/// operand of an exclusion (`a - (b - c)`); a same-operator chain needs none.
fn write_operand(expr: &ExprAst, parent: BinaryOp, is_later: bool, out: &mut String) {
    let needs_parens = match &expr.kind {
        ExprKindAst::Operation { op, .. } => {
            *op != parent || (is_later && parent == BinaryOp::Exclusion)
        }
        _ => false,
    };
    if needs_parens {
        out.push('(');
        write_expr(expr, out);
        out.push(')');
    } else {
        write_expr(expr, out);
    }
}

#[cfg(test)]
mod tests {
    use crate::schema::{format, parse};

    fn fmt(text: &str) -> String {
        format(text).unwrap()
    }

    #[test]
    fn canonical_layout_and_spellings() {
        let text = "definition user{}\ndefinition doc{relation viewer:user|user:*   |group#member\npermission view=viewer+parent->view\n  relation parent: doc}";
        let expected = "definition user {}\n\ndefinition doc {\n    relation viewer: user | user:* | group#member\n    permission view = viewer | parent.view\n    relation parent: doc\n}\n";
        assert_eq!(fmt(text), expected);
    }

    #[test]
    fn parentheses_wherever_operators_mix() {
        let cases = [
            ("a | b - c", "(a | b) - c"),
            ("a - b | c", "a - (b | c)"),
            ("a & b | c", "a & (b | c)"),
            ("(a & b) | c", "(a & b) | c"),
            ("a - (b - c)", "a - (b - c)"),
            ("(a - b) - c", "a - b - c"),
            ("a | (b | c)", "a | b | c"),
            ("((a))", "a"),
            ("nil + x->y", "nil | x.y"),
        ];
        for (expr, expected) in cases {
            let text = format!("definition d {{\n    permission p = {expr}\n}}\n");
            let want = format!("definition d {{\n    permission p = {expected}\n}}\n");
            assert_eq!(fmt(&text), want, "{expr}");
            let ast = parse(&text).unwrap();
            let again = parse(&want).unwrap();
            let crate::schema::ast::MemberAst::Permission(first) = &ast.definitions[0].members[0]
            else {
                panic!("not a permission");
            };
            let crate::schema::ast::MemberAst::Permission(second) =
                &again.definitions[0].members[0]
            else {
                panic!("not a permission");
            };
            assert_eq!(
                super::format_expr(&first.expr),
                super::format_expr(&second.expr)
            );
        }
    }

    #[test]
    fn comments_are_kept_in_place() {
        let text = "// header\n\n/** A user. */\ndefinition user {} // trailing\n\ndefinition doc {\n  // leading\n  relation reader: user // why\n\n\n  /**\n  * Doc.\n  */\n  permission read = reader + /* inner */ reader\n  // closing\n}\n// end\n";
        let expected = "// header\n\n/** A user. */\ndefinition user {} // trailing\n\ndefinition doc {\n    // leading\n    relation reader: user // why\n\n    /* inner */\n    /**\n     * Doc.\n     */\n    permission read = reader | reader\n    // closing\n}\n// end\n";
        assert_eq!(fmt(text), expected);
        assert_eq!(fmt(expected), expected);
    }

    #[test]
    fn empty_and_comment_only_inputs() {
        assert_eq!(fmt(""), "");
        assert_eq!(fmt("// only\n"), "// only\n");
        assert_eq!(
            fmt("definition a { // inside\n}"),
            "definition a {\n    // inside\n}\n"
        );
    }
}
