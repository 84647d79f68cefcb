//! rate: a token or agent job making requests far above its own learned baseline.
//!
//! In: request-like events (`api_request`, `data_read`, `data_write`, `export`, `tool_call`, `model_call`) that
//! carry a job or token id (key: the job, else the token), counted in buckets of `bucket_secs` of event time; an
//! event for a bucket already closed is not counted. Out: a finding (`score`, at most one per bucket) when the
//! current bucket's count is improbable under a Poisson model of the key's baseline (tail probability from
//! `statrs` below `p_threshold`), at least `min_ratio` times it and at least `min_count`; and the low-and-slow
//! finding below. State: per key, in a [`KeyedState`] bounded by an event-time TTL (`ttl_secs`) and a key cap
//! (`max_keys`; keys first seen unvouched live in its smaller claimed pool): current bucket and count, baseline
//! (EWMA over active buckets), the slow baseline, active-bucket count, the counts of the last [`WINDOW`] buckets,
//! the first event id of the bucket (bounded), and which buckets were already reported.
//!
//! Cold start: until a key has `warmup_buckets` active buckets only `cold_start_max` applies. Low and slow: the
//! last `sustained_buckets` buckets together are also tested against `sustained_buckets` times the baseline
//! (`sustained_ratio`, `sustained_min_count`, the same tail probability) of a slow baseline (every bucket, the
//! empty ones of short pauses too but not long idle spells, each clipped to three times the baseline, so a rise
//! cannot teach it in minutes), so 5-10x a small baseline kept up for minutes is seen though no single bucket is
//! remarkable; it scores `sustained_score`, and its buckets do not teach either baseline while it lasts.

use super::{BuildContext, ConfigError, Detector, Finding};
use crate::event::{Category, Keys, SessionEvent};
use crate::state::{bounded, bounded_box, KeyedState};
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
    pub sustained_buckets: u32,
    pub sustained_ratio: f64,
    pub sustained_min_count: u32,
    pub sustained_score: f64,
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
            sustained_buckets: 10,
            sustained_ratio: 4.0,
            sustained_min_count: 60,
            sustained_score: 0.45,
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
    if cfg.sustained_buckets == 0 || cfg.sustained_buckets as usize > WINDOW {
        return bad(
            "sustained_buckets",
            cfg.sustained_buckets.to_string(),
            "must be in 1..=16",
        );
    }
    super::check_scores(
        &file,
        &[
            ("score", cfg.score),
            ("sustained_score", cfg.sustained_score),
        ],
    )?;
    let bounds = ctx.bounds(cfg.ttl_secs, cfg.max_keys);
    Ok(Box::new(Rate {
        state: KeyedState::new(bounds),
        cfg,
    }))
}

/// Closed buckets remembered for the sustained test.
pub const WINDOW: usize = 16;
/// Weight of a bucket in the slow baseline: a time constant of about three hours of activity, so a rise ramped
/// up over hours still stands out.
const SLOW_ALPHA: f64 = 0.005;

#[derive(serde::Serialize, serde::Deserialize)]
struct KeyState {
    bucket: i64,
    count: u32,
    /// Counts of the last closed buckets, newest at `(head - 1) % WINDOW`.
    recent: [u32; WINDOW],
    head: usize,
    /// Buckets up to this one are part of a reported sustained rise.
    sustained_until: i64,
    /// The slow baseline the sustained test compares with: every closed bucket (empty ones too), each clipped to
    /// three times it (plus one), weighted [`SLOW_ALPHA`], so a rise cannot teach it in minutes.
    slow: f64,
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
                recent: [0; WINDOW],
                head: 0,
                sustained_until: i64::MIN,
                slow: -1.0,
                baseline: 0.0,
                active: 0,
                fired_bucket: i64::MIN,
                first_in_bucket: Box::default(),
            });
        if bucket > s.bucket {
            // Close the previous bucket (and the empty ones since); anomalous buckets do not teach the baseline.
            s.recent[s.head % WINDOW] = s.count;
            s.head += 1;
            let gap = (bucket - s.bucket - 1).clamp(0, 1440);
            for _ in 0..gap.min(WINDOW as i64) {
                s.recent[s.head % WINDOW] = 0;
                s.head += 1;
            }
            if s.sustained_until < s.bucket {
                if s.slow < 0.0 {
                    s.slow = s.count as f64;
                } else {
                    let c = (s.count as f64).min(3.0 * s.slow + 1.0);
                    s.slow += SLOW_ALPHA * (c - s.slow);
                    // the empty buckets of a short pause since, in one step; a long idle spell (a night) is not
                    // part of the rate while active
                    if gap < WINDOW as i64 {
                        s.slow *= (1.0 - SLOW_ALPHA).powi(gap as i32);
                    }
                }
            }
            if s.count > 0 && s.fired_bucket != s.bucket && s.sustained_until < s.bucket {
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
        // low and slow: the last `sustained_buckets` buckets, this one included
        if s.active >= cfg.warmup_buckets {
            let n = cfg.sustained_buckets as usize;
            let window: u32 = s.count
                + (1..n)
                    .map(|i| s.recent[(s.head + WINDOW - i) % WINDOW])
                    .sum::<u32>();
            let lambda = s.slow.max(0.5) * n as f64;
            if bucket > s.sustained_until
                && window >= cfg.sustained_min_count
                && window as f64 >= cfg.sustained_ratio * lambda
            {
                let p = Poisson::new(lambda)
                    .map(|d| d.sf(u64::from(window - 1)))
                    .unwrap_or(1.0);
                if p < cfg.p_threshold {
                    s.sustained_until = bucket + n as i64;
                    let reason = format!(
                        "{what} {key} made {window} requests in {} s; its long-run rate is {:.1} per {per} s ({:.1}x sustained, p={p:.1e})",
                        per * n as u64,
                        s.slow,
                        window as f64 / lambda
                    );
                    let evidence = vec![s.first_in_bucket.to_string(), ev.event_id.to_string()];
                    out.push(Finding::new(
                        NAME,
                        cfg.sustained_score,
                        reason,
                        evidence,
                        ev,
                    ));
                    return;
                }
            } else if bucket <= s.sustained_until && window as f64 >= cfg.sustained_ratio * lambda {
                // still risen: keep it out of the baseline
                s.sustained_until = s.sustained_until.max(bucket + 1);
            }
        }
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
        build(&BuildContext::default()).unwrap()
    }

    fn call(ms: i64, token: &'static str) -> SessionEvent<'static> {
        let mut e = at(0, &format!("r{ms}"), Family::Gateway, Category::DataRead);
        e.event_time.0 += ms;
        e.session.token_id = Some(token.into());
        e
    }

    /// A busy service idle all night is not "risen" when it starts again in the morning at its usual rate.
    #[test]
    fn a_busy_service_starting_again_after_a_quiet_night_is_not_a_rise() {
        let mut d = rate();
        let mut out = Vec::new();
        for day in 0..3 {
            let mut t = day * 86_400_000;
            for _ in 0..(8 * 60 * 8) {
                d.observe(&call(t, "tok-busy"), &mut out);
                t += 7_500;
            }
        }
        assert!(out.is_empty(), "{out:?}");
    }

    /// A service token at 2 a minute for two hours, then 7x that for half an hour: no single minute is remarkable
    /// (14 requests), ten minutes together are.
    #[test]
    fn low_and_slow_scraping_at_seven_times_a_small_baseline_is_seen_within_ten_minutes() {
        let mut d = rate();
        let mut out = Vec::new();
        let mut t = 0;
        for _ in 0..240 {
            d.observe(&call(t, "tok-svc"), &mut out);
            t += 30_000;
        }
        assert!(out.is_empty(), "{out:?}");
        let start = t;
        for _ in 0..(14 * 30) {
            d.observe(&call(t, "tok-svc"), &mut out);
            t += 60_000 / 14;
        }
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].score, 0.45);
        assert!(
            out[0].event_time.0
                - at(0, "x", Family::Gateway, Category::DataRead).event_time.0
                - start
                <= 10 * 60_000
        );
        assert!(out[0].reason.contains("sustained"), "{}", out[0].reason);
    }

    /// Found by an outside review: a stolen token ramped up 4 % a minute (26,000 requests over 2.5 h) taught the
    /// slow baseline as fast as it rose and was never seen.
    #[test]
    fn a_rise_ramped_up_over_hours_is_still_seen() {
        let mut d = rate();
        let mut out = Vec::new();
        let mut t = 0;
        for _ in 0..(4 * 60 * 3) {
            d.observe(&call(t, "tok-svc"), &mut out);
            t += 20_000;
        }
        assert!(out.is_empty(), "{out:?}");
        let mut per_min = 3.0f64;
        for _ in 0..150 {
            let n = per_min.round() as i64;
            for k in 0..n {
                d.observe(&call(t + k * 60_000 / n, "tok-svc"), &mut out);
            }
            t += 60_000;
            per_min *= 1.04;
        }
        assert!(!out.is_empty(), "a 345x rise went unseen");
    }

    /// Quarter-end bulk work at 3x for an hour is below the sustained ratio.
    #[test]
    fn a_three_fold_hour_of_bulk_work_is_not_low_and_slow_scraping() {
        let mut d = rate();
        let mut out = Vec::new();
        let mut t = 0;
        for _ in 0..240 {
            d.observe(&call(t, "tok-svc"), &mut out);
            t += 30_000;
        }
        for _ in 0..360 {
            d.observe(&call(t, "tok-svc"), &mut out);
            t += 10_000;
        }
        assert!(out.is_empty(), "{out:?}");
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
                ..Default::default()
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
