//! A connector table (`CREATE TABLE … WITH (connector = 'kafka')`): every
//! record of its topic kept as a row of an append-only Iceberg table.
//!
//! ```text
//!   reader thread ─▶ deliver ─▶ staged data files (FileWriter)     ─┐
//!                        └────▶ dead letters (buffered)             ├─ checkpoint: dead letters commit,
//!                                                                   │  then ONE table snapshot: staged files
//!                                                                   ┘  + next offsets in its summary
//! ```
//!
//! Exactly-once: the offsets after the rows of a snapshot are in that
//! snapshot's summary, so the catalog's compare-and-swap that publishes the
//! rows publishes the offsets with them. After a restart — clean or
//! kill -9 — reading resumes at the current snapshot's offsets: rows staged
//! but not committed are read again, rows committed are not. Dead letters
//! commit first and are deduplicated by offset (see
//! [`dead_letters`](crate::stream::dead_letters)), so a crash between the
//! two commits records no letter twice. Views over the table see rows once
//! committed, through the table's change feed like any other table.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Mutex;

use crate::connector::kafka::reader::{self, Delivery, ReaderHandle, ReaderSink, ReaderStatus};
use crate::connector::kafka::{SourceSpec, commit_group_offsets, high_watermarks};
use crate::error::{Error, Result};
use crate::storage::files::FileWriter;
use crate::storage::table::{CARRIED_PREFIX, LakeTable, carried};
use crate::stream::dead_letters::DeadLetters;

/// Summary key of the next offset per partition after a snapshot's rows.
pub fn offsets_key() -> String {
    format!("{CARRIED_PREFIX}offsets")
}

/// The offsets a connector table's current snapshot is at.
pub fn committed_offsets(table: &LakeTable) -> Option<BTreeMap<i32, i64>> {
    carried(&table.snapshot(), &offsets_key()).and_then(|v| serde_json::from_str(&v).ok())
}

pub struct ConnectorIngest {
    spec: Arc<SourceSpec>,
    sink: Arc<Staging>,
    reader: std::sync::Mutex<Option<ReaderHandle>>,
    status: Arc<ReaderStatus>,
}

struct Staging {
    table: LakeTable,
    name: String,
    state: Mutex<StagingState>,
    dead_letters: Arc<DeadLetters>,
    status: Arc<ReaderStatus>,
}

struct StagingState {
    writer: Option<FileWriter>,
    /// Next offsets after the staged rows.
    positions: BTreeMap<i32, i64>,
    /// Next offsets after the committed rows.
    committed: BTreeMap<i32, i64>,
    /// Staging failed: nothing more is accepted, the uncommitted rows are
    /// read again after a restart.
    failed: bool,
}

#[async_trait]
impl ReaderSink for Staging {
    fn active(&self) -> bool {
        true
    }

    async fn deliver(&self, delivery: Delivery) {
        let mut state = self.state.lock().await;
        if state.failed {
            return;
        }
        if let Some(batch) = delivery.batch
            && batch.num_rows() > 0
        {
            let written = async {
                if state.writer.is_none() {
                    state.writer = Some(self.table.stage().await?);
                }
                state.writer.as_mut().expect("set above").write(batch).await
            }
            .await;
            if let Err(e) = written {
                tracing::error!(table = %self.name, error = %e,
                    "could not stage rows; ingest stops until a restart, which reads them again");
                state.failed = true;
                state.writer = None;
                *self.status.failed.lock().expect("status lock") =
                    Some(format!("staging rows failed: {e}"));
                return;
            }
        }
        state.positions.extend(delivery.next);
        // Under the staging lock, after the rows: what a checkpoint
        // commits and the watermark it reports go together.
        self.status
            .observe(&delivery.events, std::time::Instant::now());
        drop(state);
        self.dead_letters.add(&self.name, delivery.dead).await;
    }
}

impl ConnectorIngest {
    /// Starts ingesting into `table` from its committed offsets (or `start`
    /// for a table that never committed).
    pub fn start(
        spec: SourceSpec,
        table: LakeTable,
        start: BTreeMap<i32, i64>,
        dead_letters: Arc<DeadLetters>,
    ) -> Result<ConnectorIngest> {
        let spec = Arc::new(spec);
        let mut positions = start;
        if let Some(committed) = committed_offsets(&table) {
            positions.extend(committed);
        }
        tracing::info!(table = %spec.name, ?positions, "connector table reading");
        let status = Arc::new(ReaderStatus::new(&spec));
        let sink = Arc::new(Staging {
            name: spec.name.clone(),
            table,
            state: Mutex::new(StagingState {
                writer: None,
                positions: positions.clone(),
                committed: positions.clone(),
                failed: false,
            }),
            dead_letters,
            status: status.clone(),
        });
        *status.committed.lock().expect("status lock") = Some(positions_now(&sink));
        let handle = reader::start(
            spec.clone(),
            &spec.group(),
            positions,
            sink.clone(),
            status.clone(),
        )?;
        Ok(ConnectorIngest {
            spec,
            sink,
            reader: std::sync::Mutex::new(Some(handle)),
            status,
        })
    }

    pub fn spec(&self) -> &Arc<SourceSpec> {
        &self.spec
    }

    pub fn status(&self) -> &Arc<ReaderStatus> {
        &self.status
    }

    /// Offsets of the last committed snapshot.
    pub async fn committed(&self) -> BTreeMap<i32, i64> {
        self.sink.state.lock().await.committed.clone()
    }

    /// Commits what is staged: dead letters first, then one snapshot of
    /// the staged rows with the offsets after them.
    pub async fn checkpoint(&self) -> Result<()> {
        let mut state = self.sink.state.lock().await;
        if state.failed {
            return Ok(());
        }
        // Under the staging lock: the watermark of exactly the rows this
        // checkpoint commits (the views see them, and it, after the commit).
        let watermark = self.spec.watermark.as_ref().and_then(|w| {
            let now = std::time::Instant::now();
            self.status
                .watermark
                .lock()
                .expect("watermark lock")
                .current(now)
                .map(|ts| (w.column, ts))
        });
        if state.positions == state.committed && state.writer.is_none() {
            // Nothing new, but a quiet source's watermark still moves.
            if let Some((column, ts)) = watermark {
                self.sink.table.report_watermark(column, ts);
            }
            return Ok(());
        }
        self.sink.dead_letters.commit().await?;
        let files = match state.writer.take() {
            Some(w) => w.finish().await?,
            None => Vec::new(),
        };
        let offsets =
            serde_json::to_string(&state.positions).map_err(|e| Error::Internal(e.to_string()))?;
        self.sink
            .table
            .commit_staged(files, HashMap::from([(offsets_key(), offsets)]))
            .await?;
        state.committed = state.positions.clone();
        if let Some((column, ts)) = watermark {
            self.sink.table.report_watermark(column, ts);
        }
        *self.status.committed.lock().expect("status lock") = Some(state.committed.clone());
        drop(state);
        if let Ok(consumer) = self.consumer() {
            let (topic, committed) = (self.spec.options.topic.clone(), self.committed().await);
            if let Err(e) = commit_group_offsets(&consumer, &topic, &committed) {
                tracing::debug!(table = %self.spec.name, error = %e, "could not commit consumer-group offsets");
            }
        }
        Ok(())
    }

    fn consumer(&self) -> Result<Arc<rdkafka::consumer::BaseConsumer>> {
        self.reader
            .lock()
            .expect("reader lock")
            .as_ref()
            .map(|r| r.consumer.clone())
            .ok_or_else(|| {
                Error::UndefinedObject(format!("table \"{}\" was dropped", self.spec.name))
            })
    }

    /// Waits until everything in the topic now is staged (FLUSH).
    pub async fn catch_up(&self) -> Result<()> {
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
                    tracing::warn!(table = %self.spec.name, error = %e, "FLUSH: broker not answering; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        };
        loop {
            if self.status.failed.lock().expect("status lock").is_some() {
                return Ok(());
            }
            let positions = self.sink.state.lock().await.positions.clone();
            if target
                .iter()
                .all(|(p, hw)| positions.get(p).copied().unwrap_or(0) >= *hw)
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops the reader; what was staged and not committed is dropped
    /// (DROP TABLE).
    pub async fn stop(&self) {
        let handle = self.reader.lock().expect("reader lock").take();
        if let Some(h) = handle {
            let _ = tokio::task::spawn_blocking(move || h.stop()).await;
        }
        let mut state = self.sink.state.lock().await;
        state.failed = true;
        state.writer = None;
    }
}

fn positions_now(sink: &Staging) -> BTreeMap<i32, i64> {
    sink.state
        .try_lock()
        .map(|s| s.committed.clone())
        .unwrap_or_default()
}
