//! DescribeGroups (API 15), v0–v6: state, protocol and members of groups.
//!
//! An unknown group is described as Dead without error before v6 (as Kafka does), and
//! is GROUP_ID_NOT_FOUND with a message from v6. Members' metadata and assignments are
//! only filled while the group is Stable. v3+ report authorized operations as
//! Kafka's "not requested" value (the default): there are no ACLs to evaluate; v4+
//! carry group instance ids.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{
    ApiKey, DescribeGroupsResponse, GroupId, RequestHeader, RequestKind, ResponseKind,
};
use kafka_protocol::protocol::StrBytes;
use strom_coordinator::group::GroupError;
use strom_coordinator::group::classic::{GroupDescription, GroupState};

use crate::broker::Broker;
use crate::error::ServerError;
use crate::groups::Command;
use crate::handlers::HandlerFuture;
use crate::handlers::errors;

pub fn handle(broker: Arc<Broker>, header: RequestHeader, request: RequestKind) -> HandlerFuture {
    Box::pin(async move {
        let RequestKind::DescribeGroups(request) = request else {
            return Err(ServerError::HandlerMismatch {
                expected: ApiKey::DescribeGroups,
            });
        };
        let version = header.request_api_version;
        let mut groups = Vec::with_capacity(request.groups.len());
        for id in request.groups {
            let group_id = id.0.to_string();
            let answer = broker
                .groups()
                .call(&group_id, |reply| Command::Describe {
                    group_ids: vec![group_id.clone()],
                    reply,
                })
                .await;
            let described = match answer {
                Ok(mut list) if !list.is_empty() => list.swap_remove(0),
                Ok(_) => Err(GroupError::CoordinatorNotAvailable),
                Err(u) => {
                    groups.push(failed(version, id, errors::unavailable(u), None));
                    continue;
                }
            };
            groups.push(match described {
                Ok(d) => describe(version, d),
                Err(GroupError::GroupIdNotFound) if version < 6 => dead(id),
                Err(e) => failed(version, id, errors::group_error(&e), Some(e.to_string())),
            });
        }
        Ok(ResponseKind::DescribeGroups(
            DescribeGroupsResponse::default().with_groups(groups),
        ))
    })
}

fn dead(id: GroupId) -> DescribedGroup {
    DescribedGroup::default()
        .with_group_id(id)
        .with_group_state(StrBytes::from_static_str(GroupState::Dead.as_str()))
}

fn failed(
    version: i16,
    id: GroupId,
    error: ResponseError,
    message: Option<String>,
) -> DescribedGroup {
    let group = dead(id).with_error_code(error.code());
    if version >= 6 {
        group.with_error_message(message.map(StrBytes::from_string))
    } else {
        group
    }
}

fn describe(version: i16, d: GroupDescription) -> DescribedGroup {
    let members = d
        .members
        .into_iter()
        .map(|m| {
            let member = DescribedGroupMember::default()
                .with_member_id(StrBytes::from_string(m.member_id))
                .with_client_id(StrBytes::from_string(m.client_id))
                .with_client_host(StrBytes::from_string(m.client_host))
                .with_member_metadata(m.metadata)
                .with_member_assignment(m.assignment);
            if version >= 4 {
                member.with_group_instance_id(m.group_instance_id.map(StrBytes::from_string))
            } else {
                member
            }
        })
        .collect();
    DescribedGroup::default()
        .with_group_id(GroupId(StrBytes::from_string(d.group_id)))
        .with_group_state(StrBytes::from_static_str(d.state.as_str()))
        .with_protocol_type(StrBytes::from_string(d.protocol_type))
        .with_protocol_data(StrBytes::from_string(d.protocol))
        .with_members(members)
}
