//! Key and value codecs: golden bytes written out by hand from Kafka's schemas, round
//! trips of Kafka's write versions, and malformed input (property tests in `tests_props`).

use bytes::Bytes;

use super::*;

fn oc_key() -> CoordinatorKey {
    CoordinatorKey::OffsetCommit {
        group: "g".into(),
        topic: "t".into(),
        partition: 5,
    }
}

fn member() -> MemberMetadata {
    MemberMetadata {
        member_id: "m1".into(),
        group_instance_id: None,
        client_id: "c".into(),
        client_host: "/h".into(),
        rebalance_timeout: 300_000,
        session_timeout: 10_000,
        subscription: Bytes::from_static(&[1, 2]),
        assignment: Bytes::from_static(&[3]),
    }
}

fn group_value() -> GroupMetadataValue {
    GroupMetadataValue {
        protocol_type: "consumer".into(),
        generation: 1,
        protocol: Some("range".into()),
        leader: Some("m1".into()),
        current_state_timestamp: 5000,
        members: vec![member()],
    }
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

// Golden bytes: each line is one field of the schema.

const OC_KEY: &[u8] = &[
    0, 1, // record type 1 (OffsetCommit)
    0, 1, b'g', // group
    0, 1, b't', // topic
    0, 0, 0, 5, // partition
];

#[test]
fn offset_commit_key_golden() {
    assert_eq!(oc_key().encode().unwrap(), OC_KEY);
    assert_eq!(CoordinatorKey::decode(OC_KEY).unwrap(), oc_key());
}

#[test]
fn legacy_offset_commit_key_type_0_reads() {
    let mut legacy = OC_KEY.to_vec();
    legacy[1] = 0;
    assert_eq!(CoordinatorKey::decode(&legacy).unwrap(), oc_key());
}

#[test]
fn group_metadata_key_golden() {
    let key = CoordinatorKey::GroupMetadata {
        group: "grp".into(),
    };
    let golden = [0, 2, 0, 3, b'g', b'r', b'p'];
    assert_eq!(key.encode().unwrap(), &golden[..]);
    assert_eq!(CoordinatorKey::decode(&golden).unwrap(), key);
    assert_eq!(key.group(), "grp");
}

#[test]
fn unknown_key_types_are_typed_errors() {
    for t in [3i16, 4, 17, -1, i16::MAX] {
        let mut k = t.to_be_bytes().to_vec();
        k.extend_from_slice(&[0, 1, b'g']);
        assert!(matches!(
            CoordinatorKey::decode(&k),
            Err(RecordError::UnknownRecordType(x)) if x == t
        ));
    }
}

const OC_V3: &[u8] = &[
    0, 3, // version
    0, 0, 0, 0, 0, 0, 0, 42, // offset
    0, 0, 0, 7, // leader epoch
    0, 1, b'm', // metadata
    0, 0, 0, 0, 0, 0, 0x03, 0xe8, // commit timestamp 1000
];

fn oc_value() -> OffsetCommitValue {
    OffsetCommitValue {
        offset: 42,
        leader_epoch: 7,
        metadata: "m".into(),
        commit_timestamp: 1000,
        expire_timestamp: None,
    }
}

#[test]
fn offset_commit_value_v3_golden() {
    let v = oc_value();
    assert_eq!(v.write_version(), 3);
    assert_eq!(v.encode().unwrap(), OC_V3);
    assert_eq!(OffsetCommitValue::decode(OC_V3).unwrap(), v);
}

#[test]
fn offset_commit_value_v1_golden_when_expiring() {
    let v = OffsetCommitValue {
        leader_epoch: NO_LEADER_EPOCH,
        metadata: String::new(),
        expire_timestamp: Some(2000),
        ..oc_value()
    };
    let golden = [
        &[0, 1][..],                     // version
        &[0, 0, 0, 0, 0, 0, 0, 42],      // offset
        &[0, 0],                         // metadata ""
        &[0, 0, 0, 0, 0, 0, 0x03, 0xe8], // commit timestamp
        &[0, 0, 0, 0, 0, 0, 0x07, 0xd0], // expire timestamp 2000
    ]
    .concat();
    assert_eq!(v.write_version(), 1);
    assert_eq!(v.encode().unwrap(), &golden[..]);
    assert_eq!(OffsetCommitValue::decode(&golden).unwrap(), v);
    // v1 has no leader epoch: Kafka drops it.
    let with_epoch = OffsetCommitValue {
        leader_epoch: 9,
        ..v.clone()
    };
    assert_eq!(with_epoch.encode().unwrap(), &golden[..]);
}

#[test]
fn offset_commit_value_v0_v2_golden() {
    for version in [0u8, 2] {
        let golden = cat(&[
            &[0, version],
            &[0, 0, 0, 0, 0, 0, 0, 42],
            &[0, 1, b'm'],
            &[0, 0, 0, 0, 0, 0, 0x03, 0xe8],
        ]);
        let expected = OffsetCommitValue {
            leader_epoch: NO_LEADER_EPOCH,
            ..oc_value()
        };
        assert_eq!(OffsetCommitValue::decode(&golden).unwrap(), expected);
        assert_eq!(oc_value().encode_version(version.into()).unwrap(), golden);
    }
}

#[test]
fn offset_commit_value_v4_golden_with_unknown_tags() {
    let golden = cat(&[
        &[0, 4],
        &[0, 0, 0, 0, 0, 0, 0, 42],
        &[0, 0, 0, 7],
        &[2, b'm'], // compact string: length + 1
        &[0, 0, 0, 0, 0, 0, 0x03, 0xe8],
        &[0], // no tagged fields
    ]);
    assert_eq!(oc_value().encode_version(4).unwrap(), golden);
    assert_eq!(OffsetCommitValue::decode(&golden).unwrap(), oc_value());
    // Tagged fields a later Kafka may add are skipped.
    let mut tagged = golden[..golden.len() - 1].to_vec();
    tagged.extend_from_slice(&[2, 0, 1, 0xaa, 5, 2, 0xbb, 0xcc]);
    assert_eq!(OffsetCommitValue::decode(&tagged).unwrap(), oc_value());
}

#[test]
fn v1_expire_timestamp_of_minus_one_reads_as_none() {
    let golden = cat(&[
        &[0, 1],
        &[0, 0, 0, 0, 0, 0, 0, 42],
        &[0, 1, b'm'],
        &[0, 0, 0, 0, 0, 0, 0x03, 0xe8],
        &[0xff; 8],
    ]);
    let v = OffsetCommitValue::decode(&golden).unwrap();
    assert_eq!(v.expire_timestamp, None);
}

fn gm_v3_golden() -> Vec<u8> {
    cat(&[
        &[0, 3],
        &[0, 8],
        b"consumer",
        &[0, 0, 0, 1], // generation
        &[0, 5],
        b"range",
        &[0, 2],
        b"m1",                           // leader
        &[0, 0, 0, 0, 0, 0, 0x13, 0x88], // current state timestamp 5000
        &[0, 0, 0, 1],                   // one member
        &[0, 2],
        b"m1",                  // member id
        &[0xff, 0xff],          // group instance id: null
        &[0, 1, b'c'],          // client id
        &[0, 2, b'/', b'h'],    // client host
        &[0, 0x04, 0x93, 0xe0], // rebalance timeout 300000
        &[0, 0, 0x27, 0x10],    // session timeout 10000
        &[0, 0, 0, 2, 1, 2],    // subscription
        &[0, 0, 0, 1, 3],       // assignment
    ])
}

#[test]
fn group_metadata_value_v3_golden() {
    let golden = gm_v3_golden();
    assert_eq!(group_value().encode().unwrap(), golden);
    assert_eq!(GroupMetadataValue::decode(&golden).unwrap(), group_value());
}

#[test]
fn group_metadata_value_v3_static_member_golden() {
    let mut v = group_value();
    v.members[0].group_instance_id = Some("i".into());
    let golden = gm_v3_golden();
    // The instance id replaces the null (ff ff) after the member id.
    let at = golden.iter().position(|&b| b == 0xff).unwrap();
    let expected = cat(&[&golden[..at], &[0, 1, b'i'], &golden[at + 2..]]);
    assert_eq!(v.encode().unwrap(), expected);
    assert_eq!(GroupMetadataValue::decode(&expected).unwrap(), v);
}

#[test]
fn group_metadata_value_v1_v2_golden() {
    let v3 = gm_v3_golden();
    let null_instance = v3.iter().position(|&b| b == 0xff).unwrap();
    // v2: no group instance id; v1: no current state timestamp either.
    let v2 = cat(&[&[0, 2], &v3[2..null_instance], &v3[null_instance + 2..]]);
    let ts = 2 + 10 + 4 + 7 + 4;
    let v1 = cat(&[&[0, 1], &v2[2..ts], &v2[ts + 8..]]);
    assert_eq!(group_value().encode_version(2).unwrap(), v2);
    assert_eq!(GroupMetadataValue::decode(&v2).unwrap(), group_value());
    let mut expected = group_value();
    expected.current_state_timestamp = -1;
    assert_eq!(group_value().encode_version(1).unwrap(), v1);
    assert_eq!(GroupMetadataValue::decode(&v1).unwrap(), expected);
}

#[test]
fn group_metadata_value_v4_golden() {
    let golden = cat(&[
        &[0, 4],
        &[9],
        b"consumer",
        &[0, 0, 0, 1],
        &[6],
        b"range",
        &[3],
        b"m1",
        &[0, 0, 0, 0, 0, 0, 0x13, 0x88],
        &[2], // compact array: count + 1
        &[3],
        b"m1",
        &[0], // null instance id
        &[2, b'c'],
        &[3, b'/', b'h'],
        &[0, 0x04, 0x93, 0xe0],
        &[0, 0, 0x27, 0x10],
        &[3, 1, 2],
        &[2, 3],
        &[0], // member tagged fields
        &[0], // value tagged fields
    ]);
    assert_eq!(group_value().encode_version(4).unwrap(), golden);
    assert_eq!(GroupMetadataValue::decode(&golden).unwrap(), group_value());
}

#[test]
fn group_metadata_value_v0_golden() {
    let golden = cat(&[
        &[0, 0],
        &[0, 8],
        b"consumer",
        &[0, 0, 0, 1],
        &[0, 5],
        b"range",
        &[0, 2],
        b"m1",
        &[0, 0, 0, 1],
        &[0, 2],
        b"m1",
        &[0, 1, b'c'],
        &[0, 2, b'/', b'h'],
        &[0, 0, 0x27, 0x10],
        &[0, 0, 0, 2, 1, 2],
        &[0, 0, 0, 1, 3],
    ]);
    let mut expected = group_value();
    expected.current_state_timestamp = -1;
    expected.members[0].rebalance_timeout = 10_000; // v0: the session timeout
    assert_eq!(GroupMetadataValue::decode(&golden).unwrap(), expected);
    assert_eq!(group_value().encode_version(0).unwrap(), golden);
}

#[test]
fn empty_group_golden() {
    let v = GroupMetadataValue {
        protocol_type: String::new(),
        generation: 0,
        protocol: None,
        leader: None,
        current_state_timestamp: 7,
        members: vec![],
    };
    let golden = cat(&[
        &[0, 3],
        &[0, 0],
        &[0, 0, 0, 0],
        &[0xff, 0xff],
        &[0xff, 0xff],
        &[0, 0, 0, 0, 0, 0, 0, 7],
        &[0, 0, 0, 0],
    ]);
    assert_eq!(v.encode().unwrap(), golden);
    assert_eq!(GroupMetadataValue::decode(&golden).unwrap(), v);
}

#[test]
fn record_encode_pairs_values_with_keys() {
    let r = CoordinatorRecord::offset_commit("g", "t", 5, Some(oc_value()));
    let (k, v) = r.encode().unwrap();
    assert_eq!(k, OC_KEY);
    assert_eq!(v.as_deref(), Some(OC_V3));
    assert_eq!(CoordinatorRecord::decode(&k, v.as_deref()).unwrap(), r);

    let tomb = CoordinatorRecord::group_metadata("g", None);
    assert!(tomb.is_tombstone());
    let (k, v) = tomb.encode().unwrap();
    assert_eq!(v, None);
    assert_eq!(CoordinatorRecord::decode(&k, None).unwrap(), tomb);

    let wrong = CoordinatorRecord {
        key: oc_key(),
        value: Some(CoordinatorValue::GroupMetadata(group_value())),
    };
    assert!(matches!(wrong.encode(), Err(RecordError::Invalid { .. })));
}

#[test]
fn unsupported_versions_are_refused_both_ways() {
    for version in [-1i16, 5, 100] {
        let mut v = OC_V3.to_vec();
        v[..2].copy_from_slice(&version.to_be_bytes());
        assert!(matches!(
            OffsetCommitValue::decode(&v),
            Err(RecordError::UnsupportedVersion { version: x, .. }) if x == version
        ));
        let mut g = gm_v3_golden();
        g[..2].copy_from_slice(&version.to_be_bytes());
        assert!(matches!(
            GroupMetadataValue::decode(&g),
            Err(RecordError::UnsupportedVersion { .. })
        ));
        assert!(oc_value().encode_version(version).is_err());
        assert!(group_value().encode_version(version).is_err());
    }
}

fn is_decode_error<T: std::fmt::Debug>(r: Result<T>) -> bool {
    matches!(
        r,
        Err(RecordError::Invalid { .. }
            | RecordError::UnsupportedVersion { .. }
            | RecordError::UnknownRecordType(_))
    )
}

#[test]
fn every_truncation_and_any_trailing_byte_is_an_error() {
    type Fails = fn(&[u8]) -> bool;
    let values: Vec<(Vec<u8>, Fails)> = vec![
        (OC_KEY.to_vec(), |b| {
            is_decode_error(CoordinatorKey::decode(b))
        }),
        (OC_V3.to_vec(), |b| {
            is_decode_error(OffsetCommitValue::decode(b))
        }),
        (oc_value().encode_version(4).unwrap().to_vec(), |b| {
            is_decode_error(OffsetCommitValue::decode(b))
        }),
        (gm_v3_golden(), |b| {
            is_decode_error(GroupMetadataValue::decode(b))
        }),
        (group_value().encode_version(4).unwrap().to_vec(), |b| {
            is_decode_error(GroupMetadataValue::decode(b))
        }),
        (group_value().encode_version(0).unwrap().to_vec(), |b| {
            is_decode_error(GroupMetadataValue::decode(b))
        }),
    ];
    for (bytes, fails) in values {
        for cut in 0..bytes.len() {
            assert!(fails(&bytes[..cut]), "prefix of {cut} bytes of {bytes:?}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(fails(&longer), "trailing byte after {bytes:?}");
    }
}

#[test]
fn malformed_fields_are_errors() {
    // A member count far beyond the bytes left is refused before reading members.
    let mut g = gm_v3_golden();
    let at = 2 + 10 + 4 + 7 + 4 + 8;
    assert_eq!(&g[at..at + 4], &[0, 0, 0, 1]);
    g[at..at + 4].copy_from_slice(&i32::MAX.to_be_bytes());
    assert!(is_decode_error(GroupMetadataValue::decode(&g)));
    // A null members array, a null non-nullable string, a negative length.
    g[at..at + 4].copy_from_slice(&(-1i32).to_be_bytes());
    assert!(is_decode_error(GroupMetadataValue::decode(&g)));
    let mut g = gm_v3_golden();
    g[2..4].copy_from_slice(&[0xff, 0xff]);
    assert!(is_decode_error(GroupMetadataValue::decode(&g)));
    g[2..4].copy_from_slice(&[0xff, 0xfe]);
    assert!(is_decode_error(GroupMetadataValue::decode(&g)));
    // Invalid UTF-8 in a string.
    let mut k = OC_KEY.to_vec();
    k[4] = 0xff;
    assert!(is_decode_error(CoordinatorKey::decode(&k)));
    // A compact length varint that never ends or overflows 32 bits.
    let mut v = oc_value().encode_version(4).unwrap().to_vec();
    v[14] = 0xff;
    assert!(is_decode_error(OffsetCommitValue::decode(&v)));
    let over = cat(&[&v[..14], &[0xff, 0xff, 0xff, 0xff, 0x7f], &v[16..]]);
    assert!(is_decode_error(OffsetCommitValue::decode(&over)));
    // A tagged field larger than what is left.
    let mut t = oc_value().encode_version(4).unwrap().to_vec();
    t.pop();
    t.extend_from_slice(&[1, 0, 100, 1]);
    assert!(is_decode_error(OffsetCommitValue::decode(&t)));
}

#[test]
fn strings_longer_than_kafka_allows_are_not_encoded() {
    let long = "x".repeat(wire::MAX_STRING + 1);
    let key = CoordinatorKey::GroupMetadata {
        group: long.clone(),
    };
    assert!(matches!(key.encode(), Err(RecordError::Invalid { .. })));
    let v = OffsetCommitValue {
        metadata: long,
        ..oc_value()
    };
    assert!(v.encode().is_err());
    assert!(v.encode_version(4).is_err());
    let ok = OffsetCommitValue {
        metadata: "x".repeat(wire::MAX_STRING),
        ..oc_value()
    };
    for version in OFFSET_COMMIT_VALUE_VERSIONS {
        let bytes = ok.encode_version(version).unwrap();
        assert_eq!(
            OffsetCommitValue::decode(&bytes).unwrap().metadata,
            ok.metadata
        );
    }
}
