//! Property tests of the key and value codecs: every version round trips what it can
//! hold, and arbitrary or corrupted bytes never panic.

use bytes::Bytes;
use proptest::prelude::*;

use super::*;

fn text() -> impl Strategy<Value = String> {
    ".{0,12}"
}

fn blob() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..40).prop_map(Bytes::from)
}

fn arb_key() -> impl Strategy<Value = CoordinatorKey> {
    prop_oneof![
        (text(), text(), any::<i32>()).prop_map(|(group, topic, partition)| {
            CoordinatorKey::OffsetCommit {
                group,
                topic,
                partition,
            }
        }),
        text().prop_map(|group| CoordinatorKey::GroupMetadata { group }),
    ]
}

fn arb_offset() -> impl Strategy<Value = OffsetCommitValue> {
    (
        any::<i64>(),
        any::<i32>(),
        text(),
        any::<i64>(),
        proptest::option::of(any::<i64>()),
    )
        .prop_map(
            |(offset, leader_epoch, metadata, commit_timestamp, expire_timestamp)| {
                OffsetCommitValue {
                    offset,
                    leader_epoch,
                    metadata,
                    commit_timestamp,
                    expire_timestamp,
                }
            },
        )
}

fn arb_member() -> impl Strategy<Value = MemberMetadata> {
    (
        (text(), proptest::option::of(text()), text(), text()),
        (any::<i32>(), any::<i32>(), blob(), blob()),
    )
        .prop_map(
            |((member_id, group_instance_id, client_id, client_host), (rt, st, sub, asg))| {
                MemberMetadata {
                    member_id,
                    group_instance_id,
                    client_id,
                    client_host,
                    rebalance_timeout: rt,
                    session_timeout: st,
                    subscription: sub,
                    assignment: asg,
                }
            },
        )
}

fn arb_group() -> impl Strategy<Value = GroupMetadataValue> {
    (
        text(),
        any::<i32>(),
        proptest::option::of(text()),
        proptest::option::of(text()),
        any::<i64>(),
        proptest::collection::vec(arb_member(), 0..4),
    )
        .prop_map(
            |(protocol_type, generation, protocol, leader, ts, members)| GroupMetadataValue {
                protocol_type,
                generation,
                protocol,
                leader,
                current_state_timestamp: ts,
                members,
            },
        )
}

/// What a value reads back as after being written at `version`.
fn offset_at(mut v: OffsetCommitValue, version: i16) -> OffsetCommitValue {
    if version < 3 {
        v.leader_epoch = NO_LEADER_EPOCH;
    }
    v.expire_timestamp = match version {
        1 => v.expire_timestamp.filter(|&t| t != -1),
        _ => None,
    };
    v
}

fn group_at(mut v: GroupMetadataValue, version: i16) -> GroupMetadataValue {
    if version < 2 {
        v.current_state_timestamp = -1;
    }
    for m in &mut v.members {
        if version < 3 {
            m.group_instance_id = None;
        }
        if version < 1 {
            m.rebalance_timeout = m.session_timeout;
        }
    }
    v
}

proptest! {
    #[test]
    fn keys_round_trip(key in arb_key()) {
        prop_assert_eq!(CoordinatorKey::decode(&key.encode().unwrap()).unwrap(), key);
    }

    #[test]
    fn offset_values_round_trip_at_every_version(v in arb_offset()) {
        for version in OFFSET_COMMIT_VALUE_VERSIONS {
            let bytes = v.encode_version(version).unwrap();
            prop_assert_eq!(&bytes[..2], &version.to_be_bytes()[..]);
            prop_assert_eq!(
                OffsetCommitValue::decode(&bytes).unwrap(),
                offset_at(v.clone(), version)
            );
        }
        let bytes = v.encode().unwrap();
        let back = OffsetCommitValue::decode(&bytes).unwrap();
        prop_assert_eq!(back, offset_at(v.clone(), v.write_version()));
    }

    #[test]
    fn group_values_round_trip_at_every_version(v in arb_group()) {
        for version in GROUP_METADATA_VALUE_VERSIONS {
            let bytes = v.encode_version(version).unwrap();
            prop_assert_eq!(
                GroupMetadataValue::decode(&bytes).unwrap(),
                group_at(v.clone(), version)
            );
        }
        prop_assert_eq!(GroupMetadataValue::decode(&v.encode().unwrap()).unwrap(), v);
    }

    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = CoordinatorKey::decode(&bytes);
        let _ = OffsetCommitValue::decode(&bytes);
        let _ = GroupMetadataValue::decode(&bytes);
    }

    #[test]
    fn corrupted_values_never_panic(
        v in arb_group(),
        version in 0i16..=4,
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut bytes = v.encode_version(version).unwrap().to_vec();
        let i = at.index(bytes.len());
        bytes[i] = byte;
        let _ = GroupMetadataValue::decode(&bytes);
    }
}
