//! Streams in: what turns external records into Arrow rows.
//!
//! - [`decode`]: one Kafka record's payload (JSON or CSV) → one row, straight
//!   into Arrow builders; a bad record yields the dead-letter error text and
//!   appends nothing.
//! - [`kafka`]: options, the reader thread, bounded reads, broker queries.

pub mod decode;
pub mod kafka;
