//! DeleteGroups (API 42), v0–v2: deletes Empty groups and their committed offsets.
//! A group with members is NON_EMPTY_GROUP, an unknown one GROUP_ID_NOT_FOUND.

use std::sync::Arc;

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{
    ApiKey, DeleteGroupsResponse, RequestHeader, RequestKind, ResponseKind,
};

use crate::broker::Broker;
use crate::error::ServerError;
use crate::groups::Command;
use crate::handlers::HandlerFuture;
use crate::handlers::errors;

pub fn handle(broker: Arc<Broker>, _header: RequestHeader, request: RequestKind) -> HandlerFuture {
    Box::pin(async move {
        let RequestKind::DeleteGroups(request) = request else {
            return Err(ServerError::HandlerMismatch {
                expected: ApiKey::DeleteGroups,
            });
        };
        let mut results = Vec::with_capacity(request.groups_names.len());
        for id in request.groups_names {
            let group_id = id.0.to_string();
            let answer = broker
                .groups()
                .call(&group_id, |reply| Command::DeleteGroups {
                    group_ids: vec![group_id.clone()],
                    reply,
                })
                .await;
            let code = match answer {
                Ok(list) => list
                    .first()
                    .map_or(0, |(_, r)| errors::group_code(r.as_ref().err())),
                Err(u) => errors::unavailable(u).code(),
            };
            results.push(
                DeletableGroupResult::default()
                    .with_group_id(id)
                    .with_error_code(code),
            );
        }
        Ok(ResponseKind::DeleteGroups(
            DeleteGroupsResponse::default().with_results(results),
        ))
    })
}
