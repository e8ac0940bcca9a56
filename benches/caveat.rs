//! Caveat evaluation latency: one evaluation of an IP allow-list caveat (stored list of
//! networks, request ip), a single-network caveat, and a partial evaluation that ends
//! missing. The caveat is compiled once, outside the loop, as the schema compiler does.
//!
//! Run: `cargo bench --bench caveat`

use std::hint::black_box;

use arbiter::caveat::{CaveatParam, CompiledCaveat, ParamType};
use criterion::Criterion;
use serde_json::json;

fn caveat(name: &str, params: &[(&str, &str)], expression: &str) -> CompiledCaveat {
    let params = params
        .iter()
        .map(|(name, ty)| CaveatParam {
            name: (*name).to_string(),
            ty: ParamType::parse(ty).expect("type"),
        })
        .collect();
    CompiledCaveat::compile(name, params, expression).expect("caveat compiles")
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    let one_cidr = caveat(
        "ip_allowlist",
        &[("cidr", "string"), ("ip", "ipaddress")],
        "ip.in_cidr(cidr)",
    );
    let allowlist = caveat(
        "ip_allowlist",
        &[("cidrs", "list<string>"), ("ip", "ipaddress")],
        "cidrs.exists(c, ip.in_cidr(c))",
    );
    let two = caveat("two", &[("a", "int"), ("b", "int")], "a == 1 && b == 2");

    let stored_one = json!({"cidr": "10.0.0.0/8"});
    let stored_list = json!({"cidrs": ["192.168.0.0/16", "172.16.0.0/12", "10.0.0.0/8"]});
    let request = json!({"ip": "10.1.2.3"});
    let partial = json!({"a": 1});

    let mut group = criterion.benchmark_group("caveat");
    group.bench_function("ip_in_one_cidr", |b| {
        b.iter(|| {
            one_cidr
                .evaluate(
                    black_box(stored_one.as_object()),
                    black_box(request.as_object()),
                )
                .expect("evaluates")
        })
    });
    group.bench_function("ip_in_allowlist_of_3", |b| {
        b.iter(|| {
            allowlist
                .evaluate(
                    black_box(stored_list.as_object()),
                    black_box(request.as_object()),
                )
                .expect("evaluates")
        })
    });
    group.bench_function("partial_and_missing", |b| {
        b.iter(|| {
            two.evaluate(None, black_box(partial.as_object()))
                .expect("evaluates")
        })
    });
    group.finish();
    criterion.final_summary();
}
