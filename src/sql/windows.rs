//! The time-window table functions `TUMBLE(t, ts, size)` and
//! `HOP(t, ts, slide, size)`: every column of `t` plus `window_start` and
//! `window_end` (timestamps; a window holds `window_start <= ts <
//! window_end`, windows aligned to the Unix epoch like PostgreSQL's
//! `date_bin(size, ts, TIMESTAMP '1970-01-01')`).
//!
//! Both are logical plans over `t`, so the same definition serves a plain
//! SELECT (DataFusion runs it) and a materialized view (the lowering sees a
//! scan of `t` and projections, nothing new to maintain):
//!
//! ```text
//! TUMBLE: Projection(t.*, date_bin(size, ts) AS window_start, … + size AS window_end) ─ Scan(t)
//! HOP:    Union over i in 0..size/slide of
//!         Projection(t.*, date_bin(slide, ts) - i·slide AS window_start, … + size AS window_end) ─ Scan(t)
//! ```
//!
//! A row with a NULL time belongs to no window: it is filtered out, as
//! RisingWave does. HOP needs `size` to be a multiple of `slide`.

use std::sync::Arc;

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

fn interval(nanos: i64) -> Expr {
    lit(ScalarValue::new_interval_mdn(0, 0, nanos))
}

impl TableFunctionImpl for WindowFunction {
    fn call(&self, args: &[Expr]) -> DFResult<Arc<dyn TableProvider>> {
        let name = self.name();
        let usage = match self.kind {
            WindowKind::Tumble => "TUMBLE(table, time_column, size)",
            WindowKind::Hop => "HOP(table, time_column, slide, size)",
        };
        let want = if self.kind == WindowKind::Tumble {
            3
        } else {
            4
        };
        if args.len() != want {
            return plan_err!("{name} takes {want} arguments: {usage}");
        }
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
        let mut plan: Option<LogicalPlanBuilder> = None;
        for i in 0..size / slide {
            let branch = window_projection(&scan, &time, slide, size, i * slide)?;
            plan = Some(match plan {
                None => LogicalPlanBuilder::from(branch),
                Some(p) => p.union(branch)?,
            });
        }
        let plan = plan.expect("at least one window").build()?;
        Ok(Arc::new(ViewTable::new(plan, None)))
    }
}

/// The input's columns plus the window starting `back` nanoseconds before
/// the slide-aligned bin of each row's time.
fn window_projection(
    scan: &LogicalPlan,
    time: &str,
    slide: i64,
    size: i64,
    back: i64,
) -> DFResult<LogicalPlan> {
    let ts = Expr::Column(Column::from_name(time));
    let ts_type = scan
        .schema()
        .field_with_unqualified_name(time)?
        .data_type()
        .clone();
    let origin = lit(ScalarValue::TimestampNanosecond(Some(0), None));
    let bin = datafusion::functions::datetime::expr_fn::date_bin(interval(slide), ts, origin);
    let start = if back == 0 { bin } else { bin - interval(back) };
    let start = datafusion::logical_expr::cast(start, ts_type.clone());
    let end = datafusion::logical_expr::cast(start.clone() + interval(size), ts_type);
    let mut exprs: Vec<Expr> = scan
        .schema()
        .columns()
        .into_iter()
        .map(Expr::Column)
        .collect();
    exprs.push(start.alias("window_start"));
    exprs.push(end.alias("window_end"));
    LogicalPlanBuilder::from(scan.clone())
        .project(exprs)?
        .build()
}
