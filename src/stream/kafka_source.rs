//! A Kafka source (`CREATE SOURCE … WITH (connector = 'kafka')`): one
//! reader of the topic shared by every view over it.
//!
//! ```text
//!   reader thread ─▶ deliver(batch, next offsets, dead letters) ─▶ every view's feed
//!                                          │                 └──▶ streamlake.dead_letters
//!   new view: backfill = bounded read [start offsets, reader's position) ─┘ then the feed
//! ```
//!
//! The source stores nothing: its start offsets (resolved at CREATE) are
//! in the catalog, and views over it rebuild at restart by reading from
//! them again. The reader only consumes while some view reads the source.
//! A view that joins later reads `[start, position)` by itself (a bounded
//! read) and then the shared feed from `position`: taken under the feed
//! lock, so the two meet exactly.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt;
use tokio::sync::{Mutex, mpsc};

use crate::connector::kafka::reader::{self, Delivery, ReaderHandle, ReaderSink, ReaderStatus};
use crate::connector::kafka::{SourceSpec, bounded, commit_group_offsets, high_watermarks};
use crate::error::{Error, Result};
use crate::stream::chunk::{Chunk, Op};
use crate::stream::dead_letters::DeadLetters;
use crate::stream::message::{Barrier, Message, Watermark};
use crate::stream::source::Source;
use crate::stream::view::Subscription;

const FEED_CAPACITY: usize = 16;

pub struct KafkaSource {
    spec: Arc<SourceSpec>,
    start: BTreeMap<i32, i64>,
    feeds: Arc<SharedFeeds>,
    reader: std::sync::Mutex<Option<ReaderHandle>>,
    status: Arc<ReaderStatus>,
}

struct SharedFeeds {
    name: String,
    status: Arc<ReaderStatus>,
    inner: Mutex<FeedState>,
    count: AtomicUsize,
    dead_letters: Arc<DeadLetters>,
}

struct FeedState {
    senders: Vec<mpsc::Sender<Message>>,
    /// Next offset per partition: everything before is in the feeds.
    positions: BTreeMap<i32, i64>,
}

impl SharedFeeds {
    async fn send(&self, state: &mut FeedState, message: Message) {
        let mut open = Vec::with_capacity(state.senders.len());
        for feed in state.senders.drain(..) {
            if feed.send(message.clone()).await.is_ok() {
                open.push(feed);
            }
        }
        state.senders = open;
        self.count.store(state.senders.len(), Ordering::SeqCst);
    }
}

#[async_trait]
impl ReaderSink for SharedFeeds {
    fn active(&self) -> bool {
        self.count.load(Ordering::SeqCst) > 0
    }

    async fn deliver(&self, delivery: Delivery) {
        let mut state = self.inner.lock().await;
        if let Some(batch) = delivery.batch
            && batch.num_rows() > 0
        {
            self.send(
                &mut state,
                Message::Chunk(Chunk::uniform(batch, Op::Insert)),
            )
            .await;
        }
        state.positions.extend(delivery.next);
        // Under the feed lock, after the rows: a barrier injected now
        // carries a watermark that is never ahead of the rows before it.
        self.status.observe(&delivery.events, Instant::now());
        drop(state);
        self.dead_letters.add(&self.name, delivery.dead).await;
    }
}

impl KafkaSource {
    /// A source reading `spec`'s topic from `start`; the reader starts at
    /// once but consumes only while views read the source.
    pub fn start(
        spec: SourceSpec,
        start: BTreeMap<i32, i64>,
        dead_letters: Arc<DeadLetters>,
    ) -> Result<KafkaSource> {
        let spec = Arc::new(spec);
        let status = Arc::new(ReaderStatus::new(&spec));
        let feeds = Arc::new(SharedFeeds {
            name: spec.name.clone(),
            status: status.clone(),
            inner: Mutex::new(FeedState {
                senders: Vec::new(),
                positions: start.clone(),
            }),
            count: AtomicUsize::new(0),
            dead_letters,
        });
        let handle = reader::start(
            spec.clone(),
            &spec.group(),
            start.clone(),
            feeds.clone(),
            status.clone(),
        )?;
        Ok(KafkaSource {
            spec,
            start,
            feeds,
            reader: std::sync::Mutex::new(Some(handle)),
            status,
        })
    }

    pub fn spec(&self) -> &Arc<SourceSpec> {
        &self.spec
    }

    pub fn start_offsets(&self) -> &BTreeMap<i32, i64> {
        &self.start
    }

    pub fn status(&self) -> &Arc<ReaderStatus> {
        &self.status
    }

    /// A bounded read of everything from the start offsets to the high
    /// watermarks now (`SELECT … FROM a_source`).
    pub async fn read_to_end(
        &self,
    ) -> Result<mpsc::Receiver<Result<datafusion::arrow::array::RecordBatch>>> {
        let consumer = self.consumer()?;
        let topic = self.spec.options.topic.clone();
        let to = tokio::task::spawn_blocking(move || high_watermarks(&consumer, &topic))
            .await
            .map_err(|e| Error::Internal(e.to_string()))??;
        Ok(bounded::read_range(
            self.spec.clone(),
            self.start.clone(),
            to,
        ))
    }

    fn consumer(&self) -> Result<Arc<rdkafka::consumer::BaseConsumer>> {
        self.reader
            .lock()
            .expect("reader lock")
            .as_ref()
            .map(|r| r.consumer.clone())
            .ok_or_else(|| {
                Error::UndefinedObject(format!("source \"{}\" was dropped", self.spec.name))
            })
    }

    /// Commits the reader's positions as the consumer group's offsets, for
    /// Kafka's lag tools.
    pub fn commit_group_offsets(&self) {
        let Ok(consumer) = self.consumer() else {
            return;
        };
        let positions = self.status.positions();
        if let Err(e) = commit_group_offsets(&consumer, &self.spec.options.topic, &positions) {
            tracing::debug!(source = %self.spec.name, error = %e, "could not commit consumer-group offsets");
        }
    }
}

#[async_trait]
impl Source for KafkaSource {
    fn name(&self) -> &str {
        &self.spec.name
    }

    async fn subscribe(&self) -> Result<Subscription> {
        let (tx, rx) = mpsc::channel(FEED_CAPACITY);
        let position = {
            let mut state = self.feeds.inner.lock().await;
            state.senders.push(tx);
            self.feeds
                .count
                .store(state.senders.len(), Ordering::SeqCst);
            state.positions.clone()
        };
        let backfill = bounded::read_range(self.spec.clone(), self.start.clone(), position);
        let backfill = tokio_stream_of(backfill)
            .map(|r| r.map(|b| Chunk::uniform(b, Op::Insert)))
            .boxed();
        Ok((backfill, rx))
    }

    async fn inject(&self, barrier: &Barrier) {
        let mut state = self.feeds.inner.lock().await;
        if state.senders.is_empty() {
            return;
        }
        // The watermark goes right before the barrier, after every chunk
        // of the epoch, into every feed (so a view that joined since gets
        // the current value too); the tracker never lets it go back.
        // Replays: this value is what the exactly-once work persists with
        // the epoch's checkpoint (next to the source offsets), so that a
        // replay re-emits the same watermark — the wall-clock advance of a
        // quiet source included — instead of recomputing it.
        if let Some(w) = &self.spec.watermark {
            let now = Instant::now();
            let value = self
                .status
                .watermark
                .lock()
                .expect("watermark lock")
                .current(now);
            if let Some(timestamp) = value {
                self.feeds
                    .send(
                        &mut state,
                        Message::Watermark(Watermark {
                            column: w.column,
                            timestamp,
                        }),
                    )
                    .await;
            }
        }
        self.feeds
            .send(&mut state, Message::Barrier(barrier.clone()))
            .await;
    }

    async fn catch_up(&self) -> Result<()> {
        if !self.feeds.active() {
            return Ok(());
        }
        let consumer = self.consumer()?;
        let topic = self.spec.options.topic.clone();
        let target = loop {
            let (c, t) = (consumer.clone(), topic.clone());
            match tokio::task::spawn_blocking(move || high_watermarks(&c, &t))
                .await
                .map_err(|e| Error::Internal(e.to_string()))?
            {
                Ok(hw) => break hw,
                Err(e) => {
                    tracing::warn!(source = %self.spec.name, error = %e, "FLUSH: broker not answering; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        };
        loop {
            if let Some(why) = self.status.failed.lock().expect("status lock").clone() {
                tracing::warn!(source = %self.spec.name, error = %why, "FLUSH: the source has stopped; its views stay as they are");
                return Ok(());
            }
            if !self.feeds.active() {
                return Ok(());
            }
            let positions = self.feeds.inner.lock().await.positions.clone();
            let behind = target
                .iter()
                .any(|(p, hw)| positions.get(p).copied().unwrap_or(0) < *hw);
            if !behind {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn stop(&self) {
        let handle = self.reader.lock().expect("reader lock").take();
        if let Some(h) = handle {
            let _ = tokio::task::spawn_blocking(move || h.stop()).await;
        }
        let mut state = self.feeds.inner.lock().await;
        state.senders.clear();
        self.feeds.count.store(0, Ordering::SeqCst);
    }
}

/// A receiver as a stream.
fn tokio_stream_of<T: Send + 'static>(
    mut rx: mpsc::Receiver<T>,
) -> futures::stream::BoxStream<'static, T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}
