//! Schema `streamlake`: the system tables of SQL.md §5 that exist so far —
//! `dead_letters` (an Iceberg table) and `source_partitions` (the readers'
//! live state, read when a query is planned).

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use datafusion::arrow::array::{
    Int32Builder, Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::datasource::MemTable;
use datafusion::error::{DataFusionError, Result as DFResult};

use crate::connector::kafka::reader::ReaderStatus;
use crate::storage::table::LakeTable;

/// A reader as source_partitions lists it.
#[derive(Clone)]
pub struct ReaderEntry {
    pub topic: String,
    pub status: Arc<ReaderStatus>,
}

/// Every running reader, by source or connector-table name.
#[derive(Default)]
pub struct Readers {
    entries: RwLock<BTreeMap<String, ReaderEntry>>,
}

impl Readers {
    pub fn insert(&self, name: &str, entry: ReaderEntry) {
        self.entries
            .write()
            .expect("readers lock")
            .insert(name.to_string(), entry);
    }

    pub fn remove(&self, name: &str) {
        self.entries.write().expect("readers lock").remove(name);
    }

    fn partitions_batch(&self) -> DFResult<RecordBatch> {
        let entries = self.entries.read().expect("readers lock").clone();
        let mut source = StringBuilder::new();
        let mut topic = StringBuilder::new();
        let mut partition = Int32Builder::new();
        let mut committed = Int64Builder::new();
        let mut high = Int64Builder::new();
        let mut lag = Int64Builder::new();
        let mut watermark = TimestampMicrosecondBuilder::new().with_timezone("+00:00");
        let mut state = StringBuilder::new();
        let mut last_error = StringBuilder::new();
        for (name, e) in &entries {
            let failed = e.status.failed.lock().expect("status lock").clone();
            let durable = e.status.committed.lock().expect("status lock").clone();
            let parts = e.status.partitions.lock().expect("status lock").clone();
            // After the partitions lock, never inside it (the readers
            // take them in that order).
            let now = std::time::Instant::now();
            let times: BTreeMap<i32, (Option<i64>, bool)> = {
                let tracker = e.status.watermark.lock().expect("watermark lock");
                parts
                    .keys()
                    .map(|p| {
                        (
                            *p,
                            (
                                tracker.partition_watermark_at(*p, now),
                                tracker.is_idle(*p, now),
                            ),
                        )
                    })
                    .collect()
            };
            for (p, s) in parts {
                let (partition_watermark, idle) = times.get(&p).copied().unwrap_or_default();
                source.append_value(name);
                topic.append_value(&e.topic);
                partition.append_value(p);
                let c = durable
                    .as_ref()
                    .map_or(s.position, |d| d.get(&p).copied().unwrap_or(s.position));
                committed.append_value(c);
                high.append_option(s.high_watermark);
                lag.append_option(s.high_watermark.map(|h| (h - s.position).max(0)));
                watermark.append_option(partition_watermark);
                match &failed {
                    Some(why) => {
                        state.append_value("error");
                        last_error.append_value(why);
                    }
                    None => {
                        // Idle: caught up and quiet for watermark.idle_timeout
                        // (the tracker's rule, the one the watermark uses).
                        let idle = s.state == "reading" && idle;
                        state.append_value(if idle { "idle" } else { s.state });
                        last_error.append_option(s.last_error.as_deref());
                    }
                }
            }
        }
        Ok(RecordBatch::try_new(
            partitions_schema(),
            vec![
                Arc::new(source.finish()),
                Arc::new(topic.finish()),
                Arc::new(partition.finish()),
                Arc::new(committed.finish()),
                Arc::new(high.finish()),
                Arc::new(lag.finish()),
                Arc::new(watermark.finish()),
                Arc::new(state.finish()),
                Arc::new(last_error.finish()),
            ],
        )?)
    }
}

fn partitions_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("source", DataType::Utf8, false),
        Field::new("topic", DataType::Utf8, false),
        Field::new("partition", DataType::Int32, false),
        Field::new("committed_offset", DataType::Int64, true),
        Field::new("high_watermark", DataType::Int64, true),
        Field::new("lag", DataType::Int64, true),
        Field::new(
            "watermark",
            DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
            true,
        ),
        Field::new("state", DataType::Utf8, false),
        Field::new("last_error", DataType::Utf8, true),
    ]))
}

pub struct SystemSchema {
    pub dead_letters: LakeTable,
    pub late_events: LakeTable,
    pub readers: Arc<Readers>,
}

impl std::fmt::Debug for SystemSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SystemSchema")
    }
}

#[async_trait]
impl SchemaProvider for SystemSchema {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn table_names(&self) -> Vec<String> {
        vec![
            "dead_letters".into(),
            "late_events".into(),
            "source_partitions".into(),
        ]
    }

    async fn table(&self, name: &str) -> DFResult<Option<Arc<dyn TableProvider>>> {
        Ok(match name {
            "dead_letters" => Some(Arc::new(self.dead_letters.clone())),
            "late_events" => Some(Arc::new(self.late_events.clone())),
            "source_partitions" => {
                let batch = self.readers.partitions_batch()?;
                Some(Arc::new(MemTable::try_new(
                    batch.schema(),
                    vec![vec![batch]],
                )?))
            }
            _ => None,
        })
    }

    fn register_table(
        &self,
        name: String,
        _table: Arc<dyn TableProvider>,
    ) -> DFResult<Option<Arc<dyn TableProvider>>> {
        Err(DataFusionError::Plan(format!(
            "cannot create \"{name}\" in schema streamlake: it holds system tables"
        )))
    }

    fn table_exist(&self, name: &str) -> bool {
        matches!(name, "dead_letters" | "late_events" | "source_partitions")
    }
}
