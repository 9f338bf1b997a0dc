//! Record decoders: one Kafka record's payload → one row, straight into
//! Arrow builders.
//!
//! ```text
//!  payload ──► json::decode / CsvReader::decode ──► slots (one per column)
//!                 │ (any error: Err, slots dropped)        │ all good
//!                 ▼                                         ▼
//!            DecodeError text                        builders.append
//!            (the dead letter)                              │ finish()
//!                                                           ▼
//!                                                      RecordBatch
//! ```
//!
//! The contract is SQL.md §1 "How records become rows": exactly one row per
//! good record, and a bad record (undecodable, or a value that does not fit
//! its column) appends nothing — never a row with a NULL in its place — and
//! returns the error text for the dead-letter table.
//!
//! Why hand-written rather than arrow-json / arrow-csv (measured; see the
//! team notes on streams): arrow-json's decoder is poisoned by one malformed
//! message with no way to reset it, turns a payload holding two objects
//! into two rows (so partition/offset columns fall out of line), reports
//! type errors only at flush for the whole batch, and reads a number for a
//! timestamp column as raw microseconds; arrow-csv merges messages that do
//! not end in a newline and cannot tell `""` from an empty field. Here each
//! record is parsed into a row of `Copy` slots first and appended only when
//! the whole record is good, so there is nothing to roll back.
//!
//! No allocation per row on the good path: slots, the CSV field list and
//! the scratch buffers (unescaped strings, compacted JSONB, decoded bytea)
//! are reused; strings are appended from where they lie in the payload.
//!
//! JSONB columns are `Utf8` fields whose metadata has
//! [`TYPE_METADATA_KEY`] = [`JSONB`]; they store the value's JSON text —
//! any JSON value (object, array, string with its quotes, number, boolean)
//! — with the whitespace between tokens removed and everything else (key
//! order, duplicate keys, number spelling) as sent. JSON `null` is SQL NULL.

mod csv;
mod json;
mod value;

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, AsArray, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder,
    Float32Builder, Float64Builder, Int32Builder, Int64Builder, RecordBatch, RecordBatchOptions,
    StringBuilder, Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, SchemaRef};

pub use value::{JSONB, TYPE_METADATA_KEY, is_jsonb};
pub(crate) use value::{parse_bool, parse_date_days as parse_date, parse_decimal, unescape_json};

use crate::error::{Error, Result};
use value::{Kind, Scratch, Slot};

/// How a source's records are encoded (`FORMAT PLAIN ENCODE …`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// One JSON object per record.
    Json,
    /// One CSV record per Kafka message; fields by position.
    Csv { delimiter: u8, without_header: bool },
}

/// Why a record was not decoded; its Display is the dead-letter error text,
/// for example `column "price": 1.5 is not an integer`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(Box<str>);

impl DecodeError {
    fn new(message: String) -> DecodeError {
        DecodeError(message.into_boxed_str())
    }

    /// The error text.
    pub fn message(&self) -> &str {
        &self.0
    }
}

/// The declared payload columns: names, kinds and how to find a key.
#[derive(Debug)]
struct Columns {
    names: Vec<String>,
    kinds: Vec<Kind>,
    nullable: Vec<bool>,
    /// For wide schemas; narrow ones are searched linearly.
    by_name: Option<std::collections::HashMap<String, usize, foldhash::fast::RandomState>>,
}

/// Up to this many columns a linear search (starting at the column after
/// the previous key, which is where the next key usually is) beats hashing.
const LINEAR_LOOKUP_MAX: usize = 16;

impl Columns {
    fn find(&self, key: &str, hint: usize) -> Option<usize> {
        if let Some(map) = &self.by_name {
            return map.get(key).copied();
        }
        if self.names.get(hint).is_some_and(|n| n == key) {
            return Some(hint);
        }
        self.names.iter().position(|n| n == key)
    }
}

/// Decodes records (one per Kafka message) into batches of the declared
/// columns. Not thread-safe by design: one per reader.
pub struct RecordDecoder {
    schema: SchemaRef,
    columns: Columns,
    csv: Option<csv::CsvReader>,
    slots: Vec<Slot>,
    scratch: Scratch,
    builders: Vec<ColumnBuilder>,
    rows: usize,
}

impl std::fmt::Debug for RecordDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordDecoder")
            .field("columns", &self.columns.names)
            .field("csv", &self.csv.is_some())
            .field("rows", &self.rows)
            .finish()
    }
}

impl RecordDecoder {
    /// `columns`: the payload columns as declared (names already folded),
    /// with the Arrow types streamlake tables use: Int32, Int64, Float32,
    /// Float64, Boolean, Utf8 (JSONB when flagged, see the module docs),
    /// Decimal128, Date32, Time64(µs), Timestamp(µs, None or a zone),
    /// Binary.
    pub fn new(columns: SchemaRef, encoding: Encoding) -> Result<RecordDecoder> {
        let kinds = columns
            .fields()
            .iter()
            .map(|f| Kind::of(f))
            .collect::<Result<Vec<_>>>()?;
        let names: Vec<String> = columns.fields().iter().map(|f| f.name().clone()).collect();
        let by_name = (names.len() > LINEAR_LOOKUP_MAX).then(|| {
            // The first of duplicate names wins, as in the linear search.
            let mut map = std::collections::HashMap::default();
            for (i, n) in names.iter().enumerate().rev() {
                map.insert(n.clone(), i);
            }
            map
        });
        let csv = match encoding {
            Encoding::Json => None,
            Encoding::Csv {
                delimiter,
                without_header,
            } => {
                if !delimiter.is_ascii() || matches!(delimiter, b'"' | b'\n' | b'\r') {
                    return Err(Error::InvalidParameter(format!(
                        "CSV delimiter {:?} is not allowed: use a single ASCII character other than a quote or a newline",
                        delimiter as char
                    )));
                }
                Some(csv::CsvReader::new(delimiter, without_header))
            }
        };
        let builders = columns
            .fields()
            .iter()
            .zip(&kinds)
            .map(|(f, k)| ColumnBuilder::new(*k, f.data_type(), 1024, 16 * 1024))
            .collect::<Result<Vec<_>>>()?;
        Ok(RecordDecoder {
            slots: vec![Slot::Null; kinds.len()],
            columns: Columns {
                nullable: columns.fields().iter().map(|f| f.is_nullable()).collect(),
                names,
                kinds,
                by_name,
            },
            schema: columns,
            csv,
            scratch: Scratch::default(),
            builders,
            rows: 0,
        })
    }

    /// Decodes one Kafka record's payload as exactly one row. `Ok(true)`: a
    /// row was appended; `Ok(false)`: skipped (a CSV header record);
    /// `Err(e)`: nothing was appended (all columns stay aligned) and `e`'s
    /// Display is the dead-letter error text.
    pub fn push(&mut self, payload: &[u8]) -> Result<bool, DecodeError> {
        let text = std::str::from_utf8(payload).map_err(|e| {
            DecodeError::new(format!(
                "payload is not valid UTF-8 (invalid byte at offset {})",
                e.valid_up_to()
            ))
        })?;
        if text.len() > u32::MAX as usize {
            return Err(DecodeError::new("payload is larger than 4 GiB".into()));
        }
        self.slots.fill(Slot::Null);
        self.scratch.clear();
        match &mut self.csv {
            None => json::decode(text, &self.columns, &mut self.slots, &mut self.scratch)
                .map_err(DecodeError::new)?,
            Some(reader) => {
                let is_row = reader
                    .decode(text, &self.columns, &mut self.slots, &mut self.scratch)
                    .map_err(DecodeError::new)?;
                if !is_row {
                    return Ok(false);
                }
            }
        }
        for (i, slot) in self.slots.iter().enumerate() {
            if matches!(slot, Slot::Null) && !self.columns.nullable[i] {
                return Err(DecodeError::new(format!(
                    "column \"{}\" is declared NOT NULL but the record has no value for it",
                    self.columns.names[i]
                )));
            }
        }
        for (builder, slot) in self.builders.iter_mut().zip(&self.slots) {
            builder.append(*slot, text, &self.scratch);
        }
        self.rows += 1;
        Ok(true)
    }

    /// Rows appended since the last [`finish`](Self::finish).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The rows pushed since the last finish, as one batch with the schema
    /// given to [`new`](Self::new); resets.
    pub fn finish(&mut self) -> RecordBatch {
        let rows = std::mem::take(&mut self.rows);
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.builders.len());
        for (i, b) in self.builders.iter_mut().enumerate() {
            let array = b.finish();
            // Arrow's finish leaves empty buffers that would regrow by
            // doubling (and fault in fresh pages) every batch: size the next
            // batch's buffers like this one's instead.
            let bytes = match array.data_type() {
                DataType::Utf8 => array.as_string::<i32>().values().len(),
                DataType::Binary => array.as_binary::<i32>().values().len(),
                _ => 0,
            };
            *b = ColumnBuilder::new(
                self.columns.kinds[i],
                self.schema.field(i).data_type(),
                rows.max(1024),
                bytes,
            )
            .expect("made once already in new");
            arrays.push(array);
        }
        RecordBatch::try_new_with_options(
            self.schema.clone(),
            arrays,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )
        .expect("the builders are made from the schema and stay aligned")
    }
}

/// One Arrow builder per column, chosen by kind.
enum ColumnBuilder {
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Boolean(BooleanBuilder),
    Utf8(StringBuilder),
    Decimal(Decimal128Builder),
    Date(Date32Builder),
    Time(Time64MicrosecondBuilder),
    Timestamp(TimestampMicrosecondBuilder),
    Binary(BinaryBuilder),
}

impl ColumnBuilder {
    /// A builder with room for `rows` values and `bytes` of string/binary
    /// data, so a batch like the previous one never regrows.
    fn new(kind: Kind, data_type: &DataType, rows: usize, bytes: usize) -> Result<ColumnBuilder> {
        Ok(match kind {
            Kind::Int32 => ColumnBuilder::Int32(Int32Builder::with_capacity(rows)),
            Kind::Int64 => ColumnBuilder::Int64(Int64Builder::with_capacity(rows)),
            Kind::Float32 => ColumnBuilder::Float32(Float32Builder::with_capacity(rows)),
            Kind::Float64 => ColumnBuilder::Float64(Float64Builder::with_capacity(rows)),
            Kind::Boolean => ColumnBuilder::Boolean(BooleanBuilder::with_capacity(rows)),
            Kind::Text | Kind::Jsonb => {
                ColumnBuilder::Utf8(StringBuilder::with_capacity(rows, bytes))
            }
            Kind::Decimal { precision, scale } => ColumnBuilder::Decimal(
                Decimal128Builder::with_capacity(rows)
                    .with_precision_and_scale(precision, scale)?,
            ),
            Kind::Date => ColumnBuilder::Date(Date32Builder::with_capacity(rows)),
            Kind::Time => ColumnBuilder::Time(Time64MicrosecondBuilder::with_capacity(rows)),
            Kind::Timestamp | Kind::TimestampTz => {
                let tz = match data_type {
                    DataType::Timestamp(_, tz) => tz.clone(),
                    _ => None,
                };
                ColumnBuilder::Timestamp(
                    TimestampMicrosecondBuilder::with_capacity(rows).with_timezone_opt(tz),
                )
            }
            Kind::Binary => ColumnBuilder::Binary(BinaryBuilder::with_capacity(rows, bytes)),
        })
    }

    /// Appends a slot that the parser made for this column's kind.
    fn append(&mut self, slot: Slot, payload: &str, scratch: &Scratch) {
        let text = |slot: Slot| -> Option<&str> {
            match slot {
                Slot::Str(loc) => Some(scratch.str(payload, loc)),
                Slot::Static(s) => Some(s),
                _ => None,
            }
        };
        match (self, slot) {
            (ColumnBuilder::Int32(b), Slot::Int(v)) => b.append_value(v as i32),
            (ColumnBuilder::Int32(b), _) => b.append_null(),
            (ColumnBuilder::Int64(b), Slot::Int(v)) => b.append_value(v),
            (ColumnBuilder::Int64(b), _) => b.append_null(),
            (ColumnBuilder::Float32(b), Slot::Float(v)) => b.append_value(v as f32),
            (ColumnBuilder::Float32(b), _) => b.append_null(),
            (ColumnBuilder::Float64(b), Slot::Float(v)) => b.append_value(v),
            (ColumnBuilder::Float64(b), _) => b.append_null(),
            (ColumnBuilder::Boolean(b), Slot::Bool(v)) => b.append_value(v),
            (ColumnBuilder::Boolean(b), _) => b.append_null(),
            (ColumnBuilder::Decimal(b), Slot::Decimal(v)) => b.append_value(v),
            (ColumnBuilder::Decimal(b), _) => b.append_null(),
            (ColumnBuilder::Date(b), Slot::Int(v)) => b.append_value(v as i32),
            (ColumnBuilder::Date(b), _) => b.append_null(),
            (ColumnBuilder::Time(b), Slot::Int(v)) => b.append_value(v),
            (ColumnBuilder::Time(b), _) => b.append_null(),
            (ColumnBuilder::Timestamp(b), Slot::Int(v)) => b.append_value(v),
            (ColumnBuilder::Timestamp(b), _) => b.append_null(),
            (ColumnBuilder::Utf8(b), slot) => b.append_option(text(slot)),
            (ColumnBuilder::Binary(b), Slot::Bytes(start, end)) => {
                b.append_value(&scratch.bytes[start as usize..end as usize])
            }
            (ColumnBuilder::Binary(b), slot) => b.append_option(text(slot)),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            ColumnBuilder::Int32(b) => Arc::new(b.finish()),
            ColumnBuilder::Int64(b) => Arc::new(b.finish()),
            ColumnBuilder::Float32(b) => Arc::new(b.finish()),
            ColumnBuilder::Float64(b) => Arc::new(b.finish()),
            ColumnBuilder::Boolean(b) => Arc::new(b.finish()),
            ColumnBuilder::Utf8(b) => Arc::new(b.finish()),
            ColumnBuilder::Decimal(b) => Arc::new(b.finish()),
            ColumnBuilder::Date(b) => Arc::new(b.finish()),
            ColumnBuilder::Time(b) => Arc::new(b.finish()),
            ColumnBuilder::Timestamp(b) => Arc::new(b.finish()),
            ColumnBuilder::Binary(b) => Arc::new(b.finish()),
        }
    }
}

#[cfg(test)]
mod tests;
