//! `agg(…) FILTER (WHERE p)` aggregates only the rows where `p` is true.
//! DataFusion 53 also feeds rows where `p` is NULL to some aggregates
//! (`count(*) FILTER (WHERE amount > 50)` counts rows with a NULL amount),
//! which PostgreSQL does not. This analyzer rule rewrites every aggregate
//! filter to `p IS TRUE`, so plain SELECTs answer as PostgreSQL does; the
//! views' own aggregation already treats NULL as false.

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::Result;
use datafusion::logical_expr::{Aggregate, Expr, LogicalPlan, expr::AggregateFunction};
use datafusion::optimizer::AnalyzerRule;

#[derive(Debug, Default)]
pub struct NullSafeAggregateFilter;

fn already_safe(e: &Expr) -> bool {
    matches!(e, Expr::IsTrue(_))
}

/// Rewrites the filters of one aggregate expression; `None` if none needed it.
fn rewrite(e: &Expr) -> Result<Option<Expr>> {
    let t = e.clone().transform_up(|e| match e {
        Expr::AggregateFunction(mut f)
            if f.params.filter.as_deref().is_some_and(|p| !already_safe(p)) =>
        {
            let p = f.params.filter.take().expect("checked");
            f.params.filter = Some(Box::new(Expr::IsTrue(p)));
            Ok(Transformed::yes(Expr::AggregateFunction(
                AggregateFunction {
                    func: f.func,
                    params: f.params,
                },
            )))
        }
        other => Ok(Transformed::no(other)),
    })?;
    Ok(t.transformed.then_some(t.data))
}

impl AnalyzerRule for NullSafeAggregateFilter {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            let LogicalPlan::Aggregate(agg) = &node else {
                return Ok(Transformed::no(node));
            };
            let mut changed = false;
            let mut aggr_expr = Vec::with_capacity(agg.aggr_expr.len());
            for e in &agg.aggr_expr {
                match rewrite(e)? {
                    // Keep the output column's name: the plan above refers
                    // to it.
                    Some(new) => {
                        changed = true;
                        let name = e.schema_name().to_string();
                        aggr_expr.push(match new {
                            Expr::Alias(_) => new,
                            other => other.alias(name),
                        });
                    }
                    None => aggr_expr.push(e.clone()),
                }
            }
            if !changed {
                return Ok(Transformed::no(node));
            }
            Ok(Transformed::yes(LogicalPlan::Aggregate(
                Aggregate::try_new(agg.input.clone(), agg.group_expr.clone(), aggr_expr)?,
            )))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "null_safe_aggregate_filter"
    }
}
