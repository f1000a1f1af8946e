//! The broker's configuration: where it listens and stores data, and the Kafka broker
//! properties it honours.
//!
//! Settings that Kafka also has use Kafka's property names and meanings (`num.partitions`,
//! `log.retention.ms`, ...), so an operator's Kafka knowledge and `server.properties`
//! values carry over. Settings that are Strom's own are marked as such below.
//!
//! Sources, highest precedence first (see [`load`] and the crate README):
//! 1. command-line flags (`--data-dir`, `--listen`, `--advertise`, `--node-id`) and
//!    `-o key=value` overrides;
//! 2. `STROM_*` environment variables (`STROM_DATA_DIR`, ..., `STROM_LOG_RETENTION_MS`);
//! 3. the TOML file named by `--config` / `STROM_CONFIG`;
//! 4. the defaults below.

mod conn_overrides;
mod host_port;
pub mod load;
pub(crate) mod properties;
#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use strom_coordinator::{BrokerSettings, ConfigType, TopicDefaults};
use strom_storage::config::{
    DEFAULT_INDEX_INTERVAL_BYTES, DEFAULT_SEGMENT_BYTES, DEFAULT_SEGMENT_INDEX_BYTES,
};
use strom_storage::{FlushPolicy, LogConfig};

use crate::error::{Result, ServerError};

pub use conn_overrides::ConnectionOverrides;
pub use host_port::HostPort;
pub use load::ConfigSources;

const HOUR_MS: i64 = 60 * 60 * 1000;
const MINUTE_MS: i64 = 60 * 1000;

/// Everything the broker is configured with. Field docs give the property name; fields
/// are public so handlers can read them directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerConfig {
    /// `listen` / `--listen`: address the Kafka listener binds. Default `0.0.0.0:9092`.
    pub listen: HostPort,
    /// `advertise` / `--advertise`: address clients are told to connect to. Default
    /// `localhost:<listen port>`; see [`BrokerConfig::advertised`].
    pub advertise: Option<HostPort>,
    /// `node_id` / `--node-id`: this broker's id in metadata (Kafka's `node.id`). Default 1.
    pub node_id: i32,
    /// `data_dir` / `--data-dir`: directory holding the partition logs. Default `./strom-data`.
    pub data_dir: PathBuf,

    /// `num.partitions`: partitions of an auto-created topic.
    pub num_partitions: i32,
    /// `default.replication.factor`: replication factor of an auto-created topic.
    pub default_replication_factor: i16,
    /// `auto.create.topics.enable`: create unknown topics on metadata/produce requests.
    pub auto_create_topics_enable: bool,
    /// `message.max.bytes`: largest record batch the broker accepts.
    pub message_max_bytes: i32,
    /// `socket.request.max.bytes`: largest request frame; larger ones close the connection.
    pub socket_request_max_bytes: i32,

    /// `log.segment.bytes`.
    pub log_segment_bytes: i32,
    /// `log.roll.ms`; when unset, `log.roll.hours` applies.
    pub log_roll_ms: Option<i64>,
    /// `log.roll.hours`.
    pub log_roll_hours: i32,
    /// `log.retention.ms`; wins over minutes and hours. Negative = keep forever.
    pub log_retention_ms: Option<i64>,
    /// `log.retention.minutes`; wins over hours.
    pub log_retention_minutes: Option<i32>,
    /// `log.retention.hours`.
    pub log_retention_hours: i32,
    /// `log.retention.bytes`; -1 = no size limit.
    pub log_retention_bytes: i64,
    /// `log.index.interval.bytes`.
    pub log_index_interval_bytes: i32,
    /// `log.index.size.max.bytes` (the storage crate's `segment_index_bytes`).
    pub log_index_size_max_bytes: i32,
    /// `log.flush.interval.messages`; `i64::MAX` = never by count.
    pub log_flush_interval_messages: i64,
    /// `log.flush.interval.ms`; unset = never by time.
    pub log_flush_interval_ms: Option<i64>,
    /// `log.retention.check.interval.ms`: how often retention runs.
    pub log_retention_check_interval_ms: i64,

    /// `offsets.topic.num.partitions`: partitions of `__consumer_offsets`, fixed when
    /// the topic is first created.
    pub offsets_topic_num_partitions: i32,
    /// `group.initial.rebalance.delay.ms`.
    pub group_initial_rebalance_delay_ms: i32,
    /// `offsets.retention.minutes`: committed offsets outlive their empty group (or
    /// a simple consumer's last commit) this long.
    pub offsets_retention_minutes: i32,
    /// `offsets.retention.check.interval.ms`.
    pub offsets_retention_check_interval_ms: i64,
    /// `offset.metadata.max.bytes`: the longest metadata an offset commit may carry.
    pub offset_metadata_max_bytes: i32,
    /// `group.min.session.timeout.ms`.
    pub group_min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`.
    pub group_max_session_timeout_ms: i32,

    /// `max.connections`: accepting pauses while this many connections are open.
    pub max_connections: i32,
    /// `socket.listen.backlog.size`: connections the kernel completes and queues for
    /// the broker to accept (capped by `net.core.somaxconn`). Clients wait there while
    /// accepting pauses; past it their connects time out.
    pub socket_listen_backlog_size: i32,
    /// `max.connections.per.ip`: connections one client address may hold; a connection
    /// over it is closed as soon as it is accepted.
    pub max_connections_per_ip: i32,
    /// `max.connections.per.ip.overrides`: per-address exceptions to
    /// `max.connections.per.ip` (`127.0.0.1:200,::1:50`; IP addresses, not host names).
    pub max_connections_per_ip_overrides: ConnectionOverrides,
    /// `connections.max.idle.ms`: a connection with no request in flight that sends
    /// nothing for this long is closed.
    pub connections_max_idle_ms: i64,
    /// Strom-only `socket.request.read.timeout.ms`: once the first byte of a request has
    /// arrived, the whole request must arrive within this long or the connection is
    /// closed, so a client trickling bytes cannot hold a connection forever.
    pub socket_request_read_timeout_ms: i64,
    /// `fetch.max.bytes`: the most record bytes one Fetch response carries, whatever
    /// the request's `max_bytes` asks for (at least one batch is still returned).
    pub fetch_max_bytes: i32,
    /// `queued.max.request.bytes`: memory budget for requests read but not yet answered;
    /// reading pauses when it is spent. -1 = unbounded. Kafka's default is -1; Strom's is
    /// 512 MiB because decoded requests are larger than their wire form (see the README).
    pub queued_max_request_bytes: i64,
    /// Strom-only `non.produce.request.max.bytes`: frame cap for every API except Produce,
    /// whose record payloads are the only legitimately large requests.
    pub non_produce_request_max_bytes: i32,
    /// Strom-only `connection.max.in.flight.requests`: pipelined requests a connection may
    /// have unanswered before the broker stops reading from it.
    pub connection_max_in_flight_requests: i32,
    /// Strom-only `shutdown.timeout.ms`: how long shutdown waits for in-flight requests.
    pub shutdown_timeout_ms: i64,
}

/// One broker property as DescribeConfigs reports it: its Kafka name, its value (`None`
/// for an unset optional property, as Kafka reports it) and whether that is the default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertyValue {
    pub name: &'static str,
    pub value: Option<String>,
    /// The value equals the default (a property explicitly set to its default value
    /// counts as default: the configuration does not record where values came from).
    pub is_default: bool,
    pub config_type: ConfigType,
}

/// Default `queued.max.request.bytes`.
pub const DEFAULT_QUEUED_MAX_REQUEST_BYTES: i64 = 512 * 1024 * 1024;
/// Default `non.produce.request.max.bytes`.
pub const DEFAULT_NON_PRODUCE_REQUEST_MAX_BYTES: i32 = 8 * 1024 * 1024;
/// Default `fetch.max.bytes` (Kafka's: 55 MiB).
/// Default `socket.listen.backlog.size`. Kafka's is 50; Strom's is larger because
/// clients wait in the backlog whenever accepting pauses (`max.connections`, the
/// open-file headroom), and a fleet reconnecting at once after a restart should not
/// see connect timeouts.
pub const DEFAULT_LISTEN_BACKLOG: i32 = 1024;

pub const DEFAULT_FETCH_MAX_BYTES: i32 = 55 * 1024 * 1024;
/// Timeouts above this many ms are treated as this (about a year): `Instant + Duration`
/// must not overflow, and a year is "never" for a connection.
pub const MAX_TIMEOUT_MS: u64 = 365 * 24 * 60 * 60 * 1000;

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            listen: HostPort::new("0.0.0.0", 9092),
            advertise: None,
            node_id: 1,
            data_dir: PathBuf::from("./strom-data"),
            num_partitions: 1,
            default_replication_factor: 1,
            auto_create_topics_enable: true,
            message_max_bytes: 1_048_588,
            socket_request_max_bytes: 104_857_600,
            log_segment_bytes: DEFAULT_SEGMENT_BYTES as i32,
            log_roll_ms: None,
            log_roll_hours: 168,
            log_retention_ms: None,
            log_retention_minutes: None,
            log_retention_hours: 168,
            log_retention_bytes: -1,
            log_index_interval_bytes: DEFAULT_INDEX_INTERVAL_BYTES as i32,
            log_index_size_max_bytes: DEFAULT_SEGMENT_INDEX_BYTES as i32,
            log_flush_interval_messages: i64::MAX,
            log_flush_interval_ms: None,
            log_retention_check_interval_ms: 300_000,
            offsets_topic_num_partitions: 50,
            group_initial_rebalance_delay_ms: 3_000,
            offsets_retention_minutes: 7 * 24 * 60,
            offsets_retention_check_interval_ms: 600_000,
            offset_metadata_max_bytes: 4096,
            group_min_session_timeout_ms: 6_000,
            group_max_session_timeout_ms: 1_800_000,
            max_connections: i32::MAX,
            socket_listen_backlog_size: DEFAULT_LISTEN_BACKLOG,
            max_connections_per_ip: i32::MAX,
            max_connections_per_ip_overrides: ConnectionOverrides::default(),
            connections_max_idle_ms: 600_000,
            socket_request_read_timeout_ms: 30_000,
            fetch_max_bytes: DEFAULT_FETCH_MAX_BYTES,
            queued_max_request_bytes: DEFAULT_QUEUED_MAX_REQUEST_BYTES,
            non_produce_request_max_bytes: DEFAULT_NON_PRODUCE_REQUEST_MAX_BYTES,
            connection_max_in_flight_requests: 64,
            shutdown_timeout_ms: 10_000,
        }
    }
}

impl BrokerConfig {
    /// The address advertised to clients: `advertise` if set, else `localhost` with the
    /// port the listener actually bound (which differs from `listen` when that says 0).
    pub fn advertised(&self, bound_port: u16) -> HostPort {
        self.advertise
            .clone()
            .unwrap_or_else(|| HostPort::new("localhost", bound_port))
    }

    /// Effective segment roll time in ms: `log.roll.ms`, else `log.roll.hours`.
    pub fn log_roll_ms_effective(&self) -> i64 {
        self.log_roll_ms
            .unwrap_or(i64::from(self.log_roll_hours) * HOUR_MS)
    }

    /// Effective retention time in ms, resolved as Kafka does (ms, then minutes, then
    /// hours); `None` when negative, Kafka's "keep forever".
    pub fn log_retention_ms_effective(&self) -> Option<i64> {
        let ms = match (self.log_retention_ms, self.log_retention_minutes) {
            (Some(ms), _) => ms,
            (None, Some(minutes)) => i64::from(minutes) * MINUTE_MS,
            (None, None) => i64::from(self.log_retention_hours) * HOUR_MS,
        };
        (ms >= 0).then_some(ms)
    }

    /// The per-partition log settings new partitions get, from the `log.*` properties.
    pub fn default_log_config(&self) -> LogConfig {
        let non_negative = |v: i64| u64::try_from(v).ok();
        LogConfig {
            segment_bytes: non_negative(self.log_segment_bytes.into()).unwrap_or(0),
            segment_ms: non_negative(self.log_roll_ms_effective()),
            retention_ms: self.log_retention_ms_effective().and_then(non_negative),
            retention_bytes: non_negative(self.log_retention_bytes),
            index_interval_bytes: non_negative(self.log_index_interval_bytes.into()).unwrap_or(0),
            segment_index_bytes: non_negative(self.log_index_size_max_bytes.into()).unwrap_or(0),
            flush: FlushPolicy::from_kafka(
                self.log_flush_interval_messages,
                self.log_flush_interval_ms.unwrap_or(i64::MAX),
            ),
        }
    }

    /// What the coordinator needs to know: identity, data directory, topic defaults.
    pub fn broker_settings(&self) -> BrokerSettings {
        BrokerSettings {
            data_dir: self.data_dir.clone(),
            node_id: self.node_id,
            defaults: TopicDefaults {
                log: self.default_log_config(),
                max_message_bytes: u64::try_from(self.message_max_bytes).unwrap_or(0),
                min_insync_replicas: 1,
            },
            num_partitions: self.num_partitions,
            default_replication_factor: self.default_replication_factor,
            auto_create_topics: self.auto_create_topics_enable,
        }
    }

    /// Every Kafka broker property this configuration holds, with its value, by name:
    /// what DescribeConfigs reports for the broker. Strom's own settings appear under
    /// their Kafka counterparts (`node.id`, `log.dirs`, `listeners`,
    /// `advertised.listeners`).
    pub fn kafka_properties(&self) -> Vec<PropertyValue> {
        let defaults = BrokerConfig::default().property_values();
        let mut all: Vec<PropertyValue> = self
            .property_values()
            .into_iter()
            .zip(defaults)
            .map(
                |((name, config_type, value), (_, _, default))| PropertyValue {
                    name,
                    is_default: value == default,
                    value,
                    config_type,
                },
            )
            .collect();
        all.sort_by_key(|p| p.name);
        all
    }

    /// `(name, type, value)` of every property, in a fixed order.
    fn property_values(&self) -> Vec<(&'static str, ConfigType, Option<String>)> {
        use ConfigType::{Boolean, Int, Long, String as Str};
        fn some(v: impl ToString) -> Option<String> {
            Some(v.to_string())
        }
        vec![
            ("node.id", Int, some(self.node_id)),
            ("log.dirs", Str, some(self.data_dir.display())),
            (
                "listeners",
                Str,
                some(format!("PLAINTEXT://{}", self.listen)),
            ),
            (
                "advertised.listeners",
                Str,
                self.advertise.as_ref().map(|a| format!("PLAINTEXT://{a}")),
            ),
            ("num.partitions", Int, some(self.num_partitions)),
            (
                "default.replication.factor",
                Int,
                some(self.default_replication_factor),
            ),
            (
                "auto.create.topics.enable",
                Boolean,
                some(self.auto_create_topics_enable),
            ),
            ("message.max.bytes", Int, some(self.message_max_bytes)),
            (
                "socket.request.max.bytes",
                Int,
                some(self.socket_request_max_bytes),
            ),
            ("log.segment.bytes", Int, some(self.log_segment_bytes)),
            ("log.roll.ms", Long, self.log_roll_ms.map(|v| v.to_string())),
            ("log.roll.hours", Int, some(self.log_roll_hours)),
            (
                "log.retention.ms",
                Long,
                self.log_retention_ms.map(|v| v.to_string()),
            ),
            (
                "log.retention.minutes",
                Int,
                self.log_retention_minutes.map(|v| v.to_string()),
            ),
            ("log.retention.hours", Int, some(self.log_retention_hours)),
            ("log.retention.bytes", Long, some(self.log_retention_bytes)),
            (
                "log.index.interval.bytes",
                Int,
                some(self.log_index_interval_bytes),
            ),
            (
                "log.index.size.max.bytes",
                Int,
                some(self.log_index_size_max_bytes),
            ),
            (
                "log.flush.interval.messages",
                Long,
                some(self.log_flush_interval_messages),
            ),
            (
                "log.flush.interval.ms",
                Long,
                self.log_flush_interval_ms.map(|v| v.to_string()),
            ),
            (
                "log.retention.check.interval.ms",
                Long,
                some(self.log_retention_check_interval_ms),
            ),
            (
                "offsets.topic.num.partitions",
                Int,
                some(self.offsets_topic_num_partitions),
            ),
            (
                "group.initial.rebalance.delay.ms",
                Int,
                some(self.group_initial_rebalance_delay_ms),
            ),
            (
                "offsets.retention.minutes",
                Int,
                some(self.offsets_retention_minutes),
            ),
            (
                "offsets.retention.check.interval.ms",
                Long,
                some(self.offsets_retention_check_interval_ms),
            ),
            (
                "offset.metadata.max.bytes",
                Int,
                some(self.offset_metadata_max_bytes),
            ),
            (
                "group.min.session.timeout.ms",
                Int,
                some(self.group_min_session_timeout_ms),
            ),
            (
                "group.max.session.timeout.ms",
                Int,
                some(self.group_max_session_timeout_ms),
            ),
            ("max.connections", Int, some(self.max_connections)),
            (
                "socket.listen.backlog.size",
                Int,
                some(self.socket_listen_backlog_size),
            ),
            (
                "max.connections.per.ip",
                Int,
                some(self.max_connections_per_ip),
            ),
            (
                "max.connections.per.ip.overrides",
                Str,
                some(&self.max_connections_per_ip_overrides),
            ),
            (
                "connections.max.idle.ms",
                Long,
                some(self.connections_max_idle_ms),
            ),
            (
                "socket.request.read.timeout.ms",
                Long,
                some(self.socket_request_read_timeout_ms),
            ),
            ("fetch.max.bytes", Int, some(self.fetch_max_bytes)),
            (
                "queued.max.request.bytes",
                Long,
                some(self.queued_max_request_bytes),
            ),
            (
                "non.produce.request.max.bytes",
                Int,
                some(self.non_produce_request_max_bytes),
            ),
            (
                "connection.max.in.flight.requests",
                Int,
                some(self.connection_max_in_flight_requests),
            ),
            ("shutdown.timeout.ms", Long, some(self.shutdown_timeout_ms)),
        ]
    }

    /// A millisecond setting as a [`Duration`], capped at [`MAX_TIMEOUT_MS`].
    pub fn timeout(ms: i64) -> Duration {
        Duration::from_millis(u64::try_from(ms).unwrap_or(0).min(MAX_TIMEOUT_MS))
    }

    /// The connections `ip` may hold: its override, else `max.connections.per.ip`.
    pub fn max_connections_for(&self, ip: IpAddr) -> u32 {
        let limit = self
            .max_connections_per_ip_overrides
            .get(ip)
            .unwrap_or(self.max_connections_per_ip);
        u32::try_from(limit).unwrap_or(0)
    }

    /// `queued.max.request.bytes` as a byte count; `None` = unbounded.
    pub fn request_memory_budget(&self) -> Option<u64> {
        u64::try_from(self.queued_max_request_bytes).ok()
    }

    /// Checks constraints that involve more than one setting. Single values are range
    /// checked as they are parsed.
    pub fn validate(&self) -> Result<()> {
        self.default_log_config()
            .validate()
            .map_err(|e| ServerError::config("log.*", e.to_string()))?;
        let max_frame = self.socket_request_max_bytes as u64;
        if let Some(budget) = self.request_memory_budget().filter(|&b| b < max_frame) {
            // Otherwise a request of the maximum size could never be admitted.
            return Err(ServerError::config(
                "queued.max.request.bytes",
                format!(
                    "{budget} is smaller than socket.request.max.bytes ({max_frame}); \
                     use -1 for no limit"
                ),
            ));
        }
        if self.max_connections_per_ip == 0 && self.max_connections_per_ip_overrides.is_empty() {
            // Kafka's rule: 0 only makes sense as "nobody but the overrides".
            return Err(ServerError::config(
                "max.connections.per.ip",
                "0 refuses every client; it needs max.connections.per.ip.overrides",
            ));
        }
        if let Some(advertise) = &self.advertise {
            if advertise.port == 0 {
                return Err(ServerError::config(
                    "advertise",
                    "port 0 cannot be advertised",
                ));
            }
            if advertise.is_unspecified() {
                // Kafka refuses this too: clients cannot connect to 0.0.0.0 or [::].
                return Err(ServerError::config(
                    "advertise",
                    format!("{advertise} is not an address clients can connect to"),
                ));
            }
        }
        Ok(())
    }
}
