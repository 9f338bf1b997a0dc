//! `streamlake.late_events`: every event a windowed view did not add
//! because the window it belongs to had closed (SQL.md §5), as an
//! append-only Iceberg table.
//!
//! Operators hand late events over at once through a [`LateSink`] (the
//! view's name and source filled in by the sink); they are buffered and
//! committed with each checkpoint and FLUSH, like view dead letters. A
//! view over a source rebuilds by replay after a restart and records its
//! late events again (until the exactly-once work checkpoints operator
//! state).

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Int32Builder, Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use iceberg::spec::{NestedField, PrimitiveType, Schema, Type};

use crate::error::Result;
use crate::storage::table::LakeTable;

/// One late event, as an operator sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct LateEvent {
    /// The event's time (microseconds), when the operator knows it.
    pub event_time: Option<i64>,
    /// The watermark the event was below (microseconds).
    pub watermark: i64,
    pub window_start: Option<i64>,
    pub window_end: Option<i64>,
    /// The row as the operator saw it, as a JSON object.
    pub row: String,
}

/// Takes an operator's late events at once (before the epoch they belong
/// to completes, so the checkpoint that ends it commits them).
pub type LateSink = Arc<dyn Fn(LateEvent) + Send + Sync>;

/// A late event with the names the operator does not know.
struct Recorded {
    view: String,
    source: Option<String>,
    event: LateEvent,
    received_at: i64,
}

/// The Iceberg schema of SQL.md §5 (`row` is JSON text).
pub fn schema() -> Result<Schema> {
    let f = |id, name: &str, t| NestedField::optional(id, name, Type::Primitive(t)).into();
    Ok(Schema::builder()
        .with_fields(vec![
            f(1, "view", PrimitiveType::String),
            f(2, "source", PrimitiveType::String),
            f(3, "partition", PrimitiveType::Int),
            f(4, "offset", PrimitiveType::Long),
            f(5, "event_time", PrimitiveType::Timestamptz),
            f(6, "watermark", PrimitiveType::Timestamptz),
            f(7, "window_start", PrimitiveType::Timestamptz),
            f(8, "window_end", PrimitiveType::Timestamptz),
            f(9, "row", PrimitiveType::String),
            f(10, "received_at", PrimitiveType::Timestamptz),
        ])
        .build()?)
}

pub struct LateEvents {
    table: LakeTable,
    buffer: std::sync::Mutex<Vec<Recorded>>,
    /// One commit at a time.
    commit: tokio::sync::Mutex<()>,
}

impl LateEvents {
    pub fn new(table: LakeTable) -> LateEvents {
        LateEvents {
            table,
            buffer: std::sync::Mutex::new(Vec::new()),
            commit: tokio::sync::Mutex::new(()),
        }
    }

    pub fn table(&self) -> &LakeTable {
        &self.table
    }

    /// A sink for the operators of `view` (reading `source`, if it reads
    /// one directly).
    pub fn sink(self: &Arc<Self>, view: &str, source: Option<String>) -> LateSink {
        let (me, view) = (self.clone(), view.to_string());
        Arc::new(move |event: LateEvent| {
            tracing::debug!(view = %view, ?event, "late event");
            me.buffer.lock().expect("late events lock").push(Recorded {
                view: view.clone(),
                source: source.clone(),
                event,
                received_at: chrono::Utc::now().timestamp_micros(),
            });
        })
    }

    /// Commits the buffered events (nothing if there are none).
    pub async fn commit(&self) -> Result<()> {
        let _one = self.commit.lock().await;
        let taken = std::mem::take(&mut *self.buffer.lock().expect("late events lock"));
        if taken.is_empty() {
            return Ok(());
        }
        let result = async {
            let batch = to_batch(&self.table, &taken)?;
            let mut writer = self.table.stage().await?;
            writer.write(batch).await?;
            let files = writer.finish().await?;
            self.table
                .commit_staged(files, std::collections::HashMap::new())
                .await
        }
        .await;
        if let Err(e) = result {
            // Keep them for the next try, in order.
            let mut buffer = self.buffer.lock().expect("late events lock");
            let newer = std::mem::replace(&mut *buffer, taken);
            buffer.extend(newer);
            return Err(e);
        }
        Ok(())
    }
}

fn to_batch(table: &LakeTable, events: &[Recorded]) -> Result<RecordBatch> {
    let n = events.len();
    let ts = || TimestampMicrosecondBuilder::with_capacity(n).with_timezone("+00:00");
    let mut view = StringBuilder::new();
    let mut source = StringBuilder::new();
    let mut partition = Int32Builder::with_capacity(n);
    let mut offset = Int64Builder::with_capacity(n);
    let (mut event_time, mut watermark, mut start, mut end, mut received) =
        (ts(), ts(), ts(), ts(), ts());
    let mut row = StringBuilder::new();
    for r in events {
        view.append_value(&r.view);
        source.append_option(r.source.as_deref());
        partition.append_null();
        offset.append_null();
        event_time.append_option(r.event.event_time);
        watermark.append_value(r.event.watermark);
        start.append_option(r.event.window_start);
        end.append_option(r.event.window_end);
        row.append_value(&r.event.row);
        received.append_value(r.received_at);
    }
    let schema = table.arrow_schema();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(view.finish()),
        Arc::new(source.finish()),
        Arc::new(partition.finish()),
        Arc::new(offset.finish()),
        Arc::new(event_time.finish()),
        Arc::new(watermark.finish()),
        Arc::new(start.finish()),
        Arc::new(end.finish()),
        Arc::new(row.finish()),
        Arc::new(received.finish()),
    ];
    let columns = columns
        .into_iter()
        .zip(schema.fields())
        .map(|(c, f)| datafusion::arrow::compute::cast(&c, f.data_type()))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// One row of a batch as a JSON object of its values' text (the form
/// dead letters use for view rows).
pub fn row_json(batch: &RecordBatch, row: usize) -> String {
    use datafusion::arrow::array::Array;
    use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
    let opts = FormatOptions::default();
    let mut obj = serde_json::Map::new();
    for (field, col) in batch.schema().fields().iter().zip(batch.columns()) {
        let v = if col.is_null(row) {
            serde_json::Value::Null
        } else {
            match ArrayFormatter::try_new(col.as_ref(), &opts) {
                Ok(f) => serde_json::Value::String(f.value(row).to_string()),
                Err(_) => serde_json::Value::Null,
            }
        };
        obj.insert(field.name().clone(), v);
    }
    serde_json::Value::Object(obj).to_string()
}
