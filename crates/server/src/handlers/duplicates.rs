//! Entries named more than once in one request: a topic in CreateTopics or
//! CreatePartitions, a config resource in AlterConfigs or IncrementalAlterConfigs. As
//! Kafka does, the first mention is answered with INVALID_REQUEST, later ones not at
//! all, and none is acted on. Shared so that those four handlers agree on the rule.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

use crate::handlers::errors::{Refusal, invalid_request};

/// The entries of one request named more than once, and which were answered.
pub(crate) struct Duplicates<K> {
    counts: HashMap<K, usize>,
    reported: HashSet<K>,
    /// The INVALID_REQUEST message (Kafka's words differ by request).
    message: &'static str,
}

impl<K: Copy + Eq + Hash> Duplicates<K> {
    /// `keys`: every entry of the request, in order; `message`: what a duplicate's
    /// answer says.
    pub(crate) fn new(keys: impl IntoIterator<Item = K>, message: &'static str) -> Self {
        let mut counts = HashMap::new();
        for k in keys {
            *counts.entry(k).or_default() += 1;
        }
        Duplicates {
            counts,
            reported: HashSet::new(),
            message,
        }
    }

    /// `Some(Ok)`: go ahead; `Some(Err)`: answer this refusal; `None`: answer nothing.
    pub(crate) fn check(&mut self, key: K) -> Option<Result<(), Refusal>> {
        if self.counts.get(&key).copied().unwrap_or(0) <= 1 {
            return Some(Ok(()));
        }
        self.reported
            .insert(key)
            .then(|| Err(invalid_request(self.message)))
    }
}
