//! Kafka error codes as errors a person can read: the protocol's name for the code
//! (`UNKNOWN_TOPIC_OR_PARTITION`), which is what people search for.

use std::fmt;

use kafka_protocol::error::ResponseError;

/// A non-zero error code from a Kafka response, optionally with the broker's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaError {
    pub code: i16,
    pub message: Option<String>,
}

impl KafkaError {
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const LEADER_NOT_AVAILABLE: i16 = 5;
    pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    pub const REQUEST_TIMED_OUT: i16 = 7;
    pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const NOT_COORDINATOR: i16 = 16;
    pub const ILLEGAL_GENERATION: i16 = 22;
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    pub const REBALANCE_IN_PROGRESS: i16 = 27;
    pub const UNSUPPORTED_VERSION: i16 = 35;
    pub const TOPIC_ALREADY_EXISTS: i16 = 36;
    pub const GROUP_ID_NOT_FOUND: i16 = 69;
    pub const NON_EMPTY_GROUP: i16 = 68;
    pub const MEMBER_ID_REQUIRED: i16 = 79;

    pub fn new(code: i16) -> KafkaError {
        KafkaError {
            code,
            message: None,
        }
    }

    /// `Err` for a non-zero code, with the broker's error message if it sent one.
    pub fn check(code: i16, message: Option<&str>) -> Result<(), KafkaError> {
        if code == 0 {
            return Ok(());
        }
        Err(KafkaError {
            code,
            message: message.filter(|m| !m.is_empty()).map(str::to_string),
        })
    }

    /// Whether a retry (after refreshing metadata or finding the coordinator again)
    /// can succeed.
    pub fn is_retriable(&self) -> bool {
        matches!(
            self.code,
            Self::LEADER_NOT_AVAILABLE
                | Self::NOT_LEADER_OR_FOLLOWER
                | Self::REQUEST_TIMED_OUT
                | Self::COORDINATOR_LOAD_IN_PROGRESS
                | Self::COORDINATOR_NOT_AVAILABLE
                | Self::NOT_COORDINATOR
        )
    }

    /// The protocol's name for the code, e.g. `UNKNOWN_TOPIC_OR_PARTITION`.
    pub fn name(&self) -> String {
        match ResponseError::try_from_code(self.code) {
            Some(ResponseError::Unknown(_)) | None => format!("error code {}", self.code),
            Some(e) => upper_snake(&e.to_string()),
        }
    }
}

impl fmt::Display for KafkaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())?;
        if let Some(message) = &self.message {
            write!(f, ": {message}")?;
        }
        Ok(())
    }
}

impl std::error::Error for KafkaError {}

/// `UnknownTopicOrPartition` → `UNKNOWN_TOPIC_OR_PARTITION`.
fn upper_snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_protocol() {
        assert_eq!(KafkaError::new(3).to_string(), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(
            KafkaError::check(36, Some("Topic 't' already exists."))
                .unwrap_err()
                .to_string(),
            "TOPIC_ALREADY_EXISTS: Topic 't' already exists."
        );
        assert_eq!(KafkaError::new(-1).name(), "UNKNOWN_SERVER_ERROR");
        assert_eq!(KafkaError::new(9999).name(), "error code 9999");
        assert!(KafkaError::check(0, Some("x")).is_ok());
    }
}
