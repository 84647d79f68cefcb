//! Bounded keyed state shared by the correlate and detect stages.
//!
//! In: keys and event times. Out: per-key values. State: a hash map from key to (value, last event time),
//! bounded two ways: entries idle for longer than the TTL (in event time) are swept out as event time advances
//! (at most every TTL/16, so the cost is amortised), and when the map is full the least recently touched entry makes
//! room for a new key.
//! Owned by one pipeline instance (no lock); keys are principals, sessions, tokens or jobs, so instances can be
//! partitioned by principal.

use crate::event::Ts;
use std::collections::HashMap;
use std::sync::Arc;

/// Limits for one keyed map.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    /// Idle time after which a key is forgotten, in event-time milliseconds.
    pub ttl_ms: i64,
    /// Most keys held at once.
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
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            ttl_ms: 24 * 3600 * 1000,
            max_keys: 1_000_000,
        }
    }
}

struct Entry<V> {
    value: V,
    touched: Ts,
}

/// A TTL- and size-bounded map keyed by string.
pub struct KeyedState<V> {
    // foldhash with a per-process random seed: fast, and keys chosen by whoever writes the logs cannot be
    // crafted to collide
    map: HashMap<Arc<str>, Entry<V>, foldhash::fast::RandomState>,
    bounds: Bounds,
    evicted: u64,
    last_sweep: Ts,
}

impl<V> KeyedState<V> {
    pub fn new(bounds: Bounds) -> Self {
        KeyedState {
            map: HashMap::default(),
            bounds,
            evicted: 0,
            last_sweep: Ts(i64::MIN),
        }
    }

    /// The value for `key`, touched at `now`.
    pub fn get_mut(&mut self, key: &str, now: Ts) -> Option<&mut V> {
        let e = self.map.get_mut(key)?;
        e.touched = e.touched.max(now);
        Some(&mut e.value)
    }

    /// The value for `key` without touching it.
    pub fn peek(&self, key: &str) -> Option<&V> {
        self.map.get(key).map(|e| &e.value)
    }

    /// The value for `key`, created with `init` if absent (evicting the stalest key when full).
    pub fn entry(&mut self, key: &str, now: Ts, init: impl FnOnce() -> V) -> &mut V {
        if now.0.saturating_sub(self.last_sweep.0) > (self.bounds.ttl_ms / 16).max(1000) {
            self.evict(now);
        }
        if !self.map.contains_key(key) {
            if self.map.len() >= self.bounds.max_keys {
                self.evict_stalest();
            }
            self.map.insert(
                Arc::from(key),
                Entry {
                    value: init(),
                    touched: now,
                },
            );
        }
        let e = self.map.get_mut(key).map(|e| {
            e.touched = e.touched.max(now);
            &mut e.value
        });
        match e {
            Some(v) => v,
            None => unreachable!("inserted above"),
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<V> {
        self.map.remove(key).map(|e| e.value)
    }

    /// Drop every key idle since before `now - ttl`.
    pub fn evict(&mut self, now: Ts) {
        let cutoff = now.0.saturating_sub(self.bounds.ttl_ms);
        let before = self.map.len();
        self.map.retain(|_, e| e.touched.0 >= cutoff);
        self.evicted += (before - self.map.len()) as u64;
        self.last_sweep = now;
    }

    fn evict_stalest(&mut self) {
        if let Some(k) = self
            .map
            .iter()
            .min_by_key(|(_, e)| e.touched)
            .map(|(k, _)| k.clone())
        {
            self.map.remove(&k);
            self.evicted += 1;
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
    /// Keys evicted so far (TTL or size).
    pub fn evicted(&self) -> u64 {
        self.evicted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
