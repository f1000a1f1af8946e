//! Why a group request was refused. One variant per Kafka error the classic protocol
//! answers with; `strom-server` maps each to its Kafka error code (and, where Kafka
//! answers differently by request version, chooses the code by version).

/// A refused group operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    /// The group is Dead (being deleted or unloaded): the client should find the
    /// coordinator again. Also what the server passes to `on_persisted` when a group
    /// write failed because the log is unavailable.
    #[error("the group coordinator is not available")]
    CoordinatorNotAvailable,
    /// A group write failed because this broker no longer leads `__consumer_offsets`.
    #[error("this broker is not the group's coordinator")]
    NotCoordinator,
    /// A group write failed for another reason.
    #[error("group metadata write failed: {0}")]
    WriteFailed(String),
    #[error("the group id is empty")]
    InvalidGroupId,
    #[error("session timeout {timeout_ms} ms is outside [{min_ms}, {max_ms}]")]
    InvalidSessionTimeout {
        timeout_ms: i32,
        min_ms: i32,
        max_ms: i32,
    },
    /// JoinGroup v4+ with an empty member id: the response carries the member id the
    /// client must rejoin with.
    #[error("a member id is required to join the group")]
    MemberIdRequired,
    #[error("unknown member id")]
    UnknownMemberId,
    #[error("illegal generation")]
    IllegalGeneration,
    #[error("the group is rebalancing")]
    RebalanceInProgress,
    #[error("inconsistent group protocol")]
    InconsistentGroupProtocol,
    /// A static member's instance id is now held by another member id.
    #[error("the group instance id is held by another member")]
    FencedInstanceId,
    #[error("the group has reached group.max.size")]
    GroupMaxSizeReached,
    #[error("group not found")]
    GroupIdNotFound,
    /// DeleteGroups of a group that still has members.
    #[error("the group is not empty")]
    NonEmptyGroup,
    /// OffsetCommit, per partition: the metadata is longer than
    /// `offset.metadata.max.bytes`.
    #[error("offset metadata is too large")]
    OffsetMetadataTooLarge,
    /// OffsetDelete, per partition: the group's members consume the topic.
    #[error("the group is subscribed to the topic")]
    GroupSubscribedToTopic,
}
