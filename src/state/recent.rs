//! Per-key sets of strings with a cap (destinations, domains, clients), least recently seen first out.
//!
//! In: strings seen. Out: whether a string is known, the strings in recency order. State: up to the cap of
//! [`bounded`] strings, in a vector while few, else in an [`Lru`].

use super::*;

/// What a [`RecentSet`] saves: its cap, how many it forgot, and its strings least recently seen first.
#[derive(Serialize, Deserialize)]
struct SavedSet {
    cap: usize,
    forgotten: u64,
    items: Vec<String>,
}

impl Serialize for RecentSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut items: Vec<String> = self.iter().map(String::from).collect();
        items.reverse();
        SavedSet {
            cap: self.cap,
            forgotten: self.forgotten,
            items,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for RecentSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let saved = SavedSet::deserialize(d)?;
        let mut set = RecentSet::new(saved.cap);
        for s in &saved.items {
            set.see(s);
        }
        set.forgotten = saved.forgotten;
        Ok(set)
    }
}

/// A per-key set of strings (destinations, domains, clients) with a cap: at the cap the least recently seen string
/// makes room. Strings are kept [`bounded`]. Up to [`SMALL`] strings are a vector searched linearly (smaller and
/// faster than an index for the usual few); past that, an indexed recency list: membership, touching and
/// evicting in O(1).
pub struct RecentSet {
    pub(super) items: Items,
    cap: usize,
    forgotten: u64,
}

/// Most strings a [`RecentSet`] keeps in a plain vector.
pub const SMALL: usize = 16;

pub(super) enum Items {
    /// Least recently seen first.
    Small(Vec<Box<str>>),
    Large(Box<Lru<()>>),
}

impl RecentSet {
    /// An empty set of at most `cap` strings (at least 1). Allocates nothing until the first string.
    pub fn new(cap: usize) -> Self {
        RecentSet {
            items: Items::Small(Vec::new()),
            cap: cap.clamp(1, MAX_SLOTS),
            forgotten: 0,
        }
    }

    pub fn contains(&self, s: &str) -> bool {
        let s = bounded(s);
        match &self.items {
            Items::Small(v) => v.iter().any(|x| **x == *s),
            Items::Large(l) => l.find(s.as_bytes()).is_some(),
        }
    }

    /// Note `s` as seen now; true when it was not in the set.
    pub fn see(&mut self, s: &str) -> bool {
        let s = bounded(s);
        match &mut self.items {
            Items::Small(v) => {
                if let Some(p) = v.iter().position(|x| **x == *s) {
                    let x = v.remove(p);
                    v.push(x);
                    return false;
                }
                if v.len() < SMALL || self.cap <= SMALL {
                    if v.len() >= self.cap {
                        v.remove(0);
                        self.forgotten += 1;
                    }
                    v.push(Box::from(&*s));
                    return true;
                }
                // past the small size: index them, least recently seen inserted first
                let mut l = Lru::new();
                for x in v.drain(..) {
                    l.insert(x.as_bytes(), 0, ());
                }
                self.items = Items::Large(Box::new(l));
                self.see(&s)
            }
            Items::Large(l) => {
                if let Some(i) = l.find(s.as_bytes()) {
                    l.touch(i, 0);
                    return false;
                }
                while l.len(0) >= self.cap {
                    let Some(t) = l.tail(0) else { break };
                    l.remove(t);
                    self.forgotten += 1;
                }
                l.insert(s.as_bytes(), 0, ());
                true
            }
        }
    }

    pub fn len(&self) -> usize {
        match &self.items {
            Items::Small(v) => v.len(),
            Items::Large(l) => l.len(0),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Strings dropped at the cap so far.
    pub fn forgotten(&self) -> u64 {
        self.forgotten
    }

    /// The strings, most recently seen first.
    pub fn iter(&self) -> Box<dyn Iterator<Item = &str> + '_> {
        match &self.items {
            Items::Small(v) => Box::new(v.iter().rev().map(|x| &**x)),
            Items::Large(l) => Box::new(l.keys(0).filter_map(|k| std::str::from_utf8(k).ok())),
        }
    }

    /// For a reason: at most `max` strings, most recent first, joined with ", ", then "… and N more" for the
    /// rest; `none` when empty.
    pub fn summary(&self, max: usize) -> String {
        if self.is_empty() {
            return "none".into();
        }
        let mut out = self.iter().take(max).collect::<Vec<_>>().join(", ");
        let rest = self.len().saturating_sub(max);
        if rest > 0 {
            out.push_str(&format!(" … and {rest} more"));
        }
        out
    }
}
