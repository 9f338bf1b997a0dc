//! Bounded reads of a topic: from given offsets up to given ones, as a
//! stream of batches. A view's backfill from a source's start (up to where
//! the shared reader was when the view joined it) and `SELECT … FROM
//! a_source` (up to the high watermarks at query time) are both this.
//! Records that do not decode are left out and written nowhere: the
//! source's own reader records them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::RecordBatch;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc;

use crate::connector::kafka::SourceSpec;
use crate::connector::kafka::assemble::Assembler;
use crate::connector::kafka::reader::BATCH_ROWS;
use crate::error::{Error, Result};

/// How long a bounded read waits for a broker that does not answer.
const STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// A read with no record for this long starts over with a new client.
const RECONNECT_AFTER: Duration = Duration::from_secs(5);
const MAX_RECONNECTS: usize = 5;

/// Reads `[from[p], to[p])` of every partition in `to` (a partition
/// missing from `from` starts at 0). The receiver gets batches until the
/// range is read; dropping it stops the read.
pub fn read_range(
    spec: Arc<SourceSpec>,
    from: BTreeMap<i32, i64>,
    to: BTreeMap<i32, i64>,
) -> mpsc::Receiver<Result<RecordBatch>> {
    let (tx, rx) = mpsc::channel(4);
    let name = format!("kafka-read-{}", spec.name);
    let spawned = std::thread::Builder::new().name(name).spawn(move || {
        if let Err(e) = read(&spec, &from, &to, &tx) {
            let _ = tx.blocking_send(Err(e));
        }
    });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "could not start a bounded Kafka read");
    }
    rx
}

fn read(
    spec: &SourceSpec,
    from: &BTreeMap<i32, i64>,
    to: &BTreeMap<i32, i64>,
    tx: &mpsc::Sender<Result<RecordBatch>>,
) -> Result<()> {
    let topic = &spec.options.topic;
    let mut remaining: BTreeMap<i32, i64> = to
        .iter()
        .filter(|(p, end)| from.get(p).copied().unwrap_or(0) < **end)
        .map(|(p, end)| (*p, *end))
        .collect();
    if remaining.is_empty() {
        return Ok(());
    }
    // Next offset to read per partition: a consumer that stalls is
    // replaced by a new one starting there.
    let mut next: BTreeMap<i32, i64> = remaining
        .keys()
        .map(|p| (*p, from.get(p).copied().unwrap_or(0)))
        .collect();
    let connect = |next: &BTreeMap<i32, i64>,
                   remaining: &BTreeMap<i32, i64>|
     -> Result<BaseConsumer> {
        let mut config = spec
            .options
            .consumer_config(&format!("{}-read", spec.group()));
        config.set("enable.partition.eof", "true");
        if let Ok(d) = std::env::var("STREAMLAKE_KAFKA_DEBUG") {
            config.set("debug", &d);
        }
        let consumer: BaseConsumer = config.create().map_err(|e| Error::Kafka(e.to_string()))?;
        let mut tpl = TopicPartitionList::new();
        for p in remaining.keys() {
            tpl.add_partition_offset(topic, *p, Offset::Offset(next[p]))
                .map_err(|e| Error::Kafka(e.to_string()))?;
        }
        consumer
            .assign(&tpl)
            .map_err(|e| Error::Kafka(e.to_string()))?;
        Ok(consumer)
    };
    let mut consumer = connect(&next, &remaining)?;
    let mut reconnects = 0;
    let mut assembler = Assembler::new(
        spec.schema.clone(),
        spec.payload,
        &spec.includes,
        spec.encoding,
    )?;
    let mut last_progress = Instant::now();
    while !remaining.is_empty() {
        if tx.is_closed() {
            return Ok(());
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {
                if assembler.rows() > 0 && tx.blocking_send(assembler.finish()).is_err() {
                    return Ok(());
                }
                if last_progress.elapsed() > RECONNECT_AFTER && reconnects < MAX_RECONNECTS {
                    // Seen with a test broker: a fresh consumer that never
                    // gets its first fetch answered. A new client does.
                    tracing::info!(source = %spec.name, ?next, "bounded read stalled; reconnecting");
                    reconnects += 1;
                    consumer = connect(&next, &remaining)?;
                    last_progress = Instant::now();
                    continue;
                }
                if last_progress.elapsed() > STALL_TIMEOUT {
                    let at = consumer
                        .position()
                        .map(|l| l.to_topic_map())
                        .unwrap_or_default();
                    return Err(Error::Kafka(format!(
                        "reading topic \"{topic}\" made no progress for {} s (left to read, partition: end offset: {remaining:?}; positions: {at:?})",
                        STALL_TIMEOUT.as_secs()
                    )));
                }
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                // The log ends before the bound (records deleted or the
                // bound was the high watermark of aborted data): done.
                let pos = consumer
                    .position()
                    .ok()
                    .and_then(|l| l.find_partition(topic, p).and_then(|e| e.offset().to_raw()));
                if let Some(pos) = pos
                    && remaining.get(&p).is_some_and(|end| pos >= *end)
                {
                    remaining.remove(&p);
                }
            }
            Some(Err(e)) => {
                tracing::debug!(error = %e, "bounded read: broker error; retrying");
            }
            Some(Ok(msg)) => {
                last_progress = Instant::now();
                let (p, off) = (msg.partition(), msg.offset());
                let Some(end) = remaining.get(&p).copied() else {
                    continue;
                };
                if off < next.get(&p).copied().unwrap_or(0) {
                    // Already read before a reconnect.
                    continue;
                }
                if off < end {
                    // Bad records are the reader's to record, not this read's.
                    let _ = assembler.push(&msg);
                }
                next.insert(p, off + 1);
                if off + 1 >= end {
                    remaining.remove(&p);
                }
                if assembler.rows() >= BATCH_ROWS && tx.blocking_send(assembler.finish()).is_err() {
                    return Ok(());
                }
            }
        }
    }
    if assembler.rows() > 0 {
        let _ = tx.blocking_send(assembler.finish());
    }
    Ok(())
}
