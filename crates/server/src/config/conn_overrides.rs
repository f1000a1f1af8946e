//! `max.connections.per.ip.overrides`: per-address exceptions to
//! `max.connections.per.ip`, written as Kafka writes them: `ADDR:COUNT` pairs separated
//! by commas, e.g. `127.0.0.1:200,10.0.0.7:0`.
//!
//! Kafka splits each pair at its last `:`, so an IPv6 address needs no brackets
//! (`::1:50`); `[::1]:50` is accepted too. Kafka also allows host names, which it
//! resolves when a connection arrives; Strom takes IP addresses only, so that the
//! accept loop never waits on DNS.

use std::fmt;
use std::net::IpAddr;

/// Parsed overrides, in the order given (a later entry for the same address wins).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionOverrides(Vec<(IpAddr, i32)>);

impl ConnectionOverrides {
    /// Parses the property value; the error is a message without the property name.
    pub fn parse(text: &str) -> Result<ConnectionOverrides, String> {
        let mut entries = Vec::new();
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (addr, count) = pair
                .rsplit_once(':')
                .ok_or_else(|| format!("'{pair}' is not ADDRESS:COUNT"))?;
            let addr = addr.trim();
            let addr = addr
                .strip_prefix('[')
                .and_then(|a| a.strip_suffix(']'))
                .unwrap_or(addr);
            let ip: IpAddr = addr.parse().map_err(|_| {
                format!("'{addr}' is not an IP address (host names are not supported)")
            })?;
            let count: i32 = count
                .trim()
                .parse()
                .ok()
                .filter(|c: &i32| *c >= 0)
                .ok_or_else(|| format!("'{}' in '{pair}' is not a count >= 0", count.trim()))?;
            entries.retain(|(known, _)| *known != ip);
            entries.push((ip, count));
        }
        Ok(ConnectionOverrides(entries))
    }

    /// The override for `ip`, if there is one.
    pub fn get(&self, ip: IpAddr) -> Option<i32> {
        // An IPv4 client of a dual-stack listener shows up as ::ffff:a.b.c.d.
        let ip = ip.to_canonical();
        self.0
            .iter()
            .find(|(known, _)| known.to_canonical() == ip)
            .map(|&(_, count)| count)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for ConnectionOverrides {
    /// The property's value in Kafka's syntax (what DescribeConfigs shows).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (ip, count)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{ip}:{count}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kafka_syntax_and_prints_it_back() {
        let o = ConnectionOverrides::parse(" 127.0.0.1:200, ::1:5,[fe80::2]:0,127.0.0.1:7 ")
            .expect("parses");
        assert_eq!(o.get("127.0.0.1".parse().expect("ip")), Some(7));
        assert_eq!(o.get("::1".parse().expect("ip")), Some(5));
        assert_eq!(o.get("fe80::2".parse().expect("ip")), Some(0));
        assert_eq!(o.get("::ffff:127.0.0.1".parse().expect("ip")), Some(7));
        assert_eq!(o.get("10.0.0.1".parse().expect("ip")), None);
        assert_eq!(o.to_string(), "::1:5,fe80::2:0,127.0.0.1:7");
        assert_eq!(ConnectionOverrides::parse(&o.to_string()), Ok(o));
        assert!(ConnectionOverrides::parse("").expect("empty").is_empty());
    }

    #[test]
    fn rejects_what_it_cannot_use() {
        for bad in [
            "127.0.0.1",
            "broker1:5",
            "127.0.0.1:-1",
            "127.0.0.1:x",
            ":5",
        ] {
            assert!(ConnectionOverrides::parse(bad).is_err(), "{bad}");
        }
    }
}
