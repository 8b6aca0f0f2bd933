//! A least-recently-used map bounded by the total weight of its values
//! (bytes of decoded chunks, entries of decoded trees), so the mount's
//! memory stays within what the user allowed however much is read.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

/// Values with their weights; the least recently used go first when the
/// total passes the budget. One value heavier than the whole budget is
/// kept alone until the next insert (the read that needed it still gets it).
#[derive(Debug)]
pub struct Lru<K, V> {
    budget: u64,
    total: u64,
    tick: u64,
    items: HashMap<K, (V, u64, u64)>,
    order: BTreeMap<u64, K>,
}

impl<K: Hash + Eq + Clone, V: Clone> Lru<K, V> {
    /// An empty map holding at most `budget` of weight.
    pub fn new(budget: u64) -> Self {
        Self {
            budget,
            total: 0,
            tick: 0,
            items: HashMap::new(),
            order: BTreeMap::new(),
        }
    }

    /// The value under `key`, now the most recently used.
    pub fn get(&mut self, key: &K) -> Option<V> {
        self.tick += 1;
        let (value, _, used) = self.items.get_mut(key)?;
        self.order.remove(used);
        *used = self.tick;
        self.order.insert(self.tick, key.clone());
        Some(value.clone())
    }

    /// Whether `key` is held (without making it more recently used).
    pub fn contains(&self, key: &K) -> bool {
        self.items.contains_key(key)
    }

    /// Keeps `value` of `weight` under `key`, evicting the least recently
    /// used values until the rest fits.
    pub fn insert(&mut self, key: K, value: V, weight: u64) {
        self.remove(&key);
        while self.total + weight > self.budget && self.evict_one() {}
        self.tick += 1;
        self.total += weight;
        self.order.insert(self.tick, key.clone());
        self.items.insert(key, (value, weight, self.tick));
    }

    fn remove(&mut self, key: &K) {
        if let Some((_, weight, used)) = self.items.remove(key) {
            self.order.remove(&used);
            self.total -= weight;
        }
    }

    fn evict_one(&mut self) -> bool {
        let Some((_, key)) = self.order.pop_first() else {
            return false;
        };
        if let Some((_, weight, _)) = self.items.remove(&key) {
            self.total -= weight;
        }
        true
    }

    /// The total weight held.
    #[cfg(test)]
    pub fn weight(&self) -> u64 {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_values_go_first_and_the_weight_stays_in_budget() {
        let mut lru = Lru::new(10);
        lru.insert("a", 1, 4);
        lru.insert("b", 2, 4);
        assert_eq!(lru.get(&"a"), Some(1));
        lru.insert("c", 3, 4);
        assert_eq!(lru.get(&"b"), None, "b was the least recently used");
        assert_eq!(lru.get(&"a"), Some(1));
        assert_eq!(lru.get(&"c"), Some(3));
        assert_eq!(lru.weight(), 8);
        lru.insert("huge", 4, 100);
        assert_eq!(
            lru.get(&"huge"),
            Some(4),
            "kept alone for the read that needs it"
        );
        assert_eq!(lru.weight(), 100);
    }
}
