//! The decision record: what decide hands to respond, the decisions topic and the evidence store (the stable
//! contract in `schemas/decision.schema.json`), with its action, kind, trust and cited findings.
//!
//! In: nothing; types only. Out: [`Decision`] and its parts, serialized as the schema says. State: none.

use super::*;

/// What to do about a risky subject, weakest first. The default is the weakest, `alert`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    #[default]
    Alert,
    StepUp,
    RevokeToken,
    TerminateSession,
}

impl Action {
    pub const ALL: [Action; 4] = [
        Action::Alert,
        Action::StepUp,
        Action::RevokeToken,
        Action::TerminateSession,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Alert => "alert",
            Action::StepUp => "step_up",
            Action::RevokeToken => "revoke_token",
            Action::TerminateSession => "terminate_session",
        }
    }
}

/// One finding as recorded in a decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FindingRecord {
    pub detector: String,
    pub score: f64,
    pub reason: String,
    /// Family of the source whose event produced the finding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Family>,
    /// The finding's source vouched for the identity it is about (see [`Trust`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub authoritative: bool,
}

/// Which source vouches for each id a decision names. Targets act only on ids vouched for by their own vendor's
/// log (or, for an e-mail, by an IdP), and a decision with no authoritative evidence never revokes anything.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trust {
    /// The vendor whose log vouches for `principal_id`: only that vendor's API is addressed with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_vendor: Option<String>,
    /// The IdP that vouches for the e-mail in `principal`; without one, no target addresses the e-mail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified_by: Option<String>,
    /// The vendor whose log vouches for `token_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_vendor: Option<String>,
    /// The vendor whose log vouches for `session_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_vendor: Option<String>,
    /// Event ids of the evidence whose source vouched for the identity acted on. Empty: the decision rests on
    /// claims alone and is at most an alert.
    #[serde(default)]
    pub evidence: Vec<String>,
}

impl Trust {
    /// Everything vouched for by one vendor (tests and hand-made decisions).
    pub fn vouched_by(vendor: &str, family: Family, evidence: &str) -> Trust {
        let v = Some(vendor.to_string());
        Trust {
            principal_vendor: v.clone(),
            email_verified_by: v.clone().filter(|_| family == Family::Idp),
            token_vendor: v.clone(),
            session_vendor: v,
            evidence: vec![evidence.to_string()],
        }
    }
}

/// What a decision is about: a principal's behaviour, or Quench itself (see [`notice`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionKind {
    /// The score of a principal's findings crossed a band: the decisions that act.
    #[default]
    Detection,
    /// The global revocation budget ran out; Quench is alert-only until its window frees up.
    BudgetExhausted,
    /// A target's own budget refused a command of another decision.
    TargetBudget,
    /// A delivered revocation was not confirmed by the vendor's own log in time.
    Unconfirmed,
}

impl DecisionKind {
    /// The kind of a record written before decisions carried one, from its id: notices' ids end in `-budget`
    /// (`{24 characters}-budget` for the global budget, `{24}-{target}-budget` for a target's) or `-unconfirmed`.
    pub fn of_legacy_id(id: &str) -> DecisionKind {
        match id.strip_suffix("-budget") {
            Some(stem) if stem.len() <= 24 => DecisionKind::BudgetExhausted,
            Some(_) => DecisionKind::TargetBudget,
            None if id.ends_with("-unconfirmed") => DecisionKind::Unconfirmed,
            None => DecisionKind::Detection,
        }
    }
}

/// A decision record. Its `Default` (an empty `alert` about nobody, at time 0) is for building one with struct
/// update syntax, as tests and notices do: `Decision { action, principal, ..Default::default() }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Decision {
    /// Deterministic: the same events produce the same id, so redelivered duplicates are recognisable.
    pub decision_id: String,
    /// What the decision is about. Records written before the field existed read as `detection`.
    #[serde(default)]
    pub kind: DecisionKind,
    /// Processing time of the decision: the ingest (wall-clock) time in `run`, the stream's own timeline in
    /// `replay` and `eval`.
    pub decided_at: Ts,
    /// Event time of the finding that tipped the score.
    pub event_time: Ts,
    pub action: Action,
    /// Principal key: e-mail when known, else id.
    pub principal: Option<String>,
    pub principal_id: Option<String>,
    pub principal_kind: PrincipalKind,
    pub token_id: Option<String>,
    pub session_id: Option<String>,
    pub job_id: Option<String>,
    pub score: f64,
    pub findings: Vec<FindingRecord>,
    /// Event ids, in the order the findings cite them.
    pub evidence: Vec<String>,
    /// Set when a guardrail changed the action; says which and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guardrail: Option<String>,
    /// A decision of detectors in shadow mode: recorded, never acted on.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shadow: bool,
    /// Who vouches for the ids above, and the authoritative evidence.
    #[serde(default)]
    pub trust: Trust,
}
