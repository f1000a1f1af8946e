//! librdkafka plumbing shared by the modes: client configs, creating the
//! topic, and a minimal `block_on` for the admin API's futures (the crate's
//! tokio feature would pull in a runtime we do not otherwise need).

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

/// A config with `bootstrap.servers` and the user's `-X key=value`s.
pub fn base_config(brokers: &str, properties: &[String]) -> Result<ClientConfig> {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", brokers);
    cfg.set("client.id", "strom-perf");
    apply_properties(&mut cfg, properties)?;
    Ok(cfg)
}

/// Applies `key=value` strings on top of `cfg` (later ones win).
pub fn apply_properties(cfg: &mut ClientConfig, properties: &[String]) -> Result<()> {
    for p in properties {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| anyhow!("-X {p:?}: expected KEY=VALUE"))?;
        cfg.set(k.trim(), v.trim());
    }
    Ok(())
}

/// Creates `topic` with `partitions` partitions unless it exists, then waits
/// until metadata shows it. Returns the partition count it has (which may
/// differ from `partitions` when the topic already existed).
pub fn ensure_topic(cfg: &ClientConfig, topic: &str, partitions: i32) -> Result<usize> {
    let admin: AdminClient<DefaultClientContext> =
        cfg.create().context("creating the admin client")?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = block_on(admin.create_topics([&new], &opts))
        .with_context(|| format!("creating topic {topic}"))?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => bail!("creating topic {name}: {code}"),
        }
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let md = admin
            .inner()
            .fetch_metadata(Some(topic), Duration::from_secs(5))
            .context("fetching metadata")?;
        if let Some(t) = md.topics().iter().find(|t| t.name() == topic)
            && t.error().is_none()
            && !t.partitions().is_empty()
            && t.partitions().iter().all(|p| p.leader() >= 0)
        {
            return Ok(t.partitions().len());
        }
        if Instant::now() > deadline {
            bail!("topic {topic} did not show up in metadata within 15 s");
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Wakes the thread that is blocked in `block_on`.
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs a future to completion on this thread (parks between polls).
pub fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = TaskContext::from_waker(&waker);
    loop {
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(v) => return v,
            // Spurious unparks only cost one more poll.
            Poll::Pending => thread::park(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_apply_and_validate() {
        let cfg = base_config("h:1", &["linger.ms = 7".into(), "acks=all".into()]).expect("ok");
        assert_eq!(cfg.get("linger.ms"), Some("7"));
        assert_eq!(cfg.get("acks"), Some("all"));
        assert_eq!(cfg.get("bootstrap.servers"), Some("h:1"));
        assert!(base_config("h:1", &["nonsense".into()]).is_err());
    }

    #[test]
    fn block_on_ready_future() {
        assert_eq!(block_on(async { 41 + 1 }), 42);
    }
}
