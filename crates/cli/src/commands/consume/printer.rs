//! Buffered output of consumed records to stdout. A closed pipe (`strom consume | head`)
//! is not an error: the printer notes it and the consumer stops cleanly.

use std::io::{BufWriter, ErrorKind, Stdout, Write};

use anyhow::Context;
use kafka_protocol::records::Record;

use super::format::{Template, render_json};

/// How each record is printed.
pub enum Style {
    Template(Template),
    Json,
}

pub struct Printer {
    style: Style,
    topic: String,
    out: BufWriter<Stdout>,
    scratch: Vec<u8>,
    closed: bool,
}

impl Printer {
    pub fn new(style: Style, topic: &str) -> Printer {
        Printer {
            style,
            topic: topic.to_string(),
            out: BufWriter::with_capacity(64 * 1024, std::io::stdout()),
            scratch: Vec::with_capacity(4096),
            closed: false,
        }
    }

    /// Whether stdout's reader has gone away.
    pub fn closed(&self) -> bool {
        self.closed
    }

    /// Prints one record of `partition` (into the buffer; see [`Printer::flush`]).
    pub fn record(&mut self, partition: i32, record: &Record) -> anyhow::Result<()> {
        if self.closed {
            return Ok(());
        }
        self.scratch.clear();
        match &self.style {
            Style::Template(template) => {
                template.render(&self.topic, partition, record, &mut self.scratch)
            }
            Style::Json => render_json(&self.topic, partition, record, &mut self.scratch)?,
        }
        let result = self.out.write_all(&self.scratch);
        self.check(result)
    }

    /// Writes out what is buffered: after each fetch, so a live tail shows records as
    /// they arrive while a backlog is still written in large chunks.
    pub fn flush(&mut self) -> anyhow::Result<()> {
        if self.closed {
            return Ok(());
        }
        let result = self.out.flush();
        self.check(result)
    }

    fn check(&mut self, result: std::io::Result<()>) -> anyhow::Result<()> {
        match result {
            Err(e) if e.kind() == ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(())
            }
            other => other.context("cannot write to stdout"),
        }
    }
}
