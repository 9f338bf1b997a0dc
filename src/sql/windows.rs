//! The time-window table functions `TUMBLE(t, ts, size [, offset])` and
//! `HOP(t, ts, slide, size [, offset])`: every column of `t` plus
//! `window_start` and `window_end` (timestamps; a window holds
//! `window_start <= ts < window_end`, windows aligned to the Unix epoch in
//! UTC plus the optional offset, like PostgreSQL's
//! `date_bin(size, ts, TIMESTAMP '1970-01-01' + offset)`).
//!
//! Both are one logical plan over `t`, so the same definition serves a
//! plain SELECT (DataFusion runs it) and a materialized view:
//!
//! ```text
//! Projection(t.*, window_start, window_start + size AS window_end)
//!   Unnest(window_start)
//!     Projection(t.*, streamlake_window_starts(ts, slide, size, offset) AS window_start)
//!       Filter(ts IS NOT NULL) ─ Scan(t)
//! ```
//!
//! The view lowering replaces the Unnest and the function under it with
//! one window-assignment operator (`stream::ops::window_assign`), which
//! also closes windows on the watermark. TUMBLE is HOP with slide = size.
//!
//! A row with a NULL time belongs to no window: it is filtered out, as
//! RisingWave does. HOP needs `size` to be a multiple of `slide`.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, TimeUnit};
use datafusion::catalog::{TableFunctionImpl, TableProvider, view::ViewTable};
use datafusion::common::{Column, ScalarValue, plan_err};
use datafusion::datasource::provider_as_source;
use datafusion::error::Result as DFResult;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, lit};

/// Finds a table or view by name (schema `public`).
pub type Resolver = Arc<dyn Fn(&str) -> Option<Arc<dyn TableProvider>> + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    Tumble,
    Hop,
}

pub struct WindowFunction {
    kind: WindowKind,
    resolve: Resolver,
}

impl std::fmt::Debug for WindowFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.kind)
    }
}

impl WindowFunction {
    pub fn new(kind: WindowKind, resolve: Resolver) -> WindowFunction {
        WindowFunction { kind, resolve }
    }

    fn name(&self) -> &'static str {
        match self.kind {
            WindowKind::Tumble => "TUMBLE",
            WindowKind::Hop => "HOP",
        }
    }
}

/// An identifier argument (`t`, `ts`) as the planner hands it over.
fn identifier(e: &Expr) -> Option<String> {
    match e {
        Expr::Column(Column { relation, name, .. }) => Some(match relation {
            Some(r) => format!("{r}.{name}"),
            None => name.clone(),
        }),
        _ => None,
    }
}

/// An interval argument in nanoseconds (no months: they have no fixed
/// length, and date_bin refuses them too).
fn interval_nanos(e: &Expr) -> Option<i64> {
    match e {
        Expr::Literal(ScalarValue::IntervalMonthDayNano(Some(v)), _) if v.months == 0 => {
            Some(v.days as i64 * 86_400_000_000_000 + v.nanoseconds)
        }
        Expr::Literal(ScalarValue::IntervalDayTime(Some(v)), _) => {
            Some(v.days as i64 * 86_400_000_000_000 + v.milliseconds as i64 * 1_000_000)
        }
        Expr::Cast(c) => interval_nanos(&c.expr),
        _ => None,
    }
}

/// An interval argument that may be negative or zero (the offset).
fn interval_nanos_signed(e: &Expr) -> Option<i64> {
    match e {
        Expr::Negative(inner) => interval_nanos_signed(inner).map(|n| -n),
        other => interval_nanos(other),
    }
}

fn interval(nanos: i64) -> Expr {
    lit(ScalarValue::new_interval_mdn(0, 0, nanos))
}

impl TableFunctionImpl for WindowFunction {
    fn call(&self, args: &[Expr]) -> DFResult<Arc<dyn TableProvider>> {
        let name = self.name();
        let usage = match self.kind {
            WindowKind::Tumble => "TUMBLE(table, time_column, size [, offset])",
            WindowKind::Hop => "HOP(table, time_column, slide, size [, offset])",
        };
        let want = if self.kind == WindowKind::Tumble {
            3
        } else {
            4
        };
        if args.len() != want && args.len() != want + 1 {
            return plan_err!("{name} takes {want} or {} arguments: {usage}", want + 1);
        }
        let offset = match args.get(want) {
            None => 0,
            Some(e) => match interval_nanos_signed(e) {
                Some(n) => n,
                None => {
                    return plan_err!("{name}: the offset is an interval without months: {usage}");
                }
            },
        };
        let args = &args[..want];
        let (Some(table), Some(time)) = (identifier(&args[0]), identifier(&args[1])) else {
            return plan_err!("{name}: the first two arguments are a table and a column: {usage}");
        };
        let intervals: Option<Vec<i64>> = args[2..].iter().map(interval_nanos).collect();
        let Some(intervals) = intervals.filter(|v| v.iter().all(|n| *n > 0)) else {
            return plan_err!(
                "{name}: window sizes are positive intervals without months: {usage}"
            );
        };
        let (slide, size) = match self.kind {
            WindowKind::Tumble => (intervals[0], intervals[0]),
            WindowKind::Hop => (intervals[0], intervals[1]),
        };
        if size % slide != 0 {
            return plan_err!("HOP: the window size must be a multiple of the slide");
        }
        let Some(provider) = (self.resolve)(&table) else {
            return plan_err!("relation \"{table}\" does not exist");
        };
        let schema = provider.schema();
        let Ok(time_field) = schema.field_with_name(&time) else {
            return plan_err!("column \"{time}\" does not exist in \"{table}\"");
        };
        if !matches!(
            time_field.data_type(),
            datafusion::arrow::datatypes::DataType::Timestamp(..)
                | datafusion::arrow::datatypes::DataType::Date32
        ) {
            return plan_err!(
                "{name}: column \"{time}\" is {}, not a timestamp",
                time_field.data_type()
            );
        }
        let scan = LogicalPlanBuilder::scan(table.as_str(), provider_as_source(provider), None)?
            .filter(Expr::Column(Column::from_name(&time)).is_not_null())?
            .build()?;
        let plan = windowed(&scan, &time, slide, size, offset)?;
        Ok(Arc::new(ViewTable::new(plan, None)))
    }
}

/// The name of the scalar function listing a time's window starts; the
/// view lowering recognizes it under UNNEST (see the module doc).
pub const WINDOW_STARTS: &str = "streamlake_window_starts";

/// `scan`'s columns plus window_start and window_end, one row per window:
/// `UNNEST(streamlake_window_starts(ts, slide, size, offset))`.
fn windowed(
    scan: &LogicalPlan,
    time: &str,
    slide: i64,
    size: i64,
    offset: i64,
) -> DFResult<LogicalPlan> {
    let ts = Expr::Column(Column::from_name(time));
    let us = |nanos: i64| lit(ScalarValue::Int64(Some(nanos / 1000)));
    let starts = Expr::ScalarFunction(datafusion::logical_expr::expr::ScalarFunction::new_udf(
        Arc::new(datafusion::logical_expr::ScalarUDF::new_from_impl(
            WindowStarts::new(),
        )),
        vec![ts, us(slide), us(size), us(offset)],
    ));
    let columns: Vec<Expr> = scan
        .schema()
        .columns()
        .into_iter()
        .map(Expr::Column)
        .collect();
    let mut below = columns.clone();
    below.push(starts.alias("window_start"));
    let start = Expr::Column(Column::from_name("window_start"));
    let start_type =
        WindowStarts::element_type(scan.schema().field_with_unqualified_name(time)?.data_type());
    let end = datafusion::logical_expr::cast(start.clone() + interval(size), start_type);
    let mut above = columns;
    above.push(start);
    above.push(end.alias("window_end"));
    LogicalPlanBuilder::from(scan.clone())
        .project(below)?
        .unnest_column("window_start")?
        .project(above)?
        .build()
}

/// `streamlake_window_starts(ts, slide_us, size_us, offset_us)`: the
/// starts of the `size / slide` windows holding `ts`, oldest first, as a
/// list of timestamps of `ts`'s type (a date becomes a timestamp). The
/// same arithmetic as the streaming window assignment
/// ([`crate::stream::ops::window_assign::window_starts`]), so a SELECT and
/// a view agree.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct WindowStarts {
    signature: datafusion::logical_expr::Signature,
}

impl WindowStarts {
    pub fn new() -> WindowStarts {
        WindowStarts {
            signature: datafusion::logical_expr::Signature::any(
                4,
                datafusion::logical_expr::Volatility::Immutable,
            ),
        }
    }

    pub fn element_type(t: &DataType) -> DataType {
        match t {
            DataType::Timestamp(unit, tz) => DataType::Timestamp(*unit, tz.clone()),
            _ => DataType::Timestamp(TimeUnit::Microsecond, None),
        }
    }
}

impl Default for WindowStarts {
    fn default() -> Self {
        Self::new()
    }
}

impl datafusion::logical_expr::ScalarUDFImpl for WindowStarts {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn name(&self) -> &str {
        WINDOW_STARTS
    }

    fn signature(&self) -> &datafusion::logical_expr::Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> DFResult<DataType> {
        Ok(DataType::List(Arc::new(Field::new_list_field(
            Self::element_type(&args[0]),
            true,
        ))))
    }

    fn invoke_with_args(
        &self,
        args: datafusion::logical_expr::ScalarFunctionArgs,
    ) -> DFResult<datafusion::logical_expr::ColumnarValue> {
        use datafusion::arrow::array::{Array, ListBuilder, TimestampMicrosecondBuilder};
        use datafusion::logical_expr::ColumnarValue;
        let constant = |i: usize| -> DFResult<i64> {
            match &args.args[i] {
                ColumnarValue::Scalar(ScalarValue::Int64(Some(v))) => Ok(*v),
                _ => plan_err!("{WINDOW_STARTS}: argument {i} must be a constant"),
            }
        };
        let (slide, size, offset) = (constant(1)?, constant(2)?, constant(3)?);
        let times = args.args[0].to_array(args.number_rows)?;
        let out_type = Self::element_type(times.data_type());
        let micros = crate::stream::event_time::micros_array(&times)
            .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
        let mut builder = ListBuilder::new(TimestampMicrosecondBuilder::new());
        for i in 0..micros.len() {
            if micros.is_null(i) {
                builder.append_null();
                continue;
            }
            for s in crate::stream::ops::window_assign::window_starts(
                micros.value(i),
                slide,
                size,
                offset,
            ) {
                builder.values().append_value(s);
            }
            builder.append(true);
        }
        let list: datafusion::arrow::array::ArrayRef = Arc::new(builder.finish());
        let want = DataType::List(Arc::new(Field::new_list_field(out_type, true)));
        Ok(ColumnarValue::Array(datafusion::arrow::compute::cast(
            &list, &want,
        )?))
    }
}
