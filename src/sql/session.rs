//! The session-window table function `SESSION(t, ts, gap [, key, …])`:
//! every column of `t` plus `window_start` and `window_end`, where each
//! row's window is its session — the rows of the same keys whose times
//! are chained by gaps shorter than `gap` — from the session's first time
//! to its last time plus `gap` (two rows are in one session when their
//! windows `[ts, ts + gap)` overlap, so a row that bridges two sessions
//! merges them). A row with a NULL time belongs to no session.
//!
//! The function returns a [`SessionProvider`], which a plain SELECT runs as
//! window functions over `t`:
//!
//! ```text
//! prev  = lag(ts) OVER (PARTITION BY keys ORDER BY ts)
//! sid   = sum(CASE WHEN prev IS NULL OR ts >= prev + gap THEN 1 ELSE 0 END)
//!           OVER (PARTITION BY keys ORDER BY ts)
//! window_start = min(ts) OVER (PARTITION BY keys, sid)
//! window_end   = max(ts) OVER (PARTITION BY keys, sid) + gap
//! ```
//!
//! and the view lowering recognizes by type and maintains with the
//! session-window operator (`stream::ops::session_window`).

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableFunctionImpl, TableProvider};
use datafusion::common::{Column, ScalarValue, plan_err};
use datafusion::datasource::{TableType, provider_as_source};
use datafusion::error::Result as DFResult;
use datafusion::logical_expr::{
    Expr, ExprFunctionExt, LogicalPlan, LogicalPlanBuilder, col, lit, when,
};
use datafusion::physical_plan::ExecutionPlan;

use crate::sql::windows::Resolver;

pub struct SessionFunction {
    resolve: Resolver,
}

impl std::fmt::Debug for SessionFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SESSION")
    }
}

impl SessionFunction {
    pub fn new(resolve: Resolver) -> SessionFunction {
        SessionFunction { resolve }
    }
}

/// `SESSION(t, ts, gap, keys…)` over one table or view.
#[derive(Debug)]
pub struct SessionProvider {
    /// The input: `t` with NULL times filtered out.
    pub input: LogicalPlan,
    /// The name of `t` (the view lowering subscribes to it).
    pub table: String,
    /// Index of the time column in `t`.
    pub time: usize,
    /// Indices of the key columns in `t`.
    pub keys: Vec<usize>,
    /// The gap in microseconds.
    pub gap: i64,
    schema: SchemaRef,
}

impl TableFunctionImpl for SessionFunction {
    fn call(&self, args: &[Expr]) -> DFResult<Arc<dyn TableProvider>> {
        const USAGE: &str = "SESSION(table, time_column, gap [, key_column, …])";
        if args.len() < 3 {
            return plan_err!("SESSION takes at least 3 arguments: {USAGE}");
        }
        let ident = |e: &Expr| match e {
            Expr::Column(Column { relation, name, .. }) => Some(match relation {
                Some(r) => format!("{r}.{name}"),
                None => name.clone(),
            }),
            _ => None,
        };
        let (Some(table), Some(time)) = (ident(&args[0]), ident(&args[1])) else {
            return plan_err!("SESSION: the first two arguments are a table and a column: {USAGE}");
        };
        let gap = match &args[2] {
            Expr::Literal(ScalarValue::IntervalMonthDayNano(Some(v)), _) if v.months == 0 => {
                v.days as i64 * 86_400_000_000 + v.nanoseconds / 1000
            }
            Expr::Literal(ScalarValue::IntervalDayTime(Some(v)), _) => {
                v.days as i64 * 86_400_000_000 + v.milliseconds as i64 * 1000
            }
            _ => -1,
        };
        if gap <= 0 {
            return plan_err!("SESSION: the gap is a positive interval without months: {USAGE}");
        }
        let Some(provider) = (self.resolve)(&table) else {
            return plan_err!("relation \"{table}\" does not exist");
        };
        let schema = provider.schema();
        let Ok(time_index) = schema.index_of(&time) else {
            return plan_err!("column \"{time}\" does not exist in \"{table}\"");
        };
        let time_type = schema.field(time_index).data_type().clone();
        if !matches!(time_type, DataType::Timestamp(..)) {
            return plan_err!("SESSION: column \"{time}\" is {time_type}, not a timestamp");
        }
        let mut keys = Vec::new();
        for k in &args[3..] {
            let Some(name) = ident(k) else {
                return plan_err!("SESSION: keys are column names: {USAGE}");
            };
            let Ok(i) = schema.index_of(&name) else {
                return plan_err!("column \"{name}\" does not exist in \"{table}\"");
            };
            keys.push(i);
        }
        let input = LogicalPlanBuilder::scan(table.as_str(), provider_as_source(provider), None)?
            .filter(Expr::Column(Column::from_name(&time)).is_not_null())?
            .build()?;
        let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new("window_start", time_type.clone(), true));
        fields.push(Field::new("window_end", time_type, true));
        Ok(Arc::new(SessionProvider {
            input,
            table,
            time: time_index,
            keys,
            gap,
            schema: Arc::new(Schema::new(fields)),
        }))
    }
}

impl SessionProvider {
    /// The batch definition: window functions over the input.
    pub fn batch_plan(&self) -> DFResult<LogicalPlan> {
        use datafusion::functions_aggregate::{min_max, sum::sum_udaf};
        use datafusion::functions_window::expr_fn::lag;
        use datafusion::logical_expr::WindowFunctionDefinition;
        let over = |f: Arc<datafusion::logical_expr::AggregateUDF>, arg: Expr| {
            Expr::from(datafusion::logical_expr::expr::WindowFunction::new(
                WindowFunctionDefinition::AggregateUDF(f),
                vec![arg],
            ))
        };
        let in_schema = self.input.schema();
        let column = |i: usize| Expr::Column(Column::from(in_schema.qualified_field(i)));
        let ts = column(self.time);
        let keys: Vec<Expr> = self.keys.iter().map(|&i| column(i)).collect();
        let gap = lit(ScalarValue::new_interval_mdn(0, 0, self.gap * 1000));
        let by_time = vec![ts.clone().sort(true, false)];
        let prev = lag(ts.clone(), Some(1), None)
            .partition_by(keys.clone())
            .order_by(by_time.clone())
            .build()?
            .alias("__session_prev");
        let originals: Vec<Expr> = (0..in_schema.fields().len()).map(column).collect();
        let starts = when(
            col("__session_prev")
                .is_null()
                .or(ts.clone().gt_eq(col("__session_prev") + gap.clone())),
            lit(1i64),
        )
        .otherwise(lit(0i64))?
        .alias("__session_new");
        let mut with_flag = originals.clone();
        with_flag.push(starts);
        // A running sum: ROWS from the partition's start to this row.
        let running = datafusion::logical_expr::WindowFrame::new_bounds(
            datafusion::logical_expr::WindowFrameUnits::Rows,
            datafusion::logical_expr::WindowFrameBound::Preceding(ScalarValue::UInt64(None)),
            datafusion::logical_expr::WindowFrameBound::CurrentRow,
        );
        let sid = over(sum_udaf(), col("__session_new"))
            .partition_by(keys.clone())
            .order_by(by_time)
            .window_frame(running)
            .build()?
            .alias("__session_id");
        let mut by_session = keys;
        by_session.push(col("__session_id"));
        let first = over(min_max::min_udaf(), ts.clone())
            .partition_by(by_session.clone())
            .build()?
            .alias("__session_first");
        let last = over(min_max::max_udaf(), ts)
            .partition_by(by_session)
            .build()?
            .alias("__session_last");
        let time_type = self.schema.field(self.time).data_type().clone();
        let mut out = originals;
        out.push(col("__session_first").alias("window_start"));
        out.push(
            datafusion::logical_expr::cast(col("__session_last") + gap, time_type)
                .alias("window_end"),
        );
        LogicalPlanBuilder::from(self.input.clone())
            .window(vec![prev])?
            .project(with_flag)?
            .window(vec![sid])?
            .window(vec![first, last])?
            .project(out)?
            .build()
    }
}

#[async_trait]
impl TableProvider for SessionProvider {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let mut plan = LogicalPlanBuilder::from(self.batch_plan()?);
        if let Some(f) = filters.iter().cloned().reduce(Expr::and) {
            plan = plan.filter(f)?;
        }
        if let Some(p) = projection {
            let exprs: Vec<Expr> = p
                .iter()
                .map(|&i| col(self.schema.field(i).name()))
                .collect();
            plan = plan.project(exprs)?;
        }
        if let Some(n) = limit {
            plan = plan.limit(0, Some(n))?;
        }
        state.create_physical_plan(&plan.build()?).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{RecordBatch, StringArray, TimestampMicrosecondArray};
    use datafusion::arrow::datatypes::TimeUnit;
    use datafusion::datasource::MemTable;
    use datafusion::prelude::SessionContext;

    #[tokio::test]
    async fn batch_sessions_split_on_gaps_and_merge_by_key() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("usr", DataType::Utf8, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, None), true),
        ]));
        let s = 1_000_000;
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec!["a", "a", "a", "a", "b", "a"])),
                Arc::new(TimestampMicrosecondArray::from(vec![
                    0,
                    2 * s,
                    5 * s,
                    20 * s,
                    3 * s,
                    5 * s,
                ])),
            ],
        )
        .unwrap();
        let t: Arc<dyn TableProvider> =
            Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap());
        let ctx = SessionContext::new();
        let resolve: Resolver = Arc::new(move |_: &str| Some(t.clone()));
        ctx.register_udtf("session", Arc::new(SessionFunction::new(resolve)));
        let rows = ctx
            .sql(
                "SELECT usr, CAST(window_start AS BIGINT) / 1000000 AS s, \
                 CAST(window_end AS BIGINT) / 1000000 AS e, count(*) AS n \
                 FROM session(t, ts, INTERVAL '10 seconds', usr) GROUP BY 1, 2, 3 ORDER BY 1, 2",
            )
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&rows)
            .unwrap()
            .to_string();
        assert!(text.contains("| a   | 0  | 15 | 4 |"), "{text}");
        assert!(text.contains("| a   | 20 | 30 | 1 |"), "{text}");
        assert!(text.contains("| b   | 3  | 13 | 1 |"), "{text}");
    }
}
