//! Benchmarks of the pipeline.
//!
//! `cargo bench --bench pipeline` (criterion): normalize alone, the whole pipeline (normalize → correlate → detect
//! → decide), and the baseline a naive consumer pays just to parse the same lines into `serde_json::Value`, over
//! `fixtures/scenarios/demo_day/events.jsonl` (mixed Okta, Google Workspace, Kong, OTel GenAI).
//!
//! `cargo bench --bench pipeline -- state`: the time to save and to load learned state of at least a million keys,
//! and its bytes per key.
//!
//! `cargo bench --bench pipeline -- flood` (a few minutes, not part of the default run): the key-flood attack on
//! the whole pipeline. Ten million Kong `http-log` lines, each an unauthenticated request with its own
//! `x-token-id`, against the same ten million lines over 100 tokens: events/s over the first and the last million,
//! and the total time of each. Then the resident memory the pipeline's state takes per tracked token, for short user
//! agents and for 40 KB ones. Prints a table; panics if any line was not processed as one event.
//!
//! `cargo bench --bench pipeline -- evidence [ROUNDS]` (about 5 s a round, 20 rounds unless told): what the
//! evidence store costs the pipeline's thread, told apart from the machine's noise. Each round runs the demo day 20
//! times in each of four ways, one after the other: without a store; with one (values recorded on the pipeline's
//! thread, the default); with one remaking events on its writer's thread (`remake_on_writer`); and without a store
//! while another thread keeps the other core busy (what any work beside the pipeline costs it on this machine). It
//! prints, per way, the median and quartiles over the rounds of the pipeline thread's CPU time and wall time
//! against the same round's run without a store, and the writer thread's CPU time against the pipeline's. Linux
//! only (it reads /proc/thread-self/schedstat).
//!
//! `cargo bench --bench pipeline -- store-replay [ROUNDS] [DAYS]` (10 rounds of 14 days unless told; about 25 s a
//! round of 14 days here): the same question for a whole `quench replay` of the built binary, over `DAYS` simulated
//! days of 1,000 people and 100 agents (seed 1). Each round runs the replay without a store and with one (a new
//! directory), in alternating order. It prints the median and quartiles of the main thread's CPU time (the
//! pipeline's; read from `/proc/PID/task/PID/schedstat` every 5 ms), wall time, the process's and the writer
//! thread's CPU time and the peak resident memory; the store's cost pair by pair; and, from the sign test's
//! interval for the median slowdown (at least 95 % coverage, no assumption about the noise's distribution), whether
//! the store is within the goal of 10 %, over it, or undecided on this machine. Linux only.
//!
//! Before timing anything, the criterion run checks its input: 99 % of the lines normalize and the
//! pipeline decides something over them. `cargo test` builds this bench and runs each benchmark once (criterion's
//! test mode), so a bench that no longer compiles or times nothing fails the tests; there a mode's word
//! (`cargo test evidence`) is only a test filter, since the modes run when `cargo bench` passes `--bench`.

#![allow(clippy::unwrap_used)]

use criterion::{Criterion, Throughput};
use quench::config::Config;
use quench::event::{Provenance, Ts};
use quench::normalize::{Context, Normalize};
use quench::pipeline::Pipeline;
use std::fmt::Write;
use std::time::Instant;

/// When the demo day's lines are read: the evening after (an ingest time before the events would reject every one
/// of them as dated in the future).
fn ingest_time() -> Ts {
    Ts::parse("2026-11-02T23:00:00Z").unwrap_or(Ts(0))
}

fn lines() -> Vec<String> {
    let p = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/scenarios/demo_day/events.jsonl"
    );
    let lines: Vec<String> = std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{p}: {e}"))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(String::from)
        .collect();
    // a benchmark over no lines, or over lines that fail to normalize, would time nothing and say nothing
    assert!(lines.len() >= 100, "{p}: only {} lines", lines.len());
    // the demo day holds a few deliberately bad lines; the rest must each give an event
    let norm = Normalize::new(&Default::default()).unwrap_or_else(|e| panic!("{e}"));
    let mut events = 0;
    for l in &lines {
        let ctx = Context::new(Provenance::None, Ts(0));
        let mut out = Vec::new();
        if norm.normalize(l.as_bytes(), None, &ctx, &mut out).is_ok() {
            events += out.len();
        }
    }
    assert!(
        events * 100 >= lines.len() * 99,
        "{p}: {events} events from {} lines",
        lines.len()
    );
    let mut pipeline = Pipeline::new(&Config::default()).unwrap_or_else(|e| panic!("{e}"));
    let mut out = Vec::new();
    for l in &lines {
        let _ = pipeline.process(
            l.as_bytes(),
            None,
            Provenance::None,
            ingest_time(),
            &mut out,
        );
    }
    assert!(
        pipeline.stats.decisions.values().sum::<u64>() > 0,
        "the pipeline over {p} decided nothing: {:?}",
        pipeline.stats
    );
    lines
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
    let at = ingest_time();
    g.bench_function("pipeline", |b| {
        b.iter(|| {
            let mut p = Pipeline::new(&Config::default()).unwrap_or_else(|e| panic!("{e}"));
            let mut out = Vec::new();
            for l in &lines {
                let _ = p.process(l.as_bytes(), None, Provenance::None, at, &mut out);
            }
            out.len()
        })
    });
    // the same with the evidence store attached: rows appended on this thread, Parquet written on the writer's
    // thread meanwhile (its bounded queue makes this thread wait when it falls behind); files are sealed once,
    // after the timing, as a checkpoint every few seconds would
    let store = std::env::temp_dir().join(format!("quench-bench-evidence-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&store);
    let mut cfg = Config::default();
    cfg.evidence.dir = Some(store.clone());
    cfg.evidence.remake_on_writer = true;
    let mut kept = Some(
        quench::evidence::Evidence::open(&cfg.evidence, &store).unwrap_or_else(|e| panic!("{e}")),
    );
    // every value recorded on this thread (the default), and events kept as their messages (`remake_on_writer`:
    // made again on the writer's thread, values recorded here while it is behind)
    for (name, values) in [
        ("pipeline_with_evidence", true),
        ("pipeline_with_evidence_remade", false),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut p = Pipeline::new(&cfg).unwrap_or_else(|e| panic!("{e}"));
                if let Some(e) = kept.take() {
                    p.store_evidence(e);
                }
                if values {
                    if let Some(e) = p.evidence() {
                        e.normalize_with(None);
                    }
                }
                let mut out = Vec::new();
                for l in &lines {
                    let _ = p.process(l.as_bytes(), None, Provenance::None, at, &mut out);
                }
                kept = p.take_evidence();
                out.len()
            })
        });
    }
    g.finish();
    if let Some(e) = kept.take() {
        e.close(None).unwrap_or_else(|e| panic!("{e}"));
    }
    let stored =
        quench::evidence::read::table(&store, quench::evidence::tables::TableKind::Events, None)
            .unwrap_or_else(|e| panic!("{e}"));
    let rows: usize = stored.iter().map(|b| b.num_rows()).sum();
    // every iteration of both stores the day's events again (at least 99 % of its lines are events, checked
    // above)
    assert!(
        rows * 100 >= lines.len() * 99,
        "the store holds {rows} events of {} lines",
        lines.len()
    );
    let _ = std::fs::remove_dir_all(&store);
}

/// The key-flood measurement.
mod flood {
    use super::*;

    const EVENTS: u64 = 10_000_000;
    const MILLION: u64 = 1_000_000;
    /// 2026-11-02T00:00:00Z; one request a millisecond of event time.
    const T0: i64 = 1_793_577_600_000;

    /// A token id of the usual length (36 bytes) for request `i`.
    fn token(buf: &mut String, i: u64) {
        buf.clear();
        let _ = write!(buf, "tok-{:032x}", i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    }

    /// A Kong `http-log` line of an unauthenticated request (no consumer, no authenticated entity) naming its
    /// token in the `x-token-id` header: the attack's shape.
    fn kong_line(buf: &mut String, token: &str, user_agent: &str, ms: i64) {
        buf.clear();
        let _ = write!(
            buf,
            r#"{{"request":{{"method":"GET","uri":"/v1/items?page=2","size":120,"headers":{{"host":"api.example.com","user-agent":"{user_agent}","x-token-id":"{token}"}}}},"upstream_uri":"/v1/items","response":{{"status":200,"size":2048}},"client_ip":"203.0.113.9","started_at":{ms},"latencies":{{"proxy":12,"kong":2,"request":14}},"service":{{"name":"projects-api","host":"projects.internal"}},"route":{{"name":"items"}},"workspace":"default"}}"#
        );
    }

    struct Feed {
        p: Pipeline,
        out: Vec<quench::decide::Decision>,
        line: String,
        tok: String,
        events: u64,
        decisions: u64,
    }

    impl Feed {
        fn new() -> Feed {
            Feed {
                p: Pipeline::new(&Config::default()).unwrap_or_else(|e| panic!("{e}")),
                out: Vec::new(),
                line: String::new(),
                tok: String::new(),
                events: 0,
                decisions: 0,
            }
        }

        /// Request `i` with token number `key` (the token ids of two numbers differ).
        fn send(&mut self, i: u64, key: u64, user_agent: &str) {
            token(&mut self.tok, key);
            kong_line(&mut self.line, &self.tok, user_agent, T0 + i as i64);
            let prov = Provenance::Kafka {
                topic: "kong-http-log".into(),
                partition: 0,
                offset: i as i64,
            };
            match self.p.process(
                self.line.as_bytes(),
                None,
                prov,
                Ts(T0 + i as i64),
                &mut self.out,
            ) {
                Ok(n) => self.events += n as u64,
                Err(e) => panic!("line {i} was rejected: {e}\n{}", self.line),
            }
            self.decisions += self.out.len() as u64;
            self.out.clear();
        }

        fn expect_events(&self, n: u64, what: &str) {
            assert_eq!(
                self.events, n,
                "{what}: the pipeline processed {} events of {n} lines",
                self.events
            );
        }
    }

    /// Resident memory of this process, in bytes (`VmRSS` of /proc/self/status).
    fn rss() -> u64 {
        let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        s.lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .unwrap_or_else(|| panic!("no VmRSS in /proc/self/status"))
    }

    /// Nanoseconds this thread has run on a CPU (`/proc/thread-self/schedstat`): unlike the wall clock, not
    /// inflated by other processes sharing the cores.
    pub(super) fn cpu_ns() -> u64 {
        let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
        s.split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no /proc/thread-self/schedstat"))
    }

    /// Seconds on the wall clock and on this thread's CPU since a mark.
    #[derive(Clone, Copy)]
    struct Mark(Instant, u64);

    impl Mark {
        fn now() -> Mark {
            Mark(Instant::now(), cpu_ns())
        }
        /// (wall, cpu) seconds since `self`.
        fn since(self) -> (f64, f64) {
            let now = Mark::now();
            (
                now.0.duration_since(self.0).as_secs_f64(),
                (now.1 - self.1) as f64 / 1e9,
            )
        }
    }

    struct Run {
        first: (f64, f64),
        last: (f64, f64),
        total: (f64, f64),
        rss_after_first: u64,
        rss_end: u64,
        decisions: u64,
    }

    /// Ten million requests; request `i` carries token number `key(i)`.
    fn run(what: &str, key: impl Fn(u64) -> u64) -> Run {
        let mut f = Feed::new();
        let start = Mark::now();
        let (mut first, mut rss_after_first, mut last_start) = ((0.0, 0.0), 0, start);
        for i in 0..EVENTS {
            if i == MILLION {
                first = start.since();
                rss_after_first = rss();
            }
            if i == EVENTS - MILLION {
                last_start = Mark::now();
            }
            f.send(i, key(i), "sync-client/1.2 (linux)");
        }
        let (total, last) = (start.since(), last_start.since());
        f.expect_events(EVENTS, what);
        Run {
            first,
            last,
            total,
            rss_after_first,
            rss_end: rss(),
            decisions: f.decisions,
        }
    }

    /// Resident bytes of state per token: `tokens` distinct tokens each sent once with `user_agent`, after a
    /// warm-up, divided by `tokens`. Every one stays tracked (fewer than the claimed-key pool of the token-keyed
    /// detectors, 125,000 by default).
    fn bytes_per_token(tokens: u64, user_agent: &str) -> f64 {
        let mut f = Feed::new();
        for i in 0..1000 {
            f.send(i, u64::MAX - (i % 10), "warm-up/1.0");
        }
        let before = rss();
        for i in 0..tokens {
            f.send(1000 + i, i, user_agent);
        }
        let after = rss();
        f.expect_events(1000 + tokens, "bytes per token");
        drop(f);
        after.saturating_sub(before) as f64 / tokens as f64
    }

    /// One measurement, by name, in this process; prints one JSON line.
    pub fn part(name: &str) {
        let result = match name {
            "bytes-short" => serde_json::json!({
                "bytes_per_token": bytes_per_token(100_000, "sync-client/1.2 (linux)")
            }),
            "bytes-40k" | "bytes-40k-20k" => {
                let ua = "Mozilla/5.0 (X11; Linux x86_64) ".repeat(40_000 / 32);
                let n = if name == "bytes-40k" { 100_000 } else { 20_000 };
                serde_json::json!({ "bytes_per_token": bytes_per_token(n, &ua) })
            }
            "flood" | "few" => {
                let r = if name == "flood" {
                    run(name, |i| i)
                } else {
                    run(name, |i| i % 100)
                };
                let m = MILLION as f64;
                serde_json::json!({
                    "first_wall": m / r.first.0,
                    "first_cpu": m / r.first.1,
                    "last_wall": m / r.last.0,
                    "last_cpu": m / r.last.1,
                    "total_wall": r.total.0,
                    "total_cpu": r.total.1,
                    "rss_after_first": r.rss_after_first,
                    "rss_end": r.rss_end,
                    "decisions": r.decisions,
                })
            }
            _ => panic!("no flood part {name}"),
        };
        println!("{result}");
    }

    /// Each measurement in a fresh process (so memory one run freed does not flatter the next), then the table.
    pub fn main() {
        let part = |name: &str| -> serde_json::Value {
            let exe = std::env::current_exe().unwrap();
            let out = std::process::Command::new(exe)
                .args(["--flood-part", name])
                .stderr(std::process::Stdio::inherit())
                .output()
                .unwrap();
            assert!(out.status.success(), "flood part {name} failed");
            let text = String::from_utf8_lossy(&out.stdout);
            let last = text.lines().last().unwrap_or_default();
            serde_json::from_str(last).unwrap_or_else(|e| panic!("{name}: {e}: {text}"))
        };
        let short = part("bytes-short")["bytes_per_token"].as_f64().unwrap();
        let long = part("bytes-40k")["bytes_per_token"].as_f64().unwrap();
        let issue = part("bytes-40k-20k")["bytes_per_token"].as_f64().unwrap();
        let flood = part("flood");
        let few = part("few");
        let f = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap();
        println!(
            "\nkey flood through the whole pipeline, {EVENTS} Kong http-log lines, one thread\n"
        );
        println!("events/s by this thread's CPU time (wall clock in brackets: other processes share the 2 cores)\n");
        println!("| traffic | first million | last million | last / first | total | RSS after 1M | RSS at end | decisions |");
        println!("|---|---|---|---|---|---|---|---|");
        for (name, r) in [
            (
                "10,000,000 distinct tokens (unauthenticated x-token-id)",
                &flood,
            ),
            ("the same lines over 100 tokens", &few),
        ] {
            println!(
                "| {name} | {:.0} ({:.0}) | {:.0} ({:.0}) | {:.0} % ({:.0} %) | {:.1} s ({:.1} s) | {:.0} MB | {:.0} MB | {} |",
                f(r, "first_cpu"),
                f(r, "first_wall"),
                f(r, "last_cpu"),
                f(r, "last_wall"),
                100.0 * f(r, "last_cpu") / f(r, "first_cpu"),
                100.0 * f(r, "last_wall") / f(r, "first_wall"),
                f(r, "total_cpu"),
                f(r, "total_wall"),
                f(r, "rss_after_first") / 1e6,
                f(r, "rss_end") / 1e6,
                f(r, "decisions")
            );
        }
        println!(
            "\nflood total / few-token total: {:.2}x CPU ({:.2}x wall)",
            f(&flood, "total_cpu") / f(&few, "total_cpu"),
            f(&flood, "total_wall") / f(&few, "total_wall")
        );
        println!("state per tracked token (RSS growth / tokens, 100,000 tokens): {short:.0} B with a 23-byte user agent, {long:.0} B with a 40 KB one");
        println!(
            "20,000 tokens with 40 KB user agents: {:.1} MB of state ({issue:.0} B a token)",
            issue * 20_000.0 / 1e6
        );
    }
}

/// Saving and restoring learned state (`cargo bench --bench pipeline -- state`): Okta sign-ins of distinct people,
/// each with its own session and address, until the pipeline holds at least a million keys across its maps; then
/// the time to save, the bytes per key, and the time to load the state into a new pipeline.
mod state {
    use super::*;

    /// 2026-11-02T00:00:00Z.
    const T0: i64 = 1_793_577_600_000;

    fn sign_in(buf: &mut String, i: u64) {
        buf.clear();
        let secs = i / 20;
        let _ = write!(
            buf,
            r#"{{"uuid":"st-{i:012}","published":"{}","eventType":"user.session.start","actor":{{"id":"00u{i:012x}","type":"User","alternateId":"user{i}@example.com"}},"client":{{"ipAddress":"10.{}.{}.{}","userAgent":{{"rawUserAgent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/126.0"}}}},"outcome":{{"result":"SUCCESS"}},"authenticationContext":{{"externalSessionId":"102s{i:012x}"}}}}"#,
            Ts(T0 + secs as i64 * 1000).to_rfc3339(),
            (i >> 16) & 255,
            (i >> 8) & 255,
            i & 255
        );
    }

    /// Keys held across every map of a saved state (the `entries` of each).
    fn keys(v: &serde_json::Value) -> u64 {
        match v {
            serde_json::Value::Object(m) => m
                .iter()
                .map(|(k, x)| match (k.as_str(), x) {
                    ("entries", serde_json::Value::Array(a)) => a.len() as u64,
                    _ => keys(x),
                })
                .sum(),
            serde_json::Value::Array(a) => a.iter().map(keys).sum(),
            _ => 0,
        }
    }

    pub fn main() {
        let mut p = Pipeline::new(&Config::default()).unwrap_or_else(|e| panic!("{e}"));
        let at = Ts(T0 + 86_400_000);
        let (mut line, mut out) = (String::new(), Vec::new());
        let people = 350_000u64;
        for i in 0..people {
            sign_in(&mut line, i);
            if let Err(e) = p.process(line.as_bytes(), None, Provenance::None, at, &mut out) {
                panic!("sign-in {i}: {e}");
            }
        }
        let t = Instant::now();
        let saved = p.save_state().unwrap_or_else(|e| panic!("{e}"));
        let save_s = t.elapsed().as_secs_f64();
        let v: serde_json::Value =
            serde_json::from_str(saved.get()).unwrap_or_else(|e| panic!("{e}"));
        let n = keys(&v);
        assert!(n >= 1_000_000, "only {n} keys from {people} sign-ins");
        drop(p);
        let t = Instant::now();
        let mut q = Pipeline::new(&Config::default()).unwrap_or_else(|e| panic!("{e}"));
        q.load_state(&saved).unwrap_or_else(|e| panic!("{e}"));
        let load_s = t.elapsed().as_secs_f64();
        println!(
            "{people} people, {n} keys: saved in {save_s:.2} s, {} bytes ({:.0} bytes per key); loaded in {load_s:.2} s",
            saved.get().len(),
            saved.get().len() as f64 / n as f64
        );
    }
}

/// The evidence store's cost to the pipeline's thread, measured in alternating runs.
mod overhead {
    use super::*;
    use quench::evidence::Evidence;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    /// Passes over the demo day per run.
    const PASSES: usize = 20;

    #[derive(Clone, Copy, PartialEq, Debug)]
    enum Way {
        /// No store.
        Plain,
        /// A store, values recorded on the pipeline's thread (the default).
        Values,
        /// A store that makes events again on its writer's thread.
        Remake,
        /// No store; another thread spins on the other core meanwhile.
        Busy,
    }

    const WAYS: [Way; 4] = [Way::Plain, Way::Values, Way::Remake, Way::Busy];

    /// Nanoseconds on a CPU of every thread named `name` of process `pid` (`self` for this one), from
    /// `/proc/PID/task/*/schedstat`; 0 once the process is gone.
    pub(super) fn threads_cpu_ns(pid: &str, name: &str) -> u64 {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return 0;
        };
        tasks
            .flatten()
            .filter(|t| {
                std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == name)
            })
            .filter_map(|t| {
                std::fs::read_to_string(t.path().join("schedstat"))
                    .ok()?
                    .split_whitespace()
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .sum()
    }

    /// One run: (pipeline thread's CPU seconds, wall seconds, writer thread's CPU seconds).
    fn run(
        lines: &[String],
        cfg: &Config,
        store: &mut Option<Evidence>,
        busy: bool,
    ) -> (f64, f64, f64) {
        let stop = Arc::new(AtomicBool::new(false));
        let spinner = busy.then(|| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut x = 1u64;
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..1000 {
                        x = std::hint::black_box(
                            x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1),
                        );
                    }
                }
                x
            })
        });
        let at = ingest_time();
        let writer = threads_cpu_ns("self", "quench-evidence");
        let (cpu, wall) = (super::flood::cpu_ns(), Instant::now());
        let mut decided = 0;
        for _ in 0..PASSES {
            let mut p = Pipeline::new(cfg).unwrap_or_else(|e| panic!("{e}"));
            if let Some(e) = store.take() {
                p.store_evidence(e);
            }
            let mut out = Vec::new();
            for l in lines {
                let _ = p.process(l.as_bytes(), None, Provenance::None, at, &mut out);
            }
            decided += out.len();
            *store = p.take_evidence();
        }
        let cpu = (super::flood::cpu_ns() - cpu) as f64 / 1e9;
        let wall = wall.elapsed().as_secs_f64();
        let writer = threads_cpu_ns("self", "quench-evidence").saturating_sub(writer) as f64 / 1e9;
        stop.store(true, Ordering::Relaxed);
        if let Some(s) = spinner {
            let _ = s.join();
        }
        // a run that decided nothing timed a pipeline that did not work
        assert!(
            decided > 0,
            "no decision in {PASSES} passes over the demo day"
        );
        (cpu, wall, writer)
    }

    /// The median and quartiles of `v`.
    pub(super) fn quartiles(mut v: Vec<f64>) -> (f64, f64, f64) {
        v.sort_by(f64::total_cmp);
        let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        (at(0.25), at(0.5), at(0.75))
    }

    pub fn main(rounds: usize) {
        assert!(rounds > 0, "at least one round");
        let lines = lines();
        let dir =
            std::env::temp_dir().join(format!("quench-bench-overhead-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut cfgs = Vec::new();
        let mut stores = Vec::new();
        for w in WAYS {
            let mut cfg = Config::default();
            let stored = matches!(w, Way::Values | Way::Remake);
            if stored {
                let d = dir.join(format!("{w:?}"));
                cfg.evidence.dir = Some(d.clone());
                cfg.evidence.remake_on_writer = w == Way::Remake;
                stores.push(Some(
                    Evidence::open(&cfg.evidence, &d).unwrap_or_else(|e| panic!("{e}")),
                ));
            } else {
                stores.push(None);
            }
            cfgs.push(cfg);
        }
        // per way: (pipeline CPU, wall, writer CPU) of each round
        let mut runs = vec![Vec::new(); WAYS.len()];
        for r in 0..rounds {
            for (i, w) in WAYS.iter().enumerate() {
                runs[i].push(run(&lines, &cfgs[i], &mut stores[i], *w == Way::Busy));
            }
            eprint!("\rround {} of {rounds}", r + 1);
        }
        eprintln!();
        for s in stores.into_iter().flatten() {
            s.close(None).unwrap_or_else(|e| panic!("{e}"));
        }
        let stored = quench::evidence::read::table(
            &dir.join("Values"),
            quench::evidence::tables::TableKind::Events,
            None,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let rows: usize = stored.iter().map(|b| b.num_rows()).sum();
        // every pass stored the day's events (at least 99 % of its lines are events, as `lines` checks)
        assert!(
            rows * 100 >= lines.len() * 99 * PASSES * rounds,
            "the store holds {rows} events of {} lines in {} passes",
            lines.len(),
            PASSES * rounds
        );
        let _ = std::fs::remove_dir_all(&dir);
        let plain = &runs[0];
        let ms = |s: f64| s * 1e3 / PASSES as f64;
        println!(
            "{rounds} rounds of {PASSES} passes over the demo day ({} lines); against the same round without a store:",
            lines.len()
        );
        println!("way                          pipeline CPU per pass            wall per pass                    writer CPU / pipeline CPU");
        for (i, w) in WAYS.iter().enumerate() {
            let (a, b, c) = quartiles(runs[i].iter().map(|x| ms(x.0)).collect());
            let rel = |k: usize| {
                quartiles(
                    runs[i]
                        .iter()
                        .zip(plain)
                        .map(|(x, p)| {
                            let (x, p) = if k == 0 { (x.0, p.0) } else { (x.1, p.1) };
                            100.0 * (x / p - 1.0)
                        })
                        .collect(),
                )
            };
            let (c0, c1, c2) = rel(0);
            let (w0, w1, w2) = rel(1);
            let (r0, r1, r2) = quartiles(runs[i].iter().map(|x| 100.0 * x.2 / x.0).collect());
            let name = match w {
                Way::Plain => "no store",
                Way::Values => "store (values, the default)",
                Way::Remake => "store (remake_on_writer)",
                Way::Busy => "no store, other core busy",
            };
            println!(
                "{name:28} {b:5.1} ms ({a:.1}–{c:.1}) {c1:+5.1} % ({c0:+.1}…{c2:+.1})   {w1:+5.1} % ({w0:+.1}…{w2:+.1})        {r1:5.1} % ({r0:.1}…{r2:.1})"
            );
        }
    }
}

/// The evidence store's cost to a whole `quench replay` (`cargo bench --bench pipeline -- store-replay [ROUNDS]
/// [DAYS]`): the built binary over simulated days, alternately without and with `--store`, and whether the cost
/// is under the goal of 10 % with the machine's noise taken into account.
mod store_replay {
    use super::overhead::quartiles;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    /// The issue's goal: the store slows the pipeline by at most this share.
    const GOAL: f64 = 0.10;

    /// How often a running replay's counters are read.
    const POLL: Duration = Duration::from_millis(5);

    /// What one run of `quench replay` took.
    #[derive(Clone, Copy, Debug, Default)]
    struct Run {
        /// Seconds on a CPU of the main thread, which runs the pipeline.
        main: f64,
        /// Seconds on a CPU of the whole process.
        process: f64,
        /// Seconds on a CPU of the store's writer thread.
        writer: f64,
        /// Seconds on the wall clock from start to exit.
        wall: f64,
        /// Peak resident memory, MB.
        peak_mb: f64,
    }

    fn first_number(path: &str) -> Option<u64> {
        std::fs::read_to_string(path)
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }

    /// The process's user and system time, in seconds (`/proc/PID/stat`, in Linux's fixed 100 ticks a second).
    fn process_cpu(pid: u32) -> Option<f64> {
        let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let mut f = s.rsplit_once(')')?.1.split_whitespace().skip(11);
        let user: u64 = f.next()?.parse().ok()?;
        let system: u64 = f.next()?.parse().ok()?;
        Some((user + system) as f64 / 100.0)
    }

    fn peak_mb(pid: u32) -> Option<f64> {
        let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let kb: f64 = s
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kb / 1024.0)
    }

    /// One `quench replay` of the simulated organisation in `dir`, into the new store `store` if given. Its
    /// counters are read every [`POLL`] until it exits, so the last few milliseconds may be missed (the same for
    /// both ways). Panics unless it succeeds and, with a store, says it wrote a row for at least 99 % of `lines`.
    fn run(exe: &Path, dir: &Path, store: Option<&Path>, lines: usize) -> Run {
        let log = dir.join("replay.log");
        let mut cmd = Command::new(exe);
        cmd.arg("replay")
            .arg("--config")
            .arg(dir.join("quench.toml"))
            .arg(dir.join("events.jsonl"));
        if let Some(s) = store {
            cmd.arg("--store").arg(s);
        }
        let err = std::fs::File::create(&log).unwrap();
        let t0 = Instant::now();
        let mut child = cmd.stdout(Stdio::null()).stderr(err).spawn().unwrap();
        let pid = child.id();
        let main = format!("/proc/{pid}/task/{pid}/schedstat");
        let mut r = Run::default();
        let status = loop {
            if let Some(ns) = first_number(&main) {
                r.main = ns as f64 / 1e9;
            }
            r.process = process_cpu(pid).unwrap_or(r.process);
            r.peak_mb = peak_mb(pid).unwrap_or(r.peak_mb);
            let writer = super::overhead::threads_cpu_ns(&pid.to_string(), "quench-evidence");
            if writer > 0 {
                r.writer = writer as f64 / 1e9;
            }
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            std::thread::sleep(POLL);
        };
        r.wall = t0.elapsed().as_secs_f64();
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(status.success(), "quench replay failed ({status}): {text}");
        if store.is_some() {
            let rows: usize = text
                .lines()
                .filter(|l| l.starts_with("replay: evidence store "))
                .find_map(|l| {
                    l.split_once(" rows written")?
                        .0
                        .rsplit(' ')
                        .next()?
                        .parse()
                        .ok()
                })
                .unwrap_or_else(|| panic!("no row count in what replay printed: {text}"));
            assert!(
                rows * 100 >= lines * 99,
                "the store holds {rows} rows for {lines} lines: {text}"
            );
        }
        r
    }

    /// The sign test's interval for the median of `sorted`: its `k`-th smallest and `k`-th largest values, with
    /// `k` the largest for which the chance that fewer than `k` values of a sample fall below the median is at
    /// most 2.5 %; and that interval's coverage (at least 95 %). It assumes nothing of the values' distribution
    /// but that the pairs are independent. `None` for fewer than 6 values, whose whole range covers less.
    pub(super) fn median_interval(sorted: &[f64]) -> Option<(f64, f64, f64)> {
        let n = sorted.len();
        if !(6..=1000).contains(&n) {
            return None;
        }
        // below[j] = P(Binomial(n, 1/2) <= j)
        let mut below = Vec::with_capacity(n);
        let (mut c, mut sum) = (1.0f64, 0.0f64);
        let all = 2f64.powi(n as i32);
        for j in 0..n {
            sum += c / all;
            below.push(sum);
            c = c * (n - j) as f64 / (j + 1) as f64;
        }
        let k = (1..=n / 2).rev().find(|&k| below[k - 1] <= 0.025)?;
        Some((sorted[k - 1], sorted[n - k], 1.0 - 2.0 * below[k - 1]))
    }

    /// Known intervals: for 10 values the 2nd and 9th (97.9 %), for 20 the 6th and 15th (95.9 %), none for 5.
    pub(super) fn check_interval() {
        let v = |n: usize| (1..=n).map(|i| i as f64).collect::<Vec<_>>();
        let near = |a: f64, b: f64| (a - b).abs() < 5e-4;
        let (lo, hi, c) = median_interval(&v(10)).unwrap();
        assert!(lo == 2.0 && hi == 9.0 && near(c, 0.9785), "{lo} {hi} {c}");
        let (lo, hi, c) = median_interval(&v(20)).unwrap();
        assert!(lo == 6.0 && hi == 15.0 && near(c, 0.9586), "{lo} {hi} {c}");
        assert!(median_interval(&v(5)).is_none());
    }

    pub fn main(rounds: usize, days: usize) {
        assert!(rounds > 0 && days > 0, "at least one round and one day");
        let exe = PathBuf::from(env!("CARGO_BIN_EXE_quench"));
        let dir =
            std::env::temp_dir().join(format!("quench-bench-store-replay-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let t0 = Instant::now();
        let sim = quench::lab::simulate::simulate(
            &quench::lab::simulate::SimConfig {
                people: 1000,
                agents: 100,
                days,
                seed: 1,
                only: None,
                event_time_order: false,
            },
            &dir,
        )
        .unwrap_or_else(|e| panic!("simulate: {e}"));
        let lines = std::fs::read_to_string(dir.join("events.jsonl"))
            .unwrap()
            .lines()
            .count();
        eprintln!(
            "simulated {days} days of 1,000 people and 100 agents: {} events, {lines} lines ({:.1} s)",
            sim.events,
            t0.elapsed().as_secs_f64()
        );
        // once each untimed: the input in the page cache, the binary loaded
        run(&exe, &dir, None, lines);
        let warm = dir.join("store-warm");
        run(&exe, &dir, Some(&warm), lines);
        let _ = std::fs::remove_dir_all(&warm);
        let (mut plain, mut stored) = (Vec::new(), Vec::new());
        for r in 0..rounds {
            let store = dir.join(format!("store-{r}"));
            // alternate which goes first, so that neither always follows the other
            if r % 2 == 0 {
                plain.push(run(&exe, &dir, None, lines));
                stored.push(run(&exe, &dir, Some(&store), lines));
            } else {
                stored.push(run(&exe, &dir, Some(&store), lines));
                plain.push(run(&exe, &dir, None, lines));
            }
            let _ = std::fs::remove_dir_all(&store);
            eprintln!(
                "round {} of {rounds}: main thread {:.2} s without a store, {:.2} s with one ({:+.1} %)",
                r + 1,
                plain[r].main,
                stored[r].main,
                100.0 * (stored[r].main / plain[r].main - 1.0)
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
        println!(
            "\n`quench replay` of {days} simulated days ({lines} lines), {rounds} rounds each running it without and with `--store` (a new directory), in alternating order\n"
        );
        println!("median (quartiles) over the rounds\n");
        println!("| way | main thread CPU | wall | process CPU | writer thread CPU | peak RSS |");
        println!("|---|---|---|---|---|---|");
        for (name, runs) in [("no store", &plain), ("store", &stored)] {
            let q = |f: fn(&Run) -> f64| {
                let (a, b, c) = quartiles(runs.iter().map(f).collect());
                format!("{b:.2} ({a:.2}–{c:.2})")
            };
            println!(
                "| {name} | {} s | {} s | {} s | {} s | {} MB |",
                q(|r| r.main),
                q(|r| r.wall),
                q(|r| r.process),
                q(|r| r.writer),
                q(|r| r.peak_mb)
            );
        }
        let ratio = |f: fn(&Run) -> f64| {
            let mut v: Vec<f64> = stored
                .iter()
                .zip(&plain)
                .map(|(s, p)| f(s) / f(p) - 1.0)
                .collect();
            v.sort_by(f64::total_cmp);
            v
        };
        let pct = |x: f64| format!("{:+.1} %", 100.0 * x);
        println!("\nthe store against the same round without it, pair by pair:");
        for (name, v) in [
            ("main thread CPU", ratio(|r| r.main)),
            ("wall", ratio(|r| r.wall)),
        ] {
            let (a, b, c) = quartiles(v.clone());
            println!(
                "- {name}: {} (quartiles {}…{}, range {}…{})",
                pct(b),
                pct(a),
                pct(c),
                pct(v[0]),
                pct(v[v.len() - 1])
            );
        }
        let v = ratio(|r| r.main);
        match median_interval(&v) {
            Some((lo, hi, cover)) => {
                let verdict = if hi <= GOAL {
                    "within the goal of 10 %"
                } else if lo > GOAL {
                    "over the goal of 10 %"
                } else {
                    "undecided: this machine's noise is wider than the distance to the goal of 10 %"
                };
                println!(
                    "- the median slowdown of the main thread lies in {}…{} ({:.1} % coverage, sign test): {verdict}",
                    pct(lo),
                    pct(hi),
                    100.0 * cover
                );
            }
            None => println!("- fewer than 6 rounds: no interval for the median, so no verdict"),
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // the modes are words after `cargo bench … --`, which passes `--bench`; `cargo test state` passes the same
    // word as a test filter without it, and must not start a mode of minutes
    let mode = |m: &str| args.iter().any(|a| a == "--bench") && args.iter().any(|a| a == m);
    if mode("state") {
        state::main();
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--flood-part") {
        flood::part(args.get(i + 1).map_or("", String::as_str));
        return;
    }
    if mode("flood") {
        flood::main();
        return;
    }
    if let Some(i) = args
        .iter()
        .position(|a| a == "evidence")
        .filter(|_| mode("evidence"))
    {
        let rounds = args.get(i + 1).and_then(|r| r.parse().ok()).unwrap_or(20);
        overhead::main(rounds);
        return;
    }
    if let Some(i) = args
        .iter()
        .position(|a| a == "store-replay")
        .filter(|_| mode("store-replay"))
    {
        let num = |k: usize, or: usize| args.get(i + k).and_then(|r| r.parse().ok()).unwrap_or(or);
        store_replay::main(num(1, 10), num(2, 14));
        return;
    }
    store_replay::check_interval();
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
}
