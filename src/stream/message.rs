//! Messages between operators: changes, and barriers that mark the end of
//! an epoch.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::stream::chunk::Chunk;

/// An epoch number; barriers carry them in increasing order.
pub type Epoch = u64;

/// Marks that every change before it on this channel belongs to epochs
/// `<= epoch`. `ack` is told when a view has published that epoch.
#[derive(Debug, Clone)]
pub struct Barrier {
    pub epoch: Epoch,
    pub ack: Option<Arc<BarrierAck>>,
}

/// Collects acknowledgements of one barrier from every view it reached.
#[derive(Debug)]
pub struct BarrierAck {
    tx: mpsc::UnboundedSender<Epoch>,
}

impl BarrierAck {
    pub fn new() -> (Arc<BarrierAck>, mpsc::UnboundedReceiver<Epoch>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Arc::new(BarrierAck { tx }), rx)
    }

    pub fn ack(&self, epoch: Epoch) {
        let _ = self.tx.send(epoch);
    }
}

/// What travels on a channel.
#[derive(Debug, Clone)]
pub enum Message {
    Chunk(Chunk),
    Barrier(Barrier),
}
