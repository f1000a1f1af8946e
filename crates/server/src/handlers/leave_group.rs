//! LeaveGroup (API 13), v0–v5: members leave a classic group. v0–v2 name one member
//! by `member_id`; v3+ a batch of members (by member id or group instance id) with a
//! result each; v5+ a reason per member.

use std::sync::Arc;

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{
    ApiKey, LeaveGroupRequest, LeaveGroupResponse, RequestHeader, RequestKind, ResponseKind,
};
use kafka_protocol::protocol::StrBytes;
use strom_coordinator::group::classic::{self, LeavingMember};

use crate::broker::Broker;
use crate::error::ServerError;
use crate::groups::Command;
use crate::handlers::HandlerFuture;
use crate::handlers::errors;

pub fn handle(broker: Arc<Broker>, header: RequestHeader, request: RequestKind) -> HandlerFuture {
    Box::pin(async move {
        let RequestKind::LeaveGroup(r) = request else {
            return Err(ServerError::HandlerMismatch {
                expected: ApiKey::LeaveGroup,
            });
        };
        let version = header.request_api_version;
        let req = to_request(version, r);
        let group_id = req.group_id.clone();
        let answer = broker
            .groups()
            .call(&group_id, |reply| Command::Leave {
                request: req,
                reply,
            })
            .await;
        let response = match answer {
            Ok(Ok(left)) => to_response(version, left),
            Ok(Err(e)) => {
                LeaveGroupResponse::default().with_error_code(errors::group_error(&e).code())
            }
            Err(u) => LeaveGroupResponse::default().with_error_code(errors::unavailable(u).code()),
        };
        Ok(ResponseKind::LeaveGroup(response))
    })
}

fn to_request(version: i16, r: LeaveGroupRequest) -> classic::LeaveGroupRequest {
    let members = if version >= 3 {
        r.members
            .into_iter()
            .map(|m| LeavingMember {
                member_id: m.member_id.to_string(),
                group_instance_id: m.group_instance_id.map(|s| s.to_string()),
                reason: m.reason.map(|s| s.to_string()),
            })
            .collect()
    } else {
        vec![LeavingMember {
            member_id: r.member_id.to_string(),
            group_instance_id: None,
            reason: None,
        }]
    };
    classic::LeaveGroupRequest {
        group_id: r.group_id.0.to_string(),
        members,
    }
}

fn to_response(version: i16, left: Vec<classic::LeftMember>) -> LeaveGroupResponse {
    if version < 3 {
        // One member: its error is the response's.
        let code = left
            .first()
            .map_or(0, |m| errors::group_code(m.error.as_ref()));
        return LeaveGroupResponse::default().with_error_code(code);
    }
    let members = left
        .into_iter()
        .map(|m| {
            MemberResponse::default()
                .with_member_id(StrBytes::from_string(m.member_id))
                .with_group_instance_id(m.group_instance_id.map(StrBytes::from_string))
                .with_error_code(errors::group_code(m.error.as_ref()))
        })
        .collect();
    LeaveGroupResponse::default().with_members(members)
}
