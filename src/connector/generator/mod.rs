//! Built-in sources for demos and benchmarks: `connector = 'nexmark'` and
//! `connector = 'datagen'`, with RisingWave's option names.
//!
//! A generator fills Arrow builders directly, batch by batch. Its output is
//! a pure function of its options and the row position, so a checkpoint
//! only records [`Generator::position`] and a restart [`Generator::seek`]s
//! there to produce exactly the rows that follow.
//!
//! Pacing: [`Generator::rate`] says how fast the caller should pull rows.
//! A bounded generator (`nexmark.event.num`, or a datagen sequence with an
//! `end`) runs flat out unless a rate is given; an unbounded one paces at
//! RisingWave's defaults (Nexmark 10,000 events/s, datagen 10 rows/s) so
//! that a forgotten demo source does not flood storage.

mod datagen;
mod nexmark;

use std::collections::BTreeMap;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;

use crate::error::{Error, Result};

/// A built-in source of rows.
pub trait Generator: Send {
    /// Columns produced, exactly the declared columns asked for (name,
    /// Arrow type as the record decoders use them).
    fn schema(&self) -> SchemaRef;
    /// Up to `max_rows` next rows; `None` once the configured count is
    /// exhausted (unbounded generators never end).
    fn next_batch(&mut self, max_rows: usize) -> Option<RecordBatch>;
    /// Rows per second to pace at (`None` = as fast as possible).
    fn rate(&self) -> Option<f64>;
    /// Rows produced so far (the position a checkpoint would record).
    fn position(&self) -> u64;
    /// Restarts deterministically at row `position`.
    fn seek(&mut self, position: u64);
}

/// The Nexmark generator (`connector = 'nexmark'`), one table type per
/// source. Its options (RisingWave's names) are listed in
/// `src/connector/generator/nexmark.rs`.
pub fn nexmark(
    options: &BTreeMap<String, String>,
    columns: SchemaRef,
) -> Result<Box<dyn Generator>> {
    Ok(Box::new(nexmark::NexmarkGenerator::new(options, columns)?))
}

/// The random/sequence generator (`connector = 'datagen'`). Its options
/// (RisingWave's names) are listed in `src/connector/generator/datagen.rs`.
pub fn datagen(
    options: &BTreeMap<String, String>,
    columns: SchemaRef,
) -> Result<Box<dyn Generator>> {
    Ok(Box::new(datagen::DatagenGenerator::new(options, columns)?))
}

/// 2026-01-01T00:00:00Z in epoch milliseconds: the default base time of
/// both generators, fixed so that runs repeat.
pub const DEFAULT_BASE_TIME_MS: i64 = 1_767_225_600_000;

/// Options every connector accepts and the generators ignore (the source
/// around the generator reads `watermark.idle_timeout`).
const COMMON_OPTIONS: &[&str] = &["connector", "watermark.idle_timeout"];

/// Parses an option's value, naming the option in the error.
fn parse_option<T: std::str::FromStr>(key: &str, value: &str) -> Result<T> {
    value.trim().parse().map_err(|_| {
        Error::InvalidParameter(format!("invalid value for option {key}: \"{value}\""))
    })
}

/// A rate option: a positive number, or 0 for "as fast as possible".
fn parse_rate(key: &str, value: &str) -> Result<Option<f64>> {
    let r: f64 = parse_option(key, value)?;
    if !r.is_finite() || r < 0.0 {
        return Err(Error::InvalidParameter(format!(
            "invalid value for option {key}: \"{value}\" (expected a rate >= 0)"
        )));
    }
    Ok((r > 0.0).then_some(r))
}

fn unknown_option(connector: &str, key: &str, valid: &[&str]) -> Error {
    Error::InvalidParameter(format!(
        "unknown option \"{key}\" for connector '{connector}'; valid options: {}",
        valid.join(", ")
    ))
}
