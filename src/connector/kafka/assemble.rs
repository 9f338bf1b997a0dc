//! Records to rows: the payload through the [`RecordDecoder`], the
//! `INCLUDE` columns from the record's metadata, into one Arrow batch in the
//! declared column order (payload columns, then included ones).

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BinaryBuilder, Int32Builder, Int64Builder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use rdkafka::message::{Headers, Message};

use crate::connector::decode::{DecodeError, Encoding, RecordDecoder};
use crate::error::Result;
use crate::sql::source_ddl::IncludeKind;

/// One metadata column's builder.
enum Meta {
    Partition(Int32Builder),
    Offset(Int64Builder),
    Timestamp(TimestampMicrosecondBuilder),
    Key(BinaryBuilder),
    Headers(StringBuilder),
    Header(String, BinaryBuilder),
}

/// Builds batches of one source's rows from Kafka records.
pub struct Assembler {
    decoder: RecordDecoder,
    meta: Vec<Meta>,
    schema: SchemaRef,
}

impl Assembler {
    /// `schema`: every output column, the first `payload` of them decoded
    /// from the record's value, the rest from `includes` in order.
    pub fn new(
        schema: SchemaRef,
        payload: usize,
        includes: &[IncludeKind],
        encoding: Encoding,
    ) -> Result<Assembler> {
        let payload_schema = Arc::new(Schema::new(schema.fields()[..payload].to_vec()));
        let decoder = RecordDecoder::new(payload_schema, encoding)?;
        let meta = includes
            .iter()
            .map(|k| match k {
                IncludeKind::Partition => Meta::Partition(Int32Builder::new()),
                IncludeKind::Offset => Meta::Offset(Int64Builder::new()),
                IncludeKind::Timestamp => {
                    Meta::Timestamp(TimestampMicrosecondBuilder::new().with_timezone("+00:00"))
                }
                IncludeKind::Key => Meta::Key(BinaryBuilder::new()),
                IncludeKind::Headers => Meta::Headers(StringBuilder::new()),
                IncludeKind::Header(h) => Meta::Header(h.clone(), BinaryBuilder::new()),
            })
            .collect();
        Ok(Assembler {
            decoder,
            meta,
            schema,
        })
    }

    /// Decodes one record; on error nothing is appended.
    pub fn push<M: Message>(&mut self, msg: &M) -> std::result::Result<bool, DecodeError> {
        let payload = msg.payload().unwrap_or(&[]);
        if !self.decoder.push(payload)? {
            return Ok(false);
        }
        for m in &mut self.meta {
            match m {
                Meta::Partition(b) => b.append_value(msg.partition()),
                Meta::Offset(b) => b.append_value(msg.offset()),
                Meta::Timestamp(b) => match msg.timestamp().to_millis() {
                    Some(ms) => b.append_value(ms.saturating_mul(1000)),
                    None => b.append_null(),
                },
                Meta::Key(b) => b.append_option(msg.key()),
                Meta::Headers(b) => match msg.headers() {
                    Some(h) => {
                        let mut obj = serde_json::Map::new();
                        for header in h.iter() {
                            let v = match header.value {
                                Some(v) => match std::str::from_utf8(v) {
                                    Ok(s) => serde_json::Value::String(s.to_string()),
                                    // Not text: as PostgreSQL would print bytea.
                                    Err(_) => serde_json::Value::String(hex(v)),
                                },
                                None => serde_json::Value::Null,
                            };
                            obj.insert(header.key.to_string(), v);
                        }
                        b.append_value(serde_json::Value::Object(obj).to_string());
                    }
                    None => b.append_null(),
                },
                Meta::Header(name, b) => {
                    let v = msg.headers().and_then(|h| {
                        h.iter()
                            .filter(|x| x.key == name.as_str())
                            .last()
                            .and_then(|x| x.value)
                    });
                    b.append_option(v);
                }
            }
        }
        Ok(true)
    }

    pub fn rows(&self) -> usize {
        self.decoder.rows()
    }

    /// The rows pushed since the last call, in the output schema.
    pub fn finish(&mut self) -> Result<RecordBatch> {
        let payload = self.decoder.finish();
        let mut columns: Vec<ArrayRef> = payload.columns().to_vec();
        for m in &mut self.meta {
            columns.push(match m {
                Meta::Partition(b) => Arc::new(b.finish()),
                Meta::Offset(b) => Arc::new(b.finish()),
                Meta::Timestamp(b) => Arc::new(b.finish()),
                Meta::Key(b) => Arc::new(b.finish()),
                Meta::Headers(b) => Arc::new(b.finish()),
                Meta::Header(_, b) => Arc::new(b.finish()),
            });
        }
        let columns = columns
            .into_iter()
            .zip(self.schema.fields())
            .map(|(c, f)| {
                if c.data_type() == f.data_type() {
                    Ok(c)
                } else {
                    datafusion::arrow::compute::cast(&c, f.data_type())
                }
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

/// `\x…` as PostgreSQL prints bytea.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(2 + bytes.len() * 2);
    s.push_str("\\x");
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}
