//! Streams in: what turns external records into Arrow rows.
//!
//! - [`decode`]: one Kafka record's payload (JSON or CSV) → one row, straight
//!   into Arrow builders; a bad record yields the dead-letter error text and
//!   appends nothing.
//! - [`kafka`]: options, the reader thread, bounded reads, broker queries.
//! - [`generator`]: built-in sources for demos and benchmarks (`nexmark`,
//!   `datagen`), deterministic by position so a checkpoint can resume them.
//! - [`watermark`]: `WATERMARK FOR` and `watermark.idle_timeout` checked at
//!   CREATE, and the per-partition event-time tracking of a source.
//! - [`jsonb`]: the `->`, `->>`, `#>`, `#>>` operators and common jsonb
//!   functions over JSONB columns (stored as JSON text).

pub mod decode;
pub mod generator;
pub mod jsonb;
pub mod kafka;
pub mod watermark;
