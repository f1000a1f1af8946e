//! Brokers for unit tests: a coordinator on a temporary data directory.

use std::sync::Arc;

use strom_coordinator::{BrokerSettings, Coordinator};
use strom_storage::ManualClock;
use tempfile::TempDir;

use crate::broker::Broker;
use crate::config::{BrokerConfig, HostPort};

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
