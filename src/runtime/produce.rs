//! Producing what the consume loop decided: decision records (then the outbox), dead letters, and any record, retried while the broker asks for
//! time, and a record the broker refuses as such (too large) turned into a dead letter rather than a stuck loop.
//!
//! In: decisions to record (and hand to the outbox), unusable records, a topic, key, payload and headers. Out:
//! decision records and dead letters on their topics, or the error that stops the loop. State: none.

use super::consume::{RunError, RunReport};
use crate::bus::KafkaConfig;
use crate::decide::Decision;
use crate::respond::outbox::Writer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::FutureProducer;
use std::time::Instant;

/// Most bytes of an input record copied to a dead letter when its decision could not be sent.
const MAX_DEAD_LETTER_BYTES: usize = 64 * 1024;

/// Errors that say the message itself is unacceptable (so resending it can never succeed).
pub(super) fn refused_as_such(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::InvalidMessage
                | RDKafkaErrorCode::InvalidRecord
        )
    )
}

pub(super) async fn send(
    p: &FutureProducer,
    topic: &str,
    key: &[u8],
    payload: &[u8],
    headers: Option<OwnedHeaders>,
) -> Result<(), RunError> {
    crate::bus::produce(p, topic, key, payload, headers)
        .await
        .map_err(|source| RunError::Produce {
            topic: topic.into(),
            source,
        })
}

/// Send a record the pipeline refused to the dead-letter topic, with the reason in headers.
pub(crate) async fn dead_letter(
    producer: &FutureProducer,
    k: &KafkaConfig,
    rec: &crate::ingest::kafka::Record<'_>,
    e: &crate::normalize::NormalizeError,
    report: &mut RunReport,
) -> Result<(), RunError> {
    report.dead_letters += 1;
    let reason = e.to_string();
    tracing::debug!(topic = rec.topic, partition = rec.partition, offset = rec.offset, error = %crate::text::escape_control(&reason), "record sent to dead-letter topic");
    let source = rec.source();
    let headers = crate::bus::dead_letter_headers(e.code(), &reason, &source);
    send(
        producer,
        &k.dead_letter_topic,
        rec.key,
        rec.payload,
        Some(headers),
    )
    .await
}

/// Produce each of `decisions` (drained) to the decisions topic (and the OCSF topic), then hand it to
/// `on_decision` and write its commands to the outbox. A decision the broker refuses as such dead-letters `rec`
/// (none for decisions of events the reorder hold released while the input was idle: logged only).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn emit(
    producer: &FutureProducer,
    k: &KafkaConfig,
    rec: Option<&crate::ingest::kafka::Record<'_>>,
    decisions: &mut Vec<Decision>,
    received: Instant,
    report: &mut RunReport,
    on_decision: &mut impl FnMut(&Decision),
    outbox: &Writer,
) -> Result<(), RunError> {
    for d in decisions.drain(..) {
        let body = serde_json::to_vec(&d)?;
        match send(
            producer,
            &k.decisions_topic,
            d.decision_id.as_bytes(),
            &body,
            None,
        )
        .await
        {
            Ok(()) => {}
            // A decision the broker refuses as such (too large, invalid) must neither stop the engine nor be
            // retried forever after a restart: its record goes to the dead-letter topic, cut to a bounded size.
            Err(RunError::Produce { source, .. }) if refused_as_such(&source) => {
                let Some(rec) = rec else {
                    // released from the reorder hold while the input was idle: no record to dead-letter
                    tracing::error!(decision = %d.decision_id, error = %source, "decision refused by the broker; dropped");
                    continue;
                };
                report.dead_letters += 1;
                tracing::error!(decision = %d.decision_id, error = %source, "decision refused by the broker; record dead-lettered");
                let reason = format!("decision {} refused by the broker: {source}", d.decision_id);
                let source = rec.source();
                let headers =
                    crate::bus::dead_letter_headers("decision_unsendable", &reason, &source);
                let cut = &rec.payload[..rec.payload.len().min(MAX_DEAD_LETTER_BYTES)];
                send(producer, &k.dead_letter_topic, rec.key, cut, Some(headers)).await?;
                continue;
            }
            Err(e) => return Err(e),
        }
        if let Some(t) = &k.ocsf_topic {
            let body = serde_json::to_vec(&crate::decide::ocsf::detection_finding(&d, &[]))?;
            send(producer, t, d.decision_id.as_bytes(), &body, None).await?;
        }
        report.decisions += 1;
        let _ = report
            .latency_us
            .record(received.elapsed().as_micros() as u64);
        on_decision(&d);
        outbox.submit(&d).await?;
    }
    Ok(())
}
