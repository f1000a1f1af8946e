//! A response on its way to the socket.
//!
//! Most responses are one encoded frame. A Fetch response is its encoded bytes with the
//! record sets left out and sent straight from the segment files with `sendfile`
//! (Kafka's zero-copy transfer): batch bytes go from the page cache to the socket without
//! being read into, zeroed in or copied through the broker's memory.

use std::io;

use bytes::{Bytes, BytesMut};
use strom_storage::FileRecords;
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;

/// Bytes handed to one `sendfile` call at most: large enough to fill a socket buffer,
/// small enough that one response does not monopolise a worker between wakeups.
const SENDFILE_CHUNK: usize = 4 << 20;

/// One piece of a response frame.
#[derive(Debug)]
pub enum FramePart {
    Bytes(Bytes),
    File(FileRecords),
}

/// A response frame, size prefix included.
#[derive(Debug)]
pub enum ResponseFrame {
    /// Encoded whole; empty means "send nothing" (the answer to acks=0).
    Encoded(Bytes),
    /// Encoded bytes and file ranges, in order.
    Parts(Vec<FramePart>),
}

impl ResponseFrame {
    /// Nothing to send.
    pub fn none() -> Self {
        ResponseFrame::Encoded(Bytes::new())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes on the wire.
    pub fn len(&self) -> usize {
        match self {
            ResponseFrame::Encoded(bytes) => bytes.len(),
            ResponseFrame::Parts(parts) => parts
                .iter()
                .map(|p| match p {
                    FramePart::Bytes(b) => b.len(),
                    FramePart::File(f) => f.len(),
                })
                .sum(),
        }
    }

    /// Writes the frame. A file found shorter than its range (cut under the response)
    /// is an error: the frame's size is already promised, so the caller must close.
    pub async fn write_to(&self, out: &mut OwnedWriteHalf) -> io::Result<()> {
        match self {
            ResponseFrame::Encoded(bytes) => out.write_all(bytes).await,
            ResponseFrame::Parts(parts) => {
                // Corked, the kernel sends full segments across the parts instead of a
                // small one for each piece of encoded bytes between the record sets;
                // uncorking sends the rest. Fewer, fuller packets mean fewer wakeups
                // on both ends.
                let stream: &TcpStream = out.as_ref();
                cork(stream, true);
                let mut written = Ok(());
                for part in parts {
                    written = match part {
                        FramePart::Bytes(bytes) => out.write_all(bytes).await,
                        FramePart::File(records) => send_file(out.as_ref(), records).await,
                    };
                    if written.is_err() {
                        break;
                    }
                }
                cork(out.as_ref(), false);
                written
            }
        }
    }

    /// The frame in memory, file ranges read in: what a client receives. For tests and
    /// benchmarks; the broker never calls it.
    pub fn to_bytes(&self) -> io::Result<Bytes> {
        match self {
            ResponseFrame::Encoded(bytes) => Ok(bytes.clone()),
            ResponseFrame::Parts(parts) => {
                let mut out = BytesMut::with_capacity(self.len());
                for part in parts {
                    match part {
                        FramePart::Bytes(bytes) => out.extend_from_slice(bytes),
                        FramePart::File(records) => out.extend_from_slice(&records.read()?),
                    }
                }
                Ok(out.freeze())
            }
        }
    }
}

impl From<Bytes> for ResponseFrame {
    fn from(bytes: Bytes) -> Self {
        ResponseFrame::Encoded(bytes)
    }
}

/// Sets TCP_CORK. Failing only costs packet efficiency (the data is sent either way),
/// so an error is logged, not returned.
fn cork(stream: &TcpStream, on: bool) {
    if let Err(e) = rustix::net::sockopt::set_tcp_cork(stream, on) {
        tracing::debug!(error = %e, on, "TCP_CORK not set");
    }
}

/// `sendfile` from the segment to the non-blocking socket, waiting for room as a write
/// would.
async fn send_file(stream: &TcpStream, records: &FileRecords) -> io::Result<()> {
    let mut offset = records.position();
    let end = offset + records.len() as u64;
    while offset < end {
        stream.writable().await?;
        let count = usize::try_from(end - offset)
            .unwrap_or(usize::MAX)
            .min(SENDFILE_CHUNK);
        let sent = stream.try_io(Interest::WRITABLE, || {
            rustix::fs::sendfile(stream, records.file(), Some(&mut offset), count)
                .map_err(io::Error::from)
        });
        match sent {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "segment file ended inside the fetched records",
                ));
            }
            Ok(_) => {}
            // Readiness was stale; wait again.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
