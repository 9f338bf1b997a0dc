//! The streaming runtime: changelog chunks flow from sources (today the
//! change feeds of tables) through operators into materialized views.
//!
//! ```text
//! LakeTable commit ─▶ TableSource ─▶ [filter] ─▶ [project] ─▶ [hash agg] ─▶ … ─▶ materialize ─▶ reads, Iceberg
//!  (CommitReport)         ▲                                                          ▲
//!   coordinator ──────────┴──── Barrier(epoch) after the changes ────────────────────┘ publish + ack
//! ```
//!
//! - [`source`]: the `Source` trait and the table change feed; storage
//!   reports commits, this side turns them into chunks.
//! - [`coordinator`]: the epoch counter (durable), barrier injection into
//!   every source at once, and the clock reads use to pick their epoch.
//! - [`chunk`]: the changelog batch (an Arrow batch plus one op per row).
//! - [`message`]: what travels on a channel: chunks and barriers.
//! - [`operator`]: the operator trait every node implements.
//! - [`ops`]: one operator per file.
//! - [`graph`]: the tree of operators a view runs (inputs at the leaves).
//! - [`view`]: a materialized view's task: operators, barrier handling,
//!   the published snapshots that reads see (one epoch for every view a
//!   query touches).
//!
//! Barriers are the consistency and checkpoint hook: a barrier for epoch N
//! follows every change made before it on each feed; when it reaches a
//! view's materialize step, the view publishes its contents as of N. `FLUSH`
//! injects a barrier and waits for every view to acknowledge it.

pub mod chunk;
pub mod coordinator;
pub mod dead_letters;
pub mod event_time;
pub mod exact;
pub mod generator_source;
pub mod graph;
pub mod ingest;
pub mod kafka_source;
pub mod late_events;
pub mod message;
pub mod operator;
pub mod ops;
pub mod source;
pub mod state;
pub mod view;

/// The hash map of operator state. Keys are Arrow row-format bytes from
/// user data: foldhash is several times faster than the standard SipHash
/// on them and still seeded per map, so collisions cannot be planned.
pub type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
