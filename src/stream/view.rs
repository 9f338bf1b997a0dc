//! A materialized view at run time: its task, its published contents, the
//! views that read it, and the table provider that reads it.
//!
//! ```text
//!   input 0 ─▶ ops ─┐
//!                    ├─▶ join ─▶ ops ─┐
//!   input 1 ─▶ ops ─┘                 ├─▶ join ─▶ ops ─▶ materialize ─▶ downstream feeds
//!   input 2 ─▶ ops ───────────────────┘                        │
//!   Barrier(N) on every input (aligned) ─▶ flush the tree ─▶ [checkpoint: persist] ─▶ publish ─▶ forward
//! ```
//!
//! The task first applies the backfill of each input (its rows at the moment
//! the view subscribed), then follows the inputs. A barrier arriving on one
//! input blocks that input until the same epoch's barrier arrives on the
//! others (alignment), so an epoch's output never mixes changes of two
//! epochs. Reads never see the live multiset, only published snapshots: a
//! read is exactly the view as of one completed epoch, the same epoch in
//! every view the query touches (see [`ViewContents`]).
//!
//! Every barrier publishes; only a [`BarrierKind::Checkpoint`] also
//! persists — commits the changes of the epochs since the last commit to
//! the view's Iceberg table, before the barrier is passed on, so when a
//! checkpoint (FLUSH) completes every view's table holds its contents as
//! of that epoch (see [`crate::stream::ops::materialize`]).

use std::any::Any;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use datafusion::arrow::array::{BooleanArray, BooleanBufferBuilder, RecordBatch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::datasource::{MemTable, TableProvider, TableType};
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
use crate::storage::table::ViewCommit;
use crate::stream::chunk::{Chunk, Op};
use crate::stream::coordinator::EpochClock;
use crate::stream::graph::{Node, NodeKind};
use crate::stream::message::{
    Barrier, BarrierKind, ColumnWatermark, Epoch, EpochInfo, Message, Watermark, Watermarks,
};
use crate::stream::operator::{JoinSide, Operator};
use crate::stream::ops::materialize::{MaterializeOperator, Publication, split};

/// Called at each checkpoint with the changes since the last one, before
/// the barrier is passed on (the view's Iceberg commit); returns the data
/// files written, in row order, as (path, row count).
pub type Persist =
    Box<dyn FnMut(Epoch, ViewCommit) -> BoxFuture<'static, Result<Vec<(String, u64)>>> + Send>;

/// The rows a subscriber starts from, read as the view applies them.
pub type Backfill = futures::stream::BoxStream<'static, Result<Chunk>>;

/// A subscription: the rows to start from and the changes after them.
pub type Subscription = (Backfill, mpsc::Receiver<Message>);

/// Requests a running view answers between messages.
pub enum Control {
    Subscribe(oneshot::Sender<Subscription>),
}

/// What a view shows: its published snapshots, or why it stopped.
///
/// Reads are consistent across views: each read names the epoch it reads
/// (the newest epoch completed when its query started, from the
/// [`EpochClock`]), and every view answers with its snapshot as of that
/// epoch. So a view keeps, besides its newest snapshot, the older ones a
/// read may still ask for: every snapshot newer than the clock's oldest
/// readable epoch, and the newest one at or before it. Snapshots share
/// their Arrow buffers, so an unchanged segment costs nothing to keep.
#[derive(Debug)]
pub struct ViewContents {
    pub schema: SchemaRef,
    /// The views this one reads: their query failing makes this view's
    /// query fail too (the batch query would read them).
    upstream: Vec<Arc<ViewContents>>,
    clock: Arc<EpochClock>,
    published: RwLock<Published>,
}

#[derive(Debug)]
struct Published {
    /// (epoch, contents as of it), oldest first; never empty.
    versions: std::collections::VecDeque<(Epoch, Arc<Snapshot>)>,
    failed: Option<String>,
}

/// The view as of one epoch.
#[derive(Debug, Clone, Default)]
struct Snapshot {
    /// The contents, segment by segment: the view's Iceberg data files as
    /// of its last commit, one for one, then the epochs published since.
    /// Each segment's rows and, once some were deleted, which are live.
    segments: Vec<(RecordBatch, Option<BooleanArray>)>,
    /// The view's query fails over its inputs' rows as of this epoch
    /// (SQLSTATE, message): reads report it until the offending rows change.
    data_error: Option<(&'static str, String)>,
}

impl Published {
    fn latest(&self) -> &Arc<Snapshot> {
        &self.versions.back().expect("never empty").1
    }

    /// The snapshot a read of `epoch` sees: the newest at or before it, or
    /// the oldest kept if the view is younger than the epoch.
    fn as_of(&self, epoch: Epoch) -> &Arc<Snapshot> {
        &self
            .versions
            .iter()
            .rev()
            .find(|(e, _)| *e <= epoch)
            .unwrap_or_else(|| self.versions.front().expect("never empty"))
            .1
    }

    /// Adds the snapshot of `epoch` and forgets the ones no read can ask for
    /// any more.
    fn push(&mut self, epoch: Epoch, snapshot: Arc<Snapshot>, oldest_readable: Epoch) {
        self.versions.push_back((epoch, snapshot));
        while self.versions.len() > 1 && self.versions[1].0 <= oldest_readable {
            self.versions.pop_front();
        }
    }
}

impl ViewContents {
    /// `upstream`: the contents of the views this view reads.
    pub fn new(
        schema: SchemaRef,
        upstream: Vec<Arc<ViewContents>>,
        clock: Arc<EpochClock>,
    ) -> Arc<ViewContents> {
        Arc::new(ViewContents {
            schema,
            upstream,
            clock,
            published: RwLock::new(Published {
                versions: [(0, Arc::new(Snapshot::default()))].into(),
                failed: None,
            }),
        })
    }

    /// The epoch of the newest published snapshot.
    pub fn epoch(&self) -> Epoch {
        self.published
            .read()
            .expect("view lock")
            .versions
            .back()
            .expect("never empty")
            .0
    }

    /// How many snapshots the view keeps for reads (tests, metrics).
    pub fn versions(&self) -> usize {
        self.published.read().expect("view lock").versions.len()
    }

    /// Publishes an epoch: how it changes the segments (`None`: not at
    /// all), and whether the view's query fails as of this epoch.
    fn publish(
        &self,
        epoch: Epoch,
        change: Option<&Publication>,
        data_error: Option<(&'static str, String)>,
    ) -> Result<()> {
        let oldest_readable = self.clock.oldest_readable();
        // Build the new segment list outside the write lock; reads go on.
        // Only this view's task publishes, so the latest cannot change
        // meanwhile.
        let mut segments = self
            .published
            .read()
            .expect("view lock")
            .latest()
            .segments
            .clone();
        if let Some(change) = change {
            if change.keep > segments.len() {
                return Err(Error::Internal("view keeps segments it never had".into()));
            }
            segments.truncate(change.keep);
            let mut by_segment: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
            for l in &change.deleted {
                let (s, pos) = split(*l);
                by_segment.entry(s).or_default().push(pos);
            }
            for (s, positions) in by_segment {
                let (batch, live) = segments
                    .get_mut(s)
                    .ok_or_else(|| Error::Internal("delete in an unknown view segment".into()))?;
                // Bitwise copy of the old mask, then clear the deleted bits.
                let mut mask = BooleanBufferBuilder::new(batch.num_rows());
                match live {
                    Some(m) => mask.append_buffer(m.values()),
                    None => mask.append_n(batch.num_rows(), true),
                }
                for p in positions {
                    mask.set_bit(p, false);
                }
                *live = Some(BooleanArray::new(mask.finish(), None));
            }
            segments.extend(change.added.iter().map(|b| (b.clone(), None)));
        }
        let snapshot = Arc::new(Snapshot {
            segments,
            data_error,
        });
        self.published
            .write()
            .expect("view lock")
            .push(epoch, snapshot, oldest_readable);
        Ok(())
    }

    fn fail(&self, why: String) {
        self.published.write().expect("view lock").failed = Some(why);
    }

    /// The data error of this view's query or of a view it reads.
    fn data_error(&self, epoch: Epoch) -> Option<(&'static str, String)> {
        let own = self
            .published
            .read()
            .expect("view lock")
            .as_of(epoch)
            .data_error
            .clone();
        own.or_else(|| self.upstream.iter().find_map(|u| u.data_error(epoch)))
    }

    /// Whether the view stopped (an internal error or a panic).
    pub fn failure(&self) -> Option<String> {
        self.published.read().expect("view lock").failed.clone()
    }

    /// The rows as of `epoch` (see [`EpochClock::as_of`]); the error its
    /// query raises over the rows of that epoch; or the error that stopped
    /// the view.
    pub fn read(&self, view: &str, epoch: Epoch) -> Result<Vec<RecordBatch>> {
        let snapshot = {
            let p = self.published.read().expect("view lock");
            if let Some(why) = &p.failed {
                return Err(Error::ViewError {
                    view: view.to_string(),
                    sqlstate: "XX000",
                    message: format!("the view stopped and is being rebuilt: {why}"),
                });
            }
            p.as_of(epoch).clone()
        };
        let data_error = snapshot
            .data_error
            .clone()
            .or_else(|| self.upstream.iter().find_map(|u| u.data_error(epoch)));
        if let Some((sqlstate, message)) = data_error {
            return Err(Error::ViewError {
                view: view.to_string(),
                sqlstate,
                message,
            });
        }
        snapshot
            .segments
            .iter()
            .map(|(batch, live)| match live {
                None => Ok(batch.clone()),
                Some(mask) => Ok(datafusion::arrow::compute::filter_record_batch(
                    batch, mask,
                )?),
            })
            .collect()
    }

    /// The epoch a query started at `start` reads.
    pub fn read_epoch(&self, start: Option<chrono::DateTime<chrono::Utc>>) -> Epoch {
        self.clock.as_of(start)
    }
}

/// Rows a view left out because evaluating them failed (a division by
/// zero, an overflow, a bad cast), counted per error with their weights:
/// an insert adds one, the delete of the same row (which fails the same
/// way) takes it away. While any count is not zero the view's query fails
/// over the current rows, and reads say so; once the rows are gone the
/// view is exact again, because they never reached any state.
///
/// A view that reads a source cannot wait for its bad rows to go (an event
/// is never deleted): with a [`Poison::dead_letters`] sink, a row whose
/// evaluation fails is left out and reported there instead — with the
/// error and the row as its operator saw it — and reads never fail for it.
#[derive(Default)]
pub struct Poison {
    counts: std::collections::BTreeMap<(&'static str, String), i64>,
    dead_letters: Option<DeadLetterSink>,
}

/// Takes a view's left-out rows at once (before the epoch they belong to
/// completes, so the checkpoint that ends it can commit them).
pub type DeadLetterSink = Arc<dyn Fn(ViewDeadLetter) + Send + Sync>;

/// A row a view over a source left out: the error and the row (JSON text).
#[derive(Debug)]
pub struct ViewDeadLetter {
    pub error: String,
    pub row: String,
}

impl Poison {
    /// Failing rows go to `sink` rather than into the counts.
    pub fn with_dead_letters(sink: DeadLetterSink) -> Poison {
        Poison {
            counts: Default::default(),
            dead_letters: Some(sink),
        }
    }

    fn add_row(&mut self, e: &Error, weight: i64, row: &RecordBatch) {
        let Some(sink) = &self.dead_letters else {
            return self.add(e, weight);
        };
        // A retraction of a row that was left out is left out too.
        if weight > 0 {
            sink(ViewDeadLetter {
                error: data_error_message(e),
                row: crate::stream::late_events::row_json(row, 0),
            });
        }
    }

    fn add(&mut self, e: &Error, weight: i64) {
        let key = (e.sqlstate(), data_error_message(e));
        let c = self.counts.entry(key.clone()).or_insert(0);
        *c += weight;
        if *c == 0 {
            self.counts.remove(&key);
        }
    }

    /// The error of the rows still left out, if any.
    fn first(&self) -> Option<(&'static str, String)> {
        self.counts.keys().next().cloned()
    }
}

/// The message of a data error as a client would see it.
fn data_error_message(e: &Error) -> String {
    crate::error::sqlstate_of(e).1
}

/// Errors a row's values cause (SQLSTATE class 22: data exception), as
/// opposed to errors of the engine.
fn is_data_error(e: &Error) -> bool {
    e.sqlstate().starts_with("22")
}

/// Runs `f` on a chunk; if a row's values make it fail, runs it row by
/// row instead and leaves the failing rows out (in `poison`). Operators
/// evaluate every expression before touching their state, so a failed
/// call changed nothing.
fn isolate(
    chunk: Chunk,
    out: &mut Vec<Chunk>,
    poison: &mut Poison,
    mut f: impl FnMut(Chunk, &mut Vec<Chunk>) -> Result<()>,
) -> Result<()> {
    let before = out.len();
    let e = match f(chunk.clone(), out) {
        Ok(()) => return Ok(()),
        Err(e) if is_data_error(&e) => e,
        Err(e) => return Err(e),
    };
    out.truncate(before);
    tracing::debug!(error = %e, rows = chunk.num_rows(), "data error: isolating rows");
    for (row, op) in chunk.ops.iter().enumerate() {
        // An update pair split in two is a delete and an insert.
        let op = match op {
            Op::UpdateDelete => Op::Delete,
            Op::UpdateInsert => Op::Insert,
            o => *o,
        };
        let single = Chunk::new(chunk.batch.slice(row, 1), vec![op]);
        let mark = out.len();
        match f(single, out) {
            Ok(()) => {}
            Err(e) if is_data_error(&e) => {
                out.truncate(mark);
                poison.add_row(&e, op.weight(), &chunk.batch.slice(row, 1));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Runs operators over chunks in order.
fn run_chunks(
    ops: &mut [Box<dyn Operator>],
    mut chunks: Vec<Chunk>,
    poison: &mut Poison,
) -> Result<Vec<Chunk>> {
    for op in ops.iter_mut() {
        let mut out = Vec::with_capacity(chunks.len());
        for c in chunks {
            isolate(c, &mut out, poison, |c, out| op.process(c, out))?;
        }
        chunks = out;
    }
    Ok(chunks)
}

/// Ends an epoch for a chain, starting with `pending` input: each operator
/// flushes, and what it flushes runs through the operators after it before
/// they flush in turn.
///
/// Each operator gets its input's new watermarks (`watermarks[k]`) after
/// the epoch's last rows reached it and before it flushes: rows of the
/// epoch are judged by the previous watermark, and what the new one
/// closes is closed at this barrier.
fn run_barrier(
    ops: &mut [Box<dyn Operator>],
    mut pending: Vec<Chunk>,
    epoch: EpochInfo,
    poison: &mut Poison,
    watermarks: &[Watermarks],
) -> Result<Vec<Chunk>> {
    for (k, op) in ops.iter_mut().enumerate() {
        let mut out = Vec::new();
        for c in pending {
            isolate(c, &mut out, poison, |c, out| op.process(c, out))?;
        }
        if let Some(w) = watermarks.get(k) {
            op.on_watermarks(w);
        }
        op.on_barrier(epoch, &mut out)?;
        pending = out;
    }
    Ok(pending)
}

/// Input `i` changed: its chunks run up the tree from its leaf to the
/// root. The node must read input `i`.
fn push_node(
    node: &mut Node,
    i: usize,
    chunks: Vec<Chunk>,
    poison: &mut Poison,
) -> Result<Vec<Chunk>> {
    let chunks = match &mut node.kind {
        NodeKind::Input(_) => chunks,
        NodeKind::Binary { left, right, op } => {
            let (side, child) = if left.reads(i) {
                (JoinSide::Left, left)
            } else {
                (JoinSide::Right, right)
            };
            let mut out = Vec::new();
            for c in push_node(child, i, chunks, poison)? {
                isolate(c, &mut out, poison, |c, out| op.process(side, c, out))?;
            }
            out
        }
    };
    run_chunks(&mut node.ops, chunks, poison)
}

/// Ends an epoch for a subtree: children first (left, then right), then
/// this node's operators, each flushing after what reached it. The
/// inputs' watermarks (`watermarks`, by input) go up the tree with it:
/// each operator gets its input's before it flushes, and the subtree's
/// output watermarks come back with its output.
fn flush_node(
    node: &mut Node,
    epoch: EpochInfo,
    poison: &mut Poison,
    watermarks: &[Watermarks],
) -> Result<(Vec<Chunk>, Watermarks)> {
    let (pending, mut w) = match &mut node.kind {
        NodeKind::Input(i) => (Vec::new(), watermarks.get(*i).cloned().unwrap_or_default()),
        NodeKind::Binary { left, right, op } => {
            let mut out = Vec::new();
            let (chunks, lw) = flush_node(left, epoch, poison, watermarks)?;
            for c in chunks {
                isolate(c, &mut out, poison, |c, out| {
                    op.process(JoinSide::Left, c, out)
                })?;
            }
            let (chunks, rw) = flush_node(right, epoch, poison, watermarks)?;
            for c in chunks {
                isolate(c, &mut out, poison, |c, out| {
                    op.process(JoinSide::Right, c, out)
                })?;
            }
            op.on_watermarks(&lw, &rw);
            op.on_barrier(epoch, &mut out)?;
            (out, op.output_watermarks(&lw, &rw))
        }
    };
    let mut per_op = Vec::with_capacity(node.ops.len());
    for op in node.ops.iter() {
        let next = op.output_watermarks(&w);
        per_op.push(std::mem::replace(&mut w, next));
    }
    Ok((
        run_barrier(&mut node.ops, pending, epoch, poison, &per_op)?,
        w,
    ))
}

/// The first data error an operator of the tree holds in its state (an
/// aggregate whose value does not fit its type).
fn node_data_error(node: &Node) -> Option<(&'static str, String)> {
    let own = node.ops.iter().find_map(|op| op.data_error());
    own.or_else(|| match &node.kind {
        NodeKind::Input(_) => None,
        NodeKind::Binary { left, right, .. } => {
            node_data_error(left).or_else(|| node_data_error(right))
        }
    })
}

/// The running pipeline of one view.
pub struct ViewTask {
    pub name: String,
    /// The operator tree; its leaves are the inputs.
    pub root: Node,
    /// The last epoch injected before the view subscribed: barriers up to
    /// it come only on some inputs (through upstream views) and are
    /// dropped.
    pub start_epoch: Epoch,
    pub materialize: MaterializeOperator,
    pub contents: Arc<ViewContents>,
    pub persist: Persist,
    pub control: mpsc::Receiver<Control>,
    pub downstream: Vec<mpsc::Sender<Message>>,
    /// Rows left out because their evaluation failed.
    pub poison: Poison,
    /// Where to ask for a rebuild when the task stops.
    pub rebuild: Option<mpsc::UnboundedSender<String>>,
    /// A fault to inject (tests only).
    pub fault: Fault,
    /// Per input, its columns' watermarks as last received.
    pub watermarks: Vec<Watermarks>,
}

/// A fault injected into a view for tests (`STREAMLAKE_FAULTS=view-panic:<view>`,
/// see [`crate::storage::fault`]): the view's operators panic once, at the
/// first barrier after rows reached the view.
#[derive(Default)]
pub struct Fault {
    view: String,
    armed: bool,
    saw_rows: bool,
}

impl Fault {
    pub fn from_env(view: &str) -> Fault {
        let armed = std::env::var("STREAMLAKE_FAULTS").is_ok_and(|s| {
            s.split(',')
                .any(|p| p.trim() == format!("view-panic:{view}"))
        });
        Fault {
            view: view.to_string(),
            armed,
            saw_rows: false,
        }
    }

    fn at_barrier(&mut self) {
        if self.armed && self.saw_rows && crate::storage::fault::fire("view-panic", &self.view) {
            panic!("injected fault: view-panic");
        }
    }
}

/// Runs operator code, turning a panic into an internal error (the panic
/// hook has logged it with its backtrace), so one view's bug never takes
/// down the server or another view.
fn guarded<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".to_string());
            Err(Error::Internal(format!("an operator panicked: {what}")))
        }
    }
}

impl ViewTask {
    /// Applies the backfills, then follows the inputs until they close.
    pub async fn run(mut self, backfills: Vec<Backfill>, mut inputs: Vec<mpsc::Receiver<Message>>) {
        use futures::StreamExt;
        for (i, mut backfill) in backfills.into_iter().enumerate() {
            while let Some(chunk) = backfill.next().await {
                let applied = match chunk {
                    Ok(c) => self.input(i, vec![c]).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = applied {
                    return self.stop(e, inputs).await;
                }
            }
        }
        let n = inputs.len();
        let mut held: Vec<Option<Barrier>> = vec![None; n];
        // Messages that arrived on an input while it waited for alignment.
        // Inputs are always read (never left to fill up): an upstream view
        // or a table writer blocked on a full channel could otherwise be the
        // very thing holding back the barrier we wait for.
        let mut parked: Vec<std::collections::VecDeque<Message>> = vec![Default::default(); n];
        let mut turn = 0;
        loop {
            let event = tokio::select! {
                Some(c) = self.control.recv() => Event::Control(c),
                (i, m) = recv_any(&mut inputs, &mut turn) => Event::Input(i, m),
            };
            let (i, msg) = match event {
                Event::Control(c) => {
                    if let Err(e) = self.control(c).await {
                        return self.stop(e, inputs).await;
                    }
                    continue;
                }
                Event::Input(i, m) => (i, m),
            };
            let Some(msg) = msg else {
                // An input stopped (an upstream view failed and is being
                // rebuilt, which rebuilds this view too): say so.
                self.contents
                    .fail("an input of this view stopped".to_string());
                return;
            };
            // Keep each input's order: behind parked messages, park too.
            let mut result = if held[i].is_some() || !parked[i].is_empty() {
                parked[i].push_back(msg);
                Ok(())
            } else {
                self.deliver(i, msg, &mut held).await
            };
            // Replay parked messages of every input that is free, until
            // nothing moves (a replayed barrier may complete an epoch and
            // free the others).
            loop {
                let mut progressed = false;
                for j in 0..n {
                    while result.is_ok() && held[j].is_none() {
                        let Some(m) = parked[j].pop_front() else {
                            break;
                        };
                        result = self.deliver(j, m, &mut held).await;
                        progressed = true;
                    }
                }
                if !progressed || result.is_err() {
                    break;
                }
            }
            if let Err(e) = result {
                return self.stop(e, inputs).await;
            }
        }
    }

    /// Handles one message of input `i`: a chunk flows through; a barrier
    /// holds the input until every input has the same barrier, then ends
    /// the epoch.
    async fn deliver(
        &mut self,
        i: usize,
        msg: Message,
        held: &mut [Option<Barrier>],
    ) -> Result<()> {
        match msg {
            Message::Chunk(c) => self.input(i, vec![c]).await,
            // Kept until the barrier: operators act on watermarks there.
            Message::Watermark(w) => {
                if self.watermarks.len() <= i {
                    self.watermarks.resize(i + 1, Vec::new());
                }
                let columns = &mut self.watermarks[i];
                if columns.len() <= w.column {
                    columns.resize(w.column + 1, None);
                }
                let micros = columns[w.column].map_or(w.timestamp, |c| c.micros.max(w.timestamp));
                columns[w.column] = Some(ColumnWatermark {
                    micros,
                    window: false,
                });
                Ok(())
            }
            Message::Barrier(b) if b.epoch <= self.start_epoch => Ok(()),
            Message::Barrier(b) => {
                held[i] = Some(b);
                if held.iter().all(Option::is_some) {
                    let barrier = held[0].clone().expect("all held");
                    if held.iter().flatten().any(|h| h.epoch != barrier.epoch) {
                        let epochs: Vec<Epoch> = held.iter().flatten().map(|h| h.epoch).collect();
                        return Err(Error::Internal(format!(
                            "inputs delivered different epochs at a barrier: {epochs:?}"
                        )));
                    }
                    held.iter_mut().for_each(|h| *h = None);
                    self.barrier(barrier).await
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Marks the view failed and keeps draining, so writers and FLUSH never
    /// wait on it.
    async fn stop(mut self, e: Error, mut inputs: Vec<mpsc::Receiver<Message>>) {
        tracing::error!(view = %self.name, error = %e, "materialized view stopped");
        self.contents.fail(e.to_string());
        self.downstream.clear();
        if let Some(tx) = self.rebuild.take() {
            let _ = tx.send(self.name.clone());
        }
        let mut turn = 0;
        loop {
            tokio::select! {
                Some(Control::Subscribe(reply)) = self.control.recv() => {
                    let (_tx, rx) = mpsc::channel(1);
                    let _ = reply.send((Box::pin(futures::stream::empty()), rx));
                }
                (_, m) = recv_any(&mut inputs, &mut turn) => if m.is_none() { return },
            }
        }
    }

    async fn control(&mut self, c: Control) -> Result<()> {
        match c {
            Control::Subscribe(reply) => {
                // The live contents and the feed meet at this point of the
                // changelog: nothing missed, nothing twice.
                let rows = self.materialize.live_chunk()?;
                let (tx, rx) = mpsc::channel(16);
                self.downstream.push(tx);
                let backfill = futures::stream::iter(rows.into_iter().map(Ok));
                let _ = reply.send((Box::pin(backfill), rx));
                Ok(())
            }
        }
    }

    /// Input `i` changed.
    async fn input(&mut self, i: usize, chunks: Vec<Chunk>) -> Result<()> {
        if self.fault.armed && chunks.iter().any(|c| !c.is_empty()) && self.contents.epoch() > 0 {
            self.fault.saw_rows = true;
        }
        let (root, poison) = (&mut self.root, &mut self.poison);
        let chunks = guarded(|| push_node(root, i, chunks, poison))?;
        self.emit(chunks).await
    }

    async fn emit(&mut self, chunks: Vec<Chunk>) -> Result<()> {
        for c in chunks {
            if c.is_empty() {
                continue;
            }
            self.materialize.apply(&c)?;
            send_all(&mut self.downstream, Message::Chunk(c)).await;
        }
        Ok(())
    }

    async fn barrier(&mut self, barrier: Barrier) -> Result<()> {
        let epoch = barrier.epoch;
        let info = barrier.info();
        let (root, poison, fault) = (&mut self.root, &mut self.poison, &mut self.fault);
        let watermarks = &self.watermarks;
        let (out, output_watermarks) = guarded(|| {
            fault.at_barrier();
            flush_node(root, info, poison, watermarks)
        })?;
        self.emit(out).await?;
        let data_error = self.poison.first().or_else(|| node_data_error(&self.root));
        if let Some((code, message)) = &data_error {
            tracing::debug!(view = %self.name, epoch, sqlstate = code, %message, "view query fails over the current rows");
        }
        let change = match barrier.kind {
            BarrierKind::Epoch => self.materialize.epoch()?,
            BarrierKind::Checkpoint => match self.materialize.checkpoint()? {
                Some(commit) => {
                    let written = (self.persist)(epoch, commit).await?;
                    Some(self.materialize.committed(&written)?)
                }
                None => None,
            },
        };
        self.contents.publish(epoch, change.as_ref(), data_error)?;
        // The output's watermarks go to the views reading this one, before
        // the barrier, as a source's do.
        for (column, w) in output_watermarks.iter().enumerate() {
            if let Some(w) = w {
                send_all(
                    &mut self.downstream,
                    Message::Watermark(Watermark {
                        column,
                        timestamp: w.micros,
                    }),
                )
                .await;
            }
        }
        // Pass the epoch on; our copy of its token drops with `barrier`.
        send_all(&mut self.downstream, Message::Barrier(barrier)).await;
        Ok(())
    }
}

enum Event {
    Control(Control),
    Input(usize, Option<Message>),
}

/// Receives the next message of any input, starting the scan at a
/// rotating position so a busy input cannot starve the others. `None`
/// means that input closed.
async fn recv_any(
    inputs: &mut [mpsc::Receiver<Message>],
    turn: &mut usize,
) -> (usize, Option<Message>) {
    let n = inputs.len();
    std::future::poll_fn(|cx| {
        for k in 0..n {
            let i = (*turn + k) % n;
            if let std::task::Poll::Ready(m) = inputs[i].poll_recv(cx) {
                *turn = (i + 1) % n;
                return std::task::Poll::Ready((i, m));
            }
        }
        std::task::Poll::Pending
    })
    .await
}

/// Sends to every downstream view, forgetting the ones that are gone.
async fn send_all(feeds: &mut Vec<mpsc::Sender<Message>>, msg: Message) {
    let mut open = Vec::with_capacity(feeds.len());
    for f in feeds.drain(..) {
        if f.send(msg.clone()).await.is_ok() {
            open.push(f);
        }
    }
    *feeds = open;
}

/// Reads a view: its last published snapshot.
#[derive(Debug)]
pub struct ViewTable {
    pub name: String,
    pub definition: String,
    /// Which output columns carry a watermark (planning placeholders),
    /// for views defined over this one.
    pub watermarks: Watermarks,
    /// The view only ever gains rows (EMIT ON WINDOW CLOSE, filters of a
    /// source, …).
    pub append_only: bool,
    pub contents: Arc<ViewContents>,
    /// Where downstream views subscribe.
    pub control: mpsc::Sender<Control>,
}

impl ViewTable {
    /// Subscribes a downstream view to this one.
    pub async fn subscribe(&self) -> Result<Subscription> {
        let (tx, rx) = oneshot::channel();
        self.control
            .send(Control::Subscribe(tx))
            .await
            .map_err(|_| Error::Internal(format!("view {} is not running", self.name)))?;
        rx.await
            .map_err(|_| Error::Internal(format!("view {} is not running", self.name)))
    }
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

    fn get_table_definition(&self) -> Option<&str> {
        Some(&self.definition)
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        // Every view a query touches answers as of the same epoch: the
        // newest completed when the query started.
        let epoch = self
            .contents
            .read_epoch(state.execution_props().query_execution_start_time);
        let batches = self
            .contents
            .read(&self.name, epoch)
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let mem = MemTable::try_new(self.contents.schema.clone(), vec![batches])?;
        mem.scan(state, projection, filters, limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(n: i64) -> Arc<Snapshot> {
        Arc::new(Snapshot {
            segments: Vec::new(),
            data_error: (n != 0).then(|| ("22000", n.to_string())),
        })
    }

    fn tag(s: &Arc<Snapshot>) -> String {
        s.data_error.as_ref().map_or("0".into(), |(_, m)| m.clone())
    }

    #[test]
    fn a_read_gets_the_newest_snapshot_at_or_before_its_epoch() {
        let mut p = Published {
            versions: [(0, snapshot(0))].into(),
            failed: None,
        };
        p.push(3, snapshot(3), 0);
        p.push(5, snapshot(5), 0);
        assert_eq!(tag(p.as_of(2)), "0");
        assert_eq!(tag(p.as_of(4)), "3");
        assert_eq!(tag(p.as_of(5)), "5");
        assert_eq!(tag(p.as_of(9)), "5");
        // Once epoch 4 is the oldest a read may ask for, epoch 3's snapshot
        // answers it and older ones go.
        p.push(6, snapshot(6), 4);
        assert_eq!(
            p.versions.iter().map(|(e, _)| *e).collect::<Vec<_>>(),
            [3, 5, 6]
        );
        assert_eq!(tag(p.as_of(4)), "3");
        // A view younger than the epoch read answers with its oldest.
        assert_eq!(tag(p.as_of(1)), "3");
    }
}
