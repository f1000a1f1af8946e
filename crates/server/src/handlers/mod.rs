//! The handler table: which Kafka APIs this broker serves, in which versions, and the
//! function that serves each.
//!
//! [`HANDLERS`] is the single source of truth. The dispatcher looks requests up in it,
//! and ApiVersions advertises exactly its entries (`crate::api_versions`), so adding a
//! handler here is what makes clients use it, and an API without a handler can never be
//! advertised.
//!
//! A handler is an `async` function from the decoded request to the response, given the
//! [`Broker`] (the integration point with the coordinator). It does not see the
//! connection, frames or headers beyond the request header, and it reports failures as
//! `ServerError`; turning domain errors into Kafka error codes inside the response is
//! each handler's job, at that edge.

pub mod alter_configs;
pub mod api_versions;
pub mod blocking;
pub mod configs;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod describe_log_dirs;
mod duplicates;
pub mod errors;
pub mod fetch;
pub mod find_coordinator;
pub mod heartbeat;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod metadata;
pub mod offset_commit;
// Not served yet: no available real client sends OffsetDelete to test it end to end.
pub mod offset_delete;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod sync_group;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseKind};

use crate::broker::Broker;
use crate::error::Result;
use crate::response_frame::ResponseFrame;

/// The future a handler returns.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<ResponseKind>> + Send>>;

/// A handler: decoded request in, response out.
pub type HandlerFn = fn(Arc<Broker>, RequestHeader, RequestKind) -> HandlerFuture;

/// The future of a handler that encodes its own response frame.
pub type FrameHandlerFuture = Pin<Box<dyn Future<Output = Result<ResponseFrame>> + Send>>;

/// A handler that encodes its own frame: Fetch, whose record sets are sent from files
/// rather than encoded (see `crate::response_frame`).
pub type FrameHandlerFn = fn(Arc<Broker>, RequestHeader, RequestKind) -> FrameHandlerFuture;

/// How an API is served.
#[derive(Debug, Clone, Copy)]
pub enum Handler {
    /// The dispatcher encodes the response.
    Response(HandlerFn),
    /// The handler encodes the response frame itself.
    Frame(FrameHandlerFn),
}

/// One served API.
#[derive(Debug)]
pub struct ApiHandler {
    pub api: ApiKey,
    /// Lowest version served. Must be one `kafka-protocol` can decode.
    pub min_version: i16,
    /// Highest version served. Must be one `kafka-protocol` can decode.
    pub max_version: i16,
    /// Lowest version advertised in ApiVersions; normally `min_version`. It is lower
    /// only to keep a client from concluding the broker is too old: librdkafka reads
    /// "Produce min version > 0" as "no idempotence/transactions support", so Kafka 4
    /// advertises Produce from v0 even though it serves only v3+ (KAFKA-18659). Requests
    /// between the two are refused like any unsupported version.
    pub advertised_min_version: i16,
    pub handle: Handler,
}

impl ApiHandler {
    /// Whether `version` is served.
    pub fn serves(&self, version: i16) -> bool {
        (self.min_version..=self.max_version).contains(&version)
    }
}

/// Every API this broker serves. Keep sorted by API key.
pub static HANDLERS: &[ApiHandler] = &[
    ApiHandler {
        api: ApiKey::Produce,
        min_version: 3,
        max_version: 12,
        // See `advertised_min_version`: librdkafka needs to see Produce from v0.
        advertised_min_version: 0,
        handle: Handler::Response(produce::handle),
    },
    ApiHandler {
        api: ApiKey::Fetch,
        min_version: 4,
        max_version: 17,
        advertised_min_version: 4,
        handle: Handler::Frame(fetch::handle),
    },
    ApiHandler {
        api: ApiKey::ListOffsets,
        min_version: 1,
        max_version: 9,
        advertised_min_version: 1,
        handle: Handler::Response(list_offsets::handle),
    },
    ApiHandler {
        api: ApiKey::Metadata,
        min_version: 0,
        max_version: 12,
        advertised_min_version: 0,
        handle: Handler::Response(metadata::handle),
    },
    ApiHandler {
        api: ApiKey::OffsetCommit,
        min_version: 2,
        max_version: 9,
        advertised_min_version: 2,
        handle: Handler::Response(offset_commit::handle),
    },
    ApiHandler {
        api: ApiKey::OffsetFetch,
        min_version: 1,
        max_version: 9,
        advertised_min_version: 1,
        handle: Handler::Response(offset_fetch::handle),
    },
    ApiHandler {
        api: ApiKey::FindCoordinator,
        min_version: 0,
        max_version: 6,
        advertised_min_version: 0,
        handle: Handler::Response(find_coordinator::handle),
    },
    ApiHandler {
        api: ApiKey::JoinGroup,
        min_version: 0,
        max_version: 9,
        advertised_min_version: 0,
        handle: Handler::Response(join_group::handle),
    },
    ApiHandler {
        api: ApiKey::Heartbeat,
        min_version: 0,
        max_version: 4,
        advertised_min_version: 0,
        handle: Handler::Response(heartbeat::handle),
    },
    ApiHandler {
        api: ApiKey::LeaveGroup,
        min_version: 0,
        max_version: 5,
        advertised_min_version: 0,
        handle: Handler::Response(leave_group::handle),
    },
    ApiHandler {
        api: ApiKey::SyncGroup,
        min_version: 0,
        max_version: 5,
        advertised_min_version: 0,
        handle: Handler::Response(sync_group::handle),
    },
    ApiHandler {
        api: ApiKey::DescribeGroups,
        min_version: 0,
        max_version: 6,
        advertised_min_version: 0,
        handle: Handler::Response(describe_groups::handle),
    },
    ApiHandler {
        api: ApiKey::ListGroups,
        min_version: 0,
        max_version: 5,
        advertised_min_version: 0,
        handle: Handler::Response(list_groups::handle),
    },
    ApiHandler {
        api: ApiKey::ApiVersions,
        // v0-v4 is everything kafka-protocol 0.18 knows (Kafka 4.x also tops out at 4).
        min_version: 0,
        max_version: 4,
        advertised_min_version: 0,
        handle: Handler::Response(api_versions::handle),
    },
    ApiHandler {
        api: ApiKey::CreateTopics,
        // v2-v7 is everything kafka-protocol 0.18 decodes.
        min_version: 2,
        max_version: 7,
        advertised_min_version: 2,
        handle: Handler::Response(create_topics::handle),
    },
    ApiHandler {
        api: ApiKey::DeleteTopics,
        min_version: 1,
        max_version: 6,
        advertised_min_version: 1,
        handle: Handler::Response(delete_topics::handle),
    },
    ApiHandler {
        api: ApiKey::DeleteRecords,
        min_version: 0,
        max_version: 2,
        advertised_min_version: 0,
        handle: Handler::Response(delete_records::handle),
    },
    ApiHandler {
        api: ApiKey::InitProducerId,
        // v6 adds two-phase commit (KIP-939), a transactions feature.
        min_version: 0,
        max_version: 5,
        advertised_min_version: 0,
        handle: Handler::Response(init_producer_id::handle),
    },
    ApiHandler {
        api: ApiKey::OffsetForLeaderEpoch,
        min_version: 2,
        max_version: 4,
        advertised_min_version: 2,
        handle: Handler::Response(offset_for_leader_epoch::handle),
    },
    ApiHandler {
        api: ApiKey::DescribeConfigs,
        min_version: 1,
        max_version: 4,
        advertised_min_version: 1,
        handle: Handler::Response(describe_configs::handle),
    },
    ApiHandler {
        api: ApiKey::AlterConfigs,
        min_version: 0,
        max_version: 2,
        advertised_min_version: 0,
        handle: Handler::Response(alter_configs::handle),
    },
    ApiHandler {
        api: ApiKey::DescribeLogDirs,
        // Kafka 4 serves v1-v4 (v0 removed by KIP-896); kafka-protocol 0.18 decodes the same.
        min_version: 1,
        max_version: 4,
        advertised_min_version: 1,
        handle: Handler::Response(describe_log_dirs::handle),
    },
    ApiHandler {
        api: ApiKey::CreatePartitions,
        min_version: 0,
        max_version: 3,
        advertised_min_version: 0,
        handle: Handler::Response(create_partitions::handle),
    },
    ApiHandler {
        api: ApiKey::DeleteGroups,
        min_version: 0,
        max_version: 2,
        advertised_min_version: 0,
        handle: Handler::Response(delete_groups::handle),
    },
    ApiHandler {
        api: ApiKey::IncrementalAlterConfigs,
        min_version: 0,
        max_version: 1,
        advertised_min_version: 0,
        handle: Handler::Response(incremental_alter_configs::handle),
    },
    ApiHandler {
        api: ApiKey::OffsetDelete,
        min_version: 0,
        max_version: 0,
        advertised_min_version: 0,
        handle: Handler::Response(offset_delete::handle),
    },
    ApiHandler {
        api: ApiKey::DescribeCluster,
        min_version: 0,
        max_version: 2,
        advertised_min_version: 0,
        handle: Handler::Response(describe_cluster::handle),
    },
];

/// The handler for `api`, if this broker serves it.
pub fn find(api: ApiKey) -> Option<&'static ApiHandler> {
    HANDLERS.iter().find(|h| h.api == api)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_consistent_with_the_codec() {
        let mut previous = None;
        for h in HANDLERS {
            let codec = h.api.valid_versions();
            assert!(
                codec.min <= h.min_version && h.max_version <= codec.max,
                "{:?}: v{}..=v{} not decodable (codec v{}..=v{})",
                h.api,
                h.min_version,
                h.max_version,
                codec.min,
                codec.max
            );
            assert!(h.advertised_min_version <= h.min_version && h.min_version <= h.max_version);
            let key = h.api as i16;
            assert!(previous < Some(key), "unsorted or duplicate {:?}", h.api);
            previous = Some(key);
        }
    }
}
