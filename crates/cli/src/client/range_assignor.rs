//! The "range" partition assignor of Kafka's consumer protocol: per topic, the members
//! subscribed to it (sorted by member id) each get a contiguous range of partitions, the
//! first `partitions % members` members one extra. The group leader runs it for
//! everyone, so it must give the same answer a Java or librdkafka leader would.

use std::collections::BTreeMap;

/// Name of the assignor in JoinGroup's protocol list.
pub const RANGE: &str = "range";

/// Assigns the partitions of every topic in `partition_counts` among the members that
/// subscribed to it. `subscriptions` maps member id → subscribed topics; the result maps
/// every member id (also those that get nothing) → `(topic, partitions)`, sorted.
pub fn assign(
    subscriptions: &BTreeMap<String, Vec<String>>,
    partition_counts: &BTreeMap<String, i32>,
) -> BTreeMap<String, Vec<(String, Vec<i32>)>> {
    let mut out: BTreeMap<String, Vec<(String, Vec<i32>)>> = subscriptions
        .keys()
        .map(|member| (member.clone(), Vec::new()))
        .collect();
    for (topic, &count) in partition_counts {
        // BTreeMap iteration is already sorted by member id, as the range assignor
        // requires.
        let members: Vec<&String> = subscriptions
            .iter()
            .filter(|(_, topics)| topics.contains(topic))
            .map(|(member, _)| member)
            .collect();
        if members.is_empty() || count <= 0 {
            continue;
        }
        let n = members.len() as i32;
        let per_member = count / n;
        let extra = count % n;
        let mut next = 0;
        for (i, member) in members.iter().enumerate() {
            let i = i as i32;
            let take = per_member + i32::from(i < extra);
            if take == 0 {
                continue;
            }
            let partitions: Vec<i32> = (next..next + take).collect();
            next += take;
            if let Some(assigned) = out.get_mut(*member) {
                assigned.push((topic.clone(), partitions));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subs(entries: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        entries
            .iter()
            .map(|(m, ts)| (m.to_string(), ts.iter().map(|t| t.to_string()).collect()))
            .collect()
    }

    #[test]
    fn ranges_follow_member_order_with_extras_first() {
        let counts = BTreeMap::from([("t".to_string(), 5)]);
        let out = assign(&subs(&[("b", &["t"]), ("a", &["t"])]), &counts);
        assert_eq!(out["a"], vec![("t".to_string(), vec![0, 1, 2])]);
        assert_eq!(out["b"], vec![("t".to_string(), vec![3, 4])]);
    }

    #[test]
    fn more_members_than_partitions_leaves_some_empty() {
        let counts = BTreeMap::from([("t".to_string(), 1)]);
        let out = assign(&subs(&[("a", &["t"]), ("b", &["t"])]), &counts);
        assert_eq!(out["a"], vec![("t".to_string(), vec![0])]);
        assert!(out["b"].is_empty());
    }

    #[test]
    fn only_subscribers_of_a_topic_share_it() {
        let counts = BTreeMap::from([("t".to_string(), 2), ("u".to_string(), 2)]);
        let out = assign(&subs(&[("a", &["t", "u"]), ("b", &["u"])]), &counts);
        assert_eq!(
            out["a"],
            vec![("t".to_string(), vec![0, 1]), ("u".to_string(), vec![0])]
        );
        assert_eq!(out["b"], vec![("u".to_string(), vec![1])]);
    }
}
