//! Sparse, memory-mapped indexes of one segment, in Kafka's on-disk layouts.
//!
//! Both indexes hold fixed-size big-endian entries sorted by a strictly increasing key,
//! one entry per `index.interval.bytes` of log. While a segment is active its index
//! files are preallocated to `segment.index.bytes` and the entry count is kept in
//! memory; when the segment is closed or rolled the files are trimmed to the entries,
//! so an index's length always tells its entry count on a clean start. After a crash
//! the indexes of recovered segments are rebuilt from the log, never trusted; on a clean
//! start an index that is missing, holds a partial entry, or disagrees with its log is
//! rebuilt too.

mod offset_index;
mod sparse;
mod time_index;

pub use offset_index::{OffsetIndex, OffsetPosition};
pub use time_index::{TimeIndex, TimestampOffset};
