//! A materialized view at run time: its task, its published contents, and
//! the table provider that reads them.
//!
//! ```text
//!   feed rx ──▶ Chunk ──▶ operators ──▶ materialize (live multiset)
//!           └─▶ Barrier(N) ─▶ flush operators ─▶ snapshot ─▶ publish ─▶ persist (Iceberg) ─▶ ack(N)
//! ```
//!
//! The task first applies the backfill (the base table's rows at the moment
//! the view subscribed), then follows the feed. Reads never see the live
//! multiset, only the last published snapshot, so a read is always exactly
//! the view's contents as of one epoch.

use std::any::Any;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::datasource::{MemTable, TableProvider, TableType};
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use futures::future::BoxFuture;
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::stream::chunk::Chunk;
use crate::stream::message::{Epoch, Message};
use crate::stream::operator::Operator;
use crate::stream::ops::materialize::MaterializeOperator;

/// Called with each new snapshot, before the barrier is acknowledged (the
/// view's Iceberg commit).
pub type Persist = Box<dyn FnMut(Epoch, RecordBatch) -> BoxFuture<'static, Result<()>> + Send>;

/// What a view shows: its last published snapshot, or why it stopped.
#[derive(Debug)]
pub struct ViewContents {
    pub schema: SchemaRef,
    published: RwLock<Published>,
}

#[derive(Debug, Clone)]
struct Published {
    epoch: Epoch,
    batch: Option<RecordBatch>,
    failed: Option<String>,
}

impl ViewContents {
    pub fn new(schema: SchemaRef) -> Arc<ViewContents> {
        Arc::new(ViewContents {
            schema,
            published: RwLock::new(Published {
                epoch: 0,
                batch: None,
                failed: None,
            }),
        })
    }

    /// The epoch of the published snapshot.
    pub fn epoch(&self) -> Epoch {
        self.published.read().expect("view lock").epoch
    }

    fn publish(&self, epoch: Epoch, batch: RecordBatch) {
        let mut p = self.published.write().expect("view lock");
        p.epoch = epoch;
        p.batch = Some(batch);
    }

    fn fail(&self, why: String) {
        self.published.write().expect("view lock").failed = Some(why);
    }

    /// The published rows, or the error that stopped the view.
    pub fn read(&self) -> Result<Vec<RecordBatch>> {
        let p = self.published.read().expect("view lock");
        if let Some(why) = &p.failed {
            return Err(Error::Internal(format!("materialized view stopped: {why}")));
        }
        Ok(p.batch.iter().cloned().collect())
    }
}

/// Runs operators over chunks in order.
fn run_chunks(ops: &mut [Box<dyn Operator>], mut chunks: Vec<Chunk>) -> Result<Vec<Chunk>> {
    for op in ops.iter_mut() {
        let mut out = Vec::with_capacity(chunks.len());
        for c in chunks {
            op.process(c, &mut out)?;
        }
        chunks = out;
    }
    Ok(chunks)
}

/// Ends an epoch: each operator flushes, and what it flushes runs through
/// the operators after it before they flush in turn.
fn run_barrier(ops: &mut [Box<dyn Operator>], epoch: Epoch) -> Result<Vec<Chunk>> {
    let mut pending: Vec<Chunk> = Vec::new();
    for op in ops.iter_mut() {
        let mut out = Vec::new();
        for c in pending {
            op.process(c, &mut out)?;
        }
        op.on_barrier(epoch, &mut out)?;
        pending = out;
    }
    Ok(pending)
}

/// The running pipeline of one view.
pub struct ViewTask {
    pub name: String,
    pub ops: Vec<Box<dyn Operator>>,
    pub materialize: MaterializeOperator,
    pub contents: Arc<ViewContents>,
    pub persist: Persist,
}

impl ViewTask {
    /// Applies the backfill, then follows `rx` until it closes.
    pub async fn run(mut self, backfill: Vec<Chunk>, mut rx: mpsc::Receiver<Message>) {
        if let Err(e) = self.step(backfill) {
            self.stop(e);
            return;
        }
        while let Some(msg) = rx.recv().await {
            let result = match msg {
                Message::Chunk(c) => self.step(vec![c]),
                Message::Barrier(b) => {
                    let r = self.barrier(b.epoch).await;
                    if let Some(ack) = &b.ack {
                        ack.ack(b.epoch);
                    }
                    r
                }
            };
            if let Err(e) = result {
                self.stop(e);
                // Keep draining so writers and FLUSH never wait on us.
                while let Some(msg) = rx.recv().await {
                    if let Message::Barrier(b) = msg
                        && let Some(ack) = &b.ack
                    {
                        ack.ack(b.epoch);
                    }
                }
                return;
            }
        }
    }

    fn stop(&self, e: Error) {
        tracing::error!(view = %self.name, error = %e, "materialized view stopped");
        self.contents.fail(e.to_string());
    }

    fn step(&mut self, chunks: Vec<Chunk>) -> Result<()> {
        for c in run_chunks(&mut self.ops, chunks)? {
            self.materialize.apply(&c)?;
        }
        Ok(())
    }

    async fn barrier(&mut self, epoch: Epoch) -> Result<()> {
        for c in run_barrier(&mut self.ops, epoch)? {
            self.materialize.apply(&c)?;
        }
        if self.materialize.changed() || self.contents.epoch() == 0 {
            let snapshot = self.materialize.snapshot()?;
            (self.persist)(epoch, snapshot.clone()).await?;
            self.contents.publish(epoch, snapshot);
        } else {
            let p = self.contents.read()?;
            if let Some(b) = p.into_iter().next() {
                self.contents.publish(epoch, b);
            }
        }
        Ok(())
    }
}

/// Reads a view: its last published snapshot.
#[derive(Debug)]
pub struct ViewTable {
    pub name: String,
    pub definition: String,
    pub contents: Arc<ViewContents>,
}

#[async_trait]
impl TableProvider for ViewTable {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn schema(&self) -> SchemaRef {
        self.contents.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let batches = self
            .contents
            .read()
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let mem = MemTable::try_new(self.contents.schema.clone(), vec![batches])?;
        mem.scan(state, projection, filters, limit).await
    }
}
