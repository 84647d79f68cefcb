//! new_client: a principal granting a token to an OAuth client it never used before (consent phishing, a rogue
//! integration).
//!
//! In: `token_issued` events with an OAuth client id and a principal. Out: one finding per client new to the
//! principal that fewer than `peer_min` other principals of the organisation granted before it in event time
//! (counted by correlate into `session.client_peers`, only from sources that vouch for them, so forged grants
//! cannot make a client look popular; a colleague's earlier grant that has not arrived yet cannot be counted):
//! once the principal's clients are learned (more than `learn_events` grants and `learn_secs` since the first); before that, only for a client
//! no colleague has granted (a consent-phishing app, a rogue integration) once Quench has watched the organisation
//! for `learn_secs` (at start every client is one nobody was seen to use). A client `peer_min` colleagues already
//! use (an org-wide rollout) is never a finding. State: per principal, in a [`KeyedState`] bounded by an
//! event-time TTL (`ttl_secs`) and a key cap (`max_keys`; principals first seen unvouched live in its smaller
//! claimed pool): first-seen time, grant count and the clients seen (at most `max_clients`, the least recently
//! seen forgotten first); and the event time of the first event seen (when watching began).

use super::{BuildContext, ConfigError, Detector, Finding};
use crate::event::{Category, SessionEvent, Ts};
use crate::state::{bounded, KeyedState, RecentSet};
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
    pub peer_min: usize,
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
            peer_min: 3,
            max_clients: 32,
            ttl_secs: 2_592_000,
            max_keys: 1_000_000,
        }
    }
}

pub fn build(ctx: &BuildContext) -> Result<Box<dyn Detector>, ConfigError> {
    let (file, cfg): (String, NewClientConfig) = ctx.config(FILE, BUILTIN)?;
    super::check_scores(&file, &[("score", cfg.score)])?;
    if cfg.peer_min > crate::correlate::PEERS_KEPT {
        return Err(ConfigError::Invalid {
            file,
            key: "peer_min",
            value: cfg.peer_min.to_string(),
            why: format!(
                "at most {} (the grants correlate counts per client)",
                crate::correlate::PEERS_KEPT
            ),
        });
    }
    if cfg.max_clients == 0 {
        return Err(ConfigError::Invalid {
            file,
            key: "max_clients",
            value: "0".into(),
            why: "must be at least 1".into(),
        });
    }
    let bounds = ctx.bounds(cfg.ttl_secs, cfg.max_keys);
    Ok(Box::new(NewClient {
        watching_since: None,
        cfg,
        state: KeyedState::new(bounds),
    }))
}

#[derive(serde::Serialize, serde::Deserialize)]
struct KeyState {
    first_seen: Ts,
    grants: u32,
    clients: RecentSet,
}

pub struct NewClient {
    cfg: NewClientConfig,
    state: KeyedState<KeyState>,
    /// Event time of the first event this detector saw: the organisation's clients are known only after
    /// `learn_secs` of watching.
    watching_since: Option<crate::event::Ts>,
}

impl Detector for NewClient {
    fn expire(&mut self, watermark: Ts) {
        self.state.expire(watermark);
    }

    fn save(&self) -> Result<Option<super::Saved>, serde_json::Error> {
        // the middle place held the peers counted here before correlate counted them: kept, so that either reads
        // the other's state
        super::save(&(&self.state, (), &self.watching_since))
    }

    fn load(&mut self, saved: &serde_json::value::RawValue) -> Result<(), String> {
        let (state, _, since): (
            crate::state::SavedKeys<KeyState>,
            serde::de::IgnoredAny,
            Option<Ts>,
        ) = super::load(saved)?;
        self.state.restore(state)?;
        self.watching_since = since;
        Ok(())
    }

    fn observe(&mut self, ev: &SessionEvent<'_>, out: &mut Vec<Finding>) {
        let since = *self.watching_since.get_or_insert(ev.event_time);
        if ev.category != Category::TokenIssued {
            return;
        }
        let org_known = ev.event_time.secs_since(since) >= self.cfg.learn_secs as f64;
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
        let new_to_principal = s.clients.see(client);
        let learned = s.grants > cfg.learn_events
            && ev.event_time.secs_since(s.first_seen) >= cfg.learn_secs as f64;
        // how many colleagues granted it before, as correlate counted them
        let peers = ev.session.client_peers.map_or(0, usize::from);
        if !new_to_principal || peers >= cfg.peer_min || (!learned && (peers > 0 || !org_known)) {
            return;
        }
        {
            let app = ev
                .resource
                .object_id
                .as_deref()
                .or(ev.resource.app.as_deref())
                .unwrap_or(client);
            let (who, app, client) = (bounded(who), bounded(app), bounded(client));
            let reason = format!("{who} granted a token to OAuth client {app} ({client}) for the first time; {known} known clients; {peers} colleagues use it");
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
    use crate::correlate::Correlator;
    use crate::detect::testutil::at;
    use crate::event::*;

    fn grant_by(secs: i64, who: &str, client: &'static str) -> SessionEvent<'static> {
        let mut e = at(
            secs,
            &format!("g{secs}{who}"),
            Family::Saas,
            Category::TokenIssued,
        );
        e.principal.email = Some(Text::from(who.to_string()));
        e.principal.kind = PrincipalKind::Human;
        e.session.client_id = Some(client.into());
        e.vouch_all();
        e.principal.vouched_by = Some(Vouch {
            vendor: "google".into(),
            family: Family::Saas,
        });
        e
    }

    fn grant(secs: i64, client: &'static str) -> SessionEvent<'static> {
        grant_by(secs, "ann@example.com", client)
    }

    /// Correlate `ev` (which counts the organisation's grants into `client_peers`) and show it to `d`.
    fn see(
        c: &mut Correlator,
        d: &mut dyn Detector,
        mut ev: SessionEvent<'static>,
        out: &mut Vec<Finding>,
    ) {
        c.correlate(&mut ev);
        d.observe(&ev, out);
    }

    fn of_ann(out: &[Finding]) -> Vec<&Finding> {
        out.iter()
            .filter(|f| f.subject.principal.as_deref() == Some("ann@example.com"))
            .collect()
    }

    /// Three colleagues use the mail and calendar apps; Ann, once learned, grants a converter nobody uses.
    #[test]
    fn a_grant_to_a_never_seen_client_after_learning_is_flagged_once() {
        let mut d = build(&BuildContext::default()).unwrap();
        let mut cor = Correlator::new(&Default::default());
        let mut out = Vec::new();
        for c in ["bo@example.com", "cy@example.com", "di@example.com"] {
            see(&mut cor, &mut *d, grant_by(0, c, "mail-app"), &mut out);
            see(&mut cor, &mut *d, grant_by(1, c, "calendar-app"), &mut out);
        }
        for i in 0..10 {
            let app = if i % 2 == 0 {
                "mail-app"
            } else {
                "calendar-app"
            };
            see(&mut cor, &mut *d, grant(i * 20_000, app), &mut out);
        }
        assert!(of_ann(&out).is_empty(), "{out:?}");
        see(
            &mut cor,
            &mut *d,
            grant(300_000, "free-pdf-converter"),
            &mut out,
        );
        see(
            &mut cor,
            &mut *d,
            grant(300_100, "free-pdf-converter"),
            &mut out,
        );
        let ann = of_ann(&out);
        assert_eq!(ann.len(), 1);
        assert!(ann[0].reason.contains("free-pdf-converter") && ann[0].score < 0.5);
    }

    /// Consent phishing: a principal with no history grants an app no colleague has ever granted.
    #[test]
    fn a_client_nobody_in_the_organisation_uses_is_flagged_even_before_learning() {
        let mut d = build(&BuildContext::default()).unwrap();
        let mut cor = Correlator::new(&Default::default());
        let mut out = Vec::new();
        // at start, nothing is known about the organisation's clients: quiet
        see(
            &mut cor,
            &mut *d,
            grant_by(0, "bo@example.com", "mail-app"),
            &mut out,
        );
        assert!(out.is_empty(), "{out:?}");
        see(
            &mut cor,
            &mut *d,
            grant(90_000, "drive-backup-pro"),
            &mut out,
        );
        assert_eq!(of_ann(&out).len(), 1);
    }

    /// An org-wide rollout: the first adopters may be flagged, everybody after them is not.
    #[test]
    fn an_app_rolled_out_to_everyone_is_not_new_for_the_rest_of_the_organisation() {
        let mut d = build(&BuildContext::default()).unwrap();
        let mut cor = Correlator::new(&Default::default());
        let mut out = Vec::new();
        for i in 0..50 {
            see(
                &mut cor,
                &mut *d,
                grant_by(i * 60, &format!("u{i}@example.com"), "zoom"),
                &mut out,
            );
        }
        assert!(out.len() <= 1, "{} findings", out.len());
    }

    /// Forged grants (principals nobody vouches for) cannot make an attacker's app look popular.
    #[test]
    fn claimed_grants_do_not_count_as_colleagues() {
        let mut d = build(&BuildContext::default()).unwrap();
        let mut cor = Correlator::new(&Default::default());
        let mut out = Vec::new();
        see(
            &mut cor,
            &mut *d,
            grant_by(0, "bo@example.com", "mail-app"),
            &mut out,
        );
        for i in 0..10 {
            let mut forged = grant_by(i, &format!("fake{i}@example.com"), "evil-app");
            forged.principal.vouched_by = None;
            forged.unvouch_all();
            see(&mut cor, &mut *d, forged, &mut out);
        }
        out.clear();
        see(&mut cor, &mut *d, grant(90_000, "evil-app"), &mut out);
        assert_eq!(of_ann(&out).len(), 1);
    }

    #[test]
    fn other_categories_naming_a_client_are_quiet() {
        let mut d = build(&BuildContext::default()).unwrap();
        let mut cor = Correlator::new(&Default::default());
        let mut out = Vec::new();
        see(
            &mut cor,
            &mut *d,
            grant_by(0, "bo@example.com", "mail-app"),
            &mut out,
        );
        let mut sso = grant(200_000, "c");
        sso.category = Category::Sso;
        see(&mut cor, &mut *d, sso, &mut out);
        assert!(out.is_empty(), "{out:?}");
        // while a grant to the same client is flagged: the category filter kept the SSO quiet
        see(&mut cor, &mut *d, grant(200_100, "c"), &mut out);
        assert_eq!(of_ann(&out).len(), 1);
    }
}
