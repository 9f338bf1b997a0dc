//! Lowering a view's query to the operator pipeline.
//!
//! The query goes through DataFusion's SQL planner and optimizer to a
//! `LogicalPlan`; this module walks it bottom-up and builds one operator per
//! node. A shape the runtime cannot maintain exactly is refused here with
//! SQLSTATE 0A000 naming the construct, never turned into a view that
//! drifts from its query.
//!
//! Maintained today: one base table, filters, projections, and GROUP BY (or
//! global) aggregation with count, count(*), sum, avg, min and max, with
//! HAVING and projections above it.

use std::sync::Arc;

use datafusion::common::DFSchema;
use datafusion::execution::SessionState;
use datafusion::logical_expr::{Expr, ExprSchemable, LogicalPlan};
use datafusion::physical_expr::PhysicalExpr;

use crate::error::{Error, Result};
use crate::stream::operator::Operator;
use crate::stream::ops::filter::FilterOperator;
use crate::stream::ops::hash_agg::{AggKind, AggSpec, HashAggOperator};
use crate::stream::ops::project::ProjectOperator;

/// A planned view: the base table it reads and its operators, in order.
pub struct ViewPlan {
    /// Name of the base table in schema `public`.
    pub source: String,
    pub operators: Vec<Box<dyn Operator>>,
    /// Output schema of the pipeline (the view's columns).
    pub schema: datafusion::arrow::datatypes::SchemaRef,
    /// Whether the view only ever grows (no aggregation, so a plain insert
    /// feed stays insert-only).
    pub has_aggregation: bool,
}

fn unsupported(what: impl Into<String>) -> Error {
    Error::FeatureNotSupported(format!(
        "{} is not supported in a materialized view yet",
        what.into()
    ))
}

fn physical(state: &SessionState, expr: &Expr, schema: &DFSchema) -> Result<Arc<dyn PhysicalExpr>> {
    if expr.exists(|e| {
        Ok(matches!(
            e,
            Expr::ScalarSubquery(_) | Expr::InSubquery(_) | Expr::Exists(_)
        ))
    })? {
        return Err(unsupported("a subquery"));
    }
    if expr.exists(|e| Ok(matches!(e, Expr::WindowFunction(_))))? {
        return Err(unsupported("a window function"));
    }
    Ok(state.create_physical_expr(expr.clone(), schema)?)
}

use datafusion::common::tree_node::TreeNode;

/// Refuses `agg(DISTINCT …)` anywhere in the (unoptimized) plan.
pub fn refuse_distinct_aggregates(plan: &LogicalPlan) -> Result<()> {
    let mut found: Option<String> = None;
    plan.apply(|node| {
        node.apply_expressions(|e| {
            e.apply(|x| {
                if let Expr::AggregateFunction(f) = x
                    && f.params.distinct
                {
                    found = Some(format!("{}(DISTINCT …)", f.func.name()));
                    return Ok(datafusion::common::tree_node::TreeNodeRecursion::Stop);
                }
                Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
            })
        })
    })?;
    match found {
        Some(what) => Err(unsupported(what)),
        None => Ok(()),
    }
}

/// Lowers an optimized logical plan.
pub fn lower(
    state: &SessionState,
    plan: &LogicalPlan,
    views: &dyn Fn(&str) -> bool,
) -> Result<ViewPlan> {
    let mut ops: Vec<Box<dyn Operator>> = Vec::new();
    let mut has_aggregation = false;
    let source = lower_into(state, plan, views, &mut ops, &mut has_aggregation)?;
    Ok(ViewPlan {
        source,
        operators: ops,
        schema: Arc::new(plan.schema().as_arrow().clone()),
        has_aggregation,
    })
}

fn lower_into(
    state: &SessionState,
    plan: &LogicalPlan,
    views: &dyn Fn(&str) -> bool,
    ops: &mut Vec<Box<dyn Operator>>,
    has_aggregation: &mut bool,
) -> Result<String> {
    match plan {
        LogicalPlan::TableScan(scan) => {
            let name = scan.table_name.table().to_string();
            if let Some(schema) = scan.table_name.schema()
                && schema != "public"
            {
                return Err(unsupported(format!("reading {}", scan.table_name)));
            }
            if views(&name) {
                return Err(unsupported("a view over another view"));
            }
            if scan.fetch.is_some() {
                return Err(unsupported("LIMIT"));
            }
            // The feed carries whole rows; the scan's projection picks columns.
            let source_schema = DFSchema::try_from(scan.source.schema().as_ref().clone())?;
            if !scan.filters.is_empty() {
                let predicate = scan
                    .filters
                    .iter()
                    .cloned()
                    .reduce(Expr::and)
                    .expect("non-empty");
                let predicate = crate::storage::table::unqualify(predicate)?;
                ops.push(Box::new(FilterOperator::new(physical(
                    state,
                    &predicate,
                    &source_schema,
                )?)));
            }
            if let Some(projection) = &scan.projection {
                let exprs: Vec<Arc<dyn PhysicalExpr>> = projection
                    .iter()
                    .map(|&i| {
                        let f = scan.source.schema().field(i).clone();
                        Arc::new(datafusion::physical_expr::expressions::Column::new(
                            f.name(),
                            i,
                        )) as Arc<dyn PhysicalExpr>
                    })
                    .collect();
                ops.push(Box::new(ProjectOperator::new(
                    exprs,
                    Arc::new(scan.projected_schema.as_arrow().clone()),
                )));
            }
            Ok(name)
        }
        LogicalPlan::Filter(f) => {
            let source = lower_into(state, &f.input, views, ops, has_aggregation)?;
            ops.push(Box::new(FilterOperator::new(physical(
                state,
                &f.predicate,
                f.input.schema(),
            )?)));
            Ok(source)
        }
        LogicalPlan::Projection(p) => {
            let source = lower_into(state, &p.input, views, ops, has_aggregation)?;
            let exprs = p
                .expr
                .iter()
                .map(|e| physical(state, e, p.input.schema()))
                .collect::<Result<Vec<_>>>()?;
            ops.push(Box::new(ProjectOperator::new(
                exprs,
                Arc::new(p.schema.as_arrow().clone()),
            )));
            Ok(source)
        }
        LogicalPlan::SubqueryAlias(a) => lower_into(state, &a.input, views, ops, has_aggregation),
        LogicalPlan::Aggregate(agg) => {
            let source = lower_into(state, &agg.input, views, ops, has_aggregation)?;
            if *has_aggregation {
                return Err(unsupported("aggregation over an aggregation"));
            }
            *has_aggregation = true;
            let input_schema = agg.input.schema();
            if agg
                .group_expr
                .iter()
                .any(|e| matches!(e, Expr::GroupingSet(_)))
            {
                return Err(unsupported("GROUPING SETS, ROLLUP and CUBE"));
            }
            let mut group_exprs = Vec::new();
            let mut group_types = Vec::new();
            for e in &agg.group_expr {
                group_exprs.push(physical(state, e, input_schema)?);
                group_types.push(e.get_type(input_schema)?);
            }
            let mut specs = Vec::new();
            let mut input_types = Vec::new();
            let out_fields = agg.schema.fields();
            for (i, e) in agg.aggr_expr.iter().enumerate() {
                let e = match e {
                    Expr::Alias(a) => a.expr.as_ref(),
                    other => other,
                };
                let Expr::AggregateFunction(f) = e else {
                    return Err(unsupported(format!("aggregate expression {e}")));
                };
                let name = f.func.name().to_lowercase();
                let p = &f.params;
                if p.distinct {
                    return Err(unsupported(format!("{name}(DISTINCT …)")));
                }
                if p.filter.is_some() {
                    return Err(unsupported(format!("{name}(…) FILTER (WHERE …)")));
                }
                if !p.order_by.is_empty() {
                    return Err(unsupported(format!("{name}(… ORDER BY …)")));
                }
                let kind = match (name.as_str(), p.args.as_slice()) {
                    ("count", []) => AggKind::CountStar,
                    ("count", [Expr::Literal(v, _)]) if !v.is_null() => AggKind::CountStar,
                    ("count", [_]) => AggKind::Count,
                    ("sum", [_]) => AggKind::Sum,
                    ("avg" | "mean", [_]) => AggKind::Avg,
                    ("min", [_]) => AggKind::Min,
                    ("max", [_]) => AggKind::Max,
                    _ => return Err(unsupported(format!("aggregate {name}"))),
                };
                let (input, input_type) = match (kind, p.args.first()) {
                    (AggKind::CountStar, _) | (_, None) => (None, None),
                    (_, Some(arg)) => (
                        Some(physical(state, arg, input_schema)?),
                        Some(arg.get_type(input_schema)?),
                    ),
                };
                let output_type = out_fields[agg.group_expr.len() + i].data_type().clone();
                specs.push(AggSpec {
                    kind,
                    input,
                    output_type,
                });
                input_types.push(input_type);
            }
            ops.push(Box::new(HashAggOperator::try_new(
                group_exprs,
                group_types,
                specs,
                input_types,
                Arc::new(agg.schema.as_arrow().clone()),
            )?));
            Ok(source)
        }
        LogicalPlan::Join(_) => Err(unsupported("a join")),
        LogicalPlan::Union(_) => Err(unsupported("UNION")),
        LogicalPlan::Window(_) => Err(unsupported("a window function")),
        LogicalPlan::Sort(_) => Err(unsupported("ORDER BY")),
        LogicalPlan::Limit(_) => Err(unsupported("LIMIT")),
        LogicalPlan::Distinct(_) => Err(unsupported("DISTINCT")),
        LogicalPlan::Values(_) | LogicalPlan::EmptyRelation(_) => {
            Err(unsupported("a view without a base table"))
        }
        other => Err(unsupported(other.display().to_string())),
    }
}
