//! DeleteTopics (API 20), v1–v6: deletes topics by name (v1–v5 `topic_names`), or by
//! name or id (v6 `topics`).
//!
//! As Kafka (KRaft) does: a name or id given more than once gets one INVALID_REQUEST
//! result and is not deleted; a v6 entry with neither or both of name and id is
//! INVALID_REQUEST; an unknown name is UNKNOWN_TOPIC_OR_PARTITION, an unknown id
//! UNKNOWN_TOPIC_ID (with a null name). A deleted topic's result carries its name and
//! (v6) id. Results keep the request's order (Kafka shuffles them).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    ApiKey, DeleteTopicsRequest, DeleteTopicsResponse, RequestHeader, RequestKind, ResponseKind,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use tracing::debug;
use uuid::Uuid;

use crate::broker::Broker;
use crate::error::ServerError;
use crate::handlers::blocking::run_blocking;
use crate::handlers::{HandlerFuture, errors};

/// Serves DeleteTopics; see the module docs.
pub fn handle(broker: Arc<Broker>, _header: RequestHeader, request: RequestKind) -> HandlerFuture {
    Box::pin(async move {
        let RequestKind::DeleteTopics(request) = request else {
            return Err(ServerError::HandlerMismatch {
                expected: ApiKey::DeleteTopics,
            });
        };
        // Deleting a topic removes its files.
        let response = run_blocking(ApiKey::DeleteTopics, move || {
            delete_topics(&broker, &request)
        })
        .await?;
        Ok(ResponseKind::DeleteTopics(response))
    })
}

/// A request entry: a topic by name or by id, or a malformed one.
enum Target {
    Name(String),
    Id(Uuid),
    Invalid {
        name: Option<String>,
        id: Uuid,
        message: &'static str,
    },
}

fn delete_topics(broker: &Broker, request: &DeleteTopicsRequest) -> DeleteTopicsResponse {
    // Only one of the two lists exists in any version; Kafka reads both, so do we.
    let mut targets: Vec<Target> = request
        .topic_names
        .iter()
        .map(|n| Target::Name(n.to_string()))
        .collect();
    targets.extend(request.topics.iter().map(|t| match (&t.name, t.topic_id) {
        (None, id) if id.is_nil() => Target::Invalid {
            name: None,
            id,
            message: "Neither topic name nor id were specified.",
        },
        (None, id) => Target::Id(id),
        (Some(name), id) if id.is_nil() => Target::Name(name.to_string()),
        (Some(name), id) => Target::Invalid {
            name: Some(name.to_string()),
            id,
            message: "You may not specify both topic name and topic id.",
        },
    }));

    let mut name_counts: HashMap<&str, usize> = HashMap::new();
    let mut id_counts: HashMap<Uuid, usize> = HashMap::new();
    for t in &targets {
        match t {
            Target::Name(n) => *name_counts.entry(n).or_default() += 1,
            Target::Id(id) => *id_counts.entry(*id).or_default() += 1,
            Target::Invalid { .. } => {}
        }
    }
    let coordinator = broker.coordinator();
    // Every entry is resolved before anything is deleted, so that a name and an id of
    // the same topic are seen as such.
    let mut claimed_ids: HashSet<Uuid> = id_counts.keys().copied().collect();
    let mut reported = HashSet::new();
    let mut plan: Vec<Result<String, DeletableTopicResult>> = Vec::with_capacity(targets.len());
    for target in &targets {
        let planned = match target {
            Target::Invalid { name, id, message } => Err(result(
                name.as_deref(),
                *id,
                ResponseError::InvalidRequest.code(),
                message,
            )),
            Target::Name(name) if name_counts[name.as_str()] > 1 => {
                if !reported.insert(format!("name:{name}")) {
                    continue;
                }
                let code = ResponseError::InvalidRequest.code();
                Err(result(
                    Some(name),
                    Uuid::nil(),
                    code,
                    "Duplicate topic name.",
                ))
            }
            Target::Id(id) if id_counts[id] > 1 => {
                if !reported.insert(format!("id:{id}")) {
                    continue;
                }
                let code = ResponseError::InvalidRequest.code();
                Err(result(None, *id, code, "Duplicate topic id."))
            }
            Target::Name(name) => match coordinator.topic(name) {
                None => Err(result(
                    Some(name),
                    Uuid::nil(),
                    ResponseError::UnknownTopicOrPartition.code(),
                    &format!("The topic '{name}' does not exist."),
                )),
                Some(t) if !claimed_ids.insert(t.id()) => Err(result(
                    Some(name),
                    t.id(),
                    ResponseError::InvalidRequest.code(),
                    "The provided topic name maps to an ID that was already supplied.",
                )),
                Some(_) => Ok(name.clone()),
            },
            Target::Id(id) => match coordinator.topic_by_id(*id) {
                None => Err(result(
                    None,
                    *id,
                    ResponseError::UnknownTopicId.code(),
                    &format!("The topic id {id} does not exist."),
                )),
                Some(t) => Ok(t.name().to_string()),
            },
        };
        plan.push(planned);
    }
    let responses = plan
        .into_iter()
        .map(|p| match p {
            Ok(name) => delete(broker, &name),
            Err(refused) => refused,
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}

fn delete(broker: &Broker, name: &str) -> DeletableTopicResult {
    match broker.coordinator().delete_topic(name) {
        Ok(id) => DeletableTopicResult::default()
            .with_name(Some(topic_name(name)))
            .with_topic_id(id)
            .with_error_code(0)
            .with_error_message(None),
        Err(e) => {
            let (code, message) = errors::code_and_message(&e);
            debug!(topic = name, code, error = %e, "DeleteTopics failed");
            result(Some(name), Uuid::nil(), code, &message.unwrap_or_default())
        }
    }
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

fn result(name: Option<&str>, id: Uuid, code: i16, message: &str) -> DeletableTopicResult {
    DeletableTopicResult::default()
        .with_name(name.map(topic_name))
        .with_topic_id(id)
        .with_error_code(code)
        .with_error_message(Some(StrBytes::from_string(message.to_string())))
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::delete_topics_request::DeleteTopicState;

    use super::*;
    use crate::test_support::{self, TestBroker, response_as, round_trip};

    async fn call(
        b: &TestBroker,
        version: i16,
        request: DeleteTopicsRequest,
    ) -> DeleteTopicsResponse {
        let r = response_as!(
            DeleteTopics,
            test_support::call(handle, &b.broker, version, request.into()).await
        );
        round_trip(&r, version)
    }

    fn create(b: &TestBroker, name: &str) -> Uuid {
        test_support::create_topic(&b.broker, name, 2, &[]).id
    }

    fn by_names(names: &[&str]) -> DeleteTopicsRequest {
        DeleteTopicsRequest::default()
            .with_topic_names(names.iter().map(|n| topic_name(n)).collect())
    }

    fn state(name: Option<&str>, id: Uuid) -> DeleteTopicState {
        DeleteTopicState::default()
            .with_name(name.map(topic_name))
            .with_topic_id(id)
    }

    #[tokio::test]
    async fn deletes_by_name_in_every_version_before_6() {
        let b = test_support::broker();
        for v in 1..=5 {
            create(&b, "gone");
            let r = call(&b, v, by_names(&["gone", "never"])).await;
            assert_eq!(r.responses.len(), 2, "v{v}");
            let ok = &r.responses[0];
            assert_eq!(ok.name.as_deref().map(|n| n.as_str()), Some("gone"));
            assert_eq!((ok.error_code, &ok.error_message), (0, &None), "v{v}");
            assert_eq!(ok.topic_id, Uuid::nil(), "v{v}: no topic id before v6");
            let unknown = &r.responses[1];
            assert_eq!(unknown.error_code, 3, "v{v}");
            assert_eq!(unknown.error_message.is_some(), v >= 5, "v{v}");
            assert!(b.broker.coordinator().topic("gone").is_none());
        }
    }

    #[tokio::test]
    async fn v6_by_name_or_id() {
        let b = test_support::broker();
        let a = create(&b, "a");
        create(&b, "b");
        let stranger = Uuid::new_v4();
        let req = DeleteTopicsRequest::default().with_topics(vec![
            state(None, a),
            state(Some("b"), Uuid::nil()),
            state(None, stranger),
            state(None, Uuid::nil()),
            state(Some("b"), a),
            state(Some("nope"), Uuid::nil()),
        ]);
        let r = call(&b, 6, req).await;
        let seen: Vec<(Option<String>, Uuid, i16)> = r
            .responses
            .iter()
            .map(|t| {
                (
                    t.name.as_ref().map(|n| n.to_string()),
                    t.topic_id,
                    t.error_code,
                )
            })
            .collect();
        let b_id = seen[1].1;
        assert_ne!(b_id, Uuid::nil());
        assert_eq!(
            seen,
            vec![
                (Some("a".into()), a, 0),
                (Some("b".into()), b_id, 0),
                (None, stranger, 100),
                (None, Uuid::nil(), 42),
                (Some("b".into()), a, 42),
                (Some("nope".into()), Uuid::nil(), 3),
            ]
        );
        assert!(b.broker.coordinator().topics().is_empty());
    }

    #[tokio::test]
    async fn duplicates_are_refused_once_and_not_deleted() {
        let b = test_support::broker();
        let id = create(&b, "twice");
        create(&b, "also");
        let r = call(&b, 4, by_names(&["twice", "twice"])).await;
        assert_eq!(r.responses.len(), 1);
        assert_eq!(r.responses[0].error_code, 42);
        let r = call(
            &b,
            6,
            DeleteTopicsRequest::default().with_topics(vec![
                state(None, id),
                state(None, id),
                state(Some("also"), Uuid::nil()),
            ]),
        )
        .await;
        assert_eq!(r.responses.len(), 2);
        assert_eq!(
            (r.responses[0].name.as_ref(), r.responses[0].error_code),
            (None, 42)
        );
        assert_eq!(r.responses[1].error_code, 0);
        // A name that maps to an id also given by id.
        let r = call(
            &b,
            6,
            DeleteTopicsRequest::default()
                .with_topics(vec![state(None, id), state(Some("twice"), Uuid::nil())]),
        )
        .await;
        assert_eq!(r.responses[0].error_code, 0);
        assert_eq!(r.responses[1].error_code, 42);
        assert!(b.broker.coordinator().topic("twice").is_none());
    }

    #[tokio::test]
    async fn mismatched_request_is_an_error() {
        let b = test_support::broker();
        let res = handle(
            b.broker.clone(),
            RequestHeader::default(),
            RequestKind::Metadata(Default::default()),
        )
        .await;
        assert!(matches!(res, Err(ServerError::HandlerMismatch { .. })));
    }
}
