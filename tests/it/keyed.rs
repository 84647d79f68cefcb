//! The keyed topology (`[kafka.keyed]`): the first stage routes each event to the keyed topic by its correlation
//! subject and shares the links it learns; the second detects per partition of the keyed topic and saves each
//! partition's state to the snapshots topic. Its decisions must be those of one pipeline that read the same input
//! in order, whichever instance holds which partition, and whatever instance was killed along the way.
//!
//! Through librdkafka's mock cluster in this process (real protocol, reachable by child processes).

#![allow(clippy::unwrap_used)]

use crate::support as common;

use quench::bus::KeyedConfig;
use quench::cli;
use quench::config::Config;
use quench::decide::{Action, Decision};
use quench::pipeline::Pipeline;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::collections::BTreeSet;
use std::time::Duration;

/// Partitions of the keyed and snapshots topics in these tests.
const KEYED_PARTITIONS: i32 = 4;

/// A mock cluster with the demo topics (one partition each) and the keyed topology's topics.
fn cluster() -> (
    MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    String,
) {
    let cluster = MockCluster::new(1).unwrap();
    let bootstrap = cluster.bootstrap_servers();
    for t in cli::DEMO_TOPICS {
        cluster.create_topic(t, 1, 1).unwrap();
    }
    let keyed = KeyedConfig::default();
    for t in [&keyed.topic, &keyed.snapshots_topic, &keyed.links_topic] {
        cluster.create_topic(t, KEYED_PARTITIONS, 1).unwrap();
    }
    (cluster, bootstrap)
}

/// The decisions on the decisions topic, as (id, action), in the order read.
fn decided(bootstrap: &str) -> Vec<(String, Action)> {
    common::payloads(bootstrap, "quench.decisions")
        .iter()
        .map(|b| serde_json::from_slice::<Decision>(b).unwrap())
        .map(|d| (d.decision_id, d.action))
        .collect()
}

/// The high watermark of each partition of `topic`.
fn ends(bootstrap: &str, topic: &str) -> Vec<i64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    (0..KEYED_PARTITIONS)
        .map(|p| {
            c.fetch_watermarks(topic, p, Duration::from_secs(10))
                .map(|(_, hi)| hi)
                .unwrap_or(0)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keyed_topology_decides_as_one_pipeline_over_the_same_input() {
    let lines = common::demo_events();
    let whole = common::feed(&mut Pipeline::new(&Config::default()).unwrap(), &lines, 0);
    assert!(whole.len() >= 4, "{whole:?}");

    let (_cluster, bootstrap) = cluster();
    let mut k = common::kafka(&bootstrap, "quench-keyed-one");
    k.keyed = Some(KeyedConfig::default());
    cli::produce_lines(&k, cli::DEMO_TOPIC, &lines)
        .await
        .unwrap();
    let cfg = Config {
        kafka: Some(k.clone()),
        ..Default::default()
    };
    let dispatcher = common::dispatcher(&Default::default());
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let (r, keyed) = quench::runtime::keyed::run(
        &k,
        &cfg,
        &dispatcher,
        quench::runtime::RunOptions {
            stop_at_end: true,
            ..Default::default()
        },
        stop_rx,
        |_| {},
    )
    .await
    .unwrap();

    assert_eq!(keyed.route.records, lines.len() as u64);
    let routed = ends(&bootstrap, &KeyedConfig::default().topic);
    assert_eq!(routed.iter().sum::<i64>() as u64, keyed.route.routed);
    assert!(
        routed.iter().filter(|n| **n > 0).count() >= 2,
        "the demo's principals all landed in one partition: {routed:?}"
    );
    assert_eq!(r.run.records, keyed.route.routed);
    assert!(
        keyed.snapshots >= routed.iter().filter(|n| **n > 0).count() as u64,
        "{} snapshots",
        keyed.snapshots
    );
    let got = decided(&bootstrap);
    let ids: BTreeSet<&String> = got.iter().map(|(id, _)| id).collect();
    assert_eq!(ids.len(), got.len(), "a decision was made twice: {got:?}");
    assert_eq!(
        got.iter().cloned().collect::<BTreeSet<_>>(),
        whole.iter().cloned().collect::<BTreeSet<_>>()
    );
}

/// How the test stops the first instance.
enum Stop {
    /// SIGKILL: no shutdown code runs, the group notices when its session times out.
    Kill,
    /// SIGTERM: it stops reading, saves, commits and leaves the group.
    Terminate,
}

/// A `quench` child process, killed with SIGKILL when dropped (a failing test leaves no instance running).
struct Running(Option<std::process::Child>);

impl Running {
    fn kill(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The committed offsets of `group` on each of the first `partitions` partitions of `topic` (0 where none).
fn committed(bootstrap: &str, group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    match c.committed_offsets(tpl, Duration::from_secs(5)) {
        Ok(t) => t
            .elements()
            .iter()
            .map(|e| match e.offset() {
                Offset::Offset(o) => o,
                _ => 0,
            })
            .collect(),
        Err(_) => vec![0; partitions as usize],
    }
}

/// Every record of `topic` (partition, offset, payload), read from the beginning of each of its first
/// `partitions` partitions until nothing more arrives for a second. Unlike reading up to the high watermarks, this
/// holds on a broker that reports them low (Tansu does when batches hold several records).
fn drain(bootstrap: &str, topic: &str, partitions: i32) -> Vec<(i32, i64, Vec<u8>)> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "quench-keyed-test-reader")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let mut idle_since = std::time::Instant::now();
    while idle_since.elapsed() < Duration::from_secs(1) {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            use rdkafka::Message;
            out.push((
                m.partition(),
                m.offset(),
                m.payload().unwrap_or(&[]).to_vec(),
            ));
            idle_since = std::time::Instant::now();
        }
    }
    out
}

/// How many events the route stage sends to the keyed topic for `lines`.
fn routed_events(lines: &[String]) -> i64 {
    let mut p = Pipeline::new(&Config::default()).unwrap();
    let mut out = Vec::new();
    let mut n = 0;
    for (i, l) in lines.iter().enumerate() {
        let prov = quench::event::Provenance::Kafka {
            topic: cli::DEMO_TOPIC.into(),
            partition: 0,
            offset: i as i64,
        };
        out.clear();
        let _ = p.route(
            l.as_bytes(),
            None,
            prov,
            quench::clock::WallTime::now().as_ts(),
            &mut out,
        );
        n += out.iter().filter(|r| !r.link).count() as i64;
    }
    n
}

/// Two `quench run` processes share the keyed topology on the broker at `bootstrap` (topics created). They read
/// the first half of the demo day; then the second half arrives and the first instance is stopped (`stop`) while
/// it reads it. The other takes its partitions over (restoring their snapshots, reading the shared links) and
/// finishes the day. The distinct decisions are exactly one pipeline's over the whole day in order.
///
/// Whether a killed instance had saved its last records is up to timing: what it had not is processed again by
/// its successor, and gives the same decisions.
async fn two_instances_one_stopped_mid_stream(
    bootstrap: &str,
    group: &str,
    stop: Stop,
    properties: &[(&str, &str)],
) {
    let extra: String = properties
        .iter()
        .map(|(k, v)| format!(", \"{k}\" = \"{v}\""))
        .collect();
    let lines = common::demo_events();
    let whole = common::feed(&mut Pipeline::new(&Config::default()).unwrap(), &lines, 0);
    let split = lines.len() / 2;
    let keyed = KeyedConfig::default();
    let dir = common::fresh_dir(&format!("quench-keyed-{group}"));
    let config = dir.join("quench.toml");
    std::fs::write(
        &config,
        format!(
            "[kafka]\nbrokers = \"{bootstrap}\"\ngroup_id = \"{group}\"\ntopics = [{{ name = \"{}\", format = \"auto\" }}]\ncommit_interval_ms = 100\n\
             # a killed instance's group membership expires after this, then the other takes its partitions over\n\
             properties = {{ \"session.timeout.ms\" = \"6000\", \"heartbeat.interval.ms\" = \"500\"{extra} }}\n\
             # snapshots come only from the input going idle: an hour never passes in this test\n\
             [kafka.keyed]\nsnapshot_interval_secs = 3600\n",
            cli::DEMO_TOPIC,
        ),
    )
    .unwrap();
    // (committed input offsets, committed keyed offsets)
    let progress = || {
        (
            committed(bootstrap, group, cli::DEMO_TOPIC, 1),
            committed(
                bootstrap,
                &format!("{group}.keyed"),
                &keyed.topic,
                KEYED_PARTITIONS,
            ),
        )
    };
    // Wait until the first stage has committed `n_lines` input records, the keyed topic holds `events` records
    // and the second stage has committed each of its partitions up to its last record; on a timeout, fail with the
    // offsets and what the instances logged.
    let logs = [dir.join("a.log"), dir.join("b.log")];
    let wait = |what: &'static str, n_lines: usize, events: i64| {
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        loop {
            let (input, detected) = progress();
            let keyed_records = drain(bootstrap, &keyed.topic, KEYED_PARTITIONS);
            let mut ends = vec![0; KEYED_PARTITIONS as usize];
            for (p, o, _) in &keyed_records {
                ends[*p as usize] = ends[*p as usize].max(o + 1);
            }
            // a killed instance's last input records may be routed twice (the second stage drops the copies)
            let distinct: BTreeSet<(i64, String)> = keyed_records
                .iter()
                .map(|(_, _, b)| {
                    let v: serde_json::Value = serde_json::from_slice(b).unwrap();
                    let e = &v["event"];
                    let offset = e["provenance"]["offset"].as_i64().unwrap_or(-1);
                    (offset, e["event_id"].as_str().unwrap_or("").to_string())
                })
                .collect();
            if input == [n_lines as i64] && distinct.len() as i64 == events && detected == ends {
                return;
            }
            if std::time::Instant::now() > deadline {
                // the input records with no event on the keyed topic, as ranges of offsets
                let mut seen = BTreeSet::new();
                for (_, _, b) in &keyed_records {
                    let v: serde_json::Value = serde_json::from_slice(b).unwrap();
                    if let Some(o) = v["event"]["provenance"]["offset"].as_i64() {
                        seen.insert(o);
                    }
                }
                let mut missing: Vec<(i64, i64)> = Vec::new();
                for o in 0..n_lines as i64 {
                    if !seen.contains(&o) {
                        match missing.last_mut() {
                            Some(r) if r.1 + 1 == o => r.1 = o,
                            _ => missing.push((o, o)),
                        }
                    }
                }
                let logs: Vec<String> = logs
                    .iter()
                    .map(|l| std::fs::read_to_string(l).unwrap_or_default())
                    .collect();
                panic!(
                    "timed out waiting until {what}: input committed {input:?} of {n_lines}, keyed committed \
                     {detected:?} of the ends {ends:?} of {} records read, {} distinct events ({events} expected); input offsets with no \
                     keyed event: {missing:?}\ninstance a:\n{}\ninstance b:\n{}",
                    keyed_records.len(), distinct.len(), logs[0], logs[1]
                );
            }
        }
    };
    let mut k = common::kafka(bootstrap, group);
    for (key, v) in properties {
        k.properties.insert(key.to_string(), v.to_string());
    }

    let log = |i: usize| std::fs::File::create(&logs[i]).unwrap();
    let mut a = Running(Some(common::spawn_quench_to(&config, log(0))));
    let mut b = Running(Some(common::spawn_quench_to(&config, log(1))));
    cli::produce_lines(&k, cli::DEMO_TOPIC, &lines[..split])
        .await
        .unwrap();
    let first = routed_events(&lines[..split]);
    wait(
        "both instances have read and saved the first half",
        split,
        first,
    );
    cli::produce_lines(&k, cli::DEMO_TOPIC, &lines[split..])
        .await
        .unwrap();
    match stop {
        Stop::Kill => a.kill(),
        Stop::Terminate => {
            common::terminate(a.0.take().unwrap());
        }
    }
    let all = routed_events(&lines);
    wait(
        "the survivor has read and saved the whole day",
        lines.len(),
        all,
    );
    common::terminate(b.0.take().unwrap());
    let stderr = std::fs::read_to_string(&logs[1]).unwrap();
    assert!(
        stderr.contains("partition restored from its snapshot"),
        "the survivor restored no partition: {stderr}"
    );

    let got: Vec<(String, Action)> = drain(bootstrap, "quench.decisions", 1)
        .iter()
        .map(|(_, _, b)| serde_json::from_slice::<Decision>(b).unwrap())
        .map(|d| (d.decision_id, d.action))
        .collect();
    let distinct: BTreeSet<(String, Action)> = got.iter().cloned().collect();
    assert_eq!(
        distinct,
        whole.iter().cloned().collect::<BTreeSet<_>>(),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_one_killed_with_sigkill_mid_stream_decide_as_one_pipeline() {
    let (_cluster, bootstrap) = cluster();
    two_instances_one_stopped_mid_stream(&bootstrap, "quench-keyed-two", Stop::Kill, &[]).await;
}

/// The same on Tansu, a broker in its own process, with the first instance stopped by SIGTERM: it saves, commits
/// and leaves the group, and the survivor is given its partitions. (Tansu 0.6 does not give a SIGKILLed member's
/// partitions to the survivor: after the session timeout it revokes the survivor's own partitions and assigns them
/// back, and the dead member's stay unassigned; librdkafka's mock cluster above does reassign them.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_tansu_one_stopped_mid_stream_decide_as_one_pipeline() {
    let Some(tansu) = common::tansu::start() else {
        return;
    };
    let keyed = KeyedConfig::default();
    let mut topics: Vec<(&str, i32, bool)> =
        cli::DEMO_TOPICS.iter().map(|t| (*t, 1, false)).collect();
    topics.push((&keyed.topic, KEYED_PARTITIONS, false));
    topics.push((&keyed.snapshots_topic, KEYED_PARTITIONS, true));
    topics.push((&keyed.links_topic, KEYED_PARTITIONS, true));
    common::tansu::create_topics(&tansu.bootstrap, &topics).await;
    two_instances_one_stopped_mid_stream(
        &tansu.bootstrap,
        "quench-keyed-tansu",
        Stop::Terminate,
        // Tansu 0.6 reports a partition's end below its last record when a batch holds several records, and
        // consumers then do not see the tail until more arrives: one record per batch
        &[("batch.num.messages", "1")],
    )
    .await;
}

/// Found measuring the detect stage without a broker: `new_client` counted the colleagues who granted a client per
/// keyed partition, so a client three colleagues in other partitions had granted looked new to the fourth (on
/// `quench simulate --people 1000 --agents 100 --days 3 --seed 1`, first 200,000 lines: 32 decisions over one
/// partition, 35 over 4, 39 over 8). Whatever the organisation learns as a whole must not depend on how the keyed
/// topic is partitioned: the same routed records, split over 1, 3 and 7 partitions' pipelines, decide the same.
#[test]
fn the_detect_stage_decides_the_same_over_any_number_of_keyed_partitions() {
    use std::hash::{Hash, Hasher};
    let dir = common::fresh_dir("quench-keyed-partitions");
    let sim = quench::lab::simulate::SimConfig {
        people: 200,
        agents: 20,
        days: 2,
        seed: 11,
        only: None,
        event_time_order: false,
    };
    quench::lab::simulate::simulate(&sim, &dir).unwrap();
    let cfg = cli::eval::traffic_config(&dir).unwrap();
    // the route stage over the simulated lines, on the stream's own clock (no wall clock in a test: the lines are
    // judged as if read in 2100, long after they were written)
    let mut router = Pipeline::new(&cfg).unwrap();
    router.use_stream_time();
    let text = std::fs::read_to_string(dir.join("events.jsonl")).unwrap();
    let mut routed = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let prov = quench::event::Provenance::Kafka {
            topic: "in".into(),
            partition: 0,
            offset: i as i64,
        };
        let mut out = Vec::new();
        if router
            .route(
                line.as_bytes(),
                None,
                prov,
                quench::event::Ts(4_102_444_800_000),
                &mut out,
            )
            .is_ok()
        {
            routed.extend(out.into_iter().filter(|r| !r.link));
        }
    }
    assert!(routed.len() > 10_000, "{} events routed", routed.len());
    let decide = |partitions: u64| {
        let mut pipelines: Vec<Pipeline> = (0..partitions)
            .map(|_| Pipeline::for_detect(&cfg).unwrap())
            .collect();
        let mut decisions = Vec::new();
        for r in &routed {
            if r.announce {
                // a configuration announcement's copy goes to every partition, as the route stage sends it
                for p in &mut pipelines {
                    p.process_routed(&r.body, &mut decisions).unwrap();
                }
                continue;
            }
            let mut h = std::collections::hash_map::DefaultHasher::new();
            r.key.hash(&mut h);
            let p = (h.finish() % partitions) as usize;
            pipelines[p]
                .process_routed(&r.body, &mut decisions)
                .unwrap();
        }
        decisions
    };
    let one = decide(1);
    let detectors: BTreeSet<&str> = one
        .iter()
        .flat_map(|d| d.findings.iter().map(|f| f.detector.as_str()))
        .collect();
    assert!(
        detectors.contains("new_client"),
        "the traffic exercises the organisation-wide counts: {detectors:?}"
    );
    let ids = |ds: &[Decision]| -> BTreeSet<(String, Action)> {
        ds.iter()
            .map(|d| (d.decision_id.clone(), d.action))
            .collect()
    };
    for partitions in [3, 7] {
        assert_eq!(
            ids(&decide(partitions)),
            ids(&one),
            "{partitions} partitions against one"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
