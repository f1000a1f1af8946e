//! A topic: its id, its partitions and its configuration.
//!
//! A topic's metadata is one JSON file, `topics/<name>.json` in the data directory,
//! replaced atomically: `{"name", "id", "partitions", "configs"}`. The file's existence
//! is what makes the topic exist: it is written after the partition logs are created and
//! removed before they are deleted, so a crash in between leaves only stale partition
//! directories, which topic creation clears.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{CoordinatorError, IoContext, Result};
use crate::partition::Partition;
use crate::topic_config::{EffectiveConfig, TopicConfig};

pub const TOPICS_DIR: &str = "topics";

/// Kafka's limit on topic name length (so partition directory names stay < 255 bytes).
pub const MAX_NAME_LEN: usize = 249;

/// Checks a topic name as Kafka does: 1..=249 of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_name(name: &str) -> Result<()> {
    let invalid = |reason: &str| CoordinatorError::InvalidTopic {
        name: name.to_string(),
        reason: reason.to_string(),
    };
    if name.is_empty() {
        return Err(invalid("empty"));
    }
    if name == "." || name == ".." {
        return Err(invalid("'.' and '..' are not allowed"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(invalid("longer than 249 characters"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return Err(invalid(
            "only ASCII letters, digits, '.', '_' and '-' are allowed",
        ));
    }
    Ok(())
}

/// The persisted form of a topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicRecord {
    pub name: String,
    pub id: String,
    pub partitions: i32,
    pub configs: BTreeMap<String, String>,
}

impl TopicRecord {
    pub fn path(data_dir: &Path, name: &str) -> PathBuf {
        data_dir.join(TOPICS_DIR).join(format!("{name}.json"))
    }

    pub fn read(path: &Path) -> Result<Self> {
        let bytes = fs::read(path).ctx("reading", path)?;
        serde_json::from_slice(&bytes).map_err(|e| CoordinatorError::Corrupt {
            what: "topic metadata",
            path: path.to_path_buf(),
            detail: e.to_string(),
        })
    }

    /// Writes the record durably: temporary file, fsync, rename, fsync directory.
    pub fn write(&self, data_dir: &Path) -> Result<()> {
        let dir = data_dir.join(TOPICS_DIR);
        fs::create_dir_all(&dir).ctx("creating", &dir)?;
        let path = Self::path(data_dir, &self.name);
        let tmp = path.with_extension("json.tmp");
        let json = serde_json::to_vec_pretty(self).map_err(|e| CoordinatorError::Corrupt {
            what: "topic metadata",
            path: path.clone(),
            detail: e.to_string(),
        })?;
        let mut f = fs::File::create(&tmp).ctx("creating", &tmp)?;
        f.write_all(&json).ctx("writing", &tmp)?;
        f.sync_all().ctx("fsync of", &tmp)?;
        fs::rename(&tmp, &path).ctx("renaming to", &path)?;
        fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .ctx("fsync of", &dir)
    }

    pub fn remove(data_dir: &Path, name: &str) -> Result<()> {
        let path = Self::path(data_dir, name);
        fs::remove_file(&path).ctx("removing", &path)?;
        let dir = data_dir.join(TOPICS_DIR);
        fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .ctx("fsync of", &dir)
    }
}

#[derive(Debug)]
pub struct Topic {
    name: Arc<str>,
    id: Uuid,
    partitions: RwLock<Vec<Arc<Partition>>>,
    config: RwLock<(TopicConfig, EffectiveConfig)>,
}

impl Topic {
    pub fn new(
        name: Arc<str>,
        id: Uuid,
        partitions: Vec<Arc<Partition>>,
        config: TopicConfig,
        effective: EffectiveConfig,
    ) -> Self {
        Topic {
            name,
            id,
            partitions: RwLock::new(partitions),
            config: RwLock::new((config, effective)),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn name_arc(&self) -> Arc<str> {
        self.name.clone()
    }

    pub fn id(&self) -> Uuid {
        self.id
    }

    /// Kafka's rule: topics whose names start with `__` are internal.
    pub fn is_internal(&self) -> bool {
        self.name.starts_with("__")
    }

    pub fn partition(&self, index: i32) -> Option<Arc<Partition>> {
        let partitions = self.partitions.read().unwrap_or_else(|p| p.into_inner());
        usize::try_from(index)
            .ok()
            .and_then(|i| partitions.get(i).cloned())
    }

    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        self.partitions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn partition_count(&self) -> i32 {
        self.partitions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .len() as i32
    }

    pub(crate) fn add_partitions(&self, more: Vec<Arc<Partition>>) {
        self.partitions
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .extend(more);
    }

    pub fn config(&self) -> TopicConfig {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .clone()
    }

    pub fn effective(&self) -> EffectiveConfig {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .clone()
    }

    pub fn max_message_bytes(&self) -> u64 {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .max_message_bytes
    }

    pub(crate) fn set_config(&self, config: TopicConfig, effective: EffectiveConfig) {
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = (config, effective);
    }

    pub fn record(&self) -> TopicRecord {
        TopicRecord {
            name: self.name.to_string(),
            id: self.id.to_string(),
            partitions: self.partition_count(),
            configs: self.config().overrides().clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        for ok in [
            "a",
            "orders.v1",
            "__consumer_offsets",
            "A-b_c.9",
            &"x".repeat(249),
        ] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a b", "a/b", "ü", &"x".repeat(250)] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn records_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = TopicRecord {
            name: "t".into(),
            id: Uuid::new_v4().to_string(),
            partitions: 3,
            configs: [("retention.ms".to_string(), "5".to_string())].into(),
        };
        r.write(dir.path()).expect("write");
        assert_eq!(
            TopicRecord::read(&TopicRecord::path(dir.path(), "t")).expect("read"),
            r
        );
        TopicRecord::remove(dir.path(), "t").expect("remove");
        assert!(!TopicRecord::path(dir.path(), "t").exists());
    }
}
