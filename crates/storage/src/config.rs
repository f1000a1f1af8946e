//! Per-log settings (Kafka's topic-level `segment.*`, `retention.*`, `flush.*`) and the
//! clock the log reads time from.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Result, StorageError};

/// When appended data is forced to disk with fsync.
///
/// Kafka's default (and this one's) leaves durability to replication: data goes to the
/// page cache and is fsynced only when a segment rolls and on clean shutdown. Setting
/// `flush.messages` or `flush.ms` makes the log fsync more often; `every_append()`
/// fsyncs before every append returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushPolicy {
    /// `flush.messages`: fsync once this many records are unflushed. `None` = never by count.
    pub messages: Option<u64>,
    /// `flush.ms`: fsync once the oldest unflushed append is this old. `None` = never by time.
    pub interval_ms: Option<u64>,
}

impl FlushPolicy {
    /// Kafka's default: fsync on segment roll and on clean shutdown only.
    pub const ON_ROLL_AND_CLOSE: FlushPolicy = FlushPolicy {
        messages: None,
        interval_ms: None,
    };

    /// fsync before every append is acknowledged (`flush.messages=1`).
    pub fn every_append() -> Self {
        FlushPolicy {
            messages: Some(1),
            interval_ms: None,
        }
    }

    /// Builds the policy from Kafka's property values, where `i64::MAX` (Kafka's default)
    /// or a non-positive value means "never".
    pub fn from_kafka(flush_messages: i64, flush_ms: i64) -> Self {
        let opt = |v: i64| (v > 0 && v != i64::MAX).then_some(v as u64);
        FlushPolicy {
            messages: opt(flush_messages),
            interval_ms: opt(flush_ms),
        }
    }

    /// Whether the unflushed data must be fsynced now.
    pub fn is_due(
        &self,
        unflushed_records: u64,
        oldest_unflushed_ms: Option<i64>,
        now_ms: i64,
    ) -> bool {
        if unflushed_records == 0 {
            return false;
        }
        let by_count = self.messages.is_some_and(|m| unflushed_records >= m);
        let by_time = match (self.interval_ms, oldest_unflushed_ms) {
            (Some(ms), Some(since)) => now_ms.saturating_sub(since) >= ms as i64,
            _ => false,
        };
        by_count || by_time
    }
}

impl Default for FlushPolicy {
    fn default() -> Self {
        Self::ON_ROLL_AND_CLOSE
    }
}

/// The settings of one partition log. Defaults are Kafka's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// `segment.bytes`: roll when the active segment would pass this size.
    pub segment_bytes: u64,
    /// `segment.ms`: roll a non-empty active segment this long after its first append.
    pub segment_ms: Option<u64>,
    /// `retention.ms`: delete segments whose newest timestamp is older. `None` = forever.
    pub retention_ms: Option<u64>,
    /// `retention.bytes`: delete the oldest segments while the log is larger. `None` = no limit.
    pub retention_bytes: Option<u64>,
    /// `index.interval.bytes`: bytes of log between two index entries.
    pub index_interval_bytes: u64,
    /// `segment.index.bytes`: preallocated size of each index file.
    pub segment_index_bytes: u64,
    pub flush: FlushPolicy,
}

pub const DEFAULT_SEGMENT_BYTES: u64 = 1024 * 1024 * 1024;
pub const DEFAULT_SEGMENT_MS: u64 = 7 * 24 * 60 * 60 * 1000;
pub const DEFAULT_RETENTION_MS: u64 = 7 * 24 * 60 * 60 * 1000;
pub const DEFAULT_INDEX_INTERVAL_BYTES: u64 = 4096;
pub const DEFAULT_SEGMENT_INDEX_BYTES: u64 = 10 * 1024 * 1024;

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            segment_ms: Some(DEFAULT_SEGMENT_MS),
            retention_ms: Some(DEFAULT_RETENTION_MS),
            retention_bytes: None,
            index_interval_bytes: DEFAULT_INDEX_INTERVAL_BYTES,
            segment_index_bytes: DEFAULT_SEGMENT_INDEX_BYTES,
            flush: FlushPolicy::default(),
        }
    }
}

impl LogConfig {
    /// Checks the limits Kafka enforces: positions in a segment are 32-bit, and an index
    /// must hold at least one entry.
    pub fn validate(&self) -> Result<()> {
        if self.segment_bytes < 14 || self.segment_bytes > i32::MAX as u64 {
            return Err(StorageError::InvalidConfig(format!(
                "segment.bytes {} must be in [14, {}]",
                self.segment_bytes,
                i32::MAX
            )));
        }
        if self.segment_index_bytes < 12 || self.segment_index_bytes > i32::MAX as u64 {
            return Err(StorageError::InvalidConfig(format!(
                "segment.index.bytes {} must be in [12, {}]",
                self.segment_index_bytes,
                i32::MAX
            )));
        }
        if self.index_interval_bytes == 0 {
            return Err(StorageError::InvalidConfig(
                "index.interval.bytes must be positive".into(),
            ));
        }
        if self.segment_ms == Some(0) {
            return Err(StorageError::InvalidConfig(
                "segment.ms must be positive".into(),
            ));
        }
        Ok(())
    }
}

/// Where the log reads wall-clock time (milliseconds since the Unix epoch). Tests pass a
/// [`ManualClock`] to drive roll, retention and flush deadlines.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now_ms(&self) -> i64;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    }
}

/// A clock that moves only when told to.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(now_ms: i64) -> Arc<Self> {
        Arc::new(ManualClock(AtomicI64::new(now_ms)))
    }

    pub fn set(&self, now_ms: i64) {
        self.0.store(now_ms, Ordering::SeqCst);
    }

    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flush_policy_deadlines() {
        let never = FlushPolicy::default();
        assert!(!never.is_due(1_000_000, Some(0), i64::MAX));
        let each = FlushPolicy::every_append();
        assert!(each.is_due(1, Some(5), 5));
        assert!(!each.is_due(0, None, 5));
        let timed = FlushPolicy::from_kafka(i64::MAX, 100);
        assert_eq!(timed.messages, None);
        assert!(!timed.is_due(3, Some(1000), 1099));
        assert!(timed.is_due(3, Some(1000), 1100));
        assert_eq!(FlushPolicy::from_kafka(10, i64::MAX).messages, Some(10));
    }

    #[test]
    fn config_limits() {
        assert!(LogConfig::default().validate().is_ok());
        let big = LogConfig {
            segment_bytes: 1 << 40,
            ..LogConfig::default()
        };
        assert!(big.validate().is_err());
    }
}
