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
use rdkafka::ClientConfig;
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
