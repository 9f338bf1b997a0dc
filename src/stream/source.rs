//! Sources: where changes enter the streaming runtime.
//!
//! ```text
//!   LakeTable commit ─▶ CommitReport ─▶ TableSource ─▶ Chunk(-removed, +added) ─▶ each subscribed view
//!                                          ▲
//!   BarrierCoordinator ── Barrier(N) ──────┘ (after every change reported before it)
//! ```
//!
//! A [`Source`] hands each subscriber its starting rows (the backfill, a
//! stream read in bounded pieces — a table's, one data file at a time) and
//! then a feed of every change after them, and places barriers into those
//! feeds when the [`coordinator`](crate::stream::coordinator) asks. Today
//! the only kind is [`TableSource`], the change feed of a table; Kafka,
//! nexmark and datagen readers implement the same trait later.
//!
//! Invariants every source keeps:
//! - a subscriber's backfill and feed meet at one point: no change is
//!   missed or seen twice;
//! - each feed carries changes in commit order, and a barrier follows every
//!   change reported before it was injected (so `FLUSH` after a statement
//!   returned covers the statement).

use std::sync::Arc;

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use tokio::sync::{Mutex, mpsc};

use crate::error::Result;
use crate::storage::table::{CommitObserver, CommitReport, LakeTable};
use crate::stream::chunk::{Chunk, Op};
use crate::stream::message::{Barrier, Message, Watermark};
use crate::stream::view::Subscription;

/// Capacity of each feed, in messages: a subscriber this far behind makes
/// the source wait (backpressure) instead of buffering without bound.
const FEED_CAPACITY: usize = 16;

/// Where changes enter the runtime.
#[async_trait]
pub trait Source: Send + Sync {
    /// The relation's name (for logs).
    fn name(&self) -> &str;

    /// A new subscriber: its starting rows and the feed of every change
    /// after them. The coordinator must not inject barriers meanwhile (see
    /// [`BarrierCoordinator::pause`](crate::stream::coordinator::BarrierCoordinator::pause)).
    async fn subscribe(&self) -> Result<Subscription>;

    /// Places `barrier` into every feed, after every change sent so far.
    async fn inject(&self, barrier: &Barrier);

    /// Returns once every record that was in the source's upstream when
    /// called (a broker's high watermarks) is in the feeds: FLUSH calls it
    /// before ending its epoch. A table's feed is always caught up.
    async fn catch_up(&self) -> Result<()> {
        Ok(())
    }

    /// Stops reading (DROP SOURCE): returns once no more records arrive.
    async fn stop(&self) {}
}

/// The change feed of a table: the commits of its statements, as chunks.
pub struct TableSource {
    table: LakeTable,
    feeds: Arc<Feeds>,
}

/// The feeds of one table's subscribers; the table's commit observer.
#[derive(Default)]
struct Feeds {
    /// Held while sending, so reports and barriers never interleave.
    senders: Mutex<Vec<mpsc::Sender<Message>>>,
    /// How many feeds are open (read without the lock, to decide whether a
    /// statement needs to keep its rows at all).
    count: std::sync::atomic::AtomicUsize,
    /// The watermark of the rows committed so far (connector tables with
    /// `WATERMARK FOR`), sent before every barrier.
    watermark: std::sync::Mutex<Option<Watermark>>,
}

impl Feeds {
    /// Sends to every feed, forgetting the feeds whose subscriber is gone.
    async fn send(&self, messages: Vec<Message>) {
        let mut senders = self.senders.lock().await;
        if senders.is_empty() {
            return;
        }
        let mut open = Vec::with_capacity(senders.len());
        for feed in senders.drain(..) {
            let mut alive = true;
            for m in &messages {
                if feed.send(m.clone()).await.is_err() {
                    alive = false;
                    break;
                }
            }
            if alive {
                open.push(feed);
            }
        }
        *senders = open;
        self.count
            .store(senders.len(), std::sync::atomic::Ordering::SeqCst);
    }
}

#[async_trait]
impl CommitObserver for Feeds {
    fn wants_reports(&self) -> bool {
        self.count.load(std::sync::atomic::Ordering::SeqCst) > 0
    }

    async fn committed(&self, report: CommitReport) {
        let messages = report
            .removed
            .into_iter()
            .map(|b| Message::Chunk(Chunk::uniform(b, Op::Delete)))
            .chain(
                report
                    .added
                    .into_iter()
                    .map(|b| Message::Chunk(Chunk::uniform(b, Op::Insert))),
            )
            .collect();
        self.send(messages).await;
        // A big statement's rows come back from its committed files, one
        // file at a time, so it is never whole in memory.
        let (Some(table), Some(schema)) = (&report.table, &report.schema) else {
            return;
        };
        for path in &report.added_files {
            match crate::storage::files::read_file(table.file_io(), path, schema).await {
                Ok(batches) => {
                    let messages = batches
                        .into_iter()
                        .map(|b| Message::Chunk(Chunk::uniform(b, Op::Insert)))
                        .collect();
                    self.send(messages).await;
                }
                Err(e) => {
                    // The rows are committed but the views cannot see them:
                    // close the feeds, so the views reading this table stop
                    // and say so (reads and FLUSH fail) instead of drifting.
                    tracing::error!(table = %table.identifier(), file = %path, error = %e,
                        "could not read back committed rows; the views over the table stop");
                    self.senders.lock().await.clear();
                    self.count.store(0, std::sync::atomic::Ordering::SeqCst);
                    return;
                }
            }
        }
    }

    fn watermark(&self, column: usize, timestamp: i64) {
        let mut w = self.watermark.lock().expect("watermark lock");
        // Never back (the ingest's tracker does not go back either).
        if w.as_ref().is_none_or(|w| w.timestamp < timestamp) {
            *w = Some(Watermark { column, timestamp });
        }
    }
}

impl TableSource {
    /// The change feed of `table`; becomes the table's commit observer.
    pub fn new(table: LakeTable) -> Result<TableSource> {
        let feeds = Arc::new(Feeds::default());
        if !table.set_observer(feeds.clone()) {
            return Err(crate::error::Error::Internal(format!(
                "table {} already has a change feed",
                table.name()
            )));
        }
        Ok(TableSource { table, feeds })
    }
}

#[async_trait]
impl Source for TableSource {
    fn name(&self) -> &str {
        self.table.name()
    }

    async fn subscribe(&self) -> Result<Subscription> {
        // With writes paused, the snapshot and the new feed meet exactly.
        let (snapshot, rx) = self
            .table
            .with_writes_paused(|snapshot| async move {
                let (tx, rx) = mpsc::channel(FEED_CAPACITY);
                let mut senders = self.feeds.senders.lock().await;
                senders.push(tx);
                self.feeds
                    .count
                    .store(senders.len(), std::sync::atomic::Ordering::SeqCst);
                (snapshot, rx)
            })
            .await;
        // The backfill reads one data file at a time, when the view gets
        // to it: never the whole table in memory, and never while barriers
        // are paused.
        let files = self.table.data_files(&snapshot).await?;
        let table = self.table.clone();
        let backfill = futures::stream::iter(files)
            .then(move |path| {
                let (table, snapshot) = (table.clone(), snapshot.clone());
                async move { table.read_data_file(&snapshot, &path).await }
            })
            .map_ok(|batches| {
                futures::stream::iter(
                    batches
                        .into_iter()
                        .map(|b| Ok(Chunk::uniform(b, Op::Insert))),
                )
            })
            .try_flatten()
            .boxed();
        Ok((backfill, rx))
    }

    async fn inject(&self, barrier: &Barrier) {
        // A connector table's watermark is set after the commit whose rows
        // it covers has been sent: reading it here, before the barrier,
        // places it after those rows. A feed subscribed since gets it too.
        let watermark = self.feeds.watermark.lock().expect("watermark lock").clone();
        let mut messages = Vec::with_capacity(2);
        if let Some(w) = watermark {
            messages.push(Message::Watermark(w));
        }
        messages.push(Message::Barrier(barrier.clone()));
        self.feeds.send(messages).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Retention, S3Config};
    use crate::storage::warehouse::Warehouse;
    use crate::stream::message::BarrierKind;
    use datafusion::arrow::array::{Int64Array, RecordBatch};
    use iceberg::spec::{NestedField, PrimitiveType, Schema, Type};
    use iceberg::{NamespaceIdent, TableIdent};
    use std::collections::HashMap;
    use std::time::Duration;

    /// A connector table's change feed: the commit's rows, then the
    /// watermark reported after that commit, then the barrier — and a feed
    /// subscribed later gets the watermark before its next barrier too.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_table_feed_carries_the_committed_watermark_before_the_barrier() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().to_path_buf(),
            warehouse: format!("file://{}/warehouse", dir.path().display()),
            s3: S3Config {
                endpoint: None,
                region: "us-east-1".into(),
                path_style: false,
                access_key_id: None,
                secret_access_key: None,
                session_token: None,
            },
            catalog_name: "streamlake".into(),
            user: None,
            password: None,
            barrier_interval: Duration::from_secs(1),
            checkpoint_interval: Duration::from_secs(10),
            retention: Retention::default(),
        };
        let warehouse = Warehouse::open(&config).await.unwrap();
        let schema = Schema::builder()
            .with_fields(vec![
                NestedField::optional(1, "ts", Type::Primitive(PrimitiveType::Long)).into(),
            ])
            .build()
            .unwrap();
        let ident = TableIdent::new(NamespaceIdent::new("public".into()), "ct".into());
        let table = warehouse
            .create_table(&ident, schema, HashMap::new())
            .await
            .unwrap();
        let table = LakeTable::new(warehouse.clone(), table).unwrap();
        let source = TableSource::new(table.clone()).unwrap();
        let (_backfill, mut feed) = source.subscribe().await.unwrap();

        let mut writer = table.stage().await.unwrap();
        let batch = RecordBatch::try_new(
            table.arrow_schema(),
            vec![Arc::new(Int64Array::from(vec![1, 2, 3]))],
        )
        .unwrap();
        writer.write(batch).await.unwrap();
        table
            .commit_staged(writer.finish().await.unwrap(), HashMap::new())
            .await
            .unwrap();
        table.report_watermark(0, 42);
        // A lower value never replaces it.
        table.report_watermark(0, 7);
        let barrier = |epoch| Barrier {
            epoch,
            kind: BarrierKind::Epoch,
            timestamp: 0,
            token: None,
        };
        source.inject(&barrier(1)).await;
        let mut rows = 0;
        loop {
            match feed.recv().await.unwrap() {
                Message::Chunk(c) => rows += c.batch.num_rows(),
                Message::Watermark(w) => {
                    assert_eq!((w.column, w.timestamp), (0, 42));
                    break;
                }
                Message::Barrier(_) => panic!("barrier before the watermark"),
            }
        }
        assert_eq!(rows, 3);
        assert!(matches!(feed.recv().await, Some(Message::Barrier(b)) if b.epoch == 1));

        let (_backfill, mut later) = source.subscribe().await.unwrap();
        source.inject(&barrier(2)).await;
        assert!(matches!(later.recv().await, Some(Message::Watermark(w)) if w.timestamp == 42));
        assert!(matches!(later.recv().await, Some(Message::Barrier(b)) if b.epoch == 2));
    }
}
