//! The pipeline: normalize → correlate → detect → decide for one message at a time.
//!
//! In: raw message bytes with provenance and an optional pinned format. Out: [`Decision`]s (appended to a
//! caller's buffer) or the [`NormalizeError`] that sends the message to the dead-letter path. State: the keyed
//! state of correlate, every detector and decide, all owned here (one instance per partition set, no lock).
//! Respond is not called here: the caller records decisions first (Kafka, stdout) and then dispatches them.

use crate::config::{Config, ConfigError};
use crate::correlate::Correlator;
use crate::decide::{Action, Decide, Decision};
use crate::detect::{Detect, Finding};
use crate::event::{Ended, Provenance, SessionEvent, Ts};
use crate::normalize::{Context, Normalize, NormalizeError};
use std::collections::BTreeMap;

/// Counts kept by the pipeline.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub messages: u64,
    pub events: u64,
    pub per_format: BTreeMap<&'static str, u64>,
    pub rejected: BTreeMap<&'static str, u64>,
    pub findings: u64,
    pub decisions: BTreeMap<Action, u64>,
    /// Decisions a guardrail weakened (protected, privileged, over the revocation budget).
    pub guardrail_capped: u64,
    /// Notices that the global revocation budget ran out (Quench went alert-only).
    pub budget_notices: u64,
}

pub struct Pipeline {
    normalize: Normalize,
    correlate: Correlator,
    detect: Detect,
    decide: Decide,
    findings: Vec<Finding>,
    /// Session and token endings seen, kept only when `collect_ended` is on (for revocation confirmation).
    ended: Vec<Ended>,
    collect_ended: bool,
    pub stats: Stats,
}

impl Pipeline {
    pub fn new(cfg: &Config) -> Result<Self, ConfigError> {
        let normalize = Normalize::new(&cfg.normalize)?;
        if !normalize.has_geo() && !cfg.detect.disabled.iter().any(|d| d == "impossible_travel") {
            tracing::warn!(
                "no geo database configured: impossible_travel uses only the locations sources report themselves \
                 (Okta, Entra ID, Salesforce); set normalize.enrich.geoip_city_db to place IP-only events"
            );
        }
        Ok(Pipeline {
            normalize,
            correlate: Correlator::new(&cfg.correlate),
            detect: Detect::new(&cfg.detect)?,
            decide: Decide::new(cfg.decide.clone())?,
            findings: Vec::new(),
            ended: Vec::new(),
            collect_ended: false,
            stats: Stats::default(),
        })
    }

    pub fn normalizer(&self) -> &Normalize {
        &self.normalize
    }

    /// Keep the session and token endings the input shows, for [`Pipeline::take_ended`] (off by default).
    pub fn collect_ended(&mut self, on: bool) {
        self.collect_ended = on;
    }

    /// The endings seen since the last call.
    pub fn take_ended(&mut self) -> std::vec::Drain<'_, Ended> {
        self.ended.drain(..)
    }

    /// Process one message; decisions are appended to `out`. Returns how many events it held.
    pub fn process(
        &mut self,
        raw: &[u8],
        pinned: Option<&str>,
        provenance: Provenance<'_>,
        ingest_time: Ts,
        out: &mut Vec<Decision>,
    ) -> Result<usize, NormalizeError> {
        self.stats.messages += 1;
        let ctx = Context::new(provenance, ingest_time);
        let mut events: Vec<SessionEvent<'_>> = Vec::new();
        let format = match self.normalize.normalize(raw, pinned, &ctx, &mut events) {
            Ok(f) => f,
            Err(e) => {
                *self.stats.rejected.entry(e.code()).or_default() += 1;
                return Err(e);
            }
        };
        let n = events.len();
        *self.stats.per_format.entry(format).or_default() += n as u64;
        self.stats.events += n as u64;
        for mut ev in events {
            if self.collect_ended {
                self.ended.extend(ev.ended());
            }
            self.correlate.correlate(&mut ev);
            self.detect.observe(&ev, &mut self.findings);
            for f in self.findings.drain(..) {
                self.stats.findings += 1;
                let before = out.len();
                self.decide.decide(f, out);
                for d in &out[before..] {
                    *self.stats.decisions.entry(d.action).or_default() += 1;
                    if d.decision_id.ends_with("-budget") {
                        self.stats.budget_notices += 1;
                    } else if d.guardrail.is_some() {
                        self.stats.guardrail_capped += 1;
                    }
                }
            }
        }
        Ok(n)
    }
}
