//! Kafka plumbing shared by the stages that talk to the broker (ingest's decisions and dead letters, respond's
//! outbox): the producer settings and producing one record with its acknowledgement awaited.
//!
//! In: a [`KafkaConfig`] and records. Out: acknowledged records, and the headers of a dead-letter record (their
//! values escaped: they carry input-derived error text). State: none.

use crate::config::KafkaConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
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
