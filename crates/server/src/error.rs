//! The one error type of `strom-server`.
//!
//! Variants describe what went wrong in Strom's terms. Translating an error into a Kafka
//! error code, or into "close the connection", happens only at the edge where a response
//! is built (see `dispatch` and `connection`), so the rest of the crate never deals in
//! wire codes.

use std::io;
use std::path::PathBuf;

use kafka_protocol::messages::ApiKey;

/// Result alias for this crate.
pub type Result<T, E = ServerError> = std::result::Result<T, E>;

/// Everything that can fail in the network layer, from configuration to a request body.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A setting has a value Strom cannot use. `key` names the setting as the user wrote
    /// it (a Kafka property name, a TOML key, an environment variable or a flag).
    #[error("invalid setting {key}: {message}")]
    Config { key: String, message: String },

    /// The TOML config file could not be read or parsed.
    #[error("config file {}: {message}", path.display())]
    ConfigFile { path: PathBuf, message: String },

    /// The listener could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        addr: String,
        #[source]
        source: io::Error,
    },

    /// A socket or file operation failed.
    #[error(transparent)]
    Io(#[from] io::Error),

    /// The 4-byte size prefix of a frame is negative or larger than allowed. Checked
    /// before anything is allocated for the frame.
    #[error("frame size {size} is outside [{min}, {max}]")]
    FrameSize { size: i64, min: usize, max: usize },

    /// The peer closed the connection in the middle of a frame.
    #[error("connection closed mid-frame ({received} of {expected} bytes received)")]
    TruncatedFrame { received: usize, expected: usize },

    /// A request did not arrive in full within `socket.request.read.timeout.ms` of its
    /// first byte (a client trickling bytes, or one that stalled mid-request).
    #[error(
        "request incomplete {timeout_ms} ms after its first byte (socket.request.read.timeout.ms): \
         {received} bytes received{}",
        frame.map(|f| format!(" of a {f}-byte frame")).unwrap_or_default()
    )]
    RequestTimeout {
        /// Bytes of the frame received, size prefix included.
        received: usize,
        /// The frame's length, size prefix included, once the prefix has arrived.
        frame: Option<usize>,
        timeout_ms: u64,
    },

    /// The request names an API key that Kafka does not define.
    #[error("unknown API key {0}")]
    UnknownApiKey(i16),

    /// A non-Produce request is larger than `non.produce.request.max.bytes`.
    #[error("{api:?} request of {size} bytes exceeds non.produce.request.max.bytes ({max})")]
    RequestTooLarge {
        api: ApiKey,
        size: usize,
        max: usize,
    },

    /// The request header could not be decoded.
    #[error("malformed request header: {0}")]
    MalformedHeader(String),

    /// The request body could not be decoded for the declared API and version.
    #[error("malformed {api:?} v{version} request: {reason}")]
    MalformedRequest {
        api: ApiKey,
        version: i16,
        reason: String,
    },

    /// A version of an API this broker serves, but outside the advertised range.
    #[error("{api:?} v{version} is not supported (supported: v{min}..=v{max})")]
    UnsupportedVersion {
        api: ApiKey,
        version: i16,
        min: i16,
        max: i16,
    },

    /// A valid Kafka API that this broker has no handler for (it is not advertised in
    /// ApiVersions, so a well-behaved client never sends it).
    #[error("{api:?} v{version} is not served by this broker")]
    UnsupportedApi { api: ApiKey, version: i16 },

    /// A handler was given a request of another API: a bug in the handler table.
    #[error("handler for {expected:?} was given a different request")]
    HandlerMismatch { expected: ApiKey },

    /// A handler task panicked or was cancelled.
    #[error("handler for {api:?} failed: {reason}")]
    HandlerFailed { api: ApiKey, reason: String },

    /// A response could not be encoded (a bug, or a response too large for a frame).
    #[error("cannot encode {api:?} v{version} response: {reason}")]
    Encode {
        api: ApiKey,
        version: i16,
        reason: String,
    },
}

impl ServerError {
    /// Shorthand for a [`ServerError::Config`].
    pub(crate) fn config(key: impl Into<String>, message: impl Into<String>) -> Self {
        ServerError::Config {
            key: key.into(),
            message: message.into(),
        }
    }
}
