//! JoinGroup (API 11), v0–v9: a member joins (or rejoins) a classic group. The answer
//! may wait for the rebalance to complete; the group's partition task holds it.
//!
//! v0 has no rebalance timeout (the session timeout stands in), v4+ require a known
//! member id (a new member first gets MEMBER_ID_REQUIRED with its id), v5+ carry the
//! group instance id, v7+ the protocol type in the response (and a nullable protocol name), v8+ a reason,
//! v9+ `skip_assignment`.

use std::sync::Arc;

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{
    ApiKey, JoinGroupRequest, JoinGroupResponse, RequestHeader, RequestKind, ResponseKind,
};
use kafka_protocol::protocol::StrBytes;
use strom_coordinator::group::classic::{self, Protocol};

use crate::broker::Broker;
use crate::error::ServerError;
use crate::groups::Command;
use crate::handlers::HandlerFuture;
use crate::handlers::errors;

pub fn handle(broker: Arc<Broker>, header: RequestHeader, request: RequestKind) -> HandlerFuture {
    Box::pin(async move {
        let RequestKind::JoinGroup(request) = request else {
            return Err(ServerError::HandlerMismatch {
                expected: ApiKey::JoinGroup,
            });
        };
        let version = header.request_api_version;
        let client_id = header.client_id.map(|c| c.to_string()).unwrap_or_default();
        let req = to_request(version, request, client_id);
        let group_id = req.group_id.clone();
        let member_id = req.member_id.clone();
        let answer = broker
            .groups()
            .call(&group_id, |reply| Command::Join {
                request: req,
                reply,
            })
            .await;
        let response = match answer {
            Ok(r) => to_response(version, r),
            Err(u) => JoinGroupResponse::default()
                .with_error_code(errors::unavailable(u).code())
                .with_generation_id(-1)
                .with_member_id(StrBytes::from_string(member_id)),
        };
        Ok(ResponseKind::JoinGroup(response))
    })
}

fn to_request(version: i16, r: JoinGroupRequest, client_id: String) -> classic::JoinGroupRequest {
    classic::JoinGroupRequest {
        group_id: r.group_id.0.to_string(),
        session_timeout_ms: r.session_timeout_ms,
        rebalance_timeout_ms: if version >= 1 {
            r.rebalance_timeout_ms
        } else {
            r.session_timeout_ms
        },
        member_id: r.member_id.to_string(),
        group_instance_id: r.group_instance_id.map(|s| s.to_string()),
        protocol_type: r.protocol_type.to_string(),
        protocols: r
            .protocols
            .into_iter()
            .map(|p| Protocol {
                name: p.name.to_string(),
                metadata: p.metadata,
            })
            .collect(),
        client_id,
        client_host: crate::request::client_host(),
        require_known_member_id: version >= 4,
        supports_skip_assignment: version >= 9,
        reason: r.reason.map(|s| s.to_string()),
    }
}

fn to_response(version: i16, r: classic::JoinGroupResponse) -> JoinGroupResponse {
    let members = r
        .members
        .into_iter()
        .map(|m| {
            let member = JoinGroupResponseMember::default()
                .with_member_id(StrBytes::from_string(m.member_id))
                .with_metadata(m.metadata);
            if version >= 5 {
                member.with_group_instance_id(m.group_instance_id.map(StrBytes::from_string))
            } else {
                member
            }
        })
        .collect();
    let mut response = JoinGroupResponse::default()
        .with_error_code(errors::group_code(r.error.as_ref()))
        .with_generation_id(r.generation_id)
        .with_leader(StrBytes::from_string(r.leader))
        .with_member_id(StrBytes::from_string(r.member_id))
        .with_members(members);
    if version >= 7 {
        response = response.with_protocol_type(r.protocol_type.map(StrBytes::from_string));
    }
    // v0-v6 have a non-null protocol name; v7+ make it nullable.
    response = response.with_protocol_name(match r.protocol_name {
        Some(name) => Some(StrBytes::from_string(name)),
        None if version < 7 => Some(StrBytes::default()),
        None => None,
    });
    if version >= 9 {
        response = response.with_skip_assignment(r.skip_assignment);
    }
    response
}
