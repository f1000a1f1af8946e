//! `HOST:PORT` addresses as written in flags and config (`--listen`, `--advertise`).
//!
//! Kept as host name + port rather than a resolved `SocketAddr`: an advertised address
//! is often a DNS name that only clients resolve, and the listener may bind a name too.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// A host (name, IPv4 or IPv6 literal without brackets) and a port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl HostPort {
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        HostPort {
            host: host.into(),
            port,
        }
    }

    /// Whether the host is the "any address" (`0.0.0.0` or `::`), fine to bind but
    /// meaningless to advertise.
    pub fn is_unspecified(&self) -> bool {
        self.host
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_unspecified())
    }
}

impl FromStr for HostPort {
    type Err = String;

    /// Parses `host:port`, `1.2.3.4:port` or `[v6::addr]:port`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("'{s}' is not HOST:PORT"))?;
        let host = match host.strip_prefix('[') {
            Some(inner) => inner
                .strip_suffix(']')
                .ok_or_else(|| format!("'{s}': unbalanced '[' in host"))?,
            // An unbracketed colon means an IPv6 literal whose port we cannot tell apart.
            None if host.contains(':') => {
                return Err(format!("'{s}': write IPv6 addresses as [ADDR]:PORT"));
            }
            None => host,
        };
        if host.is_empty() {
            return Err(format!("'{s}': empty host"));
        }
        let port = port
            .parse::<u16>()
            .map_err(|_| format!("'{s}': port must be a number in 0..=65535"))?;
        Ok(HostPort::new(host, port))
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_v4_and_bracketed_v6() {
        assert_eq!(
            "localhost:9092".parse::<HostPort>(),
            Ok(HostPort::new("localhost", 9092))
        );
        assert_eq!(
            "10.0.0.1:0".parse::<HostPort>(),
            Ok(HostPort::new("10.0.0.1", 0))
        );
        let v6: HostPort = "[::1]:19092".parse().expect("v6");
        assert_eq!(v6, HostPort::new("::1", 19092));
        assert_eq!(v6.to_string(), "[::1]:19092");
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "localhost",
            ":9092",
            "h:",
            "h:65536",
            "h:-1",
            "::1:9092",
            "[::1:9",
        ] {
            assert!(bad.parse::<HostPort>().is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn unspecified() {
        assert!(HostPort::new("0.0.0.0", 1).is_unspecified());
        assert!(HostPort::new("::", 1).is_unspecified());
        assert!(!HostPort::new("localhost", 1).is_unspecified());
    }
}
