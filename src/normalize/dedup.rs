//! Duplicate events: the same record delivered twice is processed once.
//!
//! In: normalized events, in processing order. Out: whether each is the first of its kind within the window.
//! State: the fingerprints of the events of the last `dedup_window_secs` of event time, at most `dedup_max_keys`
//! of them (the least recently seen make room; events their source vouches for and events it does not are kept
//! in separate pools, so a flood of unvouched lines cannot push out the fingerprints of an IdP's own records).
//!
//! Duplicates are ordinary in real pipelines: Okta event hooks deliver at least once, Entra writes the same
//! sign-in row twice, Azure Monitor and SIEM exports overlap their batches, and Kafka redelivers what came after
//! the last commit when a consumer dies. A duplicate must not count twice in a rate, move a baseline or raise a
//! second decision.
//!
//! The fingerprint is a digest of the format, the vendor's event id (for records without one, the id Quench makes
//! from the record's place: topic, partition and offset, so Kafka redelivery matches), the event time to the
//! millisecond, the principal, the action, and whether the source vouches for the principal. Everything in it is
//! taken from the record, so a forged line could match a real record only by naming its id, its exact time, its
//! principal and its action in the same format and with the same standing: an unvouched line can never suppress
//! a record its source vouches for.

use crate::event::{SessionEvent, Ts};
use crate::state::{Bounds, KeyedState};
use sha2::{Digest, Sha256};

/// Default window, seconds of event time (`normalize.dedup_window_secs`).
pub const DEFAULT_WINDOW_SECS: u64 = 3600;
/// Default number of fingerprints kept (`normalize.dedup_max_keys`): about 60 MB at most.
pub const DEFAULT_MAX_KEYS: usize = 500_000;

/// The fingerprints of recent events.
pub struct Dedup {
    seen: Option<KeyedState<()>>,
    duplicates: u64,
}

impl Dedup {
    /// A window of `window_secs` of event time (0: off) holding at most `max_keys` fingerprints.
    pub fn new(window_secs: u64, max_keys: usize) -> Self {
        Dedup {
            seen: (window_secs > 0)
                .then(|| KeyedState::new(Bounds::from_secs(window_secs, max_keys.max(1)))),
            duplicates: 0,
        }
    }

    /// Whether `ev` is the first of its fingerprint within the window (always, when off). `now` is the
    /// processing clock, which expires old fingerprints.
    pub fn first(&mut self, ev: &SessionEvent<'_>, now: Ts) -> bool {
        let Some(seen) = &mut self.seen else {
            return true;
        };
        let vouched = ev.principal.vouched_by.is_some();
        let key = fingerprint(ev, vouched);
        let at = now.max(ev.event_time);
        seen.evict(at);
        if seen.get_mut_in(&key, at, vouched).is_some() {
            self.duplicates += 1;
            return false;
        }
        seen.entry_in(&key, at, vouched, || ());
        true
    }

    /// Duplicates dropped so far.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// The fingerprints, for a restart to resume from (see [`crate::durable`]).
    pub fn save(&self) -> Result<crate::detect::Saved, serde_json::Error> {
        serde_json::value::to_raw_value(&(&self.seen, self.duplicates))
    }

    /// Take back what [`Dedup::save`] wrote (nothing when deduplication is now off).
    pub fn load(&mut self, saved: &serde_json::value::RawValue) -> Result<(), String> {
        let (seen, duplicates): (Option<crate::state::SavedKeys<()>>, u64) =
            crate::detect::load(saved)?;
        if let (Some(state), Some(saved)) = (&mut self.seen, seen) {
            state.restore(saved)?;
        }
        self.duplicates = duplicates;
        Ok(())
    }
}

fn fingerprint(ev: &SessionEvent<'_>, vouched: bool) -> String {
    let mut h = Sha256::new();
    for part in [
        ev.source.format.as_bytes(),
        ev.event_id.as_bytes(),
        &ev.event_time.0.to_le_bytes(),
        ev.principal.key().unwrap_or("").as_bytes(),
        ev.action.as_deref().unwrap_or("").as_bytes(),
        &[u8::from(vouched)],
    ] {
        // length-prefixed, so that no two different tuples hash alike
        h.update((part.len() as u32).to_le_bytes());
        h.update(part);
    }
    hex::encode(&h.finalize()[..16])
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
        assert_eq!(d.duplicates(), 1);
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
        forged.principal.vouched_by = None;
        let mut d = Dedup::new(3600, 1000);
        assert!(d.first(&forged, ev.event_time));
        assert!(d.first(ev, ev.event_time));
    }
}
