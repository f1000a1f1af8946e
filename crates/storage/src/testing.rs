//! Synthetic record batches for tests and benches: a valid v2 header and CRC around
//! opaque bytes that stand in for the records (storage never decodes records).

use crate::batch::*;

/// A v2 batch with base offset 0, leader epoch -1, no producer state (unless
/// `producer_id` is given) and a correct CRC-32C over `payload`.
pub fn encode_batch(
    records_count: i32,
    base_timestamp: i64,
    max_timestamp: i64,
    producer_id: i64,
    payload: &[u8],
) -> Vec<u8> {
    let mut b = vec![0u8; HEADER_SIZE];
    b.extend_from_slice(payload);
    let len = (b.len() - LOG_OVERHEAD) as i32;
    b[LENGTH_OFFSET..LENGTH_OFFSET + 4].copy_from_slice(&len.to_be_bytes());
    b[PARTITION_LEADER_EPOCH_OFFSET..PARTITION_LEADER_EPOCH_OFFSET + 4]
        .copy_from_slice(&(-1i32).to_be_bytes());
    b[MAGIC_OFFSET] = MAGIC_V2 as u8;
    b[LAST_OFFSET_DELTA_OFFSET..LAST_OFFSET_DELTA_OFFSET + 4]
        .copy_from_slice(&(records_count - 1).to_be_bytes());
    b[BASE_TIMESTAMP_OFFSET..BASE_TIMESTAMP_OFFSET + 8]
        .copy_from_slice(&base_timestamp.to_be_bytes());
    b[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8].copy_from_slice(&max_timestamp.to_be_bytes());
    b[PRODUCER_ID_OFFSET..PRODUCER_ID_OFFSET + 8].copy_from_slice(&producer_id.to_be_bytes());
    b[PRODUCER_EPOCH_OFFSET..PRODUCER_EPOCH_OFFSET + 2].copy_from_slice(&(-1i16).to_be_bytes());
    b[BASE_SEQUENCE_OFFSET..BASE_SEQUENCE_OFFSET + 4].copy_from_slice(&(-1i32).to_be_bytes());
    b[RECORDS_COUNT_OFFSET..RECORDS_COUNT_OFFSET + 4].copy_from_slice(&records_count.to_be_bytes());
    let crc = checksum(&b[ATTRIBUTES_OFFSET..]);
    b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    b
}

/// A batch of `records_count` records of `record_size` opaque bytes each, all stamped
/// `timestamp`.
pub fn batch_of(records_count: i32, record_size: usize, timestamp: i64) -> Vec<u8> {
    let payload: Vec<u8> = (0..records_count as usize * record_size)
        .map(|i| (i * 31 % 251) as u8)
        .collect();
    encode_batch(
        records_count,
        timestamp,
        timestamp,
        NO_PRODUCER_ID,
        &payload,
    )
}

/// Bytes `position..position + len` of the file at `path` as a [`FileRecords`], for
/// tests of code that sends record sets from files.
pub fn file_records(
    path: &std::path::Path,
    position: u64,
    len: usize,
) -> std::io::Result<crate::FileRecords> {
    let file = std::fs::File::open(path)?;
    Ok(crate::FileRecords::new(
        std::sync::Arc::new(file),
        position,
        len,
    ))
}
