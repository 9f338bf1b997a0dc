//! The reader of one topic: a thread that polls its partitions from
//! positions streamlake owns (`assign()`, never `subscribe()`), decodes
//! records into batches and hands each batch — with the next offset of
//! every partition and the records that did not decode — to its sink.
//!
//! ```text
//!   broker ─▶ BaseConsumer::poll ─▶ Assembler (payload + INCLUDE columns) ─▶ Delivery ─▶ sink
//!                                     │ bad record                           (batch, next offsets,
//!                                     ▼                                       dead letters)
//!                                  DeadLetter (+ dlq.topic)
//! ```
//!
//! The sink decides what a delivery means (a source feeds its views, a
//! connector table stages files); it blocks the thread while it is busy,
//! so a slow pipeline leaves records in the broker (librdkafka's queue is
//! capped) and memory stays flat. Partitions added to the topic while
//! running are found by a metadata refresh and start at their earliest
//! offset. A broker that goes away makes polls fail: the reader logs each
//! change of state, keeps its positions and resumes where it was.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

use crate::connector::kafka::SourceSpec;
use crate::connector::kafka::assemble::Assembler;
use crate::connector::kafka::options::OnError;
use crate::connector::watermark::WatermarkTracker;
use crate::error::{Error, Result};

/// Rows per delivered batch at most.
pub const BATCH_ROWS: usize = 8192;
/// A batch that started filling this long ago is delivered even if small,
/// so a trickle of records still reaches the views promptly.
const BATCH_LINGER: Duration = Duration::from_millis(50);
/// How often new partitions are looked for.
const METADATA_REFRESH: Duration = Duration::from_secs(5);

/// One record that did not become a row.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub source: String,
    pub topic: String,
    /// Where the record was (None for a row a view left out).
    pub partition: Option<i32>,
    pub offset: Option<i64>,
    /// Milliseconds since the Unix epoch.
    pub kafka_timestamp: Option<i64>,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub error: String,
    /// The view whose evaluation failed (NULL for decoding errors).
    pub view: Option<String>,
    /// Microseconds since the Unix epoch.
    pub received_at: i64,
}

/// What the reader hands its sink: rows, positions after them, and the
/// dead letters among them.
#[derive(Debug, Default)]
pub struct Delivery {
    pub batch: Option<RecordBatch>,
    /// Next offset to read, per partition, after this delivery.
    pub next: BTreeMap<i32, i64>,
    pub dead: Vec<DeadLetter>,
    /// Every partition that had records in this delivery, with the largest
    /// event time among its rows (None: no WATERMARK FOR, all NULL, or no
    /// row). The sink hands them to the status's
    /// [`WatermarkTracker`] *after* the rows are in its feeds, so a
    /// watermark never overtakes the rows it was computed from.
    pub events: Vec<(i32, Option<i64>)>,
}

#[async_trait]
pub trait ReaderSink: Send + Sync + 'static {
    /// Whether anyone wants records now (a source nobody reads does not
    /// consume).
    fn active(&self) -> bool;
    /// Takes a delivery; returning is the sink's acknowledgment.
    async fn deliver(&self, delivery: Delivery);
}

/// A partition as `streamlake.source_partitions` shows it.
#[derive(Debug, Clone, Default)]
pub struct PartitionStatus {
    /// Next offset to read (everything before it is delivered).
    pub position: i64,
    pub high_watermark: Option<i64>,
    pub state: &'static str,
    pub last_error: Option<String>,
}

/// Shared view of a running reader.
#[derive(Debug)]
pub struct ReaderStatus {
    pub partitions: Mutex<BTreeMap<i32, PartitionStatus>>,
    /// A reader-wide failure (on_error = 'fail', a recreated topic).
    pub failed: Mutex<Option<String>>,
    /// Offsets committed durably (a connector table's checkpoint); None
    /// for a source, whose position is what its views have.
    pub committed: Mutex<Option<BTreeMap<i32, i64>>>,
    /// Event time and idleness per partition (lock after `partitions`,
    /// never while holding it).
    pub watermark: Mutex<WatermarkTracker>,
}

impl ReaderStatus {
    pub fn new(spec: &SourceSpec) -> ReaderStatus {
        ReaderStatus {
            partitions: Mutex::default(),
            failed: Mutex::default(),
            committed: Mutex::default(),
            watermark: Mutex::new(WatermarkTracker::new(
                &spec.name,
                spec.watermark.as_ref().map(|w| w.delay_us),
                spec.options.idle_timeout,
            )),
        }
    }

    /// Tells the tracker which partitions are caught up: reading (the
    /// broker answers) with the position at the high watermark.
    pub fn sync_caught_up(&self, now: Instant) {
        let caught_up: Vec<(i32, bool)> = self
            .partitions
            .lock()
            .expect("status lock")
            .iter()
            .map(|(p, s)| {
                (
                    *p,
                    s.state == "reading" && s.high_watermark.is_some_and(|h| s.position >= h),
                )
            })
            .collect();
        let mut tracker = self.watermark.lock().expect("watermark lock");
        for (p, c) in caught_up {
            tracker.set_caught_up(p, c);
        }
        tracker.refresh(now);
    }

    /// Takes a delivery's event times (call once its rows are in the feeds).
    pub fn observe(&self, events: &[(i32, Option<i64>)], now: Instant) {
        if events.is_empty() {
            return;
        }
        let mut tracker = self.watermark.lock().expect("watermark lock");
        for (p, max) in events {
            tracker.observe(*p, *max, now);
        }
    }

    pub fn positions(&self) -> BTreeMap<i32, i64> {
        self.partitions
            .lock()
            .expect("status lock")
            .iter()
            .map(|(p, s)| (*p, s.position))
            .collect()
    }
}

/// A running reader; dropping it does not stop it, [`ReaderHandle::stop`] does.
pub struct ReaderHandle {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub status: Arc<ReaderStatus>,
    pub consumer: Arc<BaseConsumer>,
}

impl ReaderHandle {
    /// Stops the thread and waits for it (blocking: call from
    /// `spawn_blocking`). No delivery starts after this returns.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts reading `spec`'s topic at `positions` (per partition; partitions
/// found later start at their earliest offset), reporting into `status`
/// (made by [`ReaderStatus::new`], shared with the sink).
pub fn start(
    spec: Arc<SourceSpec>,
    group: &str,
    positions: BTreeMap<i32, i64>,
    sink: Arc<dyn ReaderSink>,
    status: Arc<ReaderStatus>,
) -> Result<ReaderHandle> {
    let consumer: BaseConsumer = spec
        .options
        .consumer_config(group)
        .create()
        .map_err(|e| Error::Kafka(e.to_string()))?;
    let consumer = Arc::new(consumer);
    // Metadata, watermarks and group commits go through a second client:
    // a broker may answer a connection's requests in order, and a
    // metadata request queued behind fetches must not stall either.
    let admin: BaseConsumer = spec
        .options
        .consumer_config(group)
        .create()
        .map_err(|e| Error::Kafka(e.to_string()))?;
    let admin = Arc::new(admin);
    {
        let mut tracker = status.watermark.lock().expect("watermark lock");
        for p in positions.keys() {
            tracker.add_partition(*p);
        }
        drop(tracker);
        let mut parts = status.partitions.lock().expect("status lock");
        for (p, o) in &positions {
            parts.insert(
                *p,
                PartitionStatus {
                    position: *o,
                    state: "reading",
                    ..Default::default()
                },
            );
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let dlq = match &spec.options.dlq_topic {
        Some(_) => Some(
            spec.options
                .producer_config()
                .create::<ThreadedProducer<DefaultProducerContext>>()
                .map_err(|e| Error::Kafka(e.to_string()))?,
        ),
        None => None,
    };
    let runtime = tokio::runtime::Handle::current();
    let discovered = Arc::new(Mutex::new(Discovered::default()));
    {
        let (admin, stop, discovered, topic, name) = (
            admin.clone(),
            stop.clone(),
            discovered.clone(),
            spec.options.topic.clone(),
            spec.name.clone(),
        );
        std::thread::Builder::new()
            .name(format!("kafka-meta-{}", spec.name))
            .spawn(move || discover_loop(&admin, &topic, &name, &stop, &discovered))
            .map_err(Error::Io)?;
    }
    let thread = {
        let (consumer, status, stop) = (consumer.clone(), status.clone(), stop.clone());
        std::thread::Builder::new()
            .name(format!("kafka-{}", spec.name))
            .spawn(move || {
                let mut r = Reader {
                    assembler: match Assembler::new(
                        spec.schema.clone(),
                        spec.payload,
                        &spec.includes,
                        spec.encoding,
                    ) {
                        Ok(a) => a,
                        Err(e) => {
                            *status.failed.lock().expect("status lock") = Some(e.to_string());
                            return;
                        }
                    },
                    spec,
                    consumer,
                    status,
                    positions,
                    sink,
                    dlq,
                    dead: Vec::new(),
                    discovered,
                    dirty: false,
                    first_pending: None,
                    runs: Vec::new(),
                    runtime,
                };
                r.run(&stop);
            })
            .map_err(Error::Io)?
    };
    Ok(ReaderHandle {
        stop,
        thread: Some(thread),
        status,
        consumer: admin,
    })
}

/// What the metadata thread found: every partition of the topic with its
/// earliest offset, or the error of the last attempt.
#[derive(Default)]
struct Discovered {
    partitions: BTreeMap<i32, i64>,
    error: Option<String>,
    /// Set once a complete answer came.
    ready: bool,
}

/// Looks for partitions every [`METADATA_REFRESH`] (the first time at once).
fn discover_loop(
    admin: &BaseConsumer,
    topic: &str,
    name: &str,
    stop: &AtomicBool,
    discovered: &Mutex<Discovered>,
) {
    let mut last: Option<Instant> = None;
    while !stop.load(Ordering::SeqCst) {
        if last.is_some_and(|t| t.elapsed() < METADATA_REFRESH) {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        last = Some(Instant::now());
        let known: Vec<i32> = discovered
            .lock()
            .expect("discovered lock")
            .partitions
            .keys()
            .copied()
            .collect();
        let found = (|| -> Result<BTreeMap<i32, i64>> {
            let md = admin
                .fetch_metadata(Some(topic), Duration::from_secs(10))
                .map_err(|e| Error::Kafka(e.to_string()))?;
            let t = md
                .topics()
                .iter()
                .find(|t| t.name() == topic)
                .ok_or_else(|| Error::Kafka(format!("topic \"{topic}\" not found")))?;
            if let Some(e) = t.error() {
                return Err(Error::Kafka(format!("topic \"{topic}\": {e:?}")));
            }
            let mut out = BTreeMap::new();
            for part in t.partitions() {
                let p = part.id();
                if known.contains(&p) {
                    continue;
                }
                let (low, _) = admin
                    .fetch_watermarks(topic, p, Duration::from_secs(10))
                    .map_err(|e| Error::Kafka(e.to_string()))?;
                out.insert(p, low);
            }
            if t.partitions().len() < known.len() {
                return Err(Error::Kafka(format!(
                    "topic \"{topic}\" has {} partitions, fewer than the {} being read: it was recreated",
                    t.partitions().len(),
                    known.len()
                )));
            }
            Ok(out)
        })();
        let mut d = discovered.lock().expect("discovered lock");
        match found {
            Ok(new) => {
                d.partitions.extend(new);
                d.error = None;
                d.ready = true;
            }
            Err(e) => {
                tracing::debug!(source = %name, error = %e, "metadata refresh failed");
                d.error = Some(e.to_string());
            }
        }
    }
}

struct Reader {
    spec: Arc<SourceSpec>,
    consumer: Arc<BaseConsumer>,
    status: Arc<ReaderStatus>,
    positions: BTreeMap<i32, i64>,
    sink: Arc<dyn ReaderSink>,
    assembler: Assembler,
    dlq: Option<ThreadedProducer<DefaultProducerContext>>,
    dead: Vec<DeadLetter>,
    discovered: Arc<Mutex<Discovered>>,
    /// Positions moved since the last delivery.
    dirty: bool,
    first_pending: Option<Instant>,
    /// The pending records by partition, in arrival order: (partition,
    /// first row of the run in the assembler). librdkafka hands out
    /// records a fetch response at a time, so runs are long and the event
    /// times of a partition are found by Arrow kernels over slices of the
    /// batch, with one comparison per record here.
    runs: Vec<(i32, usize)>,
    runtime: tokio::runtime::Handle,
}

impl Reader {
    fn run(&mut self, stop: &AtomicBool) {
        let topic = self.spec.options.topic.clone();
        let mut assigned = false;
        let mut last_refresh: Option<Instant> = None;
        let mut broker_error: Option<String> = None;
        let mut last_status = Instant::now();
        while !stop.load(Ordering::SeqCst) {
            // One clock read per record for every timer below: reading it
            // once per check cost a tenth of the reader's CPU.
            let now = Instant::now();
            if self.status.failed.lock().expect("status lock").is_some() {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            if !self.sink.active() {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            if last_refresh.is_none_or(|t| now - t >= Duration::from_millis(100)) {
                last_refresh = Some(now);
                match self.discover() {
                    Ok(changed) => {
                        if changed || !assigned {
                            if let Err(e) = self.assign(&topic) {
                                tracing::warn!(source = %self.spec.name, error = %e, "assign failed; retrying");
                                continue;
                            }
                            assigned = true;
                        }
                    }
                    Err(e) => {
                        self.note_broker_error(&mut broker_error, e.to_string());
                        if !assigned {
                            std::thread::sleep(Duration::from_millis(100));
                            continue;
                        }
                    }
                }
            }
            if now - last_status >= Duration::from_millis(500) {
                last_status = now;
                self.refresh_high_watermarks(&topic);
            }
            match self.consumer.poll(Duration::from_millis(20)) {
                None => {
                    if self.pending() {
                        self.deliver();
                    }
                }
                Some(Err(e)) => {
                    self.note_broker_error(&mut broker_error, e.to_string());
                    if self.pending() {
                        self.deliver();
                    }
                }
                Some(Ok(msg)) => {
                    if broker_error.take().is_some() {
                        tracing::info!(source = %self.spec.name, "broker reachable again; reading");
                        self.set_state_all("reading", None);
                    }
                    let (p, off) = (msg.partition(), msg.offset());
                    if self.positions.get(&p).is_some_and(|&pos| off < pos) {
                        // Already delivered (a re-assign can refetch).
                        continue;
                    }
                    if self.first_pending.is_none() {
                        self.first_pending = Some(now);
                    }
                    if self.runs.last().is_none_or(|r| r.0 != p) {
                        self.runs.push((p, self.assembler.rows()));
                    }
                    match self.assembler.push(&msg) {
                        Ok(_) => {}
                        Err(e) => {
                            let letter = DeadLetter {
                                source: self.spec.name.clone(),
                                topic: topic.clone(),
                                partition: Some(p),
                                offset: Some(off),
                                kafka_timestamp: msg.timestamp().to_millis(),
                                key: msg.key().map(<[u8]>::to_vec),
                                payload: msg.payload().map(<[u8]>::to_vec),
                                error: e.to_string(),
                                view: None,
                                received_at: chrono::Utc::now().timestamp_micros(),
                            };
                            match self.spec.options.on_error {
                                OnError::DeadLetter => {
                                    self.publish_dlq(&letter);
                                    self.dead.push(letter);
                                }
                                OnError::Skip => {
                                    tracing::debug!(source = %self.spec.name, partition = p, offset = off, error = %letter.error, "skipped a record that does not decode");
                                }
                                OnError::Fail => {
                                    // Everything before it is delivered; the
                                    // reader stops at this record.
                                    self.deliver();
                                    let why = format!(
                                        "record at partition {p} offset {off} does not decode: {}",
                                        letter.error
                                    );
                                    tracing::error!(source = %self.spec.name, error = %why, "source stopped (on_error = 'fail')");
                                    if let Some(s) = self
                                        .status
                                        .partitions
                                        .lock()
                                        .expect("status lock")
                                        .get_mut(&p)
                                    {
                                        s.state = "error";
                                        s.last_error = Some(why.clone());
                                    }
                                    *self.status.failed.lock().expect("status lock") = Some(why);
                                    continue;
                                }
                            }
                        }
                    }
                    self.positions.insert(p, off + 1);
                    self.dirty = true;
                    if self.assembler.rows() >= BATCH_ROWS
                        || self
                            .first_pending
                            .is_some_and(|t| now.saturating_duration_since(t) >= BATCH_LINGER)
                    {
                        self.deliver();
                    }
                }
            }
        }
        if self.pending() {
            self.deliver();
        }
    }

    fn pending(&self) -> bool {
        self.dirty || self.assembler.rows() > 0 || !self.dead.is_empty()
    }

    fn deliver(&mut self) {
        let batch = if self.assembler.rows() > 0 {
            match self.assembler.finish() {
                Ok(b) => Some(b),
                Err(e) => {
                    // Not expected: the decoder produced a batch it cannot
                    // shape. Stop rather than lose rows silently.
                    tracing::error!(source = %self.spec.name, error = %e, "could not assemble a batch; reader stops");
                    *self.status.failed.lock().expect("status lock") = Some(e.to_string());
                    return;
                }
            }
        } else {
            None
        };
        let events = self.event_times(batch.as_ref());
        let delivery = Delivery {
            batch,
            next: self.positions.clone(),
            dead: std::mem::take(&mut self.dead),
            events,
        };
        self.runtime.block_on(self.sink.deliver(delivery));
        let mut parts = self.status.partitions.lock().expect("status lock");
        for (p, o) in &self.positions {
            parts.entry(*p).or_default().position = *o;
        }
        drop(parts);
        self.status.sync_caught_up(Instant::now());
        self.dirty = false;
        self.first_pending = None;
    }

    /// The partitions of the pending records with the largest event time
    /// of each (Arrow's `max` over each run's slice of the batch).
    fn event_times(&mut self, batch: Option<&RecordBatch>) -> Vec<(i32, Option<i64>)> {
        let rows = batch.map_or(0, RecordBatch::num_rows);
        let runs = std::mem::take(&mut self.runs);
        let mut out: Vec<(i32, Option<i64>)> = Vec::new();
        for (i, (p, start)) in runs.iter().enumerate() {
            let end = runs.get(i + 1).map_or(rows, |r| r.1).min(rows);
            let max = match (&self.spec.watermark, batch) {
                (Some(w), Some(b)) if end > *start => w.max_event_time(b, *start, end - start),
                _ => None,
            };
            match out.iter_mut().find(|(q, _)| q == p) {
                Some((_, m)) => *m = (*m).max(max),
                None => out.push((*p, max)),
            }
        }
        out
    }

    /// Takes what the metadata thread found; true if new partitions were
    /// added to the positions. Before its first answer, the positions
    /// given at start are all there is (Err only if it has failed).
    fn discover(&mut self) -> Result<bool> {
        let d = self.discovered.lock().expect("discovered lock");
        if let Some(why) = d.error.as_ref().filter(|w| w.contains("recreated")) {
            let why = why.clone();
            drop(d);
            tracing::error!(source = %self.spec.name, "{why}");
            *self.status.failed.lock().expect("status lock") = Some(why);
            return Ok(false);
        }
        if !d.ready {
            return match &d.error {
                Some(e) if self.positions.is_empty() => Err(Error::Kafka(e.clone())),
                _ => Ok(false),
            };
        }
        let new: Vec<(i32, i64)> = d
            .partitions
            .iter()
            .filter(|(p, _)| !self.positions.contains_key(p))
            .map(|(p, o)| (*p, *o))
            .collect();
        drop(d);
        for (p, low) in &new {
            tracing::info!(source = %self.spec.name, partition = p, offset = low, "new partition; reading from its earliest offset");
            self.positions.insert(*p, *low);
            self.status
                .watermark
                .lock()
                .expect("watermark lock")
                .add_partition(*p);
            self.status.partitions.lock().expect("status lock").insert(
                *p,
                PartitionStatus {
                    position: *low,
                    state: "reading",
                    ..Default::default()
                },
            );
        }
        Ok(!new.is_empty())
    }

    fn assign(&self, topic: &str) -> Result<()> {
        let mut tpl = TopicPartitionList::new();
        for (p, o) in &self.positions {
            tpl.add_partition_offset(topic, *p, Offset::Offset(*o))
                .map_err(|e| Error::Kafka(e.to_string()))?;
        }
        self.consumer
            .assign(&tpl)
            .map_err(|e| Error::Kafka(e.to_string()))
    }

    /// High watermarks from the consumer's cache (no broker round trip).
    /// Also re-evaluates which partitions are caught up and idle.
    fn refresh_high_watermarks(&self, topic: &str) {
        let mut parts = self.status.partitions.lock().expect("status lock");
        for (p, s) in parts.iter_mut() {
            if let Some(high) = cached_high_watermark(&self.consumer, topic, *p) {
                // The cache lags the fetches: never below what was read.
                let read = self.positions.get(p).copied().unwrap_or(0);
                s.high_watermark = Some(high.max(read));
            }
        }
        drop(parts);
        self.status.sync_caught_up(Instant::now());
    }

    fn note_broker_error(&self, last: &mut Option<String>, error: String) {
        if last.as_deref() != Some(error.as_str()) {
            tracing::warn!(source = %self.spec.name, error = %error, "broker error; waiting and retrying");
            self.set_state_all("waiting", Some(error.clone()));
            *last = Some(error);
        }
    }

    fn set_state_all(&self, state: &'static str, error: Option<String>) {
        let mut parts = self.status.partitions.lock().expect("status lock");
        for s in parts.values_mut() {
            if s.state != "error" {
                s.state = state;
                if error.is_some() {
                    s.last_error = error.clone();
                }
            }
        }
    }

    /// Also publishes a dead letter to `dlq.topic`, with headers naming the
    /// source, where it came from and the error.
    fn publish_dlq(&self, letter: &DeadLetter) {
        let (Some(producer), Some(topic)) = (&self.dlq, &self.spec.options.dlq_topic) else {
            return;
        };
        let partition = letter.partition.map(|p| p.to_string()).unwrap_or_default();
        let offset = letter.offset.map(|o| o.to_string()).unwrap_or_default();
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "streamlake.source",
                value: Some(letter.source.as_bytes()),
            })
            .insert(Header {
                key: "streamlake.topic",
                value: Some(letter.topic.as_bytes()),
            })
            .insert(Header {
                key: "streamlake.partition",
                value: Some(partition.as_bytes()),
            })
            .insert(Header {
                key: "streamlake.offset",
                value: Some(offset.as_bytes()),
            })
            .insert(Header {
                key: "streamlake.error",
                value: Some(letter.error.as_bytes()),
            });
        let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).headers(headers);
        if let Some(k) = &letter.key {
            record = record.key(k.as_slice());
        }
        if let Some(p) = &letter.payload {
            record = record.payload(p.as_slice());
        }
        if let Err((e, _)) = producer.send(record) {
            tracing::warn!(source = %self.spec.name, topic = %topic, error = %e, "could not publish a dead letter to the DLQ topic (it is in streamlake.dead_letters)");
        }
    }
}

/// The high watermark librdkafka last saw in a fetch response for the
/// partition, without a broker round trip (rdkafka 0.39 does not wrap
/// `rd_kafka_get_watermark_offsets`).
fn cached_high_watermark(consumer: &BaseConsumer, topic: &str, partition: i32) -> Option<i64> {
    let topic = std::ffi::CString::new(topic).ok()?;
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: the client pointer lives as long as `consumer`; the call only
    // reads librdkafka's cached offsets into the two out-parameters.
    let err = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (err == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0)
        .then_some(high)
}
