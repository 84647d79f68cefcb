//! Duplicate events: the same record delivered twice is processed once.
//!
//! In: normalized events, in processing order. Out: whether each is the first of its kind within the window.
//! State: the fingerprints of the events of the last `dedup_window_secs` of event time, at most `dedup_max_keys`
//! of them per source family (IdP, SaaS, gateway, agent), the least recently seen making room. Each family's
//! store keeps events their source vouches for and events it does not in separate pools, so neither a gateway's
//! authenticated traffic nor a flood of anonymous lines can push out the fingerprints of an IdP's own records.
//!
//! Duplicates are ordinary in real pipelines: Okta event hooks deliver at least once, Entra writes the same
//! sign-in row twice, Azure Monitor and SIEM exports overlap their batches, and Kafka redelivers what came after
//! the last commit when a consumer dies. A duplicate must not count twice in a rate, move a baseline or raise a
//! second decision.
//!
//! The fingerprint is a 128-bit keyed hash (foldhash, with a random key kept with the state, so nobody can craft
//! two events that collide) of the format, the vendor's event id (for records without one, the id Quench makes
//! from the record's place: topic, partition and offset, so Kafka redelivery matches), the event time to the
//! millisecond, whether the source vouches for the event's identities, and what the event says: principal,
//! category, action, outcome, session, token and job ids, address, user agent, and the resource (app, object,
//! server, destination, bytes, records). A forged line could only suppress a record by repeating all of it in the
//! same format with the same standing, which is a true duplicate; a copy that differs in anything (another tool
//! under a reused span id, another page under a client-chosen request id) is kept, and an unvouched line can never
//! suppress a record its source vouches for.

use crate::event::{SessionEvent, Ts};
use crate::state::{Bounds, KeyedState};

/// Default window, seconds of event time (`normalize.dedup_window_secs`).
pub const DEFAULT_WINDOW_SECS: u64 = 3600;
/// Default number of fingerprints kept (`normalize.dedup_max_keys`): about 60 MB at most.
pub const DEFAULT_MAX_KEYS: usize = 500_000;

/// The fingerprints of recent events, one store per source family.
pub struct Dedup {
    seen: Option<Vec<KeyedState<bool>>>,
    /// The fingerprint's key: random per state (saved with it), so nobody can craft two events that collide.
    seed: u64,
    duplicates: u64,
}

impl Dedup {
    /// A window of `window_secs` of event time (0: off) holding at most `max_keys` fingerprints per family.
    pub fn new(window_secs: u64, max_keys: usize) -> Self {
        let store = || KeyedState::new(Bounds::from_secs(window_secs, max_keys.max(1)));
        Dedup {
            seen: (window_secs > 0).then(|| (0..FAMILIES).map(|_| store()).collect()),
            seed: fastrand::u64(..),
            duplicates: 0,
        }
    }

    /// Whether `ev` is the first of its fingerprint within the window (always, when off). `now` is the
    /// processing clock, which expires old fingerprints.
    pub fn first(&mut self, ev: &SessionEvent<'_>, now: Ts) -> bool {
        let Some(stores) = &mut self.seen else {
            return true;
        };
        let Some(seen) = stores.get_mut(ev.source.family as usize) else {
            return true;
        };
        let vouched = ev.principal.vouched_by.is_some() || !ev.session.vouched.is_empty();
        let mut buf = [0u8; 32];
        // the digits are ASCII, so this cannot fail; if it ever did, the event must be kept, never collapsed
        let Some(key) = fingerprint(ev, vouched, self.seed, &mut buf) else {
            return true;
        };
        let at = now.max(ev.event_time);
        // one lookup: a new fingerprint comes in unmarked and is marked here
        let marked = seen.entry_in(key, at, vouched, || false);
        if *marked {
            self.duplicates += 1;
            return false;
        }
        *marked = true;
        true
    }

    /// Duplicates dropped so far.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// The fingerprints and their key, for a restart to resume from (see [`crate::durable`]).
    pub fn save(&self) -> Result<crate::state::Saved, serde_json::Error> {
        serde_json::value::to_raw_value(&(&self.seen, self.seed, self.duplicates))
    }

    /// Take back what [`Dedup::save`] wrote (nothing when deduplication is now off).
    pub fn load(&mut self, saved: &serde_json::value::RawValue) -> Result<(), String> {
        type Saved = (Option<Vec<crate::state::SavedKeys<bool>>>, u64, u64);
        let (seen, seed, duplicates): Saved = crate::state::load(saved)?;
        if let (Some(stores), Some(saved)) = (&mut self.seen, seen) {
            for (store, keys) in stores.iter_mut().zip(saved) {
                store.restore(keys)?;
            }
        }
        self.seed = seed;
        self.duplicates = duplicates;
        Ok(())
    }
}

/// Source families, each with its own store.
const FAMILIES: usize = 4;

/// A 128-bit keyed hash of what the event says, as 32 hex digits in `buf` (no allocation per event).
fn fingerprint<'b>(
    ev: &SessionEvent<'_>,
    vouched: bool,
    seed: u64,
    buf: &'b mut [u8; 32],
) -> Option<&'b str> {
    use std::hash::{BuildHasher, Hasher};
    fn text<'t>(t: &'t Option<crate::event::Text<'_>>) -> &'t [u8] {
        t.as_deref().unwrap_or("").as_bytes()
    }
    let r = &ev.resource;
    let mut h = [
        foldhash::quality::FixedState::with_seed(seed).build_hasher(),
        foldhash::quality::FixedState::with_seed(seed ^ 0x9E37_79B9_7F4A_7C15).build_hasher(),
    ];
    let numbers = [
        ev.event_time.0,
        i64::from(vouched),
        ev.category as i64,
        ev.outcome as i64,
        r.bytes.map_or(-1, |b| b as i64),
        r.records.map_or(-1, |b| b as i64),
    ];
    let parts = [
        ev.source.format.as_bytes(),
        ev.event_id.as_bytes(),
        ev.principal.key().unwrap_or("").as_bytes(),
        text(&ev.action),
        text(&ev.session.session_id),
        text(&ev.session.token_id),
        text(&ev.session.job_id),
        text(&ev.network.ip),
        text(&ev.network.user_agent),
        text(&r.app),
        text(&r.object_id),
        text(&r.server),
        text(&r.destination),
    ];
    for h in &mut h {
        for n in numbers {
            h.write_i64(n);
        }
        for part in parts {
            // length-prefixed, so that no two different tuples hash alike
            h.write_usize(part.len());
            h.write(part);
        }
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let words = [h[0].finish(), h[1].finish()];
    for (i, b) in words.iter().flat_map(|w| w.to_le_bytes()).enumerate() {
        buf[2 * i] = HEX[usize::from(b >> 4)];
        buf[2 * i + 1] = HEX[usize::from(b & 15)];
    }
    std::str::from_utf8(buf).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::testutil::normalize_one;

    const OKTA: &str = r#"{"uuid":"dup-1","published":"2026-11-02T08:00:00.000Z","eventType":"user.session.start","actor":{"id":"00ualice","type":"User","alternateId":"alice@example.com"},"client":{"ipAddress":"203.0.113.7"},"outcome":{"result":"SUCCESS"},"authenticationContext":{"externalSessionId":"102abc"}}"#;

    #[test]
    fn an_okta_hook_delivered_twice_is_processed_once() {
        let ev = &normalize_one(OKTA)[0];
        let mut d = Dedup::new(3600, 1000);
        let now = ev.event_time;
        assert!(d.first(ev, now));
        assert!(!d.first(ev, now));
        assert!(!d.first(ev, now));
        assert_eq!(d.duplicates(), 2);
        // another record of the same person at the same time is no duplicate
        let other = OKTA.replace("dup-1", "dup-2");
        assert!(d.first(&normalize_one(&other)[0], now));
    }

    #[test]
    fn past_the_window_the_same_id_is_new_again() {
        let ev = &normalize_one(OKTA)[0];
        let mut d = Dedup::new(60, 1000);
        assert!(d.first(ev, ev.event_time));
        assert!(d.first(ev, Ts(ev.event_time.0 + 61_000)));
    }

    /// Found by an outside review: a copy under the same vendor id and time that says something else (another
    /// tool under a reused span id) suppressed the real record.
    #[test]
    fn a_copy_that_differs_in_content_is_not_a_duplicate() {
        let ev = &normalize_one(OKTA)[0];
        let mut other = ev.clone();
        other.network.ip = Some("198.51.100.9".into());
        let mut d = Dedup::new(3600, 1000);
        assert!(d.first(&other, ev.event_time));
        assert!(d.first(ev, ev.event_time));
        assert!(!d.first(ev, ev.event_time));
    }

    /// Found by an outside review: a gateway's authenticated traffic filled the store an IdP's fingerprints lived
    /// in, so an Okta redelivery counted twice. Each family has its own store.
    #[test]
    fn a_flood_from_another_family_does_not_evict_an_idps_fingerprints() {
        let ev = &normalize_one(OKTA)[0];
        let mut d = Dedup::new(3600, 10);
        assert!(d.first(ev, ev.event_time));
        for i in 0..100 {
            let mut g = ev.clone();
            g.source.family = crate::event::Family::Gateway;
            g.event_id = format!("gw-{i}").into();
            assert!(d.first(&g, ev.event_time));
        }
        assert!(!d.first(ev, ev.event_time));
    }

    #[test]
    fn a_window_of_zero_turns_it_off() {
        let ev = &normalize_one(OKTA)[0];
        let mut d = Dedup::new(0, 1000);
        assert!(d.first(ev, ev.event_time) && d.first(ev, ev.event_time));
    }

    #[test]
    fn an_unvouched_copy_does_not_suppress_the_vouched_record() {
        let ev = &normalize_one(OKTA)[0];
        let mut forged = ev.clone();
        forged.unvouch_all();
        let mut d = Dedup::new(3600, 1000);
        assert!(d.first(&forged, ev.event_time));
        assert!(d.first(ev, ev.event_time));
    }
}
