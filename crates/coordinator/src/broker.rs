//! The broker's state: its identity, its topics, and producer id allocation.
//!
//! Topic administration (create, delete, add partitions, alter configs) is serialized
//! by one lock; the produce and fetch paths only take the topics map's read lock for a
//! lookup, then work on an `Arc<Partition>`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use strom_storage::Clock;
use uuid::Uuid;

use crate::cluster_meta::ClusterMeta;
use crate::error::{CoordinatorError, IoContext, Result};
use crate::partition::Partition;
use crate::producer_ids::ProducerIdManager;
use crate::topic::{self, TOPICS_DIR, Topic, TopicRecord};
use crate::topic_config::{self, AlterOp, ConfigEntry, TopicConfig, TopicDefaults};

/// Threads that close partitions at shutdown (see [`Coordinator::shutdown`]).
pub const CLOSE_THREADS: usize = 16;
/// Threads that open topics at start-up (see `Coordinator::load_topics`).
pub const OPEN_THREADS: usize = 16;

/// What the broker is configured with (from `strom serve` flags, env and config file).
#[derive(Debug, Clone)]
pub struct BrokerSettings {
    pub data_dir: PathBuf,
    pub node_id: i32,
    pub defaults: TopicDefaults,
    /// `num.partitions`: partitions of auto-created topics and of CreateTopics with -1.
    pub num_partitions: i32,
    /// `default.replication.factor`.
    pub default_replication_factor: i16,
    /// `auto.create.topics.enable`.
    pub auto_create_topics: bool,
}

impl BrokerSettings {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        BrokerSettings {
            data_dir: data_dir.into(),
            node_id: 1,
            defaults: TopicDefaults::default(),
            num_partitions: 1,
            default_replication_factor: 1,
            auto_create_topics: true,
        }
    }
}

/// A CreateTopics entry.
#[derive(Debug, Clone, Default)]
pub struct NewTopic {
    pub name: String,
    /// -1: `num.partitions`.
    pub partitions: i32,
    /// -1: `default.replication.factor`.
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
}

/// What CreateTopics reports for a topic (created or, with validate_only, checked).
#[derive(Debug, Clone)]
pub struct CreatedTopic {
    pub id: Uuid,
    pub partitions: i32,
    pub replication_factor: i16,
    pub configs: Vec<ConfigEntry>,
}

#[derive(Debug)]
pub struct Coordinator {
    settings: BrokerSettings,
    clock: Arc<dyn Clock>,
    cluster_id: String,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    producer_ids: ProducerIdManager,
    /// Serializes topic administration (file operations and map changes).
    admin: Mutex<()>,
}

impl Coordinator {
    /// Opens the data directory: its identity, then every topic and partition log
    /// (recovering them after a crash).
    pub fn open(settings: BrokerSettings, clock: Arc<dyn Clock>) -> Result<Coordinator> {
        let data_dir = settings.data_dir.clone();
        fs::create_dir_all(&data_dir).ctx("creating data directory", &data_dir)?;
        let meta = ClusterMeta::load_or_create(&data_dir, settings.node_id)?;
        let producer_ids = ProducerIdManager::open(&data_dir)?;
        let mut topics = BTreeMap::new();
        let topics_dir = data_dir.join(TOPICS_DIR);
        if topics_dir.exists() {
            let mut paths: Vec<PathBuf> = fs::read_dir(&topics_dir)
                .ctx("listing", &topics_dir)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect();
            paths.sort();
            for topic in Self::load_topics(&settings, &clock, &paths)? {
                topics.insert(topic.name().to_string(), Arc::new(topic));
            }
        }
        tracing::info!(
            data_dir = %data_dir.display(),
            cluster_id = %meta.cluster_id,
            topics = topics.len(),
            "broker state loaded"
        );
        Ok(Coordinator {
            settings,
            clock,
            cluster_id: meta.cluster_id,
            topics: RwLock::new(topics),
            producer_ids,
            admin: Mutex::new(()),
        })
    }

    /// Opens the topics recorded at `paths`, in that order, on up to [`OPEN_THREADS`]
    /// threads: opening a partition costs a few file operations and fsyncs, and one
    /// after another 2,000 partitions kept a restarted broker from listening for over
    /// ten seconds. Fails with the first error in `paths` order.
    fn load_topics(
        settings: &BrokerSettings,
        clock: &Arc<dyn Clock>,
        paths: &[PathBuf],
    ) -> Result<Vec<Topic>> {
        let next = AtomicUsize::new(0);
        let load_some = || {
            let mut loaded = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(path) = paths.get(i) else {
                    return loaded;
                };
                let topic =
                    TopicRecord::read(path).and_then(|r| Self::load_topic(settings, clock, r));
                loaded.push((i, topic));
            }
        };
        let mut loaded = std::thread::scope(|scope| {
            let helpers: Vec<_> = (1..OPEN_THREADS.min(paths.len()))
                .map(|_| scope.spawn(load_some))
                .collect();
            let mut all = load_some();
            for helper in helpers {
                match helper.join() {
                    Ok(some) => all.extend(some),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
            all
        });
        loaded.sort_by_key(|(i, _)| *i);
        loaded.into_iter().map(|(_, topic)| topic).collect()
    }

    fn load_topic(
        settings: &BrokerSettings,
        clock: &Arc<dyn Clock>,
        record: TopicRecord,
    ) -> Result<Topic> {
        let path = TopicRecord::path(&settings.data_dir, &record.name);
        let corrupt = |detail: String| CoordinatorError::Corrupt {
            what: "topic metadata",
            path: path.clone(),
            detail,
        };
        let id = Uuid::parse_str(&record.id).map_err(|e| corrupt(e.to_string()))?;
        let config = TopicConfig::new(record.configs).map_err(|e| corrupt(e.to_string()))?;
        let effective = config.effective(&settings.defaults)?;
        let name: Arc<str> = record.name.into();
        let partitions = (0..record.partitions)
            .map(|i| {
                Partition::open(
                    &settings.data_dir,
                    name.clone(),
                    i,
                    effective.log.clone(),
                    clock.clone(),
                )
                .map(Arc::new)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Topic::new(name, id, partitions, config, effective))
    }

    pub fn settings(&self) -> &BrokerSettings {
        &self.settings
    }

    pub fn node_id(&self) -> i32 {
        self.settings.node_id
    }

    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    pub fn data_dir(&self) -> &Path {
        &self.settings.data_dir
    }

    fn admin_lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.admin.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    pub fn topic_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.topics
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .find(|t| t.id() == id)
            .cloned()
    }

    /// All topics, by name.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        self.topics
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// The topic, creating it with the broker defaults if it is missing and
    /// `auto.create.topics.enable` is on (Metadata and Produce do this).
    pub fn topic_or_auto_create(&self, name: &str) -> Result<Option<Arc<Topic>>> {
        if let Some(t) = self.topic(name) {
            return Ok(Some(t));
        }
        if !self.settings.auto_create_topics {
            return Ok(None);
        }
        let new = NewTopic {
            name: name.to_string(),
            partitions: -1,
            replication_factor: -1,
            configs: BTreeMap::new(),
        };
        match self.create_topic(&new, false) {
            Ok(_) => Ok(self.topic(name)),
            // Another request created it meanwhile.
            Err(CoordinatorError::TopicAlreadyExists(_)) => Ok(self.topic(name)),
            Err(e) => Err(e),
        }
    }

    /// CreateTopics. With `validate_only` everything is checked and nothing created.
    pub fn create_topic(&self, new: &NewTopic, validate_only: bool) -> Result<CreatedTopic> {
        topic::validate_name(&new.name)?;
        let partitions = match new.partitions {
            -1 => self.settings.num_partitions,
            n if n > 0 => n,
            n => {
                return Err(CoordinatorError::InvalidPartitions(format!(
                    "{n} partitions; must be positive"
                )));
            }
        };
        let replication_factor = match new.replication_factor {
            -1 => self.settings.default_replication_factor,
            n => n,
        };
        if replication_factor != 1 {
            return Err(CoordinatorError::InvalidReplicationFactor(format!(
                "replication factor {replication_factor} is larger than the 1 available broker"
            )));
        }
        let config = TopicConfig::new(new.configs.clone())?;
        let effective = config.effective(&self.settings.defaults)?;
        let configs = config.describe(&self.settings.defaults);
        let _admin = self.admin_lock();
        if self.topic(&new.name).is_some() {
            return Err(CoordinatorError::TopicAlreadyExists(new.name.clone()));
        }
        let id = Uuid::new_v4();
        if validate_only {
            return Ok(CreatedTopic {
                id,
                partitions,
                replication_factor,
                configs,
            });
        }
        let name: Arc<str> = new.name.as_str().into();
        let mut opened = Vec::with_capacity(partitions as usize);
        for i in 0..partitions {
            let dir = Partition::dir_for(&self.settings.data_dir, &name, i);
            // Left over from a deletion that crashed before removing it.
            if dir.exists() {
                tracing::warn!(dir = %dir.display(), "removing stale partition directory");
                fs::remove_dir_all(&dir).ctx("removing stale", &dir)?;
            }
            let partition = Partition::open(
                &self.settings.data_dir,
                name.clone(),
                i,
                effective.log.clone(),
                self.clock.clone(),
            );
            match partition {
                Ok(p) => opened.push(Arc::new(p)),
                Err(e) => {
                    for p in &opened {
                        let _ = p.delete();
                    }
                    return Err(e);
                }
            }
        }
        let topic = Topic::new(name, id, opened, config, effective);
        topic.record().write(&self.settings.data_dir)?;
        tracing::info!(topic = %new.name, %id, partitions, "created topic");
        self.topics
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(new.name.clone(), Arc::new(topic));
        Ok(CreatedTopic {
            id,
            partitions,
            replication_factor,
            configs,
        })
    }

    /// DeleteTopics: forgets the topic, then removes its metadata file and partitions.
    pub fn delete_topic(&self, name: &str) -> Result<Uuid> {
        let _admin = self.admin_lock();
        let topic = self
            .topics
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name)
            .ok_or_else(|| CoordinatorError::UnknownTopic(name.to_string()))?;
        TopicRecord::remove(&self.settings.data_dir, name)?;
        for p in topic.partitions() {
            p.delete()?;
        }
        tracing::info!(topic = name, id = %topic.id(), "deleted topic");
        Ok(topic.id())
    }

    /// CreatePartitions: grows the topic to `total` partitions.
    pub fn create_partitions(&self, name: &str, total: i32, validate_only: bool) -> Result<()> {
        let _admin = self.admin_lock();
        let topic = self
            .topic(name)
            .ok_or_else(|| CoordinatorError::UnknownTopic(name.to_string()))?;
        let current = topic.partition_count();
        if total <= current {
            return Err(CoordinatorError::InvalidPartitions(format!(
                "topic {name} has {current} partitions; {total} would not add any"
            )));
        }
        if validate_only {
            return Ok(());
        }
        let effective = topic.effective();
        let mut more = Vec::new();
        for i in current..total {
            let dir = Partition::dir_for(&self.settings.data_dir, name, i);
            if dir.exists() {
                fs::remove_dir_all(&dir).ctx("removing stale", &dir)?;
            }
            more.push(Arc::new(Partition::open(
                &self.settings.data_dir,
                topic.name_arc(),
                i,
                effective.log.clone(),
                self.clock.clone(),
            )?));
        }
        let mut record = topic.record();
        record.partitions = total;
        record.write(&self.settings.data_dir)?;
        topic.add_partitions(more);
        tracing::info!(topic = name, from = current, to = total, "added partitions");
        Ok(())
    }

    /// DescribeConfigs for a topic.
    pub fn describe_topic_config(&self, name: &str) -> Result<Vec<ConfigEntry>> {
        let topic = self
            .topic(name)
            .ok_or_else(|| CoordinatorError::UnknownTopic(name.to_string()))?;
        Ok(topic.config().describe(&self.settings.defaults))
    }

    /// AlterConfigs: replaces the topic's overrides with `configs`.
    pub fn alter_topic_config(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<()> {
        let config = TopicConfig::new(configs)?;
        self.set_topic_config(name, config, validate_only)
    }

    /// IncrementalAlterConfigs: applies SET/DELETE/APPEND/SUBTRACT to the overrides.
    pub fn incremental_alter_topic_config(
        &self,
        name: &str,
        ops: &[(String, AlterOp)],
        validate_only: bool,
    ) -> Result<()> {
        let topic = self
            .topic(name)
            .ok_or_else(|| CoordinatorError::UnknownTopic(name.to_string()))?;
        let config = topic_config::apply_incremental(&topic.config(), ops)?;
        self.set_topic_config(name, config, validate_only)
    }

    fn set_topic_config(&self, name: &str, config: TopicConfig, validate_only: bool) -> Result<()> {
        let effective = config.effective(&self.settings.defaults)?;
        let _admin = self.admin_lock();
        let topic = self
            .topic(name)
            .ok_or_else(|| CoordinatorError::UnknownTopic(name.to_string()))?;
        if validate_only {
            return Ok(());
        }
        let mut record = topic.record();
        record.configs = config.overrides().clone();
        record.write(&self.settings.data_dir)?;
        for p in topic.partitions() {
            p.set_log_config(effective.log.clone())?;
        }
        topic.set_config(config, effective);
        tracing::info!(topic = name, "altered topic configs");
        Ok(())
    }

    /// InitProducerId for an idempotent (non-transactional) producer: a fresh id, epoch 0.
    pub fn init_producer_id(&self) -> Result<(i64, i16)> {
        Ok((self.producer_ids.next_id()?, 0))
    }

    /// Every partition of every topic.
    pub fn all_partitions(&self) -> Vec<Arc<Partition>> {
        self.topics().iter().flat_map(|t| t.partitions()).collect()
    }

    /// Runs retention on every partition; failures are logged, not fatal.
    pub fn apply_retention(&self) {
        for p in self.all_partitions() {
            if let Err(e) = p.apply_retention() {
                tracing::warn!(topic = p.topic(), partition = p.index(), error = %e, "retention failed");
            }
        }
    }

    /// fsyncs partitions whose `flush.ms` is due.
    pub fn flush_due(&self) {
        for p in self.all_partitions() {
            if let Err(e) = p.maybe_flush() {
                tracing::warn!(topic = p.topic(), partition = p.index(), error = %e, "flush failed");
            }
        }
    }

    /// Closes every partition cleanly (producer snapshots, flushed logs, clean-shutdown
    /// markers), so the next start needs no recovery. Returns the first error.
    ///
    /// Partitions are closed on [`CLOSE_THREADS`] threads: each close is several fsyncs
    /// (producer snapshot, log, indexes, checkpoint, directories), and one after another
    /// 2,000 partitions took longer than a supervisor's stop timeout. Concurrent fsyncs
    /// of different files share the file system's journal commits.
    pub fn shutdown(&self) -> Result<()> {
        let partitions = self.all_partitions();
        let next = AtomicUsize::new(0);
        let first = Mutex::new(None);
        let close_all = || {
            while let Some(p) = partitions.get(next.fetch_add(1, Ordering::Relaxed)) {
                if let Err(e) = p.close() {
                    tracing::error!(topic = p.topic(), partition = p.index(), error = %e, "closing partition failed");
                    // A panicking closer poisons the lock; the errors it guards are still good.
                    first
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .get_or_insert(e);
                }
            }
        };
        std::thread::scope(|scope| {
            for _ in 1..CLOSE_THREADS.min(partitions.len()) {
                scope.spawn(close_all);
            }
            close_all();
        });
        first
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
            .map_or(Ok(()), Err)
    }
}
