//! The barrier coordinator: owns the epoch counter, injects each barrier
//! into every source at once, and records when epochs complete.
//!
//! ```text
//!   end_epoch(kind) ─▶ N = last + 1 ─▶ inject Barrier(N, kind) into every source ─▶ wait for the token
//!                        │ (durable, reserved in blocks)                             │ (views publish N,
//!                        ▼                                                           ▼  [commit,] pass it on)
//!                  catalog counter                                      EpochClock: N completed at t
//! ```
//!
//! A barrier is an [`Epoch`](BarrierKind::Epoch) (views publish in memory)
//! or a [`Checkpoint`](BarrierKind::Checkpoint) (views also commit to
//! Iceberg); the coordinator records when the last checkpoint was injected
//! so the periodic loop knows when the next is due.
//!
//! Epochs are durable and monotonic across restarts: the counter reserves
//! [`EPOCH_BLOCK`] epochs at a time in the catalog database and, after a
//! restart, continues above the last reservation, so an epoch number is
//! never reused even after a kill -9 (numbers may be skipped).
//!
//! One barrier at a time: `end_epoch` holds a lock from the counter's
//! increment to the epoch's completion, so epochs reach every feed — and
//! complete — in order. [`BarrierCoordinator::pause`] takes the same lock
//! so a view can subscribe to several sources with no barrier in between
//! (a view would otherwise see an epoch on one input and not the other).
//!
//! The [`EpochClock`] is the read side of consistency: reads pick the
//! newest epoch completed when their query started, and every view answers
//! as of that epoch (see [`view`](crate::stream::view)).

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::{Mutex, MutexGuard};

use crate::error::Result;
use crate::storage::warehouse::Warehouse;
use crate::stream::message::{Barrier, BarrierKind, Epoch, EpochToken};
use crate::stream::source::Source;

/// Epochs reserved per write of the durable counter: at one barrier a
/// second, one catalog write every ~17 minutes.
pub const EPOCH_BLOCK: u64 = 1024;
/// Name of the durable counter in the catalog database.
const EPOCH_COUNTER: &str = "epoch";
/// How long completed epochs stay readable after a newer one completes:
/// a query planned within this time of its start (and before
/// [`READ_RETENTION_EPOCHS`] more epochs complete) reads one epoch in every
/// view it touches.
pub const READ_RETENTION: Duration = Duration::from_secs(10);
/// At most this many completed epochs stay readable, however fast epochs
/// end (a loop of FLUSH): it bounds the snapshots each view keeps.
pub const READ_RETENTION_EPOCHS: usize = 1000;

/// Owns the epoch counter and the sources barriers are injected into.
pub struct BarrierCoordinator {
    warehouse: Arc<Warehouse>,
    /// The last epoch a barrier was injected for.
    epoch: AtomicU64,
    /// Epochs up to this one are reserved in the catalog.
    reserved: AtomicU64,
    /// One barrier at a time (see the module docs).
    lock: Mutex<()>,
    sources: RwLock<BTreeMap<String, Arc<dyn Source>>>,
    clock: Arc<EpochClock>,
    /// When the last checkpoint barrier was injected (the start, before
    /// the first).
    last_checkpoint: std::sync::Mutex<Instant>,
    /// The timestamp of the last barrier (µs), so the next is later.
    last_timestamp: AtomicI64,
}

impl std::fmt::Debug for BarrierCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BarrierCoordinator")
            .field("epoch", &self.epoch)
            .finish()
    }
}

/// Held while no barrier may be injected.
pub struct Paused<'a> {
    _guard: MutexGuard<'a, ()>,
    /// The last epoch injected before the pause.
    pub epoch: Epoch,
}

impl BarrierCoordinator {
    /// Starts above every epoch a previous run could have used.
    pub async fn open(warehouse: Arc<Warehouse>) -> Result<BarrierCoordinator> {
        let last = warehouse.load_counter(EPOCH_COUNTER).await?;
        tracing::info!(epoch = last, "epochs continue after the last reserved one");
        let clock = Arc::new(EpochClock::new(last));
        Ok(BarrierCoordinator {
            warehouse,
            epoch: AtomicU64::new(last),
            reserved: AtomicU64::new(last),
            lock: Mutex::new(()),
            sources: RwLock::new(BTreeMap::new()),
            clock,
            last_checkpoint: std::sync::Mutex::new(Instant::now()),
            last_timestamp: AtomicI64::new(i64::MIN),
        })
    }

    /// The wall-clock time for a new epoch, strictly after the last one's
    /// even if the clock steps back.
    fn epoch_time(&self) -> i64 {
        let now = Utc::now().timestamp_micros();
        let last = self.last_timestamp.load(Ordering::SeqCst);
        let t = now.max(last.saturating_add(1));
        self.last_timestamp.store(t, Ordering::SeqCst);
        t
    }

    /// When epochs completed; shared with the views.
    pub fn clock(&self) -> Arc<EpochClock> {
        self.clock.clone()
    }

    /// The last epoch a barrier was injected for.
    pub fn last_epoch(&self) -> Epoch {
        self.epoch.load(Ordering::SeqCst)
    }

    /// How long ago the last checkpoint barrier was injected.
    pub fn since_checkpoint(&self) -> Duration {
        self.last_checkpoint
            .lock()
            .expect("checkpoint lock")
            .elapsed()
    }

    /// Registers a source under its relation's name.
    pub fn add_source(&self, name: &str, source: Arc<dyn Source>) {
        self.sources
            .write()
            .expect("sources lock")
            .insert(name.to_string(), source);
    }

    pub fn remove_source(&self, name: &str) {
        self.sources.write().expect("sources lock").remove(name);
    }

    pub fn source(&self, name: &str) -> Option<Arc<dyn Source>> {
        self.sources
            .read()
            .expect("sources lock")
            .get(name)
            .cloned()
    }

    /// Stops barriers until the returned guard drops.
    pub async fn pause(&self) -> Paused<'_> {
        let guard = self.lock.lock().await;
        Paused {
            _guard: guard,
            epoch: self.last_epoch(),
        }
    }

    /// Ends the current epoch: injects its barrier, of `kind`, into every
    /// source at once and returns when every view has published it (and,
    /// for a checkpoint, committed it). `behind` names the views still
    /// missing it, for the log line of a slow epoch.
    #[tracing::instrument(skip(self, behind))]
    pub async fn end_epoch(
        &self,
        kind: BarrierKind,
        behind: impl Fn(Epoch) -> Vec<String>,
    ) -> Result<Epoch> {
        let _one_at_a_time = self.lock.lock().await;
        let epoch = self.epoch.load(Ordering::SeqCst) + 1;
        if epoch > self.reserved.load(Ordering::SeqCst) {
            let reserve = epoch + EPOCH_BLOCK - 1;
            self.warehouse.store_counter(EPOCH_COUNTER, reserve).await?;
            self.reserved.store(reserve, Ordering::SeqCst);
        }
        self.epoch.store(epoch, Ordering::SeqCst);
        if kind == BarrierKind::Checkpoint {
            *self.last_checkpoint.lock().expect("checkpoint lock") = Instant::now();
        }
        let (token, mut done) = EpochToken::new();
        let barrier = Barrier {
            epoch,
            kind,
            timestamp: self.epoch_time(),
            token: Some(token),
        };
        // Every source gets the barrier (those nobody reads drop it at
        // once); views pass it on to the views that read them.
        let sources: Vec<Arc<dyn Source>> = self
            .sources
            .read()
            .expect("sources lock")
            .values()
            .cloned()
            .collect();
        futures::future::join_all(sources.iter().map(|s| s.inject(&barrier))).await;
        drop(barrier);
        // Closed when the last copy of the token is dropped. A slow epoch
        // says which views it is waiting for.
        let mut waited = 0u64;
        loop {
            match tokio::time::timeout(Duration::from_secs(5), done.recv()).await {
                Ok(_) => break,
                Err(_) => {
                    waited += 5;
                    let behind = behind(epoch);
                    tracing::warn!(epoch, waited_s = waited, ?behind, "epoch not complete yet");
                }
            }
        }
        self.clock.completed(epoch);
        Ok(epoch)
    }
}

/// When recent epochs completed: the map from a query's start time to the
/// epoch it reads.
#[derive(Debug)]
pub struct EpochClock {
    /// (completion time, epoch), oldest first; the newest is always kept,
    /// the others for [`READ_RETENTION`].
    completed: std::sync::Mutex<VecDeque<(DateTime<Utc>, Epoch)>>,
}

impl EpochClock {
    fn new(start: Epoch) -> EpochClock {
        // Epochs of an earlier run count as completed before any query.
        EpochClock {
            completed: std::sync::Mutex::new(VecDeque::from([(DateTime::<Utc>::MIN_UTC, start)])),
        }
    }

    fn completed(&self, epoch: Epoch) {
        let now = Utc::now();
        let mut c = self.completed.lock().expect("clock lock");
        c.push_back((now, epoch));
        let horizon = now - READ_RETENTION;
        // Keep the newest completion at or before the horizon: a query
        // started then reads it.
        while c.len() > 1 && (c[1].0 <= horizon || c.len() > READ_RETENTION_EPOCHS) {
            c.pop_front();
        }
    }

    /// The epoch a query started at `start` reads: the newest completed by
    /// then (the oldest still kept if it started long ago; the newest if
    /// the start is unknown).
    pub fn as_of(&self, start: Option<DateTime<Utc>>) -> Epoch {
        let c = self.completed.lock().expect("clock lock");
        let Some(start) = start else {
            return c.back().expect("never empty").1;
        };
        c.iter()
            .rev()
            .find(|(t, _)| *t <= start)
            .or(c.front())
            .expect("never empty")
            .1
    }

    /// The oldest epoch a read can still ask for: snapshots older than the
    /// newest one at or before it are never read again.
    pub fn oldest_readable(&self) -> Epoch {
        self.completed
            .lock()
            .expect("clock lock")
            .front()
            .expect("never empty")
            .1
    }

    /// The newest completed epoch.
    pub fn latest(&self) -> Epoch {
        self.completed
            .lock()
            .expect("clock lock")
            .back()
            .expect("never empty")
            .1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_reads_the_newest_epoch_completed_before_it_started() {
        let clock = EpochClock::new(7);
        let before = Utc::now();
        assert_eq!(clock.as_of(Some(before)), 7);
        clock.completed(8);
        let after = Utc::now();
        clock.completed(9);
        assert_eq!(clock.as_of(Some(before)), 7);
        assert_eq!(clock.as_of(Some(after)), 8);
        assert_eq!(clock.as_of(None), 9);
        assert_eq!(clock.latest(), 9);
        assert_eq!(clock.oldest_readable(), 7);
    }

    #[test]
    fn fast_epochs_keep_a_bounded_history() {
        let clock = EpochClock::new(0);
        for e in 1..=(READ_RETENTION_EPOCHS as u64 + 10) {
            clock.completed(e);
        }
        assert_eq!(clock.completed.lock().unwrap().len(), READ_RETENTION_EPOCHS);
        assert_eq!(clock.oldest_readable(), 11);
        // A query older than the history reads its oldest epoch.
        assert_eq!(clock.as_of(Some(DateTime::<Utc>::MIN_UTC)), 11);
    }
}
