//! export_volume: one export far larger than its principal's (or job's) usual exports.
//!
//! In: `export` events with a record or byte count. Key: the job, else the principal. Out: after
//! `warmup_exports` exports, a finding when one export is at least `min_ratio` times the key's baseline (an
//! exponentially weighted mean, weight `alpha`) and above an absolute floor (`min_records`, `min_bytes`).
//! Anomalous exports do not teach the baseline. State: per key, in a [`KeyedState`] bounded by an event-time TTL
//! (`ttl_secs`) and a key cap (`max_keys`; keys first seen unvouched live in its smaller claimed pool): the
//! baselines of records and bytes and the export count.

use super::{BuildContext, ConfigError, Detector, Finding};
use crate::event::{Category, Keys, SessionEvent};
use crate::state::{bounded, KeyedState};
use serde::Deserialize;

pub const NAME: &str = "export_volume";
const FILE: &str = "export_volume.toml";
const BUILTIN: &str = include_str!("../../detectors/export_volume.toml");

/// `detectors/export_volume.toml`; defaults in that file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExportVolumeConfig {
    pub warmup_exports: u32,
    pub alpha: f64,
    pub min_ratio: f64,
    pub min_records: u64,
    pub min_bytes: u64,
    pub score: f64,
    pub ttl_secs: u64,
    pub max_keys: usize,
}

impl Default for ExportVolumeConfig {
    fn default() -> Self {
        ExportVolumeConfig {
            warmup_exports: 5,
            alpha: 0.2,
            min_ratio: 20.0,
            min_records: 10_000,
            min_bytes: 100_000_000,
            score: 0.7,
            ttl_secs: 2_592_000,
            max_keys: 1_000_000,
        }
    }
}

pub fn build(ctx: &BuildContext) -> Result<Box<dyn Detector>, ConfigError> {
    let (file, cfg): (String, ExportVolumeConfig) = ctx.config(FILE, BUILTIN)?;
    super::check_scores(&file, &[("score", cfg.score)])?;
    if !(cfg.alpha > 0.0 && cfg.alpha <= 1.0) {
        return Err(ConfigError::Invalid {
            file,
            key: "alpha",
            value: cfg.alpha.to_string(),
            why: "must be in (0, 1]".into(),
        });
    }
    let bounds = ctx.bounds(cfg.ttl_secs, cfg.max_keys);
    Ok(Box::new(ExportVolume {
        cfg,
        state: KeyedState::new(bounds),
    }))
}

#[derive(Default, serde::Serialize, serde::Deserialize)]
struct KeyState {
    exports: u32,
    records: f64,
    bytes: f64,
}

pub struct ExportVolume {
    cfg: ExportVolumeConfig,
    state: KeyedState<KeyState>,
}

impl Detector for ExportVolume {
    fn expire(&mut self, watermark: crate::event::Ts) {
        self.state.expire(watermark);
    }

    fn save(&self) -> Result<Option<super::Saved>, serde_json::Error> {
        super::save(&self.state)
    }

    fn load(&mut self, saved: &serde_json::value::RawValue) -> Result<(), String> {
        self.state.restore(super::load(saved)?)
    }

    fn observe(&mut self, ev: &SessionEvent<'_>, out: &mut Vec<Finding>) {
        if ev.category != Category::Export {
            return;
        }
        let (records, bytes) = (ev.resource.records, ev.resource.bytes);
        if records.is_none() && bytes.is_none() {
            return;
        }
        let (what, key, vouched) = match (&ev.session.job_id, ev.principal.key()) {
            (Some(j), _) => ("job", j.as_str(), ev.vouches(Keys::JOB)),
            (None, Some(p)) => ("principal", p, ev.principal.vouched_by.is_some()),
            _ => return,
        };
        let cfg = &self.cfg;
        let s = self
            .state
            .entry_in(key, ev.event_time, vouched, KeyState::default);
        let big = |n: Option<u64>, base: f64, floor: u64| {
            n.is_some_and(|n| n >= floor && n as f64 >= cfg.min_ratio * base.max(1.0))
        };
        if s.exports >= cfg.warmup_exports
            && (big(records, s.records, cfg.min_records) || big(bytes, s.bytes, cfg.min_bytes))
        {
            let (n, base, unit) = match records {
                Some(r) if big(records, s.records, cfg.min_records) => (r, s.records, "records"),
                _ => (bytes.unwrap_or(0), s.bytes, "bytes"),
            };
            let to = bounded(
                ev.resource
                    .destination
                    .as_deref()
                    .unwrap_or("an unknown destination"),
            );
            let key = bounded(key);
            let reason = format!(
                "{what} {key} exported {n} {unit} to {to}; its usual export is {base:.0} ({:.0}x)",
                n as f64 / base.max(1.0)
            );
            out.push(Finding::new(
                NAME,
                cfg.score,
                reason,
                vec![ev.event_id.to_string()],
                ev,
            ));
            return;
        }
        let learn = |base: &mut f64, n: Option<u64>| {
            if let Some(n) = n {
                *base = if *base == 0.0 {
                    n as f64
                } else {
                    cfg.alpha * n as f64 + (1.0 - cfg.alpha) * *base
                };
            }
        };
        learn(&mut s.records, records);
        learn(&mut s.bytes, bytes);
        s.exports += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::testutil::at;
    use crate::event::*;

    fn export(secs: i64, records: u64) -> SessionEvent<'static> {
        let mut e = at(secs, &format!("x{secs}"), Family::Saas, Category::Export);
        e.principal.email = Some("rep@example.com".into());
        e.resource.records = Some(records);
        e.resource.destination = Some("0H4unknown".into());
        e
    }

    #[test]
    fn a_bulk_export_far_above_the_usual_is_flagged_and_does_not_teach_the_baseline() {
        let mut d = build(&BuildContext::default()).unwrap();
        let mut out = Vec::new();
        for i in 0..10 {
            d.observe(&export(i * 3600, 2000 + (i as u64 % 3) * 500), &mut out);
        }
        assert!(out.is_empty());
        d.observe(&export(40_000, 250_000), &mut out);
        d.observe(&export(41_000, 250_000), &mut out);
        assert_eq!(out.len(), 2, "the big export is not learned as normal");
        assert!(
            out[0].reason.contains("250000 records") && out[0].reason.contains("0H4unknown"),
            "{}",
            out[0].reason
        );
    }

    #[test]
    fn warm_up_and_the_absolute_floor_keep_small_keys_quiet() {
        let mut d = build(&BuildContext::default()).unwrap();
        let mut out = Vec::new();
        d.observe(&export(0, 10), &mut out);
        d.observe(&export(10, 500_000), &mut out); // during warm-up
        for i in 0..10 {
            d.observe(&export(100 + i, 10), &mut out);
        }
        d.observe(&export(1000, 5_000), &mut out); // 500x, but under the 10,000-record floor
        assert!(out.is_empty(), "{out:?}");
    }
}
