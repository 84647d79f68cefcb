//! Partition snapshots on a Kafka topic: what the keyed topology's second stage has learned for one partition of the
//! keyed topic, saved with the offset of the next record it has not processed, so that whichever instance owns the
//! partition next (after a rebalance, a crash or a deploy) resumes from it instead of starting cold.
//!
//! In: a partition's state (the pipeline's JSON, [`crate::pipeline::Pipeline::save_state`]) and its next offset.
//! Out: records on the snapshots topic, and at restore the newest complete snapshot of a partition. State: the
//! writer's generation counter.
//!
//! A snapshot is written as chunks of at most [`CHUNK_BYTES`] (keys `{partition}/{generation}/{i}`), then a
//! manifest (key `{partition}`) naming the generation, the chunk count, the length and SHA-256 of the whole, and
//! the next offset. Once the manifest is acknowledged, the previous generation's chunks are deleted (tombstones),
//! so a compacted topic keeps one complete snapshot per partition, and a snapshot cut off by a crash (chunks
//! without a manifest) can never have compaction remove the chunks of the last complete one. A restore reads the
//! partition of the topic the snapshot went to from its beginning and keeps the complete, verified snapshot with
//! the highest next offset: a cut-off snapshot is never half read, and one written late by an instance that had
//! already lost the partition cannot replace a newer one. Snapshot `p` goes to partition `p mod n` of a topic with
//! `n` partitions.
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
    /// Its generation and chunk count (for the next writer to delete its chunks).
    pub generation: String,
    pub chunks: u32,
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
    /// Per partition, the generation and chunk count of the last complete snapshot (deleted after the next).
    previous: HashMap<i32, (String, u32)>,
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
            previous: HashMap::new(),
        })
    }

    /// The snapshot partition `partition` was restored from: deleted once this writer has written a newer one.
    pub fn adopt(&mut self, partition: i32, s: &Snapshot) {
        self.previous
            .insert(partition, (s.generation.clone(), s.chunks));
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
            .map(|i| format!("{partition}/{generation}/{i}"))
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
        // the previous snapshot is superseded: delete its chunks (their manifest key now holds the new one)
        if let Some((old, n)) = self
            .previous
            .insert(partition, (generation.clone(), chunks))
        {
            let keys: Vec<String> = (0..n).map(|i| format!("{partition}/{old}/{i}")).collect();
            let mut acks = Vec::new();
            for key in &keys {
                let rec: FutureRecord<'_, String, [u8]> =
                    FutureRecord::to(&self.topic).partition(to).key(key);
                acks.push(
                    self.producer
                        .send(rec, Timeout::After(Duration::from_secs(30))),
                );
            }
            for a in acks {
                a.await.map_err(|(e, _)| err(e))?;
            }
        }
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
    // After the end of the partition is reported, keep reading briefly: a broker may report its end early. A
    // broker that never reports it: the end is where nothing has come for 5 s.
    let mut quiet_since: Option<Instant> = None;
    let mut last_message = Instant::now();
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
                if quiet_since.is_none() && last_message.elapsed() > Duration::from_secs(5) {
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
        last_message = Instant::now();
        if quiet_since.is_some() {
            quiet_since = Some(last_message);
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
        let Some(payload) = m.payload() else {
            // a deleted chunk
            continue;
        };
        if let Some(rest) = key.strip_prefix(&chunk_prefix) {
            let i = rest
                .rsplit_once('/')
                .filter(|(g, _)| *g == generation)
                .and_then(|(_, i)| i.parse::<u32>().ok());
            if let Some(i) = i {
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
                generation: man.generation,
                chunks: man.chunks,
                next_offset: man.next_offset,
                state,
                bytes,
            });
        }
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kafka(bootstrap: String) -> KafkaConfig {
        KafkaConfig {
            brokers: bootstrap,
            group_id: "snapshot-test".into(),
            topics: vec![],
            decisions_topic: "d".into(),
            ocsf_topic: None,
            dead_letter_topic: "dl".into(),
            commit_interval_ms: 100,
            properties: Default::default(),
            keyed: None,
        }
    }

    /// Every record of partition 0 of `topic`: key and whether it is a tombstone.
    fn records(k: &KafkaConfig, topic: &str) -> Vec<(String, bool)> {
        let c: BaseConsumer = crate::bus::consumer(k, "snapshot-test-reader", &[]).unwrap();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, 0, Offset::Beginning)
            .unwrap();
        c.assign(&tpl).unwrap();
        let (_, high) = c
            .fetch_watermarks(topic, 0, Duration::from_secs(10))
            .unwrap();
        let mut out = Vec::new();
        while (out.len() as i64) < high {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
                let key = String::from_utf8_lossy(m.key().unwrap_or(&[])).to_string();
                out.push((key, m.payload().is_none()));
            }
        }
        out
    }

    #[tokio::test]
    async fn a_newer_snapshot_deletes_the_chunks_of_the_one_before_and_a_cut_off_one_hides_nothing()
    {
        let cluster = rdkafka::mocking::MockCluster::new(1).unwrap();
        cluster.create_topic("snaps", 1, 1).unwrap();
        let k = kafka(cluster.bootstrap_servers());
        let mut w = Writer::new(&k, "snaps").unwrap();
        // two chunks each
        let big = |tag: &str| {
            RawValue::from_string(format!(
                "{{\"tag\":\"{tag}\",\"pad\":\"{}\"}}",
                "x".repeat(CHUNK_BYTES)
            ))
            .unwrap()
        };
        w.write(3, 100, &big("first")).await.unwrap();
        w.write(3, 200, &big("second")).await.unwrap();
        let recs = records(&k, "snaps");
        let chunk_keys: Vec<&String> = recs
            .iter()
            .filter(|(k, _)| k.contains('/'))
            .map(|(k, _)| k)
            .collect();
        // 2 chunks of the first, 2 of the second, then the first's 2 deleted: distinct keys per generation
        assert_eq!(chunk_keys.len(), 6, "{recs:?}");
        let deleted: Vec<&String> = recs.iter().filter(|(_, t)| *t).map(|(k, _)| k).collect();
        assert_eq!(deleted, chunk_keys[..2].to_vec(), "{recs:?}");
        // a third snapshot cut off before its manifest (a crash): its chunks have keys of their own, so the last
        // complete snapshot is still whole, and it is what a restore reads
        let producer = crate::bus::producer(&k).unwrap();
        crate::bus::produce(&producer, "snaps", b"3/cut-1/0", b"{\"partial", None)
            .await
            .unwrap();
        let k2 = k.clone();
        let s = tokio::task::spawn_blocking(move || read(&k2, "snaps", 3))
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(s.next_offset, 200);
        assert!(s.state.get().contains("second"));
        assert_eq!(s.chunks, 2);
    }
}
