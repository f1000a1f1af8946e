//! Brokers for unit tests: a coordinator on a temporary data directory, and the steps
//! every handler's tests share (creating a topic, calling the handler, checking that
//! the response encodes).

use std::sync::Arc;

use kafka_protocol::messages::{RequestHeader, RequestKind, ResponseKind};
use strom_coordinator::{BrokerSettings, Coordinator, CreatedTopic, NewTopic};
use strom_storage::ManualClock;
use tempfile::TempDir;

use crate::broker::Broker;
use crate::config::{BrokerConfig, HostPort};
use crate::handlers::HandlerFn;

/// Start of the tests' manual clock (2023-11-14).
pub const T0: i64 = 1_700_000_000_000;

/// A coordinator on a fresh temporary directory, which must outlive it.
pub fn coordinator() -> (TempDir, Arc<Coordinator>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = Coordinator::open(BrokerSettings::new(dir.path()), ManualClock::new(T0))
        .expect("open coordinator");
    (dir, Arc::new(c))
}

/// A handler's view of a broker, and the directory behind it.
pub struct TestBroker {
    pub broker: Arc<Broker>,
    pub _dir: TempDir,
}

pub fn broker() -> TestBroker {
    broker_with(BrokerConfig::default())
}

/// A broker with `config`; the coordinator's settings come from it too.
pub fn broker_with(config: BrokerConfig) -> TestBroker {
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = BrokerSettings {
        data_dir: dir.path().to_path_buf(),
        ..config.broker_settings()
    };
    let c = Coordinator::open(settings, ManualClock::new(T0)).expect("open coordinator");
    let broker = Broker::new(
        Arc::new(config),
        HostPort::new("localhost", 9092),
        Arc::new(c),
    );
    TestBroker {
        broker: Arc::new(broker),
        _dir: dir,
    }
}

/// Encodes a response body in `version` and decodes it back: proves the response
/// encodes in that version, and gives what a client of that version reads (fields the
/// version lacks come back as their defaults).
pub fn round_trip<R>(response: &R, version: i16) -> R
where
    R: kafka_protocol::protocol::Encodable + kafka_protocol::protocol::Decodable,
{
    let mut buf = bytes::BytesMut::new();
    response
        .encode(&mut buf, version)
        .unwrap_or_else(|e| panic!("encoding v{version}: {e:#}"));
    let mut bytes = buf.freeze();
    let decoded =
        R::decode(&mut bytes, version).unwrap_or_else(|e| panic!("decoding v{version}: {e:#}"));
    assert!(
        bytes.is_empty(),
        "v{version}: {} bytes left over",
        bytes.len()
    );
    decoded
}

/// Creates topic `name` with `partitions` partitions (the default replication factor)
/// and the given config overrides, as a CreateTopics request would.
pub fn create_topic(
    broker: &Broker,
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> CreatedTopic {
    broker
        .coordinator()
        .create_topic(
            &NewTopic {
                name: name.into(),
                partitions,
                replication_factor: -1,
                configs: configs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            },
            false,
        )
        .expect("create")
}

/// Topic `name`'s config overrides, sorted by key.
pub fn topic_overrides(broker: &Broker, name: &str) -> Vec<(String, String)> {
    broker
        .coordinator()
        .topic(name)
        .expect("exists")
        .config()
        .overrides()
        .clone()
        .into_iter()
        .collect()
}

/// Owned `(key, value)` pairs, to compare with [`topic_overrides`].
pub fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Calls `handler` as the dispatcher does for a request of `version`; the handler must
/// answer (not fail). Take the response apart with [`response_as!`].
pub async fn call(
    handler: HandlerFn,
    broker: &Arc<Broker>,
    version: i16,
    request: RequestKind,
) -> ResponseKind {
    let header = RequestHeader::default().with_request_api_version(version);
    handler(broker.clone(), header, request)
        .await
        .expect("handled")
}

/// The body of a `ResponseKind::$variant` response; panics on any other kind.
macro_rules! response_as {
    ($variant:ident, $response:expr) => {
        match $response {
            kafka_protocol::messages::ResponseKind::$variant(r) => r,
            other => panic!("wrong response kind: {other:?}"),
        }
    };
}
pub(crate) use response_as;
