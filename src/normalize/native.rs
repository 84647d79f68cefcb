//! Native: an event that is already a Quench session event (`schemas/session-event.schema.json`).
//!
//! In: one session event as JSON. Out: the same event, checked. Runtimes that emit their own events
//! (agents, in-house gateways) write this shape directly.

use super::{parse_config, ConfigError, Context, NormalizeError, Normalizer, Probe};
use crate::event::SessionEvent;
use serde::Deserialize;

pub const NAME: &str = "native";

/// `[normalize.formats.native]`: no settings yet.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NativeConfig {}

pub fn build(t: toml::Table) -> Result<Box<dyn Normalizer>, ConfigError> {
    let _cfg: NativeConfig = parse_config(NAME, t)?;
    Ok(Box::new(Native))
}

pub struct Native;

impl Normalizer for Native {
    fn sniff(&self, p: &Probe) -> bool {
        p.event_id.is_some() && p.event_time.is_some() && p.category.is_some()
    }

    fn normalize<'a>(
        &self,
        raw: &'a str,
        _ctx: &Context<'a>,
        out: &mut Vec<SessionEvent<'a>>,
    ) -> Result<(), NormalizeError> {
        let ev: SessionEvent<'a> = super::parse_json(NAME, raw)?;
        if ev.event_id.is_empty() {
            return Err(NormalizeError::invalid(NAME, "event_id is empty"));
        }
        out.push(ev);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::event::*;
    use crate::normalize::testutil::normalize_one;

    #[test]
    fn a_native_event_round_trips() {
        let raw = r#"{"event_id":"n-1","event_time":"2026-11-02T08:00:00Z","ingest_time":"2026-11-02T08:00:01Z","source":{"family":"agent","vendor":"acme","format":"native"},"category":"export","principal":{"id":"agent-1","kind":"agent"},"session":{"job_id":"j1","token_id":"t1"},"resource":{"destination":"s3://x","records":10}}"#;
        let ev = &normalize_one(raw)[0];
        assert_eq!(ev.category, Category::Export);
        assert_eq!(ev.resource.records, Some(10));
        let back = serde_json::to_string(ev).unwrap();
        let again: SessionEvent = serde_json::from_str(&back).unwrap();
        assert_eq!(&again, ev);
    }

    #[test]
    fn unknown_fields_in_native_events_are_rejected() {
        let raw = r#"{"event_id":"n-1","event_time":"2026-11-02T08:00:00Z","ingest_time":"2026-11-02T08:00:01Z","source":{"family":"agent","vendor":"acme","format":"native"},"category":"export","colour":"red"}"#;
        let n = crate::normalize::Normalize::new(&Default::default()).unwrap();
        let ctx = crate::normalize::Context::new(Provenance::None, Ts(0));
        let e = n
            .normalize(raw.as_bytes(), None, &ctx, &mut Vec::new())
            .unwrap_err();
        assert!(e.to_string().contains("colour"), "{e}");
    }
}
