//! DescribeGroups, ListGroups, DeleteGroups, the Dead state, the OffsetCommit checks
//! and loading a persisted group.

use super::*;

#[test]
fn describe_and_list_groups() {
    let mut h = Harness::new();
    let ids = h.stable_group(2);
    let d = h.describe();
    assert_eq!(
        (d.state, d.protocol_type.as_str(), d.protocol.as_str()),
        (GroupState::Stable, "consumer", "range")
    );
    assert_eq!(d.members.len(), 2);
    assert_eq!(d.members[0].member_id, ids[0]);
    assert_eq!(d.members[0].metadata, Bytes::from("range-meta"));
    assert_eq!(
        d.members[1].assignment,
        Bytes::from(format!("{}-assignment", ids[1]))
    );
    assert_eq!(d.members[0].client_host, "/127.0.0.1");

    let _ = h.join("");
    let d = h.describe();
    assert_eq!(
        (d.state, d.protocol.as_str()),
        (GroupState::PreparingRebalance, "")
    );
    assert!(
        d.members
            .iter()
            .all(|m| m.metadata.is_empty() && m.assignment.is_empty())
    );

    let mut req = h.join_req("");
    req.group_id = "other".to_owned();
    req.require_known_member_id = true;
    h.send_join(req);
    let all = h.shard.list_groups(&[]);
    let listed: Vec<_> = all.iter().map(|g| (g.group_id.as_str(), g.state)).collect();
    assert_eq!(
        listed,
        vec![
            (GROUP, GroupState::PreparingRebalance),
            ("other", GroupState::Empty)
        ]
    );
    let empty = h
        .shard
        .list_groups(&[GroupState::Empty, GroupState::Stable]);
    assert_eq!(empty.len(), 1);
    assert_eq!(empty[0].group_id, "other");
    assert_eq!(empty[0].protocol_type, "", "no member ever joined it");

    let described = h.shard.describe_groups(&["nope".to_owned(), String::new()]);
    assert_eq!(
        described,
        vec![
            Err(GroupError::GroupIdNotFound),
            Err(GroupError::InvalidGroupId)
        ]
    );
    assert_eq!(
        GroupState::parse("completingrebalance"),
        Some(GroupState::CompletingRebalance)
    );
    assert_eq!(GroupState::parse("Assigning"), None);
}

#[test]
fn delete_groups_only_deletes_empty_ones_through_dead() {
    let mut h = Harness::new();
    let ids = h.stable_group(1);
    let out = h
        .shard
        .delete_groups(&[GROUP.to_owned(), "nope".to_owned()], h.now);
    assert_eq!(
        out.response,
        vec![
            (GROUP.to_owned(), Err(GroupError::NonEmptyGroup)),
            ("nope".to_owned(), Err(GroupError::GroupIdNotFound)),
        ]
    );
    assert!(out.effects.is_empty());
    h.leave(vec![leaving(&ids[0], None)]).unwrap();
    assert_eq!(h.state(), Some(GroupState::Empty));

    let out = h.shard.delete_groups(&[GROUP.to_owned()], h.now);
    assert_eq!(out.response, vec![(GROUP.to_owned(), Ok(()))]);
    assert_eq!(h.state(), Some(GroupState::Dead));
    let [Effect::Persist { write_id, record }] = &out.effects[..] else {
        panic!("expected one tombstone: {:?}", out.effects);
    };
    assert_eq!(
        record,
        &GroupRecord::GroupTombstone {
            group_id: GROUP.to_owned()
        }
    );

    // Dead until the tombstone is durable.
    let t = h.join("");
    assert_eq!(
        h.take_join(t).unwrap().error,
        Some(GroupError::CoordinatorNotAvailable)
    );
    assert_eq!(
        h.heartbeat(&ids[0], 2),
        Err(GroupError::CoordinatorNotAvailable)
    );
    let t = h.sync(&ids[0], 2);
    assert_eq!(
        h.take_sync(t).unwrap().error,
        Some(GroupError::CoordinatorNotAvailable)
    );
    assert_eq!(
        h.leave(vec![leaving(&ids[0], None)]),
        Err(GroupError::CoordinatorNotAvailable)
    );
    assert_eq!(
        h.shard.validate_offset_commit(GROUP, "", -1, None, h.now),
        Err(GroupError::CoordinatorNotAvailable)
    );
    let again = h.shard.delete_groups(&[GROUP.to_owned()], h.now);
    assert_eq!(again.response[0].1, Err(GroupError::GroupIdNotFound));
    assert_eq!(h.describe().state, GroupState::Dead);

    let fx = h.shard.on_persisted(*write_id, Ok(()), h.now);
    assert!(fx.is_empty());
    assert_eq!(h.state(), None);
    assert!(h.shard.list_groups(&[]).is_empty());
}

#[test]
fn failed_tombstone_leaves_the_group_empty() {
    let mut h = Harness::new();
    h.shard.ensure_group(GROUP, h.now);
    let out = h.shard.delete_groups(&[GROUP.to_owned()], h.now);
    let [Effect::Persist { write_id, .. }] = &out.effects[..] else {
        panic!();
    };
    h.shard
        .on_persisted(*write_id, Err(GroupError::NotCoordinator), h.now);
    assert_eq!(h.state(), Some(GroupState::Empty));
}

#[test]
fn offset_commit_checks() {
    let mut h = Harness::new();
    // A simple consumer (no group management) creates an Empty group.
    assert_eq!(
        h.shard.validate_offset_commit(GROUP, "", -1, None, h.now),
        Ok(())
    );
    assert_eq!(h.state(), Some(GroupState::Empty));
    assert_eq!(
        h.shard
            .validate_offset_commit("unknown", "m", 3, None, h.now),
        Err(GroupError::GroupIdNotFound)
    );
    assert_eq!(
        h.shard.validate_offset_commit("", "", -1, None, h.now),
        Err(GroupError::InvalidGroupId)
    );

    let (a, b) = (h.join(""), h.join(""));
    h.advance(6_000);
    let (a, b) = (
        h.take_join(a).unwrap().member_id,
        h.take_join(b).unwrap().member_id,
    );
    let check = |h: &mut Harness, m: &str, gen_id: i32| {
        h.shard
            .validate_offset_commit(GROUP, m, gen_id, None, h.now)
    };
    // Generation 1 is CompletingRebalance: the member must finish the rebalance first.
    assert_eq!(check(&mut h, &a, 1), Err(GroupError::RebalanceInProgress));
    h.sync_all(&[a.clone(), b.clone()], &a, 1);
    assert_eq!(check(&mut h, &a, 1), Ok(()));
    assert_eq!(check(&mut h, &b, 0), Err(GroupError::IllegalGeneration));
    assert_eq!(check(&mut h, "ghost", 1), Err(GroupError::UnknownMemberId));
    assert_eq!(
        check(&mut h, "", -1),
        Err(GroupError::UnknownMemberId),
        "the group is in use"
    );
    assert_eq!(
        h.shard
            .validate_offset_commit(GROUP, &a, 1, Some("not-static"), h.now),
        Err(GroupError::UnknownMemberId)
    );
    let _c = h.join("");
    assert_eq!(
        check(&mut h, &a, 1),
        Ok(()),
        "commits are allowed while preparing a rebalance"
    );
}

#[test]
fn replay_loads_a_persisted_group_as_stable() {
    let mut h = Harness::new();
    let ids = h.stable_group(2);
    let saved: Vec<GroupRecord> = h.records.clone();

    let mut r = Harness::new();
    r.now = h.now + 100_000;
    for rec in saved {
        assert!(r.shard.replay(rec, r.now).is_empty());
    }
    assert_eq!(r.shard.finish_loading(r.now), Vec::new());
    let (before, after) = (h.describe(), r.describe());
    assert_eq!(before, after);
    assert_eq!(r.heartbeat(&ids[1], 1), Ok(()));
    let t = r.sync(&ids[1], 1);
    assert_eq!(
        r.take_sync(t).unwrap().assignment,
        Bytes::from(format!("{}-assignment", ids[1]))
    );
    // Loaded members only know the chosen protocol's metadata (the record has no
    // more), so a rejoin with the full list is a change: a rebalance.
    let t = r.join(&ids[1]);
    assert!(r.take_join(t).is_none());
    assert_eq!(r.state(), Some(GroupState::PreparingRebalance));
    // Sessions run from the load: the silent leader expires and the rejoined member
    // leads generation 2.
    r.advance(i64::from(SESSION_MS) - 1);
    assert!(r.take_join(t).is_none());
    r.advance(1);
    let j = r.take_join(t).unwrap();
    assert_eq!((j.generation_id, j.leader.as_str()), (2, ids[1].as_str()));

    r.shard.replay(
        GroupRecord::GroupTombstone {
            group_id: GROUP.to_owned(),
        },
        r.now,
    );
    assert_eq!(r.state(), None);
    assert_eq!(r.shard.next_deadline(), None);
}

#[test]
fn replaying_an_empty_group_and_loading_an_oversized_one() {
    let mut h = Harness::new();
    h.stable_group(3);
    let last = h.records.last().cloned().unwrap();
    let mut r = Harness::with_config(GroupConfig {
        max_size: 2,
        ..GroupConfig::default()
    });
    r.shard.replay(last, r.now);
    assert_eq!(r.state(), Some(GroupState::Stable));
    let fx = r.shard.finish_loading(r.now);
    r.apply(fx);
    assert_eq!(r.state(), Some(GroupState::PreparingRebalance));

    let mut e = Harness::new();
    let ids = e.stable_group(1);
    e.leave(vec![leaving(&ids[0], None)]).unwrap();
    let empty = e.records.last().cloned().unwrap();
    let mut r = Harness::new();
    r.shard.replay(empty, r.now);
    assert_eq!(r.state(), Some(GroupState::Empty));
    let d = r.describe();
    assert_eq!((d.protocol_type.as_str(), d.members.len()), ("consumer", 0));
    let t = r.join("");
    r.advance(6_000);
    assert_eq!(r.take_join(t).unwrap().generation_id, 3);
}
