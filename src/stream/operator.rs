//! The operator trait.
//!
//! An operator turns input changes into output changes, doing work
//! proportional to the change, never to its whole input. Stateless operators
//! (filter, project) answer each chunk at once; stateful ones (hash
//! aggregation) may hold their output until the barrier, so that a group
//! touched many times in an epoch emits one update.

use crate::error::Result;
use crate::stream::chunk::Chunk;
use crate::stream::message::{ColumnWatermark, EpochInfo, Watermarks};

/// One state table of an operator as it is now: for
/// `streamlake.operator_state` and tests that check state is released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateSummary {
    /// What the table holds ("groups", "left rows", …).
    pub table: &'static str,
    pub keys: usize,
    pub bytes: usize,
}

/// One node of a view's pipeline.
pub trait Operator: Send {
    /// A short name for logs and plans.
    fn name(&self) -> &'static str;

    /// Consumes one chunk; pushes any output chunks to `out`.
    fn process(&mut self, chunk: Chunk, out: &mut Vec<Chunk>) -> Result<()>;

    /// The epoch ends: emit what was held back (default: nothing). This is
    /// also where a stateful operator will snapshot its state for
    /// checkpoints.
    fn on_barrier(&mut self, _epoch: EpochInfo, _out: &mut Vec<Chunk>) -> Result<()> {
        Ok(())
    }

    /// The watermarks of the output columns, given the input's (pure: also
    /// used when planning, to know which columns of a view carry one).
    /// Default: none (the operator makes no promise about its output's
    /// times).
    fn output_watermarks(&self, _input: &[Option<ColumnWatermark>]) -> Watermarks {
        Vec::new()
    }

    /// Whether the output only ever inserts, given whether the input does
    /// (default: no — retractions possible).
    fn append_only(&self, _input: bool) -> bool {
        false
    }

    /// A line for EXPLAIN: the name and what the operator holds or does.
    fn describe(&self) -> String {
        self.name().to_string()
    }

    /// The input's watermarks as of the barrier being processed; called
    /// before `on_barrier`. Operators that close state keep them.
    fn on_watermarks(&mut self, _input: &[Option<ColumnWatermark>]) {}

    /// Planning: the input's (static) watermarks. An operator that can
    /// close event-time windows on them (an aggregate grouped by a window
    /// bound) sets itself up to — emitting each group once when it closes
    /// if `emit_on_close` — and returns true.
    fn plan_windows(
        &mut self,
        _input: &[Option<ColumnWatermark>],
        _emit_on_close: bool,
        _late: Option<crate::stream::late_events::LateSink>,
    ) -> bool {
        false
    }

    /// A data error the operator's current state makes its output raise
    /// (SQLSTATE, message): an aggregate whose value no longer fits its
    /// type. The group's row is left out meanwhile; the view reports the
    /// error on reads until the state changes back.
    fn data_error(&self) -> Option<(&'static str, String)> {
        None
    }

    /// The operator's state tables as of the last barrier (default: none,
    /// a stateless operator).
    fn state(&self) -> Vec<StateSummary> {
        Vec::new()
    }
}

/// Which input of a two-input operator a chunk comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinSide {
    Left,
    Right,
}

/// An operator with two inputs (joins). The runtime aligns barriers, so
/// `on_barrier` runs once both inputs have finished the epoch.
pub trait TwoInputOperator: Send {
    fn name(&self) -> &'static str;

    fn process(&mut self, side: JoinSide, chunk: Chunk, out: &mut Vec<Chunk>) -> Result<()>;

    /// Whether the output only ever inserts, given the inputs'.
    fn append_only(&self, _left: bool, _right: bool) -> bool {
        false
    }

    /// The output columns' watermarks given each input's (pure). Default:
    /// none.
    fn output_watermarks(
        &self,
        _left: &[Option<ColumnWatermark>],
        _right: &[Option<ColumnWatermark>],
    ) -> Watermarks {
        Vec::new()
    }

    /// Each input's watermarks as of the barrier, after both inputs' rows
    /// of the epoch and before `on_barrier`.
    fn on_watermarks(
        &mut self,
        _left: &[Option<ColumnWatermark>],
        _right: &[Option<ColumnWatermark>],
    ) {
    }

    /// The epoch ends (both inputs are aligned): emit what was held back,
    /// release what the watermarks proved final.
    fn on_barrier(&mut self, _epoch: EpochInfo, _out: &mut Vec<Chunk>) -> Result<()> {
        Ok(())
    }

    /// A line for EXPLAIN.
    fn describe(&self) -> String {
        self.name().to_string()
    }

    /// The operator's state tables as of the last barrier.
    fn state(&self) -> Vec<StateSummary> {
        Vec::new()
    }
}
