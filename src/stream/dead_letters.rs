//! `streamlake.dead_letters`: every record a reader could not turn into a
//! row, as an append-only Iceberg table.
//!
//! Readers hand their dead letters over with each delivery; they are
//! buffered and committed at each checkpoint (and FLUSH), or sooner when
//! the buffer grows past [`BUFFER_BYTES`]. Each commit's snapshot summary
//! records, per reader and partition, the offset after the last letter it
//! holds; a reader that replays records after a restart (a source's views
//! rebuild from its start, a connector table resumes at its committed
//! offsets, which may be behind) has the letters below that offset
//! skipped, so each bad record is recorded once per reader.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    BinaryBuilder, Int32Builder, Int64Builder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};
use iceberg::spec::{NestedField, PrimitiveType, Schema, Type};
use tokio::sync::Mutex;

use crate::connector::kafka::reader::DeadLetter;
use crate::error::Result;
use crate::storage::table::{CARRIED_PREFIX, LakeTable, carried};

/// Buffered letters past this size are committed at once.
const BUFFER_BYTES: usize = 32 << 20;
/// The summary key of the per-reader positions.
fn positions_key() -> String {
    format!("{CARRIED_PREFIX}dead_letters")
}

/// Per reader, per partition: letters below this offset are recorded.
type Recorded = BTreeMap<String, BTreeMap<i32, i64>>;

/// The Iceberg schema of SQL.md §1.
pub fn schema() -> Result<Schema> {
    let f = |id, name: &str, t| NestedField::optional(id, name, Type::Primitive(t)).into();
    Ok(Schema::builder()
        .with_fields(vec![
            f(1, "source", PrimitiveType::String),
            f(2, "topic", PrimitiveType::String),
            f(3, "partition", PrimitiveType::Int),
            f(4, "offset", PrimitiveType::Long),
            f(5, "kafka_timestamp", PrimitiveType::Timestamptz),
            f(6, "key", PrimitiveType::Binary),
            f(7, "payload", PrimitiveType::Binary),
            f(8, "error", PrimitiveType::String),
            f(9, "view", PrimitiveType::String),
            f(10, "received_at", PrimitiveType::Timestamptz),
        ])
        .build()?)
}

pub struct DeadLetters {
    table: LakeTable,
    inner: Mutex<Inner>,
    /// Letters handed over synchronously (by views), taken at the next
    /// commit.
    handed: std::sync::Mutex<Vec<(String, DeadLetter)>>,
}

#[derive(Default)]
struct Inner {
    buffer: Vec<DeadLetter>,
    bytes: usize,
    /// Committed positions (as in the table's current snapshot).
    recorded: Recorded,
    /// Positions including the buffer.
    pending: Recorded,
}

impl Inner {
    /// Buffers a reader's letters, dropping those recorded already.
    fn take(&mut self, reader: &str, letters: Vec<DeadLetter>) {
        for l in letters {
            if let (Some(p), Some(o)) = (l.partition, l.offset) {
                let seen = self
                    .pending
                    .get(reader)
                    .and_then(|m| m.get(&p))
                    .is_some_and(|&next| o < next);
                if seen {
                    continue;
                }
                self.pending
                    .entry(reader.to_string())
                    .or_default()
                    .insert(p, o + 1);
            }
            self.bytes += 256
                + l.payload.as_ref().map_or(0, Vec::len)
                + l.key.as_ref().map_or(0, Vec::len)
                + l.error.len();
            self.buffer.push(l);
        }
    }
}

impl DeadLetters {
    pub fn new(table: LakeTable) -> DeadLetters {
        let recorded: Recorded = carried(&table.snapshot(), &positions_key())
            .and_then(|v| serde_json::from_str(&v).ok())
            .unwrap_or_default();
        DeadLetters {
            table,
            inner: Mutex::new(Inner {
                pending: recorded.clone(),
                recorded,
                ..Default::default()
            }),
            handed: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Takes a letter without waiting (from a view's operators); it is
    /// committed with the next checkpoint.
    pub fn add_now(&self, reader: &str, letter: DeadLetter) {
        self.handed
            .lock()
            .expect("dead letters lock")
            .push((reader.to_string(), letter));
    }

    pub fn table(&self) -> &LakeTable {
        &self.table
    }

    /// Takes a reader's letters (in offset order per partition); those a
    /// previous run recorded already are dropped.
    pub async fn add(&self, reader: &str, letters: Vec<DeadLetter>) {
        if letters.is_empty() {
            return;
        }
        let over = {
            let mut inner = self.inner.lock().await;
            inner.take(reader, letters);
            inner.bytes > BUFFER_BYTES
        };
        if over && let Err(e) = self.commit().await {
            tracing::warn!(error = %e, "could not commit dead letters; they stay buffered");
        }
    }

    /// Forgets a dropped reader's positions (its name may be reused); its
    /// letters stay, and those still buffered are committed as usual.
    pub async fn forget(&self, reader: &str) {
        self.inner.lock().await.pending.remove(reader);
    }

    /// Commits the buffered letters (nothing if there are none).
    pub async fn commit(&self) -> Result<()> {
        let mut inner = self.inner.lock().await;
        let handed = std::mem::take(&mut *self.handed.lock().expect("dead letters lock"));
        for (reader, letter) in handed {
            inner.take(&reader, vec![letter]);
        }
        if inner.buffer.is_empty() && inner.pending == inner.recorded {
            return Ok(());
        }
        let batch = to_batch(&self.table, &inner.buffer)?;
        let mut writer = self.table.stage().await?;
        writer.write(batch).await?;
        let files = writer.finish().await?;
        let positions = serde_json::to_string(&inner.pending)
            .map_err(|e| crate::error::Error::Internal(e.to_string()))?;
        self.table
            .commit_staged(
                files,
                std::collections::HashMap::from([(positions_key(), positions)]),
            )
            .await?;
        inner.buffer.clear();
        inner.bytes = 0;
        inner.recorded = inner.pending.clone();
        Ok(())
    }
}

fn to_batch(table: &LakeTable, letters: &[DeadLetter]) -> Result<RecordBatch> {
    let n = letters.len();
    let mut source = StringBuilder::with_capacity(n, n * 8);
    let mut topic = StringBuilder::with_capacity(n, n * 8);
    let mut partition = Int32Builder::with_capacity(n);
    let mut offset = Int64Builder::with_capacity(n);
    let mut ts = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("+00:00");
    let mut key = BinaryBuilder::new();
    let mut payload = BinaryBuilder::new();
    let mut error = StringBuilder::new();
    let mut view = StringBuilder::new();
    let mut received = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("+00:00");
    for l in letters {
        source.append_value(&l.source);
        topic.append_value(&l.topic);
        partition.append_option(l.partition);
        offset.append_option(l.offset);
        ts.append_option(l.kafka_timestamp.map(|ms| ms.saturating_mul(1000)));
        key.append_option(l.key.as_deref());
        payload.append_option(l.payload.as_deref());
        error.append_value(&l.error);
        view.append_option(l.view.as_deref());
        received.append_value(l.received_at);
    }
    let schema = table.arrow_schema();
    let columns: Vec<datafusion::arrow::array::ArrayRef> = vec![
        Arc::new(source.finish()),
        Arc::new(topic.finish()),
        Arc::new(partition.finish()),
        Arc::new(offset.finish()),
        Arc::new(ts.finish()),
        Arc::new(key.finish()),
        Arc::new(payload.finish()),
        Arc::new(error.finish()),
        Arc::new(view.finish()),
        Arc::new(received.finish()),
    ];
    let columns = columns
        .into_iter()
        .zip(schema.fields())
        .map(|(c, f)| datafusion::arrow::compute::cast(&c, f.data_type()))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(schema, columns)?)
}
