//! Kafka: options, the reader thread, bounded reads, and the broker
//! queries done at CREATE (does the topic exist, where does reading start).
//!
//! Start positions are resolved to concrete per-partition offsets when a
//! source is created and persisted by the catalog: a symbolic "latest"
//! resolved later would lose the records produced in between.

pub mod assemble;
pub mod bounded;
pub mod options;
pub mod reader;

use std::collections::BTreeMap;
use std::time::Duration;

use datafusion::arrow::datatypes::SchemaRef;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::connector::decode::Encoding;
use crate::connector::watermark::WatermarkSpec;
use crate::error::{Error, Result};
use crate::sql::source_ddl::IncludeKind;
use options::{KafkaOptions, StartupMode};

/// How long DDL waits for a broker before saying it cannot reach it.
pub const DDL_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything a reader needs to know about its source.
#[derive(Debug, Clone)]
pub struct SourceSpec {
    /// The source's (or connector table's) name.
    pub name: String,
    pub options: KafkaOptions,
    /// Every output column: payload columns, then `INCLUDE` columns.
    pub schema: SchemaRef,
    pub payload: usize,
    pub includes: Vec<IncludeKind>,
    pub encoding: Encoding,
    /// `WATERMARK FOR`, resolved against `schema`.
    pub watermark: Option<WatermarkSpec>,
}

impl SourceSpec {
    /// The consumer group whose offsets Kafka's lag tools read.
    pub fn group(&self) -> String {
        format!("streamlake-{}", self.name)
    }

    fn admin_consumer(&self) -> Result<BaseConsumer> {
        let mut config = self.options.consumer_config(&self.group());
        config.set("socket.timeout.ms", "5000");
        config.create().map_err(|e| Error::Kafka(e.to_string()))
    }
}

/// The topic's partitions, or a clear error within [`DDL_TIMEOUT`] when the
/// broker cannot be reached or the topic does not exist.
pub fn partitions(spec: &SourceSpec) -> Result<Vec<i32>> {
    let consumer = spec.admin_consumer()?;
    partitions_with(&consumer, &spec.options)
}

fn partitions_with(consumer: &BaseConsumer, options: &KafkaOptions) -> Result<Vec<i32>> {
    let topic = &options.topic;
    let md = consumer
        .fetch_metadata(Some(topic), DDL_TIMEOUT)
        .map_err(|e| {
            Error::Kafka(format!(
                "cannot reach the broker at {} within {} s: {e}",
                options.bootstrap,
                DDL_TIMEOUT.as_secs()
            ))
        })?;
    let t = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .ok_or_else(|| Error::Kafka(format!("topic \"{topic}\" does not exist")))?;
    if t.error().is_some() || t.partitions().is_empty() {
        return Err(Error::Kafka(format!(
            "topic \"{topic}\" does not exist on {}",
            options.bootstrap
        )));
    }
    let mut ps: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
    ps.sort_unstable();
    Ok(ps)
}

/// Resolves the startup mode to a concrete offset per partition.
pub fn resolve_start(spec: &SourceSpec) -> Result<BTreeMap<i32, i64>> {
    let consumer = spec.admin_consumer()?;
    let parts = partitions_with(&consumer, &spec.options)?;
    let topic = &spec.options.topic;
    let mut out = BTreeMap::new();
    match spec.options.startup {
        StartupMode::Earliest | StartupMode::Latest => {
            for p in parts {
                let (low, high) = consumer
                    .fetch_watermarks(topic, p, DDL_TIMEOUT)
                    .map_err(|e| Error::Kafka(e.to_string()))?;
                let o = if spec.options.startup == StartupMode::Earliest {
                    low
                } else {
                    high
                };
                out.insert(p, o);
            }
        }
        StartupMode::Timestamp(ms) => {
            let mut tpl = TopicPartitionList::new();
            for p in &parts {
                tpl.add_partition_offset(topic, *p, Offset::Offset(ms))
                    .map_err(|e| Error::Kafka(e.to_string()))?;
            }
            let found = consumer
                .offsets_for_times(tpl, DDL_TIMEOUT)
                .map_err(|e| Error::Kafka(e.to_string()))?;
            for p in parts {
                let (_low, high) = consumer
                    .fetch_watermarks(topic, p, DDL_TIMEOUT)
                    .map_err(|e| Error::Kafka(e.to_string()))?;
                let o = match found.find_partition(topic, p).map(|e| e.offset()) {
                    Some(Offset::Offset(o)) => o,
                    // No record that new: start at the end.
                    _ => high,
                };
                out.insert(p, o);
            }
        }
    }
    Ok(out)
}

/// The high watermark of every partition now (a broker round trip).
pub fn high_watermarks(consumer: &BaseConsumer, topic: &str) -> Result<BTreeMap<i32, i64>> {
    let md = consumer
        .fetch_metadata(Some(topic), DDL_TIMEOUT)
        .map_err(|e| Error::Kafka(e.to_string()))?;
    let mut out = BTreeMap::new();
    if let Some(t) = md.topics().iter().find(|t| t.name() == topic) {
        for part in t.partitions() {
            let (_low, high) = consumer
                .fetch_watermarks(topic, part.id(), DDL_TIMEOUT)
                .map_err(|e| Error::Kafka(e.to_string()))?;
            out.insert(part.id(), high);
        }
    }
    Ok(out)
}

/// Commits `offsets` as the consumer group's, for Kafka's lag tools only
/// (streamlake's own positions are the truth).
pub fn commit_group_offsets(
    consumer: &BaseConsumer,
    topic: &str,
    offsets: &BTreeMap<i32, i64>,
) -> Result<()> {
    let mut tpl = TopicPartitionList::new();
    for (p, o) in offsets {
        tpl.add_partition_offset(topic, *p, Offset::Offset(*o))
            .map_err(|e| Error::Kafka(e.to_string()))?;
    }
    if tpl.count() == 0 {
        return Ok(());
    }
    consumer
        .commit(&tpl, rdkafka::consumer::CommitMode::Async)
        .map_err(|e| Error::Kafka(e.to_string()))
}
