//! The operating-system limits that partitions and connections count against: open
//! files (`RLIMIT_NOFILE`) and memory mappings (`vm.max_map_count`).
//!
//! Every segment keeps three descriptors open for its whole life (the `.log`, and the
//! `.index` and `.timeindex`, whose files stay open next to their mappings so they can
//! be resized), and every client connection is a socket. 2,000 partitions and 1,000
//! clients need about 7,000 descriptors, while many systems start processes with a soft
//! limit of 1,024. Past the limit every `open` fails with EMFILE: an `accept`, but also
//! a segment roll or a checkpoint write, which takes that partition's log offline. Any
//! process may raise its soft limit up to the hard limit without privileges (the JVM
//! does it for Kafka), so `strom serve` does that before opening the data directory, and
//! warns when even the hard limit is too low for what it holds and allows.
//!
//! Each non-empty index is also one mapping, and Linux refuses `mmap` past
//! `vm.max_map_count` (65,530 by default) mappings per process, so that is checked too.

use std::io;

/// Descriptors each open segment holds: `.log`, `.index`, `.timeindex`.
pub const FILES_PER_SEGMENT: u64 = 3;

/// Memory mappings each segment can hold (its two indexes).
pub const MAPS_PER_SEGMENT: u64 = 2;

/// Descriptors needed besides segments and client sockets: the listener, epoll and
/// eventfds, stdio, and the files opened briefly for checkpoints, producer snapshots,
/// topic records and directory fsyncs, plus segments of topics created later.
pub const RESERVE_FILES: u64 = 256;

/// Mappings besides the indexes: the binary and its libraries, thread stacks, heap
/// arenas.
pub const RESERVE_MAPS: u64 = 1024;

/// `max.connections` at this value means "no limit" (Kafka's default, `Int.MaxValue`).
pub const UNLIMITED_CONNECTIONS: i32 = i32::MAX;

/// `RLIMIT_NOFILE` before and after [`raise_nofile_limit`]. `None` means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NofileLimit {
    /// The soft limit the process started with.
    pub before: Option<u64>,
    /// The soft limit now in force.
    pub soft: Option<u64>,
    /// The hard limit: the most the soft limit can be raised to without privileges.
    pub hard: Option<u64>,
}

/// The current `RLIMIT_NOFILE`, without changing it.
pub fn nofile_limit() -> NofileLimit {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    NofileLimit {
        before: limit.current,
        soft: limit.current,
        hard: limit.maximum,
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit. An unlimited hard limit is not a
/// value Linux accepts for this resource: the soft limit then goes to `fs.nr_open`, the
/// kernel's ceiling for it.
pub fn raise_nofile_limit() -> io::Result<NofileLimit> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let old = getrlimit(Resource::Nofile);
    let target = old.maximum.or_else(nr_open);
    let limit = |soft| NofileLimit {
        before: old.current,
        soft,
        hard: old.maximum,
    };
    // Nothing to do when already at the target (or unlimited with no known ceiling).
    let Some(target) = target else {
        return Ok(limit(old.current));
    };
    if old.current.is_none_or(|soft| soft >= target) {
        return Ok(limit(old.current));
    }
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(target),
            maximum: old.maximum,
        },
    )?;
    Ok(limit(Some(target)))
}

/// `fs.nr_open`: the largest `RLIMIT_NOFILE` the kernel allows. Linux only.
fn nr_open() -> Option<u64> {
    read_proc_u64("/proc/sys/fs/nr_open")
}

/// `vm.max_map_count`: the most memory mappings one process may have. Linux only.
pub fn max_map_count() -> Option<u64> {
    read_proc_u64("/proc/sys/vm/max_map_count")
}

fn read_proc_u64(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// What the broker holds open: its segments, and the connections it allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileDemand {
    /// Segments of every partition in the data directory.
    pub segments: u64,
    /// `max.connections`; `None` when unlimited.
    pub max_connections: Option<u64>,
}

impl FileDemand {
    /// `max_connections` as configured ([`UNLIMITED_CONNECTIONS`] or a negative value
    /// means no limit).
    pub fn new(segments: u64, max_connections: i32) -> FileDemand {
        FileDemand {
            segments,
            max_connections: (max_connections != UNLIMITED_CONNECTIONS)
                .then(|| u64::try_from(max_connections).ok())
                .flatten(),
        }
    }

    /// Descriptors the segments and the reserve take before any client connects.
    pub fn base_files(&self) -> u64 {
        self.segments
            .saturating_mul(FILES_PER_SEGMENT)
            .saturating_add(RESERVE_FILES)
    }

    /// Descriptors needed with `max.connections` clients connected; `None` when
    /// connections are unlimited.
    pub fn files_needed(&self) -> Option<u64> {
        self.max_connections
            .map(|c| self.base_files().saturating_add(c))
    }

    /// How many client connections fit under an open-file limit of `soft` (`None` =
    /// unlimited) next to the segments.
    pub fn connections_that_fit(&self, soft: Option<u64>) -> Option<u64> {
        soft.map(|soft| soft.saturating_sub(self.base_files()))
    }

    /// Mappings the indexes need, with the reserve.
    pub fn maps_needed(&self) -> u64 {
        self.segments
            .saturating_mul(MAPS_PER_SEGMENT)
            .saturating_add(RESERVE_MAPS)
    }
}

/// Why the limits are too low for `demand`, one sentence per problem, for a warning.
/// Empty when they suffice. With unlimited connections only the segments (and some room
/// for clients, `min_connections`) are held against the open-file limit.
pub fn shortfalls(
    demand: &FileDemand,
    soft: Option<u64>,
    max_maps: Option<u64>,
    min_connections: u64,
) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(soft) = soft {
        let base = demand.base_files();
        match demand.files_needed() {
            Some(needed) if needed > soft => problems.push(format!(
                "the open-file limit ({soft}) is below the {needed} descriptors that {} \
                 segments (x{FILES_PER_SEGMENT}), max.connections {} and a reserve of \
                 {RESERVE_FILES} need: raise the hard limit (ulimit -Hn, systemd \
                 LimitNOFILE=, docker --ulimit nofile=) or lower max.connections",
                demand.segments,
                demand.max_connections.unwrap_or_default(),
            )),
            None if base.saturating_add(min_connections) > soft => problems.push(format!(
                "the open-file limit ({soft}) leaves room for only {} client connections \
                 next to {} segments (x{FILES_PER_SEGMENT}) and a reserve of {RESERVE_FILES}: \
                 raise the hard limit (ulimit -Hn, systemd LimitNOFILE=, docker --ulimit \
                 nofile=); running out of descriptors fails segment rolls too",
                soft.saturating_sub(base),
                demand.segments,
            )),
            _ => {}
        }
    }
    if let Some(max_maps) = max_maps {
        let needed = demand.maps_needed();
        if needed > max_maps {
            problems.push(format!(
                "vm.max_map_count ({max_maps}) is below the {needed} memory mappings that \
                 {} segments' indexes need: raise it (sysctl vm.max_map_count=262144)",
                demand.segments
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlimited_connections_are_not_counted() {
        let d = FileDemand::new(2_000, UNLIMITED_CONNECTIONS);
        assert_eq!(d.max_connections, None);
        assert_eq!(d.files_needed(), None);
        assert_eq!(d.base_files(), 6_000 + RESERVE_FILES);
        assert_eq!(
            d.connections_that_fit(Some(20_000)),
            Some(14_000 - RESERVE_FILES)
        );
        assert_eq!(d.connections_that_fit(None), None);
        assert_eq!(FileDemand::new(1, -1).max_connections, None);
    }

    #[test]
    fn bounded_connections_add_to_segments() {
        let d = FileDemand::new(2_000, 1_000);
        assert_eq!(d.files_needed(), Some(7_000 + RESERVE_FILES));
        assert!(shortfalls(&d, Some(20_000), Some(65_530), 1_000).is_empty());
        let low = shortfalls(&d, Some(1_024), Some(65_530), 1_000);
        assert_eq!(low.len(), 1, "{low:?}");
        assert!(low[0].contains("1024") && low[0].contains("max.connections 1000"));
        // An unlimited soft limit never falls short.
        assert!(shortfalls(&d, None, None, 1_000).is_empty());
    }

    #[test]
    fn unlimited_connections_warn_only_without_room_for_clients() {
        let d = FileDemand::new(2_000, UNLIMITED_CONNECTIONS);
        assert!(shortfalls(&d, Some(8_000), None, 1_000).is_empty());
        let low = shortfalls(&d, Some(4_096), None, 1_000);
        assert_eq!(low.len(), 1, "{low:?}");
        assert!(low[0].contains("room for only 0"), "{low:?}");
    }

    #[test]
    fn too_few_memory_mappings_are_reported() {
        let d = FileDemand::new(40_000, 10);
        let problems = shortfalls(&d, None, Some(65_530), 0);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("vm.max_map_count (65530)"));
    }

    #[test]
    fn raising_reaches_the_hard_limit() {
        let limit = raise_nofile_limit().expect("setrlimit up to the hard limit");
        assert_eq!(nofile_limit().soft, limit.soft);
        match (limit.soft, limit.hard) {
            (Some(soft), Some(hard)) => assert_eq!(soft, hard),
            // Unlimited hard limit: the soft one went to fs.nr_open (or was unlimited).
            (soft, None) => assert!(soft.is_none() || soft == nr_open()),
            (None, Some(hard)) => panic!("soft limit unlimited under hard limit {hard}"),
        }
    }
}
