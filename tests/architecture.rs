//! The layering invariants of `docs/ARCHITECTURE.md`, checked on the sources: which
//! top-level module may depend on which, which crates only one layer may name, and which
//! names one layer must never use. The rules are data; a new invariant is a new row.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Every top-level module and the modules it may depend on. `model` depends on nothing;
/// `schema` and `store` only on `model` and never on each other; nothing but `cli`
/// depends on `server`, and nothing depends on `cli`.
const MAY_DEPEND_ON: &[(&str, &[&str])] = &[
    ("model", &[]),
    ("caveat", &[]),
    ("schema", &["model", "caveat"]),
    ("store", &["model"]),
    ("engine", &["model", "caveat", "schema", "store"]),
    ("validation", &["model", "schema", "store", "engine"]),
    (
        "sync",
        &["model", "schema", "store", "engine", "validation"],
    ),
    // The playground's sandbox runs validation files on a throw-away engine.
    (
        "server",
        &["model", "schema", "store", "engine", "validation"],
    ),
    (
        "cli",
        &[
            "model",
            "schema",
            "store",
            "engine",
            "validation",
            "sync",
            "server",
        ],
    ),
];

/// External crates only some files may name (as a path, `name::…`), by path prefix under
/// `src/`.
const CRATE_ONLY_IN: &[(&str, &[&str])] = &[
    ("sled", &["store/sled"]),
    ("axum", &["server/"]),
    ("hyper", &["server/"]),
    ("hyper_util", &["server/"]),
    ("h2", &["server/http2"]),
    ("utoipa", &["server/"]),
    ("utoipa_axum", &["server/"]),
    ("metrics_exporter_prometheus", &["server/"]),
];

/// Words a layer never uses: (files under this prefix, forbidden words, files excused
/// with the reason).
type Forbidden = (
    &'static str,
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
);

const NEVER_NAMED: &[Forbidden] = &[
    (
        "server/",
        &[
            "SledStore",
            "SledConfig",
            "MemoryStore",
            "FailingStore",
            "store::sled",
            "store::memory",
            "store::keys",
            "store::failing",
        ],
        &[],
    ),
    (
        "engine/",
        &["SledStore", "SledConfig", "store::sled", "store::keys"],
        // FIXME: `Arbiter::open`/`temporary` build the sled backend; choosing a backend
        // belongs at the edge (cli), which would leave the engine with the trait only.
        &[(
            "engine/mod.rs",
            "Arbiter::open and Arbiter::temporary construct the sled backend",
        )],
    ),
    ("schema/", &["Store", "Arbiter"], &[]),
];

fn sources() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|it| it == "rs") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&src(), &mut out);
    out.sort();
    out
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// `engine/check.rs` for a file under `src/`.
fn relative(path: &Path) -> String {
    path.strip_prefix(src())
        .unwrap()
        .to_string_lossy()
        .replace('\\', "/")
}

/// The module path of a file: `engine/check.rs` → `[engine, check]`, `engine/mod.rs` →
/// `[engine]`, `lib.rs` → `[]`.
fn module_path(relative: &str) -> Vec<String> {
    let trimmed = relative.trim_end_matches(".rs");
    let mut parts: Vec<String> = trimmed.split('/').map(str::to_string).collect();
    if parts
        .last()
        .is_some_and(|it| it == "mod" || it == "lib" || it == "main")
    {
        parts.pop();
    }
    parts
}

/// The code of a file without comments (a `//` inside a string cuts that line short,
/// which can only hide text, never invent a dependency).
fn code(text: &str) -> String {
    let mut out = String::new();
    let mut in_tests = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        // Unit tests at the bottom of a file may use anything.
        if trimmed.starts_with("#[cfg(test)]") {
            in_tests = true;
        }
        if in_tests {
            continue;
        }
        let line = match line.find("//") {
            Some(idx) => &line[..idx],
            None => line,
        };
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Top-level modules named through `crate::…` or `super::…` paths.
fn dependencies(code: &str, module: &[String]) -> BTreeSet<String> {
    let mut res = BTreeSet::new();
    let chars: Vec<char> = code.chars().collect();
    let text: String = chars.iter().collect();
    for (idx, _) in text.match_indices("crate::") {
        if idx > 0 && (is_ident(chars[idx - 1]) || chars[idx - 1] == ':') {
            continue;
        }
        let rest = &text[idx + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            res.extend(group_heads(group));
        } else {
            res.insert(rest.chars().take_while(|c| is_ident(*c)).collect());
        }
    }
    for (idx, _) in text.match_indices("super::") {
        if idx > 0 && (is_ident(chars[idx - 1]) || chars[idx - 1] == ':') {
            continue;
        }
        let mut rest = &text[idx..];
        let mut parent = module.to_vec();
        while let Some(next) = rest.strip_prefix("super::") {
            parent.pop();
            rest = next;
        }
        if let Some(top) = parent.first() {
            res.insert(top.clone());
        } else if let Some(group) = rest.strip_prefix('{') {
            res.extend(group_heads(group));
        } else {
            res.insert(rest.chars().take_while(|c| is_ident(*c)).collect());
        }
    }
    res.retain(|it| !it.is_empty() && it != "self");
    res
}

/// The first segment of every path in `a::b, c::{d, e}, f}` (up to the closing brace).
fn group_heads(group: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut at_start = true;
    let mut current = String::new();
    for c in group.chars() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => at_start = true,
            c if at_start && is_ident(c) => current.push(c),
            c if at_start && !c.is_whitespace() => {
                if !current.is_empty() {
                    heads.push(std::mem::take(&mut current));
                }
                at_start = false;
            }
            _ => {}
        }
    }
    if !current.is_empty() {
        heads.push(current);
    }
    heads
}

/// Whether `code` names the crate `name` as a path root (`name::…`, not `x::name::…`).
fn names_crate(code: &str, name: &str) -> bool {
    let pattern = format!("{name}::");
    code.match_indices(&pattern).any(|(idx, _)| {
        let before = code[..idx].chars().next_back();
        !before.is_some_and(|c| is_ident(c) || c == ':')
    })
}

/// Whether `code` contains `word` not as part of a longer identifier.
fn names_word(code: &str, word: &str) -> bool {
    code.match_indices(word).any(|(idx, _)| {
        let before = code[..idx].chars().next_back();
        let after = code[idx + word.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

#[test]
fn layers_depend_only_downwards() {
    let mut violations = Vec::new();
    for path in sources() {
        let relative = relative(&path);
        let module = module_path(&relative);
        let Some(top) = module.first() else {
            continue; // lib.rs and main.rs sit above every layer.
        };
        let Some((_, allowed)) = MAY_DEPEND_ON.iter().find(|(name, _)| name == top) else {
            violations.push(format!(
                "{relative}: module `{top}` has no row in MAY_DEPEND_ON"
            ));
            continue;
        };
        let code = code(&std::fs::read_to_string(&path).unwrap());
        for dependency in dependencies(&code, &module) {
            if &dependency != top && !allowed.contains(&dependency.as_str()) {
                violations.push(format!("{relative}: `{top}` depends on `{dependency}`"));
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn crates_are_named_only_where_the_architecture_says() {
    let mut violations = Vec::new();
    for path in sources() {
        let relative = relative(&path);
        let code = code(&std::fs::read_to_string(&path).unwrap());
        for (name, places) in CRATE_ONLY_IN {
            if names_crate(&code, name) && !places.iter().any(|it| relative.starts_with(it)) {
                violations.push(format!("{relative}: names `{name}`"));
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn layers_never_name_what_lies_below_their_interface() {
    let mut violations = Vec::new();
    for path in sources() {
        let relative = relative(&path);
        let code = code(&std::fs::read_to_string(&path).unwrap());
        for (prefix, words, excused) in NEVER_NAMED {
            if !relative.starts_with(prefix) || excused.iter().any(|(file, _)| *file == relative) {
                continue;
            }
            for word in *words {
                if names_word(&code, word) {
                    violations.push(format!("{relative}: names `{word}`"));
                }
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

/// The checker itself: a rule that cannot fail proves nothing.
#[test]
fn the_checker_sees_dependencies_and_names() {
    let module = module_path("engine/check.rs");
    let cases: &[(&str, &[&str])] = &[
        ("use crate::store::Store;", &["store"]),
        (
            "use crate::{model::ObjectRef, schema::{Schema, X}};",
            &["model", "schema"],
        ),
        ("use super::index::Index;", &["engine"]),
        ("let it = crate::server::router(state);", &["server"]),
        ("// use crate::server::x;", &[]),
        ("arbiter::crate::x", &[]),
    ];
    for (text, want) in cases {
        let got = dependencies(&code(text), &module);
        let want: BTreeSet<String> = want.iter().map(|it| it.to_string()).collect();
        assert_eq!(got, want, "{text}");
    }
    assert_eq!(
        dependencies(
            "use super::super::server::x;",
            &module_path("store/sled/write.rs")
        ),
        ["store".to_string()].into_iter().collect()
    );
    assert_eq!(
        dependencies("use super::model::X;", &module_path("engine/mod.rs")),
        ["model".to_string()].into_iter().collect()
    );
    assert!(names_crate("use sled::Db;", "sled"));
    assert!(!names_crate("pub use self::sled::SledStore;", "sled"));
    assert!(!names_crate("let sled = 1;", "sled"));
    assert!(names_word("let s: SledStore;", "SledStore"));
    assert!(!names_word("let s: SledStoreX;", "SledStore"));
}
