//! Members coming and going: heartbeats, session expiry, LeaveGroup, static
//! membership, group.max.size and session timeout bounds.

use super::*;

#[test]
fn heartbeat_answers_by_state() {
    let mut h = Harness::new();
    let mut hb = HeartbeatRequest {
        group_id: "unknown".to_owned(),
        generation_id: 1,
        member_id: "m".to_owned(),
        group_instance_id: None,
    };
    assert_eq!(
        h.shard.heartbeat(hb.clone(), h.now),
        Err(GroupError::UnknownMemberId)
    );
    hb.group_id = String::new();
    assert_eq!(
        h.shard.heartbeat(hb, h.now),
        Err(GroupError::InvalidGroupId)
    );

    let a = h.join("");
    h.advance(6_000);
    let a = h.take_join(a).unwrap().member_id;
    assert_eq!(h.state(), Some(GroupState::CompletingRebalance));
    assert_eq!(h.heartbeat(&a, 1), Ok(()));
    assert_eq!(h.heartbeat(&a, 0), Err(GroupError::IllegalGeneration));
    assert_eq!(h.heartbeat("other", 1), Err(GroupError::UnknownMemberId));
    assert_eq!(h.heartbeat("", 1), Err(GroupError::UnknownMemberId));
    let t = h.leader_sync(&a, 1, std::slice::from_ref(&a));
    h.take_sync(t).unwrap();
    assert_eq!(h.heartbeat(&a, 1), Ok(()));
    let _b = h.join("");
    assert_eq!(h.state(), Some(GroupState::PreparingRebalance));
    assert_eq!(h.heartbeat(&a, 1), Err(GroupError::RebalanceInProgress));
    h.leave(vec![leaving(&a, None)]).unwrap();
    assert_eq!(h.heartbeat(&a, 1), Err(GroupError::UnknownMemberId));
    // a leaving let the join phase end with the new member alone (generation 2); it
    // never syncs, so the sync deadline drops it and the group is Empty.
    assert_eq!(h.state(), Some(GroupState::CompletingRebalance));
    h.advance(i64::from(REBALANCE_MS));
    assert_eq!(h.state(), Some(GroupState::Empty));
    assert_eq!(h.heartbeat(&a, 3), Err(GroupError::UnknownMemberId));
}

#[test]
fn heartbeats_keep_a_member_and_silence_expires_it_into_a_rebalance() {
    let mut h = Harness::new();
    let ids = h.stable_group(2);
    for _ in 0..5 {
        h.advance(i64::from(SESSION_MS) - 1);
        h.heartbeat(&ids[0], 1).unwrap();
        h.heartbeat(&ids[1], 1).unwrap();
    }
    assert_eq!(h.state(), Some(GroupState::Stable));
    h.advance(i64::from(SESSION_MS) - 1);
    h.heartbeat(&ids[0], 1).unwrap();
    h.advance(1);
    assert_eq!(h.state(), Some(GroupState::PreparingRebalance));
    assert_eq!(h.heartbeat(&ids[1], 1), Err(GroupError::UnknownMemberId));
    assert_eq!(
        h.heartbeat(&ids[0], 1),
        Err(GroupError::RebalanceInProgress)
    );
    let t = h.join(&ids[0]);
    let r = h
        .take_join(t)
        .expect("the only member rejoined: no waiting");
    assert_eq!((r.generation_id, r.members.len()), (2, 1));
}

#[test]
fn last_member_expiring_leaves_the_group_empty_and_recorded() {
    let mut h = Harness::new();
    h.stable_group(1);
    h.advance(i64::from(SESSION_MS));
    assert_eq!(h.state(), Some(GroupState::Empty));
    let Some(GroupRecord::GroupMetadata { value, .. }) = h.records.last() else {
        panic!("empty generation not recorded");
    };
    assert_eq!((value.generation, value.members.len()), (2, 0));
    assert_eq!(value.protocol, None);
    assert_eq!(value.protocol_type, "consumer");
    assert_eq!(h.shard.next_deadline(), None, "no timers left");
}

#[test]
fn last_member_leaving_makes_the_group_empty() {
    let mut h = Harness::new();
    let ids = h.stable_group(1);
    let left = h.leave(vec![leaving(&ids[0], None)]).unwrap();
    assert_eq!(left[0].error, None);
    assert_eq!(h.state(), Some(GroupState::Empty));
    assert!(
        matches!(h.records.last(), Some(GroupRecord::GroupMetadata { value, .. }) if value.members.is_empty() && value.generation == 2)
    );
    // Rejoining an Empty group starts with the initial delay again.
    let t = h.join("");
    h.advance(2_999);
    assert!(h.take_join(t).is_none());
    h.advance(1);
    assert_eq!(h.take_join(t).unwrap().generation_id, 3);
}

#[test]
fn batched_leave_by_member_id_and_instance_id() {
    let mut h = Harness::new();
    let ids = h.stable_group(2);
    let mut req = h.join_req("");
    req.group_instance_id = Some("i3".to_owned());
    let s = h.send_join(req);
    let a = h.join(&ids[0]);
    let b = h.join(&ids[1]);
    let s = h.take_join(s).unwrap().member_id;
    h.take_join(a).unwrap();
    h.take_join(b).unwrap();
    assert!(
        s.starts_with("i3-"),
        "static member ids start with the instance id"
    );
    let left = h
        .leave(vec![
            leaving(&ids[0], None),
            leaving("", Some("i3")),
            leaving("ghost", None),
            leaving("", Some("no-such-instance")),
            leaving(&ids[1], Some("i3")),
        ])
        .unwrap();
    let errors: Vec<_> = left.iter().map(|l| l.error.clone()).collect();
    assert_eq!(
        errors,
        vec![
            None,
            None,
            Some(GroupError::UnknownMemberId),
            Some(GroupError::UnknownMemberId),
            Some(GroupError::UnknownMemberId), // i3 already left
        ]
    );
    // Only ids[1] remains; it rejoins alone.
    assert_eq!(h.state(), Some(GroupState::PreparingRebalance));
    let t = h.join(&ids[1]);
    assert_eq!(h.take_join(t).unwrap().members.len(), 1);
}

#[test]
fn leave_errors() {
    let mut h = Harness::new();
    let out = h.shard.leave_group(
        LeaveGroupRequest {
            group_id: "unknown".to_owned(),
            members: vec![leaving("m", None)],
        },
        h.now,
    );
    assert_eq!(out.response, Err(GroupError::UnknownMemberId));
    let mut req = h.join_req("");
    req.group_instance_id = Some("s".to_owned());
    let t = h.send_join(req);
    h.advance(6_000);
    let s = h.take_join(t).unwrap().member_id;
    let left = h.leave(vec![leaving("s-old", Some("s"))]).unwrap();
    assert_eq!(left[0].error, Some(GroupError::FencedInstanceId));
    let left = h.leave(vec![leaving(&s, Some("s"))]).unwrap();
    assert_eq!(left[0].error, None);
}

#[test]
fn leaving_mid_rebalance_answers_its_own_join_and_completes_the_phase() {
    let mut h = Harness::new();
    let ids = h.stable_group(2);
    let a = h.join(&ids[0]);
    assert!(h.take_join(a).is_none());
    h.leave(vec![leaving(&ids[1], None)]).unwrap();
    let r = h.take_join(a).expect("everyone left has rejoined");
    assert_eq!((r.generation_id, r.members.len()), (2, 1));
    // A waiting member removed by an admin gets UNKNOWN_MEMBER_ID.
    let mut h = Harness::new();
    let ids = h.stable_group(2);
    let a = h.join(&ids[0]);
    h.leave(vec![leaving(&ids[0], None)]).unwrap();
    assert_eq!(
        h.take_join(a).unwrap().error,
        Some(GroupError::UnknownMemberId)
    );
    let b = h.join(&ids[1]);
    let b = h.take_join(b).unwrap();
    assert_eq!((b.generation_id, b.members.len()), (2, 1));
}

fn static_join(h: &mut Harness, member_id: &str, instance: &str) -> RequestToken {
    let mut req = h.join_req(member_id);
    req.group_instance_id = Some(instance.to_owned());
    h.send_join(req)
}

/// A Stable group of a static leader "s1" and a dynamic follower.
fn static_group(h: &mut Harness) -> (String, String) {
    let s = static_join(h, "", "s1");
    let d = h.join("");
    h.advance(6_000);
    let s = h.take_join(s).unwrap().member_id;
    let d = h.take_join(d).unwrap().member_id;
    h.sync_all(&[s.clone(), d.clone()], &s, 1);
    (s, d)
}

#[test]
fn static_member_restart_keeps_its_assignment_without_a_rebalance() {
    let mut h = Harness::new();
    let (old, d) = static_group(&mut h);
    let writes = h.records.len();
    let t = static_join(&mut h, "", "s1");
    let r = h.take_join(t).unwrap();
    assert_eq!(r.error, None);
    assert_ne!(r.member_id, old);
    assert!(r.member_id.starts_with("s1-"));
    assert_eq!(r.generation_id, 1, "same generation: no rebalance");
    assert_eq!(
        r.leader, old,
        "the old leader id, so the client does not assign"
    );
    assert!(r.members.is_empty());
    assert_eq!(h.state(), Some(GroupState::Stable));
    let Some(GroupRecord::GroupMetadata { value, .. }) = h.records.get(writes) else {
        panic!("replacement not recorded");
    };
    assert_eq!(value.leader.as_deref(), Some(r.member_id.as_str()));
    // The new id syncs and gets the old assignment.
    let mut sync = h.sync_req(&r.member_id, 1);
    sync.group_instance_id = Some("s1".to_owned());
    let t = h.send_sync(sync);
    assert_eq!(
        h.take_sync(t).unwrap().assignment,
        Bytes::from(format!("{old}-assignment"))
    );
    // The old id is fenced.
    let mut hb = HeartbeatRequest {
        group_id: GROUP.to_owned(),
        generation_id: 1,
        member_id: old.clone(),
        group_instance_id: Some("s1".to_owned()),
    };
    assert_eq!(
        h.shard.heartbeat(hb.clone(), h.now),
        Err(GroupError::FencedInstanceId)
    );
    hb.group_instance_id = None;
    assert_eq!(
        h.shard.heartbeat(hb, h.now),
        Err(GroupError::UnknownMemberId)
    );
    let t = static_join(&mut h, &old, "s1");
    assert_eq!(
        h.take_join(t).unwrap().error,
        Some(GroupError::FencedInstanceId)
    );
    assert_eq!(h.heartbeat(&d, 1), Ok(()));
    assert_eq!(h.state(), Some(GroupState::Stable));
}

#[test]
fn static_leader_restart_with_skip_assignment_learns_it_leads() {
    let mut h = Harness::new();
    let (_old, _d) = static_group(&mut h);
    let mut req = h.join_req("");
    req.group_instance_id = Some("s1".to_owned());
    req.supports_skip_assignment = true;
    let t = h.send_join(req);
    let r = h.take_join(t).unwrap();
    assert!(r.skip_assignment);
    assert_eq!(r.leader, r.member_id);
    assert_eq!(r.members.len(), 2);
}

#[test]
fn static_replacement_write_failure_restores_the_old_member() {
    let mut h = Harness::new();
    let (old, _d) = static_group(&mut h);
    h.auto_persist = false;
    let t = static_join(&mut h, "", "s1");
    assert!(h.take_join(t).is_none(), "answered once durable");
    h.complete_writes(Err(GroupError::CoordinatorNotAvailable));
    assert_eq!(
        h.take_join(t).unwrap().error,
        Some(GroupError::CoordinatorNotAvailable)
    );
    let mut hb = HeartbeatRequest {
        group_id: GROUP.to_owned(),
        generation_id: 1,
        member_id: old,
        group_instance_id: Some("s1".to_owned()),
    };
    assert_eq!(h.shard.heartbeat(hb.clone(), h.now), Ok(()));
    hb.member_id = "x".to_owned();
    assert_eq!(
        h.shard.heartbeat(hb, h.now),
        Err(GroupError::FencedInstanceId)
    );
}

#[test]
fn static_member_restart_with_new_protocols_rebalances() {
    let mut h = Harness::new();
    let (old, d) = static_group(&mut h);
    let mut req = h.join_req("");
    req.group_instance_id = Some("s1".to_owned());
    req.protocols = protocols(&["roundrobin"]);
    let s = h.send_join(req);
    assert_eq!(h.state(), Some(GroupState::PreparingRebalance));
    let d = h.join(&d);
    let (s, d) = (h.take_join(s).unwrap(), h.take_join(d).unwrap());
    assert_eq!(
        (s.generation_id, s.protocol_name.as_deref()),
        (2, Some("roundrobin"))
    );
    assert_eq!(s.leader, s.member_id, "leadership moved to the new id");
    assert_ne!(s.member_id, old);
    assert!(d.members.is_empty());
}

#[test]
fn static_member_that_does_not_rejoin_stays_through_the_join_phase() {
    let mut h = Harness::new();
    let (s, d) = static_group(&mut h);
    let mut req = h.join_req(&d);
    req.protocols = protocols(&["range"]);
    let t = h.send_join(req);
    // The static member heartbeats (and is told to rejoin) but does not rejoin.
    for _ in 0..3 {
        h.advance(i64::from(SESSION_MS) - 1);
        assert_eq!(h.heartbeat(&s, 1), Err(GroupError::RebalanceInProgress));
    }
    h.advance(i64::from(REBALANCE_MS) - 3 * (i64::from(SESSION_MS) - 1));
    let r = h.take_join(t).unwrap();
    assert_eq!(r.generation_id, 2);
    assert_eq!(r.leader, d, "the leader did not rejoin");
    assert_eq!(
        r.members.len(),
        2,
        "the static member is still in the generation"
    );
    assert!(
        r.members
            .iter()
            .any(|m| m.member_id == s && m.group_instance_id.as_deref() == Some("s1"))
    );
}

#[test]
fn group_max_size_refuses_members_beyond_it() {
    let mut h = Harness::with_config(GroupConfig {
        max_size: 2,
        ..GroupConfig::default()
    });
    let ids = h.stable_group(2);
    let t = h.join("");
    assert_eq!(
        h.take_join(t).unwrap().error,
        Some(GroupError::GroupMaxSizeReached)
    );
    assert_eq!(h.state(), Some(GroupState::Stable));
    // Existing members are still accepted.
    let t = h.join(&ids[1]);
    assert_eq!(h.take_join(t).unwrap().error, None);
    // During a join phase only members that rejoined count.
    let a = h.join(&ids[0]);
    assert_eq!(h.state(), Some(GroupState::PreparingRebalance));
    let c = h.join("");
    assert!(h.take_join(c).is_none(), "one of two slots is taken so far");
    let b = h.join(&ids[1]);
    assert_eq!(
        h.take_join(b).unwrap().error,
        Some(GroupError::GroupMaxSizeReached)
    );
    h.advance(i64::from(REBALANCE_MS));
    assert_eq!(h.take_join(a).unwrap().members.len(), 2);
    h.take_join(c).unwrap();
}

#[test]
fn session_timeout_must_be_within_the_broker_bounds() {
    let mut h = Harness::new();
    for timeout in [5_999, 1_800_001] {
        let mut req = h.join_req("");
        req.session_timeout_ms = timeout;
        let t = h.send_join(req);
        assert!(matches!(
            h.take_join(t).unwrap().error,
            Some(GroupError::InvalidSessionTimeout { timeout_ms, .. }) if timeout_ms == timeout
        ));
    }
    assert_eq!(h.state(), None, "nothing was created");
    let mut req = h.join_req("");
    req.group_id = String::new();
    let t = h.send_join(req);
    assert_eq!(
        h.take_join(t).unwrap().error,
        Some(GroupError::InvalidGroupId)
    );
}

#[test]
fn a_new_member_that_waits_past_the_join_timeout_is_dropped() {
    let mut h = Harness::with_config(GroupConfig {
        new_member_join_timeout_ms: 5_000,
        ..GroupConfig::default()
    });
    let ids = h.stable_group(1);
    let b = h.join("");
    h.advance(4_999);
    h.heartbeat(&ids[0], 1).unwrap_err();
    assert!(h.take_join(b).is_none());
    h.advance(1);
    assert_eq!(
        h.take_join(b).unwrap().error,
        Some(GroupError::UnknownMemberId)
    );
    // The old member rejoins alone.
    let a = h.join(&ids[0]);
    assert_eq!(h.take_join(a).unwrap().members.len(), 1);
}

#[test]
fn joining_with_an_unknown_member_id_is_refused() {
    let mut h = Harness::new();
    let t = h.join("ghost");
    assert_eq!(
        h.take_join(t).unwrap().error,
        Some(GroupError::UnknownMemberId)
    );
    assert_eq!(h.state(), None);
    h.stable_group(1);
    let t = h.join("ghost");
    assert_eq!(
        h.take_join(t).unwrap().error,
        Some(GroupError::UnknownMemberId)
    );
}
