//! Human rendering of an expand answer: the userset tree, one node per line, indented
//! by depth.

use crate::server::dto::{NodeKind, TreeBody};

/// Appends `tree` to `out`, `depth` levels deep.
pub fn render_tree(tree: &TreeBody, depth: usize, out: &mut String) {
    let indent = "  ".repeat(depth);
    let head = format!("{indent}{}#{}", tree.resource, tree.relation);
    let line = match tree.kind {
        NodeKind::Leaf if tree.subjects.is_empty() => format!("{head}: (none)"),
        NodeKind::Leaf => format!("{head}: {}", tree.subjects.join(", ")),
        NodeKind::Union => format!("{head}: union"),
        NodeKind::Intersection => format!("{head}: intersection"),
        NodeKind::Exclusion => format!("{head}: exclusion (first minus second)"),
        NodeKind::Arrow => format!(
            "{head}: arrow {}.{}",
            tree.tupleset.as_deref().unwrap_or("?"),
            tree.computed.as_deref().unwrap_or("?")
        ),
        NodeKind::Nil => format!("{head}: nil"),
        NodeKind::Userset => format!("{head}: (not expanded)"),
        NodeKind::Repeated => format!("{head}: (expanded above)"),
    };
    out.push_str(&line);
    out.push('\n');
    for child in &tree.children {
        render_tree(child, depth + 1, out);
    }
}
