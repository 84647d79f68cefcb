//! new_client: a principal granting a token to an OAuth client it never used before (consent phishing, a rogue
//! integration).
//!
//! In: `token_issued` events with an OAuth client id and a principal. Out: after the principal's clients are
//! learned (`learn_events` grants over `learn_secs`), one finding per new client. State per principal (principals
//! first seen unvouched live in the claimed pool of [`KeyedState`]): first-seen time, grant count and the clients
//! seen (at most `max_clients`, the least recently seen forgotten first).

use super::{BuildContext, ConfigError, Detector, Finding};
use crate::event::{Category, SessionEvent, Ts};
use crate::state::{bounded, Bounds, KeyedState, RecentSet};
use serde::Deserialize;

pub const NAME: &str = "new_client";
const FILE: &str = "new_client.toml";
const BUILTIN: &str = include_str!("../../detectors/new_client.toml");

/// `detectors/new_client.toml`; defaults in that file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NewClientConfig {
    pub learn_events: u32,
    pub learn_secs: u64,
    pub score: f64,
    pub max_clients: usize,
    pub ttl_secs: u64,
    pub max_keys: usize,
}

impl Default for NewClientConfig {
    fn default() -> Self {
        NewClientConfig {
            learn_events: 5,
            learn_secs: 86_400,
            score: 0.4,
            max_clients: 32,
            ttl_secs: 2_592_000,
            max_keys: 1_000_000,
        }
    }
}

pub fn build(ctx: &BuildContext) -> Result<Box<dyn Detector>, ConfigError> {
    let (file, cfg): (String, NewClientConfig) = ctx.config(FILE, BUILTIN)?;
    super::check_scores(&file, &[("score", cfg.score)])?;
    if cfg.max_clients == 0 {
        return Err(ConfigError::Invalid {
            file,
            key: "max_clients",
            value: "0".into(),
            why: "must be at least 1".into(),
        });
    }
    let bounds = Bounds::from_secs(cfg.ttl_secs, cfg.max_keys);
    Ok(Box::new(NewClient {
        cfg,
        state: KeyedState::new(bounds),
    }))
}

struct KeyState {
    first_seen: Ts,
    grants: u32,
    clients: RecentSet,
}

pub struct NewClient {
    cfg: NewClientConfig,
    state: KeyedState<KeyState>,
}

impl Detector for NewClient {
    fn observe(&mut self, ev: &SessionEvent<'_>, out: &mut Vec<Finding>) {
        if ev.category != Category::TokenIssued {
            return;
        }
        let (Some(client), Some(who)) = (ev.session.client_id.as_deref(), ev.principal.key())
        else {
            return;
        };
        let cfg = &self.cfg;
        let vouched = ev.principal.vouched_by.is_some();
        let s = self
            .state
            .entry_in(who, ev.event_time, vouched, || KeyState {
                first_seen: ev.event_time,
                grants: 0,
                clients: RecentSet::new(cfg.max_clients),
            });
        s.grants += 1;
        let known = s.clients.len();
        if !s.clients.see(client) {
            return;
        }
        let learned = s.grants > cfg.learn_events
            && ev.event_time.secs_since(s.first_seen) >= cfg.learn_secs as f64;
        if learned {
            let app = ev
                .resource
                .object_id
                .as_deref()
                .or(ev.resource.app.as_deref())
                .unwrap_or(client);
            let (who, app, client) = (bounded(who), bounded(app), bounded(client));
            let reason = format!("{who} granted a token to OAuth client {app} ({client}) for the first time; {known} known clients");
            out.push(Finding::new(
                NAME,
                cfg.score,
                reason,
                vec![ev.event_id.to_string()],
                ev,
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::testutil::at;
    use crate::event::*;

    fn grant(secs: i64, client: &'static str) -> SessionEvent<'static> {
        let mut e = at(
            secs,
            &format!("g{secs}"),
            Family::Saas,
            Category::TokenIssued,
        );
        e.principal.email = Some("ann@example.com".into());
        e.session.client_id = Some(client.into());
        e
    }

    #[test]
    fn a_grant_to_a_never_seen_client_after_learning_is_flagged_once() {
        let mut d = build(&BuildContext::default()).unwrap();
        let mut out = Vec::new();
        for i in 0..10 {
            d.observe(
                &grant(
                    i * 20_000,
                    if i % 2 == 0 {
                        "mail-app"
                    } else {
                        "calendar-app"
                    },
                ),
                &mut out,
            );
        }
        assert!(out.is_empty());
        d.observe(&grant(300_000, "free-pdf-converter"), &mut out);
        d.observe(&grant(300_100, "free-pdf-converter"), &mut out);
        assert_eq!(out.len(), 1);
        assert!(out[0].reason.contains("free-pdf-converter") && out[0].score < 0.5);
    }

    #[test]
    fn clients_seen_while_learning_and_other_categories_are_quiet() {
        let mut d = build(&BuildContext::default()).unwrap();
        let mut out = Vec::new();
        d.observe(&grant(0, "a"), &mut out);
        d.observe(&grant(10, "b"), &mut out);
        assert!(out.is_empty(), "still learning");
        // past learning (5 grants over a day), an SSO naming a new client is not a grant: quiet
        for i in 0..6 {
            d.observe(&grant(i * 20_000, "a"), &mut out);
        }
        let mut sso = grant(200_000, "c");
        sso.category = Category::Sso;
        d.observe(&sso, &mut out);
        assert!(out.is_empty(), "{out:?}");
        // while a grant to the same client is flagged: the filter, not learning, kept the SSO quiet
        d.observe(&grant(200_100, "c"), &mut out);
        assert_eq!(out.len(), 1);
    }
}
