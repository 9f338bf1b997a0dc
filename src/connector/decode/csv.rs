//! ENCODE CSV: one record per Kafka message → one row of slots.
//!
//! Fields map to the columns by position (RFC 4180 quoting: `"` encloses a
//! field, `""` inside is a quote, delimiters and newlines inside quotes are
//! data). An unquoted empty field is NULL; a quoted empty field `""` is the
//! empty string — which is why this is a small splitter of our own: csv-core
//! drops the quotes and with them that difference. One trailing `\n` or
//! `\r\n` ends the record and is not data. A quote inside an unquoted field
//! is kept as data (as PostgreSQL's COPY does); text after a closing quote
//! other than a delimiter is an error.

use super::Columns;
use super::value::{self, Buf, Loc, Out, Scratch, Slot};

/// One field of the current record.
#[derive(Debug, Clone, Copy)]
struct FieldSpan {
    loc: Loc,
    quoted: bool,
}

/// Splits records and parses their fields; reused from record to record.
#[derive(Debug)]
pub(super) struct CsvReader {
    delimiter: u8,
    without_header: bool,
    fields: Vec<FieldSpan>,
}

impl CsvReader {
    pub(super) fn new(delimiter: u8, without_header: bool) -> CsvReader {
        CsvReader {
            delimiter,
            without_header,
            fields: Vec::new(),
        }
    }

    /// Parses one record into `slots`. `Ok(false)`: the record is a header.
    pub(super) fn decode(
        &mut self,
        text: &str,
        columns: &Columns,
        slots: &mut [Slot],
        scratch: &mut Scratch,
    ) -> Result<bool, String> {
        let record = text
            .strip_suffix("\r\n")
            .or_else(|| text.strip_suffix('\n'))
            .unwrap_or(text);
        if record.is_empty() {
            return Err("empty record".into());
        }
        self.split(record, &mut scratch.unescaped)?;
        if self.fields.len() != columns.names.len() {
            return Err(format!(
                "expected {} fields, found {}",
                columns.names.len(),
                self.fields.len()
            ));
        }
        if !self.without_header && self.is_header(text, columns, scratch) {
            return Ok(false);
        }
        let Scratch {
            unescaped,
            text: derived,
            bytes,
        } = scratch;
        for (i, f) in self.fields.iter().enumerate() {
            if !f.quoted && f.loc.start == f.loc.end {
                continue; // NULL: the slot was reset
            }
            let range = f.loc.start as usize..f.loc.end as usize;
            let s = match f.loc.buf {
                Buf::Payload => &text[range],
                _ => &unescaped[range],
            };
            let out = Out {
                text: derived,
                bytes,
            };
            slots[i] = value::from_text(columns.kinds[i], s, f.loc, out)
                .map_err(|msg| format!("column \"{}\": {msg}", columns.names[i]))?;
        }
        Ok(true)
    }

    /// Whether every field equals its column's name, ignoring case.
    fn is_header(&self, text: &str, columns: &Columns, scratch: &Scratch) -> bool {
        self.fields
            .iter()
            .zip(&columns.names)
            .all(|(f, name)| scratch.str(text, f.loc).eq_ignore_ascii_case(name))
    }

    /// Splits `record` into `self.fields`. Quoted fields with `""` inside
    /// are unescaped onto `unescaped`; all others stay in the payload.
    fn split(&mut self, record: &str, unescaped: &mut String) -> Result<(), String> {
        self.fields.clear();
        let b = record.as_bytes();
        let len = b.len();
        let mut pos = 0;
        loop {
            if b.get(pos) == Some(&b'"') {
                pos += 1;
                let mut segment = pos;
                let mut copied: Option<usize> = None;
                let end = loop {
                    let Some(q) = memchr::memchr(b'"', &b[pos..]).map(|k| pos + k) else {
                        return Err(format!(
                            "unterminated quoted field {}",
                            self.fields.len() + 1
                        ));
                    };
                    if b.get(q + 1) == Some(&b'"') {
                        copied.get_or_insert(unescaped.len());
                        unescaped.push_str(&record[segment..=q]);
                        pos = q + 2;
                        segment = pos;
                    } else {
                        pos = q + 1;
                        break q;
                    }
                };
                let loc = match copied {
                    None => Loc {
                        buf: Buf::Payload,
                        start: segment as u32,
                        end: end as u32,
                    },
                    Some(start) => {
                        unescaped.push_str(&record[segment..end]);
                        Loc {
                            buf: Buf::Unescaped,
                            start: start as u32,
                            end: unescaped.len() as u32,
                        }
                    }
                };
                self.fields.push(FieldSpan { loc, quoted: true });
                if pos == len {
                    return Ok(());
                }
                if b[pos] != self.delimiter {
                    return Err(format!(
                        "unexpected character after the closing quote of field {}",
                        self.fields.len()
                    ));
                }
                pos += 1;
            } else {
                let end = memchr::memchr(self.delimiter, &b[pos..]).map_or(len, |k| pos + k);
                self.fields.push(FieldSpan {
                    loc: Loc {
                        buf: Buf::Payload,
                        start: pos as u32,
                        end: end as u32,
                    },
                    quoted: false,
                });
                if end == len {
                    return Ok(());
                }
                pos = end + 1;
            }
        }
    }
}
