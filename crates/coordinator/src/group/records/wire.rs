//! Kafka's primitive wire types, as the generated message classes write them, for the
//! hand-written `__consumer_offsets` codecs. All integers are big-endian.
//!
//! ```text
//! type             classic (non-flexible) version     flexible version
//! string           i16 length | UTF-8                 uvarint (length + 1) | UTF-8
//! nullable string  i16 length, -1 = null              uvarint (length + 1), 0 = null
//! bytes            i32 length | bytes                 uvarint (length + 1) | bytes
//! array            i32 count | elements               uvarint (count + 1) | elements
//! tagged fields    (none)                             uvarint count |
//!                                                       per field: uvarint tag | uvarint size | data
//! ```
//! Strings are at most 32767 bytes in either form (Kafka refuses longer ones). Record
//! fields inside a v2 batch use zig-zag varints (`varint`, `varlong`), with -1 for null.
//!
//! The [`Reader`] never allocates from a length it has not checked against the bytes
//! that remain, and every failure is an error naming what was being read.

use bytes::{BufMut, Bytes, BytesMut};

use super::{RecordError, Result};

/// Longest string Kafka writes or reads.
pub(crate) const MAX_STRING: usize = i16::MAX as usize;

fn invalid(what: &'static str, detail: impl Into<String>) -> RecordError {
    RecordError::Invalid {
        what,
        detail: detail.into(),
    }
}

/// A cursor over bytes read from disk.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, what }
    }

    pub(crate) fn err(&self, detail: impl Into<String>) -> RecordError {
        invalid(self.what, detail)
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.buf.len() {
            return Err(self.err(format!(
                "truncated: needs {n} more bytes, {} left",
                self.buf.len()
            )));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    pub(crate) fn i8(&mut self) -> Result<i8> {
        Ok(i8::from_be_bytes(self.array()?))
    }

    pub(crate) fn i16(&mut self) -> Result<i16> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    pub(crate) fn i32(&mut self) -> Result<i32> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    pub(crate) fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    /// An unsigned LEB128 varint of at most `max_bytes` bytes whose value fits in `bits`.
    fn uleb(&mut self, max_bytes: usize, bits: u32) -> Result<u64> {
        let mut value = 0u128;
        for i in 0..max_bytes {
            let b = self.take(1)?[0];
            value |= u128::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                if value >> bits != 0 {
                    return Err(self.err(format!("varint overflows {bits} bits")));
                }
                return Ok(value as u64);
            }
        }
        Err(self.err(format!("varint longer than {max_bytes} bytes")))
    }

    pub(crate) fn uvarint(&mut self) -> Result<u32> {
        Ok(self.uleb(5, 32)? as u32)
    }

    /// Zig-zag encoded i32 (record fields in a v2 batch).
    pub(crate) fn varint(&mut self) -> Result<i32> {
        let v = self.uleb(5, 32)? as u32;
        Ok(((v >> 1) as i32) ^ -((v & 1) as i32))
    }

    /// Zig-zag encoded i64.
    pub(crate) fn varlong(&mut self) -> Result<i64> {
        let v = self.uleb(10, 64)?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    /// A length prefix: `None` for null (-1 classic, 0 compact).
    fn length(&mut self, flexible: bool, classic_i16: bool) -> Result<Option<usize>> {
        let n = if flexible {
            i64::from(self.uvarint()?) - 1
        } else if classic_i16 {
            i64::from(self.i16()?)
        } else {
            i64::from(self.i32()?)
        };
        match n {
            -1 => Ok(None),
            n if n < -1 => Err(self.err(format!("negative length {n}"))),
            n => Ok(Some(n as usize)),
        }
    }

    pub(crate) fn nullable_string(&mut self, flexible: bool) -> Result<Option<String>> {
        let Some(n) = self.length(flexible, true)? else {
            return Ok(None);
        };
        if n > MAX_STRING {
            return Err(self.err(format!("string length {n} exceeds {MAX_STRING}")));
        }
        let raw = self.take(n)?;
        match std::str::from_utf8(raw) {
            Ok(s) => Ok(Some(s.to_owned())),
            Err(e) => Err(self.err(format!("string is not UTF-8: {e}"))),
        }
    }

    pub(crate) fn string(&mut self, flexible: bool, field: &str) -> Result<String> {
        self.nullable_string(flexible)?
            .ok_or_else(|| self.err(format!("non-nullable string {field} is null")))
    }

    pub(crate) fn bytes(&mut self, flexible: bool, field: &str) -> Result<Bytes> {
        let Some(n) = self.length(flexible, false)? else {
            return Err(self.err(format!("non-nullable bytes {field} are null")));
        };
        Ok(Bytes::copy_from_slice(self.take(n)?))
    }

    /// The element count of a non-nullable array. Every element takes at least one byte,
    /// so a count larger than the bytes left is refused before any element is read.
    pub(crate) fn array_len(&mut self, flexible: bool, field: &str) -> Result<usize> {
        let Some(n) = self.length(flexible, false)? else {
            return Err(self.err(format!("non-nullable array {field} is null")));
        };
        if n > self.remaining() {
            return Err(self.err(format!(
                "array {field} claims {n} elements, only {} bytes left",
                self.remaining()
            )));
        }
        Ok(n)
    }

    /// Skips a tagged-field section (flexible versions). None of these records defines
    /// a tagged field, so every tag is unknown and ignored, as Kafka ignores them.
    pub(crate) fn skip_tagged_fields(&mut self) -> Result<()> {
        let count = self.uvarint()?;
        for _ in 0..count {
            let _tag = self.uvarint()?;
            let size = self.uvarint()? as usize;
            self.take(size)?;
        }
        Ok(())
    }

    /// Checks that everything was read.
    pub(crate) fn finish(self) -> Result<()> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(self.err(format!("{} trailing bytes", self.buf.len())))
        }
    }
}

/// Builds one key or value.
pub(crate) struct Writer {
    buf: BytesMut,
    what: &'static str,
}

impl Writer {
    pub(crate) fn new(what: &'static str) -> Self {
        Writer {
            buf: BytesMut::new(),
            what,
        }
    }

    pub(crate) fn i16(&mut self, v: i16) {
        self.buf.put_i16(v);
    }

    pub(crate) fn i32(&mut self, v: i32) {
        self.buf.put_i32(v);
    }

    pub(crate) fn i64(&mut self, v: i64) {
        self.buf.put_i64(v);
    }

    pub(crate) fn uvarint(&mut self, mut v: u32) {
        while v >= 0x80 {
            self.buf.put_u8((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.put_u8(v as u8);
    }

    /// Compact length (`n + 1`) or classic length prefix; `None` is null.
    fn length(&mut self, n: Option<usize>, flexible: bool, classic_i16: bool) -> Result<()> {
        let max = if classic_i16 {
            MAX_STRING
        } else {
            i32::MAX as usize - 1
        };
        match n {
            Some(n) if n > max => Err(invalid(
                self.what,
                format!("length {n} exceeds the limit {max}"),
            )),
            Some(n) if flexible => {
                self.uvarint(n as u32 + 1);
                Ok(())
            }
            None if flexible => {
                self.uvarint(0);
                Ok(())
            }
            Some(n) if classic_i16 => {
                self.i16(n as i16);
                Ok(())
            }
            Some(n) => {
                self.i32(n as i32);
                Ok(())
            }
            None if classic_i16 => {
                self.i16(-1);
                Ok(())
            }
            None => {
                self.i32(-1);
                Ok(())
            }
        }
    }

    pub(crate) fn nullable_string(&mut self, s: Option<&str>, flexible: bool) -> Result<()> {
        self.length(s.map(str::len), flexible, true)?;
        if let Some(s) = s {
            self.buf.put_slice(s.as_bytes());
        }
        Ok(())
    }

    pub(crate) fn string(&mut self, s: &str, flexible: bool) -> Result<()> {
        self.nullable_string(Some(s), flexible)
    }

    pub(crate) fn bytes(&mut self, b: &[u8], flexible: bool) -> Result<()> {
        self.length(Some(b.len()), flexible, false)?;
        self.buf.put_slice(b);
        Ok(())
    }

    pub(crate) fn array_len(&mut self, n: usize, flexible: bool) -> Result<()> {
        self.length(Some(n), flexible, false)
    }

    /// An empty tagged-field section.
    pub(crate) fn no_tagged_fields(&mut self) {
        self.uvarint(0);
    }

    pub(crate) fn finish(self) -> Bytes {
        self.buf.freeze()
    }
}
