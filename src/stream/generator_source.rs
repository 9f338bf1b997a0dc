//! A generator source (`connector = 'nexmark' | 'datagen'`): rows made by
//! a [`Generator`] straight into Arrow batches, one producer shared by
//! every view over the source.
//!
//! A generator's rows are a pure function of their position, so a view
//! that joins later backfills by generating rows `[0, position)` again on
//! its own, then reads the shared feed from `position` (taken under the
//! feed lock, so the two meet exactly) — the same shape as a Kafka source,
//! with positions instead of offsets. The producer runs only while some
//! view reads the source, at the generator's rate.
//!
//! With `WATERMARK FOR`, the generator is one partition to the
//! [`WatermarkTracker`]: its watermark is the largest event time produced
//! minus the delay, sent before each barrier; once a bounded generator has
//! produced everything it is caught up, so after `watermark.idle_timeout`
//! it advances with the wall clock like any quiet source.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use futures::StreamExt;
use tokio::sync::{Mutex, mpsc};

use crate::connector::generator::Generator;
use crate::connector::watermark::{WatermarkSpec, WatermarkTracker};
use crate::error::Result;
use crate::stream::chunk::{Chunk, Op};
use crate::stream::message::{Barrier, Message, Watermark};
use crate::stream::source::Source;
use crate::stream::view::Subscription;

const FEED_CAPACITY: usize = 16;
/// Rows per batch at most.
const BATCH_ROWS: usize = 8192;

/// Makes a fresh generator at row 0 (options already validated).
pub type MakeGenerator = Arc<dyn Fn() -> Result<Box<dyn Generator>> + Send + Sync>;

pub struct GeneratorSource {
    name: String,
    schema: SchemaRef,
    make: MakeGenerator,
    feeds: Arc<Feeds>,
    stop: Arc<AtomicBool>,
    thread: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

struct Feeds {
    state: Mutex<Vec<mpsc::Sender<Message>>>,
    /// `WATERMARK FOR` (None: the source sends no watermarks).
    watermark: Option<WatermarkSpec>,
    /// Changed under `state`, after the rows it saw are in the feeds.
    tracker: std::sync::Mutex<WatermarkTracker>,
    count: AtomicUsize,
    /// Rows in the feeds so far (changed under `state`).
    position: AtomicU64,
}

impl Feeds {
    async fn send(&self, senders: &mut Vec<mpsc::Sender<Message>>, m: Message) {
        let mut open = Vec::with_capacity(senders.len());
        for s in senders.drain(..) {
            if s.send(m.clone()).await.is_ok() {
                open.push(s);
            }
        }
        *senders = open;
        self.count.store(senders.len(), Ordering::SeqCst);
    }
}

impl GeneratorSource {
    pub fn start(
        name: &str,
        make: MakeGenerator,
        watermark: Option<WatermarkSpec>,
        idle_timeout: Duration,
    ) -> Result<GeneratorSource> {
        let generator = make()?;
        let schema = generator.schema();
        let mut tracker =
            WatermarkTracker::new(name, watermark.as_ref().map(|w| w.delay_us), idle_timeout);
        tracker.add_partition(0);
        let feeds = Arc::new(Feeds {
            state: Mutex::new(Vec::new()),
            watermark,
            tracker: std::sync::Mutex::new(tracker),
            count: AtomicUsize::new(0),
            position: AtomicU64::new(0),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let runtime = tokio::runtime::Handle::current();
        let thread = {
            let (feeds, stop) = (feeds.clone(), stop.clone());
            std::thread::Builder::new()
                .name(format!("generator-{name}"))
                .spawn(move || produce(generator, &feeds, &stop, &runtime))?
        };
        Ok(GeneratorSource {
            name: name.to_string(),
            schema,
            make,
            feeds,
            stop,
            thread: std::sync::Mutex::new(Some(thread)),
        })
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Rows produced into the feeds so far.
    pub fn position(&self) -> u64 {
        self.feeds.position.load(Ordering::SeqCst)
    }

    /// Rows `[from, to)` generated again, in batches, on a thread.
    pub fn replay(&self, from: u64, to: u64) -> mpsc::Receiver<Result<RecordBatch>> {
        let (tx, rx) = mpsc::channel(4);
        let make = self.make.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("generator-replay-{}", self.name))
            .spawn(move || {
                let mut g = match make() {
                    Ok(g) => g,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        return;
                    }
                };
                g.seek(from);
                let mut left = to.saturating_sub(from);
                while left > 0 {
                    let n = (left as usize).min(BATCH_ROWS);
                    let Some(b) = g.next_batch(n) else { break };
                    left -= b.num_rows() as u64;
                    if tx.blocking_send(Ok(b)).is_err() {
                        return;
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "could not start a generator replay");
        }
        rx
    }
}

fn produce(
    mut generator: Box<dyn Generator>,
    feeds: &Feeds,
    stop: &AtomicBool,
    runtime: &tokio::runtime::Handle,
) {
    let rate = generator.rate();
    // Pacing counts from when rows are first wanted.
    let mut started: Option<(Instant, u64)> = None;
    while !stop.load(Ordering::SeqCst) {
        if feeds.count.load(Ordering::SeqCst) == 0 {
            started = None;
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        let position = generator.position();
        let (t0, p0) = *started.get_or_insert((Instant::now(), position));
        let mut want = BATCH_ROWS;
        if let Some(r) = rate.filter(|r| *r > 0.0) {
            let due = p0 + (t0.elapsed().as_secs_f64() * r) as u64;
            if due <= position {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            want = ((due - position) as usize).min(BATCH_ROWS);
        }
        let Some(batch) = generator.next_batch(want) else {
            // Exhausted: nothing more, ever (caught up, for idleness).
            feeds
                .tracker
                .lock()
                .expect("watermark lock")
                .set_caught_up(0, true);
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        let rows = batch.num_rows() as u64;
        let max_event = feeds
            .watermark
            .as_ref()
            .and_then(|w| w.max_event_time(&batch, 0, batch.num_rows()));
        runtime.block_on(async {
            let mut senders = feeds.state.lock().await;
            feeds
                .send(
                    &mut senders,
                    Message::Chunk(Chunk::uniform(batch, Op::Insert)),
                )
                .await;
            feeds.position.fetch_add(rows, Ordering::SeqCst);
            // After the rows, under the feed lock: never ahead of them.
            feeds
                .tracker
                .lock()
                .expect("watermark lock")
                .observe(0, max_event, Instant::now());
        });
    }
}

#[async_trait]
impl Source for GeneratorSource {
    fn name(&self) -> &str {
        &self.name
    }

    async fn subscribe(&self) -> Result<Subscription> {
        let (tx, rx) = mpsc::channel(FEED_CAPACITY);
        let position = {
            let mut senders = self.feeds.state.lock().await;
            senders.push(tx);
            self.feeds.count.store(senders.len(), Ordering::SeqCst);
            self.feeds.position.load(Ordering::SeqCst)
        };
        let mut replay = self.replay(0, position);
        let backfill = futures::stream::poll_fn(move |cx| replay.poll_recv(cx))
            .map(|r| r.map(|b| Chunk::uniform(b, Op::Insert)))
            .boxed();
        Ok((backfill, rx))
    }

    async fn inject(&self, barrier: &Barrier) {
        let mut senders = self.feeds.state.lock().await;
        if senders.is_empty() {
            return;
        }
        // As for Kafka sources: before the barrier, into every feed; this
        // is the value a checkpoint would persist per epoch for replays.
        if let Some(w) = &self.feeds.watermark {
            let value = self
                .feeds
                .tracker
                .lock()
                .expect("watermark lock")
                .current(Instant::now());
            if let Some(timestamp) = value {
                self.feeds
                    .send(
                        &mut senders,
                        Message::Watermark(Watermark {
                            column: w.column,
                            timestamp,
                        }),
                    )
                    .await;
            }
        }
        self.feeds
            .send(&mut senders, Message::Barrier(barrier.clone()))
            .await;
    }

    async fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let t = self.thread.lock().expect("thread lock").take();
        if let Some(t) = t {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        self.feeds.state.lock().await.clear();
        self.feeds.count.store(0, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::watermark::WatermarkSpec;
    use crate::stream::message::BarrierKind;
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::{
        DataType, Field, Schema, TimeUnit, TimestampMicrosecondType,
    };
    use std::collections::BTreeMap;

    /// A bounded datagen source with `WATERMARK FOR ts AS ts - INTERVAL
    /// '1 minute'`: every feed gets the largest event time minus the delay,
    /// after the rows and right before the barrier.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_watermark_goes_into_the_feed_right_before_the_barrier() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
                true,
            ),
        ]));
        let options: BTreeMap<String, String> = [
            ("connector", "datagen"),
            ("fields.id.kind", "sequence"),
            ("fields.id.start", "1"),
            ("fields.id.end", "500"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let make: MakeGenerator = {
            let schema = schema.clone();
            Arc::new(move || crate::connector::generator::datagen(&options, schema.clone()))
        };
        let spec = WatermarkSpec::of("ts", "ts - INTERVAL '1 minute'", &schema).unwrap();
        let source =
            GeneratorSource::start("g", make, Some(spec), Duration::from_secs(30)).unwrap();
        let (_backfill, mut feed) = source.subscribe().await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while source.position() < 500 {
            assert!(Instant::now() < deadline, "the generator did not finish");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        source
            .inject(&Barrier {
                epoch: 1,
                kind: BarrierKind::Epoch,
                timestamp: 0,
                token: None,
            })
            .await;
        let mut max = i64::MIN;
        let mut rows = 0;
        let watermark = loop {
            match feed.recv().await.expect("feed open") {
                Message::Chunk(c) => {
                    let ts = c.batch.column(1).as_primitive::<TimestampMicrosecondType>();
                    rows += ts.len();
                    max = max.max(datafusion::arrow::compute::max(ts).unwrap());
                }
                Message::Watermark(w) => break w,
                Message::Barrier(_) => panic!("a barrier before the watermark"),
            }
        };
        assert_eq!(rows, 500);
        assert_eq!(watermark.column, 1);
        assert_eq!(watermark.timestamp, max - 60_000_000);
        assert!(matches!(feed.recv().await, Some(Message::Barrier(b)) if b.epoch == 1));
        source.stop().await;
    }
}
