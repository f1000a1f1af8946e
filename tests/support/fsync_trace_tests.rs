//! Tests of the fsync proof on hand-written traces: it accepts the right order and
//! rejects the wrong one.

use super::*;

/// The proof can fail: the same produce, once with the fsync before the response and
/// once after it.
#[test]
fn fsync_proof_rejects_a_response_sent_before_the_fsync() {
    use bytes::BytesMut;
    use kafka_protocol::messages::produce_response::{
        PartitionProduceResponse, TopicProduceResponse,
    };
    use kafka_protocol::messages::{ApiKey, ProduceResponse, ResponseHeader, TopicName};
    use kafka_protocol::protocol::{Encodable, StrBytes};

    let version: i16 = 9;
    let mut request = vec![0u8; 4];
    request.extend_from_slice(&(ApiKey::Produce as i16).to_be_bytes());
    request.extend_from_slice(&version.to_be_bytes());
    request.extend_from_slice(&7i32.to_be_bytes());
    request.extend_from_slice(b"rest of the request");
    let len = (request.len() - 4) as i32;
    request[..4].copy_from_slice(&len.to_be_bytes());
    let mut body = BytesMut::new();
    ResponseHeader::default()
        .with_correlation_id(7)
        .encode(&mut body, ApiKey::Produce.response_header_version(version))
        .expect("header");
    ProduceResponse::default()
        .with_responses(vec![
            TopicProduceResponse::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partition_responses(vec![
                    PartitionProduceResponse::default()
                        .with_index(3)
                        .with_base_offset(40),
                ]),
        ])
        .encode(&mut body, version)
        .expect("body");
    let mut response = (body.len() as i32).to_be_bytes().to_vec();
    response.extend_from_slice(&body);
    let mut prefix = 40u64.to_be_bytes().to_vec();
    prefix.extend_from_slice(&[0; 8]);
    let mut rest = vec![2u8, 0, 0, 0, 0, 0, 0];
    rest.extend_from_slice(&4i32.to_be_bytes());
    let e = escape;
    let log = e(b"/d/t-3/00000000000000000000.log");
    let lines = |sync_first: bool| {
        let sync = format!("11 fdatasync(9<{log}>) = 0\n");
        let send = format!(
            "10 sendto(7<socket:[1]>, \"{}\", {n}, MSG_NOSIGNAL, NULL, 0) = {n}\n",
            e(&response),
            n = response.len()
        );
        format!(
            "10 recvfrom(7<socket:[1]>,  <unfinished ...>\n\
             11 writev(9<{log}>, [{{iov_base=\"{}\", iov_len=16}}, {{iov_base=\"{}\", \
             iov_len={}}}], 2)      = {}\n\
             10 <... recvfrom resumed>\"{}\", 65536, 0, NULL, NULL) = {}\n{}{}",
            e(&prefix),
            e(&rest),
            rest.len(),
            16 + rest.len(),
            e(&request),
            request.len(),
            if sync_first { &sync } else { &send },
            if sync_first { &send } else { &sync },
        )
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("strace.1");
    fs::write(&file, lines(true)).expect("write trace");
    let proof = check(std::slice::from_ref(&file), "t").expect("fsync before the response");
    assert_eq!((proof.produce_responses, proof.fsynced_after_write), (1, 1));
    assert!(proof.covers(3, 40) && proof.covers(3, 44) && !proof.covers(3, 45));
    fs::write(&file, lines(false)).expect("write trace");
    let err = check(&[file], "t").expect_err("fsync after the response");
    assert!(err.contains("without an fsync"), "{err}");

    // A crash inside the write, then a retry answered as a duplicate by the next
    // start: proven only once that start has fsynced the segment.
    let killed = format!(
        "11 writev(9<{log}>, [{{iov_base=\"{}\", iov_len=16}}, {{iov_base=\"{}\", \
         iov_len={}}}], 2 <unfinished ...>\n",
        e(&prefix),
        e(&rest),
        rest.len()
    );
    let restarted = |recovery_sync: bool| {
        format!(
            "{}10 recvfrom(7<socket:[2]>, \"{}\", 65536, 0, NULL, NULL) = {}\n\
             10 sendto(7<socket:[2]>, \"{}\", {n}, MSG_NOSIGNAL, NULL, 0) = {n}\n",
            if recovery_sync {
                format!("12 fdatasync(9<{log}>) = 0\n")
            } else {
                String::new()
            },
            e(&request),
            request.len(),
            e(&response),
            n = response.len()
        )
    };
    let (first, second) = (dir.path().join("strace.1"), dir.path().join("strace.2"));
    fs::write(&first, &killed).expect("write trace");
    fs::write(&second, restarted(true)).expect("write trace");
    let files = [first.clone(), second.clone()];
    let proof = check(&files, "t").expect("duplicate after the recovery fsync");
    assert_eq!(
        (proof.fsynced_after_write, proof.duplicates_fsynced),
        (0, 1)
    );
    assert!(proof.covers(3, 44));
    fs::write(&second, restarted(false)).expect("write trace");
    let err = check(&files, "t").expect_err("duplicate without a recovery fsync");
    assert!(err.contains("before this start fsynced"), "{err}");

    // The SIGKILL lands between the kernel sending a response and strace seeing the
    // send return (`= ?`): the client may have the acknowledgement, so the proof must
    // hold for it (and it can fail: no fsync before that send).
    let interrupted = |sync: bool| {
        format!(
            "10 recvfrom(7<socket:[3]>, \"{}\", 65536, 0, NULL, NULL) = {}\n\
             11 writev(9<{log}>, [{{iov_base=\"{}\", iov_len=16}}, {{iov_base=\"{}\", \
             iov_len={}}}], 2) = {}\n{}\
             10 sendto(7<socket:[3]>, \"{}\", {n}, MSG_NOSIGNAL, NULL, 0 <unfinished ...>\n\
             10 <... sendto resumed>) = ?\n\
             10 +++ killed by SIGKILL +++\n",
            e(&request),
            request.len(),
            e(&prefix),
            e(&rest),
            rest.len(),
            16 + rest.len(),
            if sync {
                format!("11 fdatasync(9<{log}>) = 0\n")
            } else {
                String::new()
            },
            e(&response),
            n = response.len()
        )
    };
    let file = dir.path().join("strace.3");
    fs::write(&file, interrupted(true)).expect("write trace");
    let proof = check(std::slice::from_ref(&file), "t").expect("interrupted send after fsync");
    assert_eq!(
        (
            proof.produce_responses,
            proof.fsynced_after_write,
            proof.interrupted_sends
        ),
        (1, 1, 1)
    );
    assert!(proof.covers(3, 44));
    fs::write(&file, interrupted(false)).expect("write trace");
    let err = check(&[file], "t").expect_err("interrupted send without an fsync");
    assert!(err.contains("without an fsync"), "{err}");
}
