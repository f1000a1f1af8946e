//! How `strom consume` prints a record: a kcat-style `--format` template, or one JSON
//! object per line with `--output json`.
//!
//! Template codes are kcat's: `%k` key, `%v`/`%s` value, `%p` partition, `%o` offset,
//! `%t` timestamp (ms), `%T` topic, `%h` headers (`k=v` comma separated), `%K`/`%S` key
//! and value length (-1 for null), `%%`; escapes `\n`, `\t`, `\r`, `\\`. Keys and values
//! are written as the raw bytes; a null prints as nothing.
//!
//! Unlike kcat, a template with no `\n` at all gets one appended: `--format '%k:%v'`
//! is the spelling people (and the issue) use for "one line per record", and a
//! template that runs records together is never what a script wants.

use std::borrow::Cow;

use anyhow::bail;
use kafka_protocol::records::Record;
use serde::Serialize;

/// The template used without `--format`: the value and a newline.
pub const DEFAULT_TEMPLATE: &str = "%v\\n";

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(Vec<u8>),
    Key,
    Value,
    Partition,
    Offset,
    Timestamp,
    Topic,
    Headers,
    KeyLength,
    ValueLength,
}

/// A parsed `--format` template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    tokens: Vec<Token>,
}

impl Template {
    /// Parses a template; an unknown `%` code or escape is an error naming it.
    pub fn parse(template: &str) -> anyhow::Result<Template> {
        let mut tokens = Vec::new();
        let mut literal = Vec::new();
        let mut chars = template.chars();
        while let Some(c) = chars.next() {
            let token = match c {
                '%' => match chars.next() {
                    Some('k') => Token::Key,
                    Some('v' | 's') => Token::Value,
                    Some('p') => Token::Partition,
                    Some('o') => Token::Offset,
                    Some('t') => Token::Timestamp,
                    Some('T') => Token::Topic,
                    Some('h') => Token::Headers,
                    Some('K') => Token::KeyLength,
                    Some('S') => Token::ValueLength,
                    Some('%') => {
                        literal.push(b'%');
                        continue;
                    }
                    Some(other) => bail!(
                        "unknown format code %{other} (known: %k %v %s %p %o %t %T %h %K %S %%)"
                    ),
                    None => bail!("format ends with a lone %; write %% for a percent sign"),
                },
                '\\' => {
                    let byte = match chars.next() {
                        Some('n') => b'\n',
                        Some('t') => b'\t',
                        Some('r') => b'\r',
                        Some('\\') => b'\\',
                        Some(other) => {
                            bail!("unknown escape \\{other} in format (known: \\n \\t \\r \\\\)")
                        }
                        None => bail!("format ends with a lone \\; write \\\\ for a backslash"),
                    };
                    literal.push(byte);
                    continue;
                }
                c => {
                    let mut utf8 = [0; 4];
                    literal.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
                    continue;
                }
            };
            if !literal.is_empty() {
                tokens.push(Token::Literal(std::mem::take(&mut literal)));
            }
            tokens.push(token);
        }
        if !literal.is_empty() {
            tokens.push(Token::Literal(literal));
        }
        let has_newline = tokens
            .iter()
            .any(|t| matches!(t, Token::Literal(bytes) if bytes.contains(&b'\n')));
        if !has_newline {
            tokens.push(Token::Literal(b"\n".to_vec()));
        }
        Ok(Template { tokens })
    }

    /// Appends `record` of `topic`-`partition`, formatted, to `out`.
    pub fn render(&self, topic: &str, partition: i32, record: &Record, out: &mut Vec<u8>) {
        for token in &self.tokens {
            match token {
                Token::Literal(bytes) => out.extend_from_slice(bytes),
                Token::Key => out.extend_from_slice(record.key.as_deref().unwrap_or_default()),
                Token::Value => out.extend_from_slice(record.value.as_deref().unwrap_or_default()),
                Token::Partition => push_display(out, partition),
                Token::Offset => push_display(out, record.offset),
                Token::Timestamp => push_display(out, record.timestamp),
                Token::Topic => out.extend_from_slice(topic.as_bytes()),
                Token::Headers => {
                    for (i, (name, value)) in record.headers.iter().enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        out.extend_from_slice(name.as_bytes());
                        out.push(b'=');
                        out.extend_from_slice(value.as_deref().unwrap_or_default());
                    }
                }
                Token::KeyLength => push_display(out, length(record.key.as_deref())),
                Token::ValueLength => push_display(out, length(record.value.as_deref())),
            }
        }
    }
}

fn push_display(out: &mut Vec<u8>, value: impl std::fmt::Display) {
    use std::io::Write;
    // Writing to a Vec cannot fail.
    let _ = write!(out, "{value}");
}

/// Length as kcat prints it: -1 for null.
fn length(bytes: Option<&[u8]>) -> i64 {
    bytes.map_or(-1, |b| b.len() as i64)
}

/// One record as `--output json` prints it, one object per line.
#[derive(Debug, Serialize)]
struct JsonRecord<'a> {
    topic: &'a str,
    partition: i32,
    offset: i64,
    timestamp: i64,
    key: Option<Cow<'a, str>>,
    value: Option<Cow<'a, str>>,
    headers: serde_json::Map<String, serde_json::Value>,
}

/// Appends `record` as one line of JSON to `out`. Keys, values and header values are
/// strings; bytes that are not UTF-8 are replaced with U+FFFD, as JSON has no bytes.
pub fn render_json(
    topic: &str,
    partition: i32,
    record: &Record,
    out: &mut Vec<u8>,
) -> anyhow::Result<()> {
    let json = JsonRecord {
        topic,
        partition,
        offset: record.offset,
        timestamp: record.timestamp,
        key: record.key.as_deref().map(String::from_utf8_lossy),
        value: record.value.as_deref().map(String::from_utf8_lossy),
        headers: record
            .headers
            .iter()
            .map(|(name, value)| {
                let value = match value {
                    Some(v) => serde_json::Value::String(String::from_utf8_lossy(v).into_owned()),
                    None => serde_json::Value::Null,
                };
                (name.to_string(), value)
            })
            .collect(),
    };
    serde_json::to_writer(&mut *out, &json)?;
    out.push(b'\n');
    Ok(())
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use kafka_protocol::protocol::StrBytes;
    use kafka_protocol::records::TimestampType;

    use super::*;

    fn record() -> Record {
        let mut headers = kafka_protocol::indexmap::IndexMap::new();
        headers.insert(
            StrBytes::from_static_str("h1"),
            Some(Bytes::from_static(b"x")),
        );
        headers.insert(
            StrBytes::from_static_str("h2"),
            Some(Bytes::from_static(b"y")),
        );
        Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: 42,
            sequence: -1,
            timestamp: 1_700_000_000_000,
            key: Some(Bytes::from_static(b"k1")),
            value: Some(Bytes::from_static(b"hello")),
            headers,
            delete_horizon: false,
        }
    }

    fn render(template: &str, record: &Record) -> String {
        let mut out = Vec::new();
        Template::parse(template)
            .unwrap()
            .render("orders", 3, record, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn every_code_renders() {
        let r = record();
        assert_eq!(render(DEFAULT_TEMPLATE, &r), "hello\n");
        assert_eq!(render("%k:%v|%s", &r), "k1:hello|hello\n");
        assert_eq!(render("%T/%p/%o@%t", &r), "orders/3/42@1700000000000\n");
        assert_eq!(render("%h", &r), "h1=x,h2=y\n");
        assert_eq!(render("%K %S", &r), "2 5\n");
        assert_eq!(render("100%%\\t\\\\\\r\\n", &r), "100%\t\\\r\n");
        // A template that has its own newline gets none added, wherever it is.
        assert_eq!(render("\\n%k", &r), "\nk1");
        assert_eq!(render("ünï %k", &r), "ünï k1\n");
    }

    #[test]
    fn nulls_print_empty_with_length_minus_one() {
        let mut r = record();
        r.key = None;
        r.value = None;
        r.headers.clear();
        assert_eq!(render("[%k][%v][%h] %K %S", &r), "[][][] -1 -1\n");
    }

    #[test]
    fn bad_templates_are_refused() {
        for (bad, needle) in [
            ("%x", "%x"),
            ("abc%", "lone %"),
            ("\\q", "\\q"),
            ("x\\", "lone \\"),
        ] {
            let e = Template::parse(bad).unwrap_err().to_string();
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }

    #[test]
    fn json_has_every_field() {
        let mut out = Vec::new();
        render_json("orders", 3, &record(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.ends_with('\n') && text.lines().count() == 1);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["topic"], "orders");
        assert_eq!(v["partition"], 3);
        assert_eq!(v["offset"], 42);
        assert_eq!(v["timestamp"], 1_700_000_000_000i64);
        assert_eq!(v["key"], "k1");
        assert_eq!(v["value"], "hello");
        assert_eq!(v["headers"]["h2"], "y");
        let mut r = record();
        r.key = None;
        let mut out = Vec::new();
        render_json("orders", 3, &r, &mut out).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert!(v["key"].is_null());
    }
}
