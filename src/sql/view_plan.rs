//! Lowering a view's query to the operator pipeline.
//!
//! The query goes through DataFusion's SQL planner and optimizer to a
//! `LogicalPlan`; this module walks it bottom-up and builds one operator per
//! node. A shape the runtime cannot maintain exactly is refused here with
//! SQLSTATE 0A000 naming the construct, never turned into a view that
//! drifts from its query.
//!
//! Maintained today: one or two inputs (tables or other views); filters and
//! projections; inner, left, right and full equi-joins (inner ones with
//! extra conditions); GROUP BY (or global) aggregation with count,
//! count(*), sum, avg, min and max, HAVING, DISTINCT — in any nesting.

use std::sync::Arc;

use datafusion::common::DFSchema;
use datafusion::execution::SessionState;
use datafusion::logical_expr::{Expr, ExprSchemable, LogicalPlan};
use datafusion::physical_expr::PhysicalExpr;

use crate::error::{Error, Result};
use crate::stream::operator::{Operator, TwoInputOperator};
use crate::stream::ops::filter::FilterOperator;
use crate::stream::ops::hash_agg::{AggKind, AggSpec, HashAggOperator};
use crate::stream::ops::hash_join::{HashJoinOperator, JoinKind};
use crate::stream::ops::project::ProjectOperator;
use crate::stream::ops::top_n::TopNOperator;
use crate::stream::ops::union::UnionOperator;

/// A planned view: its inputs (tables or views) and its operators.
pub struct ViewPlan {
    /// Names of the inputs in schema `public`: one, or two for a join.
    pub inputs: Vec<String>,
    /// One operator chain per input.
    pub branches: Vec<Vec<Box<dyn Operator>>>,
    pub join: Option<Box<dyn TwoInputOperator>>,
    /// Operators after the join (or after the only branch).
    pub post: Vec<Box<dyn Operator>>,
    /// Output schema of the pipeline (the view's columns).
    pub schema: datafusion::arrow::datatypes::SchemaRef,
}

/// Where the next operator goes while lowering.
enum Target {
    Branch(usize),
    Post,
}

struct Builder {
    inputs: Vec<String>,
    branches: Vec<Vec<Box<dyn Operator>>>,
    join: Option<Box<dyn TwoInputOperator>>,
    post: Vec<Box<dyn Operator>>,
    target: Target,
}

impl Builder {
    fn push(&mut self, op: Box<dyn Operator>) {
        match self.target {
            Target::Branch(i) => self.branches[i].push(op),
            Target::Post => self.post.push(op),
        }
    }
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

/// Lowers an optimized logical plan.
pub fn lower(state: &SessionState, plan: &LogicalPlan) -> Result<ViewPlan> {
    let mut b = Builder {
        inputs: Vec::new(),
        branches: Vec::new(),
        join: None,
        post: Vec::new(),
        target: Target::Post,
    };
    lower_into(state, plan, &mut b)?;
    if b.inputs.is_empty() {
        return Err(unsupported("a view without a base table"));
    }
    Ok(ViewPlan {
        inputs: b.inputs,
        branches: b.branches,
        join: b.join,
        post: b.post,
        schema: Arc::new(plan.schema().as_arrow().clone()),
    })
}

fn lower_into(state: &SessionState, plan: &LogicalPlan, b: &mut Builder) -> Result<()> {
    match plan {
        LogicalPlan::TableScan(scan) => {
            let name = scan.table_name.table().to_string();
            if let Some(schema) = scan.table_name.schema()
                && schema != "public"
            {
                return Err(unsupported(format!("reading {}", scan.table_name)));
            }
            if scan.fetch.is_some() {
                return Err(unsupported("LIMIT"));
            }
            if b.join.is_some() || b.inputs.len() >= 2 {
                return Err(unsupported("a join of more than two inputs"));
            }
            b.inputs.push(name);
            b.branches.push(Vec::new());
            b.target = Target::Branch(b.branches.len() - 1);
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
                b.push(Box::new(FilterOperator::new(physical(
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
                b.push(Box::new(ProjectOperator::new(
                    exprs,
                    Arc::new(scan.projected_schema.as_arrow().clone()),
                )));
            }
            Ok(())
        }
        LogicalPlan::Filter(f) if top_n_pattern(f).is_some() => {
            let (window, projection, limit) = top_n_pattern(f).expect("checked");
            lower_into(state, &window.input, b)?;
            b.push(Box::new(lower_top_n(state, window, limit)?));
            if let Some(p) = projection {
                let exprs = p
                    .expr
                    .iter()
                    .map(|e| physical(state, e, p.input.schema()))
                    .collect::<Result<Vec<_>>>()?;
                b.push(Box::new(ProjectOperator::new(
                    exprs,
                    Arc::new(p.schema.as_arrow().clone()),
                )));
            }
            b.push(Box::new(FilterOperator::new(physical(
                state,
                &f.predicate,
                f.input.schema(),
            )?)));
            Ok(())
        }
        LogicalPlan::Filter(f) => {
            lower_into(state, &f.input, b)?;
            b.push(Box::new(FilterOperator::new(physical(
                state,
                &f.predicate,
                f.input.schema(),
            )?)));
            Ok(())
        }
        LogicalPlan::Projection(p) => {
            lower_into(state, &p.input, b)?;
            let exprs = p
                .expr
                .iter()
                .map(|e| physical(state, e, p.input.schema()))
                .collect::<Result<Vec<_>>>()?;
            b.push(Box::new(ProjectOperator::new(
                exprs,
                Arc::new(p.schema.as_arrow().clone()),
            )));
            Ok(())
        }
        LogicalPlan::SubqueryAlias(a) => lower_into(state, &a.input, b),
        LogicalPlan::Aggregate(agg) => {
            lower_into(state, &agg.input, b)?;
            b.push(Box::new(lower_aggregate(state, agg)?));
            Ok(())
        }
        LogicalPlan::Join(join) => {
            use datafusion::common::{JoinType, NullEquality};
            let kind = match join.join_type {
                JoinType::Inner => JoinKind::Inner,
                JoinType::Left => JoinKind::Left,
                JoinType::Right => JoinKind::Right,
                JoinType::Full => JoinKind::Full,
                JoinType::LeftSemi => JoinKind::Semi,
                JoinType::LeftAnti if !join.null_aware => JoinKind::Anti,
                JoinType::LeftAnti => {
                    return Err(unsupported("NOT IN over a subquery (use NOT EXISTS)"));
                }
                other => return Err(unsupported(format!("a {other} join"))),
            };
            if join.on.is_empty() {
                return Err(unsupported("a join without an equality condition"));
            }
            if join.filter.is_some() && kind != JoinKind::Inner {
                return Err(unsupported(
                    "an outer, semi or anti join with a non-equality condition",
                ));
            }
            if !b.inputs.is_empty() || b.join.is_some() {
                return Err(unsupported("a join of more than two inputs"));
            }
            lower_into(state, &join.left, b)?;
            lower_into(state, &join.right, b)?;
            if b.inputs.len() != 2 {
                return Err(unsupported("a join of more than two inputs"));
            }
            let (ls, rs) = (join.left.schema(), join.right.schema());
            let mut left_keys = Vec::new();
            let mut right_keys = Vec::new();
            let mut key_types = Vec::new();
            for (l, r) in &join.on {
                left_keys.push(physical(state, l, ls)?);
                right_keys.push(physical(state, r, rs)?);
                key_types.push(l.get_type(ls)?);
            }
            b.join = Some(Box::new(HashJoinOperator::try_new(
                kind,
                join.null_equality == NullEquality::NullEqualsNull,
                left_keys,
                right_keys,
                key_types,
                &Arc::new(ls.as_arrow().clone()),
                &Arc::new(rs.as_arrow().clone()),
                Arc::new(join.schema.as_arrow().clone()),
            )?));
            b.target = Target::Post;
            if let Some(filter) = &join.filter {
                b.push(Box::new(FilterOperator::new(physical(
                    state,
                    filter,
                    &join.schema,
                )?)));
            }
            Ok(())
        }
        LogicalPlan::Union(u) => {
            if u.inputs.len() != 2 || !b.inputs.is_empty() || b.join.is_some() {
                return Err(unsupported("a UNION of more than two inputs"));
            }
            lower_into(state, &u.inputs[0], b)?;
            lower_into(state, &u.inputs[1], b)?;
            if b.inputs.len() != 2 {
                return Err(unsupported("a UNION of more than two inputs"));
            }
            b.join = Some(Box::new(UnionOperator::new(Arc::new(
                u.schema.as_arrow().clone(),
            ))));
            b.target = Target::Post;
            Ok(())
        }
        LogicalPlan::Window(_) => Err(unsupported(
            "a window function (other than ROW_NUMBER() filtered to its first N rows)",
        )),
        // A view is a set of rows: an ORDER BY without LIMIT changes nothing
        // (PostgreSQL accepts it in a view definition too).
        LogicalPlan::Sort(sort) if sort.fetch.is_none() => lower_into(state, &sort.input, b),
        LogicalPlan::Sort(_) => Err(unsupported("ORDER BY … LIMIT")),
        LogicalPlan::Limit(_) => Err(unsupported("LIMIT")),
        LogicalPlan::Distinct(_) => Err(unsupported("DISTINCT ON")),
        LogicalPlan::Values(_) | LogicalPlan::EmptyRelation(_) => {
            Err(unsupported("a view without a base table"))
        }
        other => Err(unsupported(other.display().to_string())),
    }
}

/// Recognizes `Filter(rn = 1 | rn <= N | rn < N, [Projection,] Window(ROW_NUMBER()))`:
/// deduplication and top-N per group.
fn top_n_pattern(
    f: &datafusion::logical_expr::Filter,
) -> Option<(
    &datafusion::logical_expr::Window,
    Option<&datafusion::logical_expr::Projection>,
    usize,
)> {
    use datafusion::logical_expr::{BinaryExpr, Operator as BinOp, utils::split_conjunction};
    let (window, projection) = match f.input.as_ref() {
        LogicalPlan::Window(w) => (w, None),
        LogicalPlan::Projection(p) => match p.input.as_ref() {
            LogicalPlan::Window(w) => (w, Some(p)),
            _ => return None,
        },
        _ => return None,
    };
    if window.window_expr.len() != 1 {
        return None;
    }
    let Expr::WindowFunction(wf) = window.window_expr[0].clone().unalias() else {
        return None;
    };
    if wf.fun.name() != "row_number" {
        return None;
    }
    // The name of the row number column as the filter sees it.
    let input_len = window.input.schema().fields().len();
    let rn_field = window.schema.field(input_len).name().clone();
    let is_rn = |e: &Expr| -> bool {
        let Expr::Column(c) = e.clone().unalias() else {
            return false;
        };
        match projection {
            None => c.name == rn_field,
            Some(p) => p.expr.iter().enumerate().any(|(i, pe)| {
                p.schema.field(i).name() == &c.name
                    && matches!(pe.clone().unalias(), Expr::Column(inner) if inner.name == rn_field)
            }),
        }
    };
    let literal = |e: &Expr| -> Option<i64> {
        match e.clone().unalias() {
            Expr::Literal(v, _) => v.to_string().parse::<i64>().ok(),
            Expr::Cast(c) => match *c.expr {
                Expr::Literal(v, _) => v.to_string().parse::<i64>().ok(),
                _ => None,
            },
            _ => None,
        }
    };
    for conjunct in split_conjunction(&f.predicate) {
        let Expr::BinaryExpr(BinaryExpr { left, op, right }) = conjunct else {
            continue;
        };
        if !is_rn(left) {
            continue;
        }
        let Some(n) = literal(right) else { continue };
        let limit = match op {
            BinOp::Eq if n == 1 => 1,
            BinOp::LtEq if n >= 1 => n,
            BinOp::Lt if n >= 2 => n - 1,
            _ => continue,
        };
        return Some((window, projection, limit as usize));
    }
    None
}

fn lower_top_n(
    state: &SessionState,
    window: &datafusion::logical_expr::Window,
    limit: usize,
) -> Result<TopNOperator> {
    use datafusion::arrow::compute::SortOptions;
    let Expr::WindowFunction(wf) = window.window_expr[0].clone().unalias() else {
        return Err(Error::Internal("top-N without its window function".into()));
    };
    let input_schema = window.input.schema();
    let mut partition_by = Vec::new();
    let mut partition_types = Vec::new();
    for e in &wf.params.partition_by {
        partition_by.push(physical(state, e, input_schema)?);
        partition_types.push(e.get_type(input_schema)?);
    }
    let mut order_by = Vec::new();
    let mut order_types = Vec::new();
    for s in &wf.params.order_by {
        order_by.push(physical(state, &s.expr, input_schema)?);
        order_types.push((
            s.expr.get_type(input_schema)?,
            SortOptions {
                descending: !s.asc,
                nulls_first: s.nulls_first,
            },
        ));
    }
    TopNOperator::try_new(
        partition_by,
        partition_types,
        order_by,
        order_types,
        &Arc::new(input_schema.as_arrow().clone()),
        limit,
        Arc::new(window.schema.as_arrow().clone()),
    )
}

fn lower_aggregate(
    state: &SessionState,
    agg: &datafusion::logical_expr::Aggregate,
) -> Result<HashAggOperator> {
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
        let ordered = matches!(name.as_str(), "first_value" | "last_value");
        if !p.order_by.is_empty() && !ordered {
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
            ("var" | "var_samp" | "variance" | "var_sample", [_]) => AggKind::VarSamp,
            ("var_pop" | "var_population", [_]) => AggKind::VarPop,
            ("stddev" | "stddev_samp", [_]) => AggKind::StddevSamp,
            ("stddev_pop", [_]) => AggKind::StddevPop,
            ("bool_and", [_]) => AggKind::BoolAnd,
            ("bool_or", [_]) => AggKind::BoolOr,
            ("first_value", [_]) if !p.order_by.is_empty() => AggKind::First,
            ("last_value", [_]) if !p.order_by.is_empty() => AggKind::Last,
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
        let mut order_by = Vec::new();
        for s in &p.order_by {
            order_by.push((
                physical(state, &s.expr, input_schema)?,
                datafusion::arrow::row::SortField::new_with_options(
                    s.expr.get_type(input_schema)?,
                    datafusion::arrow::compute::SortOptions {
                        descending: !s.asc,
                        nulls_first: s.nulls_first,
                    },
                ),
            ));
        }
        specs.push(AggSpec {
            kind,
            input,
            output_type,
            order_by,
        });
        input_types.push(input_type);
    }
    HashAggOperator::try_new(
        group_exprs,
        group_types,
        specs,
        input_types,
        Arc::new(agg.schema.as_arrow().clone()),
    )
}
