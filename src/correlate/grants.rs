//! The organisation's OAuth grants: per client, the colleagues (vouched for by their source) who granted it and
//! when, from which each grant's `session.client_peers` is filled for `new_client`.
//!
//! In: a correlated `token_issued` event. Out: its `session.client_peers`; a [`LinkChange`] per colleague learned
//! (when recording). State: per client, the [`PEERS_KEPT`] earliest colleagues' digests and grant times, in
//! [`Correlator`]'s `grants`.

use super::*;

impl Correlator {
    /// Fill a grant's `session.client_peers` from the organisation's earlier grants of its client (earlier in
    /// event time, so a colleague's grant delivered late by a slower source counts as it would have in order, and
    /// a later one delivered first does not), and learn the grant if it is a person's (a colleague), vouched for
    /// by its source, and did not fail: a forged grant, an app granting itself a token (client credentials) or a
    /// refused consent cannot make a client look popular. A person is counted once however the source spells them
    /// (case, or an id a link knows by an e-mail). Any other event's count is cleared: only correlate says it.
    pub(super) fn count_grant(&mut self, ev: &mut SessionEvent<'_>) {
        ev.session.client_peers = None;
        if ev.category != Category::TokenIssued || ev.principal.key().is_none() {
            return;
        }
        let Some(client) = ev.session.client_id.as_deref() else {
            return;
        };
        let me = crate::state::digest(&self.subject(ev).to_lowercase());
        let now = ev.event_time;
        let before = |g: &Vec<Peer>| g.iter().filter(|p| p.0 != me && p.1 < now).count();
        let colleague = ev.principal.vouched_by.is_some()
            && ev.principal.kind == PrincipalKind::Human
            && ev.outcome != crate::event::Outcome::Failure;
        let before = if colleague {
            let g = self.grants.entry(client, now, Vec::new);
            let before = before(g);
            if Peer::learn(g, me, now) {
                if let Some(c) = &mut self.changes {
                    c.push(LinkChange {
                        map: LinkMap::ClientGrant,
                        key: client.to_string(),
                        at: now,
                        link: LinkValue::Grant(me),
                    });
                }
            }
            before
        } else {
            self.grants.peek(client).map_or(0, before)
        };
        ev.session.client_peers = Some(before.min(PEERS_KEPT) as u8);
    }
}

/// A colleague who granted an OAuth client: the digest of their key, and the event time of their earliest grant
/// seen.
#[derive(Clone, Copy, Serialize)]
pub(super) struct Peer(pub(super) [u8; 16], pub(super) Ts);

impl Peer {
    /// Learn that `who` granted the client at `at`: keep each colleague's earliest grant, and of the colleagues the
    /// [`PEERS_KEPT`] earliest, so that what is kept does not depend on the order grants arrive in. Whether the
    /// grant changed what is kept.
    pub(super) fn learn(kept: &mut Vec<Peer>, who: [u8; 16], at: Ts) -> bool {
        if let Some(p) = kept.iter_mut().find(|p| p.0 == who) {
            let earlier = at < p.1;
            p.1 = p.1.min(at);
            return earlier;
        }
        if kept.len() < PEERS_KEPT {
            kept.push(Peer(who, at));
            return true;
        }
        match kept.iter_mut().max_by_key(|p| p.1) {
            Some(latest) if latest.1 > at => {
                *latest = Peer(who, at);
                true
            }
            _ => false,
        }
    }
}

impl<'de> Deserialize<'de> for Peer {
    /// State saved before grant times were kept holds the digest alone: that grant counts as made before any event.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Saved {
            Timed([u8; 16], Ts),
            Untimed([u8; 16]),
        }
        Ok(match Saved::deserialize(d)? {
            Saved::Timed(d, at) => Peer(d, at),
            Saved::Untimed(d) => Peer(d, Ts(0)),
        })
    }
}
