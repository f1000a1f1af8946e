//! SyncGroup (API 14), v0–v5: members of a generation get their assignment, which the
//! leader sends. Answers wait until the leader's assignment is durable; the group's
//! partition task holds them.
//!
//! v3+ carry the group instance id, v5+ the protocol type and name (checked against the
//! group's, and echoed in the response).

use std::sync::Arc;

use kafka_protocol::messages::{
    ApiKey, RequestHeader, RequestKind, ResponseKind, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;
use strom_coordinator::group::classic;

use crate::broker::Broker;
use crate::error::ServerError;
use crate::groups::Command;
use crate::handlers::HandlerFuture;
use crate::handlers::errors;

pub fn handle(broker: Arc<Broker>, header: RequestHeader, request: RequestKind) -> HandlerFuture {
    Box::pin(async move {
        let RequestKind::SyncGroup(request) = request else {
            return Err(ServerError::HandlerMismatch {
                expected: ApiKey::SyncGroup,
            });
        };
        let version = header.request_api_version;
        let req = to_request(request);
        let group_id = req.group_id.clone();
        let answer = broker
            .groups()
            .call(&group_id, |reply| Command::Sync {
                request: req,
                reply,
            })
            .await;
        let response = match answer {
            Ok(r) => to_response(version, r),
            Err(u) => SyncGroupResponse::default().with_error_code(errors::unavailable(u).code()),
        };
        Ok(ResponseKind::SyncGroup(response))
    })
}

fn to_request(r: SyncGroupRequest) -> classic::SyncGroupRequest {
    classic::SyncGroupRequest {
        group_id: r.group_id.0.to_string(),
        generation_id: r.generation_id,
        member_id: r.member_id.to_string(),
        group_instance_id: r.group_instance_id.map(|s| s.to_string()),
        protocol_type: r.protocol_type.map(|s| s.to_string()),
        protocol_name: r.protocol_name.map(|s| s.to_string()),
        assignments: r
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect(),
    }
}

fn to_response(version: i16, r: classic::SyncGroupResponse) -> SyncGroupResponse {
    let response = SyncGroupResponse::default()
        .with_error_code(errors::group_code(r.error.as_ref()))
        .with_assignment(r.assignment);
    if version >= 5 {
        response
            .with_protocol_type(r.protocol_type.map(StrBytes::from_string))
            .with_protocol_name(r.protocol_name.map(StrBytes::from_string))
    } else {
        response
    }
}
