//! Messages between operators: changes, barriers that mark the end of an
//! epoch, and (reserved) watermarks.
//!
//! Every channel between a source, an operator and a view carries one
//! ordered sequence of [`Message`]s. A barrier for epoch N follows every
//! change of epochs `<= N` on its channel and precedes every change of
//! later epochs; the [`coordinator`](crate::stream::coordinator) injects
//! each barrier into every source at once.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::stream::chunk::Chunk;

/// An epoch number; barriers carry them in increasing order, and they keep
/// increasing across restarts (the coordinator persists them).
pub type Epoch = u64;

/// What a barrier asks of the operators it passes.
///
/// | kind         | operators flush | views publish (memory) | views commit (Iceberg) |
/// |--------------|-----------------|------------------------|------------------------|
/// | `Epoch`      | yes             | yes                    | no                     |
/// | `Checkpoint` | yes             | yes                    | yes, one snapshot per view changed since its last commit |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarrierKind {
    /// End the epoch: flush, publish, pass the barrier on. About once a
    /// second (`barrier_interval`).
    Epoch,
    /// End the epoch and make it durable: everything `Epoch` does, and
    /// every view commits the changes of the epochs since its last commit
    /// as one Iceberg snapshot before passing the barrier on. Every
    /// `checkpoint_interval` and at FLUSH. (The exactly-once work adds
    /// operator state and source offsets here.)
    Checkpoint,
}

/// Marks that every change before it on this channel belongs to epochs
/// `<= epoch`.
#[derive(Debug, Clone)]
pub struct Barrier {
    pub epoch: Epoch,
    pub kind: BarrierKind,
    /// The epoch's time, µs since the Unix epoch (UTC): `now()` in a view
    /// and the clock of state TTLs. Set once by the coordinator and
    /// increasing, so every view sees the same time for an epoch.
    pub timestamp: i64,
    /// Every copy of the barrier holds the epoch's token: a view drops its
    /// copy once it has published the epoch and passed the barrier on to
    /// the views that read it, so the epoch is complete when the last copy
    /// is gone.
    pub token: Option<Arc<EpochToken>>,
}

impl Barrier {
    /// What operators learn from the barrier.
    pub fn info(&self) -> EpochInfo {
        EpochInfo {
            epoch: self.epoch,
            now: self.timestamp,
        }
    }
}

/// The epoch an operator is ending, and its time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochInfo {
    pub epoch: Epoch,
    /// The epoch's timestamp (µs since the Unix epoch): see
    /// [`Barrier::timestamp`].
    pub now: i64,
}

/// Completion of one epoch, seen by whoever injected its barriers.
#[derive(Debug)]
pub struct EpochToken {
    _tx: mpsc::Sender<()>,
}

impl EpochToken {
    /// A token and the receiver that closes once every copy is dropped.
    pub fn new() -> (Arc<EpochToken>, mpsc::Receiver<()>) {
        let (tx, rx) = mpsc::channel(1);
        (Arc::new(EpochToken { _tx: tx }), rx)
    }
}

/// Event time has reached `timestamp` in column `column` of the channel's
/// schema: later rows should carry a value `>= timestamp` there; a row
/// below it is *late* (it is still delivered; the operators that care —
/// window assignment, closing aggregates — decide what late means for
/// them). Sources with `WATERMARK FOR` send one into each feed right
/// before each barrier; a view sends its output columns' watermarks to the
/// views that read it, also right before the barrier. Operators act on
/// them only at barriers, so the same epochs give the same results.
#[derive(Debug, Clone)]
pub struct Watermark {
    pub column: usize,
    /// Microseconds since the Unix epoch (UTC).
    pub timestamp: i64,
}

/// The watermark of one column inside a view's pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnWatermark {
    /// Microseconds since the Unix epoch: later rows should carry a value
    /// `>= micros` in the column.
    pub micros: i64,
    /// The column is a window bound (window_start / window_end of TUMBLE,
    /// HOP or SESSION, or derived from one by adding a constant): an
    /// aggregate grouped by it closes a group once the watermark passes
    /// the group's value.
    pub window: bool,
}

/// Per column of a schema, its watermark if it has one. Shorter than the
/// schema means `None` for the missing columns.
pub type Watermarks = Vec<Option<ColumnWatermark>>;

/// The watermark of column `i`, if any.
pub fn watermark_of(w: &[Option<ColumnWatermark>], i: usize) -> Option<ColumnWatermark> {
    w.get(i).copied().flatten()
}

/// What travels on a channel.
#[derive(Debug, Clone)]
pub enum Message {
    Chunk(Chunk),
    Barrier(Barrier),
    Watermark(Watermark),
}
