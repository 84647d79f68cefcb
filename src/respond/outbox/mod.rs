//! Outbox: every (decision, target) command is written to a Kafka commands topic before it is dispatched, so a
//! revocation survives the engine dying, and is not sent twice when it comes back.
//!
//! In: decisions to act on ([`Writer::submit`], which the Kafka loop awaits before it stores the input offset).
//! Out: `command` records on the commands topic (key: the command id `{decision_id}.{target}`, which is also the
//! idempotency key); then, from the dispatch loop ([`dispatch`]), the HTTP requests, one `outcome` record per
//! command on the same topic, and a dead-letter record for each command that failed for good or was given up.
//! State: the dispatch loop remembers the commands of the last `remember_secs` (in flight or finished) and, per
//! partition, the offsets it still needs. It commits a partition only up to its oldest command that is unfinished
//! or still remembered. After a crash it therefore re-reads what it must: it first reads each partition to its
//! end, learning which commands already have an outcome, and only then sends the rest, with the same idempotency
//! keys as before.

use super::confirm::{self, Confirmation, Confirmer, Pending};
use super::{command_id, Delivery, Dispatcher};
use crate::bus::KafkaConfig;
use crate::clock::WallTime;
use crate::decide::Decision;
use crate::event::Ended;
use crate::evidence::tables::{name_of, CommandRow};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Message, OwnedHeaders};
use rdkafka::producer::FutureProducer;
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

mod dispatch;
mod records;
mod writer;
pub use dispatch::*;
pub use records::*;
pub use writer::*;

/// `[respond.outbox]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxConfig {
    /// The commands topic; create it before starting (any partition count). Default `"quench.commands"`.
    pub topic: String,
    /// Whether this instance sends the commands. Several instances sharing one commands topic must leave it on
    /// for exactly one of them. Default true.
    pub dispatch: bool,
    /// Seconds a command is remembered after it was seen, so that the same decision made again (its input
    /// reprocessed after a crash) is recognised and not sent twice. Default 86400.
    pub remember_secs: u64,
    /// On shutdown, seconds to wait for commands in flight before leaving them to the next start. Default 10.
    pub drain_secs: u64,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            topic: "quench.commands".into(),
            dispatch: true,
            remember_secs: 86_400,
            drain_secs: 10,
        }
    }
}

/// Why the outbox stopped.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("producing to {topic}: {source}")]
    Produce { topic: String, source: KafkaError },
    #[error("cannot serialize a command: {0}")]
    Serialize(#[from] serde_json::Error),
    #[error("respond.outbox.topic = {0:?}: the topic does not exist; create it (any number of partitions)")]
    NoTopic(String),
}

/// What the dispatch loop has done, as it goes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Command records resolved: sent to an outcome, or recognised as already seen.
    pub settled: u64,
    /// Commands found without an outcome when the loop started (left by a previous run), and resumed.
    pub resumed: u64,
    /// Command records skipped because the same command was already in flight or finished.
    pub duplicates: u64,
    /// Commands being delivered now.
    pub in_flight: u64,
    /// Delivered revocations watched for the vendor's confirmation, and what became of them so far.
    pub awaiting_confirmation: u64,
    /// Of those, delivered by a previous run and watched again after this start.
    pub confirmations_resumed: u64,
    pub confirmed: u64,
    pub unconfirmed: u64,
}
