//! Decide: combine findings into a risk score per subject and map it to an action.
//!
//! In: [`Finding`]s, with the processing clock. Out: [`Decision`] records (the stable contract in
//! `schemas/decision.schema.json`), and a notice decision when the revocation budget runs out. State: per subject,
//! in a [`KeyedState`] bounded by an event-time TTL (the longer of `dedup_secs` and eight half-lives) and a key cap
//! (`max_subjects`; subjects first seen through claims live in its smaller claimed pool): up to 32 findings in
//! event-time order (when full, the oldest one a later finding of its detector outweighs goes first) and the last
//! times actions fired; one such map for acting detectors and one for shadow detectors; and the
//! revocation budget (the processing times of the revocations in its window).
//!
//! Risk per subject (the job, else the principal, else the token, else the session) at a time `T` is a noisy-OR
//! of the strongest finding of each detector up to `T`, each decayed with a half-life in event time; one detector
//! alone never counts twice. A policy maps score bands to `alert`, `step_up`, `revoke_token`, `terminate_session`;
//! a (subject, action) fires at most once per `dedup_secs`, and never within that period of a stronger action.
//! Findings are kept in event-time order wherever they arrive: a late one (its source delivers minutes to hours
//! behind the others) is scored at its own time and at the later findings' times it strengthens, so the strongest
//! action a subject reaches does not depend on the order the same findings arrived in (see [`Scorer::propose`]).

mod guardrails;
pub mod notice;
pub mod ocsf;
mod record;
pub use record::*;

use crate::detect::{Finding, Subject};
use crate::event::{Family, PrincipalKind, Ts};
use crate::state::{Bounds, KeyedState};
pub use guardrails::GuardrailConfig;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// `[decide]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecideConfig {
    /// Half-life of a finding's weight, in seconds of event time. Default 1800.
    pub half_life_secs: f64,
    /// Lowest score for `alert`. Default 0.3.
    pub alert: f64,
    /// Lowest score for `step_up`. Default 0.5.
    pub step_up: f64,
    /// Lowest score for `revoke_token`. Default 0.7.
    pub revoke_token: f64,
    /// Lowest score for `terminate_session`. Default 0.9.
    pub terminate_session: f64,
    /// A (subject, action) fires at most once per this many seconds. Default 3600.
    pub dedup_secs: u64,
    /// Subjects tracked at most. Default 1000000.
    pub max_subjects: usize,
    /// `[decide.guardrails]`: protected and privileged principals, the revocation budget, shadow detectors.
    pub guardrails: guardrails::GuardrailConfig,
    /// Strongest action for services and agents, which have no interactive session: their tokens are revoked
    /// (the job is quarantined) without logging out a person. Default `"revoke_token"`.
    pub non_human_max_action: Action,
}

impl Default for DecideConfig {
    fn default() -> Self {
        DecideConfig {
            half_life_secs: 1800.0,
            alert: 0.3,
            step_up: 0.5,
            revoke_token: 0.7,
            terminate_session: 0.9,
            dedup_secs: 3600,
            max_subjects: 1_000_000,
            guardrails: Default::default(),
            non_human_max_action: Action::RevokeToken,
        }
    }
}

/// A configuration problem found at start-up.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("decide.{key} = {value}: {why}")]
    Invalid {
        key: &'static str,
        value: String,
        why: &'static str,
    },
}

impl DecideConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bands = [
            ("alert", self.alert),
            ("step_up", self.step_up),
            ("revoke_token", self.revoke_token),
            ("terminate_session", self.terminate_session),
        ];
        for (key, v) in bands {
            if !(0.0..=1.0).contains(&v) {
                return Err(ConfigError::Invalid {
                    key,
                    value: v.to_string(),
                    why: "must be in [0, 1]",
                });
            }
        }
        for w in bands.windows(2) {
            if w[1].1 < w[0].1 {
                return Err(ConfigError::Invalid {
                    key: w[1].0,
                    value: w[1].1.to_string(),
                    why: "bands must not decrease from alert to terminate_session",
                });
            }
        }
        if self.half_life_secs <= 0.0 {
            return Err(ConfigError::Invalid {
                key: "half_life_secs",
                value: self.half_life_secs.to_string(),
                why: "must be positive",
            });
        }
        Ok(())
    }
    fn action_for(&self, score: f64) -> Option<Action> {
        [
            (self.terminate_session, Action::TerminateSession),
            (self.revoke_token, Action::RevokeToken),
            (self.step_up, Action::StepUp),
            (self.alert, Action::Alert),
        ]
        .into_iter()
        .find(|(b, _)| score >= *b)
        .map(|(_, a)| a)
    }
}

#[derive(Serialize)]
struct SubjectState {
    findings: Vec<Finding>,
    fired: Vec<(Action, Ts)>,
}

impl<'de> Deserialize<'de> for SubjectState {
    /// Saved findings of detectors that no longer exist are dropped.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Saved {
            findings: Vec<crate::detect::SavedFinding>,
            fired: Vec<(Action, Ts)>,
        }
        let s = Saved::deserialize(d)?;
        Ok(SubjectState {
            findings: s
                .findings
                .into_iter()
                .filter_map(Finding::restore)
                .collect(),
            fired: s.fired,
        })
    }
}

/// The decide stage.
/// Scores findings per subject and picks the action (one instance acts, one records shadow detectors).
struct Scorer {
    cfg: DecideConfig,
    state: KeyedState<SubjectState>,
    key: String,
}

/// The decide stage: scoring, then guardrails.
pub struct Decide {
    acting: Scorer,
    shadow: Scorer,
    guard: guardrails::Guardrails,
}

impl Decide {
    /// Scores, dedup and the revocation budget, for a restart to resume from (see [`crate::durable`]).
    pub fn save(&self) -> Result<crate::state::Saved, serde_json::Error> {
        serde_json::value::to_raw_value(&(
            &self.acting.state,
            &self.shadow.state,
            self.guard.save(),
        ))
    }

    /// Take back what [`Decide::save`] wrote.
    pub fn load(&mut self, saved: &serde_json::value::RawValue) -> Result<(), String> {
        type State = (
            crate::state::SavedKeys<SubjectState>,
            crate::state::SavedKeys<SubjectState>,
            guardrails::SavedBudget,
        );
        let (acting, shadow, budget): State = crate::state::load(saved)?;
        self.acting.state.restore(acting)?;
        self.shadow.state.restore(shadow)?;
        self.guard.load(budget);
        Ok(())
    }

    /// Forget subjects idle for longer than their TTL, by the watermark from now on
    /// ([`crate::state::KeyedState::expire`]).
    pub fn expire(&mut self, watermark: Ts) {
        self.acting.state.expire(watermark);
        self.shadow.state.expire(watermark);
    }

    pub fn new(cfg: DecideConfig) -> Result<Self, ConfigError> {
        let guard = guardrails::Guardrails::new(cfg.guardrails.clone());
        Ok(Decide {
            acting: Scorer::new(cfg.clone())?,
            shadow: Scorer::new(cfg)?,
            guard,
        })
    }

    /// Add a finding; append the decisions it leads to (none, one, or one plus a guardrail notice). `clock` is the
    /// processing time the revocation budget counts in: ingest (wall-clock) time in `run`, the stream's corroborated
    /// timeline in `replay`. Forged event times cannot move it.
    pub fn decide(&mut self, f: Finding, clock: Ts, out: &mut Vec<Decision>) {
        if self.guard.is_shadow(f.detector) {
            if let Some(mut d) = self.shadow.propose(f) {
                d.shadow = true;
                d.decided_at = clock;
                self.shadow.record(d.action, d.event_time);
                out.push(d);
            }
            return;
        }
        let Some(mut d) = self.acting.propose(f) else {
            return;
        };
        d.decided_at = clock;
        let at = d.event_time;
        self.guard.apply(d, clock, out);
        let Some(emitted) = out.last() else {
            return;
        };
        // Dedup remembers the action actually emitted: a theft degraded to an alert does not block the real action
        // once the guardrail allows it, and a repeat of the same degraded decision is not emitted again.
        let action = emitted.action;
        if emitted.guardrail.is_some() && self.acting.already_fired(action, at) {
            out.pop();
            return;
        }
        self.acting.record(action, at);
    }
}

const MAX_FINDINGS: usize = 32;

/// A subject's risk at the time of the last of `findings` (kept in event-time order): each detector's strongest
/// finding up to then, decayed to then, combined by noisy-OR, and the action it calls for.
struct Scored {
    /// How many of the subject's findings (the oldest) it counts.
    upto: usize,
    score: f64,
    action: Action,
    /// Why the action is lower than the score alone calls for (claimed evidence).
    claims_capped: Option<String>,
    /// The contributing findings (each detector's strongest), as indices into the findings counted.
    best: Vec<usize>,
}

impl Scored {
    /// The risk at the last finding's time, or `None` when it calls for no action.
    fn at(cfg: &DecideConfig, findings: &[Finding]) -> Option<Scored> {
        let latest = findings.last()?;
        let now = latest.event_time;
        // strongest decayed score per detector, over all findings and over the authoritative ones (one pass)
        let mut best: Vec<(&'static str, f64, usize)> = Vec::new();
        let mut auth_best: Vec<(&'static str, f64)> = Vec::new();
        for (i, x) in findings.iter().enumerate() {
            let age = now.secs_since(x.event_time).max(0.0);
            let w = x.score * 0.5f64.powf(age / cfg.half_life_secs);
            match best.iter_mut().find(|b| b.0 == x.detector) {
                Some(b) if b.1 >= w => {}
                Some(b) => *b = (x.detector, w, i),
                None => best.push((x.detector, w, i)),
            }
            if x.subject.backed {
                match auth_best.iter_mut().find(|b| b.0 == x.detector) {
                    Some(b) if b.1 >= w => {}
                    Some(b) => b.1 = w,
                    None => auth_best.push((x.detector, w)),
                }
            }
        }
        let score = 1.0 - best.iter().map(|b| 1.0 - b.1).product::<f64>();
        // Only authoritative findings can lift the action above an alert: claims add to the score, never to what is
        // done about it (else a forged finding plus a real, weak one would revoke).
        let auth_score = 1.0 - auth_best.iter().map(|b| 1.0 - b.1).product::<f64>();
        let by_all = cfg.action_for(score)?;
        let by_auth = cfg.action_for(auth_score);
        let mut action = by_auth.map_or(Action::Alert, |a| a.max(Action::Alert.min(by_all)));
        let claims_capped = (action < by_all).then(|| {
            format!(
                "claimed evidence raises the score to {score:.2} but not the action: authoritative findings alone score {auth_score:.2}; {} capped to {}",
                by_all.as_str(),
                action.as_str()
            )
        });
        if latest.subject.principal_kind != PrincipalKind::Human
            && action > cfg.non_human_max_action
        {
            action = cfg.non_human_max_action;
        }
        Some(Scored {
            upto: findings.len(),
            score,
            action,
            claims_capped,
            best: best.iter().filter(|b| b.1 > 0.0).map(|b| b.2).collect(),
        })
    }
}

/// Bounds on what a decision carries, so that no input can make a decision too large to send: a reason's bytes,
/// an id's bytes (longer ids are cut and marked, and targets refuse them), and the evidence ids listed.
pub const MAX_REASON_BYTES: usize = 1024;
pub const MAX_ID_BYTES: usize = 256;
pub const MAX_EVIDENCE: usize = 32;

/// `s` cut to at most `max` bytes on a character boundary, marked with `…` when cut.
pub fn bounded(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

impl Scorer {
    fn new(cfg: DecideConfig) -> Result<Self, ConfigError> {
        cfg.validate()?;
        let ttl_ms = (cfg.dedup_secs as f64 * 1000.0).max(cfg.half_life_secs * 8_000.0) as i64;
        let state = KeyedState::new(Bounds {
            ttl_ms,
            max_keys: cfg.max_subjects,
        });
        Ok(Scorer {
            cfg,
            state,
            key: String::new(),
        })
    }

    fn subject_key(&mut self, s: &Subject) -> bool {
        self.key.clear();
        let (kind, v) = if let Some(j) = &s.job_id {
            ("job:", j)
        } else if let Some(p) = &s.principal {
            ("principal:", p)
        } else if let Some(t) = &s.token_id {
            ("token:", t)
        } else if let Some(x) = &s.session_id {
            ("session:", x)
        } else {
            return false;
        };
        self.key.push_str(kind);
        self.key.push_str(v);
        true
    }

    /// Whether `action` (or a stronger one) already fired for the current subject within the dedup period.
    fn already_fired(&mut self, action: Action, now: Ts) -> bool {
        let dedup_ms = self.cfg.dedup_secs as i64 * 1000;
        self.state.get_mut(&self.key, now).is_some_and(|s| {
            s.fired
                .iter()
                .any(|(a, t)| *a >= action && (now.0 - t.0).abs() < dedup_ms)
        })
    }

    /// Remember that `action` was emitted for the current subject (the one the last `propose` was about).
    fn record(&mut self, action: Action, now: Ts) {
        if let Some(s) = self.state.get_mut(&self.key, now) {
            if s.fired.len() >= Action::ALL.len() * 2 {
                s.fired.remove(0);
            }
            s.fired.push((action, now));
        }
    }

    /// Add a finding; return a decision if the subject's risk now calls for a new action (not yet recorded as
    /// fired: the caller records what it actually emits).
    ///
    /// Order-free: the subject's findings are kept in event-time order, and its risk at a time `T` counts only the
    /// findings up to `T`, each decayed by its age at `T`. A finding that arrives late (its source delivers
    /// minutes to hours behind the others) is placed where it belongs, and the risk is evaluated at its own time
    /// and again at the time of every later finding already held, which it may raise; the strongest action any
    /// of those reaches (not fired within `dedup_secs` of it) is proposed. So the strongest action a subject
    /// reaches is the one it reaches when the same findings come in event-time order. What late evidence cannot
    /// undo is a weaker action decided before it arrived.
    fn propose(&mut self, f: Finding) -> Option<Decision> {
        if !self.subject_key(&f.subject) {
            return None;
        }
        let now = f.event_time;
        let cfg = &self.cfg;
        // subjects first seen through claims live in their own pool: a flood of them cannot evict real ones
        let s = self
            .state
            .entry_in(&self.key, now, f.subject.backed, || SubjectState {
                findings: Vec::new(),
                fired: Vec::new(),
            });
        if s.findings.len() >= MAX_FINDINGS {
            // no room: the oldest finding a later one of its detector outweighs goes first (a detector firing on
            // every event of an attack must not push out another's late finding), else the oldest, else this one
            let outweighed = (0..s.findings.len()).find(|&i| {
                let x = &s.findings[i];
                s.findings[i + 1..].iter().any(|y| {
                    y.detector == x.detector
                        && y.score >= x.score
                        && (y.subject.backed || !x.subject.backed)
                })
            });
            match outweighed {
                Some(i) => {
                    s.findings.remove(i);
                }
                None if s.findings[0].event_time <= now => {
                    s.findings.remove(0);
                }
                None => return None,
            }
        }
        let at = s.findings.partition_point(|x| x.event_time <= now);
        s.findings.insert(at, f);
        // what fired within `dedup_secs` of a time, before or after it (a late finding is evaluated at times
        // before actions already fired); `fired` keeps the last few actions whatever their age
        let dedup_ms = cfg.dedup_secs as i64 * 1000;
        // the times to evaluate at: the new finding's, then each later one's (only when it came late)
        let mut pick: Option<Scored> = None;
        for upto in s.findings.partition_point(|x| x.event_time <= now)..=s.findings.len() {
            let Some(t) = upto.checked_sub(1).map(|i| s.findings[i].event_time) else {
                continue;
            };
            // the risk at `t`: evaluated once per distinct time, with every finding up to it
            if upto < s.findings.len() && s.findings[upto].event_time == t {
                continue;
            }
            let Some(sc) = Scored::at(cfg, &s.findings[..upto]) else {
                continue;
            };
            let fired = s
                .fired
                .iter()
                .any(|(a, ft)| *a >= sc.action && (t.0 - ft.0).abs() < dedup_ms);
            if !fired && pick.as_ref().is_none_or(|p| sc.action > p.action) {
                pick = Some(sc);
            }
        }
        let sc = pick?;
        let findings = &s.findings[..sc.upto];
        let latest = findings.last()?;
        let now = latest.event_time;
        let contributing: Vec<&Finding> = sc.best.iter().map(|&i| &findings[i]).collect();
        let mut evidence: Vec<String> = Vec::new();
        for f in &contributing {
            for e in &f.evidence {
                let e = bounded(e, MAX_ID_BYTES);
                if evidence.len() < MAX_EVIDENCE && !evidence.contains(&e) {
                    evidence.push(e);
                }
            }
        }
        // The subject's keys: the newest vouched finding's, then the latest finding's, filled from earlier ones.
        let mut h = Sha256::new();
        h.update(self.key.as_bytes());
        h.update([0]);
        h.update(sc.action.as_str());
        h.update([0]);
        h.update(latest.evidence.last().map(String::as_str).unwrap_or(""));
        let decision_id = hex::encode(&h.finalize()[..16]);
        // Ids and their vouches come from the newest finding whose source vouched for the subject.
        let backed: Vec<&Finding> = std::iter::once(latest)
            .chain(contributing.iter().copied())
            .filter(|f| f.subject.backed)
            .collect();
        let vouched = |get: fn(&Subject) -> &Option<Arc<str>>| {
            backed
                .iter()
                .find_map(|f| get(&f.subject).as_deref().map(|v| bounded(v, MAX_ID_BYTES)))
        };
        let mut trust_evidence: Vec<String> = Vec::new();
        for f in contributing.iter().filter(|f| f.subject.backed) {
            for e in &f.evidence {
                let e = bounded(e, MAX_ID_BYTES);
                if trust_evidence.len() < MAX_EVIDENCE && !trust_evidence.contains(&e) {
                    trust_evidence.push(e);
                }
            }
        }
        let trust = Trust {
            principal_vendor: vouched(|s| &s.principal_vendor),
            email_verified_by: vouched(|s| &s.email_verified_by),
            token_vendor: vouched(|s| &s.token_vendor),
            session_vendor: vouched(|s| &s.session_vendor),
            evidence: trust_evidence,
        };
        let pick = |get: fn(&Subject) -> &Option<Arc<str>>| {
            backed
                .iter()
                .copied()
                .chain(std::iter::once(latest))
                .chain(contributing.iter().copied())
                .find_map(|f| get(&f.subject).as_deref().map(|v| bounded(v, MAX_ID_BYTES)))
        };
        Some(Decision {
            kind: DecisionKind::Detection,
            trust,
            decision_id,
            decided_at: now,
            event_time: now,
            action: sc.action,
            principal: pick(|s| &s.principal),
            principal_id: pick(|s| &s.principal_id),
            principal_kind: latest.subject.principal_kind,
            token_id: pick(|s| &s.token_id),
            session_id: pick(|s| &s.session_id),
            job_id: pick(|s| &s.job_id),
            score: (sc.score * 1000.0).round() / 1000.0,
            findings: contributing
                .iter()
                .map(|f| FindingRecord {
                    detector: f.detector.into(),
                    score: f.score,
                    reason: bounded(&f.reason, MAX_REASON_BYTES),
                    source: Some(f.family),
                    authoritative: f.subject.backed,
                })
                .collect(),
            evidence,
            guardrail: sc.claims_capped,
            shadow: false,
        })
    }
}

#[cfg(test)]
impl Scorer {
    /// Propose and record at once, as the acting path does when no guardrail intervenes.
    fn decide(&mut self, f: Finding) -> Option<Decision> {
        let d = self.propose(f)?;
        self.record(d.action, d.event_time);
        Some(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Family;

    fn finding(detector: &'static str, score: f64, secs: i64, ev: &str) -> Finding {
        Finding {
            detector,
            score,
            reason: format!("{detector} fired"),
            evidence: vec![ev.into()],
            subject: Subject {
                principal: Some("alice@example.com".into()),
                principal_kind: PrincipalKind::Human,
                session_id: Some("s1".into()),
                principal_vendor: Some("okta".into()),
                backed: true,
                ..Default::default()
            },
            event_time: Ts(secs * 1000),
            family: Family::Idp,
        }
    }

    #[test]
    fn hijack_plus_travel_terminates_the_session_once() {
        let mut d = Scorer::new(DecideConfig::default()).unwrap();
        let a = d.decide(finding("session_hijack", 0.95, 0, "e1")).unwrap();
        assert_eq!(a.action, Action::TerminateSession);
        assert_eq!(a.session_id.as_deref(), Some("s1"));
        assert!(
            d.decide(finding("impossible_travel", 0.6, 10, "e2"))
                .is_none(),
            "already terminated in this period"
        );
    }

    #[test]
    fn escalation_alert_then_revoke_and_one_detector_never_counts_twice() {
        let mut d = Scorer::new(DecideConfig::default()).unwrap();
        let a = d.decide(finding("data_domain", 0.6, 0, "e1")).unwrap();
        assert_eq!(a.action, Action::StepUp);
        assert!(
            d.decide(finding("data_domain", 0.6, 5, "e2")).is_none(),
            "same detector again adds nothing"
        );
        let b = d
            .decide(finding("destination_drift", 0.7, 10, "e3"))
            .unwrap();
        assert_eq!(b.action, Action::RevokeToken);
        assert!((b.score - 0.88).abs() < 0.01, "{}", b.score);
        assert_eq!(b.findings.len(), 2);
        assert!(b.evidence.contains(&"e3".to_string()));
    }

    #[test]
    fn findings_decay_with_event_time() {
        let mut d = Scorer::new(DecideConfig::default()).unwrap();
        assert_eq!(
            d.decide(finding("data_domain", 0.6, 0, "e1"))
                .unwrap()
                .action,
            Action::StepUp
        );
        // four half-lives later the old finding weighs 0.04: a new weak one alone is only an alert
        let late = d
            .decide(finding("impossible_travel", 0.35, 4 * 1800 + 3600, "e2"))
            .unwrap();
        assert_eq!(late.action, Action::Alert);
    }

    #[test]
    fn a_huge_finding_yields_a_bounded_decision() {
        let mut d = Scorer::new(DecideConfig::default()).unwrap();
        let mut f = finding("destination_drift", 0.95, 0, "e1");
        f.reason = "known: ".to_string() + &"dest-".repeat(200_000);
        f.evidence = (0..10_000)
            .map(|i| format!("ev-{i}-{}", "x".repeat(1000)))
            .collect();
        f.subject.job_id = Some("j".repeat(300_000).into());
        let out = d.decide(f).unwrap();
        let size = serde_json::to_vec(&out).unwrap().len();
        assert!(size < 64 * 1024, "{size} bytes");
        assert!(out.findings[0].reason.ends_with('…'));
    }

    #[test]
    fn a_theft_degraded_by_a_guardrail_does_not_suppress_the_real_action() {
        let mut cfg = DecideConfig::default();
        cfg.guardrails.privileged = vec!["alice@example.com".into()];
        let mut d = Decide::new(cfg).unwrap();
        let mut out = Vec::new();
        // one source family only: the privileged rule steps it up
        d.decide(finding("session_hijack", 0.95, 0, "e1"), Ts(0), &mut out);
        assert_eq!(out.last().unwrap().action, Action::StepUp);
        // the same again is not repeated
        let n = out.len();
        d.decide(
            finding("session_hijack", 0.95, 5, "e2"),
            Ts(5_000),
            &mut out,
        );
        assert_eq!(out.len(), n, "{out:?}");
        // a second family's authoritative evidence arrives: now the real action goes out
        let mut saas = finding("impossible_travel", 0.9, 10, "e3");
        saas.family = Family::Saas;
        d.decide(saas, Ts(10_000), &mut out);
        assert_eq!(
            out.last().unwrap().action,
            Action::TerminateSession,
            "{out:?}"
        );
    }

    #[test]
    fn decision_ids_are_deterministic() {
        let mk = || {
            Scorer::new(DecideConfig::default())
                .unwrap()
                .decide(finding("session_hijack", 0.95, 0, "e1"))
                .unwrap()
                .decision_id
        };
        assert_eq!(mk(), mk());
    }

    /// The strongest action `findings` lead to, fed to a new scorer in the order given.
    fn strongest(findings: &[Finding]) -> Option<Action> {
        let mut d = Scorer::new(DecideConfig::default()).unwrap();
        findings
            .iter()
            .filter_map(|f| d.decide(f.clone()))
            .map(|d| d.action)
            .max()
    }

    /// Found on the simulator's traffic (seed 8): an attacked mailbox's findings, some from a source delivering
    /// 30-90 min late, ended in a session termination in event-time order and a token revocation in arrival
    /// order. A late finding used to be scored against later findings at full weight, and never re-scored the
    /// later ones it strengthens.
    #[test]
    fn late_findings_reach_the_strongest_action_the_same_findings_reach_in_event_time_order() {
        const DETECTORS: [&str; 5] = [
            "data_domain",
            "destination_drift",
            "impossible_travel",
            "session_hijack",
            "new_client",
        ];
        let mut rng = crate::lab::simulate::Rng(7);
        let mut differed = 0;
        for case in 0..400 {
            let n = 2 + rng.below(4) as usize;
            let mut fs: Vec<Finding> = (0..n)
                .map(|i| {
                    let score = 0.3 + rng.below(66) as f64 / 100.0;
                    let secs = rng.range(0, 3 * 3600);
                    let det = DETECTORS[rng.below(DETECTORS.len() as u64) as usize];
                    finding(det, score, secs, &format!("e{case}-{i}"))
                })
                .collect();
            fs.sort_by_key(|f| f.event_time);
            let in_order = strongest(&fs);
            // every arrival order of up to 5 findings: each rotation, and each reversal of one
            for r in 0..n {
                for rev in [false, true] {
                    let mut arrival = fs.clone();
                    arrival.rotate_left(r);
                    if rev {
                        arrival.reverse();
                    }
                    let got = strongest(&arrival);
                    assert_eq!(
                        got,
                        in_order,
                        "case {case}: arrival {:?} vs event-time order {:?}",
                        arrival
                            .iter()
                            .map(|f| (f.detector, f.score, f.event_time.0 / 1000))
                            .collect::<Vec<_>>(),
                        fs.iter()
                            .map(|f| (f.detector, f.score, f.event_time.0 / 1000))
                            .collect::<Vec<_>>()
                    );
                    differed += usize::from(
                        arrival
                            .iter()
                            .zip(&fs)
                            .any(|(a, b)| a.evidence != b.evidence),
                    );
                }
            }
        }
        assert!(
            differed > 1000,
            "the arrival orders tried were mostly out of order: {differed}"
        );
    }

    #[test]
    fn a_late_finding_raises_the_risk_at_the_later_findings_it_precedes() {
        let mut d = Scorer::new(DecideConfig::default()).unwrap();
        // alone, an hour-old step-up-sized finding and a weak one later are an alert at most
        let first = d
            .decide(finding("impossible_travel", 0.4, 3600, "e2"))
            .unwrap();
        assert_eq!(first.action, Action::Alert);
        // delivered late: a stronger finding ten minutes before it (alone, a step-up); together, at the later
        // finding's time, they call for a token revocation (0.65 decayed by 10 min is 0.516; with 0.4, 0.710)
        let late = d
            .decide(finding("session_hijack", 0.65, 3000, "e1"))
            .unwrap();
        assert_eq!(late.action, Action::RevokeToken, "{late:?}");
        assert_eq!(
            late.event_time,
            Ts(3_600_000),
            "decided at the later finding's time"
        );
        assert_eq!(late.findings.len(), 2);
        // and the later finding is not counted at full weight at the late one's own time (0.79 with 0.65)
        assert!((late.score - 0.710).abs() < 0.002, "{}", late.score);
    }

    /// A detector firing on every event of an attack (impossible travel on each download from abroad) fills the
    /// subject's findings; another detector's finding delivered late, older than all of them, must still count.
    #[test]
    fn a_late_finding_finds_room_among_one_detectors_repeated_findings() {
        let mut d = Scorer::new(DecideConfig::default()).unwrap();
        let mut actions = Vec::new();
        for i in 0..MAX_FINDINGS as i64 + 8 {
            actions.extend(d.decide(finding(
                "impossible_travel",
                0.6,
                600 + i * 8,
                &format!("t{i}"),
            )));
        }
        assert_eq!(
            actions.iter().map(|a| a.action).collect::<Vec<_>>(),
            vec![Action::StepUp]
        );
        // the consent grant, five minutes before them, from a source that delivers late: together, a revocation
        let late = d.decide(finding("new_client", 0.4, 300, "grant")).unwrap();
        assert_eq!(late.action, Action::RevokeToken, "{late:?}");
        assert!(late.evidence.contains(&"grant".to_string()));
    }

    #[test]
    fn decreasing_bands_are_rejected_naming_the_key() {
        let e = Scorer::new(DecideConfig {
            revoke_token: 0.4,
            ..Default::default()
        })
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("decide.revoke_token = 0.4"), "{e}");
    }
}
