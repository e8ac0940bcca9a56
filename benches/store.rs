//! Store benchmarks on generated data of 10k, 100k and 1M relationships (set
//! `ARBITER_BENCH_SIZES=10000,100000` to skip the large one): sled forward read of one
//! (resource, relation), reverse read of one subject, with criterion; and, printed by
//! hand, the bulk import rate, durable 10-relationship write latency p50/p99 (a loop of
//! 500 writes), bytes on disk per relationship and resident memory.
//!
//! Data: `doc:dI#viewer@user:uJ`, ten viewers per document and each user a viewer of about
//! ten documents, so both reads return about ten tuples.
//!
//! Run: `cargo bench --bench store`. `ARBITER_BENCH_IMPORT_ONLY=1` stops after the import
//! figures; `ARBITER_BENCH_CACHE_MIB=N` sets sled's page cache; `ARBITER_BENCH_DIR=D`
//! keeps the data sets for the next run.

use std::hint::black_box;
use std::time::{Duration, Instant};

use arbiter::model::{ObjectRef, Relationship, Revision, SubjectRef};
use arbiter::store::{SledConfig, SledStore, Store, Update, UpdateOp};
use criterion::{Criterion, criterion_group, criterion_main};

const FAN_OUT: usize = 10;

fn sizes() -> Vec<usize> {
    std::env::var("ARBITER_BENCH_SIZES")
        .ok()
        .map(|it| {
            it.split(',')
                .filter_map(|n| n.trim().parse().ok())
                .collect()
        })
        .unwrap_or_else(|| vec![10_000, 100_000, 1_000_000])
}

/// The `idx`-th generated relationship of a data set of `n`.
fn generated(n: usize, idx: usize) -> Relationship {
    let n_docs = n / FAN_OUT;
    let doc = idx / FAN_OUT;
    let slot = idx % FAN_OUT;
    // Spread each document's viewers over the users so reverse reads are also ~FAN_OUT.
    let user = (doc + slot * (n_docs / FAN_OUT + 1)) % n_docs.max(1);
    Relationship {
        resource: ObjectRef {
            object_type: "doc".into(),
            object_id: format!("d{doc}"),
        },
        relation: "viewer".into(),
        subject: SubjectRef {
            object: ObjectRef {
                object_type: "user".into(),
                object_id: format!("u{user}"),
            },
            relation: None,
        },
        caveat: None,
        expiration: None,
    }
}

/// A tiny deterministic generator (xorshift) so the benches need no extra crate.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|it| it.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

fn bench_store(c: &mut Criterion) {
    for n in sizes() {
        // `ARBITER_BENCH_DIR=D` keeps each data set in `D/N` and reuses it on the next run,
        // so that a second run measures a store opened fresh (its resident memory then
        // excludes the import's freed change sets, which the allocator keeps).
        let temp = tempfile::tempdir().expect("tempdir");
        let path = match std::env::var_os("ARBITER_BENCH_DIR") {
            Some(dir) => std::path::PathBuf::from(dir).join(n.to_string()),
            None => temp.path().to_path_buf(),
        };
        let mut config = SledConfig {
            gc_interval: None,
            ..SledConfig::new(&path)
        };
        if let Some(mib) = std::env::var("ARBITER_BENCH_CACHE_MIB")
            .ok()
            .and_then(|it| it.parse::<u64>().ok())
        {
            config.cache_capacity = mib * 1024 * 1024;
        }
        let store = SledStore::open(&config).expect("open");
        if store.head().expect("head") == Revision(0) {
            let start = Instant::now();
            let sets = store
                .import(&mut (0..n).map(|idx| generated(n, idx)))
                .expect("import");
            let elapsed = start.elapsed();
            println!(
                "store/{n}: bulk import {n} relationships in {:.2} s = {:.0} relationships/s ({} revisions)",
                elapsed.as_secs_f64(),
                n as f64 / elapsed.as_secs_f64(),
                sets.len()
            );
        } else {
            println!("store/{n}: reusing the data set in {}", path.display());
        }
        if std::env::var_os("ARBITER_BENCH_IMPORT_ONLY").is_some() {
            continue;
        }
        store.flush().expect("flush");
        let head = store.head().expect("head");
        let bytes = store.size_on_disk().expect("size");
        println!(
            "store/{n}: {bytes} bytes on disk = {:.0} bytes/relationship",
            bytes as f64 / n as f64
        );

        let n_docs = n / FAN_OUT;
        let mut group = c.benchmark_group(format!("store/{n}"));
        group.measurement_time(Duration::from_secs(3));
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let docs: Vec<ObjectRef> = (0..1024)
            .map(|_| ObjectRef {
                object_type: "doc".into(),
                object_id: format!("d{}", rng.below(n_docs)),
            })
            .collect();
        let users: Vec<SubjectRef> = (0..1024)
            .map(|_| SubjectRef {
                object: ObjectRef {
                    object_type: "user".into(),
                    object_id: format!("u{}", rng.below(n_docs)),
                },
                relation: None,
            })
            .collect();
        let mut idx = 0;
        group.bench_function("forward_read", |b| {
            b.iter(|| {
                idx = (idx + 1) % docs.len();
                let res = store
                    .subjects(black_box(&docs[idx]), "viewer", head)
                    .expect("read");
                black_box(res)
            })
        });
        group.bench_function("reverse_read", |b| {
            b.iter(|| {
                idx = (idx + 1) % users.len();
                let res = store
                    .resources(black_box(&users[idx]), Some("doc"), Some("viewer"), head)
                    .expect("read");
                black_box(res)
            })
        });
        group.finish();

        // Durable 10-relationship writes on top of the loaded data.
        let mut latencies = Vec::with_capacity(500);
        for round in 0..500 {
            let updates: Vec<Update> = (0..10)
                .map(|i| Update {
                    op: UpdateOp::Touch,
                    relationship: Relationship {
                        resource: ObjectRef {
                            object_type: "doc".into(),
                            object_id: format!("w{round}_{}", head.0),
                        },
                        relation: "viewer".into(),
                        subject: SubjectRef {
                            object: ObjectRef {
                                object_type: "user".into(),
                                object_id: format!("u{i}"),
                            },
                            relation: None,
                        },
                        caveat: None,
                        expiration: None,
                    },
                })
                .collect();
            let start = Instant::now();
            store
                .write(&updates, &[])
                .expect("write")
                .expect("rejected");
            latencies.push(start.elapsed());
        }
        latencies.sort();
        println!(
            "store/{n}: durable 10-relationship write p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            percentile(&latencies, 0.50).as_secs_f64() * 1e3,
            percentile(&latencies, 0.99).as_secs_f64() * 1e3,
            percentile(&latencies, 1.0).as_secs_f64() * 1e3,
        );
        if let Some(rss) = rss_kib() {
            println!("store/{n}: resident memory {:.0} MiB", rss as f64 / 1024.0);
        }
    }
}

criterion_group!(benches, bench_store);
criterion_main!(benches);
