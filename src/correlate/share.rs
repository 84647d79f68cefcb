//! The links correlate shares: each link learned or re-pointed as a record the keyed topology's route stage
//! writes to a compacted topic, so its other instances (and a restarted one) route by the same links.
//!
//! In: a link change. Out: its record key and bytes, and back. State: none.

use super::*;

/// Which link map a [`LinkChange`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkMap {
    TokenJob,
    TokenPrincipal,
    JobPrincipal,
    SessionPrincipal,
    /// A principal (its digest) granted an OAuth client (the key).
    ClientGrant,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum LinkValue {
    Job(JobLink),
    Who(Who),
    Grant([u8; 16]),
}

/// A link learned or re-pointed: what the keyed topology's route stage shares with its other instances (through
/// a compacted topic, keyed by [`LinkChange::topic_key`]) so that each of them routes a token's or a job's events
/// to its principal, and a restarted one starts with the links.
#[derive(Clone, Serialize, Deserialize)]
pub struct LinkChange {
    pub(super) map: LinkMap,
    pub(super) key: String,
    /// The event time the link was learned at.
    pub(super) at: Ts,
    pub(super) link: LinkValue,
}

impl LinkChange {
    /// The record key: one per map, source strength and key, so a compacted topic keeps the latest link of each
    /// strength, and a weaker source's link written later cannot compact away a stronger one.
    pub fn topic_key(&self) -> String {
        let strength = match &self.link {
            LinkValue::Job(l) => l.strength,
            LinkValue::Who(w) => w.vouch.strength(),
            // one record per principal and client, so compaction keeps every grant
            LinkValue::Grant(d) => return format!("client_grant/{}/{}", hex::encode(d), self.key),
        };
        let map = match self.map {
            LinkMap::TokenJob => "token_job",
            LinkMap::TokenPrincipal => "token_principal",
            LinkMap::JobPrincipal => "job_principal",
            LinkMap::SessionPrincipal => "session_principal",
            LinkMap::ClientGrant => "client_grant",
        };
        format!("{map}/{strength}/{}", self.key)
    }

    pub fn encode(&self) -> Vec<u8> {
        // strings, numbers and enums: always serializable
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<LinkChange, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}
