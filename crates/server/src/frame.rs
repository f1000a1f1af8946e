//! Kafka framing: every request and response is a 4-byte big-endian size followed by
//! that many bytes.
//!
//! The size comes from the peer, so it is checked before anything is allocated for the
//! frame. A frame of up to [`WHOLE_FRAME_MAX`] (the size clients' produce requests are
//! capped at by default) gets its whole buffer at once: growing a 1 MiB buffer from
//! 64 KiB by doubling copied every produced byte once more (~0.06 broker CPU-s/GB).
//! Larger frames grow only as bytes actually arrive (at most [`READ_CHUNK`] ahead of
//! them): a peer that sends 4 bytes claiming 100 MiB and then stalls costs 64 KiB, not
//! 100 MiB. Either way the bytes were first reserved from the request memory budget,
//! and an allocation is not resident until bytes arrive in it.
//!
//! Reading is split in two steps, [`FrameReader::read_head`] and
//! [`FrameReader::read_body`], because the first 4 body bytes of a Kafka request are its
//! API key and version, and the connection decides from them (and the size) whether and
//! when to read the rest: unknown APIs and oversized non-Produce requests are refused,
//! and the memory budget is reserved, before the body is buffered.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::{Instant, timeout_at};

use crate::error::{Result, ServerError};

/// Length of the size prefix.
pub const SIZE_LEN: usize = 4;
/// Body bytes returned by [`FrameReader::read_head`]: a request's API key and version.
pub const HEAD_LEN: usize = 4;
/// The most the body buffer grows ahead of the bytes received, for frames larger than
/// [`WHOLE_FRAME_MAX`].
pub const READ_CHUNK: usize = 64 * 1024;
/// Frames up to this size are read into one buffer of their full size: 2 MiB covers
/// librdkafka's `message.max.bytes` (1,000,000) and the Java client's
/// `max.request.size` (1 MiB) with room for the request header.
pub const WHOLE_FRAME_MAX: usize = 2 << 20;

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
    /// How long a frame may take to arrive in full once its first byte has
    /// (`socket.request.read.timeout.ms`).
    read_timeout: Duration,
    /// The size prefix and head of the frame being read. Kept here rather than on the
    /// stack of a read so that [`FrameReader::wait_for_frame`] can be cancelled (by an
    /// idle timeout) without losing bytes.
    start: [u8; SIZE_LEN + HEAD_LEN],
    filled: usize,
    /// When the current frame must be complete; set by its first byte.
    deadline: Option<Instant>,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// `max_size` is `socket.request.max.bytes`: the largest body accepted;
    /// `read_timeout` is how long a frame may take once its first byte has arrived.
    pub fn new(inner: R, max_size: usize, read_timeout: Duration) -> Self {
        FrameReader {
            inner,
            max_size,
            read_timeout,
            start: [0; SIZE_LEN + HEAD_LEN],
            filled: 0,
            deadline: None,
        }
    }

    /// Waits until the first byte of the next frame has arrived: `Ok(true)`, or
    /// `Ok(false)` if the peer closed the stream cleanly between frames.
    ///
    /// Cancel safe: it is one `read` whose bytes are stored in `self`, so the caller can
    /// race it against an idle timer. The frame's read deadline starts here.
    pub async fn wait_for_frame(&mut self) -> Result<bool> {
        if self.deadline.is_some() {
            return Ok(true);
        }
        let n = self.inner.read(&mut self.start[self.filled..]).await?;
        if n == 0 {
            return Ok(false);
        }
        self.filled += n;
        self.deadline = Some(Instant::now() + self.read_timeout);
        Ok(true)
    }

    /// Reads the size prefix and the first body bytes. `Ok(None)` means the peer closed
    /// the stream cleanly between frames.
    ///
    /// A size below [`HEAD_LEN`] or above the maximum is an error, returned before any
    /// buffer is allocated for the frame.
    pub async fn read_head(&mut self) -> Result<Option<FrameHead>> {
        if !self.wait_for_frame().await? {
            return Ok(None);
        }
        self.fill_start(SIZE_LEN, None).await?;
        let declared =
            i32::from_be_bytes([self.start[0], self.start[1], self.start[2], self.start[3]]);
        let size = usize::try_from(declared)
            .ok()
            .filter(|&s| (HEAD_LEN..=self.max_size).contains(&s))
            .ok_or(ServerError::FrameSize {
                size: i64::from(declared),
                min: HEAD_LEN,
                max: self.max_size,
            })?;
        self.fill_start(SIZE_LEN + HEAD_LEN, Some(size)).await?;
        let mut head = [0u8; HEAD_LEN];
        head.copy_from_slice(&self.start[SIZE_LEN..]);
        // The next frame starts afresh; the deadline stays for this frame's body.
        self.filled = 0;
        Ok(Some(FrameHead { size, head }))
    }

    /// Reads the rest of the frame announced by `head` and returns the whole body
    /// (head bytes included).
    pub async fn read_body(&mut self, head: &FrameHead) -> Result<Bytes> {
        // A Vec rather than BytesMut: `reserve_exact` keeps capacity where
        // `next_capacity` puts it, where BytesMut's amortised growth could overshoot.
        let mut body = Vec::with_capacity(initial_capacity(head.size));
        body.extend_from_slice(&head.head);
        while body.len() < head.size {
            let remaining = head.size - body.len();
            let wanted = next_capacity(body.len(), head.size);
            if wanted > body.capacity() {
                body.reserve_exact(wanted - body.len());
            }
            // `take` keeps the read inside this frame: the next frame's bytes stay in
            // the socket for the next call.
            let mut within_frame = (&mut self.inner).take(remaining as u64);
            let read = within_frame.read_buf(&mut body);
            let read = match self.deadline {
                Some(deadline) => timeout_at(deadline, read)
                    .await
                    .map_err(|_| self.timed_out(SIZE_LEN + body.len(), Some(head.size)))??,
                None => read.await?,
            };
            if read == 0 {
                return Err(ServerError::TruncatedFrame {
                    received: body.len(),
                    expected: head.size,
                });
            }
        }
        self.deadline = None;
        Ok(Bytes::from(body))
    }

    /// Fills `self.start` up to `len` bytes, within the frame's deadline. EOF is a
    /// truncated frame (of `size` body bytes, when the prefix has been read).
    async fn fill_start(&mut self, len: usize, size: Option<usize>) -> Result<()> {
        while self.filled < len {
            let read = self.inner.read(&mut self.start[self.filled..len]);
            let n = match self.deadline {
                Some(deadline) => timeout_at(deadline, read)
                    .await
                    .map_err(|_| self.timed_out(self.filled, size))??,
                None => read.await?,
            };
            if n == 0 {
                return Err(ServerError::TruncatedFrame {
                    received: self.filled.saturating_sub(SIZE_LEN),
                    expected: size.unwrap_or(0),
                });
            }
            self.filled += n;
        }
        Ok(())
    }

    fn timed_out(&self, received: usize, size: Option<usize>) -> ServerError {
        ServerError::RequestTimeout {
            received,
            frame: size.map(|s| s + SIZE_LEN),
            timeout_ms: u64::try_from(self.read_timeout.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

/// The body buffer's first capacity: the whole frame up to [`WHOLE_FRAME_MAX`], else
/// one chunk.
pub fn initial_capacity(size: usize) -> usize {
    if size <= WHOLE_FRAME_MAX {
        size
    } else {
        next_capacity(HEAD_LEN, size)
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

    const LONG: Duration = Duration::from_secs(60);

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
        let mut r = FrameReader::new(wire.as_slice(), 1024, LONG);
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
            let mut r = FrameReader::new(wire.as_slice(), 1024, LONG);
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
            let mut r = FrameReader::new(wire.as_slice(), 1024, LONG);
            let res = read_one(&mut r).await;
            assert!(
                matches!(res, Err(ServerError::TruncatedFrame { .. })),
                "{wire:?}: {res:?}"
            );
        }
    }

    #[test]
    fn capacity_grows_with_received_bytes_not_declared_size() {
        // A produce request of the clients' default maximum is read into one buffer.
        assert_eq!(initial_capacity(1_000_100), 1_000_100);
        assert_eq!(initial_capacity(WHOLE_FRAME_MAX), WHOLE_FRAME_MAX);
        assert_eq!(initial_capacity(WHOLE_FRAME_MAX + 1), HEAD_LEN + READ_CHUNK);
        let declared = 100 << 20;
        assert_eq!(initial_capacity(declared), HEAD_LEN + READ_CHUNK);
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
        let mut r = FrameReader::new(&mut trickle, 100 << 20, LONG);
        let res = read_one(&mut r).await;
        assert!(matches!(
            res,
            Err(ServerError::TruncatedFrame { received: 1000, .. })
        ));
        // The buffer offered to the socket never exceeded one chunk ahead.
        assert!(trickle.max_offered <= READ_CHUNK, "{}", trickle.max_offered);
    }

    /// A peer that sends part of a frame and then holds the connection open gets a
    /// timeout once `read_timeout` has passed since the frame's first byte, both
    /// inside the size prefix and inside the body.
    #[tokio::test(start_paused = true)]
    async fn a_stalled_frame_times_out_from_its_first_byte() {
        use tokio::io::AsyncWriteExt;
        for (sent, expected_frame) in [
            (&[0u8, 0][..], None),
            (&[0, 0, 0, 9, 0, 18, 0, 3, 1][..], Some(13)),
        ] {
            let (mut peer, server) = tokio::io::duplex(1024);
            peer.write_all(sent).await.expect("write");
            let mut r = FrameReader::new(server, 1024, Duration::from_secs(30));
            let start = Instant::now();
            let res = match r.read_head().await {
                Ok(Some(head)) => r.read_body(&head).await.map(|_| ()),
                other => other.map(|_| ()),
            };
            match res {
                Err(ServerError::RequestTimeout {
                    received,
                    frame,
                    timeout_ms,
                }) => {
                    assert_eq!(
                        (received, frame, timeout_ms),
                        (sent.len(), expected_frame, 30_000)
                    );
                }
                other => panic!("{sent:?}: {other:?}"),
            }
            assert_eq!(start.elapsed(), Duration::from_secs(30));
            drop(peer);
        }
    }

    /// Waiting for a frame can be abandoned (the connection's idle timer) and resumed
    /// without losing what had arrived.
    #[tokio::test(start_paused = true)]
    async fn waiting_for_a_frame_is_cancel_safe() {
        use tokio::io::AsyncWriteExt;
        let (mut peer, server) = tokio::io::duplex(1024);
        let mut r = FrameReader::new(server, 1024, Duration::from_secs(30));
        tokio::select! {
            _ = r.wait_for_frame() => panic!("nothing was sent"),
            () = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
        let wire = frame(&[0, 18, 0, 3, 7]);
        peer.write_all(&wire[..2]).await.expect("write");
        assert!(r.wait_for_frame().await.expect("ok"), "a frame started");
        // Waiting again returns at once: the frame is under way.
        assert!(r.wait_for_frame().await.expect("ok"));
        peer.write_all(&wire[2..]).await.expect("write");
        let body = read_one(&mut r).await.expect("ok").expect("frame");
        assert_eq!(&body[..], &[0, 18, 0, 3, 7]);
        drop(peer);
        assert!(!r.wait_for_frame().await.expect("clean eof"));
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
