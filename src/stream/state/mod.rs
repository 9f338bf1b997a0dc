//! Operator state: one interface for every stateful operator.
//!
//! - [`table`]: the keyed state table — values by key (Arrow row bytes),
//!   per-epoch change tracking (what a checkpoint must write), memory
//!   accounting and optional TTL expiry.
//! - [`meter`]: byte counters, per operator, per view and for the server,
//!   that the tables report to.
//!
//! Operators keep their own *indexes* over slot ids (a window bound or an
//! event time → slots) to release state the watermark proves final; the
//! table knows nothing about time except the TTL clock, which is the
//! epoch's timestamp so replays expire the same keys.

pub mod meter;
pub mod table;

pub use meter::Meter;
pub use table::{Changes, SlotId, StateTable, StateValue};
