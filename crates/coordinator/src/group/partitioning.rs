//! Which `__consumer_offsets` partition holds a group: Kafka's
//! `Utils.abs(groupId.hashCode()) % offsets.topic.num.partitions`, so clients and tools
//! that compute it themselves agree with the broker. `hashCode` is Java's
//! `String.hashCode`, `h = 31 * h + c` over the UTF-16 code units with wrapping `int`
//! arithmetic; Kafka's `Utils.abs` maps `Integer.MIN_VALUE` to 0 (not `Math.abs`,
//! which would leave it negative).

/// Java's `String.hashCode`.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// Kafka's `Utils.abs`.
fn kafka_abs(n: i32) -> i32 {
    if n == i32::MIN { 0 } else { n.abs() }
}

/// The partition of `__consumer_offsets` (of `partitions`) that coordinates `group_id`.
/// `partitions` is `offsets.topic.num.partitions`, at least 1; a smaller value is
/// taken as 1.
pub fn group_partition(group_id: &str, partitions: i32) -> i32 {
    kafka_abs(java_string_hash(group_id)) % partitions.max(1)
}
