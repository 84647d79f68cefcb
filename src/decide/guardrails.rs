//! Guardrails: logs can be forged to turn Quench against its owners, so some decisions are capped.
//!
//! In: decisions from scoring. Out: the same decisions, possibly with a weaker action and a `guardrail` note, plus
//! a notice decision of its own when the revocation budget runs out. Rules, in order:
//! - protected principals (break-glass admins) are never revoked automatically: alert only;
//! - terminating a privileged human's sessions needs findings from two different source families, else step-up;
//! - at most `max_revocations` revoke/terminate decisions per `budget_window_secs` of event time overall; past
//!   that, alert only until the window frees up (logged as an error, and announced by a decision).
//!
//! Shadow detectors are decided separately and never acted on. State: the event times of recent revocations.

use super::{Action, Decision, FindingRecord};
use crate::event::{PrincipalKind, Ts};
use crate::pattern::glob;
use serde::Deserialize;
use std::collections::VecDeque;

/// `[decide.guardrails]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuardrailConfig {
    /// Principals never revoked automatically, only alerted on (globs on e-mail or id). Default [].
    pub protected: Vec<String>,
    /// Privileged humans: terminating their sessions needs findings from two source families (globs). Default [].
    pub privileged: Vec<String>,
    /// Most revoke_token/terminate_session decisions per window, over all subjects. Default 50.
    pub max_revocations: usize,
    /// The budget's window in seconds of event time. Default 3600.
    pub budget_window_secs: u64,
    /// Detectors in shadow mode: their findings are decided and recorded (`shadow: true`), never acted on.
    /// Default [].
    pub shadow: Vec<String>,
}

impl Default for GuardrailConfig {
    fn default() -> Self {
        GuardrailConfig {
            protected: Vec::new(),
            privileged: Vec::new(),
            max_revocations: 50,
            budget_window_secs: 3600,
            shadow: Vec::new(),
        }
    }
}

pub struct Guardrails {
    cfg: GuardrailConfig,
    recent: VecDeque<Ts>,
    exhausted_since: Option<Ts>,
}

impl Guardrails {
    pub fn new(cfg: GuardrailConfig) -> Self {
        Guardrails {
            cfg,
            recent: VecDeque::new(),
            exhausted_since: None,
        }
    }

    pub fn is_shadow(&self, detector: &str) -> bool {
        self.cfg.shadow.iter().any(|s| s == detector)
    }

    fn matches(list: &[String], d: &Decision) -> bool {
        list.iter().any(|p| {
            d.principal.as_deref().is_some_and(|x| glob(p, x))
                || d.principal_id.as_deref().is_some_and(|x| glob(p, x))
        })
    }

    /// Apply the rules to `d`; push it (and a budget notice when the budget runs out) to `out`.
    pub fn apply(&mut self, mut d: Decision, out: &mut Vec<Decision>) {
        if d.action >= Action::RevokeToken && Self::matches(&self.cfg.protected, &d) {
            d.guardrail = Some(format!(
                "protected principal: {} capped to alert",
                d.action.as_str()
            ));
            d.action = Action::Alert;
        }
        if d.action == Action::TerminateSession
            && d.principal_kind == PrincipalKind::Human
            && Self::matches(&self.cfg.privileged, &d)
        {
            let mut families: Vec<_> = d.findings.iter().filter_map(|f| f.source).collect();
            families.sort_by_key(|f| *f as u8);
            families.dedup();
            if families.len() < 2 {
                d.guardrail = Some("privileged principal: terminating sessions needs findings from two sources; stepped up instead".into());
                d.action = Action::StepUp;
            }
        }
        if d.action >= Action::RevokeToken {
            let window = self.cfg.budget_window_secs as i64 * 1000;
            while self
                .recent
                .front()
                .is_some_and(|t| d.event_time.0 - t.0 >= window)
            {
                self.recent.pop_front();
            }
            if self.recent.len() >= self.cfg.max_revocations {
                let first = self.exhausted_since.is_none();
                self.exhausted_since.get_or_insert(d.event_time);
                tracing::error!(
                    decision = %d.decision_id,
                    budget = self.cfg.max_revocations,
                    window_secs = self.cfg.budget_window_secs,
                    "revocation budget exhausted: degrading to alert-only"
                );
                d.guardrail = Some(format!(
                    "revocation budget exhausted ({} in {} s): {} degraded to alert",
                    self.cfg.max_revocations,
                    self.cfg.budget_window_secs,
                    d.action.as_str()
                ));
                d.action = Action::Alert;
                if first {
                    out.push(notice(
                        &d,
                        self.cfg.max_revocations,
                        self.cfg.budget_window_secs,
                    ));
                }
            } else {
                self.recent.push_back(d.event_time);
                self.exhausted_since = None;
            }
        }
        out.push(d);
    }
}

/// The decision that announces the budget ran out.
fn notice(d: &Decision, max: usize, window: u64) -> Decision {
    Decision {
        decision_id: format!("{}-budget", &d.decision_id[..d.decision_id.len().min(24)]),
        decided_at: d.decided_at,
        event_time: d.event_time,
        action: Action::Alert,
        principal: None,
        principal_id: None,
        principal_kind: PrincipalKind::Unknown,
        token_id: None,
        session_id: None,
        job_id: None,
        score: 1.0,
        findings: vec![FindingRecord {
            detector: "guardrail".into(),
            score: 1.0,
            reason: format!(
                "revocation budget exhausted: {max} revocations within {window} s; Quench is alert-only until the window frees up (possible forged-log flood)"
            ),
            source: None,
        }],
        evidence: d.evidence.clone(),
        guardrail: Some("revocation budget exhausted".into()),
        shadow: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Family;

    fn decision(action: Action, principal: &str, secs: i64, sources: &[Family]) -> Decision {
        Decision {
            decision_id: format!("{:032x}", secs),
            decided_at: Ts(0),
            event_time: Ts(secs * 1000),
            action,
            principal: Some(principal.into()),
            principal_id: None,
            principal_kind: PrincipalKind::Human,
            token_id: None,
            session_id: None,
            job_id: None,
            score: 0.95,
            findings: sources
                .iter()
                .map(|s| FindingRecord {
                    detector: "x".into(),
                    score: 0.9,
                    reason: "r".into(),
                    source: Some(*s),
                })
                .collect(),
            evidence: vec!["e".into()],
            guardrail: None,
            shadow: false,
        }
    }

    fn guard() -> Guardrails {
        Guardrails::new(GuardrailConfig {
            protected: vec!["breakglass-*@example.com".into()],
            privileged: vec!["*-admin@example.com".into()],
            max_revocations: 3,
            budget_window_secs: 600,
            shadow: vec![],
        })
    }

    #[test]
    fn protected_principals_are_only_alerted_on() {
        let mut out = Vec::new();
        guard().apply(
            decision(
                Action::TerminateSession,
                "breakglass-1@example.com",
                0,
                &[Family::Idp],
            ),
            &mut out,
        );
        assert_eq!(out[0].action, Action::Alert);
        assert!(out[0].guardrail.as_deref().unwrap().contains("protected"));
    }

    #[test]
    fn privileged_termination_needs_two_sources() {
        let mut g = guard();
        let mut out = Vec::new();
        g.apply(
            decision(
                Action::TerminateSession,
                "ops-admin@example.com",
                0,
                &[Family::Idp, Family::Idp],
            ),
            &mut out,
        );
        g.apply(
            decision(
                Action::TerminateSession,
                "ops-admin@example.com",
                1,
                &[Family::Idp, Family::Saas],
            ),
            &mut out,
        );
        assert_eq!(
            (out[0].action, out[1].action),
            (Action::StepUp, Action::TerminateSession)
        );
    }

    #[test]
    fn a_forged_flood_exhausts_the_budget_once_and_degrades_to_alerts_until_the_window_frees() {
        let mut g = guard();
        let mut out = Vec::new();
        for i in 0..10 {
            g.apply(
                decision(
                    Action::RevokeToken,
                    &format!("u{i}@example.com"),
                    i,
                    &[Family::Idp],
                ),
                &mut out,
            );
        }
        let acted = out
            .iter()
            .filter(|d| d.action == Action::RevokeToken)
            .count();
        let notices = out
            .iter()
            .filter(|d| {
                d.findings
                    .first()
                    .is_some_and(|f| f.detector == "guardrail")
            })
            .count();
        assert_eq!((acted, notices), (3, 1));
        assert_eq!(out.len(), 11);
        // after the window, revocations flow again
        let mut later = Vec::new();
        g.apply(
            decision(Action::RevokeToken, "v@example.com", 700, &[Family::Idp]),
            &mut later,
        );
        assert_eq!(later[0].action, Action::RevokeToken);
    }
}
