//! The recency list under [`super::KeyedState`] and [`super::RecentSet`]: keys in a slab of slots threaded on
//! per-pool doubly linked lists, with a hash index from key to slot.
//!
//! In: keys (bytes; long ones as a SHA-256 digest), pools, values. Out: the value of a key, the least recently
//! touched slot of a pool, slots in recency order. State: the slots (chunks of 4,096, never copied), the lists' ends
//! and lengths, the free slots, and the index.

use super::*;

/// A key as stored: its bytes, or for a key over [`MAX_KEY_BYTES`] the byte 0xFF and its SHA-256. 0xFF never
/// occurs in UTF-8, so a digest cannot equal a short key, and SHA-256 keeps long keys from colliding even when
/// whoever writes the logs chooses them.
pub(super) enum StoredKey<'a> {
    Plain(&'a [u8]),
    Hashed([u8; 33]),
}

impl StoredKey<'_> {
    pub(super) fn of(key: &str) -> StoredKey<'_> {
        if key.len() <= MAX_KEY_BYTES {
            return StoredKey::Plain(key.as_bytes());
        }
        let mut b = [0xFF; 33];
        b[1..].copy_from_slice(&Sha256::digest(key.as_bytes()));
        StoredKey::Hashed(b)
    }
    pub(super) fn bytes(&self) -> &[u8] {
        match self {
            StoredKey::Plain(b) => b,
            StoredKey::Hashed(b) => b,
        }
    }
}

/// The list bit of [`Slot::prev`].
const LIST_BIT: u32 = 1 << 31;
/// No slot.
const NIL: u32 = LIST_BIT - 1;
/// Most slots one [`Lru`] may have (slot numbers are below `NIL`).
pub(super) const MAX_SLOTS: usize = NIL as usize;

/// Keys up to this many bytes are stored in the slot itself (a token id, an e-mail address, `token:` and a UUID);
/// longer ones on the heap.
const INLINE: usize = 46;

/// A key's bytes: in place when short, saving an allocation (and a cache miss when the key is evicted).
pub(super) enum KeyBuf {
    Inline(u8, [u8; INLINE]),
    Heap(Box<[u8]>),
}

impl KeyBuf {
    pub(super) fn new(key: &[u8]) -> KeyBuf {
        if key.len() <= INLINE {
            let mut b = [0; INLINE];
            b[..key.len()].copy_from_slice(key);
            KeyBuf::Inline(key.len() as u8, b)
        } else {
            KeyBuf::Heap(Box::from(key))
        }
    }
    const EMPTY: KeyBuf = KeyBuf::Inline(0, [0; INLINE]);
}

impl std::ops::Deref for KeyBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            KeyBuf::Inline(n, b) => &b[..*n as usize],
            KeyBuf::Heap(b) => b,
        }
    }
}

pub(super) struct Slot<V> {
    pub(super) key: KeyBuf,
    /// Towards the more recent end of the slot's list (or `NIL`); the top bit says which list.
    pub(super) prev: u32,
    /// Towards the less recent end (or `NIL`); for a free slot, the next free slot.
    pub(super) next: u32,
    /// `None` only for a free slot.
    pub(super) value: Option<V>,
}

impl<V> Slot<V> {
    pub(super) fn prev(&self) -> u32 {
        self.prev & !LIST_BIT
    }
    pub(super) fn list(&self) -> usize {
        (self.prev >> 31) as usize
    }
    pub(super) fn set_prev(&mut self, p: u32) {
        self.prev = (self.prev & LIST_BIT) | p;
    }
}

/// Slots in chunks of `CHUNK`: growing never copies the slots nor leaves more than one chunk unused (a `Vec` that
/// doubles may leave half its capacity unused). The first chunk grows as a `Vec` does, so a small set stays small.
pub(super) struct Slab<T> {
    chunks: Vec<Vec<T>>,
    len: usize,
}

const CHUNK_BITS: u32 = 12;
const CHUNK: usize = 1 << CHUNK_BITS;

impl<T> Slab<T> {
    pub(super) fn new() -> Self {
        Slab {
            chunks: Vec::new(),
            len: 0,
        }
    }
    pub(super) fn push(&mut self, t: T) -> u32 {
        match self.chunks.last_mut() {
            Some(c) if c.len() < CHUNK => c.push(t),
            _ => {
                let mut c = Vec::with_capacity(if self.chunks.is_empty() { 1 } else { CHUNK });
                c.push(t);
                self.chunks.push(c);
            }
        }
        self.len += 1;
        (self.len - 1) as u32
    }
    pub(super) fn get(&self, i: u32) -> Option<&T> {
        self.chunks
            .get((i >> CHUNK_BITS) as usize)?
            .get(i as usize & (CHUNK - 1))
    }
    #[cfg(test)]
    pub(super) fn iter(&self) -> impl Iterator<Item = &T> {
        self.chunks.iter().flatten()
    }
}

impl<T> std::ops::Index<u32> for Slab<T> {
    type Output = T;
    fn index(&self, i: u32) -> &T {
        &self.chunks[(i >> CHUNK_BITS) as usize][i as usize & (CHUNK - 1)]
    }
}

impl<T> std::ops::IndexMut<u32> for Slab<T> {
    fn index_mut(&mut self, i: u32) -> &mut T {
        &mut self.chunks[(i >> CHUNK_BITS) as usize][i as usize & (CHUNK - 1)]
    }
}

#[derive(Clone, Copy)]
struct List {
    /// Most recently touched.
    head: u32,
    /// Least recently touched.
    tail: u32,
    len: usize,
}

const EMPTY: List = List {
    head: NIL,
    tail: NIL,
    len: 0,
};

/// Keys (as bytes) to values in a slab of slots, each slot on one of two recency lists, with a hash index from key
/// to slot: the O(1) core of [`KeyedState`] and [`RecentSet`]. It enforces no bound itself.
pub(super) struct Lru<V> {
    pub(super) slots: Slab<Slot<V>>,
    /// First free slot, the rest threaded through `next`.
    free: u32,
    index: HashTable<u32>,
    // foldhash with a per-process random seed: fast, and keys chosen by whoever writes the logs cannot be crafted
    // to collide in the index
    hasher: foldhash::fast::RandomState,
    lists: [List; 2],
}

impl<V> Lru<V> {
    pub(super) fn new() -> Self {
        Lru {
            slots: Slab::new(),
            free: NIL,
            index: HashTable::new(),
            hasher: foldhash::fast::RandomState::default(),
            lists: [EMPTY; 2],
        }
    }

    pub(super) fn find(&self, key: &[u8]) -> Option<u32> {
        let h = self.hasher.hash_one(key);
        self.index.find(h, |&i| *self.slots[i].key == *key).copied()
    }

    /// The stored key of slot `i` (a long key's 0xFF and digest).
    pub(super) fn key(&self, i: u32) -> &[u8] {
        &self.slots[i].key
    }

    pub(super) fn value(&self, i: u32) -> &V {
        match &self.slots[i].value {
            Some(v) => v,
            None => unreachable!("a linked slot holds a value"),
        }
    }

    pub(super) fn value_mut(&mut self, i: u32) -> &mut V {
        match &mut self.slots[i].value {
            Some(v) => v,
            None => unreachable!("a linked slot holds a value"),
        }
    }

    pub(super) fn list_of(&self, i: u32) -> usize {
        self.slots[i].list()
    }

    pub(super) fn len(&self, list: usize) -> usize {
        self.lists[list].len
    }

    /// The least recently touched slot of `list`.
    pub(super) fn tail(&self, list: usize) -> Option<u32> {
        Some(self.lists[list].tail).filter(|&t| t != NIL)
    }

    pub(super) fn unlink(&mut self, i: u32) {
        let (prev, next, list) = {
            let s = &self.slots[i];
            (s.prev(), s.next, s.list())
        };
        match prev {
            NIL => self.lists[list].head = next,
            p => self.slots[p].next = next,
        }
        match next {
            NIL => self.lists[list].tail = prev,
            n => self.slots[n].set_prev(prev),
        }
        self.lists[list].len -= 1;
    }

    pub(super) fn push_front(&mut self, i: u32, list: usize) {
        let head = self.lists[list].head;
        {
            let s = &mut self.slots[i];
            s.prev = NIL | if list == 0 { 0 } else { LIST_BIT };
            s.next = head;
        }
        match head {
            NIL => self.lists[list].tail = i,
            h => self.slots[h].set_prev(i),
        }
        self.lists[list].head = i;
        self.lists[list].len += 1;
    }

    /// Make `i` the most recent of `list` (its own list or the other).
    pub(super) fn touch(&mut self, i: u32, list: usize) {
        if self.list_of(i) == list && self.lists[list].head == i {
            return;
        }
        self.unlink(i);
        self.push_front(i, list);
    }

    /// Add a key known to be absent, as the most recent of `list`.
    pub(super) fn insert(&mut self, key: &[u8], list: usize, value: V) -> u32 {
        let slot = Slot {
            key: KeyBuf::new(key),
            prev: NIL,
            next: NIL,
            value: Some(value),
        };
        let i = match self.free {
            NIL => self.slots.push(slot),
            f => {
                self.free = self.slots[f].next;
                self.slots[f] = slot;
                f
            }
        };
        let h = self.hasher.hash_one(key);
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.index
            .insert_unique(h, i, |&j| hasher.hash_one(&*slots[j].key));
        self.push_front(i, list);
        i
    }

    pub(super) fn remove(&mut self, i: u32) -> Option<V> {
        let h = self.hasher.hash_one(&*self.slots[i].key);
        if let Ok(e) = self.index.find_entry(h, |&j| j == i) {
            e.remove();
        }
        self.unlink(i);
        let free = self.free;
        let s = &mut self.slots[i];
        s.key = KeyBuf::EMPTY;
        s.next = free;
        self.free = i;
        s.value.take()
    }

    /// The slots of `list`, least recently touched first (the order that rebuilds the list when re-inserted).
    pub(super) fn oldest_first(&self, list: usize) -> impl Iterator<Item = u32> + '_ {
        let mut at = self.lists[list].tail;
        std::iter::from_fn(move || {
            if at == NIL {
                return None;
            }
            let i = at;
            at = self.slots.get(i)?.prev();
            Some(i)
        })
    }

    /// The keys of `list`, most recent first.
    pub(super) fn keys(&self, list: usize) -> impl Iterator<Item = &[u8]> {
        let mut at = self.lists[list].head;
        std::iter::from_fn(move || {
            if at == NIL {
                return None;
            }
            let s = self.slots.get(at)?;
            at = s.next;
            Some(&*s.key)
        })
    }
}
