//! Kafka framing: every request and response is a 4-byte big-endian size followed by
//! that many bytes.
//!
//! The size comes from the peer, so it is checked before anything is allocated for the
//! frame, and the body buffer grows only as bytes actually arrive (at most
//! [`READ_CHUNK`] ahead of them): a peer that sends 4 bytes claiming 100 MiB and then
//! stalls costs 64 KiB, not 100 MiB.
//!
//! Reading is split in two steps, [`FrameReader::read_head`] and
//! [`FrameReader::read_body`], because the first 4 body bytes of a Kafka request are its
//! API key and version, and the connection decides from them (and the size) whether and
//! when to read the rest: unknown APIs and oversized non-Produce requests are refused,
//! and the memory budget is reserved, before the body is buffered.

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::error::{Result, ServerError};

/// Length of the size prefix.
pub const SIZE_LEN: usize = 4;
/// Body bytes returned by [`FrameReader::read_head`]: a request's API key and version.
pub const HEAD_LEN: usize = 4;
/// The most the body buffer grows ahead of the bytes received.
pub const READ_CHUNK: usize = 64 * 1024;

/// The size of a frame and its first [`HEAD_LEN`] body bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHead {
    /// Body length from the size prefix, already checked against the limits.
    pub size: usize,
    /// The first body bytes.
    pub head: [u8; HEAD_LEN],
}

impl FrameHead {
    /// The request API key (first two body bytes).
    pub fn api_key(&self) -> i16 {
        i16::from_be_bytes([self.head[0], self.head[1]])
    }

    /// The request API version (next two body bytes).
    pub fn api_version(&self) -> i16 {
        i16::from_be_bytes([self.head[2], self.head[3]])
    }
}

/// Reads frames from a byte stream.
#[derive(Debug)]
pub struct FrameReader<R> {
    inner: R,
    max_size: usize,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// `max_size` is `socket.request.max.bytes`: the largest body accepted.
    pub fn new(inner: R, max_size: usize) -> Self {
        FrameReader { inner, max_size }
    }

    /// Reads the size prefix and the first body bytes. `Ok(None)` means the peer closed
    /// the stream cleanly between frames.
    ///
    /// A size below [`HEAD_LEN`] or above the maximum is an error, returned before any
    /// buffer is allocated for the frame.
    pub async fn read_head(&mut self) -> Result<Option<FrameHead>> {
        let mut prefix = [0u8; SIZE_LEN];
        if !self.read_exact_or_eof(&mut prefix, 0).await? {
            return Ok(None);
        }
        let declared = i32::from_be_bytes(prefix);
        let size = usize::try_from(declared)
            .ok()
            .filter(|&s| (HEAD_LEN..=self.max_size).contains(&s))
            .ok_or(ServerError::FrameSize {
                size: i64::from(declared),
                min: HEAD_LEN,
                max: self.max_size,
            })?;
        let mut head = [0u8; HEAD_LEN];
        if !self.read_exact_or_eof(&mut head, size).await? {
            return Err(ServerError::TruncatedFrame {
                received: 0,
                expected: size,
            });
        }
        Ok(Some(FrameHead { size, head }))
    }

    /// Reads the rest of the frame announced by `head` and returns the whole body
    /// (head bytes included).
    pub async fn read_body(&mut self, head: &FrameHead) -> Result<Bytes> {
        // A Vec rather than BytesMut: `reserve_exact` keeps capacity where
        // `next_capacity` puts it, where BytesMut's amortised growth could overshoot.
        let mut body = Vec::with_capacity(next_capacity(HEAD_LEN, head.size));
        body.extend_from_slice(&head.head);
        while body.len() < head.size {
            let remaining = head.size - body.len();
            let wanted = next_capacity(body.len(), head.size);
            if wanted > body.capacity() {
                body.reserve_exact(wanted - body.len());
            }
            // `take` keeps the read inside this frame: the next frame's bytes stay in
            // the socket for the next call.
            let read = (&mut self.inner)
                .take(remaining as u64)
                .read_buf(&mut body)
                .await?;
            if read == 0 {
                return Err(ServerError::TruncatedFrame {
                    received: body.len(),
                    expected: head.size,
                });
            }
        }
        Ok(Bytes::from(body))
    }

    /// Fills `buf` entirely. Returns `Ok(false)` on EOF before the first byte; EOF after
    /// some bytes is a truncated frame of `expected` body bytes.
    async fn read_exact_or_eof(&mut self, buf: &mut [u8], expected: usize) -> Result<bool> {
        let mut filled = 0;
        while filled < buf.len() {
            let n = self.inner.read(&mut buf[filled..]).await?;
            if n == 0 {
                if filled == 0 {
                    return Ok(false);
                }
                return Err(ServerError::TruncatedFrame {
                    received: filled,
                    expected,
                });
            }
            filled += n;
        }
        Ok(true)
    }
}

/// The buffer capacity to hold while `received` of `size` bytes have arrived: enough
/// for the next [`READ_CHUNK`], never more than the frame. Growth is by doubling once
/// the frame is large (so a 100 MiB body is not copied 1600 times), but always bounded
/// by twice what the peer has actually sent plus one chunk.
pub fn next_capacity(received: usize, size: usize) -> usize {
    let target = received.saturating_mul(2).max(received + READ_CHUNK);
    target.min(size)
}

/// Builds one outgoing frame: reserves the size prefix, lets `encode` append the
/// payload, then fills the prefix in. Fails if the payload does not fit an i32 size.
pub fn encode_frame<E>(
    encode: impl FnOnce(&mut BytesMut) -> std::result::Result<(), E>,
) -> std::result::Result<Bytes, FrameEncodeError<E>> {
    encode_frame_sized(256, encode)
}

/// [`encode_frame`] into a buffer of `payload_hint` bytes to start with: a large
/// response whose size is known up front is then written without the copies that
/// growing the buffer by doubling costs.
pub fn encode_frame_sized<E>(
    payload_hint: usize,
    encode: impl FnOnce(&mut BytesMut) -> std::result::Result<(), E>,
) -> std::result::Result<Bytes, FrameEncodeError<E>> {
    let mut buf = BytesMut::with_capacity(SIZE_LEN + payload_hint);
    buf.put_i32(0);
    encode(&mut buf).map_err(FrameEncodeError::Encode)?;
    let payload = buf.len() - SIZE_LEN;
    let size = i32::try_from(payload).map_err(|_| FrameEncodeError::TooLarge(payload))?;
    buf[..SIZE_LEN].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}

/// Why [`encode_frame`] failed.
#[derive(Debug)]
pub enum FrameEncodeError<E> {
    /// The payload encoder failed.
    Encode(E),
    /// The payload is larger than a frame can say.
    TooLarge(usize),
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use tokio::io::ReadBuf;

    use super::*;

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut v = (body.len() as i32).to_be_bytes().to_vec();
        v.extend_from_slice(body);
        v
    }

    async fn read_one<R: AsyncRead + Unpin>(r: &mut FrameReader<R>) -> Result<Option<Bytes>> {
        match r.read_head().await? {
            None => Ok(None),
            Some(head) => r.read_body(&head).await.map(Some),
        }
    }

    #[tokio::test]
    async fn reads_back_to_back_frames_without_over_reading() {
        let mut wire = frame(&[0, 18, 0, 3, 9, 9]);
        wire.extend(frame(&[0, 3, 0, 1]));
        let mut r = FrameReader::new(wire.as_slice(), 1024);
        let head = r.read_head().await.expect("ok").expect("frame");
        assert_eq!((head.size, head.api_key(), head.api_version()), (6, 18, 3));
        assert_eq!(
            &r.read_body(&head).await.expect("body")[..],
            &[0, 18, 0, 3, 9, 9]
        );
        let second = read_one(&mut r).await.expect("ok").expect("frame");
        assert_eq!(&second[..], &[0, 3, 0, 1]);
        assert!(read_one(&mut r).await.expect("clean eof").is_none());
    }

    #[tokio::test]
    async fn rejects_negative_too_small_and_too_large_sizes() {
        for size in [-1i32, i32::MIN, 0, 3, 1025, i32::MAX] {
            let mut wire = size.to_be_bytes().to_vec();
            wire.extend_from_slice(&[0; 8]);
            let mut r = FrameReader::new(wire.as_slice(), 1024);
            match r.read_head().await {
                Err(ServerError::FrameSize { size: s, .. }) => assert_eq!(s, i64::from(size)),
                other => panic!("size {size}: {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn truncated_frames_are_errors() {
        for wire in [vec![0u8, 0], frame(&[0, 1, 0, 0, 5])[..6].to_vec(), {
            let mut w = frame(&[0, 1, 0, 0, 5, 5]);
            w.pop();
            w
        }] {
            let mut r = FrameReader::new(wire.as_slice(), 1024);
            let res = read_one(&mut r).await;
            assert!(
                matches!(res, Err(ServerError::TruncatedFrame { .. })),
                "{wire:?}: {res:?}"
            );
        }
    }

    #[test]
    fn capacity_grows_with_received_bytes_not_declared_size() {
        let declared = 100 << 20;
        assert_eq!(next_capacity(4, declared), 4 + READ_CHUNK);
        assert_eq!(next_capacity(4, 10), 10);
        assert_eq!(next_capacity(1 << 20, declared), 2 << 20);
        assert_eq!(next_capacity(declared - 1, declared), declared);
    }

    /// Hands out one byte per read and records the largest buffer it was offered.
    struct Trickle {
        data: Vec<u8>,
        pos: usize,
        max_offered: usize,
    }

    impl AsyncRead for Trickle {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            self.max_offered = self.max_offered.max(buf.remaining());
            if self.pos < self.data.len() && buf.remaining() > 0 {
                buf.put_slice(&[self.data[self.pos]]);
                self.pos += 1;
            }
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn slow_huge_frame_does_not_allocate_declared_size() {
        // Declares 100 MiB, sends 1000 bytes, then EOF.
        let mut data = (100i32 << 20).to_be_bytes().to_vec();
        data.extend(std::iter::repeat_n(7u8, 1000));
        let mut trickle = Trickle {
            data,
            pos: 0,
            max_offered: 0,
        };
        let mut r = FrameReader::new(&mut trickle, 100 << 20);
        let res = read_one(&mut r).await;
        assert!(matches!(
            res,
            Err(ServerError::TruncatedFrame { received: 1000, .. })
        ));
        // The buffer offered to the socket never exceeded one chunk ahead.
        assert!(trickle.max_offered <= READ_CHUNK, "{}", trickle.max_offered);
    }

    #[test]
    fn encode_frame_fills_the_size_prefix() {
        let f = encode_frame::<()>(|b| {
            b.put_slice(b"hello");
            Ok(())
        })
        .expect("encodes");
        assert_eq!(&f[..], &[0, 0, 0, 5, b'h', b'e', b'l', b'l', b'o']);
        assert!(matches!(
            encode_frame(|_| Err::<(), _>("boom")),
            Err(FrameEncodeError::Encode("boom"))
        ));
    }
}
