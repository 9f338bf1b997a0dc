//! The keyed state table: what every stateful operator keeps, by key.
//!
//! ```text
//!   key (Arrow row bytes) ──▶ index (hash → slot id) ──▶ slot: key, value, flags, bytes
//!                                                          │
//!        value_mut / insert ── mark ─▶ touched (this epoch) ┴─▶ changed (since last checkpoint)
//!        remove ─────────────────────▶ deleted keys (when a checkpoint has them)
//!   barrier:    settle()       — re-measure touched slots, report bytes to the meter,
//!                                 stamp access time, expire by TTL
//!   checkpoint: take_changes() — upserted and deleted keys since the last one
//! ```
//!
//! Slots are addressed by a dense [`SlotId`] so an operator can keep its
//! own indexes (a window bound → slots, a time → slots) without copying
//! keys; ids of removed slots are reused. Each key is stored once, in its
//! slot; the index holds ids only.
//!
//! Change tracking costs one flag test per mutation and one push per key
//! per epoch, so operators can call [`StateTable::value_mut`] in their
//! per-row loops. Memory is measured lazily: a value's bytes are computed
//! when the epoch's barrier settles the table, for the keys touched in it,
//! never by walking the whole table.

use std::collections::VecDeque;
use std::hash::BuildHasher;

use hashbrown::HashTable;

use crate::stream::state::meter::Meter;

/// A slot's address, stable while the key is in the table.
pub type SlotId = u32;

/// What a value tells the accounting about itself.
pub trait StateValue {
    /// Bytes the value owns on the heap, beyond its own size (an estimate
    /// that tracks real growth: buffer lengths plus per-entry overheads).
    fn heap_bytes(&self) -> usize;
}

macro_rules! flat_state {
    ($($t:ty),*) => {
        $(impl StateValue for $t {
            fn heap_bytes(&self) -> usize {
                0
            }
        })*
    };
}
flat_state!(i64, u64, u32, usize, ());

/// Per-entry overhead of a std or hashbrown map (control byte, hash,
/// padding), in the estimate of [`StateValue::heap_bytes`].
pub const MAP_ENTRY_OVERHEAD: usize = 16;

/// A multiset of encoded rows (row bytes → count).
impl<S> StateValue for std::collections::HashMap<Box<[u8]>, i64, S> {
    fn heap_bytes(&self) -> usize {
        self.iter().map(|(k, _)| k.len()).sum::<usize>()
            + self.capacity() * (std::mem::size_of::<(Box<[u8]>, i64)>() + 1)
    }
}

const CHANGED: u8 = 1;
const TOUCHED: u8 = 2;
const PERSISTED: u8 = 4;

struct Slot<V> {
    key: Box<[u8]>,
    value: V,
    /// The bytes this slot is counted for in the meter.
    bytes: usize,
    flags: u8,
    /// The epoch time (µs) it was last written or read for update, when
    /// the table has a TTL.
    accessed: i64,
}

/// Changes since the previous [`StateTable::take_changes`]: what a
/// checkpoint writes as a delta.
pub struct Changes<'a, V> {
    /// Keys gone (apply first: a key may be deleted and inserted again).
    pub deleted: Vec<Box<[u8]>>,
    /// Keys with their current values.
    pub upserted: Vec<(&'a [u8], &'a V)>,
}

/// Keyed state of one operator.
pub struct StateTable<V> {
    name: &'static str,
    hasher: foldhash::fast::RandomState,
    index: HashTable<SlotId>,
    slots: Vec<Option<Slot<V>>>,
    free: Vec<SlotId>,
    touched: Vec<SlotId>,
    changed: Vec<SlotId>,
    deleted: Vec<Box<[u8]>>,
    bytes: usize,
    meter: Meter,
    /// Keys not written for this long (µs of epoch time) are dropped.
    ttl: Option<i64>,
    /// (access time, slot) in time order, for TTL expiry.
    accesses: VecDeque<(i64, SlotId)>,
    now: i64,
}

impl<V: StateValue> StateTable<V> {
    /// An empty table whose bytes count in `meter`. `name` says what it
    /// holds, for EXPLAIN and the system table.
    pub fn new(name: &'static str, meter: &Meter) -> StateTable<V> {
        StateTable {
            name,
            hasher: Default::default(),
            index: HashTable::new(),
            slots: Vec::new(),
            free: Vec::new(),
            touched: Vec::new(),
            changed: Vec::new(),
            deleted: Vec::new(),
            bytes: 0,
            meter: meter.clone(),
            ttl: None,
            accesses: VecDeque::new(),
            now: i64::MIN,
        }
    }

    /// Drops keys not written for `ttl_micros` of epoch time (the view's
    /// `state_ttl`), at each [`settle`](Self::settle).
    pub fn with_ttl(mut self, ttl_micros: Option<i64>) -> StateTable<V> {
        self.ttl = ttl_micros;
        self
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Name, keys and bytes, for `streamlake.operator_state`.
    pub fn summary(&self) -> crate::stream::operator::StateSummary {
        crate::stream::operator::StateSummary {
            table: self.name,
            keys: self.len(),
            bytes: self.bytes,
        }
    }

    /// The bytes counted for the table as of its last settle.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The slot of `key`.
    pub fn find(&self, key: &[u8]) -> Option<SlotId> {
        let slots = &self.slots;
        self.index
            .find(self.hash(key), |&id| slot_key(slots, id) == key)
            .copied()
    }

    pub fn get(&self, key: &[u8]) -> Option<&V> {
        self.find(key).map(|id| self.value(id))
    }

    /// Whether slot `id` holds a key (an operator's index may keep ids of
    /// removed keys).
    pub fn is_live(&self, id: SlotId) -> bool {
        matches!(self.slots.get(id as usize), Some(Some(_)))
    }

    /// The value in slot `id` (which must be live).
    pub fn value(&self, id: SlotId) -> &V {
        &self.slot(id).value
    }

    /// The key of slot `id`.
    pub fn key(&self, id: SlotId) -> &[u8] {
        &self.slot(id).key
    }

    fn slot(&self, id: SlotId) -> &Slot<V> {
        self.slots[id as usize].as_ref().expect("live state slot")
    }

    /// The value in slot `id`, to change: the slot counts as changed.
    pub fn value_mut(&mut self, id: SlotId) -> &mut V {
        self.mark(id);
        &mut self.slots[id as usize]
            .as_mut()
            .expect("live state slot")
            .value
    }

    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut V> {
        let id = self.find(key)?;
        Some(self.value_mut(id))
    }

    fn mark(&mut self, id: SlotId) {
        let slot = self.slots[id as usize].as_mut().expect("live state slot");
        if slot.flags & TOUCHED == 0 {
            slot.flags |= TOUCHED;
            self.touched.push(id);
        }
        if slot.flags & CHANGED == 0 {
            slot.flags |= CHANGED;
            self.changed.push(id);
        }
    }

    /// The slot of `key`, inserting `make()` first if it is absent; true
    /// when it was inserted. The key is copied only on insert.
    pub fn find_or_insert_with(&mut self, key: &[u8], make: impl FnOnce() -> V) -> (SlotId, bool) {
        let hash = self.hash(key);
        let slots = &self.slots;
        if let Some(&id) = self.index.find(hash, |&id| slot_key(slots, id) == key) {
            self.mark(id);
            return (id, false);
        }
        let id = self.place(Box::from(key), make());
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.index
            .insert_unique(hash, id, |&id| hasher.hash_one(slot_key(slots, id)));
        self.mark(id);
        (id, true)
    }

    /// Inserts or replaces the value of `key`.
    pub fn insert(&mut self, key: &[u8], value: V) -> SlotId {
        let mut value = Some(value);
        let (id, inserted) = self.find_or_insert_with(key, || value.take().expect("once"));
        if !inserted {
            *self.value_mut(id) = value.take().expect("not yet used");
        }
        id
    }

    fn place(&mut self, key: Box<[u8]>, value: V) -> SlotId {
        let slot = Slot {
            key,
            value,
            bytes: 0,
            flags: 0,
            accessed: self.now,
        };
        match self.free.pop() {
            Some(id) => {
                self.slots[id as usize] = Some(slot);
                id
            }
            None => {
                let id = SlotId::try_from(self.slots.len()).expect("fewer than 2^32 state keys");
                self.slots.push(Some(slot));
                id
            }
        }
    }

    /// Removes slot `id`, returning its key and value. Its bytes are given
    /// back at once.
    pub fn remove(&mut self, id: SlotId) -> (Box<[u8]>, V) {
        let hash = self.hash(self.key(id));
        self.index
            .find_entry(hash, |&other| other == id)
            .expect("indexed slot")
            .remove();
        let slot = self.slots[id as usize].take().expect("live state slot");
        self.free.push(id);
        self.bytes -= slot.bytes;
        self.meter.add(-(slot.bytes as i64));
        if slot.flags & PERSISTED != 0 {
            self.deleted.push(slot.key.clone());
        }
        (slot.key, slot.value)
    }

    pub fn remove_key(&mut self, key: &[u8]) -> Option<V> {
        let id = self.find(key)?;
        Some(self.remove(id).1)
    }

    /// Every live slot.
    pub fn iter(&self) -> impl Iterator<Item = (SlotId, &[u8], &V)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(id, s)| s.as_ref().map(|s| (id as SlotId, &*s.key, &s.value)))
    }

    /// Ends an epoch whose time is `now` (µs): re-measures the slots
    /// touched since the last settle, reports the change to the meter and,
    /// with a TTL, drops the keys not written since `now - ttl`, returning
    /// them.
    pub fn settle(&mut self, now: i64) -> Vec<(Box<[u8]>, V)> {
        self.now = now;
        let mut delta = 0i64;
        for id in std::mem::take(&mut self.touched) {
            let Some(slot) = self.slots[id as usize].as_mut() else {
                continue;
            };
            if slot.flags & TOUCHED == 0 {
                continue;
            }
            slot.flags &= !TOUCHED;
            let bytes = slot_bytes(slot);
            delta += bytes as i64 - slot.bytes as i64;
            slot.bytes = bytes;
            if self.ttl.is_some() {
                slot.accessed = now;
                self.accesses.push_back((now, id));
            }
        }
        self.bytes = (self.bytes as i64 + delta) as usize;
        self.meter.add(delta);
        let mut expired = Vec::new();
        if let Some(ttl) = self.ttl {
            let horizon = now.saturating_sub(ttl);
            while let Some(&(at, id)) = self.accesses.front() {
                if at >= horizon {
                    break;
                }
                self.accesses.pop_front();
                let stale = matches!(&self.slots[id as usize], Some(s) if s.accessed == at);
                if stale {
                    expired.push(self.remove(id));
                }
            }
        }
        expired
    }

    /// The changes since the last call (for a checkpoint delta); the keys
    /// returned count as saved from now on.
    pub fn take_changes(&mut self) -> Changes<'_, V> {
        let deleted = std::mem::take(&mut self.deleted);
        let mut ids = std::mem::take(&mut self.changed);
        ids.retain(|&id| match self.slots[id as usize].as_mut() {
            Some(slot) if slot.flags & CHANGED != 0 => {
                slot.flags = (slot.flags & !CHANGED) | PERSISTED;
                true
            }
            _ => false,
        });
        let upserted = ids
            .into_iter()
            .map(|id| {
                let s = self.slot(id);
                (&*s.key, &s.value)
            })
            .collect();
        Changes { deleted, upserted }
    }
}

fn slot_key<V>(slots: &[Option<Slot<V>>], id: SlotId) -> &[u8] {
    &slots[id as usize]
        .as_ref()
        .expect("indexed slot is live")
        .key
}

fn slot_bytes<V: StateValue>(slot: &Slot<V>) -> usize {
    // The slot, its index entry (id + control byte) and what both own.
    std::mem::size_of::<Option<Slot<V>>>() + 5 + slot.key.len() + slot.value.heap_bytes()
}

impl<V> Drop for StateTable<V> {
    fn drop(&mut self) {
        self.meter.add(-(self.bytes as i64));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(c: &Changes<'_, i64>) -> (Vec<String>, Vec<String>) {
        let text = |k: &[u8]| String::from_utf8(k.to_vec()).unwrap();
        let mut up: Vec<String> = c
            .upserted
            .iter()
            .map(|(k, v)| format!("{}={v}", text(k)))
            .collect();
        up.sort();
        let mut del: Vec<String> = c.deleted.iter().map(|k| text(k)).collect();
        del.sort();
        (up, del)
    }

    #[test]
    fn changes_since_the_last_checkpoint() {
        let meter = Meter::root();
        let mut t: StateTable<i64> = StateTable::new("counts", &meter);
        let a = t.insert(b"a", 1);
        t.insert(b"b", 2);
        *t.value_mut(a) += 10;
        t.settle(0);
        assert_eq!(
            keys(&t.take_changes()),
            (vec!["a=11".into(), "b=2".into()], vec![])
        );
        // Nothing changed: an empty delta.
        assert_eq!(keys(&t.take_changes()), (vec![], vec![]));
        // A saved key removed is a delete; one inserted and removed between
        // checkpoints never shows; a removed key inserted again is both.
        t.remove_key(b"b");
        let c = t.insert(b"c", 3);
        t.remove(c);
        t.insert(b"b", 5);
        assert_eq!(
            keys(&t.take_changes()),
            (vec!["b=5".into()], vec!["b".into()])
        );
        assert_eq!(t.get(b"a"), Some(&11));
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn bytes_follow_the_values_and_return_on_drop() {
        let meter = Meter::root();
        let mut t: StateTable<crate::stream::HashMap<Box<[u8]>, i64>> =
            StateTable::new("rows", &meter);
        let (id, _) = t.find_or_insert_with(b"key", Default::default);
        t.settle(0);
        let empty = meter.bytes();
        assert!(empty > 0);
        for i in 0..100u32 {
            t.value_mut(id).insert(Box::from(&i.to_le_bytes()[..]), 1);
        }
        t.settle(1);
        assert!(meter.bytes() > empty + 400, "{} vs {empty}", meter.bytes());
        t.remove(id);
        assert_eq!(meter.bytes(), 0);
        t.insert(b"x", Default::default());
        t.settle(2);
        assert!(meter.bytes() > 0);
        drop(t);
        assert_eq!(meter.bytes(), 0);
    }

    #[test]
    fn ttl_drops_keys_not_written_for_that_long() {
        let meter = Meter::root();
        let mut t: StateTable<i64> = StateTable::new("dedup", &meter).with_ttl(Some(10));
        t.insert(b"old", 1);
        t.insert(b"kept", 1);
        assert!(t.settle(100).is_empty());
        *t.get_mut(b"kept").unwrap() += 1;
        assert!(t.settle(105).is_empty());
        let gone: Vec<_> = t.settle(111).into_iter().map(|(k, _)| k).collect();
        assert_eq!(gone, vec![Box::from(&b"old"[..])]);
        assert_eq!(t.get(b"kept"), Some(&2));
        assert_eq!(t.settle(116).len(), 1);
        assert!(t.is_empty());
        assert_eq!(meter.bytes(), 0);
    }

    #[test]
    fn slots_are_reused_and_lookups_stay_right() {
        let meter = Meter::root();
        let mut t: StateTable<u64> = StateTable::new("n", &meter);
        for round in 0..3u64 {
            for i in 0..1000u64 {
                t.insert(&i.to_be_bytes(), i + round);
            }
            for i in (0..1000u64).step_by(2) {
                t.remove_key(&i.to_be_bytes());
            }
            t.settle(round as i64);
        }
        assert_eq!(t.len(), 500);
        assert!(t.slots.len() <= 1000);
        for i in 0..1000u64 {
            assert_eq!(
                t.get(&i.to_be_bytes()).copied(),
                (i % 2 == 1).then_some(i + 2)
            );
        }
    }
}
