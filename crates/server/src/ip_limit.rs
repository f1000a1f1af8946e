//! `max.connections.per.ip`: how many connections each client address holds.
//!
//! The accept loop asks for an [`IpSlot`] for every connection it accepts; over the
//! address's limit it gets none and closes the connection at once, as Kafka does. A
//! slot is given back when the connection ends (its `Drop`), so a counter can never be
//! leaked by an early return. Addresses are counted in canonical form: an IPv4 client
//! of a dual-stack listener (`::ffff:a.b.c.d`) counts as `a.b.c.d`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

/// Open connections per client address.
#[derive(Debug, Default)]
pub struct PerIpConnections {
    open: Mutex<HashMap<IpAddr, u32>>,
}

/// One connection's place in its address's count.
#[derive(Debug)]
pub struct IpSlot {
    owner: Arc<PerIpConnections>,
    ip: IpAddr,
}

impl PerIpConnections {
    /// A slot for a new connection from `ip` if it holds fewer than `limit`; otherwise
    /// `Err` with how many it holds.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr, limit: u32) -> Result<IpSlot, u32> {
        let ip = ip.to_canonical();
        let mut open = self.lock();
        let count = open.entry(ip).or_insert(0);
        if *count >= limit {
            let held = *count;
            if held == 0 {
                open.remove(&ip);
            }
            return Err(held);
        }
        *count += 1;
        Ok(IpSlot {
            owner: self.clone(),
            ip,
        })
    }

    /// Connections `ip` holds now.
    #[cfg(test)]
    pub fn count(&self, ip: IpAddr) -> u32 {
        self.lock().get(&ip.to_canonical()).copied().unwrap_or(0)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, u32>> {
        // The map is consistent after every statement; a panic elsewhere while the
        // lock was held does not make it unusable.
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = self.owner.lock();
        if let Some(count) = open.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                // Addresses that left take no memory: an attacker cycling through
                // source addresses cannot grow the map beyond its open connections.
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_address_up_to_the_limit_and_releases_on_drop() {
        let conns = Arc::new(PerIpConnections::default());
        let a: IpAddr = "127.0.0.2".parse().expect("ip");
        let b: IpAddr = "127.0.0.3".parse().expect("ip");
        let first = conns.try_acquire(a, 2).expect("1 of 2");
        let second = conns.try_acquire(a, 2).expect("2 of 2");
        assert_eq!(conns.try_acquire(a, 2).err(), Some(2));
        // The same address seen through a dual-stack listener.
        let mapped: IpAddr = "::ffff:127.0.0.2".parse().expect("ip");
        assert_eq!(conns.try_acquire(mapped, 2).err(), Some(2));
        let other = conns
            .try_acquire(b, 2)
            .expect("another address has its own count");
        drop(first);
        assert_eq!(conns.count(a), 1);
        let third = conns.try_acquire(a, 2).expect("a slot came free");
        drop((second, third, other));
        assert_eq!(conns.count(a), 0);
        assert!(conns.lock().is_empty(), "no entries left behind");
        assert_eq!(conns.try_acquire(a, 0).err(), Some(0));
        assert!(conns.lock().is_empty(), "a refusal leaves nothing behind");
    }
}
