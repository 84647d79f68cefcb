//! Kafka in: the consumer group on the input topics, and what one record says about itself.
//!
//! In: the `[kafka]` settings and records from the broker. Out: a subscribed consumer ([`subscribe`]) and, per
//! record, its bytes with where they came from ([`Record`]): the payload to normalize, its key (kept for a dead
//! letter), and its topic, partition and offset as [`Provenance`]. State: none; offsets are stored and committed
//! by [`crate::runtime`] after the record is processed.

use crate::bus::KafkaConfig;
use crate::event::{Provenance, Ts};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;

/// The input consumer, subscribed to the configured topics (offsets stored and committed only when told; see
/// [`crate::bus::consumer`]). `commit_on_revoke`: when a rebalance takes partitions away, commit the offsets
/// stored so far first, so that their new owner does not read again what this one finished (only where a stored
/// offset may be committed at any time: not with durable state, whose offsets are committed only after a save).
pub fn subscribe(
    k: &KafkaConfig,
    commit_on_revoke: bool,
) -> Result<StreamConsumer<Input>, KafkaError> {
    let consumer: StreamConsumer<Input> = crate::bus::consumer_config(k, &k.group_id, &[])
        .create_with_context(Input { commit_on_revoke })?;
    let topics: Vec<&str> = k.topics.iter().map(|t| t.name.as_str()).collect();
    consumer.subscribe(&topics)?;
    Ok(consumer)
}

/// The input consumer's context.
pub struct Input {
    commit_on_revoke: bool,
}

impl rdkafka::ClientContext for Input {}

impl rdkafka::consumer::ConsumerContext for Input {
    fn pre_rebalance(
        &self,
        consumer: &rdkafka::consumer::BaseConsumer<Self>,
        rebalance: &rdkafka::consumer::Rebalance<'_>,
    ) {
        if !self.commit_on_revoke {
            return;
        }
        if let rdkafka::consumer::Rebalance::Revoke(tpl) = rebalance {
            if tpl.count() == 0 {
                return;
            }
            match consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync) {
                Ok(()) => tracing::debug!("offsets committed before a rebalance took partitions"),
                Err(KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) => {}
                Err(e) => tracing::warn!(error = %e, "offset commit before a rebalance failed"),
            }
        }
    }
}

/// One input record, borrowed from the consumer's message.
pub struct Record<'m> {
    pub topic: &'m str,
    pub partition: i32,
    pub offset: i64,
    /// The record's key, empty when it has none.
    pub key: &'m [u8],
    /// The record's value, empty when it has none (a tombstone is then rejected as not JSON).
    pub payload: &'m [u8],
    /// The record's Kafka timestamp (when it was produced, or appended by the broker), if it has one. Whoever
    /// produces to the topic chooses it (unless the topic uses `LogAppendTime`): only the reorder hold reads it,
    /// never later than the wall clock.
    pub timestamp: Option<Ts>,
}

impl<'m> Record<'m> {
    /// Read a consumed message (borrowed from the consumer, or detached from it).
    pub fn of(m: &'m impl Message) -> Record<'m> {
        Record {
            topic: m.topic(),
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().unwrap_or(&[]),
            payload: m.payload().unwrap_or(&[]),
            timestamp: m.timestamp().to_millis().map(Ts),
        }
    }

    /// Where the record came from, for the event and for dead letters.
    pub fn provenance(&self) -> Provenance<'_> {
        Provenance::Kafka {
            topic: self.topic.into(),
            partition: self.partition,
            offset: self.offset,
        }
    }

    /// `topic/partition@offset`, as dead-letter headers name a record.
    pub fn source(&self) -> String {
        format!("{}/{}@{}", self.topic, self.partition, self.offset)
    }
}
