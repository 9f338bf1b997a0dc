//! Event-time watermarks of sources: what `WATERMARK FOR col AS col -
//! INTERVAL '…'` and `watermark.idle_timeout` mean, checked at CREATE
//! ([`WatermarkSpec::of`], [`idle_timeout`]), and the per-partition
//! tracking that turns the event times a reader has delivered into the
//! source's watermark ([`WatermarkTracker`]).
//!
//! The rules (SQL.md §2, notes/streams.md "Watermarks and idleness"):
//! - a partition's watermark is the largest event time delivered from it
//!   (NULL times ignored) minus the delay;
//! - a partition is *idle* when it is caught up (its reader's position is
//!   at its high watermark) and no record came from it for the idle
//!   timeout; a partition that never had a record is idle once caught up.
//!   Being caught up is the reader's to say: a broker that does not answer
//!   makes partitions "waiting", never idle, so an outage does not pass for
//!   a quiet topic;
//! - the source's watermark is the minimum over the partitions that are
//!   not idle; when every partition is idle it is the maximum over them,
//!   advanced by the wall-clock time since the last record of any
//!   partition (a quiet source still closes its last windows);
//! - it never decreases.
//!
//! The tracker is a plain struct with the clock passed in (`now`), so each
//! rule has a unit test; the readers own one each and feed it from the
//! batches they deliver.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Schema, TimestampMicrosecondType};
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::logical_expr::Expr as LogicalExpr;
use datafusion::sql::sqlparser::ast::{BinaryOperator, Expr};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::error::{Error, Result};

/// The option naming how long a caught-up partition may be quiet before
/// it stops holding the watermark back.
pub const IDLE_TIMEOUT_OPTION: &str = "watermark.idle_timeout";
/// Its default.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A source's `WATERMARK FOR`, resolved against the schema of its rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatermarkSpec {
    /// Index of the event-time column in the rows the source's feeds carry
    /// (payload columns, then INCLUDE columns).
    pub column: usize,
    pub column_name: String,
    /// The allowed lateness, in microseconds (>= 0).
    pub delay_us: i64,
}

impl WatermarkSpec {
    /// Checks `WATERMARK FOR column AS expression` against `schema` (the
    /// source's full row schema): the column must be a timestamp, the
    /// expression the column itself or the column minus an interval of
    /// fixed length.
    pub fn of(column: &str, expression: &str, schema: &Schema) -> Result<WatermarkSpec> {
        let (index, field) = schema.column_with_name(column).ok_or_else(|| {
            Error::UndefinedColumn(format!(
                "column \"{column}\" named in WATERMARK FOR does not exist"
            ))
        })?;
        if !matches!(field.data_type(), DataType::Timestamp(_, _)) {
            return Err(Error::DatatypeMismatch(format!(
                "WATERMARK FOR column \"{column}\" must be TIMESTAMP or TIMESTAMPTZ, not {}",
                field.data_type()
            )));
        }
        let unsupported = || {
            Error::FeatureNotSupported(format!(
                "WATERMARK FOR {column} AS {expression}: the expression must be {column} or {column} - INTERVAL '…'"
            ))
        };
        let expr = Parser::new(&PostgreSqlDialect {})
            .try_with_sql(expression)
            .and_then(|mut p| p.parse_expr())
            .map_err(|_| unsupported())?;
        let is_column = |e: &Expr| match e {
            Expr::Identifier(id) => {
                let name = if id.quote_style.is_some() {
                    id.value.clone()
                } else {
                    id.value.to_lowercase()
                };
                name == column
            }
            _ => false,
        };
        let delay_us = match &expr {
            e if is_column(e) => 0,
            Expr::BinaryOp {
                left,
                op: BinaryOperator::Minus,
                right,
            } if is_column(left) && matches!(right.as_ref(), Expr::Interval(_)) => {
                interval_us(&right.to_string()).ok_or_else(unsupported)??
            }
            _ => return Err(unsupported()),
        };
        if delay_us < 0 {
            return Err(Error::InvalidParameter(format!(
                "WATERMARK FOR {column}: the delay must not be negative ({expression})"
            )));
        }
        Ok(WatermarkSpec {
            column: index,
            column_name: column.to_string(),
            delay_us,
        })
    }

    /// The largest event time in `batch` (NULLs ignored), by Arrow's `max`
    /// kernel over the rows `[offset, offset + len)`.
    pub fn max_event_time(&self, batch: &RecordBatch, offset: usize, len: usize) -> Option<i64> {
        let column = batch.column(self.column).slice(offset, len);
        let ts = column.as_primitive_opt::<TimestampMicrosecondType>()?;
        datafusion::arrow::compute::max(ts)
    }
}

/// The length of an interval literal (SQL text, e.g. `INTERVAL '5
/// minutes'`) in microseconds: None if it is not an interval, an error if
/// it has months (no fixed length).
fn interval_us(sql: &str) -> Option<Result<i64>> {
    let state = datafusion::execution::SessionStateBuilder::new().build();
    let planned = state.create_logical_expr(sql, &DFSchema::empty()).ok()?;
    let LogicalExpr::Literal(value, _) = planned else {
        return None;
    };
    let (months, days, nanos) = match value {
        ScalarValue::IntervalMonthDayNano(Some(v)) => (v.months, v.days, v.nanoseconds),
        ScalarValue::IntervalDayTime(Some(v)) => (0, v.days, i64::from(v.milliseconds) * 1_000_000),
        ScalarValue::IntervalYearMonth(Some(m)) => (m, 0, 0),
        _ => return None,
    };
    if months != 0 {
        return Some(Err(Error::FeatureNotSupported(format!(
            "a watermark delay cannot be given in months or years ({sql}): they have no fixed length"
        ))));
    }
    Some(Ok(i64::from(days) * 86_400_000_000 + nanos / 1000))
}

/// `watermark.idle_timeout` from a source's options: '30s', '500ms',
/// '2 minutes', an interval literal's text ('00:00:30'); 30 s when absent.
pub fn idle_timeout(options: &BTreeMap<String, String>) -> Result<Duration> {
    let Some(raw) = options.get(IDLE_TIMEOUT_OPTION) else {
        return Ok(DEFAULT_IDLE_TIMEOUT);
    };
    parse_duration(raw).ok_or_else(|| {
        Error::InvalidParameter(format!(
            "invalid value for option {IDLE_TIMEOUT_OPTION}: \"{raw}\" (expected a duration such as '30s', '500ms', '2 minutes')"
        ))
    })
}

fn parse_duration(raw: &str) -> Option<Duration> {
    let text = raw.trim();
    let text = match text.get(..8) {
        Some(p) if p.eq_ignore_ascii_case("interval") => text[8..].trim().trim_matches('\''),
        _ => text,
    };
    // The server's own duration syntax ('30s', '500ms', '1.5m').
    if let Ok(d) = crate::config::parse_duration(text) {
        return Some(d);
    }
    // PostgreSQL's `hh:mm[:ss[.f]]`, which DataFusion's interval parser
    // does not take.
    let parts: Vec<&str> = text.split(':').collect();
    if (2..=3).contains(&parts.len()) {
        let mut secs = 0.0;
        for part in &parts {
            let n: f64 = part.parse().ok()?;
            if !n.is_finite() || n < 0.0 {
                return None;
            }
            secs = secs * 60.0 + n;
        }
        if parts.len() == 2 {
            // Two parts are hh:mm, as PostgreSQL reads them.
            secs *= 60.0;
        }
        return Some(Duration::from_secs_f64(secs));
    }
    let quoted = format!("INTERVAL '{}'", text.replace('\'', "''"));
    match interval_us(&quoted)? {
        Ok(us) if us >= 0 => Some(Duration::from_micros(us as u64)),
        _ => None,
    }
}

/// One partition as the tracker sees it.
#[derive(Debug, Clone, Default)]
struct PartitionTime {
    /// Largest event time delivered (µs since the Unix epoch).
    max_event: Option<i64>,
    /// When the last record from it was delivered.
    last_record: Option<Instant>,
    caught_up: bool,
    /// Idle as of the last [`WatermarkTracker::refresh`] (for the log).
    idle: bool,
}

/// Per-partition event time and idleness of one source (see the module
/// doc for the rules). A source without `WATERMARK FOR` has one too, for
/// idleness alone: it never has a value.
#[derive(Debug)]
pub struct WatermarkTracker {
    source: String,
    /// None: no WATERMARK FOR.
    delay_us: Option<i64>,
    idle_timeout: Duration,
    partitions: BTreeMap<i32, PartitionTime>,
    /// When the last record of any partition was delivered.
    last_record: Option<Instant>,
    /// The largest value [`current`](Self::current) returned.
    emitted: Option<i64>,
}

impl WatermarkTracker {
    pub fn new(source: &str, delay_us: Option<i64>, idle_timeout: Duration) -> WatermarkTracker {
        WatermarkTracker {
            source: source.to_string(),
            delay_us,
            idle_timeout,
            partitions: BTreeMap::new(),
            last_record: None,
            emitted: None,
        }
    }

    /// Starts tracking `partition` (no record yet, not caught up).
    pub fn add_partition(&mut self, partition: i32) {
        self.partitions.entry(partition).or_default();
    }

    /// Records from `partition` were delivered at `now`, the largest event
    /// time among them `max_ts` (None: all NULL, or no row — a record that
    /// did not decode still shows the partition is not quiet).
    pub fn observe(&mut self, partition: i32, max_ts: Option<i64>, now: Instant) {
        let p = self.partitions.entry(partition).or_default();
        p.last_record = Some(now);
        if let Some(ts) = max_ts {
            p.max_event = Some(p.max_event.map_or(ts, |m| m.max(ts)));
        }
        self.last_record = Some(self.last_record.map_or(now, |t| t.max(now)));
    }

    /// Whether the reader's position in `partition` is at its high
    /// watermark (and the broker answers).
    pub fn set_caught_up(&mut self, partition: i32, caught_up: bool) {
        self.partitions.entry(partition).or_default().caught_up = caught_up;
    }

    /// The partition's watermark: its largest event time minus the delay.
    pub fn partition_watermark(&self, partition: i32) -> Option<i64> {
        let delay = self.delay_us?;
        let max = self.partitions.get(&partition)?.max_event?;
        Some(max.saturating_sub(delay))
    }

    /// The partition's watermark as `streamlake.source_partitions` shows it
    /// at `now`: its own, and when the whole source is quiet (every
    /// partition idle), advanced by the wall-clock time since the last
    /// record, as the source's is (which is then the largest of these).
    pub fn partition_watermark_at(&self, partition: i32, now: Instant) -> Option<i64> {
        let own = self.partition_watermark(partition)?;
        Some(own.saturating_add(self.quiet_advance(now).unwrap_or(0)))
    }

    /// Microseconds since the last record, if every partition is idle.
    fn quiet_advance(&self, now: Instant) -> Option<i64> {
        if self.partitions.is_empty() || !self.partitions.values().all(|p| self.idle(p, now)) {
            return None;
        }
        Some(
            self.last_record
                .map_or(0, |t| now.saturating_duration_since(t).as_micros() as i64),
        )
    }

    /// Caught up, and no record for the idle timeout (or never one).
    pub fn is_idle(&self, partition: i32, now: Instant) -> bool {
        self.partitions
            .get(&partition)
            .is_some_and(|p| self.idle(p, now))
    }

    fn idle(&self, p: &PartitionTime, now: Instant) -> bool {
        p.caught_up
            && p.last_record
                .is_none_or(|t| now.saturating_duration_since(t) >= self.idle_timeout)
    }

    /// Re-evaluates idleness at `now`, logging each partition that became
    /// idle or active.
    pub fn refresh(&mut self, now: Instant) {
        let idle: Vec<(i32, bool)> = self
            .partitions
            .iter()
            .map(|(id, p)| (*id, self.idle(p, now)))
            .collect();
        for (id, is_idle) in idle {
            let p = self.partitions.get_mut(&id).expect("listed above");
            if p.idle != is_idle {
                p.idle = is_idle;
                if is_idle && self.delay_us.is_some() {
                    tracing::info!(source = %self.source, partition = id,
                        "partition idle: caught up and quiet; it no longer holds the watermark back");
                } else if is_idle {
                    tracing::info!(source = %self.source, partition = id,
                        "partition idle: caught up and quiet");
                } else {
                    tracing::info!(source = %self.source, partition = id, "partition active again");
                }
            }
        }
    }

    /// The source's watermark at `now` (None until it has one; never lower
    /// than a value returned before).
    pub fn current(&mut self, now: Instant) -> Option<i64> {
        self.delay_us?;
        self.refresh(now);
        let computed = self.compute(now);
        let value = match (self.emitted, computed) {
            (Some(e), Some(c)) => Some(e.max(c)),
            (e, c) => e.or(c),
        };
        self.emitted = value;
        value
    }

    fn compute(&self, now: Instant) -> Option<i64> {
        if self.partitions.is_empty() {
            return None;
        }
        let watermarks = |idle: bool| {
            self.partitions
                .iter()
                .filter(move |(_, p)| self.idle(p, now) == idle)
                .map(|(id, _)| self.partition_watermark(*id))
        };
        if watermarks(false).next().is_some() {
            // An active partition with no event time yet holds everything
            // back: its first rows may be the oldest.
            return watermarks(false)
                .collect::<Option<Vec<_>>>()?
                .into_iter()
                .min();
        }
        // Every partition idle: the source is quiet. Event time is taken to
        // move with the wall clock since the last record, so the windows
        // the last records opened still close.
        let base = watermarks(true).flatten().max()?;
        Some(base.saturating_add(self.quiet_advance(now).unwrap_or(0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{Field, TimeUnit};

    const MIN: i64 = 60_000_000;

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
                true,
            ),
            Field::new(
                "lts",
                DataType::Timestamp(TimeUnit::Microsecond, None),
                true,
            ),
        ])
    }

    #[test]
    fn watermark_definitions_are_checked() {
        let s = schema();
        let w = WatermarkSpec::of("ts", "ts - INTERVAL '5 minutes'", &s).unwrap();
        assert_eq!((w.column, w.delay_us), (1, 5 * MIN));
        assert_eq!(WatermarkSpec::of("lts", "lts", &s).unwrap().delay_us, 0);
        assert_eq!(
            WatermarkSpec::of("ts", "ts - INTERVAL '2' SECOND", &s)
                .unwrap()
                .delay_us,
            2_000_000
        );
        assert_eq!(
            WatermarkSpec::of("ts", "ts - INTERVAL '1 day 500 milliseconds'", &s)
                .unwrap()
                .delay_us,
            86_400_000_000 + 500_000
        );
        let code = |c: &str, e: &str| WatermarkSpec::of(c, e, &s).unwrap_err().sqlstate();
        assert_eq!(code("nope", "nope"), "42703");
        assert_eq!(code("id", "id - INTERVAL '1 second'"), "42804");
        assert_eq!(code("ts", "ts - INTERVAL '1 month'"), "0A000");
        assert_eq!(code("ts", "ts + INTERVAL '1 second'"), "0A000");
        assert_eq!(code("ts", "lts - INTERVAL '1 second'"), "0A000");
        assert_eq!(code("ts", "now()"), "0A000");
        assert_eq!(code("ts", "ts - 5"), "0A000");
    }

    #[test]
    fn idle_timeouts_parse() {
        let t = |v: &str| idle_timeout(&BTreeMap::from([(IDLE_TIMEOUT_OPTION.into(), v.into())]));
        assert_eq!(t("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(t("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(t("2 minutes").unwrap(), Duration::from_secs(120));
        assert_eq!(t("00:00:10").unwrap(), Duration::from_secs(10));
        assert_eq!(t("INTERVAL '1 second'").unwrap(), Duration::from_secs(1));
        assert_eq!(t("soon").unwrap_err().sqlstate(), "22023");
        assert_eq!(t("-3s").unwrap_err().sqlstate(), "22023");
        assert_eq!(
            idle_timeout(&BTreeMap::new()).unwrap(),
            DEFAULT_IDLE_TIMEOUT
        );
    }

    fn tracker(parts: &[i32]) -> (WatermarkTracker, Instant) {
        let mut t = WatermarkTracker::new("s", Some(5 * MIN), Duration::from_secs(30));
        for p in parts {
            t.add_partition(*p);
        }
        (t, Instant::now())
    }

    #[test]
    fn the_minimum_over_active_partitions() {
        let (mut t, t0) = tracker(&[0, 1, 2]);
        t.observe(0, Some(100 * MIN), t0);
        t.observe(1, Some(50 * MIN), t0);
        // Partition 2 reading, nothing yet: no watermark.
        assert_eq!(t.current(t0), None);
        t.observe(2, Some(70 * MIN), t0);
        assert_eq!(t.current(t0), Some(45 * MIN));
        assert_eq!(t.partition_watermark(0), Some(95 * MIN));
        // NULL event times change nothing.
        t.observe(1, None, t0);
        assert_eq!(t.current(t0), Some(45 * MIN));
    }

    #[test]
    fn an_idle_partition_is_released() {
        let (mut t, t0) = tracker(&[0, 1]);
        t.observe(0, Some(100 * MIN), t0);
        t.observe(1, Some(50 * MIN), t0);
        t.set_caught_up(1, true);
        // Caught up but not yet quiet for the timeout: still holds.
        assert_eq!(t.current(t0 + Duration::from_secs(10)), Some(45 * MIN));
        assert!(!t.is_idle(1, t0 + Duration::from_secs(10)));
        let later = t0 + Duration::from_secs(31);
        assert!(t.is_idle(1, later));
        assert_eq!(t.current(later), Some(95 * MIN));
        // Not caught up (records arrived), it holds again, but the
        // watermark never goes back.
        t.set_caught_up(1, false);
        assert_eq!(t.current(later), Some(95 * MIN));
        t.observe(0, Some(200 * MIN), later);
        t.observe(1, Some(150 * MIN), later);
        assert_eq!(t.current(later), Some(145 * MIN));
    }

    #[test]
    fn a_partition_that_never_had_data_is_idle_once_caught_up() {
        let (mut t, t0) = tracker(&[0, 1]);
        t.observe(0, Some(100 * MIN), t0);
        assert_eq!(t.current(t0), None);
        t.set_caught_up(1, true);
        assert!(t.is_idle(1, t0));
        assert_eq!(t.current(t0), Some(95 * MIN));
    }

    #[test]
    fn a_quiet_source_advances_with_the_wall_clock() {
        let (mut t, t0) = tracker(&[0, 1]);
        t.observe(0, Some(100 * MIN), t0);
        t.observe(1, Some(50 * MIN), t0 + Duration::from_secs(2));
        t.set_caught_up(0, true);
        t.set_caught_up(1, true);
        // Partition 0 idle at 30 s, partition 1 still active.
        assert_eq!(t.current(t0 + Duration::from_secs(31)), Some(45 * MIN));
        // Both idle: the max, plus the time since the last record.
        let at = t0 + Duration::from_secs(62);
        assert_eq!(t.current(at), Some(95 * MIN + 60_000_000));
        assert_eq!(
            t.current(at + Duration::from_secs(60)),
            Some(95 * MIN + 120_000_000)
        );
        // Each partition's shown watermark moves by the same amount.
        assert_eq!(t.partition_watermark_at(1, at), Some(45 * MIN + 60_000_000));
        assert_eq!(t.partition_watermark(1), Some(45 * MIN));
    }

    #[test]
    fn never_decreasing() {
        let (mut t, t0) = tracker(&[0]);
        t.observe(0, Some(100 * MIN), t0);
        assert_eq!(t.current(t0), Some(95 * MIN));
        // A new partition appears with older data: the value stays.
        t.observe(7, Some(10 * MIN), t0);
        assert_eq!(t.current(t0), Some(95 * MIN));
        // Quiet advance, then new records older than the advance.
        t.set_caught_up(0, true);
        t.set_caught_up(7, true);
        let quiet = t.current(t0 + Duration::from_secs(100)).unwrap();
        assert_eq!(quiet, 95 * MIN + 100_000_000);
        t.set_caught_up(0, false);
        t.observe(0, Some(101 * MIN), t0 + Duration::from_secs(101));
        assert_eq!(t.current(t0 + Duration::from_secs(101)), Some(quiet));
    }

    #[test]
    fn no_watermark_for_means_no_value_but_idleness() {
        let mut t = WatermarkTracker::new("s", None, Duration::from_secs(1));
        let t0 = Instant::now();
        t.observe(0, Some(5), t0);
        t.set_caught_up(0, true);
        assert_eq!(t.current(t0 + Duration::from_secs(5)), None);
        assert!(t.is_idle(0, t0 + Duration::from_secs(5)));
        assert_eq!(t.partition_watermark(0), None);
    }

    #[test]
    fn the_max_kernel_over_a_slice() {
        use datafusion::arrow::array::{Int64Array, TimestampMicrosecondArray};
        use std::sync::Arc;
        let s = Arc::new(schema());
        let b = RecordBatch::try_new(
            s,
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 3, 4])),
                Arc::new(
                    TimestampMicrosecondArray::from(vec![Some(5), None, Some(9), Some(2)])
                        .with_timezone("+00:00"),
                ),
                Arc::new(TimestampMicrosecondArray::from(vec![
                    None, None, None, None,
                ])),
            ],
        )
        .unwrap();
        let w = WatermarkSpec::of("ts", "ts", &schema()).unwrap();
        assert_eq!(w.max_event_time(&b, 0, 4), Some(9));
        assert_eq!(w.max_event_time(&b, 0, 2), Some(5));
        assert_eq!(w.max_event_time(&b, 1, 1), None);
        let l = WatermarkSpec::of("lts", "lts", &schema()).unwrap();
        assert_eq!(l.max_event_time(&b, 0, 4), None);
    }
}
