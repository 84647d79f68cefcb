//! Kafka for the tests: librdkafka's mock cluster with the demo's topics, reading every record of a topic, the
//! demo's Kafka settings, and a whole `run_kafka` over what the topics hold.
//!
//! In: a bootstrap address, topics. Out: records, settings, run reports. State: none.

#![allow(clippy::unwrap_used, dead_code, unused_imports)]

use super::*;

/// A record's payload and its headers.
pub type Record = (Vec<u8>, Vec<(String, String)>);

/// Every record now on `topic` (all partitions, each in order).
pub fn read_topic(bootstrap: &str, topic: &str) -> Vec<Record> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "test-reader")
        .create()
        .unwrap();
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    let mut want = 0;
    for p in md.topics()[0].partitions() {
        let (lo, hi) = c
            .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
            .unwrap();
        want += hi - lo;
        tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while (out.len() as i64) < want && Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            let headers = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|x| {
                            (
                                x.key.to_string(),
                                String::from_utf8_lossy(x.value.unwrap_or(&[])).to_string(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push((m.payload().unwrap_or(&[]).to_vec(), headers));
        }
    }
    assert_eq!(out.len() as i64, want, "could not read all of {topic}");
    out
}

/// The payloads of `topic`.
pub fn payloads(bootstrap: &str, topic: &str) -> Vec<Vec<u8>> {
    read_topic(bootstrap, topic)
        .into_iter()
        .map(|(p, _)| p)
        .collect()
}

/// Kafka settings for the demo topics on `bootstrap`, consumer group `group`, committing every 100 ms, with a
/// short session timeout so that a restarted run takes over the group quickly.
pub fn kafka(bootstrap: &str, group: &str) -> KafkaConfig {
    KafkaConfig {
        brokers: bootstrap.into(),
        group_id: group.into(),
        topics: vec![TopicConfig {
            name: cli::DEMO_TOPIC.into(),
            format: "auto".into(),
        }],
        decisions_topic: "quench.decisions".into(),
        ocsf_topic: None,
        dead_letter_topic: "quench.deadletter".into(),
        commit_interval_ms: 100,
        properties: [
            ("session.timeout.ms", "6000"),
            ("heartbeat.interval.ms", "500"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect(),
        keyed: None,
    }
}

/// librdkafka's mock cluster with the demo's topics, the demo's events already on the input topic, and Kafka
/// settings for consumer group `group`. Keep the cluster alive for the test's length.
pub async fn demo_cluster(
    group: &str,
) -> (
    rdkafka::mocking::MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    String,
    KafkaConfig,
) {
    let cluster = rdkafka::mocking::MockCluster::new(1).unwrap();
    let bootstrap = cluster.bootstrap_servers();
    for t in cli::DEMO_TOPICS {
        cluster.create_topic(t, 1, 1).unwrap();
    }
    let k = kafka(&bootstrap, group);
    cli::produce_lines(&k, cli::DEMO_TOPIC, &demo_events())
        .await
        .unwrap();
    (cluster, bootstrap, k)
}

/// A dispatcher with the targets of `respond`.
pub fn dispatcher(respond: &quench::respond::RespondConfig) -> quench::respond::Dispatcher {
    quench::respond::Dispatcher::new(
        respond.clone(),
        quench::respond::build_targets(respond).unwrap(),
        None,
    )
    .unwrap()
}

/// Run `run_kafka` (what `quench run` runs) over what is on the input topics with the targets of `respond`, until
/// every command it wrote has an outcome (`stop_at_end`).
pub async fn run_to_end(
    k: &KafkaConfig,
    respond: &quench::respond::RespondConfig,
) -> quench::runtime::KafkaReport {
    let cfg = quench::config::Config {
        kafka: Some(k.clone()),
        respond: respond.clone(),
        ..Default::default()
    };
    let dispatcher = dispatcher(respond);
    let mut pipeline = quench::pipeline::Pipeline::new(&cfg).unwrap();
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    quench::runtime::run_kafka(
        k,
        &mut pipeline,
        &dispatcher,
        quench::runtime::RunOptions {
            stop_at_end: true,
            ..Default::default()
        },
        stop_rx,
        |_| {},
    )
    .await
    .unwrap()
}
