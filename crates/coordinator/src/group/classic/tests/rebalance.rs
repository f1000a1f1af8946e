//! The rebalance itself: join phase, initial delay, join timeout, leader election,
//! protocol selection and SyncGroup.

use super::*;

#[test]
fn empty_to_preparing_to_completing_to_stable() {
    let mut h = Harness::new();
    let t = h.join("");
    assert_eq!(h.state(), Some(GroupState::PreparingRebalance));
    // A new group is recorded at once, empty.
    assert!(
        matches!(&h.records[..], [GroupRecord::GroupMetadata { value, .. }] if value.members.is_empty())
    );
    h.advance(2_999);
    assert!(
        h.take_join(t).is_none(),
        "the initial delay is still running"
    );
    h.advance(1);
    let r = h.take_join(t).expect("join phase over");
    assert_eq!(h.state(), Some(GroupState::CompletingRebalance));
    assert_eq!(r.error, None);
    assert_eq!(r.generation_id, 1);
    assert_eq!(r.leader, r.member_id);
    assert!(r.member_id.starts_with("client-"), "{}", r.member_id);
    assert_eq!(r.protocol_type.as_deref(), Some("consumer"));
    assert_eq!(r.protocol_name.as_deref(), Some("range"));
    assert_eq!(r.members.len(), 1);
    assert_eq!(r.members[0].metadata, Bytes::from("range-meta"));

    h.auto_persist = false;
    let s = h.leader_sync(&r.member_id, 1, std::slice::from_ref(&r.member_id));
    assert!(
        h.take_sync(s).is_none(),
        "answered once the assignment is durable"
    );
    assert_eq!(h.state(), Some(GroupState::CompletingRebalance));
    let Some(GroupRecord::GroupMetadata { value, .. }) = h.records.last() else {
        panic!("assignment not persisted");
    };
    assert_eq!(value.generation, 1);
    assert_eq!(value.leader.as_deref(), Some(r.member_id.as_str()));
    assert_eq!(
        value.members[0].assignment,
        Bytes::from(format!("{}-assignment", r.member_id))
    );
    h.complete_writes(Ok(()));
    let s = h.take_sync(s).expect("answered");
    assert_eq!(s.error, None);
    assert_eq!(s.protocol_name.as_deref(), Some("range"));
    assert_eq!(h.state(), Some(GroupState::Stable));
    h.assert_no_responses();
}

#[test]
fn member_id_required_then_rejoin_with_the_given_id() {
    let mut h = Harness::new();
    let mut req = h.join_req("");
    req.require_known_member_id = true;
    let t = h.send_join(req.clone());
    let r = h.take_join(t).expect("answered at once");
    assert_eq!(r.error, Some(GroupError::MemberIdRequired));
    assert!(r.member_id.starts_with("client-"));
    assert_eq!(
        h.state(),
        Some(GroupState::Empty),
        "a pending member is no member"
    );

    req.member_id = r.member_id.clone();
    let t = h.send_join(req);
    assert_eq!(h.state(), Some(GroupState::PreparingRebalance));
    h.advance(3_000);
    let j = h.take_join(t).expect("joined");
    assert_eq!((j.member_id, j.generation_id), (r.member_id, 1));
}

#[test]
fn pending_member_id_expires_after_its_session_timeout() {
    let mut h = Harness::new();
    let ids = h.stable_group(1);
    let mut req = h.join_req("");
    req.require_known_member_id = true;
    let t = h.send_join(req.clone());
    let pending = h.take_join(t).unwrap().member_id;
    assert_eq!(h.state(), Some(GroupState::Stable));
    h.advance(i64::from(SESSION_MS) - 1);
    h.heartbeat(&ids[0], 1).unwrap();
    h.advance(1);
    req.member_id = pending;
    let t = h.send_join(req);
    assert_eq!(
        h.take_join(t).unwrap().error,
        Some(GroupError::UnknownMemberId)
    );
    assert_eq!(h.state(), Some(GroupState::Stable));
}

#[test]
fn initial_delay_extends_while_members_keep_joining_up_to_the_rebalance_timeout() {
    let mut h = Harness::new();
    let mut req = h.join_req("");
    req.rebalance_timeout_ms = 10_000;
    // Delays: 0-3000, extended to 6000 (joined at 1000), to 9000 (joined at 4000),
    // then only to 10000 (joined at 7000): the rebalance timeout bounds the total.
    let mut tokens = vec![h.send_join(req.clone())];
    for step in [1_000, 3_000, 3_000] {
        h.advance(step);
        tokens.push(h.send_join(req.clone()));
    }
    h.advance(2_999); // t=9999
    assert!(tokens.iter().all(|t| h.take_join(*t).is_none()));
    h.advance(1); // t=10000: the rebalance timeout bounds the delay
    let rs: Vec<_> = tokens.iter().map(|t| h.take_join(*t).unwrap()).collect();
    assert!(rs.iter().all(|r| r.generation_id == 1 && r.error.is_none()));
    assert_eq!(rs[0].members.len(), 4);
    assert!(rs[1..].iter().all(|r| r.members.is_empty()));
}

#[test]
fn initial_delay_is_not_extended_without_new_members() {
    let mut h = Harness::new();
    let a = h.join("");
    h.advance(3_000);
    assert_eq!(h.take_join(a).unwrap().generation_id, 1);
}

#[test]
fn rebalance_completes_as_soon_as_every_known_member_rejoined() {
    let mut h = Harness::new();
    let ids = h.stable_group(2);
    let c = h.join("");
    assert_eq!(h.state(), Some(GroupState::PreparingRebalance));
    assert_eq!(
        h.heartbeat(&ids[0], 1),
        Err(GroupError::RebalanceInProgress)
    );
    let a = h.join(&ids[0]);
    assert!(h.take_join(a).is_none());
    let b = h.join(&ids[1]);
    let (a, b, c) = (
        h.take_join(a).unwrap(),
        h.take_join(b).unwrap(),
        h.take_join(c).unwrap(),
    );
    assert_eq!(h.state(), Some(GroupState::CompletingRebalance));
    assert_eq!(
        (a.generation_id, b.generation_id, c.generation_id),
        (2, 2, 2)
    );
    assert_eq!(a.leader, ids[0], "the leader keeps leading");
    assert_eq!(a.members.len(), 3);
    let mut all = ids.clone();
    all.push(c.member_id);
    h.sync_all(&all, &ids[0], 2);
}

#[test]
fn join_timeout_removes_members_that_did_not_rejoin() {
    let mut h = Harness::new();
    let ids = h.stable_group(2);
    let c = h.join("");
    h.advance(1_000);
    h.heartbeat(&ids[1], 1).unwrap_err();
    let a = h.join(&ids[0]);
    // The second member stays alive (heartbeats) but does not rejoin.
    for _ in 0..3 {
        h.advance(9_000);
        assert_eq!(
            h.heartbeat(&ids[1], 1),
            Err(GroupError::RebalanceInProgress)
        );
    }
    h.advance(i64::from(REBALANCE_MS) - 28_001);
    assert!(h.take_join(a).is_none());
    h.advance(1);
    let (a, c) = (h.take_join(a).unwrap(), h.take_join(c).unwrap());
    assert_eq!((a.generation_id, c.generation_id), (2, 2));
    let members: Vec<_> = a.members.iter().map(|m| m.member_id.clone()).collect();
    assert_eq!(members, vec![ids[0].clone(), c.member_id.clone()]);
    assert_eq!(h.heartbeat(&ids[1], 2), Err(GroupError::UnknownMemberId));
    assert_eq!(h.heartbeat(&ids[1], 1), Err(GroupError::UnknownMemberId));
}

#[test]
fn leader_that_does_not_rejoin_is_replaced_by_the_first_member_that_did() {
    let mut h = Harness::new();
    let ids = h.stable_group(3);
    assert_eq!(h.describe().members[0].member_id, ids[0]);
    // The third member changes its metadata: a rebalance; the leader stays away.
    let mut req = h.join_req(&ids[2]);
    req.protocols = protocols(&["range"]);
    let c = h.send_join(req);
    let b = h.join(&ids[1]);
    h.advance(i64::from(REBALANCE_MS));
    let (b, c) = (h.take_join(b).unwrap(), h.take_join(c).unwrap());
    assert_eq!(b.leader, ids[1]);
    assert_eq!(b.members.len(), 2, "the new leader gets the member list");
    assert!(c.members.is_empty());
    assert_eq!(h.heartbeat(&ids[0], 1), Err(GroupError::UnknownMemberId));
}

#[test]
fn leader_leaving_hands_leadership_to_the_longest_standing_member() {
    let mut h = Harness::new();
    let ids = h.stable_group(3);
    h.leave(vec![leaving(&ids[0], None)]).unwrap();
    let b = h.join(&ids[1]);
    let c = h.join(&ids[2]);
    let (b, c) = (h.take_join(b).unwrap(), h.take_join(c).unwrap());
    assert_eq!(
        (b.leader.as_str(), c.leader.as_str()),
        (ids[1].as_str(), ids[1].as_str())
    );
    assert_eq!(b.generation_id, 2);
}

#[test]
fn stable_follower_rejoining_unchanged_gets_the_current_generation() {
    let mut h = Harness::new();
    let ids = h.stable_group(2);
    let t = h.join(&ids[1]);
    let r = h.take_join(t).expect("answered at once");
    assert_eq!((r.generation_id, r.leader.as_str()), (1, ids[0].as_str()));
    assert!(r.members.is_empty());
    assert_eq!(h.state(), Some(GroupState::Stable));
    // The leader rejoining forces a rebalance.
    let t = h.join(&ids[0]);
    assert!(h.take_join(t).is_none());
    assert_eq!(h.state(), Some(GroupState::PreparingRebalance));
}

#[test]
fn completing_rebalance_rejoin_unchanged_is_answered_with_the_same_generation() {
    let mut h = Harness::new();
    let a = h.join("");
    h.advance(3_000);
    let a = h.take_join(a).unwrap();
    let t = h.join(&a.member_id);
    let again = h.take_join(t).unwrap();
    assert_eq!(
        again, a,
        "same generation, still the leader with the member list"
    );
    assert_eq!(h.state(), Some(GroupState::CompletingRebalance));
}

#[test]
fn protocol_is_chosen_by_votes_among_protocols_all_members_support() {
    let mut h = Harness::new();
    let mut prefs = vec![
        protocols(&["range", "roundrobin", "sticky"]),
        protocols(&["roundrobin", "range"]),
        protocols(&["roundrobin", "range", "cooperative"]),
    ];
    let tokens: Vec<_> = prefs
        .drain(..)
        .map(|p| {
            let mut req = h.join_req("");
            req.protocols = p;
            h.send_join(req)
        })
        .collect();
    h.advance(6_000);
    for t in tokens {
        assert_eq!(
            h.take_join(t).unwrap().protocol_name.as_deref(),
            Some("roundrobin")
        );
    }
}

#[test]
fn protocol_vote_ties_go_to_the_longest_standing_member_choice() {
    let mut h = Harness::new();
    let mut a = h.join_req("");
    a.protocols = protocols(&["sticky", "range"]);
    let mut b = h.join_req("");
    b.protocols = protocols(&["range", "sticky"]);
    let (a, _b) = (h.send_join(a), h.send_join(b));
    h.advance(6_000);
    assert_eq!(
        h.take_join(a).unwrap().protocol_name.as_deref(),
        Some("sticky")
    );
}

#[test]
fn inconsistent_group_protocol() {
    let mut h = Harness::new();
    let mut req = h.join_req("");
    req.protocols = Vec::new();
    let t = h.send_join(req);
    assert_eq!(
        h.take_join(t).unwrap().error,
        Some(GroupError::InconsistentGroupProtocol)
    );

    let ids = h.stable_group(1);
    let mut req = h.join_req("");
    req.protocols = protocols(&["sticky"]);
    let t = h.send_join(req);
    assert_eq!(
        h.take_join(t).unwrap().error,
        Some(GroupError::InconsistentGroupProtocol)
    );
    let mut req = h.join_req("");
    req.protocol_type = "connect".to_owned();
    let t = h.send_join(req);
    assert_eq!(
        h.take_join(t).unwrap().error,
        Some(GroupError::InconsistentGroupProtocol)
    );
    // An existing member may not drop every protocol the group can use either.
    let mut req = h.join_req(&ids[0]);
    req.protocol_type = "connect".to_owned();
    let t = h.send_join(req);
    assert_eq!(
        h.take_join(t).unwrap().error,
        Some(GroupError::InconsistentGroupProtocol)
    );

    let mut sync = h.sync_req(&ids[0], 1);
    sync.protocol_name = Some("roundrobin".to_owned());
    let t = h.send_sync(sync);
    assert_eq!(
        h.take_sync(t).unwrap().error,
        Some(GroupError::InconsistentGroupProtocol)
    );
    assert_eq!(h.state(), Some(GroupState::Stable));
}

#[test]
fn follower_sync_before_the_leader_waits_for_the_assignment() {
    let mut h = Harness::new();
    let (a, b) = (h.join(""), h.join(""));
    h.advance(6_000);
    let (a, b) = (h.take_join(a).unwrap(), h.take_join(b).unwrap());
    let fb = h.sync(&b.member_id, 1);
    assert!(h.take_sync(fb).is_none());
    h.auto_persist = false;
    let ids = vec![a.member_id.clone(), b.member_id.clone()];
    let fa = h.leader_sync(&a.member_id, 1, &ids);
    h.assert_no_responses();
    h.complete_writes(Ok(()));
    let (ra, rb) = (h.take_sync(fa).unwrap(), h.take_sync(fb).unwrap());
    assert_eq!(
        ra.assignment,
        Bytes::from(format!("{}-assignment", a.member_id))
    );
    assert_eq!(
        rb.assignment,
        Bytes::from(format!("{}-assignment", b.member_id))
    );
    assert_eq!(h.state(), Some(GroupState::Stable));
}

#[test]
fn follower_sync_after_the_leader_is_answered_at_once_and_missing_assignments_are_empty() {
    let mut h = Harness::new();
    let (a, b) = (h.join(""), h.join(""));
    h.advance(6_000);
    let (a, b) = (h.take_join(a).unwrap(), h.take_join(b).unwrap());
    let fa = h.leader_sync(&a.member_id, 1, std::slice::from_ref(&a.member_id));
    h.take_sync(fa).unwrap();
    let fb = h.sync(&b.member_id, 1);
    let rb = h.take_sync(fb).unwrap();
    assert_eq!((rb.error, rb.assignment), (None, Bytes::new()));
}

#[test]
fn sync_errors() {
    let mut h = Harness::new();
    let mut req = h.sync_req("nobody", 1);
    req.group_id = "unknown".to_owned();
    let t = h.send_sync(req);
    assert_eq!(
        h.take_sync(t).unwrap().error,
        Some(GroupError::UnknownMemberId)
    );

    let ids = h.stable_group(2);
    let t = h.sync(&ids[1], 0);
    assert_eq!(
        h.take_sync(t).unwrap().error,
        Some(GroupError::IllegalGeneration)
    );
    let t = h.sync("stranger", 1);
    assert_eq!(
        h.take_sync(t).unwrap().error,
        Some(GroupError::UnknownMemberId)
    );
    let t = h.sync("", 1);
    assert_eq!(
        h.take_sync(t).unwrap().error,
        Some(GroupError::UnknownMemberId)
    );
    let _c = h.join("");
    let t = h.sync(&ids[1], 1);
    assert_eq!(
        h.take_sync(t).unwrap().error,
        Some(GroupError::RebalanceInProgress)
    );
}

#[test]
fn a_new_rebalance_answers_waiting_syncs_with_rebalance_in_progress() {
    let mut h = Harness::new();
    let (a, b) = (h.join(""), h.join(""));
    h.advance(6_000);
    let (a, b) = (h.take_join(a).unwrap(), h.take_join(b).unwrap());
    let fb = h.sync(&b.member_id, 1);
    let _c = h.join("");
    assert_eq!(
        h.take_sync(fb).unwrap().error,
        Some(GroupError::RebalanceInProgress)
    );
    assert_eq!(h.state(), Some(GroupState::PreparingRebalance));
    let t = h.leader_sync(&a.member_id, 1, &[]);
    assert_eq!(
        h.take_sync(t).unwrap().error,
        Some(GroupError::RebalanceInProgress)
    );
}

#[test]
fn rebalance_during_the_leader_write_wins_over_the_write() {
    let mut h = Harness::new();
    let (a, b) = (h.join(""), h.join(""));
    h.advance(6_000);
    let (a, b) = (h.take_join(a).unwrap(), h.take_join(b).unwrap());
    h.auto_persist = false;
    let fa = h.leader_sync(&a.member_id, 1, &[a.member_id.clone(), b.member_id.clone()]);
    let _c = h.join("");
    assert_eq!(
        h.take_sync(fa).unwrap().error,
        Some(GroupError::RebalanceInProgress)
    );
    h.complete_writes(Ok(()));
    assert_eq!(h.state(), Some(GroupState::PreparingRebalance));
    h.assert_no_responses();
}

#[test]
fn failed_assignment_write_fails_every_sync_and_rebalances() {
    let mut h = Harness::new();
    let (a, b) = (h.join(""), h.join(""));
    h.advance(6_000);
    let (a, b) = (h.take_join(a).unwrap(), h.take_join(b).unwrap());
    let fb = h.sync(&b.member_id, 1);
    h.auto_persist = false;
    let fa = h.leader_sync(&a.member_id, 1, &[a.member_id.clone(), b.member_id.clone()]);
    h.complete_writes(Err(GroupError::NotCoordinator));
    assert_eq!(
        h.take_sync(fa).unwrap().error,
        Some(GroupError::NotCoordinator)
    );
    assert_eq!(
        h.take_sync(fb).unwrap().error,
        Some(GroupError::NotCoordinator)
    );
    assert_eq!(h.state(), Some(GroupState::PreparingRebalance));
}

#[test]
fn members_that_never_sync_are_removed_after_the_rebalance_timeout() {
    let mut h = Harness::new();
    let (a, b) = (h.join(""), h.join(""));
    h.advance(6_000);
    let (a, b) = (h.take_join(a).unwrap(), h.take_join(b).unwrap());
    let fa = h.leader_sync(&a.member_id, 1, &[a.member_id.clone(), b.member_id.clone()]);
    h.take_sync(fa).unwrap();
    assert_eq!(h.state(), Some(GroupState::Stable));
    for _ in 0..3 {
        h.advance(i64::from(SESSION_MS) - 1);
        h.heartbeat(&a.member_id, 1).unwrap();
        h.heartbeat(&b.member_id, 1).unwrap();
    }
    // b heartbeats but never syncs: at the rebalance timeout it is dropped.
    h.advance(i64::from(REBALANCE_MS) - 3 * (i64::from(SESSION_MS) - 1));
    assert_eq!(h.state(), Some(GroupState::PreparingRebalance));
    assert_eq!(
        h.heartbeat(&b.member_id, 1),
        Err(GroupError::UnknownMemberId)
    );
    let t = h.join(&a.member_id);
    assert_eq!(h.take_join(t).unwrap().generation_id, 2);
}

#[test]
fn a_retried_join_answers_the_superseded_one() {
    let mut h = Harness::new();
    let ids = h.stable_group(2);
    let first = h.join(&ids[0]);
    let second = h.join(&ids[0]);
    assert_eq!(
        h.take_join(first).unwrap().error,
        Some(GroupError::RebalanceInProgress)
    );
    let b = h.join(&ids[1]);
    assert_eq!(h.take_join(second).unwrap().generation_id, 2);
    assert_eq!(h.take_join(b).unwrap().generation_id, 2);
}
