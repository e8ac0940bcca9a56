//! The one-node dataset of issue 14 (docs/BENCHMARKS.md, "One node at 1M and 10M"): `n`
//! distinct relationships over users, groups and documents, in the proportions of the
//! peer workload's document sharing — 20% group memberships, 20% documents shared with a
//! group, 20% document owners, 40% documents shared with a user — with ids drawn from
//! pools that grow with `n` (a tenth of `n` users, a fiftieth groups, a quarter
//! documents), from a fixed seed: the same `n` always gives the same file.

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;

use anyhow::Context;

use crate::scenario::Rng;

/// The schema of the dataset.
pub const SCHEMA: &str = "definition user {}
definition group {
    relation member: user | group#member
}
definition document {
    relation viewer: user | group#member
    relation owner: user
    permission view = viewer | owner
}
";

/// Writes `dir/schema.zed` and `dir/relationships.txt` (one relationship per line).
pub fn write(n: usize, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    std::fs::write(dir.join("schema.zed"), SCHEMA)?;
    let path = dir.join("relationships.txt");
    let file =
        std::fs::File::create(&path).with_context(|| format!("create {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let users = (n / 10).max(1);
    let groups = (n / 50).max(1);
    let documents = (n / 4).max(1);
    let mut rng = Rng::new(7);
    let mut seen: HashSet<(u8, usize, usize)> = HashSet::with_capacity(n);
    let mut written = 0;
    while written < n {
        let roll = rng.below(10);
        let (kind, object, subject) = match roll {
            0 | 1 => (0, rng.below(groups), rng.below(users)),
            2 | 3 => (1, rng.below(documents), rng.below(groups)),
            4 | 5 => (2, rng.below(documents), rng.below(users)),
            _ => (3, rng.below(documents), rng.below(users)),
        };
        if !seen.insert((kind, object, subject)) {
            continue;
        }
        match kind {
            0 => writeln!(out, "group:g{object}#member@user:u{subject}")?,
            1 => writeln!(out, "document:d{object}#viewer@group:g{subject}#member")?,
            2 => writeln!(out, "document:d{object}#owner@user:u{subject}")?,
            _ => writeln!(out, "document:d{object}#viewer@user:u{subject}")?,
        }
        written += 1;
    }
    out.flush()?;
    Ok(())
}
