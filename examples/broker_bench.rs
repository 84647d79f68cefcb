//! Throughput through a Kafka-protocol broker in its own process (Tansu): the same simulated events read by a plain
//! rdkafka consumer, by `quench run`'s single-instance loop, and by the keyed topology with one and with two
//! instances (both in this process, sharing its cores), next to `quench replay` on the same lines.
//!
//! Run from the repository root, with `tansu` on the PATH (`.ci/run` installs it) and a simulated organisation:
//!
//! ```text
//! quench simulate --people 1000 --agents 100 --days 3 --seed 1 --out /tmp/sim3
//! cargo run --release --example broker_bench -- /tmp/sim3 [LINES]
//! ```
//!
//! Every input record is produced in a batch of its own: Tansu 0.6 skips records when batches hold several (see the
//! README), so every producer here sets `batch.num.messages = 1`, the Quench instances' too. Each run is timed from
//! its start (consumer group join included) to its last record; the plain consumer's time to its first record is
//! printed so the join can be told apart.
//!
//! `BENCH_STORE=DIR` runs the single-instance loop a second time keeping the evidence store in DIR (emptied first;
//! `BENCH_OBJECT_STORE=URL` adds its object storage; `BENCH_STORE_VALUES=1` sets `remake_on_writer = false`), and
//! prints its cost; `BENCH_SINGLE_ONLY=1` stops after it.
//!
//! Last, the keyed detect stage alone, without the broker, on one and on two threads (`BENCH_DETECT_ONLY=1` runs
//! only that; `BENCH_KEYED_PARTITIONS=N` sets its keyed partitions, default 4), and what a snapshot of every
//! partition's state costs after it (the keyed topology's changelog: its bytes and the time to write them).

use quench::bus::{KafkaConfig, KeyedConfig, TopicConfig};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::time::{Duration, Instant};

const INPUT: &str = "bench.input";
const INPUT_PARTITIONS: i32 = 2;
const KEYED_PARTITIONS: i32 = 4;

/// `batched`: let the producers batch (Tansu 0.6 skips records of multi-record batches; Kafka does not).
fn kafka(bootstrap: &str, group: &str) -> KafkaConfig {
    kafka_with(bootstrap, group, false)
}

fn kafka_with(bootstrap: &str, group: &str, batched: bool) -> KafkaConfig {
    KafkaConfig {
        brokers: bootstrap.into(),
        group_id: group.into(),
        topics: vec![TopicConfig {
            name: INPUT.into(),
            format: "auto".into(),
        }],
        decisions_topic: "bench.decisions".into(),
        ocsf_topic: None,
        dead_letter_topic: "bench.deadletter".into(),
        commit_interval_ms: 1000,
        properties: if batched {
            Default::default()
        } else {
            [("batch.num.messages", "1")]
                .into_iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        },
        keyed: None,
    }
}

fn keyed_config(group: &str, threads: usize) -> KeyedConfig {
    KeyedConfig {
        topic: format!("{group}.keyed"),
        snapshots_topic: format!("{group}.snapshots"),
        links_topic: format!("{group}.links"),
        snapshot_interval_secs: 10,
        threads: Some(threads),
    }
}

/// The keyed runs: consumer group, instances, detect threads per instance.
const KEYED_RUNS: [(&str, usize, usize); 4] = [
    ("keyed1", 1, 1),
    ("keyed1t2", 1, 2),
    ("keyed2", 2, 1),
    ("keyed2t2", 2, 2),
];

/// The committed offsets of `group` on the partitions of `topic`, summed.
fn committed(bootstrap: &str, group: &str, topic: &str, partitions: i32) -> i64 {
    let Ok(c) = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .create::<BaseConsumer>()
    else {
        return 0;
    };
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    c.committed_offsets(tpl, Duration::from_secs(5))
        .map(|t| {
            t.elements()
                .iter()
                .map(|e| match e.offset() {
                    Offset::Offset(o) => o,
                    _ => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// The high watermarks of `topic`, summed.
fn end(bootstrap: &str, topic: &str, partitions: i32) -> i64 {
    let Ok(c) = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create::<BaseConsumer>()
    else {
        return 0;
    };
    (0..partitions)
        .map(|p| {
            c.fetch_watermarks(topic, p, Duration::from_secs(10))
                .map(|(_, h)| h)
                .unwrap_or(0)
        })
        .sum()
}

/// `quench run` (one instance) over the input topic until its end: seconds taken and its report.
async fn run_to_end(
    k: &KafkaConfig,
    p: &mut quench::pipeline::Pipeline,
    dispatcher: impl FnOnce() -> Result<quench::respond::Dispatcher, quench::respond::RespondError>,
) -> anyhow::Result<(f64, quench::runtime::KafkaReport)> {
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let t = Instant::now();
    let dispatcher = dispatcher()?;
    let r = quench::runtime::run_kafka(
        k,
        p,
        &dispatcher,
        quench::runtime::RunOptions {
            stop_at_end: true,
            ..Default::default()
        },
        stop_rx,
        |_| {},
    )
    .await?;
    Ok((t.elapsed().as_secs_f64(), r))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().unwrap_or_else(|| "/tmp/sim3".into()));
    let limit: usize = args
        .next()
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(100_000);
    let text = std::fs::read_to_string(dir.join("events.jsonl"))?;
    let lines: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(limit)
        .map(String::from)
        .collect();
    let n = lines.len() as i64;
    let bytes: usize = lines.iter().map(|l| l.len()).sum();
    let base = quench::cli::eval::traffic_config(&dir)?;
    if std::env::var_os("BENCH_DETECT_ONLY").is_some() {
        return detect_threads(&base, &lines).await;
    }

    let broker = quench::lab::tansu::Tansu::start()?;
    let bootstrap = broker.bootstrap.clone();
    run(&bootstrap, &base, &lines, n, bytes).await
}

async fn run(
    bootstrap: &str,
    base: &quench::config::Config,
    lines: &[String],
    n: i64,
    bytes: usize,
) -> anyhow::Result<()> {
    let mut topics: Vec<(String, i32, bool)> = vec![
        (INPUT.into(), INPUT_PARTITIONS, false),
        ("bench.decisions".into(), 1, false),
        ("bench.deadletter".into(), 1, false),
        ("quench.commands".into(), 1, false),
    ];
    for (g, _, threads) in KEYED_RUNS {
        let kc = keyed_config(g, threads);
        topics.push((kc.topic, KEYED_PARTITIONS, false));
        topics.push((kc.snapshots_topic, KEYED_PARTITIONS, true));
        topics.push((kc.links_topic, KEYED_PARTITIONS, true));
    }
    let topics: Vec<(&str, i32, bool)> = topics
        .iter()
        .map(|(n, p, c)| (n.as_str(), *p, *c))
        .collect();
    quench::bus::create_topics(&kafka(bootstrap, "admin"), &topics).await?;
    let t = Instant::now();
    quench::cli::produce_lines(&kafka(bootstrap, "producer"), INPUT, lines).await?;
    let produce_secs = t.elapsed().as_secs_f64();
    println!(
        "{n} lines ({:.1} MB) produced to {INPUT} ({INPUT_PARTITIONS} partitions) in {produce_secs:.1} s",
        bytes as f64 / 1e6
    );
    let rate = |secs: f64| n as f64 / secs;

    // a plain consumer
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "bench-plain")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()?;
    c.subscribe(&[INPUT])?;
    let t = Instant::now();
    let mut got = 0i64;
    let mut first = None;
    while got < n {
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            m?;
            got += 1;
            first.get_or_insert_with(|| t.elapsed());
        }
    }
    let plain = t.elapsed().as_secs_f64();
    drop(c);
    println!(
        "plain rdkafka consumer:        {plain:6.2} s  {:9.0} records/s  (first record after {:.2} s)",
        rate(plain),
        first.unwrap_or_default().as_secs_f64()
    );

    let respond = quench::respond::RespondConfig::default();
    let dispatcher = || {
        quench::respond::Dispatcher::new(
            respond.clone(),
            quench::respond::build_targets(&respond).unwrap_or_default(),
            None,
        )
    };

    // the single-instance loop
    let k = kafka(bootstrap, "bench-single");
    let cfg = quench::config::Config {
        kafka: Some(k.clone()),
        ..base.clone()
    };
    let mut p = quench::pipeline::Pipeline::new(&cfg)?;
    let (single, r) = run_to_end(&k, &mut p, dispatcher).await?;
    println!(
        "quench run, one instance:      {single:6.2} s  {:9.0} records/s  ({} records, {} decisions)",
        rate(single),
        r.run.records,
        r.run.decisions
    );

    // the single-instance loop again, keeping the evidence (`BENCH_STORE=DIR`, with `BENCH_OBJECT_STORE=URL` its
    // object storage); the store is opened as `quench run` opens it
    if let Some(dir) = std::env::var_os("BENCH_STORE") {
        let dir = std::path::PathBuf::from(dir);
        let _ = std::fs::remove_dir_all(&dir);
        let k = kafka(bootstrap, "bench-single-store");
        let mut cfg = quench::config::Config {
            kafka: Some(k.clone()),
            ..base.clone()
        };
        cfg.evidence.dir = Some(dir.clone());
        cfg.evidence.remake_on_writer = std::env::var_os("BENCH_STORE_VALUES").is_none();
        cfg.evidence.object_store = std::env::var("BENCH_OBJECT_STORE").ok();
        cfg.evidence.validate()?;
        let mut p = quench::pipeline::Pipeline::new(&cfg)?;
        p.store_evidence(quench::evidence::Evidence::open(&cfg.evidence, &dir)?);
        let (secs, r) = run_to_end(&k, &mut p, dispatcher).await?;
        p.close_evidence()?;
        let st = p.published_stats();
        println!(
            "quench run, with the store:    {secs:6.2} s  {:9.0} records/s  ({} records, {} decisions; {:.2}x the time without; {} rows, {} files uploaded)",
            rate(secs),
            r.run.records,
            r.run.decisions,
            secs / single,
            st.evidence_rows,
            st.evidence_uploaded_files,
        );
    }
    if std::env::var_os("BENCH_SINGLE_ONLY").is_some() {
        return Ok(());
    }

    // the keyed topology, one and two instances
    let batched = std::env::var_os("BENCH_BATCHED").is_some();
    for (group, instances, threads) in KEYED_RUNS {
        let mut k = kafka_with(bootstrap, group, batched);
        let kc = keyed_config(group, threads);
        k.keyed = Some(kc.clone());
        let cfg = quench::config::Config {
            kafka: Some(k.clone()),
            ..base.clone()
        };
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let t = Instant::now();
        let mut runs = Vec::new();
        for _ in 0..instances {
            let (k, cfg, rx, d) = (k.clone(), cfg.clone(), stop_rx.clone(), dispatcher()?);
            runs.push(tokio::spawn(async move {
                quench::runtime::keyed::run(&k, &cfg, &d, Default::default(), rx, |_| {})
                    .await
                    .map(|(r, keyed)| {
                        (
                            r.run.records,
                            r.run.decisions,
                            keyed.route.routed,
                            r.run.skipped,
                        )
                    })
            }));
        }
        // done when both stages have committed everything
        let keyed_group = format!("{group}.keyed");
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let routed_end = end(bootstrap, &kc.topic, KEYED_PARTITIONS);
            if committed(bootstrap, group, INPUT, INPUT_PARTITIONS) >= n
                && routed_end > 0
                && committed(bootstrap, &keyed_group, &kc.topic, KEYED_PARTITIONS) >= routed_end
            {
                break;
            }
        }
        let secs = t.elapsed().as_secs_f64();
        let _ = stop.send(true);
        let (mut decisions, mut detected, mut skipped) = (0, 0, 0);
        for r in runs {
            let (records, d, _, s) = r.await??;
            decisions += d;
            detected += records;
            skipped += s;
        }
        println!(
            "quench run, keyed, {instances} instance(s) × {threads} thread(s): {secs:6.2} s  {:9.0} records/s  ({} events routed, {detected} read by the detect stage, {skipped} of them skipped as held by a snapshot, {decisions} decisions)",
            rate(secs),
            end(bootstrap, &kc.topic, KEYED_PARTITIONS)
        );
    }

    // replay of the same lines, no broker
    let dir = std::env::temp_dir().join(format!("quench-broker-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("lines.jsonl");
    std::fs::write(&file, lines.join("\n"))?;
    let t = Instant::now();
    let r = quench::cli::replay(
        base,
        &[file.display().to_string()],
        false,
        &mut std::io::sink(),
    )
    .await?;
    let replay = t.elapsed().as_secs_f64();
    println!(
        "quench replay (no broker):     {replay:6.2} s  {:9.0} records/s  ({} decisions)",
        rate(replay),
        r.decisions.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
    detect_threads(base, lines).await
}

/// The keyed detect stage without the broker: the lines routed in memory (as the route stage writes them, keyed
/// topic of `KEYED_PARTITIONS` partitions), then processed by the stage's workers on 1 and on 2 threads, timed
/// from the first record sent to the last result received.
async fn detect_threads(base: &quench::config::Config, lines: &[String]) -> anyhow::Result<()> {
    use quench::runtime::workers::{Done, Pool};
    use rdkafka::message::OwnedMessage;
    use std::hash::{Hash, Hasher};
    let mut router = quench::pipeline::Pipeline::new(base)?;
    let mut routed = Vec::new();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let prov = quench::event::Provenance::Kafka {
            topic: INPUT.into(),
            partition: 0,
            offset: i as i64,
        };
        out.clear();
        if router
            .route(
                l.as_bytes(),
                None,
                prov,
                quench::clock::WallTime::now().as_ts(),
                &mut out,
            )
            .is_ok()
        {
            routed.extend(out.drain(..).filter(|r| !r.link));
        }
    }
    let partitions: i32 = match std::env::var("BENCH_KEYED_PARTITIONS") {
        Ok(v) => v.parse()?,
        Err(_) => KEYED_PARTITIONS,
    };
    let partition = |key: &str| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        (h.finish() % partitions as u64) as i32
    };
    let mut single = 0.0;
    // three rounds, alternating, since one run on a shared machine varies by a fifth
    for (round, threads) in [1, 2, 1, 2, 1, 2].into_iter().enumerate() {
        let cfg = base.clone();
        let mut pool = Pool::start(
            threads,
            std::sync::Arc::new(move || {
                quench::pipeline::Pipeline::for_detect(&cfg).map_err(|e| e.to_string())
            }),
        )?;
        for p in 0..partitions {
            pool.adopt(p, None, -1).await?;
        }
        let msgs: Vec<OwnedMessage> = routed
            .iter()
            .enumerate()
            .map(|(i, r)| {
                OwnedMessage::new(
                    Some(r.body.clone()),
                    Some(r.key.clone().into_bytes()),
                    "keyed".into(),
                    rdkafka::Timestamp::NotAvailable,
                    partition(&r.key),
                    i as i64,
                    None,
                )
            })
            .collect();
        let n = msgs.len();
        if round == 0 {
            let mut per = vec![0usize; partitions as usize];
            for m in &msgs {
                per[rdkafka::message::Message::partition(m) as usize] += 1;
            }
            println!("events per keyed partition: {per:?}");
        }
        let t = Instant::now();
        let mut got = 0;
        let mut decisions = 0;
        let mut msgs = msgs.into_iter();
        // send while the workers have room, take results as they come
        while got < n {
            let Some(m) = msgs.next() else {
                if let Done::Record {
                    outcome: Some(o), ..
                } = pool.next().await?
                {
                    decisions += o.decisions.len();
                }
                got += 1;
                continue;
            };
            pool.record(m, Instant::now(), 1).await?;
        }
        let secs = t.elapsed().as_secs_f64();
        // the changelog: every partition's state as the snapshots topic would get it
        let t = Instant::now();
        pool.ask_all(true).await?;
        let (mut saved, mut bytes, mut states) = (0, 0, 0);
        while saved < pool.workers() {
            if let Done::Saved(r) = pool.next().await? {
                saved += 1;
                let r = r.map_err(anyhow::Error::msg)?;
                states += r.len();
                bytes += r.iter().map(|(_, _, s)| s.get().len()).sum::<usize>();
            }
        }
        let snapshot_secs = t.elapsed().as_secs_f64();
        pool.close();
        if threads == 1 {
            single = secs;
        }
        println!(
            "keyed detect stage, no broker, {threads} thread(s): {secs:6.2} s  {:9.0} events/s  ({n} events in {partitions} partitions, {decisions} decisions{})",
            n as f64 / secs,
            if threads > 1 { format!(", {:.2}× one thread", single / secs) } else { String::new() }
        );
        println!(
            "  then a snapshot of the {states} partitions' states: {:.1} MB in {:.0} ms ({:.1} % of the time to process the events; written every snapshot_interval_secs, default 10 s)",
            bytes as f64 / 1e6,
            snapshot_secs * 1e3,
            100.0 * snapshot_secs / secs
        );
    }
    Ok(())
}
