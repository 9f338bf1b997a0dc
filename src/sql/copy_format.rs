//! PostgreSQL COPY formats: text and CSV in, text, CSV and binary out.
//!
//! Input is parsed column-wise: every field goes into a string builder per
//! column, then each column is cast to its type in one vectorized arrow
//! cast, so a bulk load costs no per-row conversion. Output formats a whole
//! batch into one buffer and remembers row boundaries; the pgwire layer sends
//! one CopyData per row by slicing that buffer (no copy).

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use datafusion::arrow::array::timezone::Tz;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringBuilder};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

use crate::error::{Error, Result};

/// Which COPY format, with its options.
#[derive(Debug, Clone, PartialEq)]
pub enum CopyFormat {
    Text {
        delimiter: u8,
        null: String,
    },
    Csv {
        delimiter: u8,
        null: String,
        quote: u8,
        header: bool,
    },
    Binary,
}

impl CopyFormat {
    pub fn text() -> CopyFormat {
        CopyFormat::Text {
            delimiter: b'\t',
            null: "\\N".into(),
        }
    }

    pub fn csv() -> CopyFormat {
        CopyFormat::Csv {
            delimiter: b',',
            null: String::new(),
            quote: b'"',
            header: false,
        }
    }

    /// The format code of CopyInResponse/CopyOutResponse.
    pub fn wire_code(&self) -> i8 {
        match self {
            CopyFormat::Binary => 1,
            _ => 0,
        }
    }
}

/// Accumulates COPY FROM input and turns complete lines into batches.
pub struct CopyDecoder {
    format: CopyFormat,
    /// Schema of the columns being loaded (a subset of the table's, in the
    /// order the COPY statement lists them).
    schema: SchemaRef,
    pending: BytesMut,
    header_skipped: bool,
    line: u64,
}

/// Decode a batch when this many bytes of complete lines are pending.
pub const DECODE_CHUNK_BYTES: usize = 4 * 1024 * 1024;

impl CopyDecoder {
    pub fn new(format: CopyFormat, schema: SchemaRef) -> Result<CopyDecoder> {
        if format == CopyFormat::Binary {
            return Err(Error::FeatureNotSupported(
                "COPY FROM with FORMAT binary is not supported; use text or csv".into(),
            ));
        }
        Ok(CopyDecoder {
            format,
            schema,
            pending: BytesMut::new(),
            header_skipped: false,
            line: 0,
        })
    }

    /// Adds input; returns a batch once enough complete lines are pending.
    pub fn push(&mut self, data: &[u8]) -> Result<Option<RecordBatch>> {
        self.pending.extend_from_slice(data);
        if self.pending.len() < DECODE_CHUNK_BYTES {
            return Ok(None);
        }
        let Some(end) = self.complete_prefix() else {
            return Ok(None);
        };
        let chunk = self.pending.split_to(end).freeze();
        self.decode(&chunk).map(Some)
    }

    /// Decodes whatever is left at end of input.
    pub fn finish(&mut self) -> Result<Option<RecordBatch>> {
        let mut chunk = std::mem::take(&mut self.pending).freeze();
        // psql sends the old end-of-data marker `\.` for text format.
        if chunk.ends_with(b"\\.\n") {
            chunk.truncate(chunk.len() - 3);
        } else if chunk.ends_with(b"\\.") {
            chunk.truncate(chunk.len() - 2);
        }
        if chunk.is_empty() {
            return Ok(None);
        }
        self.decode(&chunk).map(Some)
    }

    /// Length of the longest prefix that ends at a record boundary.
    fn complete_prefix(&self) -> Option<usize> {
        match &self.format {
            CopyFormat::Csv { quote, .. } => {
                // A newline inside quotes is data: track quote parity.
                let mut in_quotes = false;
                let mut last = None;
                for (i, &b) in self.pending.iter().enumerate() {
                    if b == *quote {
                        in_quotes = !in_quotes;
                    } else if b == b'\n' && !in_quotes {
                        last = Some(i + 1);
                    }
                }
                last
            }
            _ => self
                .pending
                .iter()
                .rposition(|&b| b == b'\n')
                .map(|i| i + 1),
        }
    }

    fn decode(&mut self, chunk: &[u8]) -> Result<RecordBatch> {
        let ncols = self.schema.fields().len();
        let mut builders: Vec<StringBuilder> = (0..ncols).map(|_| StringBuilder::new()).collect();
        match self.format.clone() {
            CopyFormat::Text { delimiter, null } => {
                for raw in chunk.split(|&b| b == b'\n') {
                    if raw.is_empty() {
                        continue;
                    }
                    self.line += 1;
                    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
                    let mut n = 0;
                    for field in raw.split(|&b| b == delimiter) {
                        if n >= ncols {
                            return Err(self.bad("extra data after last expected column"));
                        }
                        if field == null.as_bytes() {
                            builders[n].append_null();
                        } else {
                            builders[n].append_value(unescape_text(field, self.line)?);
                        }
                        n += 1;
                    }
                    if n < ncols {
                        return Err(self.bad(&format!(
                            "missing data for column \"{}\"",
                            self.schema.field(n).name()
                        )));
                    }
                }
            }
            CopyFormat::Csv {
                delimiter,
                null,
                quote,
                header,
            } => {
                let mut records = CsvRecords::new(chunk, delimiter, quote);
                while let Some(fields) = records.next_record()? {
                    self.line += 1;
                    if header && !self.header_skipped {
                        self.header_skipped = true;
                        continue;
                    }
                    if fields.len() == 1 && fields[0].0.is_empty() && ncols > 1 {
                        continue; // blank line
                    }
                    if fields.len() != ncols {
                        return Err(
                            self.bad(&format!("expected {ncols} columns, found {}", fields.len()))
                        );
                    }
                    for (b, (value, quoted)) in builders.iter_mut().zip(fields) {
                        if !quoted && value == null {
                            b.append_null();
                        } else {
                            b.append_value(&value);
                        }
                    }
                }
            }
            CopyFormat::Binary => unreachable!("rejected in new()"),
        }
        let options = CastOptions {
            safe: false,
            ..Default::default()
        };
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(ncols);
        for (b, field) in builders.iter_mut().zip(self.schema.fields()) {
            let strings: ArrayRef = Arc::new(b.finish());
            let col = cast_with_options(&strings, field.data_type(), &options).map_err(|e| {
                Error::InvalidText(format!(
                    "invalid input for column \"{}\" near line {}: {e}",
                    field.name(),
                    self.line
                ))
            })?;
            columns.push(col);
        }
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }

    fn bad(&self, what: &str) -> Error {
        Error::InvalidText(format!("COPY data line {}: {what}", self.line))
    }
}

/// Undoes the text format's backslash escapes.
fn unescape_text(field: &[u8], line: u64) -> Result<String> {
    let bad_utf8 = || Error::InvalidText(format!("invalid UTF-8 in COPY data line {line}"));
    if !field.contains(&b'\\') {
        return std::str::from_utf8(field)
            .map(str::to_string)
            .map_err(|_| bad_utf8());
    }
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let b = field[i];
        if b != b'\\' || i + 1 == field.len() {
            out.push(b);
            i += 1;
            continue;
        }
        let c = field[i + 1];
        i += 2;
        out.push(match c {
            b'n' => b'\n',
            b't' => b'\t',
            b'r' => b'\r',
            b'b' => 8,
            b'f' => 12,
            b'v' => 11,
            b'0'..=b'7' => {
                let mut v = (c - b'0') as u32;
                let mut k = 0;
                while k < 2 && i < field.len() && (b'0'..=b'7').contains(&field[i]) {
                    v = v * 8 + (field[i] - b'0') as u32;
                    i += 1;
                    k += 1;
                }
                v as u8
            }
            other => other,
        });
    }
    String::from_utf8(out).map_err(|_| bad_utf8())
}

/// A CSV record splitter that knows whether each field was quoted, because
/// PostgreSQL reads an unquoted empty field as NULL and `""` as ''.
struct CsvRecords<'a> {
    data: &'a [u8],
    pos: usize,
    delimiter: u8,
    quote: u8,
}

impl<'a> CsvRecords<'a> {
    fn new(data: &'a [u8], delimiter: u8, quote: u8) -> Self {
        CsvRecords {
            data,
            pos: 0,
            delimiter,
            quote,
        }
    }

    fn next_record(&mut self) -> Result<Option<Vec<(String, bool)>>> {
        if self.pos >= self.data.len() {
            return Ok(None);
        }
        let mut fields = Vec::new();
        let mut field = Vec::new();
        let mut quoted = false;
        let mut in_quotes = false;
        while self.pos < self.data.len() {
            let b = self.data[self.pos];
            self.pos += 1;
            if in_quotes {
                if b == self.quote {
                    if self.data.get(self.pos) == Some(&self.quote) {
                        field.push(b);
                        self.pos += 1;
                    } else {
                        in_quotes = false;
                    }
                } else {
                    field.push(b);
                }
            } else if b == self.quote {
                in_quotes = true;
                quoted = true;
            } else if b == self.delimiter {
                fields.push((to_string(std::mem::take(&mut field))?, quoted));
                quoted = false;
            } else if b == b'\n' {
                break;
            } else if b == b'\r' && self.data.get(self.pos) == Some(&b'\n') {
                continue;
            } else {
                field.push(b);
            }
        }
        if in_quotes {
            return Err(Error::InvalidText("unterminated CSV quoted field".into()));
        }
        fields.push((to_string(field)?, quoted));
        Ok(Some(fields))
    }
}

fn to_string(v: Vec<u8>) -> Result<String> {
    String::from_utf8(v).map_err(|_| Error::InvalidText("invalid UTF-8 in COPY data".into()))
}

/// A formatted batch: one buffer and the end offset of every row.
pub struct EncodedRows {
    pub buffer: Bytes,
    pub ends: Vec<usize>,
}

/// The first line of `COPY … TO … (FORMAT csv, HEADER)`: the column names,
/// quoted as values are.
pub fn csv_header(format: &CopyFormat, schema: &SchemaRef) -> Option<Bytes> {
    let CopyFormat::Csv {
        delimiter,
        null,
        quote,
        header: true,
    } = format
    else {
        return None;
    };
    let mut line = String::new();
    for (i, f) in schema.fields().iter().enumerate() {
        if i > 0 {
            line.push(*delimiter as char);
        }
        quote_csv(f.name(), *delimiter, *quote, null, &mut line);
    }
    line.push('\n');
    Some(Bytes::from(line.into_bytes()))
}

/// The binary COPY header (signature, flags, extension length).
pub fn binary_header() -> Bytes {
    let mut b = BytesMut::with_capacity(19);
    b.put_slice(b"PGCOPY\n\xff\r\n\0");
    b.put_i32(0);
    b.put_i32(0);
    b.freeze()
}

/// Formats a batch in the given COPY format.
pub fn encode(format: &CopyFormat, batch: &RecordBatch) -> Result<EncodedRows> {
    encode_in_zone(format, batch, None)
}

/// [`encode`], with timestamptz values in the session's time zone (UTC when
/// None).
pub fn encode_in_zone(
    format: &CopyFormat,
    batch: &RecordBatch,
    zone: Option<&Tz>,
) -> Result<EncodedRows> {
    match format {
        CopyFormat::Binary => encode_binary(batch),
        CopyFormat::Text { delimiter, null } => {
            encode_delimited(batch, *delimiter, null, None, zone)
        }
        CopyFormat::Csv {
            delimiter,
            null,
            quote,
            ..
        } => encode_delimited(batch, *delimiter, null, Some(*quote), zone),
    }
}

fn encode_delimited(
    batch: &RecordBatch,
    delimiter: u8,
    null: &str,
    quote: Option<u8>,
    zone: Option<&Tz>,
) -> Result<EncodedRows> {
    let options = FormatOptions::default()
        .with_date_format(Some("%Y-%m-%d"))
        .with_datetime_format(Some("%Y-%m-%d %H:%M:%S%.f"))
        .with_timestamp_format(Some("%Y-%m-%d %H:%M:%S%.f"))
        .with_timestamp_tz_format(Some("%Y-%m-%d %H:%M:%S%.f%:z"));
    let formatters = batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
        .collect::<Result<Vec<_>, _>>()?;
    let mut buf = String::with_capacity(batch.num_rows() * 16 * batch.num_columns().max(1));
    let mut ends = Vec::with_capacity(batch.num_rows());
    let mut cell = String::new();
    for row in 0..batch.num_rows() {
        for (i, (col, f)) in batch.columns().iter().zip(&formatters).enumerate() {
            if i > 0 {
                buf.push(delimiter as char);
            }
            if col.is_null(row) {
                buf.push_str(null);
                continue;
            }
            cell.clear();
            if let DataType::Boolean = col.data_type() {
                cell.push(if col.as_boolean().value(row) {
                    't'
                } else {
                    'f'
                });
            } else if let Some(text) = pg_text(col, row, zone) {
                cell.push_str(&text);
            } else {
                use std::fmt::Write;
                write!(cell, "{}", f.value(row)).map_err(|e| Error::Internal(e.to_string()))?;
            }
            match quote {
                None => escape_text(&cell, delimiter, &mut buf),
                Some(q) => quote_csv(&cell, delimiter, q, null, &mut buf),
            }
        }
        buf.push('\n');
        ends.push(buf.len());
    }
    Ok(EncodedRows {
        buffer: Bytes::from(buf.into_bytes()),
        ends,
    })
}

/// PostgreSQL's text of a timestamp, numeric or float cell (shared with query
/// results; timestamptz in `zone`, or UTC), or None for other types.
fn pg_text(col: &ArrayRef, row: usize, zone: Option<&Tz>) -> Option<String> {
    use datafusion_postgres::arrow_pg::encoder::timestamp_value;
    use datafusion_postgres::arrow_pg::pg_text::{PgNumeric, float4_text, float8_text};
    match col.data_type() {
        DataType::Timestamp(unit, tz) => {
            let utc = timestamp_value(col, row, unit)?;
            Some(crate::sql::pg_text_cast::timestamp_text(
                &utc,
                tz.is_some(),
                zone,
            ))
        }
        DataType::Decimal128(p, s) => {
            let v = col
                .as_primitive::<datafusion::arrow::datatypes::Decimal128Type>()
                .value(row);
            Some(PgNumeric::new(v, *p, *s).text())
        }
        DataType::Float64 => Some(float8_text(
            col.as_primitive::<datafusion::arrow::datatypes::Float64Type>()
                .value(row),
        )),
        DataType::Float32 => Some(float4_text(
            col.as_primitive::<datafusion::arrow::datatypes::Float32Type>()
                .value(row),
        )),
        _ => None,
    }
}

fn escape_text(value: &str, delimiter: u8, out: &mut String) {
    for ch in value.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' if delimiter == b'\t' => out.push_str("\\t"),
            c if c as u32 == delimiter as u32 => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
}

fn quote_csv(value: &str, delimiter: u8, quote: u8, null: &str, out: &mut String) {
    let q = quote as char;
    let needs = value.is_empty() && null.is_empty()
        || value == null
        || value
            .bytes()
            .any(|b| b == delimiter || b == quote || b == b'\n' || b == b'\r');
    if !needs {
        out.push_str(value);
        return;
    }
    out.push(q);
    for ch in value.chars() {
        if ch == q {
            out.push(q);
        }
        out.push(ch);
    }
    out.push(q);
}

/// Microseconds between the Unix and PostgreSQL (2000-01-01) epochs.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
const PG_EPOCH_DAYS: i32 = 10_957;

fn encode_binary(batch: &RecordBatch) -> Result<EncodedRows> {
    let mut buf = BytesMut::with_capacity(batch.num_rows() * (2 + 12 * batch.num_columns()));
    let mut ends = Vec::with_capacity(batch.num_rows());
    for col in batch.columns() {
        binary_supported(col.data_type())?;
    }
    for row in 0..batch.num_rows() {
        buf.put_i16(batch.num_columns() as i16);
        for col in batch.columns() {
            if col.is_null(row) {
                buf.put_i32(-1);
                continue;
            }
            put_binary_value(col, row, &mut buf)?;
        }
        ends.push(buf.len());
    }
    Ok(EncodedRows {
        buffer: buf.freeze(),
        ends,
    })
}

fn binary_supported(t: &DataType) -> Result<()> {
    use DataType as D;
    match t {
        D::Boolean
        | D::Int16
        | D::Int32
        | D::Int64
        | D::Float32
        | D::Float64
        | D::Utf8
        | D::LargeUtf8
        | D::Utf8View
        | D::Binary
        | D::LargeBinary
        | D::Date32
        | D::Decimal128(..)
        | D::Timestamp(TimeUnit::Microsecond, _) => Ok(()),
        other => Err(Error::FeatureNotSupported(format!(
            "COPY TO with FORMAT binary does not support type {other} yet"
        ))),
    }
}

fn put_binary_value(col: &ArrayRef, row: usize, buf: &mut BytesMut) -> Result<()> {
    use datafusion::arrow::datatypes as t;
    match col.data_type() {
        DataType::Boolean => {
            buf.put_i32(1);
            buf.put_u8(col.as_boolean().value(row) as u8);
        }
        DataType::Int16 => {
            buf.put_i32(2);
            buf.put_i16(col.as_primitive::<t::Int16Type>().value(row));
        }
        DataType::Int32 => {
            buf.put_i32(4);
            buf.put_i32(col.as_primitive::<t::Int32Type>().value(row));
        }
        DataType::Int64 => {
            buf.put_i32(8);
            buf.put_i64(col.as_primitive::<t::Int64Type>().value(row));
        }
        DataType::Float32 => {
            buf.put_i32(4);
            buf.put_f32(col.as_primitive::<t::Float32Type>().value(row));
        }
        DataType::Float64 => {
            buf.put_i32(8);
            buf.put_f64(col.as_primitive::<t::Float64Type>().value(row));
        }
        DataType::Utf8 => put_bytes(buf, col.as_string::<i32>().value(row).as_bytes()),
        DataType::LargeUtf8 => put_bytes(buf, col.as_string::<i64>().value(row).as_bytes()),
        DataType::Utf8View => put_bytes(buf, col.as_string_view().value(row).as_bytes()),
        DataType::Binary => put_bytes(buf, col.as_binary::<i32>().value(row)),
        DataType::LargeBinary => put_bytes(buf, col.as_binary::<i64>().value(row)),
        DataType::Date32 => {
            buf.put_i32(4);
            buf.put_i32(col.as_primitive::<t::Date32Type>().value(row) - PG_EPOCH_DAYS);
        }
        DataType::Decimal128(p, s) => {
            let v = col.as_primitive::<t::Decimal128Type>().value(row);
            let mut value = BytesMut::new();
            datafusion_postgres::arrow_pg::pg_text::PgNumeric::new(v, *p, *s)
                .write_binary(&mut value);
            put_bytes(buf, &value);
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            buf.put_i32(8);
            buf.put_i64(
                col.as_primitive::<t::TimestampMicrosecondType>().value(row) - PG_EPOCH_MICROS,
            );
        }
        other => {
            return Err(Error::FeatureNotSupported(format!(
                "COPY TO with FORMAT binary does not support type {other} yet"
            )));
        }
    }
    Ok(())
}

fn put_bytes(buf: &mut BytesMut, v: &[u8]) {
    buf.put_i32(v.len() as i32);
    buf.put_slice(v);
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{Field, Schema};

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int32, true),
            Field::new("name", DataType::Utf8, true),
        ]))
    }

    #[test]
    fn text_format_round_trips_nulls_and_escapes() {
        let mut d = CopyDecoder::new(CopyFormat::text(), schema()).unwrap();
        assert!(d.push(b"1\ta\\tb\n2\t\\N\n").unwrap().is_none());
        let batch = d.finish().unwrap().unwrap();
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(batch.column(1).as_string::<i32>().value(0), "a\tb");
        assert!(batch.column(1).is_null(1));
        let out = encode(&CopyFormat::text(), &batch).unwrap();
        assert_eq!(&out.buffer[..], b"1\ta\\tb\n2\t\\N\n");
        assert_eq!(out.ends, vec![7, 12]);
    }

    #[test]
    fn csv_distinguishes_null_from_empty_string() {
        let mut d = CopyDecoder::new(CopyFormat::csv(), schema()).unwrap();
        d.push(b"1,\"\"\n2,\n3,\"x,\"\"y\"\"\"\n").unwrap();
        let batch = d.finish().unwrap().unwrap();
        let names = batch.column(1).as_string::<i32>();
        assert_eq!(names.value(0), "");
        assert!(names.is_null(1));
        assert_eq!(names.value(2), "x,\"y\"");
    }

    #[test]
    fn bad_numbers_are_data_errors() {
        let mut d = CopyDecoder::new(CopyFormat::text(), schema()).unwrap();
        d.push(b"x\ty\n").unwrap();
        assert!(matches!(d.finish(), Err(Error::InvalidText(_))));
    }
}
