//! Guardrails: logs can be forged to turn Quench against its owners, so some decisions are capped.
//!
//! In: decisions from scoring, with the processing clock. Out: the same decisions, possibly with a weaker action and
//! a `guardrail` note, plus a notice decision of its own when the revocation budget runs out. Rules, in order:
//! - a decision with no authoritative evidence (no finding whose source vouched for the identity it is about) is
//!   at most an alert: claims (a Basic user name, a client header, an agent's `enduser.id`) never revoke anyone;
//! - protected principals (break-glass admins) are never revoked automatically: alert only;
//! - revoking a privileged human's tokens or sessions (both log a person out at most IdPs: Okta's default
//!   `user_sessions` method ends every session) needs authoritative findings from two different source families,
//!   else step-up;
//! - at most `max_revocations` revoke/terminate decisions per `budget_window_secs` of processing time overall
//!   (ingest time in `run`, the corroborated stream timeline in `replay`; never the events' own times, which a
//!   forger picks); past that, alert only until the window frees up (logged as an error, and announced by a
//!   decision).
//!
//! Shadow detectors are decided separately and never acted on. State: the event times of recent revocations.

use super::{Action, Decision};
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
    /// Privileged humans: revoking their tokens or sessions needs authoritative findings from two source families
    /// (globs). Default [].
    pub privileged: Vec<String>,
    /// Most revoke_token/terminate_session decisions per window, over all subjects. Default 50.
    pub max_revocations: usize,
    /// The budget's window in seconds of processing time (ingest time in `run`). Default 3600.
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

/// The global revocation budget as saved: the recent revocations' times and since when it is spent.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct SavedBudget {
    recent: VecDeque<Ts>,
    exhausted_since: Option<Ts>,
}

impl Guardrails {
    pub fn save(&self) -> SavedBudget {
        SavedBudget {
            recent: self.recent.clone(),
            exhausted_since: self.exhausted_since,
        }
    }

    pub fn load(&mut self, saved: SavedBudget) {
        self.recent = saved.recent;
        self.exhausted_since = saved.exhausted_since;
    }

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

    /// Whether a pattern names the decision's principal, also behind the kind prefix correlate puts on a
    /// non-human e-mail key (`unknown:breakglass-1@…`: a source that gives no kind must not unprotect anyone).
    fn matches(list: &[String], d: &Decision) -> bool {
        let bare = |x: &str| {
            ["unknown:", "service:", "agent:"]
                .iter()
                .find_map(|k| x.strip_prefix(k))
                .map(str::to_string)
        };
        list.iter().any(|p| {
            [d.principal.as_deref(), d.principal_id.as_deref()]
                .into_iter()
                .flatten()
                .any(|x| glob(p, x) || bare(x).is_some_and(|b| glob(p, &b)))
        })
    }

    /// Apply the rules to `d`; push it (and a budget notice when the budget runs out) to `out`.
    pub fn apply(&mut self, mut d: Decision, clock: Ts, out: &mut Vec<Decision>) {
        if d.action > Action::Alert && d.trust.evidence.is_empty() {
            d.guardrail = Some(format!(
                "no authoritative evidence: every finding rests on an identity its source only claims; {} capped to alert",
                d.action.as_str()
            ));
            d.action = Action::Alert;
        }
        if d.action >= Action::RevokeToken && Self::matches(&self.cfg.protected, &d) {
            d.guardrail = Some(format!(
                "protected principal: {} capped to alert",
                d.action.as_str()
            ));
            d.action = Action::Alert;
        }
        if d.action >= Action::RevokeToken
            && d.principal_kind == PrincipalKind::Human
            && Self::matches(&self.cfg.privileged, &d)
        {
            let mut families: Vec<_> = d
                .findings
                .iter()
                .filter(|f| f.authoritative)
                .filter_map(|f| f.source)
                .collect();
            families.sort_by_key(|f| *f as u8);
            families.dedup();
            if families.len() < 2 {
                d.guardrail = Some(format!("privileged principal: {} logs a person out and needs authoritative findings from two source families; stepped up instead", d.action.as_str()));
                d.action = Action::StepUp;
            }
        }
        if d.action >= Action::RevokeToken {
            let window = self.cfg.budget_window_secs as i64 * 1000;
            while self
                .recent
                .front()
                .is_some_and(|t| clock.0.saturating_sub(t.0) >= window)
            {
                self.recent.pop_front();
            }
            if self.recent.len() >= self.cfg.max_revocations {
                let first = self.exhausted_since.is_none();
                self.exhausted_since.get_or_insert(clock);
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
                    out.push(super::notice::budget_exhausted(
                        &d,
                        self.cfg.max_revocations,
                        self.cfg.budget_window_secs,
                    ));
                }
            } else {
                self.recent.push_back(clock);
                self.exhausted_since = None;
            }
        }
        out.push(d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::{FindingRecord, Trust};
    use crate::event::Family;

    /// Found by a mutation run: an alert resting on claimed identities stays a plain alert (no guardrail note);
    /// only a stronger action is capped.
    #[test]
    fn an_alert_without_authoritative_evidence_is_left_as_it_is() {
        let mut g = Guardrails::new(toml::from_str("").unwrap());
        let mut out = Vec::new();
        for action in [Action::Alert, Action::StepUp] {
            let mut d = decision(action, "a@example.com", 1, &[Family::Idp]);
            d.trust.evidence.clear();
            g.apply_et(d, &mut out);
        }
        assert_eq!(
            (out[0].action, out[0].guardrail.as_deref()),
            (Action::Alert, None)
        );
        assert_eq!(out[1].action, Action::Alert);
        assert!(out[1]
            .guardrail
            .as_deref()
            .unwrap()
            .contains("no authoritative evidence"));
    }

    /// Found by a mutation run: with one detector in shadow mode, the others still act.
    #[test]
    fn only_the_detectors_listed_are_in_shadow_mode() {
        let mut cfg: GuardrailConfig = toml::from_str("").unwrap();
        cfg.shadow = vec!["tool_drift".into()];
        let g = Guardrails::new(cfg);
        assert!(g.is_shadow("tool_drift"));
        assert!(!g.is_shadow("session_hijack"));
    }

    impl Guardrails {
        fn apply_et(&mut self, d: Decision, out: &mut Vec<Decision>) {
            let clock = d.event_time;
            self.apply(d, clock, out)
        }
    }

    fn decision(action: Action, principal: &str, secs: i64, sources: &[Family]) -> Decision {
        Decision {
            decision_id: format!("{:032x}", secs),
            event_time: Ts(secs * 1000),
            action,
            principal: Some(principal.into()),
            principal_kind: PrincipalKind::Human,
            score: 0.95,
            findings: sources
                .iter()
                .map(|s| FindingRecord {
                    detector: "x".into(),
                    score: 0.9,
                    reason: "r".into(),
                    source: Some(*s),
                    authoritative: true,
                })
                .collect(),
            evidence: vec!["e".into()],
            trust: Trust::vouched_by("okta", Family::Idp, "e"),
            ..Default::default()
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
    fn a_decision_resting_only_on_claimed_identities_is_at_most_an_alert() {
        let mut d = decision(
            Action::TerminateSession,
            "ceo@example.com",
            0,
            &[Family::Gateway],
        );
        d.trust = Trust::default();
        let mut out = Vec::new();
        guard().apply_et(d, &mut out);
        assert_eq!(out[0].action, Action::Alert);
        assert!(out[0]
            .guardrail
            .as_deref()
            .unwrap()
            .contains("no authoritative evidence"));
    }

    #[test]
    fn a_privileged_humans_token_revocation_also_needs_two_authoritative_families() {
        let mut g = guard();
        let mut out = Vec::new();
        g.apply_et(
            decision(
                Action::RevokeToken,
                "ops-admin@example.com",
                0,
                &[Family::Idp],
            ),
            &mut out,
        );
        // two families, but the saas finding's identity was only claimed
        let mut d = decision(
            Action::RevokeToken,
            "ops-admin@example.com",
            1,
            &[Family::Idp, Family::Saas],
        );
        d.findings[1].authoritative = false;
        g.apply_et(d, &mut out);
        assert_eq!(
            (out[0].action, out[1].action),
            (Action::StepUp, Action::StepUp)
        );
    }

    #[test]
    fn forged_event_times_an_hour_apart_do_not_stretch_the_revocation_budget() {
        let mut g = guard();
        let mut out = Vec::new();
        for i in 0..20 {
            // each decision's event time is an hour after the last, all processed within the same minute
            let d = decision(
                Action::TerminateSession,
                &format!("u{i}@example.com"),
                i * 3600,
                &[Family::Idp],
            );
            g.apply(d, Ts(i), &mut out);
        }
        let acted = out
            .iter()
            .filter(|d| d.action == Action::TerminateSession)
            .count();
        assert_eq!(
            acted, 3,
            "the budget counts processing time, not the events' own times"
        );
    }

    #[test]
    fn one_event_dated_2100_does_not_lock_the_budget_for_later_real_thefts() {
        let mut g = guard();
        let mut out = Vec::new();
        // a forged far-future decision (its event time is 2100) uses one slot of the budget at processing time 0
        g.apply(
            decision(
                Action::RevokeToken,
                "x@example.com",
                4_102_444_800,
                &[Family::Idp],
            ),
            Ts(0),
            &mut out,
        );
        // a real theft after the window is acted on
        g.apply(
            decision(Action::RevokeToken, "v@example.com", 700, &[Family::Idp]),
            Ts(700_000),
            &mut out,
        );
        assert_eq!(out.last().unwrap().action, Action::RevokeToken);
    }

    #[test]
    fn protected_principals_are_only_alerted_on() {
        let mut out = Vec::new();
        guard().apply_et(
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

    /// Found by the outside review: a source that gives no principal kind (OCSF without `type_id`, an Okta actor
    /// without `type`) keys the principal `unknown:breakglass-1@…`, which no protected pattern matched.
    #[test]
    fn a_protected_principal_of_unknown_kind_is_still_protected() {
        let mut out = Vec::new();
        guard().apply_et(
            decision(
                Action::RevokeToken,
                "unknown:breakglass-1@example.com",
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
        g.apply_et(
            decision(
                Action::TerminateSession,
                "ops-admin@example.com",
                0,
                &[Family::Idp, Family::Idp],
            ),
            &mut out,
        );
        g.apply_et(
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
            g.apply_et(
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
        g.apply_et(
            decision(Action::RevokeToken, "v@example.com", 700, &[Family::Idp]),
            &mut later,
        );
        assert_eq!(later[0].action, Action::RevokeToken);
    }
}
