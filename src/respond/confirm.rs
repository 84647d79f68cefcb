//! Confirmation: after a revocation was accepted, watch the vendor's own log for the proof that it took effect.
//!
//! In: delivered revocations of targets with `confirm_within_secs` ([`Confirmer::expect`]), and the session and
//! token endings the pipeline saw in the input ([`Ended`]: Okta `user.session.clear`/`user.session.end`, the
//! Entra ID audit record of "Revoke sign-in sessions", Google `logout`, Salesforce and Slack logouts …).
//! Out: one [`Confirmation`] per revocation: `confirmed`, with the time from delivery to the vendor's log entry,
//! or `unconfirmed` once `confirm_within_secs` pass without one (the caller raises an alert for it).
//! State: the revocations awaiting confirmation, and the endings of the last few minutes (a log entry can arrive
//! before the revocation's HTTP answer), bounded in number and age.

use super::Delivery;
use crate::clock::WallTime;
use crate::decide::{Action, Decision};
use crate::event::{Ended, PrincipalKind, Ts};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// How far a vendor's log timestamp may precede our delivery time (clock skew, the answer's latency), ms.
const SKEW_MS: i64 = 60_000;
/// Endings kept for revocations whose answer comes after the log entry: this many at most, this long (ms).
const RECENT_MAX: usize = 10_000;
const RECENT_MS: i64 = 600_000;

/// A revocation waiting for its proof.
#[derive(Debug, Clone)]
pub struct Pending {
    pub command_id: String,
    pub decision_id: String,
    pub target: String,
    pub action: Action,
    pub principal: Option<String>,
    pub principal_kind: PrincipalKind,
    /// Lower-cased e-mail and ids the vendor may log the user as.
    pub subjects: Vec<String>,
    /// The vendor whose log proves it (`okta`, `microsoft`, `google` …).
    pub vendor: &'static str,
    /// When the target accepted it (our wall clock).
    pub delivered_at: WallTime,
    pub within_secs: u64,
}

impl Pending {
    /// The pending confirmation of a delivered command.
    pub fn of(d: &Delivery, decision: &Decision, vendor: &'static str, within_secs: u64) -> Self {
        Self::new(
            &d.command_id,
            &d.target,
            decision,
            vendor,
            within_secs,
            d.finished_at,
        )
    }

    /// The pending confirmation of command `command_id` (target `target`), delivered at `delivered_at`.
    pub fn new(
        command_id: &str,
        target: &str,
        decision: &Decision,
        vendor: &'static str,
        within_secs: u64,
        delivered_at: WallTime,
    ) -> Self {
        let subjects = [
            decision.principal.as_deref(),
            decision.principal_id.as_deref(),
        ]
        .into_iter()
        .flatten()
        .map(str::to_ascii_lowercase)
        .collect();
        Pending {
            command_id: command_id.to_string(),
            decision_id: decision.decision_id.clone(),
            target: target.to_string(),
            action: decision.action,
            principal: decision.principal.clone(),
            principal_kind: decision.principal_kind,
            subjects,
            vendor,
            delivered_at,
            within_secs,
        }
    }

    /// Whether the vendor's log entry `e` proves this revocation: the vendor's own clock dates it no earlier than
    /// our delivery, less [`SKEW_MS`] (the vendor's log time and our wall clock are both real clocks).
    fn matches(&self, e: &Ended) -> bool {
        e.vendor == self.vendor
            && e.event_time.0 >= self.delivered_at.as_ts().0 - SKEW_MS
            && e.subjects.iter().any(|s| self.subjects.contains(s))
    }

    fn deadline(&self) -> i64 {
        self.delivered_at.0 + self.within_secs as i64 * 1000
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfirmStatus {
    Confirmed,
    Unconfirmed,
}

/// What became of a revocation in the vendor's own log (a `confirmation` record on the commands topic).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Confirmation {
    pub command_id: String,
    pub decision_id: String,
    pub target: String,
    pub status: ConfirmStatus,
    pub delivered_at: WallTime,
    /// The vendor's timestamp of the confirming log entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed_at: Option<Ts>,
    /// Seconds from delivery to the confirming entry (negative when the vendor's clock is behind ours).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds_to_confirm: Option<f64>,
    /// The confirming event's id and type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_action: Option<String>,
    pub within_secs: u64,
}

impl Confirmation {
    fn confirmed(p: &Pending, e: &Ended) -> Self {
        Confirmation {
            command_id: p.command_id.clone(),
            decision_id: p.decision_id.clone(),
            target: p.target.clone(),
            status: ConfirmStatus::Confirmed,
            delivered_at: p.delivered_at,
            confirmed_at: Some(e.event_time),
            seconds_to_confirm: Some((e.event_time.0 - p.delivered_at.as_ts().0) as f64 / 1000.0),
            event_id: Some(e.event_id.clone()),
            event_action: Some(e.action.clone()),
            within_secs: p.within_secs,
        }
    }

    /// The record of a revocation whose proof never came.
    pub fn unconfirmed(p: &Pending) -> Self {
        Confirmation {
            command_id: p.command_id.clone(),
            decision_id: p.decision_id.clone(),
            target: p.target.clone(),
            status: ConfirmStatus::Unconfirmed,
            delivered_at: p.delivered_at,
            confirmed_at: None,
            seconds_to_confirm: None,
            event_id: None,
            event_action: None,
            within_secs: p.within_secs,
        }
    }
}

/// The alert an unconfirmed revocation raises ([`crate::decide::notice::unconfirmed`]), made at `now` (wall clock).
pub fn unconfirmed_alert(p: &Pending, now: WallTime) -> Decision {
    let u = crate::decide::notice::Unconfirmed {
        command_id: &p.command_id,
        decision_id: &p.decision_id,
        target: &p.target,
        action: p.action,
        principal: p.principal.as_deref(),
        principal_kind: p.principal_kind,
        within_secs: p.within_secs,
    };
    crate::decide::notice::unconfirmed(&u, now.as_ts())
}

/// Matches delivered revocations with the endings the vendors log.
#[derive(Default)]
pub struct Confirmer {
    pending: Vec<Pending>,
    recent: VecDeque<Ended>,
}

impl Confirmer {
    /// Wait for `p`'s proof; returns its confirmation at once when the ending was already seen.
    pub fn expect(&mut self, p: Pending) -> Option<Confirmation> {
        if let Some(e) = self.recent.iter().find(|e| p.matches(e)) {
            return Some(Confirmation::confirmed(&p, e));
        }
        self.pending.push(p);
        None
    }

    /// An ending seen in the input: the confirmations it gives.
    pub fn observe(&mut self, e: Ended) -> Vec<Confirmation> {
        let mut out = Vec::new();
        self.pending.retain(|p| {
            if p.matches(&e) {
                out.push(Confirmation::confirmed(p, &e));
                false
            } else {
                true
            }
        });
        while self.recent.len() >= RECENT_MAX
            || self
                .recent
                .front()
                .is_some_and(|f| f.event_time.0 < e.event_time.0 - RECENT_MS)
        {
            self.recent.pop_front();
        }
        self.recent.push_back(e);
        out
    }

    /// Revocations whose time ran out at `now` (wall clock), removed from the watch.
    pub fn expire(&mut self, now: WallTime) -> Vec<Pending> {
        let mut out = Vec::new();
        self.pending.retain(|p| {
            if now.0 >= p.deadline() {
                out.push(p.clone());
                false
            } else {
                true
            }
        });
        out
    }

    pub fn waiting(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(at: i64, within: u64) -> Pending {
        Pending {
            command_id: "abc.okta".into(),
            decision_id: "abc".into(),
            target: "okta".into(),
            action: Action::TerminateSession,
            principal: Some("alice@example.com".into()),
            principal_kind: PrincipalKind::Human,
            subjects: vec!["alice@example.com".into(), "00ualice".into()],
            vendor: "okta",
            delivered_at: WallTime(at),
            within_secs: within,
        }
    }

    fn ended(vendor: &str, who: &str, at: i64) -> Ended {
        Ended {
            event_id: format!("e-{at}"),
            event_time: Ts(at),
            vendor: vendor.into(),
            action: "user.session.clear".into(),
            subjects: vec![who.into()],
        }
    }

    #[test]
    fn the_vendors_log_entry_confirms_with_the_time_it_took() {
        let mut c = Confirmer::default();
        assert_eq!(c.expect(pending(1_000_000, 300)), None);
        // someone else's logout, and alice's logout in another vendor's log, confirm nothing
        assert!(c
            .observe(ended("okta", "bob@example.com", 1_002_000))
            .is_empty());
        assert!(c
            .observe(ended("google", "alice@example.com", 1_003_000))
            .is_empty());
        let got = c.observe(ended("okta", "00ualice", 1_004_500));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].status, ConfirmStatus::Confirmed);
        assert_eq!(got[0].seconds_to_confirm, Some(4.5));
        assert_eq!(got[0].event_id.as_deref(), Some("e-1004500"));
        assert_eq!(c.waiting(), 0);
        assert!(c.expire(WallTime(9_000_000)).is_empty());
    }

    #[test]
    fn an_entry_logged_before_the_answer_arrived_still_confirms() {
        let mut c = Confirmer::default();
        c.observe(ended("okta", "alice@example.com", 999_000));
        let got = c.expect(pending(1_000_000, 300)).unwrap();
        assert_eq!(got.seconds_to_confirm, Some(-1.0));
        // but an ending from long before the revocation is not its proof
        let mut c = Confirmer::default();
        c.observe(ended("okta", "alice@example.com", 1_000_000 - SKEW_MS - 1));
        assert_eq!(c.expect(pending(1_000_000, 300)), None);
    }

    #[test]
    fn no_entry_in_time_is_an_unconfirmed_alert() {
        let mut c = Confirmer::default();
        c.expect(pending(1_000_000, 300));
        assert!(c.expire(WallTime(1_299_999)).is_empty());
        let late = c.expire(WallTime(1_300_000));
        assert_eq!(late.len(), 1);
        let alert = unconfirmed_alert(&late[0], WallTime(0));
        assert_eq!(alert.action, Action::Alert);
        assert!(alert.decision_id.ends_with("-unconfirmed"));
        assert!(alert.findings[0].reason.contains("within 300 s"));
        // a late entry no longer confirms anything
        assert!(c
            .observe(ended("okta", "alice@example.com", 1_400_000))
            .is_empty());
    }
}
