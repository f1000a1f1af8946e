//! ListGroups (API 16), v0–v5: every group this broker coordinates, from every
//! `__consumer_offsets` partition. v4+ filter by state (case-insensitive; an unknown
//! state matches nothing) and report it; v5+ filter by type and report it: every group
//! is a classic group. A partition still loading fails the request with
//! COORDINATOR_LOAD_IN_PROGRESS.

use std::sync::Arc;

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    ApiKey, GroupId, ListGroupsRequest, ListGroupsResponse, RequestHeader, RequestKind,
    ResponseKind,
};
use kafka_protocol::protocol::StrBytes;
use strom_coordinator::group::classic::GroupState;

use crate::broker::Broker;
use crate::error::ServerError;
use crate::groups::Command;
use crate::handlers::HandlerFuture;
use crate::handlers::errors;

/// The only group type there is yet.
const CLASSIC: &str = "Classic";

pub fn handle(broker: Arc<Broker>, header: RequestHeader, request: RequestKind) -> HandlerFuture {
    Box::pin(async move {
        let RequestKind::ListGroups(request) = request else {
            return Err(ServerError::HandlerMismatch {
                expected: ApiKey::ListGroups,
            });
        };
        let version = header.request_api_version;
        Ok(ResponseKind::ListGroups(
            list_groups(&broker, version, request).await,
        ))
    })
}

async fn list_groups(broker: &Broker, version: i16, r: ListGroupsRequest) -> ListGroupsResponse {
    let asked: Vec<&StrBytes> = if version >= 4 {
        r.states_filter.iter().collect()
    } else {
        Vec::new()
    };
    let states: Vec<GroupState> = asked
        .iter()
        .filter_map(|s| GroupState::parse(s.as_str()))
        .collect();
    // A filter naming only unknown states (or types other than classic) matches nothing.
    let nothing = (!asked.is_empty() && states.is_empty())
        || (version >= 5
            && !r.types_filter.is_empty()
            && !r
                .types_filter
                .iter()
                .any(|t| t.as_str().eq_ignore_ascii_case(CLASSIC)));
    if nothing {
        return ListGroupsResponse::default();
    }
    let answer = broker
        .groups()
        .call_all(|reply| Command::List {
            states: states.clone(),
            reply,
        })
        .await;
    match answer {
        Ok(lists) => {
            let groups = lists
                .into_iter()
                .flatten()
                .map(|g| {
                    let mut entry = ListedGroup::default()
                        .with_group_id(GroupId(StrBytes::from_string(g.group_id)))
                        .with_protocol_type(StrBytes::from_string(g.protocol_type));
                    if version >= 4 {
                        entry = entry.with_group_state(StrBytes::from_static_str(g.state.as_str()));
                    }
                    if version >= 5 {
                        entry = entry.with_group_type(StrBytes::from_static_str(CLASSIC));
                    }
                    entry
                })
                .collect();
            ListGroupsResponse::default().with_groups(groups)
        }
        Err(u) => ListGroupsResponse::default().with_error_code(errors::unavailable(u).code()),
    }
}
