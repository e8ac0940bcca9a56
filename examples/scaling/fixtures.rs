//! The synthetic data of the scaling curves, one fixture per axis, all in one schema so
//! that one engine holds them side by side (each fixture uses its own object ids, so none
//! disturbs another's walk):
//! - depth: `doc:depth{D}` viewed through a chain of `D` nested groups;
//! - fan-out: `doc:fan{N}` viewed by `group:fan{N}` with `N` direct members, and
//!   `doc:subfan{N}` viewed by a group of `N` nested groups of one member each;
//! - width: `doc:width{K}` for the `K`-operand intersection and exclusion permissions;
//! - lookup: `user:looker{N}` may view `N` documents through one group;
//! - fan-in: `user:hub{N}` is a direct viewer of `N` documents (a subject with many
//!   relationships, such as an administrator or a service account).

use arbiter::model::Relationship;

/// Widest intersection/exclusion in the schema.
pub const MAX_WIDTH: usize = 32;

/// Widths that have a permission in [`schema`].
pub const WIDTHS: [usize; 6] = [1, 2, 4, 8, 16, 32];

/// The schema of every fixture: groups, and documents with a plain `view`, plus
/// `all_K = rel01 & … & relK` and `but_K = base - (rel01 | … | relK)` for each width.
pub fn schema() -> String {
    let mut res = String::from(
        "definition user {}\n\
         definition group {\n    relation member: user | group#member\n}\n\
         definition doc {\n    relation viewer: user | group#member\n    relation base: user\n",
    );
    for idx in 1..=MAX_WIDTH {
        res.push_str(&format!("    relation rel{idx:02}: user\n"));
    }
    res.push_str("    permission view = viewer\n");
    for width in WIDTHS {
        let names: Vec<String> = (1..=width).map(|idx| format!("rel{idx:02}")).collect();
        res.push_str(&format!(
            "    permission all_{width} = {}\n",
            names.join(" & ")
        ));
        res.push_str(&format!(
            "    permission but_{width} = base - ({})\n",
            names.join(" | ")
        ));
    }
    res.push_str("}\n");
    res
}

fn rel(text: String) -> Relationship {
    text.parse()
        .unwrap_or_else(|err| panic!("generated `{text}`: {err}"))
}

/// `doc:depth{D}#viewer@group:d{D}g0#member`, `group:d{D}g{i}` ∋ `group:d{D}g{i+1}`, and
/// `user:deep{D}` in the last group: a check walks `D` groups to find it.
pub fn depth(levels: &[usize], out: &mut Vec<Relationship>) {
    for &d in levels {
        out.push(rel(format!("doc:depth{d}#viewer@group:d{d}g0#member")));
        for level in 1..d {
            out.push(rel(format!(
                "group:d{d}g{}#member@group:d{d}g{level}#member",
                level - 1
            )));
        }
        out.push(rel(format!("group:d{d}g{}#member@user:deep{d}", d - 1)));
    }
}

/// `group:fan{N}` with members `user:f{N}m0 … m{N-1}`; `doc:fan{N}` viewed by it.
pub fn fan_out(sizes: &[usize], out: &mut Vec<Relationship>) {
    for &n in sizes {
        out.push(rel(format!("doc:fan{n}#viewer@group:fan{n}#member")));
        for idx in 0..n {
            out.push(rel(format!("group:fan{n}#member@user:f{n}m{idx}")));
        }
    }
}

/// `group:subfan{N}` holding `N` groups `group:sf{N}s{i}`, each with one member
/// `user:sf{N}u{i}`; `doc:subfan{N}` viewed by it. A non-member check must visit every
/// nested group.
pub fn subgroup_fan_out(sizes: &[usize], out: &mut Vec<Relationship>) {
    for &n in sizes {
        out.push(rel(format!("doc:subfan{n}#viewer@group:subfan{n}#member")));
        for idx in 0..n {
            out.push(rel(format!(
                "group:subfan{n}#member@group:sf{n}s{idx}#member"
            )));
            out.push(rel(format!("group:sf{n}s{idx}#member@user:sf{n}u{idx}")));
        }
    }
}

/// `doc:width{K}`: `user:all` holds `base` and every `relXX`; `user:most` holds `base`
/// and every `relXX` but `relK`; `user:none` holds only `base`. So `all_K` allows `all`
/// and denies `most` only at its last operand, and `but_K` allows `none` after testing
/// all `K` excluded relations.
pub fn width(out: &mut Vec<Relationship>) {
    for width in WIDTHS {
        let doc = format!("doc:width{width}");
        for who in ["all", "most", "none"] {
            out.push(rel(format!("{doc}#base@user:{who}")));
        }
        for idx in 1..=MAX_WIDTH {
            out.push(rel(format!("{doc}#rel{idx:02}@user:all")));
            if idx != width {
                out.push(rel(format!("{doc}#rel{idx:02}@user:most")));
            }
        }
    }
}

/// `user:looker{N}` in `group:lk{N}`, which views `doc:l{N}_{i}` for `i < N`.
pub fn lookup(sizes: &[usize], out: &mut Vec<Relationship>) {
    for &n in sizes {
        out.push(rel(format!("group:lk{n}#member@user:looker{n}")));
        for idx in 0..n {
            out.push(rel(format!("doc:l{n}_{idx}#viewer@group:lk{n}#member")));
        }
    }
}

/// `user:hub{N}` is a direct viewer of `doc:in{N}_{i}` for `i < N`.
pub fn fan_in(sizes: &[usize], out: &mut Vec<Relationship>) {
    for &n in sizes {
        for idx in 0..n {
            out.push(rel(format!("doc:in{n}_{idx}#viewer@user:hub{n}")));
        }
    }
}
