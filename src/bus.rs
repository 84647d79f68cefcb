//! Kafka plumbing shared by the stages that talk to the broker (ingest's decisions and dead letters, respond's
//! outbox): the producer settings and producing one record with its acknowledgement awaited.
//!
//! In: a [`KafkaConfig`] and records. Out: acknowledged records. State: none.

use crate::config::KafkaConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use std::time::Duration;

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
