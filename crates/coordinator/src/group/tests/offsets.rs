//! OffsetCommit, OffsetFetch, OffsetDelete and DeleteGroups' offsets.

use super::*;

fn errors(results: &[PartitionResult]) -> Vec<Option<GroupError>> {
    results.iter().map(|r| r.error.clone()).collect()
}

#[test]
fn member_of_the_current_generation_commits() {
    let mut h = Harness::new();
    let member = h.stable_member(GROUP, &["t"]);
    let req = h.commit_req(GROUP, &member, 1, &[("t", 0, 10), ("t", 1, 20)]);
    let results = h.send_commit(req).expect("accepted");
    assert_eq!(errors(&results), vec![None, None]);
    assert_eq!((results[1].topic.as_str(), results[1].partition), ("t", 1));
    let fetched = h.part.fetch_offsets(GROUP, None, true);
    assert_eq!(
        fetched,
        vec![
            FetchedOffset {
                topic: "t".into(),
                partition: 0,
                offset: 10,
                leader_epoch: 3,
                metadata: "m10".into()
            },
            FetchedOffset {
                topic: "t".into(),
                partition: 1,
                offset: 20,
                leader_epoch: 3,
                metadata: "m20".into()
            },
        ]
    );
    // The commit wrote one offset record per partition, stamped now, no expiry.
    let last = h.log.last().expect("records");
    assert_eq!(
        *last,
        OffsetKey::new(GROUP, "t", 1).record(Some(records::OffsetCommitValue {
            offset: 20,
            leader_epoch: 3,
            metadata: "m20".into(),
            commit_timestamp: h.now,
            expire_timestamp: None,
        }))
    );
}

#[test]
fn stale_generation_and_unknown_members_are_refused() {
    let mut h = Harness::new();
    let member = h.stable_member(GROUP, &["t"]);
    let stale = h.commit_req(GROUP, &member, 0, &[("t", 0, 10)]);
    assert_eq!(h.send_commit(stale), Err(GroupError::IllegalGeneration));
    let stranger = h.commit_req(GROUP, "who", 1, &[("t", 0, 10)]);
    assert_eq!(h.send_commit(stranger), Err(GroupError::UnknownMemberId));
    // A simple commit while the group has members.
    let simple = h.commit_req(GROUP, "", -1, &[("t", 0, 10)]);
    assert_eq!(h.send_commit(simple), Err(GroupError::UnknownMemberId));
    // A generation for a group that does not exist.
    let unknown = h.commit_req("nope", "m", 1, &[("t", 0, 10)]);
    assert_eq!(h.send_commit(unknown), Err(GroupError::GroupIdNotFound));
    let no_id = h.commit_req("", "", -1, &[("t", 0, 10)]);
    assert_eq!(h.send_commit(no_id), Err(GroupError::InvalidGroupId));
    assert_eq!(h.committed(GROUP, "t", 0), -1);
    assert!(h.part.offsets().is_empty() && h.log.iter().all(|r| r.key.group() == GROUP));
}

#[test]
fn simple_commit_creates_an_empty_group_without_protocol() {
    let mut h = Harness::new();
    h.simple_commit("simple", &[("t", 0, 5)]);
    assert_eq!(h.state("simple"), Some(GroupState::Empty));
    let listed = h.part.shard().list_groups(&[]);
    assert_eq!(listed[0].protocol_type, "");
    assert_eq!(h.committed("simple", "t", 0), 5);
    // Only the offset is written: the simple group has no metadata record.
    assert_eq!(h.log.len(), 1);
}

#[test]
fn metadata_over_the_limit_fails_only_its_partition() {
    let mut h = Harness::new();
    let mut req = h.commit_req(GROUP, "", -1, &[("t", 0, 1), ("t", 1, 2), ("t", 2, 3)]);
    req.offsets[0].metadata = Some("x".repeat(4096));
    req.offsets[1].metadata = Some("x".repeat(4097));
    // 2049 characters outside the BMP are 4098 UTF-16 units (Java's String.length),
    // though only 2049 chars.
    req.offsets[2].metadata = Some("\u{1F600}".repeat(2049));
    let results = h.send_commit(req).expect("accepted");
    assert_eq!(
        errors(&results),
        vec![
            None,
            Some(GroupError::OffsetMetadataTooLarge),
            Some(GroupError::OffsetMetadataTooLarge)
        ]
    );
    assert_eq!(h.committed(GROUP, "t", 0), 1);
    assert_eq!(h.committed(GROUP, "t", 1), -1);
    assert_eq!(h.log.len(), 1);

    // Nothing left to write: answered at once.
    let mut req = h.commit_req(GROUP, "", -1, &[("t", 1, 2)]);
    req.offsets[0].metadata = Some("x".repeat(5000));
    let out = h.part.commit_offsets(req, h.now).expect("accepted");
    assert!(out.write.is_none());
    // A null metadata is stored empty.
    let mut req = h.commit_req(GROUP, "", -1, &[("t", 3, 4)]);
    req.offsets[0].metadata = None;
    h.send_commit(req).expect("accepted");
    let tp = [TopicPartition::new("t", 3)];
    assert_eq!(
        h.part.fetch_offsets(GROUP, Some(&tp), false)[0].metadata,
        ""
    );
}

#[test]
fn a_commit_is_visible_only_once_durable() {
    let mut h = Harness::new();
    h.auto_persist = false;
    let req = h.commit_req(GROUP, "", -1, &[("t", 0, 7)]);
    let out = h.part.commit_offsets(req, h.now).expect("accepted");
    let write = out.write.expect("a write");
    assert_eq!(write.records.len(), 1);
    h.write(Some(write));
    assert_eq!(h.committed(GROUP, "t", 0), -1, "not durable yet");
    assert!(h.part.has_pending_writes());
    h.complete(Ok(()));
    assert_eq!(h.committed(GROUP, "t", 0), 7);

    // A failed append changes nothing.
    let req = h.commit_req(GROUP, "", -1, &[("t", 0, 8)]);
    let out = h.part.commit_offsets(req, h.now).expect("accepted");
    h.write(out.write);
    h.complete(Err(GroupError::NotCoordinator));
    assert_eq!(h.committed(GROUP, "t", 0), 7);
    assert!(!h.part.has_pending_writes());
}

#[test]
fn retention_time_sets_an_expire_timestamp() {
    let mut h = Harness::new();
    let mut req = h.commit_req(GROUP, "", -1, &[("t", 0, 7)]);
    req.retention_time_ms = Some(60_000);
    h.send_commit(req).expect("accepted");
    let v = h.part.offsets().get(&OffsetKey::new(GROUP, "t", 0));
    assert_eq!(v.and_then(|v| v.expire_timestamp), Some(h.now + 60_000));
    let mut req = h.commit_req(GROUP, "", -1, &[("t", 1, 7)]);
    req.retention_time_ms = Some(-1);
    h.send_commit(req).expect("accepted");
    let v = h.part.offsets().get(&OffsetKey::new(GROUP, "t", 1));
    assert_eq!(v.map(|v| v.expire_timestamp), Some(None));
}

#[test]
fn fetch_some_all_and_unknown() {
    let mut h = Harness::new();
    h.simple_commit(GROUP, &[("b", 1, 11), ("a", 0, 10), ("b", 0, 12)]);
    let asked = [
        TopicPartition::new("b", 0),
        TopicPartition::new("a", 9),
        TopicPartition::new("zzz", 0),
    ];
    let got = h.part.fetch_offsets(GROUP, Some(&asked), false);
    let summary: Vec<_> = got
        .iter()
        .map(|f| (f.topic.as_str(), f.partition, f.offset, f.leader_epoch))
        .collect();
    assert_eq!(
        summary,
        vec![("b", 0, 12, 3), ("a", 9, -1, -1), ("zzz", 0, -1, -1)]
    );
    assert_eq!(got[1].metadata, "");
    // All partitions, by topic then partition.
    let all: Vec<_> = h
        .part
        .fetch_offsets(GROUP, None, false)
        .into_iter()
        .map(|f| (f.topic, f.partition, f.offset))
        .collect();
    assert_eq!(
        all,
        vec![
            ("a".into(), 0, 10),
            ("b".into(), 0, 12),
            ("b".into(), 1, 11)
        ]
    );
    // An unknown group: nothing committed, no error.
    assert!(h.part.fetch_offsets("nope", None, false).is_empty());
    let got = h.part.fetch_offsets("nope", Some(&asked[..1]), true);
    assert_eq!(got[0].offset, -1);
}

#[test]
fn delete_offsets_of_an_empty_group() {
    let mut h = Harness::new();
    h.simple_commit(GROUP, &[("t", 0, 1), ("t", 1, 2), ("u", 0, 3)]);
    let asked = [
        TopicPartition::new("t", 0),
        TopicPartition::new("t", 0),
        TopicPartition::new("t", 5),
    ];
    let out = h.part.delete_offsets(GROUP, &asked).expect("deleted");
    assert_eq!(errors(&out.response), vec![None, None, None]);
    let write = out.write.expect("tombstones");
    assert_eq!(
        write.records,
        vec![OffsetKey::new(GROUP, "t", 0).record(None)]
    );
    h.write(Some(write));
    assert_eq!(h.committed(GROUP, "t", 0), -1);
    assert_eq!(h.committed(GROUP, "t", 1), 2);

    assert_eq!(
        h.part.delete_offsets("nope", &asked).map(|o| o.response),
        Err(GroupError::GroupIdNotFound)
    );
    assert_eq!(
        h.part.delete_offsets("", &asked).map(|o| o.response),
        Err(GroupError::InvalidGroupId)
    );
}

#[test]
fn delete_offsets_refuses_subscribed_topics() {
    let mut h = Harness::new();
    let member = h.stable_member(GROUP, &["t"]);
    let req = h.commit_req(GROUP, &member, 1, &[("t", 0, 1), ("old", 0, 2)]);
    h.send_commit(req).expect("accepted");
    let asked = [TopicPartition::new("t", 0), TopicPartition::new("old", 0)];
    let out = h
        .part
        .delete_offsets(GROUP, &asked)
        .expect("group accepted");
    assert_eq!(
        errors(&out.response),
        vec![Some(GroupError::GroupSubscribedToTopic), None]
    );
    h.write(out.write);
    assert_eq!(h.committed(GROUP, "t", 0), 1);
    assert_eq!(h.committed(GROUP, "old", 0), -1);

    // Once the group is Empty it subscribes to nothing.
    h.leave(GROUP, &member);
    let out = h.part.delete_offsets(GROUP, &asked[..1]).expect("deleted");
    assert_eq!(errors(&out.response), vec![None]);
    h.write(out.write);
    assert_eq!(h.committed(GROUP, "t", 0), -1);
}

#[test]
fn delete_offsets_of_a_non_consumer_group_with_members_is_refused() {
    let mut h = Harness::new();
    h.stable_member(GROUP, &["t"]);
    // Rewrite the group as a "connect" group through a replayed record.
    let mut value = match h.log.iter().rev().find_map(|r| match &r.value {
        Some(records::CoordinatorValue::GroupMetadata(v)) => Some(v.clone()),
        _ => None,
    }) {
        Some(v) => v,
        None => panic!("no group record"),
    };
    value.protocol_type = "connect".into();
    let record = records::CoordinatorRecord::group_metadata(GROUP, Some(value));
    h.part
        .replay_log_records([record], h.now)
        .expect("replayed");
    assert_eq!(h.state(GROUP), Some(GroupState::Stable));
    let asked = [TopicPartition::new("t", 0)];
    assert_eq!(
        h.part.delete_offsets(GROUP, &asked).map(|o| o.response),
        Err(GroupError::NonEmptyGroup)
    );
}

#[test]
fn delete_offsets_sees_an_in_flight_commit() {
    let mut h = Harness::new();
    h.auto_persist = false;
    let req = h.commit_req(GROUP, "", -1, &[("t", 0, 1)]);
    let out = h.part.commit_offsets(req, h.now).expect("accepted");
    h.write(out.write);
    let out = h
        .part
        .delete_offsets(GROUP, &[TopicPartition::new("t", 0)])
        .expect("deleted");
    assert!(out.write.is_some(), "the in-flight offset is tombstoned");
    h.write(out.write);
    h.complete(Ok(()));
    assert_eq!(h.committed(GROUP, "t", 0), -1);
}

#[test]
fn delete_groups_tombstones_offsets_then_the_group() {
    let mut h = Harness::new();
    let member = h.stable_member(GROUP, &["t"]);
    let req = h.commit_req(GROUP, &member, 1, &[("t", 0, 1), ("t", 1, 2)]);
    h.send_commit(req).expect("accepted");
    let out = h.part.delete_groups(&[GROUP.to_owned()], h.now);
    assert_eq!(
        out.response,
        vec![(GROUP.to_owned(), Err(GroupError::NonEmptyGroup))]
    );
    assert!(out.write.is_none());

    h.leave(GROUP, &member);
    h.simple_commit("other", &[("t", 0, 9)]);
    let ids = [GROUP.to_owned(), "other".to_owned()];
    let out = h.part.delete_groups(&ids, h.now);
    assert!(out.response.iter().all(|(_, r)| r.is_ok()));
    let write = out.write.expect("one batch");
    assert_eq!(
        write.records,
        vec![
            OffsetKey::new(GROUP, "t", 0).record(None),
            OffsetKey::new(GROUP, "t", 1).record(None),
            records::CoordinatorRecord::group_metadata(GROUP, None),
            OffsetKey::new("other", "t", 0).record(None),
            records::CoordinatorRecord::group_metadata("other", None),
        ]
    );
    assert_eq!(h.state(GROUP), Some(GroupState::Dead));
    h.write(Some(write));
    assert_eq!(h.state(GROUP), None);
    assert!(h.part.offsets().is_empty());
}

#[test]
fn a_failed_group_deletion_keeps_group_and_offsets() {
    let mut h = Harness::new();
    h.simple_commit(GROUP, &[("t", 0, 1)]);
    h.auto_persist = false;
    let out = h.part.delete_groups(&[GROUP.to_owned()], h.now);
    h.write(out.write);
    h.complete(Err(GroupError::CoordinatorNotAvailable));
    assert_eq!(h.state(GROUP), Some(GroupState::Empty));
    assert_eq!(h.committed(GROUP, "t", 0), 1);
}

#[test]
fn a_commit_keeps_the_member_session_alive() {
    let mut h = Harness::new();
    let member = h.stable_member(GROUP, &["t"]);
    // Session timeout 10 s: commit every 6 s, never heartbeat.
    for i in 0..4 {
        h.advance(6_000);
        let req = h.commit_req(GROUP, &member, 1, &[("t", 0, i)]);
        h.send_commit(req).expect("still a member");
    }
    h.advance(10_001);
    assert_eq!(h.state(GROUP), Some(GroupState::Empty), "session expired");
}
