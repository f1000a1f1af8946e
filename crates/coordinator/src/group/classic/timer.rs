//! Keyed timers, as Kafka's coordinator timer: scheduling a key again replaces its
//! deadline, cancelling a key that is not scheduled is a no-op. What a timer does when
//! it fires is decided by the shard from the key and the group's state at that moment,
//! so a timer never carries a stale closure.

use std::collections::{BTreeSet, HashMap};

/// What a timer is for. Member ids are strings, so keys are owned.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum TimerKey {
    /// The end of a group's join phase: the initial delay or the rebalance timeout.
    Join(String),
    /// The deadline for every member to send SyncGroup after the join phase.
    Sync(String),
    /// A member's session (or, for a new member, its join) timeout.
    Heartbeat { group: String, member: String },
    /// A member id handed out with MEMBER_ID_REQUIRED and not used yet.
    Pending { group: String, member: String },
}

#[derive(Debug, Default)]
pub(super) struct Timers {
    /// Invariant: `by_deadline` holds exactly `(at, key)` for every `(key, at)` here.
    deadlines: HashMap<TimerKey, i64>,
    by_deadline: BTreeSet<(i64, TimerKey)>,
}

impl Timers {
    pub(super) fn schedule(&mut self, key: TimerKey, at_ms: i64) {
        self.cancel(&key);
        self.by_deadline.insert((at_ms, key.clone()));
        self.deadlines.insert(key, at_ms);
    }

    pub(super) fn cancel(&mut self, key: &TimerKey) {
        if let Some(at) = self.deadlines.remove(key) {
            self.by_deadline.remove(&(at, key.clone()));
        }
    }

    pub(super) fn deadline(&self, key: &TimerKey) -> Option<i64> {
        self.deadlines.get(key).copied()
    }

    pub(super) fn next_deadline(&self) -> Option<i64> {
        self.by_deadline.first().map(|(at, _)| *at)
    }

    /// Removes and returns the earliest timer due at `now_ms`, if any.
    pub(super) fn pop_due(&mut self, now_ms: i64) -> Option<TimerKey> {
        let (at, _) = self.by_deadline.first()?;
        if *at > now_ms {
            return None;
        }
        let (_, key) = self.by_deadline.pop_first()?;
        self.deadlines.remove(&key);
        Some(key)
    }

    /// Cancels every timer of a group (it was deleted or replaced by a replayed record).
    pub(super) fn cancel_group(&mut self, group_id: &str) {
        let keys: Vec<TimerKey> = self
            .deadlines
            .keys()
            .filter(|k| match k {
                TimerKey::Join(g) | TimerKey::Sync(g) => g == group_id,
                TimerKey::Heartbeat { group, .. } | TimerKey::Pending { group, .. } => {
                    group == group_id
                }
            })
            .cloned()
            .collect();
        for key in keys {
            self.cancel(&key);
        }
    }
}
