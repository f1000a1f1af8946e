//! Offset expiry and the deletion of groups left without offsets.

use super::*;
use crate::group::expiry::subscription_topics;

fn retention() -> i64 {
    OffsetsConfig::default().retention_ms
}

#[test]
fn an_empty_groups_offsets_expire_from_when_it_became_empty() {
    let mut h = Harness::new();
    let member = h.stable_member(GROUP, &["t"]);
    let req = h.commit_req(GROUP, &member, 1, &[("t", 0, 1), ("t", 1, 2)]);
    h.send_commit(req).expect("accepted");
    // Stable for two days: once Empty the commit is older than the retention before
    // the group has been Empty that long; the retention counts from becoming Empty.
    h.keep_alive(GROUP, &member, 2 * DAY_MS);
    h.leave(GROUP, &member);
    let emptied_at = h.now;
    h.advance(retention() - 1);
    h.run_expiry();
    assert_eq!(h.committed(GROUP, "t", 0), 1, "not yet");
    assert_eq!(h.state(GROUP), Some(GroupState::Empty));

    h.now = emptied_at + retention();
    let before = h.log.len();
    h.run_expiry();
    assert_eq!(
        h.log[before..],
        [
            OffsetKey::new(GROUP, "t", 0).record(None),
            OffsetKey::new(GROUP, "t", 1).record(None),
            records::CoordinatorRecord::group_metadata(GROUP, None),
        ]
    );
    assert_eq!(h.committed(GROUP, "t", 0), -1);
    assert_eq!(h.state(GROUP), None, "the group went with its offsets");
}

#[test]
fn retention_is_not_applied_to_a_group_with_members() {
    let mut h = Harness::new();
    let member = h.stable_member(GROUP, &["t"]);
    let req = h.commit_req(GROUP, &member, 1, &[("t", 0, 1), ("gone", 0, 2)]);
    h.send_commit(req).expect("accepted");
    h.keep_alive(GROUP, &member, retention() + 1);
    h.advance(0);
    assert_eq!(h.state(GROUP), Some(GroupState::Stable));
    h.run_expiry();
    // Stable consumer group: the subscribed topic's offset stays, the offset of a topic
    // nobody subscribes to any more expires by its commit time.
    assert_eq!(h.committed(GROUP, "t", 0), 1);
    assert_eq!(h.committed(GROUP, "gone", 0), -1);
    assert_eq!(h.state(GROUP), Some(GroupState::Stable));
}

#[test]
fn a_rebalancing_group_expires_nothing() {
    let mut h = Harness::new();
    let member = h.stable_member(GROUP, &["t"]);
    let req = h.commit_req(GROUP, &member, 1, &[("gone", 0, 2)]);
    h.send_commit(req).expect("accepted");
    // Another member joins: PreparingRebalance until the first one rejoins.
    let _ = h.join(GROUP, "", &["t"]);
    assert_eq!(h.state(GROUP), Some(GroupState::PreparingRebalance));
    h.now += retention() + 1;
    h.run_expiry();
    assert_eq!(h.committed(GROUP, "gone", 0), 2);
}

#[test]
fn simple_commits_expire_by_commit_time() {
    let mut h = Harness::new();
    h.simple_commit(GROUP, &[("t", 0, 1)]);
    h.now += DAY_MS;
    h.simple_commit(GROUP, &[("t", 1, 2)]);
    h.now += retention() - DAY_MS;
    h.run_expiry();
    assert_eq!(
        h.committed(GROUP, "t", 0),
        -1,
        "a retention after its commit"
    );
    assert_eq!(h.committed(GROUP, "t", 1), 2);
    assert_eq!(
        h.state(GROUP),
        Some(GroupState::Empty),
        "still has an offset"
    );
    h.now += DAY_MS;
    h.run_expiry();
    assert_eq!(h.state(GROUP), None);
    assert!(h.part.offsets().is_empty());
}

#[test]
fn an_explicit_expire_timestamp_wins() {
    let mut h = Harness::new();
    let mut req = h.commit_req(GROUP, "", -1, &[("t", 0, 1)]);
    req.retention_time_ms = Some(1_000);
    h.send_commit(req).expect("accepted");
    h.now += 999;
    h.run_expiry();
    assert_eq!(h.committed(GROUP, "t", 0), 1);
    h.now += 1;
    h.run_expiry();
    assert_eq!(h.committed(GROUP, "t", 0), -1);
}

#[test]
fn an_empty_group_without_offsets_is_deleted() {
    let mut h = Harness::new();
    let member = h.stable_member(GROUP, &["t"]);
    h.leave(GROUP, &member);
    h.run_expiry();
    assert_eq!(h.state(GROUP), None);
    assert_eq!(
        h.log.last(),
        Some(&records::CoordinatorRecord::group_metadata(GROUP, None))
    );
    // Nothing due: no write.
    assert!(h.part.expire(h.now).is_none());
}

#[test]
fn expiry_leaves_in_flight_writes_alone() {
    let mut h = Harness::new();
    h.simple_commit(GROUP, &[("t", 0, 1)]);
    h.now += retention();
    h.auto_persist = false;
    let req = h.commit_req(GROUP, "", -1, &[("t", 0, 2)]);
    let out = h.part.commit_offsets(req, h.now).expect("accepted");
    h.write(out.write);
    assert!(
        h.part.expire(h.now).is_none(),
        "the offset has a write in flight"
    );
    h.complete(Ok(()));
    assert_eq!(h.committed(GROUP, "t", 0), 2);
    assert_eq!(h.state(GROUP), Some(GroupState::Empty));
}

#[test]
fn parses_consumer_protocol_subscriptions() {
    let topics = subscription_topics(&subscription(&["a", "bc"]));
    assert_eq!(topics, Some(vec!["a".to_owned(), "bc".to_owned()]));
    // v0: no owned partitions after the user data; user data present.
    let mut v0 = vec![0, 0, 0, 0, 0, 1, 0, 1, b'x', 0, 0, 0, 2, 9, 9];
    assert_eq!(subscription_topics(&v0), Some(vec!["x".to_owned()]));
    v0.truncate(14);
    assert_eq!(subscription_topics(&v0), None, "user data cut short");
    assert_eq!(subscription_topics(&[0, 0, 0x7f, 0xff, 0xff, 0xff]), None);
    assert_eq!(subscription_topics(&[0, 0, 0xff, 0xff, 0xff, 0xff]), None);
    assert_eq!(subscription_topics(b"range-meta"), None);
}

#[test]
fn unparseable_subscriptions_count_as_subscribed_to_everything() {
    let mut h = Harness::new();
    let member = h.stable_member(GROUP, &["t"]);
    let req = h.commit_req(GROUP, &member, 1, &[("gone", 0, 2)]);
    h.send_commit(req).expect("accepted");
    // Reload the group with metadata that is not a ConsumerProtocolSubscription.
    let mut value = match h.log.iter().rev().find_map(|r| match &r.value {
        Some(records::CoordinatorValue::GroupMetadata(v)) => Some(v.clone()),
        _ => None,
    }) {
        Some(v) => v,
        None => panic!("no group record"),
    };
    value.members[0].subscription = Bytes::from_static(b"junk");
    let record = records::CoordinatorRecord::group_metadata(GROUP, Some(value));
    h.part
        .replay_log_records([record], h.now)
        .expect("replayed");
    let asked = [TopicPartition::new("gone", 0)];
    let out = h
        .part
        .delete_offsets(GROUP, &asked)
        .expect("group accepted");
    assert_eq!(
        out.response[0].error,
        Some(GroupError::GroupSubscribedToTopic)
    );
    h.now += retention() + 1;
    h.run_expiry();
    assert_eq!(h.committed(GROUP, "gone", 0), 2);
}
