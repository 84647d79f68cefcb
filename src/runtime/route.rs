//! The keyed topology's first stage inside the consume loop: the links topic every instance reads whole, the
//! keyed topic's partition count, and the routed records sent and not yet acknowledged.
//!
//! In: link records; routed records to send. Out: links applied by the caller; input offsets that may be stored
//! once everything sent before them is acknowledged. State: the links consumer, and the queue of records in flight
//! (at most [`MAX_IN_FLIGHT`]).

use super::consume::RunError;
use super::produce::refused_as_such;
use crate::bus::KafkaConfig;
use crate::ingest::kafka::Input;
use crate::pipeline::Pipeline;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::FutureProducer;
use std::collections::HashMap;
use std::time::Duration;

/// The links topic of the keyed topology, read from its beginning by every instance's first stage (no consumer
/// group: each instance reads all of it).
pub(super) struct Links {
    consumer: StreamConsumer,
    topic: String,
}

impl Links {
    pub(super) fn open(k: &KafkaConfig, topic: &str) -> Result<Links, RunError> {
        let consumer: StreamConsumer = crate::bus::consumer(
            k,
            &format!("{}.links-{:016x}", k.group_id, fastrand::u64(..)),
            &[],
        )?;
        let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
        let mut tpl = rdkafka::TopicPartitionList::new();
        for t in md.topics().iter().filter(|t| t.name() == topic) {
            for p in t.partitions() {
                tpl.add_partition_offset(topic, p.id(), rdkafka::Offset::Beginning)?;
            }
        }
        if tpl.count() == 0 {
            return Err(RunError::Build(format!(
                "kafka.keyed.links_topic = {topic:?}: no such topic (create it with cleanup.policy=compact)"
            )));
        }
        consumer.assign(&tpl)?;
        Ok(Links {
            consumer,
            topic: topic.into(),
        })
    }

    /// Apply every link on the topic up to its end at start-up. Returns how many were read.
    pub(super) async fn catch_up(&self, pipeline: &mut Pipeline) -> Result<u64, RunError> {
        let mut ends: HashMap<i32, i64> = HashMap::new();
        let assigned = self.consumer.assignment()?;
        for e in assigned.elements_for_topic(&self.topic) {
            let (low, high) = self.consumer.fetch_watermarks(
                &self.topic,
                e.partition(),
                Duration::from_secs(10),
            )?;
            if high > low {
                ends.insert(e.partition(), high);
            }
        }
        let mut n = 0;
        while !ends.is_empty() {
            let m = match tokio::time::timeout(Duration::from_secs(30), self.consumer.recv()).await
            {
                Ok(Ok(m)) => m,
                Ok(Err(e)) => return Err(e.into()),
                Err(_) => {
                    tracing::warn!(topic = %self.topic, "the links topic did not reach its reported end within 30 s; going on");
                    break;
                }
            };
            if let Err(e) = pipeline.apply_link(m.payload().unwrap_or(&[])) {
                tracing::warn!(error = %e, "unreadable record on the links topic skipped");
            }
            n += 1;
            if ends
                .get(&m.partition())
                .is_some_and(|end| m.offset() + 1 >= *end)
            {
                ends.remove(&m.partition());
            }
        }
        Ok(n)
    }
}

/// The next record of the links topic, or never without one.
pub(super) async fn next_link(links: Option<&Links>) -> rdkafka::message::BorrowedMessage<'_> {
    match links {
        Some(l) => loop {
            match l.consumer.recv().await {
                Ok(m) => return m,
                Err(e) => tracing::warn!(error = %e, "links topic consume error"),
            }
        },
        None => std::future::pending().await,
    }
}

/// The number of partitions of the keyed topic `topic`.
pub(super) fn partitions_of(
    consumer: &StreamConsumer<Input>,
    topic: &str,
) -> Result<i32, RunError> {
    let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let n = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map_or(0, |t| t.partitions().len() as i32);
    if n == 0 {
        return Err(RunError::Build(format!(
            "kafka.keyed.topic {topic}: no such topic (create it, and the snapshots and links topics)"
        )));
    }
    Ok(n)
}

/// Most routed records sent and not yet acknowledged; past it the loop waits for the oldest.
const MAX_IN_FLIGHT: usize = 20_000;

/// The keyed topology's first stage: routed events and links sent and not yet acknowledged, in the order sent,
/// and the input offsets to store once everything sent before them is acknowledged (the queue is settled from its
/// front, so an offset is stored only after every earlier acknowledgement, whatever order they arrive in). Sending
/// without waiting for each acknowledgement keeps the broker's round trip off the per-record path.
#[derive(Default)]
pub(super) struct InFlight<'t> {
    queue: std::collections::VecDeque<Pending<'t>>,
}

pub(super) enum Pending<'t> {
    Sent(rdkafka::producer::DeliveryFuture, String),
    Done(&'t str, i32, i64),
}

impl<'t> InFlight<'t> {
    /// Send `r`; `Ok(Err(e))` when the client refuses it as such (too large), which no retry can change.
    pub(super) async fn send(
        &mut self,
        producer: &FutureProducer,
        consumer: &StreamConsumer<Input>,
        topic: &str,
        partition: Option<i32>,
        r: &crate::pipeline::Routed,
    ) -> Result<Result<(), KafkaError>, RunError> {
        loop {
            let mut rec = rdkafka::producer::FutureRecord::to(topic)
                .key(r.key.as_bytes())
                .payload(&r.body);
            if let Some(p) = partition {
                rec = rec.partition(p);
            }
            match producer.send_result(rec) {
                Ok(f) => {
                    self.queue.push_back(Pending::Sent(f, topic.to_string()));
                    return Ok(Ok(()));
                }
                Err((e, _)) if refused_as_such(&e) => return Ok(Err(e)),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    // the producer's queue is full: wait for what is in flight, then send again
                    self.settle(consumer, true).await?;
                    if self.queue.is_empty() {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
                Err((source, _)) => {
                    return Err(RunError::Produce {
                        topic: topic.into(),
                        source,
                    })
                }
            }
        }
    }

    pub(super) fn done(&mut self, topic: &'t str, partition: i32, offset: i64) {
        self.queue
            .push_back(Pending::Done(topic, partition, offset));
    }

    /// Store the offsets whose routed events are all acknowledged: those acknowledged already, or (with `all`, or
    /// when too many are in flight) every one, waiting.
    pub(super) async fn settle(
        &mut self,
        consumer: &StreamConsumer<Input>,
        all: bool,
    ) -> Result<(), RunError> {
        use futures_util::FutureExt;
        loop {
            let wait = all || self.queue.len() > MAX_IN_FLIGHT;
            let Some(front) = self.queue.front_mut() else {
                break;
            };
            match front {
                Pending::Done(topic, partition, offset) => {
                    crate::bus::store_offset(consumer, topic, *partition, *offset)?;
                }
                Pending::Sent(f, topic) => {
                    let acked = if wait {
                        Some(f.await)
                    } else {
                        f.now_or_never()
                    };
                    match acked {
                        None => return Ok(()),
                        Some(Ok(Ok(_))) => {}
                        Some(Ok(Err((source, _)))) => {
                            return Err(RunError::Produce {
                                topic: std::mem::take(topic),
                                source,
                            })
                        }
                        Some(Err(_)) => {
                            return Err(RunError::Produce {
                                topic: std::mem::take(topic),
                                source: KafkaError::Canceled,
                            })
                        }
                    }
                }
            }
            self.queue.pop_front();
        }
        Ok(())
    }
}
