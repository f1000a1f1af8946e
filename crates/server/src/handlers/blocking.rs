//! Running coordinator calls that touch files off the async workers.

use kafka_protocol::messages::ApiKey;

use crate::error::{Result, ServerError};

/// Runs `work` on tokio's blocking pool: storage calls read, write and fsync files, and
/// must not stall the tasks serving other connections.
pub async fn run_blocking<T: Send + 'static>(
    api: ApiKey,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ServerError::HandlerFailed {
            api,
            reason: e.to_string(),
        })
}
