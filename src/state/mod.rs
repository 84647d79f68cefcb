//! Bounded keyed state shared by the correlate, detect and decide stages, and the bounded per-key sets detectors
//! keep inside it.
//!
//! In: keys, event times, and whether the event's source vouches for the key. Out: per-key values. State: a slab
//! of entries threaded on two recency lists (one per pool, most recently touched first) and a hash index from key
//! to slot, so finding, touching, inserting and evicting a key are each O(1) whatever the number of keys. Bounded
//! three ways:
//! - Time: entries idle for longer than the TTL (in event time) are popped from the least recent end of each list
//!   as event time advances: as the pipeline's watermark advances ([`KeyedState::expire`], see
//!   [`crate::watermark`]), and until there is one, as each event's time does. The lists are ordered by when a key was last touched in processing order, which is
//!   event-time order for in-order input; with mildly out-of-order event times a sweep stops at the first entry
//!   that is still fresh, so an entry touched by a late event may outlive its TTL by about as much as the input
//!   is out of order (it goes when it reaches the end of the list, or to the key cap).
//! - Keys: the vouched pool holds at most `max_keys` keys first seen (or since seen) with a vouched identity; keys
//!   first seen only from claims (an unauthenticated request's header) live in their own pool of
//!   `max(max_keys / 8, 1)` keys ([`Bounds::claimed_keys`]). When a pool is full, its least recently touched key
//!   makes room, so a flood of claimed keys only ever evicts other claimed keys. A claimed key touched by a vouched
//!   event moves to the vouched pool.
//! - Bytes: keys longer than [`MAX_KEY_BYTES`] are stored as a 33-byte SHA-256 digest, and keys of up to 46 bytes
//!   inside their slot; slots come in chunks of 4,096, so growth never copies them nor leaves half a vector unused.
//!   Strings a detector keeps are cut to [`MAX_TEXT_BYTES`] by [`bounded`] (or kept as a [`digest`] when only
//!   compared); per-key lists are [`RecentSet`]s with a cap.
//!
//! Owned by one pipeline instance (no lock); keys are principals, sessions, tokens or jobs, so instances can be
//! partitioned by principal.
//!
//! Saving: a [`KeyedState`] serializes its entries least recently touched first, with pool and last touch, and
//! [`KeyedState::restore`] rebuilds the same recency order from them (a [`RecentSet`] likewise), so that learned
//! state survives a restart (see [`crate::durable`]).

use crate::event::Ts;
use hashbrown::HashTable;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::hash::BuildHasher;

mod lru;
mod recent;

#[cfg(test)]
use lru::KeyBuf;
use lru::{Lru, StoredKey, MAX_SLOTS};
#[cfg(test)]
use recent::Items;
pub use recent::{RecentSet, SMALL};

/// A component's saved state: JSON, kept as written.
pub type Saved = Box<serde_json::value::RawValue>;

/// Save `t` (a component's state) as [`Saved`] JSON.
pub(crate) fn save<T: Serialize>(t: &T) -> Result<Option<Saved>, serde_json::Error> {
    serde_json::value::to_raw_value(t).map(Some)
}

/// Read what [`save`] wrote.
pub(crate) fn load<T: serde::de::DeserializeOwned>(
    raw: &serde_json::value::RawValue,
) -> Result<T, String> {
    serde_json::from_str(raw.get()).map_err(|e| e.to_string())
}

/// Keys longer than this many bytes are stored as a digest of them.
pub const MAX_KEY_BYTES: usize = 128;

/// Most bytes of one string a detector keeps in state (see [`bounded`]).
pub const MAX_TEXT_BYTES: usize = 256;

/// How many strings of a [`RecentSet`] a reason lists (see [`RecentSet::summary`]).
pub const LISTED: usize = 8;

/// Limits for one keyed map.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    /// Idle time after which a key is forgotten, in event-time milliseconds.
    pub ttl_ms: i64,
    /// Most keys held at once in the vouched pool. Keys first seen only from claims get a pool of their own of
    /// [`Bounds::claimed_keys`] more.
    pub max_keys: usize,
}

impl Bounds {
    /// Bounds from a config's TTL in seconds and key cap.
    pub fn from_secs(ttl_secs: u64, max_keys: usize) -> Bounds {
        Bounds {
            ttl_ms: (ttl_secs as i64).saturating_mul(1000),
            max_keys,
        }
    }

    /// A partition's share of `max_keys` when keys are spread by hash over `partitions` partitions (the keyed
    /// topology's detect stage, one pipeline per partition): twice the even share, for an uneven spread, but never
    /// below 1,024 keys (or `max_keys`, if smaller). An instance holding every partition then holds twice the keys
    /// of one pipeline, or `partitions` × 1,024 when that is more, where the full caps in every partition would
    /// let it hold `partitions` times `max_keys`.
    pub fn share(max_keys: usize, partitions: u32) -> usize {
        if partitions <= 1 {
            return max_keys;
        }
        max_keys
            .saturating_mul(2)
            .div_ceil(partitions as usize)
            .max(max_keys.min(1024))
            .min(max_keys)
    }

    /// Most keys held in the pool of keys first seen from events that do not vouch for them: an eighth of
    /// `max_keys`, at least 1.
    pub fn claimed_keys(&self) -> usize {
        (self.max_keys / 8).max(1)
    }
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            ttl_ms: 24 * 3600 * 1000,
            max_keys: 1_000_000,
        }
    }
}

/// `s` when it is at most [`MAX_TEXT_BYTES`] long; else its start (cut on a character boundary), `…` and 32 hex
/// digits of its SHA-256, [`MAX_TEXT_BYTES`] at most in all. Two different strings stay different (a collision
/// needs a SHA-256 collision on 128 bits) and the text stays readable in a reason.
pub fn bounded(s: &str) -> Cow<'_, str> {
    bounded_to(s, MAX_TEXT_BYTES)
}

/// [`bounded`] with another limit (at least 64 bytes).
pub fn bounded_to(s: &str, max: usize) -> Cow<'_, str> {
    let max = max.max(64);
    if s.len() <= max {
        return Cow::Borrowed(s);
    }
    const TAIL: usize = "…".len() + 32;
    let cut = s.floor_char_boundary(max - TAIL);
    let digest = Sha256::digest(s.as_bytes());
    let mut out = String::with_capacity(max);
    out.push_str(&s[..cut]);
    out.push('…');
    out.push_str(&hex::encode(&digest[..16]));
    Cow::Owned(out)
}

/// [`bounded`] as an owned box, for state.
pub fn bounded_box(s: &str) -> Box<str> {
    bounded(s).into()
}

/// 128 bits of the SHA-256 of `s`: for a string that state only compares, never shows. Two strings share a digest
/// only by a SHA-256 collision on 128 bits, which nobody choosing log contents can produce.
pub fn digest(s: &str) -> [u8; 16] {
    let mut d = [0; 16];
    d.copy_from_slice(&Sha256::digest(s.as_bytes())[..16]);
    d
}

/// A bounded memo of digests derived from strings that repeat from event to event (user agents, source names):
/// `memo.get(s, f)` is `f(s)`, computed once while `s` keeps its slot. Direct-mapped, [`DigestMemo::SLOTS`]
/// slots, each keeping one string of at most [`DigestMemo::MAX_BYTES`] (longer ones are computed each time), so it
/// holds at most about 128 KiB; strings that share a slot only evict each other, which costs the work the memo
/// saves and never changes an answer (a hit compares the whole string).
pub struct DigestMemo {
    slots: Vec<Option<(Box<str>, [u8; 16])>>,
    hasher: foldhash::fast::FixedState,
}

impl Default for DigestMemo {
    fn default() -> Self {
        DigestMemo {
            slots: vec![None; Self::SLOTS],
            hasher: foldhash::fast::FixedState::default(),
        }
    }
}

impl DigestMemo {
    pub const SLOTS: usize = 256;
    pub const MAX_BYTES: usize = 512;

    pub fn get(&mut self, s: &str, f: impl FnOnce(&str) -> [u8; 16]) -> [u8; 16] {
        use std::hash::BuildHasher;
        if s.len() > Self::MAX_BYTES {
            return f(s);
        }
        let i = (self.hasher.hash_one(s) as usize) % Self::SLOTS;
        if let Some((k, d)) = &self.slots[i] {
            if **k == *s {
                return *d;
            }
        }
        let d = f(s);
        self.slots[i] = Some((s.into(), d));
        d
    }
}

struct Entry<V> {
    value: V,
    touched: Ts,
}

const VOUCHED: usize = 0;
const CLAIMED: usize = 1;

fn pool(vouched: bool) -> usize {
    if vouched {
        VOUCHED
    } else {
        CLAIMED
    }
}

/// A TTL- and size-bounded map keyed by string, with a pool for vouched keys and a smaller one for claimed keys.
pub struct KeyedState<V> {
    lru: Lru<Entry<V>>,
    ttl_ms: i64,
    /// Key caps of the vouched and the claimed pool.
    caps: [usize; 2],
    evicted: u64,
    /// The pipeline's watermark, once it has one ([`KeyedState::expire`]): keys are then swept by it rather than
    /// by each event's own time.
    horizon: Option<Ts>,
}

impl<V> KeyedState<V> {
    pub fn new(bounds: Bounds) -> Self {
        let vouched = bounds.max_keys.clamp(1, MAX_SLOTS / 2);
        KeyedState {
            lru: Lru::new(),
            ttl_ms: bounds.ttl_ms,
            caps: [vouched, bounds.claimed_keys().min(MAX_SLOTS / 2)],
            evicted: 0,
            horizon: None,
        }
    }

    /// The value for `key`, touched at `now` (its pool unchanged).
    pub fn get_mut(&mut self, key: &str, now: Ts) -> Option<&mut V> {
        self.get_mut_in(key, now, false)
    }

    /// The value for `key`, touched at `now` by an event that does (`vouched`) or does not vouch for the key: a
    /// vouched touch moves a claimed key to the vouched pool.
    pub fn get_mut_in(&mut self, key: &str, now: Ts, vouched: bool) -> Option<&mut V> {
        let i = self.lru.find(StoredKey::of(key).bytes())?;
        Some(self.touch(i, now, vouched))
    }

    /// The value for `key` without touching it.
    pub fn peek(&self, key: &str) -> Option<&V> {
        let i = self.lru.find(StoredKey::of(key).bytes())?;
        Some(&self.lru.value(i).value)
    }

    /// The value for `key`, created with `init` if absent, as for an event that vouches for the key (see
    /// [`KeyedState::entry_in`]).
    pub fn entry(&mut self, key: &str, now: Ts, init: impl FnOnce() -> V) -> &mut V {
        self.entry_in(key, now, true, init)
    }

    /// The value for `key`, touched at `now`, created with `init` if absent. A new key goes to the vouched pool
    /// when the event vouches for it (`vouched`), else to the claimed pool; a full pool first evicts its least
    /// recently touched key. A vouched touch moves a claimed key to the vouched pool. Idle keys are swept first.
    pub fn entry_in(
        &mut self,
        key: &str,
        now: Ts,
        vouched: bool,
        init: impl FnOnce() -> V,
    ) -> &mut V {
        self.evict(self.horizon.map_or(now, |h| h.min(now)));
        let key = StoredKey::of(key);
        let i = match self.lru.find(key.bytes()) {
            Some(i) => i,
            None => {
                let p = pool(vouched);
                self.make_room(p);
                let e = Entry {
                    value: init(),
                    touched: now,
                };
                self.lru.insert(key.bytes(), p, e)
            }
        };
        self.touch(i, now, vouched)
    }

    fn touch(&mut self, i: u32, now: Ts, vouched: bool) -> &mut V {
        if vouched && self.lru.list_of(i) == CLAIMED {
            self.make_room(VOUCHED);
            self.lru.touch(i, VOUCHED);
        } else {
            let list = self.lru.list_of(i);
            self.lru.touch(i, list);
        }
        let e = self.lru.value_mut(i);
        e.touched = e.touched.max(now);
        &mut e.value
    }

    /// Evict the least recently touched key of `pool` when it is full.
    fn make_room(&mut self, pool: usize) {
        while self.lru.len(pool) >= self.caps[pool] {
            let Some(t) = self.lru.tail(pool) else {
                return;
            };
            self.lru.remove(t);
            self.evicted += 1;
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<V> {
        let i = self.lru.find(StoredKey::of(key).bytes())?;
        self.lru.remove(i).map(|e| e.value)
    }

    /// Drop the keys idle since before `now - ttl`, from the least recent end of each pool (amortised O(1): each
    /// key is dropped once; see the module doc for out-of-order event times).
    pub fn evict(&mut self, now: Ts) {
        let cutoff = now.0.saturating_sub(self.ttl_ms);
        for p in [VOUCHED, CLAIMED] {
            while let Some(t) = self.lru.tail(p) {
                if self.lru.value(t).touched.0 >= cutoff {
                    break;
                }
                self.lru.remove(t);
                self.evicted += 1;
            }
        }
    }

    /// Sweep by the watermark (see [`crate::watermark`]): from now on, keys idle since before `watermark - ttl`
    /// go, whatever the time of the event being processed, so the events of a source delivering behind the
    /// others find the state their place in event time would have found.
    pub fn expire(&mut self, watermark: Ts) {
        let h = self.horizon.map_or(watermark, |h| h.max(watermark));
        self.horizon = Some(h);
        self.evict(h);
    }

    pub fn len(&self) -> usize {
        self.lru.len(VOUCHED) + self.lru.len(CLAIMED)
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Keys held in the vouched (`true`) or the claimed pool.
    pub fn len_in(&self, vouched: bool) -> usize {
        self.lru.len(pool(vouched))
    }
    /// Keys evicted so far (TTL or size).
    pub fn evicted(&self) -> u64 {
        self.evicted
    }
}

/// What a [`KeyedState`] saves: its entries, least recently touched first per pool, so that re-inserting them in
/// order rebuilds both recency lists. Each entry is (key, flags, last touch in ms, value): flag 1 is the claimed
/// pool, flag 2 a key stored as its digest (the key field is then the digest in hex).
#[derive(Deserialize, Default)]
pub struct SavedKeys<V> {
    evicted: u64,
    entries: Vec<(String, u8, i64, V)>,
}

impl<V: Serialize> Serialize for KeyedState<V> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        struct Entries<'a, V>(&'a KeyedState<V>);
        impl<V: Serialize> Serialize for Entries<'_, V> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let lru = &self.0.lru;
                s.collect_seq([VOUCHED, CLAIMED].into_iter().flat_map(|p| {
                    lru.oldest_first(p).map(move |i| {
                        let key: &[u8] = lru.key(i);
                        let e = lru.value(i);
                        let (key, hashed) = match key.first() {
                            Some(0xFF) => (hex::encode(&key[1..]), 2u8),
                            _ => (String::from_utf8_lossy(key).into_owned(), 0),
                        };
                        (key, p as u8 | hashed, e.touched.0, &e.value)
                    })
                }))
            }
        }
        let mut st = s.serialize_struct("KeyedState", 2)?;
        st.serialize_field("evicted", &self.evicted)?;
        st.serialize_field("entries", &Entries(self))?;
        st.end()
    }
}

impl<V> KeyedState<V> {
    /// Replace the contents with what [`KeyedState`]'s `Serialize` saved, keeping this map's own bounds (from
    /// the current config): when they are smaller than the saved map, the least recently touched keys go.
    pub fn restore(&mut self, saved: SavedKeys<V>) -> Result<(), String> {
        self.lru = Lru::new();
        self.evicted = saved.evicted;
        for (key, flags, touched, value) in saved.entries {
            let p = usize::from(flags & 1 == 1);
            let stored = if flags & 2 == 2 {
                let d = hex::decode(&key).map_err(|e| format!("saved key digest {key:?}: {e}"))?;
                if d.len() != 32 {
                    return Err(format!("saved key digest {key:?}: not 32 bytes"));
                }
                let mut b = vec![0xFF];
                b.extend_from_slice(&d);
                b
            } else {
                key.into_bytes()
            };
            if self.lru.find(&stored).is_some() {
                return Err("a saved key appears twice".into());
            }
            self.make_room(p);
            self.lru.insert(
                &stored,
                p,
                Entry {
                    value,
                    touched: Ts(touched),
                },
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_partitions_share_of_a_key_cap_is_twice_the_even_share_within_its_floor() {
        assert_eq!(Bounds::share(1_000_000, 1), 1_000_000);
        assert_eq!(Bounds::share(1_000_000, 0), 1_000_000);
        assert_eq!(Bounds::share(1_000_000, 8), 250_000);
        assert_eq!(Bounds::share(1_000_000, 3), 666_667);
        assert_eq!(Bounds::share(10_000, 100), 1_024, "never below 1,024");
        assert_eq!(Bounds::share(64, 8), 64, "nor above the cap itself");
        assert_eq!(Bounds::share(1_000_000, 2), 1_000_000);
        assert_eq!(
            Bounds::share(usize::MAX, 4),
            usize::MAX / 4 + 1,
            "saturates, no overflow"
        );
    }
    use super::*;

    /// Saved and restored, a map keeps its keys (long ones as digests), their pools, last touches and recency
    /// order; restored under a smaller cap, the least recently touched go first.
    #[test]
    fn a_saved_map_restores_with_its_pools_recency_and_digested_keys() {
        let b = Bounds {
            ttl_ms: 1_000_000,
            max_keys: 16,
        };
        let mut s = KeyedState::new(b);
        let long = "k".repeat(MAX_KEY_BYTES + 10);
        *s.entry("a", Ts(1), || 0) += 1;
        *s.entry_in("claimed", Ts(2), false, || 0) += 5;
        *s.entry(&long, Ts(3), || 0) += 7;
        *s.entry("b", Ts(4), || 0) += 2;
        *s.entry("a", Ts(5), || 0) += 1; // "a" is now the most recent
        let json = serde_json::to_string(&s).unwrap();
        let mut r: KeyedState<i32> = KeyedState::new(b);
        r.restore(serde_json::from_str(&json).unwrap()).unwrap();
        assert_eq!(serde_json::to_string(&r).unwrap(), json);
        assert_eq!(
            (r.peek("a"), r.peek(&long), r.peek("claimed")),
            (Some(&2), Some(&7), Some(&5))
        );
        assert_eq!((r.len_in(true), r.len_in(false)), (3, 1));
        // under a cap of 2, the least recent vouched key goes ("long", touched before "b" and "a")
        let mut small: KeyedState<i32> = KeyedState::new(Bounds {
            ttl_ms: 1_000_000,
            max_keys: 2,
        });
        small.restore(serde_json::from_str(&json).unwrap()).unwrap();
        assert_eq!(
            (small.peek(&long), small.peek("b"), small.peek("a")),
            (None, Some(&2), Some(&2))
        );
        // a recent set keeps its order and cap
        let mut set = RecentSet::new(20);
        for i in 0..18 {
            set.see(&format!("d{i}"));
        }
        set.see("d0");
        let back: RecentSet = serde_json::from_str(&serde_json::to_string(&set).unwrap()).unwrap();
        assert_eq!(
            back.iter().collect::<Vec<_>>(),
            set.iter().collect::<Vec<_>>()
        );
    }

    #[test]
    fn idle_keys_expire_by_event_time_and_the_cap_evicts_the_stalest() {
        let mut s = KeyedState::new(Bounds {
            ttl_ms: 1000,
            max_keys: 2,
        });
        *s.entry("a", Ts(0), || 0) += 1;
        *s.entry("b", Ts(500), || 0) += 1;
        *s.entry("c", Ts(600), || 0) += 1; // full: "a" (touched at 0) goes
        assert!(s.peek("a").is_none());
        assert_eq!((s.len(), s.evicted()), (2, 1));
        s.evict(Ts(1550)); // "b" idle 1050 ms > ttl
        assert!(s.peek("b").is_none());
        assert_eq!(s.peek("c"), Some(&1));
    }

    #[test]
    fn idle_keys_are_swept_as_event_time_advances_without_an_explicit_evict() {
        let mut s = KeyedState::new(Bounds {
            ttl_ms: 60_000,
            max_keys: 100,
        });
        *s.entry("old", Ts(0), || 0) += 1;
        *s.entry("new", Ts(120_000), || 0) += 1;
        assert!(s.peek("old").is_none());
        assert_eq!((s.len(), s.evicted()), (1, 1));
    }

    #[test]
    fn at_the_cap_the_least_recently_touched_key_goes_not_the_first_inserted() {
        let mut s = KeyedState::new(Bounds {
            ttl_ms: 1_000_000,
            max_keys: 3,
        });
        for (i, k) in ["a", "b", "c"].into_iter().enumerate() {
            s.entry(k, Ts(i as i64), || 0);
        }
        *s.get_mut("a", Ts(10)).unwrap() += 1; // "b" is now the stalest
        s.entry("d", Ts(11), || 0);
        assert!(s.peek("b").is_none());
        assert_eq!(s.peek("a"), Some(&1));
        s.entry("e", Ts(12), || 0); // then "c"
        assert!(s.peek("c").is_none());
        assert!(s.peek("a").is_some() && s.peek("d").is_some() && s.peek("e").is_some());
        assert_eq!((s.len(), s.evicted()), (3, 2));
        assert_eq!(s.remove("d"), Some(0));
        assert_eq!(s.len(), 2);
        s.entry("f", Ts(13), || 7); // reuses the freed slot
        assert_eq!(s.peek("f"), Some(&7));
    }

    #[test]
    fn a_flood_of_claimed_keys_does_not_evict_a_vouched_key() {
        let mut s = KeyedState::new(Bounds {
            ttl_ms: 86_400_000,
            max_keys: 80,
        });
        *s.entry_in("alice-token", Ts(0), true, || 0) += 1;
        for i in 0..10_000 {
            s.entry_in(&format!("forged-{i}"), Ts(1 + i), false, || 0);
        }
        assert_eq!(s.peek("alice-token"), Some(&1));
        assert_eq!((s.len_in(true), s.len_in(false)), (1, 10));
        assert!(s.peek("forged-9999").is_some() && s.peek("forged-0").is_none());
    }

    #[test]
    fn a_claimed_key_touched_by_a_vouched_event_moves_to_the_vouched_pool() {
        let mut s = KeyedState::new(Bounds {
            ttl_ms: 86_400_000,
            max_keys: 8,
        });
        *s.entry_in("tok", Ts(0), false, || 0) += 1;
        assert_eq!((s.len_in(true), s.len_in(false)), (0, 1));
        *s.entry_in("tok", Ts(1), true, || 0) += 1;
        assert_eq!((s.len_in(true), s.len_in(false)), (1, 0));
        s.entry_in("other", Ts(2), false, || 0); // the claimed pool (cap 1) has room again
        assert_eq!(s.peek("tok"), Some(&2));
        *s.get_mut_in("other", Ts(3), true).unwrap() += 5;
        assert_eq!((s.len_in(true), s.len_in(false)), (2, 0));
        // a claimed touch never demotes
        s.entry_in("tok", Ts(4), false, || 0);
        assert_eq!(s.len_in(true), 2);
    }

    #[test]
    fn a_40_kb_key_is_stored_as_a_digest() {
        let mut s = KeyedState::new(Bounds::default());
        let long = "k".repeat(40_000);
        let other = format!("{}x", &long[1..]);
        *s.entry(&long, Ts(0), || 0) += 1;
        *s.entry(&other, Ts(0), || 0) += 10;
        assert_eq!((s.peek(&long), s.peek(&other)), (Some(&1), Some(&10)));
        let stored: usize = s.lru.slots.iter().map(|x| x.key.len()).sum();
        assert_eq!(stored, 2 * 33, "each long key costs 33 bytes");
        assert!(s
            .lru
            .slots
            .iter()
            .all(|x| matches!(x.key, KeyBuf::Inline(..))));
        assert_eq!(s.remove(&long), Some(1));
        assert!(s.peek(&long).is_none());
    }

    #[test]
    fn keys_touched_by_late_events_stay_until_they_reach_the_end_of_the_list() {
        let mut s = KeyedState::new(Bounds {
            ttl_ms: 1000,
            max_keys: 10,
        });
        s.entry("a", Ts(5000), || 0);
        s.entry("late", Ts(100), || 0); // processed after "a", older event time
        s.evict(Ts(5500)); // "a" is fresh and stops the sweep
        assert!(s.peek("late").is_some());
        s.evict(Ts(7000));
        assert!(s.is_empty());
    }

    #[test]
    fn long_strings_are_cut_readably_and_stay_distinct() {
        let ua = "Mozilla/5.0 ".repeat(4000);
        let other = format!("{ua}!");
        let (a, b) = (bounded(&ua), bounded(&other));
        assert!(a.len() <= MAX_TEXT_BYTES && b.len() <= MAX_TEXT_BYTES);
        assert!(a.starts_with("Mozilla/5.0 Mozilla") && a.contains('…'));
        assert_ne!(a, b);
        assert_eq!(bounded("short"), "short");
        let wide = "é".repeat(300); // two bytes a char: the cut lands on a boundary
        assert!(bounded(&wide).len() <= MAX_TEXT_BYTES);
    }

    #[test]
    fn a_recent_set_at_its_cap_evicts_the_least_recently_seen_and_still_answers_membership() {
        let mut s = RecentSet::new(3);
        assert!(s.see("a") && s.see("b") && s.see("c"));
        assert!(!s.see("a")); // seen again: "b" is now the oldest
        assert!(s.see("d"));
        assert!(!s.contains("b"));
        assert!(s.contains("a") && s.contains("c") && s.contains("d"));
        assert_eq!((s.len(), s.forgotten()), (3, 1));
        assert_eq!(s.iter().collect::<Vec<_>>(), ["d", "a", "c"]);
        for i in 0..32_000 {
            s.see(&format!("dest-{i}"));
        }
        assert_eq!(s.len(), 3);
        assert!(s.contains("dest-31999") && !s.contains("dest-0"));
        assert_eq!(s.summary(2), "dest-31999, dest-31998 … and 1 more");
        assert_eq!(RecentSet::new(4).summary(2), "none");
    }

    #[test]
    fn a_recent_set_past_the_small_size_is_indexed_and_keeps_its_order() {
        let mut s = RecentSet::new(64);
        for i in 0..SMALL {
            s.see(&format!("d{i}"));
        }
        assert!(!s.see("d0")); // d0 is now the most recent, d1 the oldest
        assert!(s.see("d-new")); // the 17th: indexed from here
        assert!(matches!(s.items, Items::Large(_)));
        assert_eq!(s.iter().take(3).collect::<Vec<_>>(), ["d-new", "d0", "d15"]);
        for i in 0..1000 {
            s.see(&format!("x{i}"));
        }
        assert_eq!((s.len(), s.forgotten()), (64, 1000 + SMALL as u64 + 1 - 64));
        assert!(
            s.contains("x999") && s.contains("x936") && !s.contains("x935") && !s.contains("d0")
        );
    }

    /// The memo answers what computing answers, whatever strings share its slots.
    #[test]
    fn the_digest_memo_answers_as_computing_does() {
        let mut memo = DigestMemo::default();
        let mut computed = 0;
        let keys: Vec<String> = (0..2000)
            .map(|i| format!("ua-{}", i % 700))
            .chain(std::iter::once("x".repeat(DigestMemo::MAX_BYTES + 1)))
            .collect();
        for k in &keys {
            let got = memo.get(k, |s| {
                computed += 1;
                digest(s)
            });
            assert_eq!(got, digest(k), "{k}");
        }
        // repeats were answered from the memo (700 distinct strings over 256 slots: some, not all)
        assert!(computed < keys.len(), "{computed}");
        let d = memo.get("ua-1", digest);
        assert_eq!(memo.get("ua-1", |_| unreachable!("a hit")), d);
    }
}
