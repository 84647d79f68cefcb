//! The labels of simulated and scenario traffic (`labels.json`): which attacks it holds, when each began, and
//! which principals must never be revoked. The simulator writes them; `quench eval` scores decisions against them.
//!
//! In: nothing (types). Out: [`Labels`] as JSON. State: none.

use crate::decide::Action;
use crate::event::Ts;
use serde::{Deserialize, Serialize};

/// `labels.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Labels {
    pub attacks: Vec<Attack>,
    /// Principals (e-mail or id, as decisions name them) that must never be revoked.
    pub benign_principals: Vec<String>,
    /// Days of traffic, for the false-alert rate.
    pub days: f64,
}

/// One labelled attack.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attack {
    pub id: String,
    pub kind: String,
    /// Which variant of the kind (the simulator's name for it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default)]
    pub principal: Option<String>,
    #[serde(default)]
    pub token_id: Option<String>,
    #[serde(default)]
    pub job_id: Option<String>,
    pub first_malicious_at: Ts,
    /// When the first malicious event *arrived* (its source's delivery lag after it happened). Time to decision
    /// is counted from here when it is given, else from `first_malicious_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_malicious_arrival: Option<Ts>,
    /// Actions that count as catching it.
    pub actions: Vec<Action>,
}
