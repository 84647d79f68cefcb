//! Notices: the decisions Quench makes about itself rather than about a principal's behaviour — the global
//! revocation budget ran out, a target's own budget refused a command, a delivered revocation was never confirmed
//! by the vendor's log. Every decision record is made in [`crate::decide`]; these are the three that are not the
//! score's, each with its [`DecisionKind`].
//!
//! In: the decision a notice is about (or the unconfirmed command's facts) and the time it is made. Out: an
//! `alert` decision with a deterministic id, the reason as its one finding, and its kind. State: none.

use super::{Action, Decision, DecisionKind, FindingRecord, Trust};
use crate::event::{PrincipalKind, Ts};
use sha2::{Digest, Sha256};

/// The first 24 characters of a decision id, the stem of its notices' ids.
fn stem(id: &str) -> &str {
    id.get(..24).unwrap_or(id)
}

/// The decision that announces the global revocation budget ran out (`{decision}-budget`), made in place of `d`.
pub fn budget_exhausted(d: &Decision, max: usize, window_secs: u64) -> Decision {
    Decision {
        decision_id: format!("{}-budget", stem(&d.decision_id)),
        kind: DecisionKind::BudgetExhausted,
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
                "revocation budget exhausted: {max} revocations within {window_secs} s; Quench is alert-only until \
                 the window frees up (possible forged-log flood)"
            ),
            source: None,
            authoritative: false,
        }],
        evidence: d.evidence.clone(),
        guardrail: Some("revocation budget exhausted".into()),
        shadow: false,
        trust: Trust::default(),
    }
}

/// The decision that announces a target's spent revocation budget (`{decision}-{target}-budget`): an alert for
/// the decision `d` that target `target` did not carry out, saying why, made at `now` (wall clock).
pub fn target_budget(d: &Decision, target: &str, why: &str, now: Ts) -> Decision {
    Decision {
        decision_id: format!("{}-{target}-budget", stem(&d.decision_id)),
        kind: DecisionKind::TargetBudget,
        decided_at: now,
        action: Action::Alert,
        guardrail: Some(format!("target budget: {why}")),
        shadow: false,
        trust: Default::default(),
        // the event time, the principal and its ids are the refused decision's
        ..d.clone()
    }
}

/// What an unconfirmed revocation was: the facts [`unconfirmed`] reports.
pub struct Unconfirmed<'a> {
    /// The command (`{decision}.{target}`), whose hash is the notice's id.
    pub command_id: &'a str,
    pub decision_id: &'a str,
    pub target: &'a str,
    pub action: Action,
    pub principal: Option<&'a str>,
    pub principal_kind: PrincipalKind,
    /// The confirmation window that ran out.
    pub within_secs: u64,
}

/// The alert an unconfirmed revocation raises (`{command hash}-unconfirmed`), made at `now` (wall clock).
pub fn unconfirmed(u: &Unconfirmed<'_>, now: Ts) -> Decision {
    let h = hex::encode(Sha256::digest(u.command_id.as_bytes()));
    Decision {
        decision_id: format!("{}-unconfirmed", &h[..24]),
        kind: DecisionKind::Unconfirmed,
        decided_at: now,
        event_time: now,
        action: Action::Alert,
        principal: u.principal.map(String::from),
        principal_id: None,
        principal_kind: u.principal_kind,
        token_id: None,
        session_id: None,
        job_id: None,
        score: 1.0,
        findings: vec![FindingRecord {
            detector: "confirmation".into(),
            score: 1.0,
            reason: format!(
                "{} {} was accepted by {} but its log showed no session or token ending for {} within {} s; check \
                 that the revocation took effect",
                u.action.as_str(),
                u.decision_id,
                u.target,
                u.principal.unwrap_or("the principal"),
                u.within_secs
            ),
            source: None,
            authoritative: false,
        }],
        evidence: vec![u.decision_id.to_string()],
        guardrail: Some(format!("unconfirmed revocation ({})", u.command_id)),
        shadow: false,
        trust: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detection() -> Decision {
        Decision {
            decision_id: "0123456789abcdef0123456789abcdef".into(),
            decided_at: Ts(1_000),
            event_time: Ts(900),
            action: Action::RevokeToken,
            principal: Some("alice@example.com".into()),
            principal_id: Some("00ualice".into()),
            principal_kind: PrincipalKind::Human,
            token_id: Some("t1".into()),
            score: 0.8,
            evidence: vec!["e1".into()],
            ..Default::default()
        }
    }

    /// Each notice says what it is in its `kind`, and a record written before `kind` existed reads as what its id
    /// says: the kinds used to be recognised by id suffix only.
    #[test]
    fn every_notice_carries_its_kind_and_old_records_get_theirs_from_the_id() {
        let d = detection();
        let global = budget_exhausted(&d, 20, 3600);
        let target = target_budget(&d, "okta", "budget of 20 per 3600 s spent", Ts(2_000));
        let u = Unconfirmed {
            command_id: "0123456789abcdef0123456789abcdef.okta",
            decision_id: &d.decision_id,
            target: "okta",
            action: Action::RevokeToken,
            principal: Some("alice@example.com"),
            principal_kind: PrincipalKind::Human,
            within_secs: 300,
        };
        let unconfirmed = unconfirmed(&u, Ts(3_000));
        for (n, kind, name) in [
            (&global, DecisionKind::BudgetExhausted, "budget_exhausted"),
            (&target, DecisionKind::TargetBudget, "target_budget"),
            (&unconfirmed, DecisionKind::Unconfirmed, "unconfirmed"),
            (&d, DecisionKind::Detection, "detection"),
        ] {
            assert_eq!(n.kind, kind);
            let json = serde_json::to_value(n).unwrap();
            assert_eq!(json["kind"], name, "{json}");
            assert_eq!(
                DecisionKind::of_legacy_id(&n.decision_id),
                kind,
                "{}",
                n.decision_id
            );
            // the same record without the field reads as a detection (serde), which is why stored records are
            // given their kind from the id
            let mut old = json.clone();
            old.as_object_mut().unwrap().remove("kind");
            let back: Decision = serde_json::from_value(old).unwrap();
            assert_eq!(back.kind, DecisionKind::Detection);
        }
        assert_eq!(global.action, Action::Alert);
        assert_eq!(target.action, Action::Alert);
        assert_eq!(target.principal.as_deref(), Some("alice@example.com"));
        assert_eq!(target.event_time, d.event_time);
        assert_eq!(target.decided_at, Ts(2_000));
        assert!(unconfirmed.findings[0].reason.contains("within 300 s"));
    }
}
