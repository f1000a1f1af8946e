//! Produce (API 0): append each partition's record batches to its log.
//!
//! Batches are stored verbatim (only base offset and leader epoch are set, outside the
//! CRC); nothing is decoded past the batch header. On this single broker every replica
//! has a record once it is in the log, so acks=1 and acks=-1 are answered alike after
//! the append; acks=0 gets no response at all (the dispatcher drops it, see
//! `crate::dispatch`). Requests with a transactional id are refused until transactions
//! land.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    ApiKey, ProduceRequest, ProduceResponse, RequestHeader, RequestKind, ResponseKind,
};
use kafka_protocol::protocol::StrBytes;
use strom_coordinator::Topic;

use crate::broker::Broker;
use crate::error::ServerError;
use crate::handlers::HandlerFuture;
use crate::handlers::blocking::run_blocking;
use crate::handlers::errors;

pub fn handle(broker: Arc<Broker>, header: RequestHeader, request: RequestKind) -> HandlerFuture {
    Box::pin(async move {
        let RequestKind::Produce(request) = request else {
            return Err(ServerError::HandlerMismatch {
                expected: ApiKey::Produce,
            });
        };
        let version = header.request_api_version;
        let response =
            run_blocking(ApiKey::Produce, move || produce(&broker, version, request)).await?;
        Ok(ResponseKind::Produce(response))
    })
}

/// Why every partition of the request is refused, if it is.
fn request_error(request: &ProduceRequest) -> Option<(ResponseError, &'static str)> {
    if request.transactional_id.is_some() {
        return Some((
            ResponseError::TransactionalIdAuthorizationFailed,
            "transactions are not supported by this broker yet",
        ));
    }
    if !matches!(request.acks, -1..=1) {
        return Some((
            ResponseError::InvalidRequiredAcks,
            "acks must be -1, 0 or 1",
        ));
    }
    None
}

fn produce(broker: &Broker, version: i16, request: ProduceRequest) -> ProduceResponse {
    let coordinator = broker.coordinator();
    let refused = request_error(&request);
    let responses = request
        .topic_data
        .into_iter()
        .map(|topic_data| {
            // v13 names topics by id (KIP-516); earlier versions by name.
            let topic: Option<Arc<Topic>> = if version >= 13 {
                coordinator.topic_by_id(topic_data.topic_id)
            } else {
                coordinator.topic(&topic_data.name)
            };
            let unknown = if version >= 13 {
                ResponseError::UnknownTopicId
            } else {
                ResponseError::UnknownTopicOrPartition
            };
            let partition_responses = topic_data
                .partition_data
                .into_iter()
                .map(|data| {
                    let index = data.index;
                    let failed = |error: ResponseError, message: String| {
                        with_message(
                            version,
                            PartitionProduceResponse::default()
                                .with_index(index)
                                .with_error_code(error.code())
                                .with_base_offset(-1)
                                .with_log_append_time_ms(-1),
                            message,
                        )
                    };
                    if let Some((error, why)) = refused {
                        return failed(error, why.to_string());
                    }
                    let Some(partition) = topic.as_ref().and_then(|t| t.partition(index)) else {
                        return failed(unknown, format!("unknown partition {index}"));
                    };
                    let max_message_bytes = topic.as_ref().map_or(0, |t| t.max_message_bytes());
                    let records = data.records.unwrap_or_else(Bytes::new);
                    match partition.append(records, max_message_bytes) {
                        Ok(outcome) => {
                            let ok = PartitionProduceResponse::default()
                                .with_index(index)
                                .with_base_offset(outcome.base_offset as i64)
                                // CreateTime topics: Kafka answers -1 (no LogAppendTime yet).
                                .with_log_append_time_ms(-1);
                            if version >= 5 {
                                ok.with_log_start_offset(outcome.log_start_offset as i64)
                            } else {
                                ok
                            }
                        }
                        Err(e) => {
                            let (code, message) = errors::code_and_message(&e);
                            tracing::warn!(
                                topic = partition.topic(),
                                partition = index,
                                error = %e,
                                "produce refused"
                            );
                            with_message(
                                version,
                                PartitionProduceResponse::default()
                                    .with_index(index)
                                    .with_error_code(code)
                                    .with_base_offset(-1)
                                    .with_log_append_time_ms(-1),
                                message.unwrap_or_default(),
                            )
                        }
                    }
                })
                .collect();
            TopicProduceResponse::default()
                .with_name(topic_data.name)
                .with_topic_id(topic_data.topic_id)
                .with_partition_responses(partition_responses)
        })
        .collect();
    ProduceResponse::default().with_responses(responses)
}

/// Answers a Produce v2 request with UNSUPPORTED_VERSION for every partition.
///
/// Produce v0-v2 are advertised (librdkafka turns compression off unless ApiVersions
/// lists Produce from v0, KAFKA-18659) but not served: they would carry magic 0/1
/// message sets. `kafka-protocol` decodes Produce from v3 only; a v2 request is a v3
/// request without the leading nullable transactional id, and a v2 response has the v3
/// layout, so prefixing a null id lets the codec read it and the v3 encoder write the
/// answer. v0 and v1 differ in their responses too and are refused by closing the
/// connection, as Kafka 4 does for versions it no longer serves.
pub fn refuse_v2(correlation_id: i32, body: Bytes) -> crate::error::Result<Bytes> {
    use kafka_protocol::protocol::Decodable;
    let mut v3 = bytes::BytesMut::with_capacity(body.len() + 2);
    v3.extend_from_slice(&(-1i16).to_be_bytes());
    v3.extend_from_slice(&body);
    let mut v3 = v3.freeze();
    let request =
        ProduceRequest::decode(&mut v3, 3).map_err(|e| ServerError::MalformedRequest {
            api: ApiKey::Produce,
            version: 2,
            reason: format!("{e:#}"),
        })?;
    let responses = request
        .topic_data
        .into_iter()
        .map(|t| {
            let partitions = t
                .partition_data
                .iter()
                .map(|p| {
                    PartitionProduceResponse::default()
                        .with_index(p.index)
                        .with_error_code(ResponseError::UnsupportedVersion.code())
                        .with_base_offset(-1)
                        .with_log_append_time_ms(-1)
                })
                .collect();
            TopicProduceResponse::default()
                .with_name(t.name)
                .with_partition_responses(partitions)
        })
        .collect();
    let response = ResponseKind::Produce(ProduceResponse::default().with_responses(responses));
    crate::dispatch::encode_response(ApiKey::Produce, 3, correlation_id, &response)
}

/// Adds the error message where the version has the field (v8+).
fn with_message(
    version: i16,
    response: PartitionProduceResponse,
    message: String,
) -> PartitionProduceResponse {
    if version >= 8 {
        response.with_error_message(Some(StrBytes::from_string(message)))
    } else {
        response
    }
}

/// Whether any partition of a produce response failed (acks=0 closes the connection
/// then, as Kafka does, since the client gets no response to learn it from).
pub fn has_errors(response: &ProduceResponse) -> bool {
    response
        .responses
        .iter()
        .flat_map(|t| &t.partition_responses)
        .any(|p| p.error_code != 0)
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::protocol::Encodable;
    use strom_storage::testing::encode_batch;

    use super::*;
    use crate::test_support::{self, T0, create_topic, response_as};

    fn request(topic: &str, partition: i32, records: Bytes) -> ProduceRequest {
        ProduceRequest::default()
            .with_acks(-1)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_string(topic.into())))
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(partition)
                            .with_records(Some(records)),
                    ]),
            ])
    }

    async fn call(
        broker: &Arc<Broker>,
        version: i16,
        request: ProduceRequest,
    ) -> PartitionProduceResponse {
        let r = response_as!(
            Produce,
            test_support::call(handle, broker, version, request.into()).await
        );
        r.encode(&mut bytes::BytesMut::new(), version)
            .expect("encodes");
        r.responses[0].partition_responses[0].clone()
    }

    #[tokio::test]
    async fn appends_and_reports_errors_per_partition() {
        let t = test_support::broker();
        create_topic(&t.broker, "t", 2, &[]);
        let batch = Bytes::from(encode_batch(3, T0, T0, -1, b"abc"));
        let ok = call(&t.broker, 9, request("t", 1, batch.clone())).await;
        assert_eq!(
            (ok.error_code, ok.base_offset, ok.log_start_offset),
            (0, 0, 0)
        );
        // Old versions lack log_start_offset and error_message, and still encode.
        for v in 3..=4 {
            let r = call(&t.broker, v, request("t", 1, batch.clone())).await;
            assert_eq!((r.error_code, r.log_start_offset), (0, -1));
            let r = call(&t.broker, v, request("t", 7, batch.clone())).await;
            assert_eq!(r.error_code, ResponseError::UnknownTopicOrPartition.code());
        }
        let ok = call(&t.broker, 9, request("t", 1, batch.clone())).await;
        assert_eq!(ok.base_offset, 9, "after 3 + 2x3 records");

        let unknown = call(&t.broker, 9, request("t", 7, batch.clone())).await;
        assert_eq!(
            unknown.error_code,
            ResponseError::UnknownTopicOrPartition.code()
        );
        let unknown = call(&t.broker, 9, request("nope", 0, batch.clone())).await;
        assert_eq!(
            unknown.error_code,
            ResponseError::UnknownTopicOrPartition.code()
        );

        let mut corrupt = batch.to_vec();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 1;
        let r = call(&t.broker, 9, request("t", 0, Bytes::from(corrupt))).await;
        assert_eq!(r.error_code, ResponseError::CorruptMessage.code());
        assert!(r.error_message.is_some());

        let mut old = batch.to_vec();
        old[16] = 1; // magic v1
        let r = call(&t.broker, 9, request("t", 0, Bytes::from(old))).await;
        assert_eq!(
            r.error_code,
            ResponseError::UnsupportedForMessageFormat.code()
        );

        let r = call(&t.broker, 9, request("t", 0, batch.clone()).with_acks(2)).await;
        assert_eq!(r.error_code, ResponseError::InvalidRequiredAcks.code());
        let txn = request("t", 0, batch.clone())
            .with_transactional_id(Some(StrBytes::from_static_str("tx").into()));
        let r = call(&t.broker, 9, txn).await;
        assert_eq!(
            r.error_code,
            ResponseError::TransactionalIdAuthorizationFailed.code()
        );
        let p = t
            .broker
            .coordinator()
            .topic("t")
            .and_then(|t| t.partition(0))
            .expect("p0");
        assert_eq!(
            p.log_end_offset().expect("leo"),
            0,
            "nothing refused was written"
        );
    }

    #[test]
    fn produce_v2_is_advertised_and_refused_with_unsupported_version() {
        use bytes::Buf;
        use kafka_protocol::messages::{RequestHeader, ResponseHeader};
        use kafka_protocol::protocol::Decodable;

        let advertised = crate::api_versions::supported();
        let produce = advertised
            .api_keys
            .iter()
            .find(|k| k.api_key == ApiKey::Produce as i16)
            .expect("Produce advertised");
        assert_eq!(produce.min_version, 0, "librdkafka needs Produce from v0");
        // A v2 body is a v3 body without the leading null transactional id.
        let mut v3 = bytes::BytesMut::new();
        request("t", 4, Bytes::from_static(b"old"))
            .encode(&mut v3, 3)
            .expect("encode");
        let v2 = v3.freeze().slice(2..);
        let header = RequestHeader::default()
            .with_request_api_key(ApiKey::Produce as i16)
            .with_request_api_version(2)
            .with_correlation_id(77);
        let route = crate::dispatch::route(ApiKey::Produce, &header, v2).expect("answered");
        let crate::dispatch::Route::Respond(mut frame) = route else {
            panic!("v2 must be answered without a handler");
        };
        let size = frame.get_i32();
        assert_eq!(size as usize, frame.len());
        assert_eq!(
            ResponseHeader::decode(&mut frame, 0)
                .expect("header")
                .correlation_id,
            77
        );
        // The codec has no v2; a v2 response body is laid out exactly as v3.
        let response = ProduceResponse::decode(&mut frame, 3).expect("v2 body");
        let p = &response.responses[0].partition_responses[0];
        assert_eq!(
            (p.index, p.error_code),
            (4, ResponseError::UnsupportedVersion.code())
        );
        assert!(!frame.has_remaining());
        // v0 and v1 close the connection.
        let v1 = header.clone().with_request_api_version(1);
        assert!(crate::dispatch::route(ApiKey::Produce, &v1, Bytes::new()).is_err());
    }
}
