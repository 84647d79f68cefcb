//! destination_drift: writes and exports to a destination never seen for that agent workflow, job, or principal
//! and app.
//!
//! In: outbound events (`data_write`, `export`, `tool_call`) with a destination; for agents, every event (to know
//! how long the workflow has been running). Key: an agent the runtime vouches for (its workflow: every run of it
//! shares one baseline, whatever the run id), else the job id, else principal + app. Downloads to the user's own
//! device (`device`) are not a destination. Out: once a key is learned (`learn_secs` since first seen, and more
//! than `learn_events` outbound events or `settle_secs` since first seen, so an agent that rarely writes is not
//! learning forever), one finding per new destination: `own_score` when it matches the operator's own namespaces
//! (`detect.own_destinations`: a reconfiguration nobody announced; a key's very first destination, when its own,
//! is its baseline), `score` otherwise; with an allowlist, one finding per destination off it
//! (`allowlist_score`), learning or not. An `admin_change` event naming a job and a destination (the agent
//! platform's configuration audit) announces a legitimate change: the destination becomes known. State: per key,
//! in a [`KeyedState`] (event-time TTL `ttl_secs`, key cap `max_keys`; keys first seen unvouched live in its
//! smaller claimed pool): first-seen time, outbound count, and the destinations seen (at most `max_destinations`,
//! the least recently seen forgotten first). A reason lists at most a few known destinations.

use super::{glob, BuildContext, ConfigError, Detector, Finding};
use crate::event::{Category, Keys, PrincipalKind, SessionEvent, Ts};
use crate::state::{bounded, KeyedState, RecentSet, LISTED};
use serde::Deserialize;

pub const NAME: &str = "destination_drift";
const FILE: &str = "destination_drift.toml";
const BUILTIN: &str = include_str!("../../detectors/destination_drift.toml");

/// `detectors/destination_drift.toml`; defaults in that file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DestinationDriftConfig {
    pub learn_events: u32,
    pub learn_secs: u64,
    pub settle_secs: u64,
    pub score: f64,
    pub own_score: f64,
    pub allowlist: Vec<String>,
    pub allowlist_score: f64,
    pub max_destinations: usize,
    pub ttl_secs: u64,
    pub max_keys: usize,
}

impl Default for DestinationDriftConfig {
    fn default() -> Self {
        DestinationDriftConfig {
            learn_events: 10,
            learn_secs: 1800,
            settle_secs: 259_200,
            score: 0.7,
            own_score: 0.35,
            allowlist: Vec::new(),
            allowlist_score: 0.85,
            max_destinations: 256,
            ttl_secs: 604_800,
            max_keys: 100_000,
        }
    }
}

pub fn build(ctx: &BuildContext) -> Result<Box<dyn Detector>, ConfigError> {
    let (file, cfg): (String, DestinationDriftConfig) = ctx.config(FILE, BUILTIN)?;
    super::check_scores(
        &file,
        &[
            ("score", cfg.score),
            ("own_score", cfg.own_score),
            ("allowlist_score", cfg.allowlist_score),
        ],
    )?;
    if cfg.max_destinations == 0 {
        return Err(ConfigError::Invalid {
            file,
            key: "max_destinations",
            value: "0".into(),
            why: "must be at least 1".into(),
        });
    }
    let bounds = ctx.bounds(cfg.ttl_secs, cfg.max_keys);
    Ok(Box::new(DestinationDrift {
        own: ctx.own_destinations.clone(),
        cfg,
        state: KeyedState::new(bounds),
        key: String::new(),
    }))
}

#[derive(serde::Serialize, serde::Deserialize)]
struct KeyState {
    first_seen: Ts,
    events: u32,
    destinations: RecentSet,
}

pub struct DestinationDrift {
    cfg: DestinationDriftConfig,
    /// `detect.own_destinations`.
    own: Vec<String>,
    state: KeyedState<KeyState>,
    key: String,
}

impl Detector for DestinationDrift {
    fn expire(&mut self, watermark: Ts) {
        self.state.expire(watermark);
    }

    fn save(&self) -> Result<Option<super::Saved>, serde_json::Error> {
        super::save(&self.state)
    }

    fn load(&mut self, saved: &serde_json::value::RawValue) -> Result<(), String> {
        self.state.restore(super::load(saved)?)
    }

    fn announce(&mut self, ev: &SessionEvent<'_>) {
        // what an admin_change announces is learned by observe, which judges nothing of it
        if ev.category == Category::AdminChange {
            self.observe(ev, &mut Vec::new());
        }
    }

    fn observe(&mut self, ev: &SessionEvent<'_>, out: &mut Vec<Finding>) {
        let announced = ev.category == Category::AdminChange && ev.session.job_id.is_some();
        let agent = ev.principal.kind == PrincipalKind::Agent && ev.principal.vouched_by.is_some();
        let dest = ev
            .resource
            .destination
            .as_deref()
            .filter(|d| *d != "device")
            .filter(|_| ev.category.is_outbound() || announced);
        if dest.is_none() && !agent {
            return;
        }
        self.key.clear();
        let (what, vouched) = match (&ev.session.job_id, ev.principal.key()) {
            (Some(j), _) if announced => {
                self.key.push_str(j);
                ("job", ev.vouches(Keys::JOB))
            }
            (_, Some(p)) if agent => {
                self.key.push_str(p);
                ("agent", true)
            }
            (Some(j), _) => {
                self.key.push_str(j);
                ("job", ev.vouches(Keys::JOB))
            }
            (None, Some(p)) => {
                self.key.push_str(p);
                self.key.push('|');
                self.key.push_str(ev.resource.app.as_deref().unwrap_or("-"));
                ("principal", ev.principal.vouched_by.is_some())
            }
            (None, None) => return,
        };
        let cfg = &self.cfg;
        // an agent's run may be announced by its job id: a destination announced for the job is known to the agent
        let announced_for_job = what == "agent"
            && dest.is_some_and(|d| {
                ev.session.job_id.as_deref().is_some_and(|j| {
                    self.state
                        .peek(j)
                        .is_some_and(|js| js.destinations.contains(d))
                })
            });
        let s = self
            .state
            .entry_in(&self.key, ev.event_time, vouched, || KeyState {
                first_seen: ev.event_time,
                events: 0,
                destinations: RecentSet::new(cfg.max_destinations),
            });
        let Some(dest) = dest else {
            return; // an agent's other activity: only its age counts
        };
        if announced {
            // a configuration change announcing the job's new destination: known from now on, not a finding
            s.destinations.see(dest);
            return;
        }
        s.events += 1;
        if s.destinations.contains(dest) || announced_for_job {
            s.destinations.see(dest);
            return;
        }
        let (key, shown) = (bounded(&self.key), bounded(dest));
        let own = self.own.iter().any(|p| glob(p, dest));
        // the first destination of a key that never wrote is its baseline when it is the organisation's own
        let first_own = own && s.destinations.is_empty();
        let off_list = !cfg.allowlist.is_empty() && !cfg.allowlist.iter().any(|p| glob(p, dest));
        let age = ev.event_time.secs_since(s.first_seen);
        let learned = age >= cfg.learn_secs as f64
            && (s.events > cfg.learn_events || age >= cfg.settle_secs as f64);
        if off_list {
            let reason = format!(
                "{what} {key} sent data to {shown}, which is not on the destination allowlist"
            );
            out.push(Finding::new(
                NAME,
                cfg.allowlist_score,
                reason,
                vec![ev.event_id.to_string()],
                ev,
            ));
        } else if learned && !first_own {
            let known = s.destinations.summary(LISTED);
            let whose = if own {
                " in the organisation's own namespace"
            } else {
                ""
            };
            let reason = format!("{what} {key} sent data to a destination{whose} it never used before: {shown} (known: {known})");
            out.push(Finding::new(
                NAME,
                if own { cfg.own_score } else { cfg.score },
                reason,
                vec![ev.event_id.to_string()],
                ev,
            ));
        }
        s.destinations.see(dest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::testutil::at;
    use crate::event::*;

    fn upload(secs: i64, dest: &'static str) -> SessionEvent<'static> {
        let mut e = at(secs, &format!("u{secs}"), Family::Agent, Category::ToolCall);
        e.session.job_id = Some("job-9".into());
        e.resource.destination = Some(dest.into());
        e
    }

    #[test]
    fn a_new_external_bucket_after_learning_is_flagged_once() {
        let mut d = build(&BuildContext::default()).unwrap();
        let mut out = Vec::new();
        for i in 0..30 {
            d.observe(&upload(i * 120, "s3://corp-sync"), &mut out);
        }
        assert!(out.is_empty());
        d.observe(&upload(4000, "s3://exfil-drop"), &mut out);
        d.observe(&upload(4010, "s3://exfil-drop"), &mut out);
        assert_eq!(out.len(), 1);
        assert!(
            out[0].reason.contains("s3://exfil-drop") && out[0].reason.contains("s3://corp-sync")
        );
    }

    #[test]
    fn thirty_two_thousand_new_destinations_keep_the_list_capped_and_every_reason_short() {
        let mut d = build(&BuildContext::default()).unwrap();
        let mut out = Vec::new();
        for i in 0..30 {
            d.observe(&upload(i * 120, "s3://corp-sync"), &mut out);
        }
        let mut e = upload(4000, "s3://corp-sync");
        for i in 0..32_000 {
            e.event_time.0 += 1000;
            e.resource.destination = Some(Text::from(format!("s3://drop-{i}")));
            d.observe(&e, &mut out);
        }
        assert_eq!(out.len(), 32_000, "each new destination is a finding");
        let longest = out.iter().map(|f| f.reason.len()).max().unwrap();
        assert!(longest < 400, "{longest} bytes");
        assert!(
            out[31_999]
                .reason
                .contains("s3://drop-31999 (known: s3://drop-31998, ")
                && out[31_999].reason.ends_with(" … and 248 more)"),
            "{}",
            out[31_999].reason
        );
        // the last 256 are still known (no finding); older ones were forgotten
        out.clear();
        e.resource.destination = Some("s3://drop-31744".into());
        d.observe(&e, &mut out);
        assert!(out.is_empty());
        e.resource.destination = Some("s3://drop-31743".into());
        d.observe(&e, &mut out);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn a_destination_announced_by_a_config_change_is_not_drift() {
        let mut d = build(&BuildContext::default()).unwrap();
        let mut out = Vec::new();
        for i in 0..30 {
            d.observe(&upload(i * 120, "s3://corp-sync"), &mut out);
        }
        let mut change = at(3900, "cfg-1", Family::Agent, Category::AdminChange);
        change.session.job_id = Some("job-9".into());
        change.resource.destination = Some("s3://corp-sync-v2".into());
        d.observe(&change, &mut out);
        d.observe(&upload(4000, "s3://corp-sync-v2"), &mut out);
        assert!(out.is_empty(), "{out:?}");
    }

    /// With an allowlist, a destination off it is a finding at once (while learning), and one on it is not.
    #[test]
    fn a_destination_off_the_allowlist_is_flagged_even_while_learning() {
        let dir = std::env::temp_dir().join(format!("quench-allowlist-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let text = BUILTIN.replace("allowlist = []", "allowlist = [\"s3://corp-*\"]");
        assert!(
            text.contains("s3://corp-*"),
            "the shipped file changed its form"
        );
        std::fs::write(dir.join(FILE), text).unwrap();
        let mut d = build(&BuildContext {
            dir: Some(dir.clone()),
            ..Default::default()
        })
        .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let mut out = Vec::new();
        d.observe(&upload(0, "s3://corp-sync"), &mut out);
        assert!(out.is_empty(), "{out:?}");
        d.observe(&upload(10, "s3://attacker-drop"), &mut out);
        assert_eq!(out.len(), 1);
        assert!((out[0].score - 0.85).abs() < 1e-9 && out[0].reason.contains("allowlist"));
    }

    #[test]
    fn reads_without_a_destination_are_ignored_and_learning_is_quiet() {
        let mut d = build(&BuildContext::default()).unwrap();
        let mut out = Vec::new();
        d.observe(&upload(0, "s3://a"), &mut out);
        d.observe(&upload(10, "s3://b"), &mut out);
        assert!(out.is_empty(), "still learning");
        // past learning (10 uploads over 30 min), a read naming a new destination is not outbound: quiet
        for i in 0..30 {
            d.observe(&upload(100 + i * 120, "s3://a"), &mut out);
        }
        let mut read = at(4000, "r", Family::Agent, Category::DataRead);
        read.session.job_id = Some("job-9".into());
        read.resource.destination = Some("s3://c".into());
        d.observe(&read, &mut out);
        assert!(out.is_empty(), "{out:?}");
        // while an upload to it is drift: the filter, not learning, kept the read quiet
        d.observe(&upload(4100, "s3://c"), &mut out);
        assert_eq!(out.len(), 1);
    }
}
