//! Correlate: attribute each event to its token, session, agent job and principal.
//!
//! In: a normalized [`SessionEvent`]. Out: the same event with missing keys filled from what earlier events linked
//! (a tool-call span names job J and token T; a gateway call carrying only T is then attributed to J and J's
//! principal), and what it filled from its state as an [`Attribution`] (from a copy of which, [`Filled`], the same
//! normalized event is correlated again without the state: the evidence store's writer does). State: links token → job, token → principal,
//! job → principal and session → principal, each in a [`KeyedState`] bounded by TTL and key count (event time),
//! plus a count of conflicting links. Attributed values are shared `Arc<str>`s, so filling an event allocates
//! nothing. Also the organisation's OAuth grants: per client, digests of the principals that granted it (vouched
//! for by their source), each with the event time of their earliest grant (the [`PEERS_KEPT`] earliest kept),
//! from which each grant's `session.client_peers` is filled (for `new_client`) with the colleagues who granted it
//! earlier in event time: counted here, where the keyed topology's first stage sees every principal, rather than
//! in a detector that would see one partition's.
//!
//! Trust: links are learned only from keys and principals the event's source vouches for, and a link is replaced
//! only by one from a stronger source (IdP over SaaS over gateway and agent); a different claim at the same or a
//! weaker strength keeps the first link and is counted as a conflict. (At equal strength an agent's link replaces a
//! service's without a conflict: an agent calling through a gateway is both the gateway's consumer and the agent.) Attribution goes only through vouched keys,
//! and an attributed principal carries the vouch of the link it came from. A client-supplied token or job id
//! (an anonymous request's `x-token-id`) therefore neither re-points a link nor borrows anyone's identity.

use crate::event::{Category, Family, Keys, PrincipalKind, SessionEvent, Text, Ts, Vouch};
use crate::state::SavedKeys;
use crate::state::{Bounds, KeyedState};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

mod grants;
mod namespace;
mod share;

use grants::Peer;
use namespace::namespace_identities;
pub use namespace::CLAIMED;
use share::LinkValue;
pub use share::{LinkChange, LinkMap};

/// Principals remembered per OAuth client: `session.client_peers` counts up to this many.
pub const PEERS_KEPT: usize = 16;

/// `[correlate]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorrelateConfig {
    /// How long a link lives after its last event, in seconds of event time. Default 86400 (one day).
    pub ttl_secs: u64,
    /// Most keys tracked per link map. Default 1000000.
    pub max_keys: usize,
    /// How long the organisation's grants of an OAuth client are remembered after the client's last grant, in
    /// seconds of event time (`new_client` counts them). Default 2592000 (30 days).
    pub grant_ttl_secs: u64,
}

impl Default for CorrelateConfig {
    fn default() -> Self {
        CorrelateConfig {
            ttl_secs: 86_400,
            max_keys: 1_000_000,
            grant_ttl_secs: 2_592_000,
        }
    }
}

/// What [`Correlator::correlate`] took from its links for one event: the job and the principal it attributed,
/// whether it dropped a client's claim to be someone else, and the grant's peers. The rest of what correlate
/// changes (the identity namespaces) follows from the event alone. So the correlated event is a function of the
/// normalized event and this, and [`Filled::apply`] makes it again from a copy of it
/// ([`Attribution::filled`]): the evidence store's writer does, on its own thread, to the event it normalizes
/// again from the message, instead of the pipeline's thread copying every value of every event.
#[derive(Clone, Default)]
pub struct Attribution {
    job: Option<Arc<str>>,
    who: Option<Who>,
    drop_claim: bool,
    client_peers: Option<u8>,
}

impl Attribution {
    /// What it filled in, borrowed from it (to be copied: the links' shared strings stay on the pipeline's thread).
    pub fn filled(&self) -> Filled<'_> {
        Filled {
            job: self.job.as_deref(),
            who: self.who.as_ref().map(|w| FilledWho {
                id: &w.id,
                kind: w.kind,
                vendor: w.vouch.vendor.as_str(),
                family: w.vouch.family,
            }),
            drop_claim: self.drop_claim,
            client_peers: self.client_peers,
        }
    }

    /// Fill the job and the principal into the event being correlated, sharing the links' strings.
    fn attribute(&self, ev: &mut SessionEvent<'_>) {
        attribute(
            ev,
            self.job.as_ref().map(|j| Text::Shared(j.clone())),
            self.who
                .as_ref()
                .map(|w| (Text::Shared(w.id.clone()), w.kind, w.vouch.clone())),
            self.drop_claim,
        );
    }
}

/// What correlation filled into one event ([`Attribution`]), as borrowed strings: from the attribution itself, or
/// from a copy of it the evidence store keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Filled<'t> {
    pub job: Option<&'t str>,
    pub who: Option<FilledWho<'t>>,
    pub drop_claim: bool,
    pub client_peers: Option<u8>,
}

/// The principal attributed, and the source that vouches for it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FilledWho<'t> {
    pub id: &'t str,
    pub kind: PrincipalKind,
    pub vendor: &'t str,
    pub family: Family,
}

impl<'t> Filled<'t> {
    /// Correlate the normalized event `ev` as [`Correlator::correlate`] did when it returned the attribution this
    /// was filled from.
    pub fn apply<'a>(&self, ev: &mut SessionEvent<'a>)
    where
        't: 'a,
    {
        attribute(
            ev,
            self.job.map(Text::Borrowed),
            self.who.map(|w| {
                (
                    Text::Borrowed(w.id),
                    w.kind,
                    Vouch {
                        vendor: Text::Borrowed(w.vendor),
                        family: w.family,
                    },
                )
            }),
            self.drop_claim,
        );
        namespace_identities(ev);
        ev.session.client_peers = self.client_peers;
    }
}

/// Fill the job and the principal (the one place both [`Correlator::correlate`] and [`Filled::apply`] do).
fn attribute<'a>(
    ev: &mut SessionEvent<'a>,
    job: Option<Text<'a>>,
    who: Option<(Text<'a>, PrincipalKind, Vouch<'a>)>,
    drop_claim: bool,
) {
    if let Some(j) = job {
        ev.session.job_id = Some(j);
        ev.session.vouched = ev.session.vouched.with(Keys::JOB);
    }
    if let Some((id, kind, vouch)) = who {
        if drop_claim {
            ev.principal.email = None;
            ev.principal.display_name = None;
        }
        ev.principal.id = Some(id);
        ev.principal.kind = kind;
        ev.principal.vouched_by = Some(vouch);
    }
}

#[derive(Clone, Serialize, Deserialize)]
struct Who {
    id: Arc<str>,
    /// The e-mail the same source gave with the id: one person known by an IdP's object id and by a SaaS log's
    /// e-mail-shaped id is not a conflict.
    email: Option<Arc<str>>,
    kind: PrincipalKind,
    #[serde(with = "saved_vouch")]
    vouch: Vouch<'static>,
}

/// A link's vouch as saved: the vendor and its family.
mod saved_vouch {
    use crate::event::{Family, Text, Vouch};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct Saved {
        vendor: String,
        family: Family,
    }

    pub fn serialize<S: Serializer>(v: &Vouch<'static>, s: S) -> Result<S::Ok, S::Error> {
        Saved {
            vendor: v.vendor.to_string(),
            family: v.family,
        }
        .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vouch<'static>, D::Error> {
        let v = Saved::deserialize(d)?;
        Ok(Vouch {
            vendor: Text::from(v.vendor),
            family: v.family,
        })
    }
}

#[derive(Clone, Serialize, Deserialize)]
struct JobLink {
    job: Arc<str>,
    strength: u8,
    /// The format that made the link: it may move its own token on to the next job (a new run of the same agent).
    format: Arc<str>,
}

/// Keyed links between tokens, jobs, sessions and principals.
pub struct Correlator {
    token_job: KeyedState<JobLink>,
    token_principal: KeyedState<Who>,
    job_principal: KeyedState<Who>,
    session_principal: KeyedState<Who>,
    /// Per OAuth client: the principals (vouched for) that granted it, the [`PEERS_KEPT`] earliest grants.
    grants: KeyedState<Vec<Peer>>,
    conflicts: u64,
    /// Links learned or re-pointed since the last [`Correlator::take_changes`], when recording.
    changes: Option<Vec<LinkChange>>,
}

impl Correlator {
    pub fn new(cfg: &CorrelateConfig) -> Self {
        let b = Bounds::from_secs(cfg.ttl_secs, cfg.max_keys);
        Correlator {
            token_job: KeyedState::new(b),
            token_principal: KeyedState::new(b),
            job_principal: KeyedState::new(b),
            session_principal: KeyedState::new(b),
            grants: KeyedState::new(Bounds::from_secs(cfg.grant_ttl_secs, cfg.max_keys)),
            conflicts: 0,
            changes: None,
        }
    }

    /// Record the links learned or re-pointed from now on, for [`Correlator::take_changes`].
    pub fn record_changes(&mut self) {
        self.changes.get_or_insert_with(Vec::new);
    }

    /// The links learned or re-pointed since the last call.
    pub fn take_changes(&mut self) -> Vec<LinkChange> {
        self.changes
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Take a link another instance learned: held if the key has none, and replacing the one held only if it
    /// comes from a strictly stronger source (so instances that disagree at equal strength each keep their first
    /// link, as one instance keeps its first and counts a conflict, and no order of arrival lets a weaker source
    /// re-point an IdP's link).
    pub fn apply(&mut self, c: &LinkChange) {
        match &c.link {
            LinkValue::Job(v) => {
                if c.map != LinkMap::TokenJob {
                    return;
                }
                let l = self.token_job.entry(&c.key, c.at, || v.clone());
                if v.strength > l.strength {
                    *l = v.clone();
                } else if l.job != v.job && v.strength == l.strength {
                    self.conflicts += 1;
                }
            }
            LinkValue::Who(w) => {
                let map = match c.map {
                    LinkMap::TokenPrincipal => &mut self.token_principal,
                    LinkMap::JobPrincipal => &mut self.job_principal,
                    LinkMap::SessionPrincipal => &mut self.session_principal,
                    LinkMap::TokenJob | LinkMap::ClientGrant => return,
                };
                let cur = map.entry(&c.key, c.at, || w.clone());
                if w.vouch.strength() > cur.vouch.strength() {
                    *cur = w.clone();
                } else if cur.id != w.id && w.vouch.strength() == cur.vouch.strength() {
                    self.conflicts += 1;
                }
            }
            LinkValue::Grant(d) => {
                if c.map == LinkMap::ClientGrant {
                    Peer::learn(self.grants.entry(&c.key, c.at, Vec::new), *d, c.at);
                }
            }
        }
    }

    /// The key that brings `ev` (correlated) together with its principal's other events: the keyed topology's
    /// routing key. The principal's key as detectors use it, except that a principal named by an id a link also
    /// knows by an e-mail is keyed by that e-mail (an IdP's object id and the person's address are one person);
    /// an event with no principal by its job, token or session; else its event id.
    pub fn subject(&self, ev: &SessionEvent<'_>) -> String {
        let s = &ev.session;
        let vouched = |k| s.vouched.has(k);
        if let Some(id) = ev.principal.id.as_deref() {
            let session = s
                .session_id
                .as_deref()
                .filter(|_| vouched(Keys::SESSION))
                .map(|v| {
                    v.strip_prefix("agent:")
                        .or_else(|| v.strip_prefix("gateway:"))
                        .unwrap_or(v)
                });
            let links = [
                (
                    &self.job_principal,
                    s.job_id.as_deref().filter(|_| vouched(Keys::JOB)),
                ),
                (
                    &self.token_principal,
                    s.token_id.as_deref().filter(|_| vouched(Keys::TOKEN)),
                ),
                (&self.session_principal, session),
            ];
            for (map, key) in links {
                if let Some(w) = key.and_then(|k| map.peek(k)) {
                    if &*w.id == id {
                        if let Some(e) = &w.email {
                            return e.to_string();
                        }
                    }
                }
            }
        }
        ev.principal
            .key()
            .or(s.job_id.as_deref())
            .or(s.token_id.as_deref())
            .or(s.session_id.as_deref())
            .unwrap_or(ev.event_id.as_str())
            .to_string()
    }

    /// Links a weaker or equal source tried to re-point, so far.
    pub fn conflicts(&self) -> u64 {
        self.conflicts
    }

    /// The links, for a restart to resume from (see [`crate::durable`]).
    pub fn save(&self) -> Result<crate::state::Saved, serde_json::Error> {
        serde_json::value::to_raw_value(&(
            &self.token_job,
            &self.token_principal,
            &self.job_principal,
            &self.session_principal,
            self.conflicts,
            &self.grants,
        ))
    }

    /// Take back what [`Correlator::save`] wrote.
    pub fn load(&mut self, saved: &serde_json::value::RawValue) -> Result<(), String> {
        type Links = (
            SavedKeys<JobLink>,
            SavedKeys<Who>,
            SavedKeys<Who>,
            SavedKeys<Who>,
            u64,
            SavedKeys<Vec<Peer>>,
        );
        type Before = (
            SavedKeys<JobLink>,
            SavedKeys<Who>,
            SavedKeys<Who>,
            SavedKeys<Who>,
            u64,
        );
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Saved {
            Links(Links),
            // saved before grants were counted here: they start empty
            Before(Before),
        }
        let (tj, tp, jp, sp, conflicts, grants): Links = match crate::state::load(saved)? {
            Saved::Links(l) => l,
            Saved::Before((tj, tp, jp, sp, c)) => (tj, tp, jp, sp, c, Default::default()),
        };
        self.grants.restore(grants)?;
        self.token_job.restore(tj)?;
        self.token_principal.restore(tp)?;
        self.job_principal.restore(jp)?;
        self.session_principal.restore(sp)?;
        self.conflicts = conflicts;
        Ok(())
    }

    /// Learn links from `ev` and fill its missing job and principal from earlier links. Returns what it filled
    /// from its state, with which [`Filled::apply`] correlates the same normalized event again without it.
    pub fn correlate(&mut self, ev: &mut SessionEvent<'_>) -> Attribution {
        let now = ev.event_time;
        let vouched = |k| ev.session.vouched.has(k);
        let token = ev
            .session
            .token_id
            .as_deref()
            .filter(|_| vouched(Keys::TOKEN));
        let job = ev.session.job_id.as_deref().filter(|_| vouched(Keys::JOB));
        let session = ev
            .session
            .session_id
            .as_deref()
            .filter(|_| vouched(Keys::SESSION));
        let strength = ev.principal.vouched_by.as_ref().map_or(
            match ev.source.family {
                crate::event::Family::Idp => 3,
                crate::event::Family::Saas => 2,
                _ => 1,
            },
            |v| v.strength(),
        );

        // learn
        if let (Some(t), Some(j)) = (token, job) {
            let format = ev.source.format.as_str();
            let mk = || JobLink {
                job: Arc::from(j),
                strength,
                format: Arc::from(format),
            };
            let fresh = self.changes.is_some() && self.token_job.peek(t).is_none();
            let l = self.token_job.entry(t, now, mk);
            let mut changed = fresh;
            if &*l.job != j {
                // a stronger source re-points the link; so does the source that made it (a long-lived token moving
                // on to the agent's next run), never another source of equal or lesser strength
                if strength > l.strength || (strength == l.strength && &*l.format == format) {
                    *l = mk();
                    changed = true;
                } else {
                    self.conflicts += 1;
                    tracing::debug!(link = "token→job", token = %crate::text::escape_control(t), kept = %crate::text::escape_control(&l.job), claimed = %crate::text::escape_control(j), "conflicting link kept");
                }
            }
            if changed {
                let link = LinkValue::Job(l.clone());
                if let Some(c) = &mut self.changes {
                    c.push(LinkChange {
                        map: LinkMap::TokenJob,
                        key: t.to_string(),
                        at: now,
                        link,
                    });
                }
            }
        }
        let who = match (&ev.principal.id, &ev.principal.vouched_by) {
            (Some(id), Some(v)) => Some((id.as_str(), ev.principal.kind, v)),
            _ => None,
        };
        if let Some((id, kind, v)) = who {
            let recording = self.changes.is_some();
            let mut learned = Vec::new();
            for (name, which, map, key) in [
                (
                    "token→principal",
                    LinkMap::TokenPrincipal,
                    &mut self.token_principal,
                    token,
                ),
                (
                    "job→principal",
                    LinkMap::JobPrincipal,
                    &mut self.job_principal,
                    job,
                ),
                (
                    "session→principal",
                    LinkMap::SessionPrincipal,
                    &mut self.session_principal,
                    session,
                ),
            ] {
                if let Some(k) = key {
                    let fresh = recording && map.peek(k).is_none();
                    let mut changed = fresh;
                    let email = ev.principal.email.as_deref();
                    let mk = || Who {
                        id: Arc::from(id),
                        email: email.map(Arc::from),
                        kind,
                        vouch: v.to_owned_vouch(),
                    };
                    let w = map.entry(k, now, mk);
                    let same_person = |w: &Who| {
                        let known = |x: &str| x == &*w.id || w.email.as_deref() == Some(x);
                        known(id) || email.is_some_and(known)
                    };
                    if !same_person(w) {
                        // An agent using a gateway credential is seen as the gateway's consumer (a service) and as
                        // the agent its runtime names: the agent is the more specific identity, not a conflict.
                        let agent_over_service = v.strength() == w.vouch.strength()
                            && kind == PrincipalKind::Agent
                            && w.kind == PrincipalKind::Service;
                        let service_under_agent = v.strength() == w.vouch.strength()
                            && kind == PrincipalKind::Service
                            && w.kind == PrincipalKind::Agent;
                        if v.strength() > w.vouch.strength() || agent_over_service {
                            *w = mk();
                            changed = true;
                        } else if !service_under_agent {
                            self.conflicts += 1;
                            tracing::debug!(link = name, key = %crate::text::escape_control(k), kept = %crate::text::escape_control(&w.id), claimed = %crate::text::escape_control(id), "conflicting link kept");
                        }
                    }
                    if changed {
                        learned.push(LinkChange {
                            map: which,
                            key: k.to_string(),
                            at: now,
                            link: LinkValue::Who(w.clone()),
                        });
                    }
                }
            }
            if let Some(c) = &mut self.changes {
                c.extend(learned);
            }
        }

        // attribute: what earlier links say, decided before the event changes, then applied as
        // [`Filled::apply`] applies it again to the same normalized event elsewhere
        let mut at = Attribution::default();
        if ev.session.job_id.is_none() {
            at.job = token
                .and_then(|t| self.token_job.get_mut(t, now))
                .map(|l| l.job.clone());
        }
        let job = match &at.job {
            Some(j) => Some(&**j),
            None => ev
                .session
                .job_id
                .as_deref()
                .filter(|_| ev.vouches(Keys::JOB)),
        };
        let unvouched = ev.principal.vouched_by.is_none();
        if ev.principal.id.is_none() || unvouched || ev.principal.kind == PrincipalKind::Service {
            // A gateway consumer acting for an agent job belongs to that job's principal.
            let from_job = job.and_then(|j| self.job_principal.peek(j)).cloned();
            let found = from_job.or_else(|| {
                if ev.principal.id.is_some() && !unvouched {
                    return None;
                }
                token
                    .and_then(|t| self.token_principal.peek(t))
                    .or_else(|| session.and_then(|s| self.session_principal.peek(s)))
                    .cloned()
            });
            if let Some(w) = found {
                // the client claimed someone else: the authoritative link wins, and the claim is dropped
                at.drop_claim =
                    unvouched && ev.principal.id.as_deref().is_some_and(|c| c != &*w.id);
                at.who = Some(w);
            }
        }
        at.attribute(ev);
        namespace_identities(ev);
        self.count_grant(ev);
        at.client_peers = ev.session.client_peers;
        at
    }

    /// Drop links idle for longer than the TTL, by the watermark from now on ([`KeyedState::expire`]).
    pub fn expire(&mut self, watermark: Ts) {
        self.token_job.expire(watermark);
        self.token_principal.expire(watermark);
        self.job_principal.expire(watermark);
        self.session_principal.expire(watermark);
        self.grants.expire(watermark);
    }

    /// Keys currently held, over all link maps.
    pub fn tracked_keys(&self) -> usize {
        self.token_job.len()
            + self.token_principal.len()
            + self.job_principal.len()
            + self.session_principal.len()
            + self.grants.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::*;

    fn ev(
        t: i64,
        token: Option<&'static str>,
        job: Option<&'static str>,
        who: Option<(&'static str, PrincipalKind)>,
    ) -> SessionEvent<'static> {
        let src = SourceInfo {
            family: Family::Gateway,
            vendor: "t".into(),
            format: "t".into(),
        };
        let mut e = SessionEvent::new(src, Text::from("e"), Ts(t), Category::DataRead);
        e.session.token_id = token.map(Text::from);
        e.session.job_id = job.map(Text::from);
        if let Some((id, k)) = who {
            e.principal.id = Some(id.into());
            e.principal.kind = k;
        }
        e.vouch_all();
        e
    }

    fn okta(t: i64, session: &'static str, who: &'static str) -> SessionEvent<'static> {
        let src = SourceInfo {
            family: Family::Idp,
            vendor: "okta".into(),
            format: "okta".into(),
        };
        let mut e = SessionEvent::new(src, Text::from("o"), Ts(t), Category::Login);
        e.session.session_id = Some(session.into());
        e.session.token_id = Some(session.into());
        e.principal.id = Some(who.into());
        e.principal.kind = PrincipalKind::Human;
        e.vouch_all();
        e
    }

    /// A token grant by `who` (an Okta id) to OAuth client `client`, its principal vouched for unless `forged`.
    fn grant(
        t: i64,
        who: &'static str,
        client: &'static str,
        forged: bool,
    ) -> SessionEvent<'static> {
        let mut e = okta(t, "S", who);
        e.session.session_id = None;
        e.session.token_id = None;
        e.category = Category::TokenIssued;
        e.session.client_id = Some(client.into());
        e.vouch_all();
        if forged {
            e.principal.vouched_by = None;
            e.unvouch_all();
        }
        e
    }

    #[test]
    fn a_grant_counts_the_colleagues_vouched_for_who_granted_its_client_before() {
        let mut c = Correlator::new(&CorrelateConfig::default());
        let mut peers = Vec::new();
        for (i, (who, forged)) in [
            ("00ubo", false),
            ("00ubo", false),
            ("00ufake1", true),
            ("00ufake2", true),
            ("00ucy", false),
            ("00uann", false),
        ]
        .into_iter()
        .enumerate()
        {
            let mut g = grant(i as i64 * 1000, who, "zoom", forged);
            // whatever a record claims is overwritten
            g.session.client_peers = Some(200);
            c.correlate(&mut g);
            peers.push(g.session.client_peers);
        }
        assert_eq!(
            peers,
            vec![Some(0), Some(0), Some(0), Some(0), Some(1), Some(2)],
            "bo's second grant is not a colleague of his; forged grants (their client id a claimed one) never add"
        );
        let mut other = ev(
            9000,
            Some("T"),
            None,
            Some(("00uann", PrincipalKind::Human)),
        );
        other.session.client_peers = Some(9);
        c.correlate(&mut other);
        assert_eq!(
            other.session.client_peers, None,
            "only grants carry a count"
        );
    }

    /// Found on the simulator's traffic (seeds 2, 3 and 5, comparing arrival order with event-time order): a
    /// grant counted as colleagues those whose grants of the same app were processed before it, so a grant from a
    /// source delivering late counted colleagues who granted after it. Colleagues count by when they granted.
    #[test]
    fn a_grant_delivered_late_counts_only_the_colleagues_who_granted_before_it() {
        let counts = |order: &[(i64, &'static str)]| {
            let mut c = Correlator::new(&CorrelateConfig::default());
            let mut counts: Vec<(&str, Option<u8>)> = order
                .iter()
                .map(|&(t, who)| {
                    let mut g = grant(t, who, "zoom", false);
                    c.correlate(&mut g);
                    (who, g.session.client_peers)
                })
                .collect();
            let mut last = grant(9000, "00ueve", "zoom", false);
            c.correlate(&mut last);
            counts.push(("00ueve", last.session.client_peers));
            counts
        };
        assert_eq!(
            counts(&[
                (1000, "00ubo"),
                (2000, "00ucy"),
                (3000, "00uann"),
                (4000, "00udan")
            ]),
            vec![
                ("00ubo", Some(0)),
                ("00ucy", Some(1)),
                ("00uann", Some(2)),
                ("00udan", Some(3)),
                ("00ueve", Some(4))
            ]
        );
        // bo's and cy's source delivers late: ann's and dan's grants are processed first. Those cannot count
        // grants not yet delivered; bo and cy count only who granted before them, not ann and dan.
        assert_eq!(
            counts(&[
                (3000, "00uann"),
                (4000, "00udan"),
                (1000, "00ubo"),
                (2000, "00ucy")
            ]),
            vec![
                ("00uann", Some(0)),
                ("00udan", Some(1)),
                ("00ubo", Some(0)),
                ("00ucy", Some(1)),
                ("00ueve", Some(4))
            ]
        );
    }

    /// Of more colleagues than are kept, the earliest are kept whatever order their grants arrive in.
    #[test]
    fn the_earliest_grants_are_kept_whatever_order_they_arrive_in() {
        let mut c = Correlator::new(&CorrelateConfig::default());
        let people: Vec<&'static str> = (0..40)
            .map(|i| &*Box::leak(format!("00u{i:02}").into_boxed_str()))
            .collect();
        // the latest first
        for (i, who) in people.iter().enumerate().rev() {
            c.correlate(&mut grant(10_000 + i as i64 * 1000, who, "zoom", false));
        }
        // a newcomer granting between the 3rd and the 4th colleague counts 3 of them, as in event-time order
        let mut g = grant(10_000 + 2 * 1000 + 500, "00unew", "zoom", false);
        c.correlate(&mut g);
        assert_eq!(g.session.client_peers, Some(3));
        let mut late = grant(10_000 + 39 * 1000 + 500, "00ulast", "zoom", false);
        c.correlate(&mut late);
        assert_eq!(late.session.client_peers, Some(PEERS_KEPT as u8));
    }

    /// Found by an outside review: any vouched principal counted as a colleague, so an app's own client-credentials
    /// grant (the app is its own principal), a refused consent, or one person spelled twice made a consent-phishing
    /// app look used by colleagues, and `new_client` stayed quiet for its victims.
    #[test]
    fn only_a_persons_successful_grant_counts_and_once_however_spelled() {
        let mut c = Correlator::new(&CorrelateConfig::default());
        let mut app = grant(0, "0oaevil", "0oaevil", false);
        app.principal.kind = PrincipalKind::Service;
        c.correlate(&mut app);
        let mut refused = grant(1000, "00ubo", "0oaevil", false);
        refused.outcome = crate::event::Outcome::Failure;
        c.correlate(&mut refused);
        c.correlate(&mut grant(2000, "00ucy", "0oaevil", false));
        c.correlate(&mut grant(3000, "00UCY", "0oaevil", false));
        let mut ann = grant(4000, "00uann", "0oaevil", false);
        c.correlate(&mut ann);
        assert_eq!(
            ann.session.client_peers,
            Some(1),
            "only cy is a colleague who granted it, however her id is cased"
        );
    }

    /// Found measuring the keyed topology: `new_client` counted colleagues per keyed partition, so a client three
    /// colleagues in other partitions had granted looked new (on the simulator's traffic, 32 alerts over one
    /// partition, 35 over 4, 39 over 8). Grants are now counted by the route stage and shared between its instances.
    #[test]
    fn grants_learned_by_one_route_instance_count_as_colleagues_on_another() {
        let mut a = Correlator::new(&CorrelateConfig::default());
        a.record_changes();
        let mut b = Correlator::new(&CorrelateConfig::default());
        for (i, who) in ["00ubo", "00ucy", "00udi"].into_iter().enumerate() {
            a.correlate(&mut grant(i as i64 * 1000, who, "zoom", false));
        }
        a.correlate(&mut grant(4000, "00ueve", "evil-app", true));
        let shared = a.take_changes();
        let keys: Vec<String> = shared
            .iter()
            .filter(|c| c.map == LinkMap::ClientGrant)
            .map(|c| c.topic_key())
            .collect();
        assert_eq!(
            keys.len(),
            3,
            "one record per vouched grant, none for the forged one: {keys:?}"
        );
        assert_eq!(
            keys.iter().collect::<std::collections::HashSet<_>>().len(),
            3,
            "each principal's grant has a key of its own, so compaction keeps them all"
        );
        for c in &shared {
            b.apply(&LinkChange::decode(&c.encode()).unwrap());
        }
        let mut ann = grant(5000, "00uann", "zoom", false);
        b.correlate(&mut ann);
        assert_eq!(ann.session.client_peers, Some(3));
    }

    /// Okta's sign-in with its e-mail (the person's key as detectors use it).
    fn okta_with_email(t: i64, session: &'static str) -> SessionEvent<'static> {
        let mut e = okta(t, session, "00ualice");
        e.principal.email = Some("alice@example.com".into());
        e.vouch_all();
        e
    }

    #[test]
    fn a_gateway_call_naming_only_a_token_is_routed_with_its_principals_sign_in() {
        let mut c = Correlator::new(&CorrelateConfig::default());
        let mut login = okta_with_email(0, "rt-a");
        c.correlate(&mut login);
        let mut call = ev(1000, Some("rt-a"), None, None);
        c.correlate(&mut call);
        // attributed by the id (no e-mail on the call), routed by the e-mail, like the sign-in
        assert_eq!(call.principal.id.as_deref(), Some("00ualice"));
        assert_eq!(c.subject(&call), c.subject(&login));
        assert_eq!(c.subject(&login), "alice@example.com");
        // an unattributed agent span and the gateway call its token makes meet on the job
        let mut span = ev(2000, Some("T9"), Some("J9"), None);
        c.correlate(&mut span);
        let mut via_token = ev(3000, Some("T9"), None, None);
        c.correlate(&mut via_token);
        assert_eq!(c.subject(&span), "J9");
        assert_eq!(c.subject(&via_token), "J9");
    }

    #[test]
    fn an_anonymous_request_claiming_the_ceo_is_not_routed_with_the_ceos_events() {
        let mut c = Correlator::new(&CorrelateConfig::default());
        let mut login = okta_with_email(0, "rt-a");
        c.correlate(&mut login);
        // claims the CEO's e-mail and carries her session's token id, vouched by nobody
        let mut forged = ev(
            1000,
            Some("rt-a"),
            None,
            Some(("alice@example.com", PrincipalKind::Human)),
        );
        forged.principal.email = Some("alice@example.com".into());
        forged.unvouch_all();
        c.correlate(&mut forged);
        assert_ne!(c.subject(&forged), c.subject(&login));
        assert!(
            c.subject(&forged).starts_with(CLAIMED),
            "{}",
            c.subject(&forged)
        );
    }

    #[test]
    fn a_link_shared_by_another_instance_re_points_a_held_one_only_from_a_stronger_source() {
        let mut a = Correlator::new(&CorrelateConfig::default());
        a.record_changes();
        let mut b = Correlator::new(&CorrelateConfig::default());
        b.record_changes();
        // each instance learns job J from a different agent of equal strength
        a.correlate(&mut ev(
            0,
            None,
            Some("J"),
            Some(("agent-p", PrincipalKind::Agent)),
        ));
        b.correlate(&mut ev(
            0,
            None,
            Some("J"),
            Some(("agent-m", PrincipalKind::Agent)),
        ));
        let (from_a, from_b) = (a.take_changes(), b.take_changes());
        assert_eq!((from_a.len(), from_b.len()), (1, 1));
        for c in &from_b {
            a.apply(c);
        }
        for c in &from_a {
            b.apply(c);
        }
        // each keeps its first, as one instance keeps its first link and counts the other as a conflict
        let mut call_a = ev(100, None, Some("J"), None);
        a.correlate(&mut call_a);
        let mut call_b = ev(100, None, Some("J"), None);
        b.correlate(&mut call_b);
        assert_eq!(call_a.principal.id.as_deref(), Some("agent-p"));
        assert_eq!(call_b.principal.id.as_deref(), Some("agent-m"));
        assert_eq!((a.conflicts(), b.conflicts()), (1, 1));
        // an IdP's link replaces an agent's, never the reverse, whatever the order of arrival
        let mut idp = Correlator::new(&CorrelateConfig::default());
        idp.record_changes();
        idp.correlate(&mut okta(0, "S", "00ureal"));
        let strong = idp.take_changes();
        let mut weak = Correlator::new(&CorrelateConfig::default());
        weak.record_changes();
        weak.correlate(&mut ev(
            0,
            Some("S"),
            None,
            Some(("agent-x", PrincipalKind::Agent)),
        ));
        let weak_links = weak.take_changes();
        for order in [[&strong, &weak_links], [&weak_links, &strong]] {
            let mut c = Correlator::new(&CorrelateConfig::default());
            for links in order {
                for l in links.iter() {
                    c.apply(l);
                }
            }
            let mut call = ev(100, Some("S"), None, None);
            c.correlate(&mut call);
            assert_eq!(call.principal.id.as_deref(), Some("00ureal"));
        }
        // and on a compacted topic the two never share a record key
        let key = |v: &[LinkChange]| v.iter().map(LinkChange::topic_key).collect::<Vec<_>>();
        assert!(key(&strong).iter().all(|k| !key(&weak_links).contains(k)));
    }

    #[test]
    fn an_anonymous_request_carrying_someones_token_id_borrows_no_identity() {
        let mut c = Correlator::new(&CorrelateConfig::default());
        c.correlate(&mut okta(0, "rt-ceo", "00uceo"));
        let mut anon = ev(1000, Some("rt-ceo"), None, None);
        anon.unvouch_all();
        c.correlate(&mut anon);
        assert_eq!(anon.principal.id, None);
        assert!(anon.principal.vouched_by.is_none());
    }

    #[test]
    fn a_forged_job_header_cannot_re_point_a_job_to_another_principal() {
        let mut c = Correlator::new(&CorrelateConfig::default());
        c.correlate(&mut ev(
            0,
            Some("T"),
            Some("J"),
            Some(("agent-1", PrincipalKind::Agent)),
        ));
        // an unvouched request names job J and claims to be the CFO
        let mut forged = ev(
            500,
            None,
            Some("J"),
            Some(("cfo@example.com", PrincipalKind::Human)),
        );
        forged.unvouch_all();
        c.correlate(&mut forged);
        assert_eq!(
            forged.principal.id.as_deref(),
            Some("claimed:cfo@example.com"),
            "still only a claim, in a name space of its own"
        );
        assert!(forged.principal.vouched_by.is_none());
        assert_eq!(forged.session.job_id.as_deref(), Some("claimed:J"));
        // and the link still points at the agent
        let mut call = ev(1000, Some("T"), None, None);
        c.correlate(&mut call);
        assert_eq!(call.principal.id.as_deref(), Some("agent-1"));
    }

    #[test]
    fn an_agent_named_like_a_person_and_a_saas_login_shaped_like_an_okta_id_get_keys_of_their_own()
    {
        let mut c = Correlator::new(&CorrelateConfig::default());
        let mut agent = ev(
            0,
            None,
            Some("J"),
            Some(("cfo@example.com", PrincipalKind::Agent)),
        );
        c.correlate(&mut agent);
        assert_eq!(agent.principal.key(), Some("agent:cfo@example.com"));
        assert_eq!(agent.principal.id.as_deref(), Some("cfo@example.com"));
        let src = SourceInfo {
            family: Family::Saas,
            vendor: "github".into(),
            format: "github_audit".into(),
        };
        let mut gh = SessionEvent::new(src, Text::from("g"), Ts(0), Category::ApiRequest);
        gh.principal.id = Some("00uceo".into());
        gh.principal.kind = PrincipalKind::Human;
        gh.vouch_all();
        c.correlate(&mut gh);
        assert_eq!(gh.principal.key(), Some("github:00uceo"));
        assert_eq!(
            gh.principal.id.as_deref(),
            Some("00uceo"),
            "the id GitHub's own API takes"
        );
        // an IdP's own ids and e-mails are the people's name space and stay as they are
        let mut o = okta(0, "s", "00ualice");
        c.correlate(&mut o);
        assert_eq!(o.principal.key(), Some("00ualice"));
    }

    /// Found on the simulator's traffic: Entra names a person by object id (with the UPN as e-mail) and M365 by the
    /// UPN; the session they share is one person's, not a conflict.
    #[test]
    fn an_object_id_and_the_same_persons_upn_are_not_a_conflicting_link() {
        let mut c = Correlator::new(&CorrelateConfig::default());
        let mut signin = okta(0, "sess-1", "00001028-5f1c");
        signin.principal.email = Some("ann@example.com".into());
        c.correlate(&mut signin);
        let mut mail = okta(60, "sess-1", "ann@example.com");
        mail.principal.email = Some("ann@example.com".into());
        mail.source.family = Family::Saas;
        mail.source.vendor = "microsoft".into();
        c.correlate(&mut mail);
        assert_eq!(c.conflicts(), 0);
        // another person naming the same session still is
        let mut other = okta(120, "sess-1", "bob@example.com");
        other.principal.email = Some("bob@example.com".into());
        other.source.family = Family::Saas;
        c.correlate(&mut other);
        assert_eq!(c.conflicts(), 2, "the session and its token");
    }

    /// Found on the simulator's traffic: an agent's long-lived token stayed linked to its first nightly run, so
    /// every later run's gateway calls were attributed to the first run's job id.
    #[test]
    fn a_long_lived_token_moves_on_to_the_agents_next_run_but_not_at_another_sources_word() {
        let mut c = Correlator::new(&CorrelateConfig::default());
        let agent = Some(("agent-1", PrincipalKind::Agent));
        c.correlate(&mut ev(0, Some("tok-a"), Some("run-0"), agent));
        c.correlate(&mut ev(86_000_000, Some("tok-a"), Some("run-1"), agent));
        let mut call = ev(86_001_000, Some("tok-a"), None, None);
        c.correlate(&mut call);
        assert_eq!(call.session.job_id.as_deref(), Some("run-1"));
        assert_eq!(c.conflicts(), 0);
        // a different source of the same strength cannot move it
        let mut other = ev(86_002_000, Some("tok-a"), Some("run-x"), agent);
        other.source.format = "other".into();
        c.correlate(&mut other);
        let mut call = ev(86_003_000, Some("tok-a"), None, None);
        c.correlate(&mut call);
        assert_eq!(call.session.job_id.as_deref(), Some("run-1"));
        assert_eq!(c.conflicts(), 1);
    }

    #[test]
    fn a_weaker_source_never_overwrites_a_stronger_link_and_the_conflict_is_counted() {
        let mut c = Correlator::new(&CorrelateConfig::default());
        c.correlate(&mut okta(0, "sess-1", "00ualice"));
        // a gateway consumer (vouched by the gateway, weaker than the IdP) claims the same session
        let mut gw = ev(100, None, None, Some(("svc-x", PrincipalKind::Service)));
        gw.session.session_id = Some("sess-1".into());
        gw.vouch_all();
        c.correlate(&mut gw);
        assert_eq!(c.conflicts(), 1);
        let mut later = ev(200, None, None, None);
        later.session.session_id = Some("sess-1".into());
        later.vouch_all();
        c.correlate(&mut later);
        assert_eq!(later.principal.id.as_deref(), Some("00ualice"));
        assert_eq!(
            later
                .principal
                .vouched_by
                .as_ref()
                .map(|v| v.vendor.as_str()),
            Some("okta")
        );
    }

    #[test]
    fn gateway_call_with_only_a_token_is_attributed_to_the_job_and_its_agent() {
        let mut c = Correlator::new(&CorrelateConfig::default());
        let mut span = ev(
            0,
            Some("T"),
            Some("J"),
            Some(("agent-1", PrincipalKind::Agent)),
        );
        c.correlate(&mut span);
        let mut call = ev(
            1000,
            Some("T"),
            None,
            Some(("gw-consumer", PrincipalKind::Service)),
        );
        c.correlate(&mut call);
        assert_eq!(call.session.job_id.as_deref(), Some("J"));
        assert_eq!(call.principal.id.as_deref(), Some("agent-1"));
        assert_eq!(call.principal.kind, PrincipalKind::Agent);
    }

    #[test]
    fn links_expire_after_the_ttl_in_event_time() {
        let mut c = Correlator::new(&CorrelateConfig {
            ttl_secs: 60,
            max_keys: 10,
            ..Default::default()
        });
        c.correlate(&mut ev(0, Some("T"), Some("J"), None));
        c.expire(Ts(120_000));
        let mut late = ev(120_000, Some("T"), None, None);
        c.correlate(&mut late);
        assert_eq!(late.session.job_id, None);
        assert_eq!(c.tracked_keys(), 0);
    }
}
