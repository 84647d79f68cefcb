//! Kafka plumbing shared by everything that talks to the broker (the runtime's input, decisions and dead letters,
//! respond's outbox): the `[kafka]` settings, the one consumer and producer builders, producing one record with its
//! acknowledgement awaited, and the dead-letter headers. A leaf: it imports no stage.
//!
//! In: a [`KafkaConfig`] and records. Out: acknowledged records, and the headers of a dead-letter record (their
//! values escaped: they carry input-derived error text). State: none.

use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// `[kafka]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// `bootstrap.servers`. Required.
    pub brokers: String,
    /// Consumer group id. Default `"quench"`.
    #[serde(default = "default_group")]
    pub group_id: String,
    /// Input topics, each with its format (`auto` detects per message). Required, at least one.
    pub topics: Vec<TopicConfig>,
    /// Topic decisions are produced to. Default `"quench.decisions"`.
    #[serde(default = "default_decisions")]
    pub decisions_topic: String,
    /// Topic each decision is also produced to as an OCSF 1.8.0 Detection Finding (class 2004), keyed by decision
    /// id. Default: none.
    #[serde(default)]
    pub ocsf_topic: Option<String>,
    /// Topic unusable messages go to, with the reason in headers. Default `"quench.deadletter"`.
    #[serde(default = "default_dlq")]
    pub dead_letter_topic: String,
    /// How often processed offsets are committed, ms. Default 1000.
    #[serde(default = "default_commit")]
    pub commit_interval_ms: u64,
    /// librdkafka properties passed through to consumer and producer (`security.protocol`, `sasl.*`,
    /// `ssl.*`, fetch tuning …). Default: none.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// `[kafka.keyed]`: run as the keyed topology, so that several instances can share the work. Default: none
    /// (one instance detects on the input topics directly and needs no internal topic).
    #[serde(default)]
    pub keyed: Option<KeyedConfig>,
}

/// `[kafka.keyed]`: the keyed topology (see [`crate::runtime::keyed`]). Every instance runs both stages: the
/// first reads the input topics in consumer group `group_id`, and routes each event to `topic`, keyed by its
/// correlation subject; the second reads `topic` in consumer group `{group_id}.keyed` and detects, one pipeline per
/// partition, saving each partition's state to `snapshots_topic`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeyedConfig {
    /// The internal topic each principal's events are brought together on. Its partition count bounds the number
    /// of instances that detect in parallel. Default `"quench.keyed"`.
    pub topic: String,
    /// The topic each partition's state is saved to (`cleanup.policy=compact`; as many partitions as `topic`,
    /// or fewer). An instance that takes a partition over restores it from here. Default
    /// `"quench.keyed.snapshots"`.
    pub snapshots_topic: String,
    /// The topic the first stage's instances share the links they learn on (token → job, token, job and
    /// session → principal; `cleanup.policy=compact`), so that each routes a token's or a job's events to its
    /// principal whichever instance saw the link, and a restarted instance starts with them. Default
    /// `"quench.keyed.links"`.
    pub links_topic: String,
    /// Seconds between snapshots of a partition that has processed records; offsets on `topic` are committed
    /// right after each. Default 10.
    pub snapshot_interval_secs: u64,
    /// Threads the detect stage processes its partitions on (each partition on one of them, so its events stay in
    /// order). More threads than partitions held leave the extra ones idle. Default: the machine's cores.
    pub threads: Option<usize>,
}

impl Default for KeyedConfig {
    fn default() -> Self {
        KeyedConfig {
            topic: "quench.keyed".into(),
            snapshots_topic: "quench.keyed.snapshots".into(),
            links_topic: "quench.keyed.links".into(),
            snapshot_interval_secs: 10,
            threads: None,
        }
    }
}

impl KeyedConfig {
    /// The detect stage's threads: `threads`, or the machine's cores.
    pub fn threads(&self) -> usize {
        self.threads.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
    }
}

impl KafkaConfig {
    /// A librdkafka client configuration: the brokers and the pass-through properties.
    pub fn client(&self) -> rdkafka::config::ClientConfig {
        let mut c = rdkafka::config::ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        for (key, v) in &self.properties {
            c.set(key, v);
        }
        c
    }
}

fn default_group() -> String {
    "quench".into()
}
fn default_decisions() -> String {
    "quench.decisions".into()
}
fn default_dlq() -> String {
    "quench.deadletter".into()
}
fn default_commit() -> u64 {
    1000
}

/// One input topic.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicConfig {
    /// Topic name. Required.
    pub name: String,
    /// Format name or `auto`. Default `"auto"`.
    #[serde(default = "default_format")]
    pub format: String,
}

fn default_format() -> String {
    "auto".into()
}

/// A consumer in `group` that stores and commits offsets only when told (after processing), starts at the
/// earliest offset of a partition with no commit (overridable in `kafka.properties`), and does not report
/// partition ends. `extra` holds settings a caller needs unless `kafka.properties` says otherwise.
pub fn consumer<C: rdkafka::config::FromClientConfig>(
    k: &KafkaConfig,
    group: &str,
    extra: &[(&str, &str)],
) -> Result<C, KafkaError> {
    consumer_config(k, group, extra).create()
}

/// The configuration [`consumer`] creates its consumer from (for a consumer with a context of its own).
pub fn consumer_config(
    k: &KafkaConfig,
    group: &str,
    extra: &[(&str, &str)],
) -> rdkafka::config::ClientConfig {
    let mut c = k.client();
    c.set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false");
    for (key, value) in [("auto.offset.reset", "earliest")].iter().chain(extra) {
        if !k.properties.contains_key(*key) {
            c.set(*key, *value);
        }
    }
    c
}

/// Store the offset of a processed record (committed with the next commit), unless its partition has been
/// taken from this consumer by a rebalance meanwhile: its new owner resumes from the last commit, so there is
/// nothing to store (librdkafka refuses with an "erroneous state"), and the loop goes on.
pub fn store_offset<C: rdkafka::consumer::ConsumerContext>(
    consumer: &impl rdkafka::consumer::Consumer<C>,
    topic: &str,
    partition: i32,
    offset: i64,
) -> Result<(), KafkaError> {
    match consumer.store_offset(topic, partition, offset) {
        Err(KafkaError::StoreOffset(rdkafka::types::RDKafkaErrorCode::State)) => {
            tracing::debug!(
                topic,
                partition,
                offset,
                "partition no longer assigned: offset not stored"
            );
            Ok(())
        }
        r => r,
    }
}

/// A producer for records that must not be lost or reordered (idempotent, acks=all) and must not wait for a batch
/// (`linger.ms=0`: a decision waits for its acknowledgement before its revocation goes out). Both can be
/// overridden in `kafka.properties`.
pub fn producer(k: &KafkaConfig) -> Result<FutureProducer, KafkaError> {
    let mut c = k.client();
    if !k.properties.contains_key("enable.idempotence") {
        c.set("enable.idempotence", "true");
    }
    if !k.properties.contains_key("linger.ms") {
        c.set("linger.ms", "0");
    }
    c.create()
}

/// Produce one record and wait (up to 30 s) for the broker's acknowledgement.
pub async fn produce(
    p: &FutureProducer,
    topic: &str,
    key: &[u8],
    payload: &[u8],
    headers: Option<OwnedHeaders>,
) -> Result<(), KafkaError> {
    let mut rec = FutureRecord::to(topic).key(key).payload(payload);
    if let Some(h) = headers {
        rec = rec.headers(h);
    }
    p.send(rec, Timeout::After(Duration::from_secs(30)))
        .await
        .map(|_| ())
        .map_err(|(e, _)| e)
}

/// Create `topics` (name, partitions, compacted) with replication factor 1 on the brokers of `k` (tests,
/// benchmarks, a first setup of the keyed topology's topics).
pub async fn create_topics(
    k: &KafkaConfig,
    topics: &[(&str, i32, bool)],
) -> Result<(), KafkaError> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = k.client().create()?;
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|(name, partitions, compact)| {
            let t = NewTopic::new(name, *partitions, TopicReplication::Fixed(1));
            if *compact {
                t.set("cleanup.policy", "compact")
            } else {
                t
            }
        })
        .collect();
    for r in admin.create_topics(&new, &AdminOptions::new()).await? {
        r.map_err(|(_, code)| KafkaError::AdminOp(code))?;
    }
    Ok(())
}

/// The headers of a dead-letter record: `quench.error` (a stable code), `quench.reason` (the error text) and
/// `quench.source` (`topic/partition@offset`). The values quote input (a record's parse error, a server's answer),
/// so their control characters are escaped ([`crate::text::escape_control`]): a consumer that prints a header gets
/// one line and no terminal escape.
pub fn dead_letter_headers(code: &str, reason: &str, source: &str) -> OwnedHeaders {
    let mut h = OwnedHeaders::new_with_capacity(3);
    for (key, value) in [
        ("quench.error", code),
        ("quench.reason", reason),
        ("quench.source", source),
    ] {
        let value = crate::text::escape_control(value);
        h = h.insert(Header {
            key,
            value: Some(value.as_ref()),
        });
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::message::Headers;

    #[test]
    fn storing_the_offset_of_a_partition_taken_by_a_rebalance_does_not_stop_the_loop() {
        // a consumer that knows the partition (from the metadata) but does not hold it
        let cluster = rdkafka::mocking::MockCluster::new(1).unwrap();
        cluster.create_topic("input", 1, 1).unwrap();
        let k = KafkaConfig {
            brokers: cluster.bootstrap_servers(),
            group_id: "g".into(),
            topics: vec![],
            decisions_topic: default_decisions(),
            ocsf_topic: None,
            dead_letter_topic: default_dlq(),
            commit_interval_ms: default_commit(),
            properties: BTreeMap::new(),
            keyed: None,
        };
        let c: rdkafka::consumer::BaseConsumer = consumer(&k, "g", &[]).unwrap();
        use rdkafka::consumer::Consumer;
        c.fetch_metadata(Some("input"), Duration::from_secs(10))
            .unwrap();
        // librdkafka refuses the offset of a partition not assigned (what the loops used to return as fatal) …
        let raw = c.store_offset("input", 0, 5);
        assert!(
            matches!(
                raw,
                Err(KafkaError::StoreOffset(
                    rdkafka::types::RDKafkaErrorCode::State
                ))
            ),
            "{raw:?}"
        );
        // … and the loops' store_offset goes on
        store_offset(&c, "input", 0, 5).unwrap();
    }

    #[test]
    fn a_reason_forging_a_terminal_escape_and_a_line_leaves_no_control_byte_in_the_headers() {
        let h = dead_letter_headers(
            "not_json",
            "unknown variant `\x1b[2J\nfake.jsonl:1: forged`\r\u{9b}",
            "in\n/0@7",
        );
        let got: Vec<(String, Vec<u8>)> = h
            .iter()
            .map(|x| (x.key.to_string(), x.value.unwrap_or(&[]).to_vec()))
            .collect();
        assert_eq!(got.len(), 3);
        for (key, v) in &got {
            let text = String::from_utf8(v.clone()).unwrap();
            assert!(
                !text.chars().any(char::is_control),
                "{key} carries a control character: {text:?}"
            );
        }
        assert_eq!(got[1].0, "quench.reason");
        assert_eq!(
            got[1].1,
            b"unknown variant `\\u{1b}[2J\\nfake.jsonl:1: forged`\\r\\u{9b}"
        );
        assert_eq!(got[2].1, b"in\\n/0@7");
    }
}
