//! A seeded generator of relationships modelled on the DESIGN §1 scenarios (the schema is
//! the peer SpiceDB bench's, `../shared/peers/spicedb/bench.py`): organizations with nested
//! teams, projects, processing services with API keys in tiers, ML models with public ones.
//! Plus fixtures for "latency vs depth" (group chains) and a lookup that returns 10,000
//! resources.

#![allow(dead_code)]

use arbiter::engine::{Arbiter, CheckRequest, Config};
use arbiter::model::Relationship;

pub const SCHEMA: &str = "\
definition user {}
definition apikey {}
definition group {
    relation member: user | group#member
}
definition organization {
    relation admin: user | group#member
    relation member: user | group#member
    relation suspended: user
    permission manage = admin
    permission view = (member + admin) - suspended
}
definition project {
    relation org: organization
    relation manager: user | group#member
    relation member: user | group#member
    permission manage = manager + org->manage
    permission view = (member + manage) & org->view
}
definition service {
    relation project: project
    relation reader: apikey
    relation read_write: apikey
    relation full_access: apikey
    permission delete = full_access
    permission write = read_write + full_access
    permission read = reader + write
    permission manage_apikey = project->manage
    permission view = project->view
}
definition model {
    relation project: project
    relation guest: user | user:* | group#member | apikey
    relation contributor: user | group#member | apikey
    permission execute = guest + contributor
    permission edit = contributor
    permission view = execute + project->view
}
";

/// Deepest group chain of the depth fixture.
pub const MAX_CHAIN: usize = 5;

/// Resources the big lookup returns.
pub const BIG_LOOKUP: usize = 10_000;

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

const USERS_PER_ORG: usize = 100;
const TEAMS_PER_ORG: usize = 10;
const PROJECTS_PER_ORG: usize = 20;
const SERVICES_PER_ORG: usize = 20;
const MODELS_PER_ORG: usize = 30;
/// Measured: about this many relationships per organization.
const RELS_PER_ORG: usize = 520;

fn rel(text: String) -> Relationship {
    text.parse()
        .unwrap_or_else(|err| panic!("generated `{text}`: {err}"))
}

/// About `target` relationships, deterministic for a seed. Pass `extra` to add the depth
/// and big-lookup fixtures.
pub fn relationships(target: usize, seed: u64, extra: bool) -> Vec<Relationship> {
    let mut rng = Rng::new(seed);
    let n_orgs = (target / RELS_PER_ORG).max(1);
    let mut out = Vec::with_capacity(target + BIG_LOOKUP * 2);
    for o in 0..n_orgs {
        let user = |u: usize| format!("user:o{o}u{u}");
        let team = |t: usize| format!("group:o{o}t{t}#member");
        // Teams: a binary tree (team k inside team (k-1)/2), all inside `all`.
        for t in 1..TEAMS_PER_ORG {
            out.push(rel(format!(
                "group:o{o}t{}#member@{}",
                (t - 1) / 2,
                team(t)
            )));
        }
        out.push(rel(format!("group:o{o}all#member@{}", team(0))));
        for u in 0..USERS_PER_ORG {
            out.push(rel(format!(
                "{}@{}",
                team(rng.below(TEAMS_PER_ORG)),
                user(u)
            )));
            if rng.chance(50) {
                out.push(rel(format!(
                    "{}@{}",
                    team(rng.below(TEAMS_PER_ORG)),
                    user(u)
                )));
            }
        }
        let org = format!("organization:o{o}");
        out.push(rel(format!("{org}#admin@group:o{o}t1#member")));
        out.push(rel(format!("{org}#member@group:o{o}all#member")));
        for _ in 0..2 {
            out.push(rel(format!(
                "{org}#suspended@{}",
                user(rng.below(USERS_PER_ORG))
            )));
        }
        for p in 0..PROJECTS_PER_ORG {
            let project = format!("project:o{o}p{p}");
            out.push(rel(format!("{project}#org@{org}")));
            out.push(rel(format!(
                "{project}#manager@{}",
                user(rng.below(USERS_PER_ORG))
            )));
            out.push(rel(format!(
                "{project}#member@{}",
                team(rng.below(TEAMS_PER_ORG))
            )));
            out.push(rel(format!(
                "{project}#member@{}",
                team(rng.below(TEAMS_PER_ORG))
            )));
        }
        for s in 0..SERVICES_PER_ORG {
            let service = format!("service:o{o}s{s}");
            for _ in 0..1 + rng.below(3) {
                let p = rng.below(PROJECTS_PER_ORG);
                out.push(rel(format!("{service}#project@project:o{o}p{p}")));
            }
            out.push(rel(format!("{service}#reader@apikey:o{o}s{s}k0")));
            out.push(rel(format!("{service}#read_write@apikey:o{o}s{s}k1")));
            out.push(rel(format!("{service}#full_access@apikey:o{o}s{s}k2")));
        }
        for m in 0..MODELS_PER_ORG {
            let model = format!("model:o{o}m{m}");
            let p = rng.below(PROJECTS_PER_ORG);
            out.push(rel(format!("{model}#project@project:o{o}p{p}")));
            if rng.chance(15) {
                out.push(rel(format!("{model}#guest@user:*")));
            } else {
                out.push(rel(format!(
                    "{model}#guest@{}",
                    user(rng.below(USERS_PER_ORG))
                )));
            }
            out.push(rel(format!(
                "{model}#contributor@{}",
                team(rng.below(TEAMS_PER_ORG))
            )));
            out.push(rel(format!(
                "{model}#contributor@{}",
                user(rng.below(USERS_PER_ORG))
            )));
        }
    }
    if extra {
        // Depth fixture: model:chain{d} is executable by user:deep{d} through a chain of
        // d nested groups.
        for d in 1..=MAX_CHAIN {
            out.push(rel(format!("model:chain{d}#guest@group:chain{d}g0#member")));
            for level in 1..d {
                out.push(rel(format!(
                    "group:chain{d}g{}#member@group:chain{d}g{level}#member",
                    level - 1
                )));
            }
            out.push(rel(format!("group:chain{d}g{}#member@user:deep{d}", d - 1)));
        }
        // Big lookup fixture: user:looker may execute BIG_LOOKUP models through a group.
        out.push(rel("group:lookers#member@user:looker".to_string()));
        for i in 0..BIG_LOOKUP {
            out.push(rel(format!("model:big{i}#guest@group:lookers#member")));
        }
    }
    out
}

/// `n` check requests over the generated data: a mix of the scenarios, about half allowed.
pub fn checks(target: usize, seed: u64, n: usize) -> Vec<CheckRequest> {
    let mut rng = Rng::new(seed ^ 0xC4EC);
    let n_orgs = (target / RELS_PER_ORG).max(1);
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let o = rng.below(n_orgs);
        let user = format!("user:o{o}u{}", rng.below(USERS_PER_ORG));
        let (resource, permission, subject) = match rng.below(6) {
            0 => (
                format!("model:o{o}m{}", rng.below(MODELS_PER_ORG)),
                "execute",
                user,
            ),
            1 => (
                format!("model:o{o}m{}", rng.below(MODELS_PER_ORG)),
                "view",
                user,
            ),
            2 => (
                format!("project:o{o}p{}", rng.below(PROJECTS_PER_ORG)),
                "view",
                user,
            ),
            3 => {
                let s = rng.below(SERVICES_PER_ORG);
                let key = format!("apikey:o{o}s{s}k{}", rng.below(3));
                (format!("service:o{o}s{s}"), "write", key)
            }
            4 => (
                format!("service:o{o}s{}", rng.below(SERVICES_PER_ORG)),
                "manage_apikey",
                user,
            ),
            _ => (format!("organization:o{o}"), "view", user),
        };
        out.push(request(&resource, permission, &subject));
    }
    out
}

/// Reads every byte of `request` (its strings and their headers), so that it is in the
/// cache when it is asked, as a request a server has just parsed is. Timed loops call it
/// before starting the clock.
pub fn warm(request: &CheckRequest) {
    let strings = [
        request.resource.object_type.as_str(),
        request.resource.object_id.as_str(),
        request.permission.as_str(),
        request.subject.object.object_type.as_str(),
        request.subject.object.object_id.as_str(),
        request.subject.relation.as_deref().unwrap_or(""),
    ];
    let sum = strings
        .iter()
        .flat_map(|it| it.bytes())
        .fold(0u8, u8::wrapping_add);
    std::hint::black_box(sum);
}

pub fn request(resource: &str, permission: &str, subject: &str) -> CheckRequest {
    CheckRequest {
        resource: resource.parse().expect("generated resource"),
        permission: permission.to_string(),
        subject: subject.parse().expect("generated subject"),
        context: None,
    }
}

/// An in-memory engine loaded with about `target` relationships (and the fixtures).
pub fn engine(target: usize, cache_capacity: usize) -> (Arbiter, usize) {
    let config = Config {
        cache_capacity,
        ..Config::default()
    };
    let engine = Arbiter::in_memory(config).expect("open engine");
    engine.write_schema(SCHEMA).expect("schema");
    let rels = relationships(target, 42, true);
    let n = rels.len();
    engine.import(&mut rels.into_iter()).expect("import");
    (engine, n)
}

/// The sizes `ARBITER_BENCH_SIZES` names (comma-separated relationship counts), or
/// `default`.
pub fn sizes(default: &[usize]) -> Vec<usize> {
    std::env::var("ARBITER_BENCH_SIZES")
        .ok()
        .map(|it| {
            it.split(',')
                .filter_map(|n| n.trim().parse().ok())
                .collect()
        })
        .unwrap_or_else(|| default.to_vec())
}

/// Percentiles of `samples` (nanoseconds): p50, p90, p99, p99.9.
pub fn percentiles(samples: &mut [u64]) -> [u64; 4] {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    [at(0.5), at(0.9), at(0.99), at(0.999)]
}

/// Resident memory of this process in MiB, from /proc (Linux).
pub fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmRSS:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}
