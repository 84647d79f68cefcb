//! `quench eval`: score the real pipeline against labelled traffic.
//!
//! In: `DIR/events.jsonl` (raw vendor events, time-ordered) and `DIR/labels.json` (attacks with the subject, kind,
//! first malicious event time and acceptable actions; the benign principals; the days covered). Out: per attack
//! kind and overall: attacks caught, caught within the deadline, time to decision in event time (median, max),
//! false revocations and false alerts per 1,000 benign principal-days. A decision counts against Quench unless it
//! is about an attack's subject after that attack began, whether or not its principal is in the benign list, and
//! whether or not it names a principal at all (a token's or a job's). State: none.

use super::{replay, AppError};
use crate::config::Config;
use crate::decide::{Action, Decision};
pub use crate::lab::labels::{Attack, Labels};
use crate::text::escape_control;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

impl Attack {
    /// Whether decision `d` is about this attack: about its subject, and made once the attack could be known:
    /// at or after its first malicious event in event time, or processed after that event arrived (a late record
    /// from before the attack can complete the evidence the attack itself supplied).
    pub fn covers(&self, d: &Decision) -> bool {
        self.matches(d)
            && (d.event_time.0 >= self.first_malicious_at.0 - 1000
                || self
                    .first_malicious_arrival
                    .is_some_and(|arr| d.decided_at.0 >= arr.0))
    }

    /// Seconds from the first malicious event to decision `d`: from its arrival to the processing time of the
    /// decision when the labels know the arrival, else in event time.
    pub fn time_to_decision(&self, d: &Decision) -> f64 {
        match self.first_malicious_arrival {
            Some(arr) => d.decided_at.secs_since(arr).max(0.0),
            None => d.event_time.secs_since(self.first_malicious_at).max(0.0),
        }
    }

    /// Whether a decision is about this attack's subject.
    pub fn matches(&self, d: &Decision) -> bool {
        self.principal
            .as_ref()
            .is_none_or(|p| d.principal.as_ref() == Some(p))
            && self
                .token_id
                .as_ref()
                .is_none_or(|t| d.token_id.as_ref() == Some(t))
            && self
                .job_id
                .as_ref()
                .is_none_or(|j| d.job_id.as_ref() == Some(j))
    }
}

/// Scores of one kind (or overall).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct KindScore {
    pub attacks: usize,
    pub attacks_caught: usize,
    /// Caught within the deadline (event time from the first malicious event).
    pub caught_in_time: usize,
    pub median_time_to_decision_s: Option<f64>,
    pub max_time_to_decision_s: Option<f64>,
    /// Attacks that were not caught, by id.
    pub missed: Vec<String>,
}

/// The whole evaluation (`--json` prints it).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub attacks: usize,
    pub attacks_caught: usize,
    pub caught_in_time: usize,
    pub deadline_s: f64,
    pub benign_principals: usize,
    pub false_revocations: usize,
    pub false_revoked_principals: Vec<String>,
    pub false_revocations_per_10000_principal_days: f64,
    pub false_alerts: usize,
    pub false_alerts_per_1000_principal_days: f64,
    pub median_time_to_decision_s: Option<f64>,
    pub max_time_to_decision_s: Option<f64>,
    pub decisions: usize,
    pub events: u64,
    pub per_kind: BTreeMap<String, KindScore>,
}

fn median_max(mut v: Vec<f64>) -> (Option<f64>, Option<f64>) {
    if v.is_empty() {
        return (None, None);
    }
    v.sort_by(f64::total_cmp);
    (Some(v[v.len() / 2]), v.last().copied())
}

/// Score decisions against labels.
pub fn score(labels: &Labels, decisions: &[Decision], deadline_s: f64, events: u64) -> Report {
    let mut per_kind: BTreeMap<String, KindScore> = BTreeMap::new();
    let mut all_times = Vec::new();
    let mut times_by_kind: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for a in &labels.attacks {
        let k = per_kind.entry(a.kind.clone()).or_default();
        k.attacks += 1;
        let first = decisions
            .iter()
            .filter(|d| a.covers(d) && a.actions.contains(&d.action))
            .map(|d| a.time_to_decision(d))
            .min_by(f64::total_cmp);
        match first {
            Some(t) => {
                k.attacks_caught += 1;
                if t <= deadline_s {
                    k.caught_in_time += 1;
                }
                all_times.push(t);
                times_by_kind.entry(a.kind.clone()).or_default().push(t);
            }
            None => k.missed.push(a.id.clone()),
        }
    }
    for (kind, times) in times_by_kind {
        let (m, x) = median_max(times);
        if let Some(k) = per_kind.get_mut(&kind) {
            k.median_time_to_decision_s = m;
            k.max_time_to_decision_s = x;
        }
    }
    // Every decision is about an innocent unless it is about an attack's subject after that attack began: benign
    // principals, principals in neither list (a platform admin, a claimed identity), and the tokens and jobs of
    // decisions without a principal all count. Only notices about the engine itself (no subject) are left out.
    let under_attack = |d: &Decision| labels.attacks.iter().any(|a| a.covers(d));
    let mut false_revoked: Vec<String> = Vec::new();
    let (mut false_revocations, mut false_alerts) = (0, 0);
    for d in decisions {
        let subject = d
            .principal
            .as_deref()
            .or(d.job_id.as_deref())
            .or(d.token_id.as_deref())
            .or(d.session_id.as_deref());
        let Some(who) = subject else {
            continue;
        };
        if under_attack(d) {
            continue;
        }
        if d.action >= Action::RevokeToken {
            false_revocations += 1;
            if !false_revoked.iter().any(|x| x == who) {
                false_revoked.push(who.to_string());
            }
        } else {
            false_alerts += 1;
        }
    }
    let (median, max) = median_max(all_times);
    let sum = |f: fn(&KindScore) -> usize| per_kind.values().map(f).sum();
    let principal_days = labels.benign_principals.len() as f64 * labels.days.max(1.0 / 24.0);
    Report {
        attacks: labels.attacks.len(),
        attacks_caught: sum(|k| k.attacks_caught),
        caught_in_time: sum(|k| k.caught_in_time),
        deadline_s,
        benign_principals: labels.benign_principals.len(),
        false_revocations,
        false_revoked_principals: false_revoked,
        false_revocations_per_10000_principal_days: if principal_days > 0.0 {
            10000.0 * false_revocations as f64 / principal_days
        } else {
            0.0
        },
        false_alerts,
        false_alerts_per_1000_principal_days: if principal_days > 0.0 {
            1000.0 * false_alerts as f64 / principal_days
        } else {
            0.0
        },
        median_time_to_decision_s: median,
        max_time_to_decision_s: max,
        decisions: decisions.len(),
        events,
        per_kind,
    }
}

/// The configuration the traffic in `dir` comes with (`dir/quench.toml`, as `quench simulate` writes it), else the
/// defaults.
pub fn traffic_config(dir: &Path) -> Result<Config, AppError> {
    let p = dir.join("quench.toml");
    if !p.exists() {
        return Ok(Config::default());
    }
    let text = std::fs::read_to_string(&p).map_err(|source| AppError::Io {
        path: p.display().to_string(),
        source,
    })?;
    Config::from_str(&text, &p.display().to_string())
        .map_err(|e| AppError::Scenario(format!("{}: {e}", p.display())))
}

/// Replay `dir/events.jsonl` through the pipeline (the `replay` code path) and score it against
/// `dir/labels.json`.
pub async fn eval(cfg: &Config, dir: &Path, deadline_s: f64) -> Result<Report, AppError> {
    let lp = dir.join("labels.json");
    let text = std::fs::read_to_string(&lp).map_err(|source| AppError::Io {
        path: lp.display().to_string(),
        source,
    })?;
    let labels: Labels = serde_json::from_str(&text)
        .map_err(|e| AppError::Scenario(format!("{}: {e}", lp.display())))?;
    let events = dir.join("events.jsonl").display().to_string();
    let r = replay(cfg, &[events], false, &mut std::io::sink()).await?;
    Ok(score(&labels, &r.decisions, deadline_s, r.stats.events))
}

/// The report as a table for people.
pub fn table(r: &Report) -> String {
    let opt = |v: Option<f64>| v.map(|x| format!("{x:.0}")).unwrap_or_else(|| "-".into());
    let mut s = format!(
        "| attack kind | attacks | caught | within {:.0} s | median s | max s | missed |\n|---|---|---|---|---|---|---|\n",
        r.deadline_s
    );
    for (k, v) in &r.per_kind {
        s.push_str(&format!(
            "| {k} | {} | {} | {} | {} | {} | {} |\n",
            v.attacks,
            v.attacks_caught,
            v.caught_in_time,
            opt(v.median_time_to_decision_s),
            opt(v.max_time_to_decision_s),
            if v.missed.is_empty() {
                "-".to_string()
            } else {
                escape_control(&v.missed.join(", ")).into_owned()
            }
        ));
    }
    s.push_str(&format!(
        "| **all** | **{}** | **{}** | **{}** | {} | {} | |\n\n",
        r.attacks,
        r.attacks_caught,
        r.caught_in_time,
        opt(r.median_time_to_decision_s),
        opt(r.max_time_to_decision_s)
    ));
    s.push_str(&format!(
        "benign principals: {}; false revocations: {} ({:.2} per 10,000 benign principal-days: {}); false alerts: {} ({:.2} per 1,000 benign principal-days); decisions: {}; events: {}\n",
        r.benign_principals,
        r.false_revocations,
        r.false_revocations_per_10000_principal_days,
        if r.false_revoked_principals.is_empty() { "none".to_string() } else { escape_control(&r.false_revoked_principals.join(", ")).into_owned() },
        r.false_alerts,
        r.false_alerts_per_1000_principal_days,
        r.decisions,
        r.events
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{PrincipalKind, Ts};

    fn decision(action: Action, principal: &str, secs: i64) -> Decision {
        Decision {
            decision_id: format!("{principal}{secs}"),
            event_time: Ts(secs * 1000),
            action,
            principal: Some(principal.into()),
            principal_kind: PrincipalKind::Human,
            score: 0.9,
            ..Default::default()
        }
    }

    #[test]
    fn every_innocent_counts_not_only_the_benign_list() {
        let labels = Labels {
            attacks: vec![Attack {
                id: "a1".into(),
                kind: "token_scraping".into(),
                principal: None,
                token_id: Some("tok-bad".into()),
                job_id: None,
                first_malicious_at: Ts(100_000),
                first_malicious_arrival: None,
                variant: None,
                actions: vec![Action::RevokeToken],
            }],
            benign_principals: vec!["b1".into()],
            days: 1.0,
        };
        // a principal in neither list, and a token revocation with no principal
        let mut tok = decision(Action::RevokeToken, "x", 200);
        tok.principal = None;
        tok.token_id = Some("tok-good".into());
        let mut hit = decision(Action::RevokeToken, "x", 200);
        hit.principal = None;
        hit.token_id = Some("tok-bad".into());
        let ds = vec![
            decision(Action::RevokeToken, "platform-admin@example.com", 50),
            tok,
            hit,
        ];
        let r = score(&labels, &ds, 60.0, 3);
        assert_eq!(r.attacks_caught, 1);
        assert_eq!(r.false_revocations, 2);
        assert_eq!(
            r.false_revoked_principals,
            vec![
                "platform-admin@example.com".to_string(),
                "tok-good".to_string()
            ]
        );
    }

    /// An M365 record arrives an hour after it happened: the clock to decide starts at its arrival, and a decision
    /// made when it is processed is in time.
    #[test]
    fn time_to_decision_counts_from_the_arrival_of_the_first_malicious_event() {
        let a = Attack {
            id: "m".into(),
            kind: "m365_mailbox_access".into(),
            variant: None,
            principal: Some("v".into()),
            token_id: None,
            job_id: None,
            first_malicious_at: Ts(1_000_000),
            first_malicious_arrival: Some(Ts(1_000_000 + 3_600_000)),
            actions: vec![Action::RevokeToken],
        };
        let mut d = decision(Action::RevokeToken, "v", 1000);
        d.decided_at = Ts(1_000_000 + 3_600_000 + 2_000);
        assert_eq!(a.time_to_decision(&d), 2.0);
        let labels = Labels {
            attacks: vec![a],
            benign_principals: vec!["b".into()],
            days: 1.0,
        };
        let r = score(&labels, &[d], 60.0, 1);
        assert_eq!(r.caught_in_time, 1);
    }

    /// Found on the simulator's traffic: a victim's own record from two minutes before the attack arrived late,
    /// after the attacker's, and completed the impossible-travel evidence; the decision took that record's event
    /// time and was counted as revoking an innocent.
    #[test]
    fn a_decision_processed_after_the_attack_arrived_is_about_the_attack() {
        let a = Attack {
            id: "x".into(),
            kind: "bulk_export".into(),
            variant: None,
            principal: Some("v".into()),
            token_id: None,
            job_id: None,
            first_malicious_at: Ts(1_000_000),
            first_malicious_arrival: Some(Ts(1_500_000)),
            actions: vec![Action::RevokeToken],
        };
        let mut late = decision(Action::RevokeToken, "v", 880);
        late.decided_at = Ts(1_600_000);
        let mut early = decision(Action::RevokeToken, "v", 880);
        early.decided_at = Ts(1_400_000);
        assert!(a.covers(&late));
        assert!(
            !a.covers(&early),
            "decided before the attack arrived: about something else"
        );
        let labels = Labels {
            attacks: vec![a],
            benign_principals: vec!["v".into()],
            days: 1.0,
        };
        let r = score(&labels, &[late], 60.0, 1);
        assert_eq!((r.false_revocations, r.attacks_caught), (0, 1));
        let r = score(&labels, &[early], 60.0, 1);
        assert_eq!((r.false_revocations, r.attacks_caught), (1, 0));
    }

    #[test]
    fn caught_missed_late_false_revocations_and_alerts_are_counted() {
        let attack = |id: &str, p: &str, at: i64| Attack {
            id: id.into(),
            kind: "session_theft".into(),
            principal: Some(p.into()),
            token_id: None,
            job_id: None,
            first_malicious_at: Ts(at * 1000),
            first_malicious_arrival: None,
            variant: None,
            actions: vec![Action::TerminateSession],
        };
        let labels = Labels {
            attacks: vec![
                attack("a1", "v1", 100),
                attack("a2", "v2", 100),
                attack("a3", "v3", 100),
            ],
            benign_principals: vec!["b1".into(), "b2".into()],
            days: 1.0,
        };
        let ds = vec![
            decision(Action::TerminateSession, "v1", 130), // caught in 30 s
            decision(Action::TerminateSession, "v2", 400), // caught late
            decision(Action::RevokeToken, "v3", 50),       // before v3's attack: a false revocation
            decision(Action::RevokeToken, "b1", 10),       // false revocation
            decision(Action::Alert, "b2", 10),             // false alert
        ];
        let r = score(&labels, &ds, 60.0, 5);
        assert_eq!((r.attacks, r.attacks_caught, r.caught_in_time), (3, 2, 1));
        assert_eq!(r.per_kind["session_theft"].missed, vec!["a3".to_string()]);
        assert_eq!((r.false_revocations, r.false_alerts), (2, 1));
        assert_eq!(
            r.false_revoked_principals,
            vec!["v3".to_string(), "b1".to_string()]
        );
        assert_eq!(r.max_time_to_decision_s, Some(300.0));
        assert_eq!(r.false_alerts_per_1000_principal_days, 500.0);
    }
}
