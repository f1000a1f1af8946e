//! Rebuilding a partition from the records it wrote.

use super::*;
use crate::group::records::{CoordinatorValue, build_batch, read_records};

/// A fresh partition loaded from `log`, through the on-disk batch format.
fn reload(log: &[records::CoordinatorRecord], now: i64) -> GroupCoordinatorPartition {
    let batch = build_batch(log, now).expect("encodes");
    let read = read_records(&batch).expect("decodes");
    let mut part = GroupCoordinatorPartition::new(
        GroupCoordinatorShard::new(GroupConfig::default()),
        OffsetsConfig::default(),
    );
    let fx = part
        .replay_log_records(read.records.into_iter().map(|r| r.record), now)
        .expect("replays");
    assert!(fx.is_empty(), "{fx:?}");
    let fx = part.finish_loading(now);
    assert!(fx.is_empty(), "{fx:?}");
    part
}

#[test]
fn replay_round_trip_of_commits_joins_and_deletions() {
    let mut h = Harness::new();
    let member = h.stable_member(GROUP, &["t"]);
    let req = h.commit_req(GROUP, &member, 1, &[("t", 0, 10), ("t", 1, 11)]);
    h.send_commit(req).expect("accepted");
    let req = h.commit_req(GROUP, &member, 1, &[("t", 0, 12)]);
    h.send_commit(req).expect("accepted");
    h.simple_commit("simple", &[("s", 0, 5)]);
    h.simple_commit("gone", &[("s", 0, 6)]);
    let out = h.part.delete_groups(&["gone".to_owned()], h.now);
    h.write(out.write);
    h.simple_commit("deleted-offset", &[("s", 0, 1), ("s", 1, 2)]);
    let out = h
        .part
        .delete_offsets("deleted-offset", &[TopicPartition::new("s", 0)])
        .expect("deleted");
    h.write(out.write);

    let loaded = reload(&h.log, h.now);
    assert_eq!(loaded.offsets(), h.part.offsets());
    assert_eq!(loaded.offsets().len(), 4);
    let shard = loaded.shard();
    assert_eq!(shard.group_state(GROUP), Some(GroupState::Stable));
    assert_eq!(shard.group_state("simple"), Some(GroupState::Empty));
    assert_eq!(shard.group_state("deleted-offset"), Some(GroupState::Empty));
    assert_eq!(shard.group_state("gone"), None);
    assert_eq!(
        shard.describe_groups(&[GROUP.to_owned()]),
        h.part.shard().describe_groups(&[GROUP.to_owned()])
    );
    let tp = [TopicPartition::new("t", 0)];
    let fetched = loaded.fetch_offsets(GROUP, Some(&tp), false);
    assert_eq!(
        (fetched[0].offset, fetched[0].metadata.as_str()),
        (12, "m12")
    );

    // The loaded member still commits with its generation.
    let mut l = Harness::new();
    l.part = loaded;
    l.now = h.now;
    let req = l.commit_req(GROUP, &member, 1, &[("t", 0, 13)]);
    assert!(l.send_commit(req).is_ok());
    let stale = l.commit_req(GROUP, &member, 0, &[("t", 0, 13)]);
    assert_eq!(l.send_commit(stale), Err(GroupError::IllegalGeneration));
}

#[test]
fn replayed_empty_group_keeps_its_state_timestamp_for_expiry() {
    let mut h = Harness::new();
    let member = h.stable_member(GROUP, &["t"]);
    let req = h.commit_req(GROUP, &member, 1, &[("t", 0, 10)]);
    h.send_commit(req).expect("accepted");
    h.now += DAY_MS;
    h.leave(GROUP, &member);
    let emptied_at = h.now;

    let mut l = Harness::new();
    l.now = emptied_at + DAY_MS;
    l.part = reload(&h.log, l.now);
    l.now = emptied_at + OffsetsConfig::default().retention_ms;
    l.run_expiry();
    assert_eq!(l.committed(GROUP, "t", 0), -1);
    assert_eq!(l.state(GROUP), None);
}

#[test]
fn a_value_of_the_wrong_kind_is_refused() {
    let mut part =
        GroupCoordinatorPartition::new(GroupCoordinatorShard::default(), OffsetsConfig::default());
    let mut record = OffsetKey::new(GROUP, "t", 0).record(None);
    record.value = Some(CoordinatorValue::GroupMetadata(
        records::GroupMetadataValue {
            protocol_type: String::new(),
            generation: 0,
            protocol: None,
            leader: None,
            current_state_timestamp: -1,
            members: Vec::new(),
        },
    ));
    assert!(matches!(
        part.replay_log_records([record], START),
        Err(records::RecordError::Invalid { .. })
    ));
}

#[test]
fn offsets_of_a_group_without_metadata_make_a_simple_group() {
    let value = records::OffsetCommitValue {
        offset: 3,
        leader_epoch: -1,
        metadata: String::new(),
        commit_timestamp: START,
        expire_timestamp: None,
    };
    let log = vec![
        OffsetKey::new("a", "t", 0).record(Some(value.clone())),
        OffsetKey::new("b", "t", 0).record(Some(value)),
        OffsetKey::new("b", "t", 0).record(None),
    ];
    let part = reload(&log, START);
    assert_eq!(part.shard().group_state("a"), Some(GroupState::Empty));
    assert_eq!(
        part.shard().group_state("b"),
        None,
        "its only offset was deleted"
    );
    assert_eq!(part.offsets().len(), 1);
}
