//! Which partition a record goes to: the Java client's default partitioner, so that
//! keyed records land where every Kafka client (Java, librdkafka's `murmur2_random`,
//! kafka-python, sarama's `NewReferenceHashPartitioner`) puts them.
//!
//! - `--partition N`: every record to N.
//! - a keyed record: `toPositive(murmur2(key)) % numPartitions`, exactly as
//!   `BuiltInPartitioner.partitionForKey`. An empty key is a key and is hashed.
//! - a record without a key: sticky partitioning (KIP-480): one partition until its
//!   batch is full, then another, so null-key records fill whole batches instead of
//!   scattering one record per partition per request.

/// `org.apache.kafka.common.utils.Utils.murmur2`: MurmurHash2, 32 bit, seed 0x9747b28c,
/// as a signed int like Java's.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    // Java takes the length as an int; keys are far below 2 GiB (records are, too).
    let mut h = SEED ^ (data.len() as u32);
    let mut words = data.chunks_exact(4);
    for word in &mut words {
        let mut k = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = words.remainder();
    // Java's switch falls through from case 3 to case 1.
    if tail.len() == 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// `Utils.toPositive`: clears the sign bit (not `abs`, which overflows on MIN_VALUE).
pub fn to_positive(n: i32) -> i32 {
    n & 0x7fff_ffff
}

/// The partition the Java client's default partitioner gives `key`.
pub fn partition_for_key(key: &[u8], partitions: usize) -> usize {
    // to_positive is non-negative, so the cast is lossless.
    to_positive(murmur2(key)) as usize % partitions.max(1)
}

/// Chooses partitions for one topic.
pub struct Partitioner {
    partitions: usize,
    fixed: Option<usize>,
    sticky: usize,
    rng: XorShift,
}

impl Partitioner {
    /// A partitioner for a topic of `partitions` partitions (at least 1); `fixed` sends
    /// everything to one partition.
    pub fn new(partitions: usize, fixed: Option<usize>) -> Partitioner {
        let mut rng = XorShift::seeded();
        let partitions = partitions.max(1);
        let sticky = rng.below(partitions);
        Partitioner {
            partitions,
            fixed,
            sticky,
            rng,
        }
    }

    /// The partition for a record with this key.
    #[inline]
    pub fn partition(&self, key: Option<&[u8]>) -> usize {
        match (self.fixed, key) {
            (Some(p), _) => p,
            (None, Some(key)) => partition_for_key(key, self.partitions),
            (None, None) => self.sticky,
        }
    }

    /// Called when `partition`'s batch was closed: if it was the sticky partition, move
    /// null-key records to another one (uniformly among the others, as Java does when
    /// all partitions are equally loaded).
    pub fn batch_closed(&mut self, partition: usize) {
        if partition != self.sticky || self.partitions < 2 {
            return;
        }
        let other = self.rng.below(self.partitions - 1);
        self.sticky = if other >= self.sticky {
            other + 1
        } else {
            other
        };
    }
}

/// xorshift64*: enough randomness to spread sticky partitions, with no dependency.
struct XorShift(u64);

impl XorShift {
    fn seeded() -> XorShift {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let seed = nanos ^ (u64::from(std::process::id()) << 32) ^ 0x9e37_79b9_7f4a_7c15;
        XorShift(seed | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform enough in `0..n` for `n` far below 2^32.
    fn below(&mut self, n: usize) -> usize {
        ((self.next() >> 32) % n.max(1) as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kafka's own vectors: UtilsTest.testMurmur2 in the Java client.
    #[test]
    fn murmur2_matches_the_java_client() {
        let cases: &[(&[u8], i32)] = &[
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (key, want) in cases {
            assert_eq!(murmur2(key), *want, "{}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn keyed_partitions_follow_java() {
        // toPositive(-973932308) = 1173551340; 1173551340 % 10 = 0, % 7 = 3.
        assert_eq!(to_positive(-973_932_308), 1_173_551_340);
        assert_eq!(partition_for_key(b"21", 10), 0);
        assert_eq!(partition_for_key(b"21", 7), 3);
        // toPositive(-790332482) = 1357151166; % 4 = 2.
        assert_eq!(partition_for_key(b"foobar", 4), 2);
        // 479470107 % 5 = 2.
        assert_eq!(partition_for_key(b"abc", 5), 2);
        assert_eq!(to_positive(i32::MIN), 0);
        assert_eq!(to_positive(-1), i32::MAX);
        let p = Partitioner::new(7, None);
        assert_eq!(p.partition(Some(b"21")), 3);
        let fixed = Partitioner::new(7, Some(3));
        assert_eq!(fixed.partition(Some(b"21")), 3);
        assert_eq!(fixed.partition(None), 3);
    }

    #[test]
    fn null_keys_stick_until_the_batch_closes() {
        let mut p = Partitioner::new(4, None);
        let first = p.partition(None);
        assert_eq!(p.partition(None), first);
        // Closing another partition's batch does not move the sticky partition.
        p.batch_closed((first + 1) % 4);
        assert_eq!(p.partition(None), first);
        let mut seen = [false; 4];
        for _ in 0..200 {
            let before = p.partition(None);
            seen[before] = true;
            p.batch_closed(before);
            assert_ne!(p.partition(None), before, "switches to another partition");
        }
        assert!(seen.iter().all(|&s| s), "every partition used: {seen:?}");
        let mut one = Partitioner::new(1, None);
        one.batch_closed(0);
        assert_eq!(one.partition(None), 0);
    }
}
