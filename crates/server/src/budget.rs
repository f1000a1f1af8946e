//! The server-wide memory budget for requests in flight (`queued.max.request.bytes`).
//!
//! A request holds a share of the budget from when its body has arrived (before it is
//! decoded) until its response is written; a connection that cannot get its share stops
//! reading (TCP backpressure) until others finish. The share is taken in one piece, so
//! two connections can never each hold part of the budget while waiting for the rest.
//! It is not taken while the body is still arriving: a peer that announces 100 MiB and
//! stalls would otherwise pin budget it never uses, and five such peers would starve the
//! broker. Bodies in transit are bounded instead by the frame caps and by the bytes the
//! peer has actually sent (see `crate::frame`).
//!
//! The share estimates memory, not wire bytes: a decoded request is larger than its
//! frame. `kafka-protocol` turns a 1-byte compact string into a 32-byte `StrBytes` and a
//! 2-byte array element into a ~72-byte struct with its tagged-field map, so a hostile
//! non-Produce request can expand ~40x. Produce is the exception: its records stay
//! `Bytes` slices of the frame, so it is charged its size. Non-Produce requests are
//! charged [`DECODE_EXPANSION`] times their size, which `non.produce.request.max.bytes`
//! keeps small (8 MiB x 40 = 320 MiB of the default 512 MiB budget). A share is capped at
//! the whole budget so an allowed request is always admitted eventually.

use std::sync::Arc;

use kafka_protocol::messages::ApiKey;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Estimated worst-case ratio of decoded size to wire size for non-Produce requests.
pub const DECODE_EXPANSION: u64 = 40;

/// Budget accounting unit: permits are KiB so a `u32` permit count covers 4 TiB.
const UNIT: u64 = 1024;

/// A budget of request memory shared by all connections.
#[derive(Debug, Clone)]
pub struct RequestBudget {
    /// `None` = unbounded (`queued.max.request.bytes = -1`).
    permits: Option<Arc<Semaphore>>,
    capacity_units: u32,
}

/// A share of the budget; returned to it when dropped.
#[derive(Debug)]
pub struct BudgetShare {
    _permit: Option<OwnedSemaphorePermit>,
}

impl RequestBudget {
    /// A budget of `bytes` (`None` = unbounded).
    pub fn new(bytes: Option<u64>) -> Self {
        let capacity_units = bytes.map_or(0, |b| {
            u32::try_from(b.div_ceil(UNIT)).unwrap_or(u32::MAX).max(1)
        });
        RequestBudget {
            permits: bytes.map(|_| Arc::new(Semaphore::new(capacity_units as usize))),
            capacity_units,
        }
    }

    /// Estimated memory a request of `size` wire bytes for `api` needs.
    pub fn cost(api: ApiKey, size: usize) -> u64 {
        let size = size as u64;
        if api == ApiKey::Produce {
            size
        } else {
            size.saturating_mul(DECODE_EXPANSION)
        }
    }

    /// Waits until `bytes` of budget are free and takes them (at most the whole budget).
    pub async fn acquire(&self, bytes: u64) -> BudgetShare {
        let Some(permits) = &self.permits else {
            return BudgetShare { _permit: None };
        };
        let units = u32::try_from(bytes.div_ceil(UNIT))
            .unwrap_or(u32::MAX)
            .clamp(1, self.capacity_units);
        // The semaphore is never closed, so this only fails if that changes; proceeding
        // unaccounted is then better than refusing service.
        let permit = permits.clone().acquire_many_owned(units).await.ok();
        BudgetShare { _permit: permit }
    }

    /// Budget currently free, in bytes (`None` = unbounded). For tests and metrics.
    pub fn available(&self) -> Option<u64> {
        self.permits
            .as_ref()
            .map(|p| p.available_permits() as u64 * UNIT)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn produce_is_charged_its_size_others_the_expansion() {
        assert_eq!(RequestBudget::cost(ApiKey::Produce, 1000), 1000);
        assert_eq!(RequestBudget::cost(ApiKey::Metadata, 1000), 40_000);
    }

    #[tokio::test]
    async fn shares_block_until_returned_and_are_capped_at_capacity() {
        let budget = RequestBudget::new(Some(10 * UNIT));
        let a = budget.acquire(6 * UNIT).await;
        assert_eq!(budget.available(), Some(4 * UNIT));
        // Does not fit until `a` is returned.
        let pending = tokio::time::timeout(Duration::from_millis(50), budget.acquire(5 * UNIT));
        assert!(pending.await.is_err());
        drop(a);
        let huge = budget.acquire(u64::MAX).await;
        assert_eq!(budget.available(), Some(0));
        drop(huge);
        assert_eq!(budget.available(), Some(10 * UNIT));
    }

    #[tokio::test]
    async fn unbounded_budget_never_waits() {
        let budget = RequestBudget::new(None);
        let _a = budget.acquire(u64::MAX).await;
        let _b = budget.acquire(u64::MAX).await;
        assert_eq!(budget.available(), None);
    }
}
