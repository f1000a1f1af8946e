//! Heartbeat (API 12), v0–v4: a member says it is alive, and learns whether the group
//! is rebalancing (REBALANCE_IN_PROGRESS). v3+ carry the group instance id.

use std::sync::Arc;

use kafka_protocol::messages::{
    ApiKey, HeartbeatResponse, RequestHeader, RequestKind, ResponseKind,
};
use strom_coordinator::group::classic::HeartbeatRequest;

use crate::broker::Broker;
use crate::error::ServerError;
use crate::groups::Command;
use crate::handlers::HandlerFuture;
use crate::handlers::errors;

pub fn handle(broker: Arc<Broker>, _header: RequestHeader, request: RequestKind) -> HandlerFuture {
    Box::pin(async move {
        let RequestKind::Heartbeat(r) = request else {
            return Err(ServerError::HandlerMismatch {
                expected: ApiKey::Heartbeat,
            });
        };
        let req = HeartbeatRequest {
            group_id: r.group_id.0.to_string(),
            generation_id: r.generation_id,
            member_id: r.member_id.to_string(),
            group_instance_id: r.group_instance_id.map(|s| s.to_string()),
        };
        let group_id = req.group_id.clone();
        let answer = broker
            .groups()
            .call(&group_id, |reply| Command::Heartbeat {
                request: req,
                reply,
            })
            .await;
        let code = match answer {
            Ok(result) => errors::group_code(result.err().as_ref()),
            Err(u) => errors::unavailable(u).code(),
        };
        Ok(ResponseKind::Heartbeat(
            HeartbeatResponse::default().with_error_code(code),
        ))
    })
}
