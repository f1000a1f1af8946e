//! The records of the internal topic `__consumer_offsets`, in Kafka's own key and value
//! schemas (`OffsetCommitKey`, `OffsetCommitValue`, `GroupMetadataKey`,
//! `GroupMetadataValue` in Kafka's group-coordinator), so Kafka's tools can read them.
//! Kafka generates these codecs from JSON schemas; `kafka-protocol` does not, so they
//! are written out here. Primitive types are in `wire`; record batches in `batch`.
//!
//! Every key and value starts with an i16. In a key it is the record type (Kafka's
//! `CoordinatorRecordType`), and the key body is always schema version 0; in a value it
//! is the value's schema version. A record with a null value is a tombstone: it deletes
//! its key (offset deleted, group removed).
//!
//! Keys (always classic encoding):
//! ```text
//! offset commit   type i16 (1; 0 = pre-0.9 legacy, read only) | group string |
//!                 topic string | partition i32
//! group metadata  type i16 (2) | group string
//! ```
//! Other types (3 and up: consumer, share and streams groups of KIP-848 and later) are
//! refused with [`RecordError::UnknownRecordType`]; loading skips them.
//!
//! OffsetCommitValue, by version (v4 is flexible: compact string, tagged fields):
//! ```text
//! v0, v2  version | offset i64 | metadata string | commit_timestamp i64
//! v1      version | offset i64 | metadata string | commit_timestamp i64 | expire_timestamp i64
//! v3      version | offset i64 | leader_epoch i32 | metadata string | commit_timestamp i64
//! v4      version | offset i64 | leader_epoch i32 | metadata compact string |
//!         commit_timestamp i64 | tagged fields
//! ```
//! Written as Kafka 3.x/4.x writes it: v1 when the commit carries an expire timestamp
//! (OffsetCommit v1 requests; leader epoch dropped), otherwise v3. v4 is read, never
//! written (Kafka keeps writing v3 "until a tagged field is introduced"). An absent
//! leader epoch reads as -1; an absent or -1 expire timestamp as `None`.
//!
//! GroupMetadataValue, by version (v4 flexible: compact strings, bytes and arrays, and
//! tagged fields after each member and after the value):
//! ```text
//! version | protocol_type string | generation i32 | protocol nullable string |
//! leader nullable string | current_state_timestamp i64 (v2+) | member count |
//!   per member: member_id string | group_instance_id nullable string (v3+) |
//!               client_id string | client_host string | rebalance_timeout i32 (v1+) |
//!               session_timeout i32 | subscription bytes | assignment bytes
//! ```
//! Written as v3, as Kafka writes it. Reading v0/v1, the state timestamp is -1; reading
//! v0, the rebalance timeout is the session timeout (the v0 protocol had only one
//! timeout; Kafka's Scala loader did the same).

mod batch;
mod wire;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_batch;
#[cfg(test)]
mod tests_props;

use bytes::Bytes;

use self::wire::{Reader, Writer};

pub use batch::{
    LoadedRecord, RawRecord, ReadRecords, build_batch, build_raw_batch, read_raw_records,
    read_records,
};

/// Why a `__consumer_offsets` key, value or batch could not be decoded (or encoded).
/// Kept apart from `CoordinatorError` so the server's exhaustive mapping of that type is
/// untouched; the group coordinator wraps it where it loads or writes records.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Malformed bytes (truncated, a bad length, not UTF-8, a bad batch...), or a value
    /// that cannot be encoded (a string over 32767 bytes).
    #[error("invalid {what} in __consumer_offsets: {detail}")]
    Invalid { what: &'static str, detail: String },
    /// A value whose version prefix this broker does not read.
    #[error("unsupported {what} version {version} in __consumer_offsets")]
    UnsupportedVersion { what: &'static str, version: i16 },
    /// A key of a record type Strom does not know (Kafka's consumer, share and streams
    /// group records). [`read_records`] skips these, as Kafka's loader does.
    #[error("unknown record type {0} in __consumer_offsets")]
    UnknownRecordType(i16),
}

pub type Result<T, E = RecordError> = std::result::Result<T, E>;

/// The internal topic holding committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Record type of an offset commit key written before Kafka 0.9 (read only).
pub const LEGACY_OFFSET_COMMIT_TYPE: i16 = 0;
/// Record type of an offset commit key.
pub const OFFSET_COMMIT_TYPE: i16 = 1;
/// Record type of a classic group's metadata key.
pub const GROUP_METADATA_TYPE: i16 = 2;

/// The OffsetCommitValue versions this broker reads.
pub const OFFSET_COMMIT_VALUE_VERSIONS: std::ops::RangeInclusive<i16> = 0..=4;
/// The GroupMetadataValue versions this broker reads.
pub const GROUP_METADATA_VALUE_VERSIONS: std::ops::RangeInclusive<i16> = 0..=4;
/// The GroupMetadataValue version written (Kafka's `GROUP_METADATA_VALUE_VERSION`).
pub const GROUP_METADATA_VALUE_WRITE_VERSION: i16 = 3;

/// No leader epoch (Kafka's `RecordBatch.NO_PARTITION_LEADER_EPOCH`).
pub const NO_LEADER_EPOCH: i32 = -1;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CoordinatorKey {
    OffsetCommit {
        group: String,
        topic: String,
        partition: i32,
    },
    GroupMetadata {
        group: String,
    },
}

impl CoordinatorKey {
    /// The record type written in the key's i16 prefix.
    pub fn record_type(&self) -> i16 {
        match self {
            CoordinatorKey::OffsetCommit { .. } => OFFSET_COMMIT_TYPE,
            CoordinatorKey::GroupMetadata { .. } => GROUP_METADATA_TYPE,
        }
    }

    pub fn group(&self) -> &str {
        match self {
            CoordinatorKey::OffsetCommit { group, .. }
            | CoordinatorKey::GroupMetadata { group } => group,
        }
    }

    pub fn encode(&self) -> Result<Bytes> {
        let mut w = Writer::new("record key");
        w.i16(self.record_type());
        match self {
            CoordinatorKey::OffsetCommit {
                group,
                topic,
                partition,
            } => {
                w.string(group, false)?;
                w.string(topic, false)?;
                w.i32(*partition);
            }
            CoordinatorKey::GroupMetadata { group } => w.string(group, false)?,
        }
        Ok(w.finish())
    }

    pub fn decode(buf: &[u8]) -> Result<Self> {
        let mut r = Reader::new(buf, "record key");
        let key = match r.i16()? {
            LEGACY_OFFSET_COMMIT_TYPE | OFFSET_COMMIT_TYPE => CoordinatorKey::OffsetCommit {
                group: r.string(false, "group")?,
                topic: r.string(false, "topic")?,
                partition: r.i32()?,
            },
            GROUP_METADATA_TYPE => CoordinatorKey::GroupMetadata {
                group: r.string(false, "group")?,
            },
            other => return Err(RecordError::UnknownRecordType(other)),
        };
        r.finish()?;
        Ok(key)
    }
}

fn read_version(
    r: &mut Reader<'_>,
    what: &'static str,
    versions: &std::ops::RangeInclusive<i16>,
) -> Result<i16> {
    let version = r.i16()?;
    if versions.contains(&version) {
        Ok(version)
    } else {
        Err(RecordError::UnsupportedVersion { what, version })
    }
}

/// A committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommitValue {
    pub offset: i64,
    /// [`NO_LEADER_EPOCH`] when the client sent none.
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
    /// Only from OffsetCommit v1 requests (explicit retention).
    pub expire_timestamp: Option<i64>,
}

impl OffsetCommitValue {
    const WHAT: &'static str = "OffsetCommitValue";

    /// The version Kafka writes for this value: v1 if it has an expire timestamp, else v3.
    pub fn write_version(&self) -> i16 {
        if self.expire_timestamp.is_some() {
            1
        } else {
            3
        }
    }

    /// Encodes at [`OffsetCommitValue::write_version`].
    pub fn encode(&self) -> Result<Bytes> {
        self.encode_version(self.write_version())
    }

    /// Encodes at any readable version; fields the version lacks are left out.
    pub fn encode_version(&self, version: i16) -> Result<Bytes> {
        if !OFFSET_COMMIT_VALUE_VERSIONS.contains(&version) {
            return Err(RecordError::UnsupportedVersion {
                what: Self::WHAT,
                version,
            });
        }
        let flexible = version >= 4;
        let mut w = Writer::new(Self::WHAT);
        w.i16(version);
        w.i64(self.offset);
        if version >= 3 {
            w.i32(self.leader_epoch);
        }
        w.string(&self.metadata, flexible)?;
        w.i64(self.commit_timestamp);
        if version == 1 {
            w.i64(self.expire_timestamp.unwrap_or(-1));
        }
        if flexible {
            w.no_tagged_fields();
        }
        Ok(w.finish())
    }

    pub fn decode(buf: &[u8]) -> Result<Self> {
        let mut r = Reader::new(buf, Self::WHAT);
        let version = read_version(&mut r, Self::WHAT, &OFFSET_COMMIT_VALUE_VERSIONS)?;
        let flexible = version >= 4;
        let offset = r.i64()?;
        let leader_epoch = if version >= 3 {
            r.i32()?
        } else {
            NO_LEADER_EPOCH
        };
        let metadata = r.string(flexible, "metadata")?;
        let commit_timestamp = r.i64()?;
        let expire_timestamp = if version == 1 { r.i64()? } else { -1 };
        if flexible {
            r.skip_tagged_fields()?;
        }
        r.finish()?;
        Ok(OffsetCommitValue {
            offset,
            leader_epoch,
            metadata,
            commit_timestamp,
            expire_timestamp: (expire_timestamp != -1).then_some(expire_timestamp),
        })
    }
}

/// One member of a classic group, as stored with the group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberMetadata {
    pub member_id: String,
    /// Static membership (KIP-345).
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout: i32,
    pub session_timeout: i32,
    /// The member's metadata for the group's chosen protocol.
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// A classic group's state after a rebalance (or an empty group's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMetadataValue {
    /// "consumer" for consumer groups; empty for a group with no members yet.
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    /// -1 when unknown (values before v2).
    pub current_state_timestamp: i64,
    pub members: Vec<MemberMetadata>,
}

impl GroupMetadataValue {
    const WHAT: &'static str = "GroupMetadataValue";

    /// Encodes at [`GROUP_METADATA_VALUE_WRITE_VERSION`].
    pub fn encode(&self) -> Result<Bytes> {
        self.encode_version(GROUP_METADATA_VALUE_WRITE_VERSION)
    }

    /// Encodes at any readable version; fields the version lacks are left out.
    pub fn encode_version(&self, version: i16) -> Result<Bytes> {
        if !GROUP_METADATA_VALUE_VERSIONS.contains(&version) {
            return Err(RecordError::UnsupportedVersion {
                what: Self::WHAT,
                version,
            });
        }
        let flexible = version >= 4;
        let mut w = Writer::new(Self::WHAT);
        w.i16(version);
        w.string(&self.protocol_type, flexible)?;
        w.i32(self.generation);
        w.nullable_string(self.protocol.as_deref(), flexible)?;
        w.nullable_string(self.leader.as_deref(), flexible)?;
        if version >= 2 {
            w.i64(self.current_state_timestamp);
        }
        w.array_len(self.members.len(), flexible)?;
        for m in &self.members {
            w.string(&m.member_id, flexible)?;
            if version >= 3 {
                w.nullable_string(m.group_instance_id.as_deref(), flexible)?;
            }
            w.string(&m.client_id, flexible)?;
            w.string(&m.client_host, flexible)?;
            if version >= 1 {
                w.i32(m.rebalance_timeout);
            }
            w.i32(m.session_timeout);
            w.bytes(&m.subscription, flexible)?;
            w.bytes(&m.assignment, flexible)?;
            if flexible {
                w.no_tagged_fields();
            }
        }
        if flexible {
            w.no_tagged_fields();
        }
        Ok(w.finish())
    }

    pub fn decode(buf: &[u8]) -> Result<Self> {
        let mut r = Reader::new(buf, Self::WHAT);
        let version = read_version(&mut r, Self::WHAT, &GROUP_METADATA_VALUE_VERSIONS)?;
        let flexible = version >= 4;
        let protocol_type = r.string(flexible, "protocol_type")?;
        let generation = r.i32()?;
        let protocol = r.nullable_string(flexible)?;
        let leader = r.nullable_string(flexible)?;
        let current_state_timestamp = if version >= 2 { r.i64()? } else { -1 };
        let count = r.array_len(flexible, "members")?;
        // No capacity from `count`: it is only known to be at most the bytes left.
        let mut members = Vec::new();
        for _ in 0..count {
            let member_id = r.string(flexible, "member_id")?;
            let group_instance_id = if version >= 3 {
                r.nullable_string(flexible)?
            } else {
                None
            };
            let client_id = r.string(flexible, "client_id")?;
            let client_host = r.string(flexible, "client_host")?;
            let rebalance_timeout = if version >= 1 { Some(r.i32()?) } else { None };
            let session_timeout = r.i32()?;
            let subscription = r.bytes(flexible, "subscription")?;
            let assignment = r.bytes(flexible, "assignment")?;
            if flexible {
                r.skip_tagged_fields()?;
            }
            members.push(MemberMetadata {
                member_id,
                group_instance_id,
                client_id,
                client_host,
                rebalance_timeout: rebalance_timeout.unwrap_or(session_timeout),
                session_timeout,
                subscription,
                assignment,
            });
        }
        if flexible {
            r.skip_tagged_fields()?;
        }
        r.finish()?;
        Ok(GroupMetadataValue {
            protocol_type,
            generation,
            protocol,
            leader,
            current_state_timestamp,
            members,
        })
    }
}

/// The value of a record, of the kind its key names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoordinatorValue {
    OffsetCommit(OffsetCommitValue),
    GroupMetadata(GroupMetadataValue),
}

/// One `__consumer_offsets` record: a key and its value, or a tombstone (`None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoordinatorRecord {
    pub key: CoordinatorKey,
    pub value: Option<CoordinatorValue>,
}

impl CoordinatorRecord {
    pub fn offset_commit(
        group: impl Into<String>,
        topic: impl Into<String>,
        partition: i32,
        value: Option<OffsetCommitValue>,
    ) -> Self {
        CoordinatorRecord {
            key: CoordinatorKey::OffsetCommit {
                group: group.into(),
                topic: topic.into(),
                partition,
            },
            value: value.map(CoordinatorValue::OffsetCommit),
        }
    }

    pub fn group_metadata(group: impl Into<String>, value: Option<GroupMetadataValue>) -> Self {
        CoordinatorRecord {
            key: CoordinatorKey::GroupMetadata {
                group: group.into(),
            },
            value: value.map(CoordinatorValue::GroupMetadata),
        }
    }

    pub fn is_tombstone(&self) -> bool {
        self.value.is_none()
    }

    /// The key and value bytes, each at the version Kafka writes.
    pub fn encode(&self) -> Result<(Bytes, Option<Bytes>)> {
        let value = match (&self.key, &self.value) {
            (_, None) => None,
            (CoordinatorKey::OffsetCommit { .. }, Some(CoordinatorValue::OffsetCommit(v))) => {
                Some(v.encode()?)
            }
            (CoordinatorKey::GroupMetadata { .. }, Some(CoordinatorValue::GroupMetadata(v))) => {
                Some(v.encode()?)
            }
            (key, Some(_)) => {
                return Err(RecordError::Invalid {
                    what: "record",
                    detail: format!("value of the wrong kind for key type {}", key.record_type()),
                });
            }
        };
        Ok((self.key.encode()?, value))
    }

    /// Decodes a key and its value (`None`: a tombstone).
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Self> {
        let key = CoordinatorKey::decode(key)?;
        let value = match (&key, value) {
            (_, None) => None,
            (CoordinatorKey::OffsetCommit { .. }, Some(v)) => Some(CoordinatorValue::OffsetCommit(
                OffsetCommitValue::decode(v)?,
            )),
            (CoordinatorKey::GroupMetadata { .. }, Some(v)) => Some(
                CoordinatorValue::GroupMetadata(GroupMetadataValue::decode(v)?),
            ),
        };
        Ok(CoordinatorRecord { key, value })
    }
}
