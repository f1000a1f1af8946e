//! The protocol edge for errors: coordinator and storage errors become Kafka error
//! codes here, and nowhere else.

use kafka_protocol::ResponseError;
use strom_coordinator::CoordinatorError;
use strom_coordinator::group::GroupError;
use strom_storage::{BatchError, StorageError};

use crate::groups::Unavailable;

/// The Kafka error for a failed coordinator call.
pub fn response_error(e: &CoordinatorError) -> ResponseError {
    use CoordinatorError as C;
    match e {
        C::Storage(s) => storage_error(s),
        C::UnknownTopicOrPartition { .. } | C::UnknownTopic(_) => {
            ResponseError::UnknownTopicOrPartition
        }
        C::UnknownTopicId(_) => ResponseError::UnknownTopicId,
        C::TopicAlreadyExists(_) => ResponseError::TopicAlreadyExists,
        C::InvalidTopic { .. } => ResponseError::InvalidTopicException,
        C::InvalidPartitions(_) => ResponseError::InvalidPartitions,
        C::InvalidReplicationFactor(_) => ResponseError::InvalidReplicationFactor,
        C::InvalidConfig { .. } => ResponseError::InvalidConfig,
        C::RecordTooLarge { .. } => ResponseError::MessageTooLarge,
        C::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
        C::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch,
        C::Io { .. } | C::Corrupt { .. } => ResponseError::KafkaStorageError,
    }
}

/// The Kafka error for a failed storage call.
pub fn storage_error(e: &StorageError) -> ResponseError {
    match e {
        StorageError::InvalidBatch { source, .. } => match source {
            // Magic 0/1 message sets are refused, not converted (see README).
            BatchError::UnsupportedMagic(_) => ResponseError::UnsupportedForMessageFormat,
            BatchError::TooLarge { .. } => ResponseError::MessageTooLarge,
            BatchError::Truncated { .. }
            | BatchError::InvalidLength(_)
            | BatchError::CrcMismatch { .. }
            | BatchError::InvalidLastOffsetDelta(_)
            | BatchError::InvalidRecordsCount(_) => ResponseError::CorruptMessage,
        },
        StorageError::EmptyAppend => ResponseError::InvalidRecord,
        StorageError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        StorageError::InvalidConfig(_) => ResponseError::InvalidConfig,
        StorageError::Io { .. }
        | StorageError::LogOffline { .. }
        | StorageError::Corrupt { .. } => ResponseError::KafkaStorageError,
    }
}

/// The Kafka error for a refused group operation.
pub fn group_error(e: &GroupError) -> ResponseError {
    use GroupError as G;
    match e {
        G::CoordinatorNotAvailable | G::WriteFailed(_) => ResponseError::CoordinatorNotAvailable,
        G::NotCoordinator => ResponseError::NotCoordinator,
        G::InvalidGroupId => ResponseError::InvalidGroupId,
        G::InvalidSessionTimeout { .. } => ResponseError::InvalidSessionTimeout,
        G::MemberIdRequired => ResponseError::MemberIdRequired,
        G::UnknownMemberId => ResponseError::UnknownMemberId,
        G::IllegalGeneration => ResponseError::IllegalGeneration,
        G::RebalanceInProgress => ResponseError::RebalanceInProgress,
        G::InconsistentGroupProtocol => ResponseError::InconsistentGroupProtocol,
        G::FencedInstanceId => ResponseError::FencedInstanceId,
        G::GroupMaxSizeReached => ResponseError::GroupMaxSizeReached,
        G::GroupIdNotFound => ResponseError::GroupIdNotFound,
        G::NonEmptyGroup => ResponseError::NonEmptyGroup,
        G::OffsetMetadataTooLarge => ResponseError::OffsetMetadataTooLarge,
        G::GroupSubscribedToTopic => ResponseError::GroupSubscribedToTopic,
    }
}

/// The error code of an optional group error (0 for none).
pub fn group_code(e: Option<&GroupError>) -> i16 {
    e.map_or(0, |e| group_error(e).code())
}

/// The Kafka error for a group request this broker cannot serve right now.
pub fn unavailable(u: Unavailable) -> ResponseError {
    match u {
        Unavailable::LoadInProgress => ResponseError::CoordinatorLoadInProgress,
        Unavailable::NotAvailable => ResponseError::CoordinatorNotAvailable,
    }
}

/// Checks a request's `current_leader_epoch` against the partition's (KIP-320): -1
/// skips the check, a newer epoch is unknown to this broker, an older one is fenced.
pub fn leader_epoch_error(requested: i32, current: i32) -> Option<ResponseError> {
    match requested {
        r if r < 0 || r == current => None,
        r if r > current => Some(ResponseError::UnknownLeaderEpoch),
        _ => Some(ResponseError::FencedLeaderEpoch),
    }
}

/// `(error_code, error_message)` for a response: the code, and the error's own words
/// (which name the topic, offset or setting involved).
pub fn code_and_message(e: &CoordinatorError) -> (i16, Option<String>) {
    (response_error(e).code(), Some(e.to_string()))
}

/// Why one entry of a request (a topic, a config resource) is refused: the error code
/// and message its result carries.
pub(crate) type Refusal = (i16, String);

/// The refusal for a failed coordinator call: its code and the error's own words.
pub(crate) fn refusal(e: CoordinatorError) -> Refusal {
    let (code, message) = code_and_message(&e);
    (code, message.unwrap_or_default())
}

/// An INVALID_REQUEST refusal.
pub(crate) fn invalid_request(message: impl Into<String>) -> Refusal {
    (ResponseError::InvalidRequest.code(), message.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_kafka() {
        let corrupt = CoordinatorError::Storage(StorageError::InvalidBatch {
            position: 0,
            source: BatchError::CrcMismatch {
                stored: 1,
                computed: 2,
            },
        });
        assert_eq!(response_error(&corrupt).code(), 2);
        let old = CoordinatorError::Storage(StorageError::InvalidBatch {
            position: 0,
            source: BatchError::UnsupportedMagic(1),
        });
        assert_eq!(response_error(&old).code(), 43);
        let gap = CoordinatorError::OutOfOrderSequence {
            producer_id: 1,
            first_sequence: 5,
            expected: 3,
        };
        assert_eq!(response_error(&gap).code(), 45);
        assert_eq!(
            response_error(&CoordinatorError::UnknownTopic("t".into())).code(),
            3
        );
        let disk = CoordinatorError::Storage(StorageError::LogOffline {
            dir: "d".into(),
            operation: "fsync",
            cause: "EIO".into(),
        });
        assert_eq!(response_error(&disk).code(), 56);
    }

    #[test]
    fn group_codes_match_kafka() {
        let cases = [
            (GroupError::MemberIdRequired, 79),
            (GroupError::UnknownMemberId, 25),
            (GroupError::IllegalGeneration, 22),
            (GroupError::RebalanceInProgress, 27),
            (GroupError::InconsistentGroupProtocol, 23),
            (GroupError::FencedInstanceId, 82),
            (GroupError::GroupMaxSizeReached, 81),
            (GroupError::InvalidGroupId, 24),
            (GroupError::CoordinatorNotAvailable, 15),
            (GroupError::NotCoordinator, 16),
            (GroupError::GroupIdNotFound, 69),
            (GroupError::NonEmptyGroup, 68),
            (GroupError::OffsetMetadataTooLarge, 12),
            (GroupError::GroupSubscribedToTopic, 86),
        ];
        for (e, code) in cases {
            assert_eq!(group_error(&e).code(), code, "{e:?}");
        }
        let timeout = GroupError::InvalidSessionTimeout {
            timeout_ms: 1,
            min_ms: 2,
            max_ms: 3,
        };
        assert_eq!(group_error(&timeout).code(), 26);
        assert_eq!(unavailable(Unavailable::LoadInProgress).code(), 14);
    }
}
