//! Finds the process listening on a TCP port (`--broker-port`), so the
//! broker can be sampled without knowing its pid.
//!
//! /proc/net/tcp and tcp6 list sockets with their local port and inode;
//! /proc/PID/fd/* of the owner links to `socket:[INODE]`. Reading other
//! users' fd directories needs the same user or root, as for `ss -p`.

use std::fs;

use anyhow::{Result, bail};

/// Inodes of sockets in LISTEN state (st `0A`) on `port`, from the text of
/// /proc/net/tcp or /proc/net/tcp6.
pub fn listening_inodes(table: &str, port: u16) -> Vec<u64> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            let local = f.get(1)?;
            let state = f.get(3)?;
            let inode = f.get(9)?.parse().ok()?;
            let local_port = u16::from_str_radix(local.rsplit(':').next()?, 16).ok()?;
            (*state == "0A" && local_port == port).then_some(inode)
        })
        .collect()
}

/// The pid of the process that has a listening socket on `port`.
pub fn pid_listening_on(port: u16) -> Result<u32> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = fs::read_to_string(table) {
            inodes.extend(listening_inodes(&text, port));
        }
    }
    if inodes.is_empty() {
        bail!("nothing listens on TCP port {port}");
    }
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    for entry in fs::read_dir("/proc")?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        // Processes come and go and some are not ours to read: skip those.
        let Ok(fds) = fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(link) = fs::read_link(fd.path())
                && wanted.iter().any(|w| link.as_os_str() == w.as_str())
            {
                return Ok(pid);
            }
        }
    }
    bail!("a socket listens on port {port}, but no readable /proc/*/fd owns it (not root?)")
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:4A7A 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 98765 1 0000000000000000 100 0 0 10 0
   1: 0100007F:4A7A 0100007F:D2C4 01 00000000:00000000 00:00000000 00000000     0        0 98770 1 0000000000000000 20 4 30 10 -1
   2: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1111 1 0000000000000000 100 0 0 10 0
";

    #[test]
    fn finds_listening_socket_by_port() {
        // 0x4A7A = 19066; the established connection (st 01) is not a listener.
        assert_eq!(listening_inodes(TCP, 19066), vec![98765]);
        assert_eq!(listening_inodes(TCP, 22), vec![1111]);
        assert!(listening_inodes(TCP, 9092).is_empty());
    }

    #[test]
    fn finds_own_listener() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        assert_eq!(pid_listening_on(port).expect("found"), std::process::id());
    }
}
