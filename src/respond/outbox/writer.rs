//! The outbox's writer: each decision's commands, one per target that takes it, on the commands topic before
//! the input offset is stored (or, without an outbox, handed straight to the dispatcher).
//!
//! In: decisions ([`Writer::submit`]). Out: `command` records, acknowledged by the broker. State: the count of
//! commands written.

use super::*;

pub(super) async fn produce(
    p: &FutureProducer,
    topic: &str,
    key: &str,
    payload: &[u8],
    headers: Option<OwnedHeaders>,
) -> Result<(), OutboxError> {
    crate::bus::produce(p, topic, key.as_bytes(), payload, headers)
        .await
        .map_err(|source| OutboxError::Produce {
            topic: topic.into(),
            source,
        })
}

/// The producing side: writes a decision's commands and waits for the broker to hold them.
pub struct Writer {
    producer: Option<FutureProducer>,
    ended: Option<mpsc::UnboundedSender<Ended>>,
    topic: String,
    dispatcher: Dispatcher,
    written: AtomicU64,
}

impl Writer {
    /// `ended` carries the session endings the input shows to the dispatch loop, which confirms revocations
    /// with them.
    pub fn new(
        k: &KafkaConfig,
        dispatcher: Dispatcher,
        ended: Option<mpsc::UnboundedSender<Ended>>,
    ) -> Result<Self, OutboxError> {
        let producer = if dispatcher.dry_run() {
            None
        } else {
            Some(crate::bus::producer(k)?)
        };
        Ok(Writer {
            producer,
            ended,
            topic: dispatcher.config().outbox.topic.clone(),
            dispatcher,
            written: AtomicU64::new(0),
        })
    }

    /// Write one command per target that acts on `d` and wait for each acknowledgement. Returns how many were
    /// written. In a dry run (no target) nothing is written and the decision is only logged.
    pub async fn submit(&self, d: &Decision) -> Result<usize, OutboxError> {
        let Some(producer) = &self.producer else {
            self.dispatcher.dispatch(Arc::new(d.clone()));
            return Ok(0);
        };
        let created_at = self.dispatcher.now();
        let mut n = 0;
        for target in self.dispatcher.targets_for(d) {
            let id = command_id(&d.decision_id, target);
            let body = serde_json::to_vec(&CommandOut {
                kind: "command",
                command_id: &id,
                target,
                created_at,
                decision: d,
            })?;
            produce(producer, &self.topic, &id, &body, None).await?;
            n += 1;
        }
        self.written.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    /// Pass on a session ending seen in the input (for confirmation).
    pub fn observe(&self, e: Ended) {
        if let Some(tx) = &self.ended {
            let _ = tx.send(e);
        }
    }

    /// Commands written so far.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }
}
