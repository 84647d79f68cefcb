//! Partition snapshots on a Kafka topic: what the keyed topology's second stage has learned for one partition of the
//! keyed topic, saved with the offset of the next record it has not processed, so that whichever instance owns the
//! partition next (after a rebalance, a crash or a deploy) resumes from it instead of starting cold.
//!
//! In: a partition's state (the pipeline's JSON, [`crate::pipeline::Pipeline::save_state`]) and its next offset.
//! Out: records on the snapshots topic, and at restore the newest complete snapshot of a partition. State: the
//! writer's generation counter.
//!
//! A snapshot is written as chunks of at most [`CHUNK_BYTES`] (keys `{partition}/{i}`), then a manifest (key
//! `{partition}`) naming the generation, the chunk count, the length and SHA-256 of the whole, and the next offset.
//! The keys repeat from one snapshot to the next, so a compacted topic keeps about one snapshot per partition. A
//! restore reads the partition of the topic the snapshot went to from its beginning and keeps the complete,
//! verified snapshot with the highest next offset: a snapshot cut off by a crash (chunks without a manifest) is
//! never half read, and one written late by an instance that had already lost the partition cannot replace a newer
//! one. Snapshot `p` goes to partition `p mod n` of a topic with `n` partitions.
//!
//! The manifest carries a format version; this Quench reads versions up to [`VERSION`] and refuses a newer one
//! with its version named.

use crate::bus::KafkaConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The snapshot format this Quench writes and the newest it reads.
pub const VERSION: u32 = 1;

/// Most bytes of one chunk record (Kafka's default `message.max.bytes` is about 1 MB).
pub const CHUNK_BYTES: usize = 256 * 1024;

/// How long a restore may take to read a partition of the snapshots topic.
const READ_TIMEOUT: Duration = Duration::from_secs(120);

/// The header naming a record's snapshot generation.
const GENERATION: &str = "quench.snapshot";

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("kafka.keyed.snapshots_topic = {topic:?}: {source}")]
    Kafka { topic: String, source: KafkaError },
    #[error("kafka.keyed.snapshots_topic = {topic:?}: no such topic (create it with cleanup.policy=compact)")]
    NoTopic { topic: String },
    #[error("kafka.keyed.snapshots_topic = {topic:?}: the snapshot of partition {partition} is format version {found}; this Quench reads versions up to {VERSION}")]
    Version {
        topic: String,
        partition: i32,
        found: u32,
    },
    #[error("kafka.keyed.snapshots_topic = {topic:?}: reading partition {partition} took longer than {secs} s")]
    Timeout {
        topic: String,
        partition: i32,
        secs: u64,
    },
}

/// One partition's saved state.
pub struct Snapshot {
    /// The offset on the keyed topic of the next record the state has not seen.
    pub next_offset: i64,
    /// The pipeline's state.
    pub state: Box<RawValue>,
    /// Its length in bytes.
    pub bytes: usize,
}

/// The last record of a snapshot.
#[derive(Serialize, Deserialize)]
struct Manifest {
    version: u32,
    partition: i32,
    generation: String,
    chunks: u32,
    bytes: u64,
    sha256: String,
    next_offset: i64,
}

/// The number of partitions of `topic`.
fn partitions_of(
    client: &rdkafka::client::Client<impl rdkafka::ClientContext>,
    topic: &str,
) -> Result<i32, SnapshotError> {
    let err = |source| SnapshotError::Kafka {
        topic: topic.into(),
        source,
    };
    let md = client
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(err)?;
    let n = md
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map_or(0, |t| t.partitions().len() as i32);
    if n == 0 {
        return Err(SnapshotError::NoTopic {
            topic: topic.into(),
        });
    }
    Ok(n)
}

/// Writes snapshots to the snapshots topic.
pub struct Writer {
    producer: FutureProducer,
    topic: String,
    partitions: i32,
    /// Tells this writer's generations from another instance's.
    instance: String,
    written: u64,
}

impl Writer {
    pub fn new(k: &KafkaConfig, topic: &str) -> Result<Writer, SnapshotError> {
        let err = |source| SnapshotError::Kafka {
            topic: topic.into(),
            source,
        };
        let producer = crate::bus::producer(k).map_err(err)?;
        let partitions = partitions_of(producer.client(), topic)?;
        Ok(Writer {
            producer,
            topic: topic.into(),
            partitions,
            instance: format!("{:016x}", fastrand::u64(..)),
            written: 0,
        })
    }

    /// Save `state` as partition `partition`'s snapshot at `next_offset`, and wait until the broker has every
    /// record of it. Returns the bytes written.
    pub async fn write(
        &mut self,
        partition: i32,
        next_offset: i64,
        state: &RawValue,
    ) -> Result<usize, SnapshotError> {
        self.written += 1;
        let generation = format!("{}-{}", self.instance, self.written);
        let body = state.get().as_bytes();
        let to = partition.rem_euclid(self.partitions);
        let err = |source| SnapshotError::Kafka {
            topic: self.topic.clone(),
            source,
        };
        let headers = || {
            OwnedHeaders::new().insert(Header {
                key: GENERATION,
                value: Some(generation.as_str()),
            })
        };
        let keys: Vec<String> = (0..body.len().div_ceil(CHUNK_BYTES))
            .map(|i| format!("{partition}/{i}"))
            .collect();
        let mut acks = Vec::new();
        let mut chunks = 0u32;
        for (key, chunk) in keys.iter().zip(body.chunks(CHUNK_BYTES)) {
            let rec = FutureRecord::to(&self.topic)
                .partition(to)
                .key(key)
                .payload(chunk)
                .headers(headers());
            acks.push(
                self.producer
                    .send(rec, Timeout::After(Duration::from_secs(30))),
            );
            chunks += 1;
        }
        for a in acks {
            a.await.map_err(|(e, _)| err(e))?;
        }
        let manifest = serde_json::to_vec(&Manifest {
            version: VERSION,
            partition,
            generation: generation.clone(),
            chunks,
            bytes: body.len() as u64,
            sha256: hex::encode(Sha256::digest(body)),
            next_offset,
        })
        .unwrap_or_default();
        let key = partition.to_string();
        let rec = FutureRecord::to(&self.topic)
            .partition(to)
            .key(&key)
            .payload(&manifest)
            .headers(headers());
        self.producer
            .send(rec, Timeout::After(Duration::from_secs(30)))
            .await
            .map_err(|(e, _)| err(e))?;
        Ok(body.len())
    }
}

/// The newest complete snapshot of `partition` on `topic`, if there is one. Blocking: it reads the topic's
/// partition from its beginning.
pub fn read(
    k: &KafkaConfig,
    topic: &str,
    partition: i32,
) -> Result<Option<Snapshot>, SnapshotError> {
    let err = |source| SnapshotError::Kafka {
        topic: topic.into(),
        source,
    };
    let consumer: BaseConsumer = crate::bus::consumer(
        k,
        &format!("{}.snapshot-reader", k.group_id),
        &[("enable.partition.eof", "true")],
    )
    .map_err(err)?;
    let n = partitions_of(consumer.client(), topic)?;
    let from = partition.rem_euclid(n);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, from, Offset::Beginning)
        .map_err(err)?;
    consumer.assign(&tpl).map_err(err)?;
    let chunk_prefix = format!("{partition}/");
    let manifest_key = partition.to_string();
    // chunks by generation, until their manifest is read
    let mut chunks: HashMap<String, Vec<(u32, Vec<u8>)>> = HashMap::new();
    let mut best: Option<Snapshot> = None;
    let started = Instant::now();
    // After the end of the partition is reported, keep reading briefly: a broker may report its end early.
    let mut quiet_since: Option<Instant> = None;
    loop {
        if started.elapsed() > READ_TIMEOUT {
            return Err(SnapshotError::Timeout {
                topic: topic.into(),
                partition,
                secs: READ_TIMEOUT.as_secs(),
            });
        }
        if quiet_since.is_some_and(|t| t.elapsed() > Duration::from_millis(300)) {
            break;
        }
        let m = match consumer.poll(Duration::from_millis(100)) {
            None => {
                if quiet_since.is_none() && started.elapsed() > Duration::from_secs(10) {
                    quiet_since = Some(Instant::now());
                }
                continue;
            }
            Some(Err(KafkaError::PartitionEOF(_))) => {
                quiet_since.get_or_insert_with(Instant::now);
                continue;
            }
            Some(Err(e)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF) => {
                quiet_since.get_or_insert_with(Instant::now);
                continue;
            }
            Some(Err(e)) => return Err(err(e)),
            Some(Ok(m)) => m,
        };
        if quiet_since.is_some() {
            quiet_since = Some(Instant::now());
        }
        let Some(key) = m.key().and_then(|k| std::str::from_utf8(k).ok()) else {
            continue;
        };
        let generation = m.headers().and_then(|h| {
            h.iter()
                .find(|x| x.key == GENERATION)
                .and_then(|x| x.value)
                .and_then(|v| std::str::from_utf8(v).ok())
                .map(str::to_string)
        });
        let Some(generation) = generation else {
            continue;
        };
        let payload = m.payload().unwrap_or(&[]);
        if let Some(i) = key.strip_prefix(&chunk_prefix) {
            if let Ok(i) = i.parse::<u32>() {
                chunks
                    .entry(generation)
                    .or_default()
                    .push((i, payload.to_vec()));
            }
            continue;
        }
        if key != manifest_key {
            continue;
        }
        let Ok(man) = serde_json::from_slice::<Manifest>(payload) else {
            tracing::warn!(topic, partition, "unreadable snapshot manifest skipped");
            continue;
        };
        if man.version > VERSION {
            return Err(SnapshotError::Version {
                topic: topic.into(),
                partition,
                found: man.version,
            });
        }
        let Some(mut parts) = chunks.remove(&man.generation) else {
            continue;
        };
        parts.sort_by_key(|(i, _)| *i);
        parts.dedup_by_key(|(i, _)| *i);
        let complete = parts.len() == man.chunks as usize
            && parts.iter().enumerate().all(|(n, (i, _))| *i == n as u32);
        if !complete {
            tracing::warn!(topic, partition, generation = %man.generation, "incomplete snapshot skipped");
            continue;
        }
        let body: Vec<u8> = parts.into_iter().flat_map(|(_, b)| b).collect();
        if body.len() as u64 != man.bytes || hex::encode(Sha256::digest(&body)) != man.sha256 {
            tracing::warn!(topic, partition, generation = %man.generation, "snapshot failing its checksum skipped");
            continue;
        }
        let Ok(text) = String::from_utf8(body) else {
            continue;
        };
        let Ok(state) = RawValue::from_string(text) else {
            continue;
        };
        if best
            .as_ref()
            .is_none_or(|b| man.next_offset >= b.next_offset)
        {
            let bytes = state.get().len();
            best = Some(Snapshot {
                next_offset: man.next_offset,
                state,
                bytes,
            });
        }
    }
    Ok(best)
}
