//! Criterion benchmarks: normalize alone, the whole pipeline (normalize → correlate → detect → decide), and the
//! baseline a naive consumer pays just to parse the same lines into `serde_json::Value`.
//! Input: `fixtures/scenarios/demo_day/events.jsonl` (mixed Okta, Google Workspace, Kong, OTel GenAI). Run: `cargo bench`.

#![allow(clippy::unwrap_used)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use quench::config::Config;
use quench::event::{Provenance, Ts};
use quench::normalize::{Context, Normalize};
use quench::pipeline::Pipeline;

fn lines() -> Vec<String> {
    let p = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/scenarios/demo_day/events.jsonl"
    );
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

fn bench(c: &mut Criterion) {
    let lines = lines();
    let bytes: u64 = lines.iter().map(|l| l.len() as u64).sum();
    let mut g = c.benchmark_group("demo_day");
    g.throughput(Throughput::Bytes(bytes));
    g.sample_size(20);
    g.bench_function("serde_json_value_parse_only", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for l in &lines {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(l) {
                    n += v.as_object().map_or(0, |o| o.len());
                }
            }
            n
        })
    });
    let norm = Normalize::new(&Default::default()).unwrap_or_else(|e| panic!("{e}"));
    g.bench_function("normalize", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for l in &lines {
                let ctx = Context::new(Provenance::None, Ts(0));
                let mut out = Vec::new();
                if norm.normalize(l.as_bytes(), None, &ctx, &mut out).is_ok() {
                    n += out.len();
                }
            }
            n
        })
    });
    g.bench_function("pipeline", |b| {
        b.iter(|| {
            let mut p = Pipeline::new(&Config::default()).unwrap_or_else(|e| panic!("{e}"));
            let mut out = Vec::new();
            for l in &lines {
                let _ = p.process(l.as_bytes(), None, Provenance::None, Ts(0), &mut out);
            }
            out.len()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
