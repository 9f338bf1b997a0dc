//! Messages between operators: changes, and barriers that mark the end of
//! an epoch.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::stream::chunk::Chunk;

/// An epoch number; barriers carry them in increasing order.
pub type Epoch = u64;

/// Marks that every change before it on this channel belongs to epochs
/// `<= epoch`.
#[derive(Debug, Clone)]
pub struct Barrier {
    pub epoch: Epoch,
    /// Every copy of the barrier holds the epoch's token: a view drops its
    /// copy once it has published the epoch and passed the barrier on to
    /// the views that read it, so the epoch is complete when the last copy
    /// is gone.
    pub token: Option<Arc<EpochToken>>,
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

/// What travels on a channel.
#[derive(Debug, Clone)]
pub enum Message {
    Chunk(Chunk),
    Barrier(Barrier),
}
