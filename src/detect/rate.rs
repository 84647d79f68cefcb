//! rate: a token or agent job making requests far above its own learned baseline.
//!
//! In: request-like events (`api_request`, `data_read`, `data_write`, `export`, `tool_call`, `model_call`) that
//! carry a job or token id. Out: a finding when the current bucket's count is improbable under a Poisson model of
//! the key's baseline (tail probability from `statrs`), at least `min_ratio` times it and at least `min_count`.
//! Cold start: until a key has `warmup_buckets` active buckets only `cold_start_max` applies.
//! State per key (keys first seen unvouched live in the claimed pool of [`KeyedState`]): current bucket and count,
//! baseline (EWMA over active buckets), active-bucket count, the first event id of the bucket (bounded).

use super::{BuildContext, ConfigError, Detector, Finding};
use crate::event::{Category, Keys, SessionEvent};
use crate::state::{bounded, bounded_box, Bounds, KeyedState};
use serde::Deserialize;
use statrs::distribution::{DiscreteCDF, Poisson};

pub const NAME: &str = "rate";
const FILE: &str = "rate.toml";
const BUILTIN: &str = include_str!("../../detectors/rate.toml");

/// `detectors/rate.toml`; defaults in that file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateConfig {
    pub bucket_secs: u64,
    pub warmup_buckets: u32,
    pub alpha: f64,
    pub p_threshold: f64,
    pub min_ratio: f64,
    pub min_count: u32,
    pub cold_start_max: u32,
    pub score: f64,
    pub ttl_secs: u64,
    pub max_keys: usize,
}

impl Default for RateConfig {
    fn default() -> Self {
        RateConfig {
            bucket_secs: 60,
            warmup_buckets: 10,
            alpha: 0.1,
            p_threshold: 1e-9,
            min_ratio: 10.0,
            min_count: 100,
            cold_start_max: 1000,
            score: 0.8,
            ttl_secs: 86_400,
            max_keys: 1_000_000,
        }
    }
}

pub fn build(ctx: &BuildContext) -> Result<Box<dyn Detector>, ConfigError> {
    let (file, cfg): (String, RateConfig) = ctx.config(FILE, BUILTIN)?;
    let bad = |key, value: String, why: &str| {
        Err(ConfigError::Invalid {
            file: file.clone(),
            key,
            value,
            why: why.into(),
        })
    };
    if cfg.bucket_secs == 0 {
        return bad("bucket_secs", "0".into(), "must be at least 1");
    }
    if !(cfg.alpha > 0.0 && cfg.alpha <= 1.0) {
        return bad("alpha", cfg.alpha.to_string(), "must be in (0, 1]");
    }
    if !(cfg.p_threshold > 0.0 && cfg.p_threshold < 1.0) {
        return bad(
            "p_threshold",
            cfg.p_threshold.to_string(),
            "must be in (0, 1)",
        );
    }
    super::check_scores(&file, &[("score", cfg.score)])?;
    let bounds = Bounds::from_secs(cfg.ttl_secs, cfg.max_keys);
    Ok(Box::new(Rate {
        state: KeyedState::new(bounds),
        cfg,
    }))
}

struct KeyState {
    bucket: i64,
    count: u32,
    baseline: f64,
    active: u32,
    fired_bucket: i64,
    first_in_bucket: Box<str>,
}

pub struct Rate {
    cfg: RateConfig,
    state: KeyedState<KeyState>,
}

impl Detector for Rate {
    fn observe(&mut self, ev: &SessionEvent<'_>, out: &mut Vec<Finding>) {
        use Category::*;
        if !matches!(
            ev.category,
            ApiRequest | DataRead | DataWrite | Export | ToolCall | ModelCall
        ) {
            return;
        }
        let (what, key, vouched) = match (&ev.session.job_id, &ev.session.token_id) {
            (Some(j), _) => ("job", j.as_str(), ev.vouches(Keys::JOB)),
            (None, Some(t)) => ("token", t.as_str(), ev.vouches(Keys::TOKEN)),
            _ => return,
        };
        let cfg = &self.cfg;
        let bucket = ev.event_time.0.div_euclid(cfg.bucket_secs as i64 * 1000);
        let s = self
            .state
            .entry_in(key, ev.event_time, vouched, || KeyState {
                bucket,
                count: 0,
                baseline: 0.0,
                active: 0,
                fired_bucket: i64::MIN,
                first_in_bucket: Box::default(),
            });
        if bucket > s.bucket {
            // Close the previous bucket; anomalous buckets do not teach the baseline.
            if s.count > 0 && s.fired_bucket != s.bucket {
                s.baseline = if s.active == 0 {
                    s.count as f64
                } else {
                    cfg.alpha * s.count as f64 + (1.0 - cfg.alpha) * s.baseline
                };
                s.active += 1;
            }
            s.bucket = bucket;
            s.count = 0;
        } else if bucket < s.bucket {
            return; // late event for a closed bucket
        }
        if s.count == 0 {
            s.first_in_bucket = bounded_box(&ev.event_id);
        }
        s.count += 1;
        if s.fired_bucket == bucket {
            return;
        }
        let (per, key) = (cfg.bucket_secs, bounded(key));
        let reason = if s.active >= cfg.warmup_buckets {
            let lambda = s.baseline.max(1.0);
            if s.count < cfg.min_count || (s.count as f64) < cfg.min_ratio * lambda {
                return;
            }
            let p = match Poisson::new(lambda) {
                Ok(d) => d.sf(u64::from(s.count - 1)),
                Err(_) => return,
            };
            if p >= cfg.p_threshold {
                return;
            }
            format!(
                "{what} {key} made {} requests in {per} s; its baseline is {lambda:.1} per {per} s ({:.0}x, p={p:.1e})",
                s.count,
                s.count as f64 / lambda
            )
        } else if s.count > cfg.cold_start_max {
            format!("{what} {key} made {} requests in {per} s before any baseline (cold-start limit {})", s.count, cfg.cold_start_max)
        } else {
            return;
        };
        s.fired_bucket = bucket;
        let evidence = vec![s.first_in_bucket.to_string(), ev.event_id.to_string()];
        out.push(Finding::new(NAME, cfg.score, reason, evidence, ev));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::testutil::at;
    use crate::event::*;

    fn rate() -> Box<dyn Detector> {
        build(&BuildContext { dir: None }).unwrap()
    }

    fn call(ms: i64, token: &'static str) -> SessionEvent<'static> {
        let mut e = at(0, &format!("r{ms}"), Family::Gateway, Category::DataRead);
        e.event_time.0 += ms;
        e.session.token_id = Some(token.into());
        e
    }

    #[test]
    fn scraping_at_fifty_times_the_baseline_is_flagged_within_the_minute() {
        let mut d = rate();
        let mut out = Vec::new();
        // an hour at 6 requests/minute
        for i in 0..360 {
            d.observe(&call(i * 10_000, "tok-a"), &mut out);
        }
        assert!(out.is_empty(), "{out:?}");
        // then 300/minute
        let start = 3_600_000;
        let mut fired_at = None;
        for i in 0..300 {
            d.observe(&call(start + i * 200, "tok-a"), &mut out);
            if fired_at.is_none() && !out.is_empty() {
                fired_at = Some(i * 200);
            }
        }
        assert_eq!(out.len(), 1, "one finding per bucket");
        assert!(fired_at.unwrap() < 60_000);
        assert!(
            out[0].reason.contains("tok-a made 100 requests"),
            "{}",
            out[0].reason
        );
        assert_eq!(out[0].subject.token_id.as_deref(), Some("tok-a"));
    }

    #[test]
    fn a_steady_busy_token_is_not_flagged() {
        let mut d = rate();
        let mut out = Vec::new();
        for i in 0..(120 * 200) {
            d.observe(&call(i * 300, "busy"), &mut out);
        }
        assert!(out.is_empty());
    }

    /// The trust issue's flood: distinct `x-token-id`s from unauthenticated requests. They fill the claimed pool
    /// and evict one another; the authenticated token's baseline stays, so its scraping is still measured
    /// against it (a cold start would let 100 requests a minute through).
    #[test]
    fn a_flood_of_distinct_unauthenticated_tokens_does_not_evict_real_baselines() {
        let dir = std::env::temp_dir().join(format!("quench-rate-flood-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(FILE), "max_keys = 64\n").unwrap();
        let run = |flood_vouched: bool| {
            let mut d = build(&BuildContext {
                dir: Some(dir.clone()),
            })
            .unwrap();
            let mut out = Vec::new();
            let real = |ms: i64| {
                let mut e = call(ms, "tok-real");
                e.session.vouched = Keys::TOKEN;
                e
            };
            for i in 0..360 {
                d.observe(&real(i * 10_000), &mut out);
            }
            for i in 0..10_000 {
                let mut e = at(3600, &format!("f{i}"), Family::Gateway, Category::DataRead);
                e.session.token_id = Some(Text::from(format!("forged-{i}")));
                if flood_vouched {
                    e.session.vouched = Keys::TOKEN;
                }
                d.observe(&e, &mut out);
            }
            for i in 0..300 {
                d.observe(&real(3_660_000 + i * 200), &mut out);
            }
            out
        };
        let out = run(false);
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(
            out[0].reason.contains("tok-real made 100 requests")
                && out[0].reason.contains("baseline is 6.0"),
            "{}",
            out[0].reason
        );
        // the same number of authenticated tokens is real load: at the cap it does push the baseline out
        assert!(run(true).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn cold_start_flags_only_extreme_bursts() {
        let mut d = rate();
        let mut out = Vec::new();
        for i in 0..900 {
            d.observe(&call(i * 50, "new"), &mut out);
        }
        assert!(
            out.is_empty(),
            "900/min on a new token is under the cold-start limit"
        );
        for i in 0..1100 {
            d.observe(&call(120_000 + i * 50, "new2"), &mut out);
        }
        assert_eq!(out.len(), 1);
        assert!(out[0].reason.contains("cold-start"));
    }
}
