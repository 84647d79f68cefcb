//! Native: an event that is already a Quench session event (`schemas/session-event.schema.json`).
//!
//! In: one session event as JSON. Out: the same event, checked. Runtimes that emit their own events
//! (agents, in-house gateways) write this shape directly. State: none.
//!
//! Trust comes from configuration, never from the event: the event's `source.family`, `source.vendor`,
//! `source.format`, `principal.vouched_by` and `session.vouched` are replaced by `[normalize.formats.native]`. By
//! default a native event vouches for nothing, so it can raise alerts but never aim a revocation.

use super::{parse_config, ConfigError, Context, NormalizeError, Normalizer, Probe};
use crate::event::{Family, SessionEvent, SourceInfo, Text};
use serde::Deserialize;
use std::sync::Arc;

pub const NAME: &str = "native";

/// The top-level keys this format's `sniff` asks the probe about (its registry entry).
pub const KEYS: &[&str] = &["event_id", "event_time", "category"];

/// `[normalize.formats.native]`: what native events are, whatever they say about themselves.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NativeConfig {
    /// The source family of every native event. Default `"agent"`.
    pub family: Family,
    /// The vendor name native events are recorded under. Default `"native"`.
    pub vendor: String,
    /// Whether the writers of native events authenticate the identities they name (an in-house gateway that
    /// verified the caller). `true` lets native events' principals and keys aim revocations (under `vendor`).
    /// Default `false`.
    pub vouched: bool,
}

impl Default for NativeConfig {
    fn default() -> Self {
        NativeConfig {
            family: Family::Agent,
            vendor: "native".into(),
            vouched: false,
        }
    }
}

pub fn build(t: toml::Table) -> Result<Box<dyn Normalizer>, ConfigError> {
    let cfg: NativeConfig = parse_config(NAME, t)?;
    if cfg.vendor.is_empty() || cfg.vendor.chars().any(|c| c.is_control()) {
        return Err(ConfigError::Invalid {
            key: "normalize.formats.native.vendor".into(),
            value: cfg.vendor,
            why: "must be a non-empty name without control characters".into(),
        });
    }
    let vendor: Arc<str> = Arc::from(cfg.vendor.as_str());
    Ok(Box::new(Native { cfg, vendor }))
}

pub struct Native {
    cfg: NativeConfig,
    vendor: Arc<str>,
}

impl Normalizer for Native {
    fn sniff(&self, p: &Probe) -> bool {
        p.has("event_id") && p.has("event_time") && p.category.is_some()
    }

    fn normalize<'a>(
        &self,
        raw: &'a str,
        _ctx: &Context<'a>,
        out: &mut Vec<SessionEvent<'a>>,
    ) -> Result<(), NormalizeError> {
        let mut ev: SessionEvent<'a> = super::parse_json(NAME, raw)?;
        if ev.event_id.is_empty() {
            return Err(NormalizeError::invalid(NAME, "event_id is empty"));
        }
        ev.source = SourceInfo {
            family: self.cfg.family,
            vendor: Text::Shared(self.vendor.clone()),
            format: NAME.into(),
        };
        ev.unvouch_all();
        if self.cfg.vouched {
            ev.vouch_all();
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
    fn native_events_cannot_declare_their_own_family_vendor_or_trust() {
        let raw = r#"{"event_id":"n-1","event_time":"2026-11-02T08:00:00Z","ingest_time":"2026-11-02T08:00:01Z","source":{"family":"idp","vendor":"okta","format":"okta"},"category":"login","outcome":"success","principal":{"id":"00uceo","email":"ceo@example.com","kind":"human","vouched_by":{"vendor":"okta","family":"idp"}},"session":{"session_id":"s1","vouched":["session_id"]}}"#;
        let ev = &normalize_one(raw)[0];
        assert_eq!(ev.source.family, Family::Agent);
        assert_eq!(ev.source.vendor, "native");
        assert_eq!(ev.source.format, "native");
        assert_eq!(ev.principal.vouched_by, None);
        assert!(!ev.vouches(Keys::SESSION));
        // an operator who trusts the writers says so, under a vendor name of their choosing
        let mut formats = std::collections::BTreeMap::new();
        formats.insert(
            "native".to_string(),
            toml::from_str("family = \"gateway\"\nvendor = \"edge\"\nvouched = true").unwrap(),
        );
        let n = crate::normalize::Normalize::new(&crate::normalize::NormalizeConfig {
            formats,
            ..Default::default()
        })
        .unwrap();
        let ctx = crate::normalize::Context::new(Provenance::None, Ts(0));
        let mut out = Vec::new();
        n.normalize(raw.as_bytes(), None, &ctx, &mut out).unwrap();
        let v = out[0].principal.vouched_by.as_ref().unwrap();
        assert_eq!((v.vendor.as_str(), v.family), ("edge", Family::Gateway));
        assert!(out[0].vouches(Keys::SESSION));
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
