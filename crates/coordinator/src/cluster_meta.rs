//! `meta.properties` in the data directory: which cluster and node the data belongs to,
//! in Kafka's properties format:
//! ```text
//! version=1
//! cluster.id=<22 characters: a random UUID in URL-safe base64, as Kafka makes them>
//! node.id=<n>
//! ```
//! Starting with a different node id than the one recorded is refused, as in Kafka: the
//! data would otherwise be served under the wrong identity.

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::error::{CoordinatorError, IoContext, Result};

pub const META_FILE: &str = "meta.properties";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterMeta {
    pub cluster_id: String,
    pub node_id: i32,
}

/// URL-safe base64 without padding (16 bytes → 22 characters): how Kafka writes a
/// UUID (cluster ids, topic ids) for people.
pub fn base64_url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

impl ClusterMeta {
    pub fn load_or_create(data_dir: &Path, node_id: i32) -> Result<Self> {
        let path = data_dir.join(META_FILE);
        let corrupt = |detail: String| CoordinatorError::Corrupt {
            what: "meta.properties",
            path: path.clone(),
            detail,
        };
        match fs::read_to_string(&path) {
            Ok(text) => {
                let get = |key: &str| {
                    text.lines()
                        .filter_map(|l| l.split_once('='))
                        .find(|(k, _)| k.trim() == key)
                        .map(|(_, v)| v.trim().to_string())
                };
                let cluster_id =
                    get("cluster.id").ok_or_else(|| corrupt("no cluster.id".into()))?;
                let stored: i32 = get("node.id")
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| corrupt("no valid node.id".into()))?;
                if stored != node_id {
                    return Err(corrupt(format!(
                        "the data directory belongs to node {stored}, not {node_id}"
                    )));
                }
                Ok(ClusterMeta {
                    cluster_id,
                    node_id,
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let meta = ClusterMeta {
                    cluster_id: base64_url(uuid::Uuid::new_v4().as_bytes()),
                    node_id,
                };
                let tmp = path.with_extension("tmp");
                let mut f = fs::File::create(&tmp).ctx("creating", &tmp)?;
                write!(
                    f,
                    "version=1\ncluster.id={}\nnode.id={}\n",
                    meta.cluster_id, node_id
                )
                .ctx("writing", &tmp)?;
                f.sync_all().ctx("fsync of", &tmp)?;
                fs::rename(&tmp, &path).ctx("renaming to", &path)?;
                Ok(meta)
            }
            Err(e) => Err(e).ctx("reading", &path),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_known_values() {
        assert_eq!(base64_url(b"Man"), "TWFu");
        assert_eq!(base64_url(b"Ma"), "TWE");
        assert_eq!(base64_url(&[0xfb, 0xff]), "-_8");
        assert_eq!(base64_url(&[0u8; 16]).len(), 22);
    }

    #[test]
    fn identity_persists_and_node_id_is_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = ClusterMeta::load_or_create(dir.path(), 1).expect("create");
        let b = ClusterMeta::load_or_create(dir.path(), 1).expect("load");
        assert_eq!(a, b);
        assert_eq!(a.cluster_id.len(), 22);
        assert!(ClusterMeta::load_or_create(dir.path(), 2).is_err());
    }
}
