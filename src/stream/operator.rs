//! The operator trait.
//!
//! An operator turns input changes into output changes, doing work
//! proportional to the change, never to its whole input. Stateless operators
//! (filter, project) answer each chunk at once; stateful ones (hash
//! aggregation) may hold their output until the barrier, so that a group
//! touched many times in an epoch emits one update.

use crate::error::Result;
use crate::stream::chunk::Chunk;
use crate::stream::message::Epoch;

/// One node of a view's pipeline.
pub trait Operator: Send {
    /// A short name for logs and plans.
    fn name(&self) -> &'static str;

    /// Consumes one chunk; pushes any output chunks to `out`.
    fn process(&mut self, chunk: Chunk, out: &mut Vec<Chunk>) -> Result<()>;

    /// The epoch ends: emit what was held back (default: nothing). This is
    /// also where a stateful operator will snapshot its state for
    /// checkpoints.
    fn on_barrier(&mut self, _epoch: Epoch, _out: &mut Vec<Chunk>) -> Result<()> {
        Ok(())
    }

    /// A data error the operator's current state makes its output raise
    /// (SQLSTATE, message): an aggregate whose value no longer fits its
    /// type. The group's row is left out meanwhile; the view reports the
    /// error on reads until the state changes back.
    fn data_error(&self) -> Option<(&'static str, String)> {
        None
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
}
