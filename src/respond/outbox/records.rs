//! The records of the commands topic: `command` (a decision for one target, written before anything is sent),
//! `outcome` (what the target answered, or why nothing was sent) and `confirmation` (what the vendor's own log
//! showed), and the evidence-store rows of outcomes and confirmations.
//!
//! In: decisions, deliveries, confirmations. Out: the records as JSON (tagged by `kind`) and [`CommandRow`]s.
//! State: none.

use super::*;

/// A record of the commands topic.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    /// A revocation to carry out: one decision, one target.
    Command {
        command_id: String,
        target: String,
        /// Wall clock when the command was written; `give_up_after_secs` counts from here.
        created_at: WallTime,
        decision: Box<Decision>,
    },
    /// What became of a command.
    Outcome(Outcome),
    /// Whether the vendor's own log showed a delivered revocation taking effect.
    Confirmation(Confirmation),
}

/// The end of one command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub command_id: String,
    pub decision_id: String,
    pub target: String,
    pub status: OutcomeStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub finished_at: WallTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeStatus {
    /// The target accepted the request.
    Delivered,
    /// The target refused it in a way no retry can fix (also dead-lettered).
    Failed,
    /// Still failing when attempts or `give_up_after_secs` ran out (also dead-lettered).
    GivenUp,
    /// Not sent: the target's revocation budget was spent (alert only; the first one is announced by a notice
    /// decision).
    OverBudget,
}

impl Outcome {
    /// The outcome a delivery report amounts to.
    pub fn of(d: &Delivery) -> Self {
        let (status, http_status, error) = match &d.result {
            Ok(s) => (OutcomeStatus::Delivered, Some(*s), None),
            Err(e) if d.over_budget.is_some() => (OutcomeStatus::OverBudget, None, Some(e.clone())),
            Err(e) if d.retryable => (OutcomeStatus::GivenUp, None, Some(e.clone())),
            Err(e) => (OutcomeStatus::Failed, None, Some(e.clone())),
        };
        Outcome {
            command_id: d.command_id.clone(),
            decision_id: d.decision_id.clone(),
            target: d.target.clone(),
            status,
            http_status,
            attempts: d.attempts,
            error,
            finished_at: d.finished_at,
        }
    }
}

/// The serialized form of [`Record::Command`], borrowing the decision.
#[derive(Serialize)]
pub(super) struct CommandOut<'a> {
    pub(super) kind: &'static str,
    pub(super) command_id: &'a str,
    pub(super) target: &'a str,
    pub(super) created_at: WallTime,
    pub(super) decision: &'a Decision,
}

/// The row of a delivery's outcome (its status named as on the commands topic).
pub fn outcome_row(d: &Delivery) -> CommandRow {
    let o = Outcome::of(d);
    CommandRow {
        at: d.finished_at.as_ts(),
        kind: "outcome",
        command_id: d.command_id.clone(),
        decision_id: d.decision_id.clone(),
        target: d.target.clone(),
        action: Some(d.action.as_str().to_string()),
        principal: d.principal.clone(),
        status: name_of(&o.status),
        http_status: o.http_status.map(u32::from),
        attempts: Some(d.attempts),
        error: o.error,
        ..CommandRow::default()
    }
}

/// The row of a confirmation (or of its absence once the wait ran out).
pub fn confirmation_row(c: &Confirmation) -> CommandRow {
    CommandRow {
        at: c.confirmed_at.unwrap_or(c.delivered_at.as_ts()),
        kind: "confirmation",
        command_id: c.command_id.clone(),
        decision_id: c.decision_id.clone(),
        target: c.target.clone(),
        status: name_of(&c.status),
        delivered_at: Some(c.delivered_at.as_ts()),
        confirmed_at: c.confirmed_at,
        seconds_to_confirm: c.seconds_to_confirm,
        confirming_event_id: c.event_id.clone(),
        ..CommandRow::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_with_their_kind_tag() {
        let o = Record::Outcome(Outcome {
            command_id: "abc.okta".into(),
            decision_id: "abc".into(),
            target: "okta".into(),
            status: OutcomeStatus::GivenUp,
            http_status: None,
            attempts: 7,
            error: Some("HTTP 503".into()),
            finished_at: WallTime(1_700_000_000_000),
        });
        let s = serde_json::to_string(&o).unwrap();
        assert!(
            s.starts_with(r#"{"kind":"outcome","command_id":"abc.okta""#),
            "{s}"
        );
        assert!(s.contains(r#""status":"given_up""#), "{s}");
        match serde_json::from_str::<Record>(&s).unwrap() {
            Record::Outcome(back) => assert_eq!(back.attempts, 7),
            other => panic!("{other:?}"),
        }
    }
}
