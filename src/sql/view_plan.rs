//! Lowering a view's query to the operator pipeline.
//!
//! The query goes through DataFusion's SQL planner and optimizer to a
//! `LogicalPlan`; this module walks it bottom-up and builds one operator per
//! node. A shape the runtime cannot maintain exactly is refused here with
//! SQLSTATE 0A000 naming the construct, never turned into a view that
//! drifts from its query.
//!
//! The result is a tree: leaves read an input (a table or another view),
//! inner nodes join or union two subtrees, and every node carries a chain
//! of one-input operators (filter, project, aggregate, top-N) applied to its
//! output. Multi-way joins are trees of two-input joins, as DataFusion
//! plans them.

use std::sync::Arc;

use datafusion::common::DFSchema;
use datafusion::execution::SessionState;
use datafusion::logical_expr::{Expr, ExprSchemable, LogicalPlan};
use datafusion::physical_expr::PhysicalExpr;

use crate::error::{Error, Result};
use crate::stream::graph::{Node, NodeKind};
use crate::stream::late_events::LateSink;
use crate::stream::message::Watermarks;
use crate::stream::ops::filter::FilterOperator;
use crate::stream::ops::hash_agg::{AggKind, AggSpec, HashAggOperator};
use crate::stream::ops::hash_join::{HashJoinOperator, JoinKind};
use crate::stream::ops::project::ProjectOperator;
use crate::stream::ops::session_window::SessionWindowOperator;
use crate::stream::ops::top_n::{Numbering, TopNOperator, TopNSpec};
use crate::stream::ops::union::UnionOperator;
use crate::stream::ops::window_assign::WindowAssignOperator;
use crate::stream::state::Meter;

/// A planned view: its inputs (tables or views) and the operator tree.
pub struct ViewPlan {
    /// Names of the inputs in schema `public`, in leaf order; the same
    /// input may appear twice (self-joins), each with its own feed.
    pub inputs: Vec<String>,
    pub root: Node,
    /// Output schema of the pipeline (the view's columns).
    pub schema: datafusion::arrow::datatypes::SchemaRef,
    /// Which output columns carry a watermark (values are placeholders).
    pub watermarks: Watermarks,
    /// EMIT ON WINDOW CLOSE: rows appear once, final; append-only.
    pub emit_on_close: bool,
    /// The view only ever gains rows.
    pub append_only: bool,
}

/// Splits a trailing `EMIT ON WINDOW CLOSE` (any case and spacing, an
/// optional `;`) off a view's query.
pub fn split_emit_on_close(query: &str) -> (&str, bool) {
    let body = query.trim_end().trim_end_matches(';').trim_end();
    let words: Vec<&str> = body.split_whitespace().rev().take(4).collect();
    let is_emit = words.len() == 4
        && words
            .iter()
            .zip(["close", "window", "on", "emit"])
            .all(|(w, k)| w.eq_ignore_ascii_case(k));
    if !is_emit {
        return (query, false);
    }
    let lower = body.to_ascii_lowercase();
    match lower.rfind("emit") {
        Some(at) => (body[..at].trim_end(), true),
        None => (query, false),
    }
}

/// The view option `EMIT ON WINDOW CLOSE` travels as through sqlparser
/// (which has no such clause).
pub const EMIT_ON_CLOSE_OPTION: &str = "emit_on_window_close";

/// `CREATE MATERIALIZED VIEW v … AS … EMIT ON WINDOW CLOSE` rewritten to
/// `CREATE MATERIALIZED VIEW v WITH (emit_on_window_close = true) AS …`,
/// which sqlparser takes; `None` for any other statement.
pub fn mend_emit_on_close(query: &str) -> Option<String> {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    let (body, true) = split_emit_on_close(query) else {
        return None;
    };
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, body)
        .tokenize()
        .ok()?;
    // One statement only: in a script the clause belongs to the statement
    // it ends (the caller mends each piece).
    if tokens.iter().any(|t| matches!(t, Token::SemiColon)) {
        return None;
    }
    let sig: Vec<usize> = (0..tokens.len())
        .filter(|&i| !matches!(tokens[i], Token::Whitespace(_)))
        .collect();
    let word = |j: usize, w: &str| {
        sig.get(j).is_some_and(
            |&i| matches!(&tokens[i], Token::Word(x) if x.quote_style.is_none() && x.value.eq_ignore_ascii_case(w)),
        )
    };
    // Also under EXPLAIN.
    let e = usize::from(word(0, "explain"));
    if !(word(e, "create") && word(e + 1, "materialized") && word(e + 2, "view")) {
        return None;
    }
    let mut j = e + 3;
    if word(j, "if") && word(j + 1, "not") && word(j + 2, "exists") {
        j += 3;
    }
    // The name: word (. word)*.
    if !matches!(sig.get(j).map(|&i| &tokens[i]), Some(Token::Word(_))) {
        return None;
    }
    j += 1;
    while matches!(sig.get(j).map(|&i| &tokens[i]), Some(Token::Period)) {
        j += 2;
    }
    if word(j, "with") {
        return None; // other options too: left to the parser's error
    }
    let at = sig.get(j - 1)? + 1;
    let text = |ts: &[Token]| ts.iter().map(ToString::to_string).collect::<String>();
    Some(format!(
        "{} WITH ({EMIT_ON_CLOSE_OPTION} = true){}",
        text(&tokens[..at]),
        text(&tokens[at..])
    ))
}

/// What the lowering needs beyond the plan.
pub struct LowerOptions {
    /// Which columns of an input (by name) carry a watermark: a source's
    /// `WATERMARK FOR` column, a view's watermarked outputs. The values
    /// are placeholders; only presence and the window flag matter.
    pub input_watermarks: Box<dyn Fn(&str) -> Watermarks + Send + Sync>,
    /// The view was declared `EMIT ON WINDOW CLOSE`.
    pub emit_on_close: bool,
    /// Where window operators record late events.
    pub late: Option<LateSink>,
    /// Whether an input (by name) only ever inserts: sources and connector
    /// tables do, tables do not, a view when its plan says so.
    pub input_append_only: Box<dyn Fn(&str) -> bool + Send + Sync>,
    /// The view's state meter: each stateful operator's tables count in a
    /// child of it.
    pub meter: Meter,
    /// `WITH (state_ttl = …)` in µs: dedup keys and regular join state not
    /// written for this long are dropped (the documented exception where a
    /// view may differ from its batch query).
    pub state_ttl: Option<i64>,
}

impl Default for LowerOptions {
    fn default() -> Self {
        LowerOptions {
            input_watermarks: Box::new(|_| Vec::new()),
            emit_on_close: false,
            late: None,
            input_append_only: Box::new(|_| false),
            meter: Meter::root(),
            state_ttl: None,
        }
    }
}

/// Walks the tree with each input's (static) watermarks: aggregates
/// grouped by a window bound learn to close their windows. Returns the
/// output's watermarks and how many aggregates close windows.
fn plan_windows(
    node: &mut Node,
    inputs: &[Watermarks],
    options: &LowerOptions,
    closing: &mut usize,
) -> Watermarks {
    let mut w = match &mut node.kind {
        NodeKind::Input(i) => inputs[*i].clone(),
        NodeKind::Binary { left, right, op } => {
            let l = plan_windows(left, inputs, options, closing);
            let r = plan_windows(right, inputs, options, closing);
            op.output_watermarks(&l, &r)
        }
    };
    for op in node.ops.iter_mut() {
        if op.plan_windows(&w, options.emit_on_close, options.late.clone()) {
            *closing += 1;
        }
        w = op.output_watermarks(&w);
    }
    w
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

fn project(
    state: &SessionState,
    p: &datafusion::logical_expr::Projection,
) -> Result<ProjectOperator> {
    let exprs = p
        .expr
        .iter()
        .map(|e| physical(state, e, p.input.schema()))
        .collect::<Result<Vec<_>>>()?;
    Ok(ProjectOperator::new(
        exprs,
        Arc::new(p.input.schema().as_arrow().clone()),
        Arc::new(p.schema.as_arrow().clone()),
    ))
}

use datafusion::common::tree_node::TreeNode;

/// Refuses functions whose value is not fixed by their arguments
/// (random(), now(), current_timestamp, gen_random_uuid(), …): a view
/// computed with them could never equal its query run again. Checked on
/// the plan before optimization, which would fold now() into the time of
/// CREATE.
pub fn refuse_volatile(plan: &LogicalPlan) -> Result<()> {
    use datafusion::common::tree_node::TreeNodeRecursion;
    use datafusion::logical_expr::Volatility;
    let mut found: Option<String> = None;
    plan.apply_with_subqueries(|node| {
        node.apply_expressions(|e| {
            e.apply(|e| {
                if let Expr::ScalarFunction(f) = e
                    && f.func.signature().volatility != Volatility::Immutable
                {
                    found = Some(f.func.name().to_string());
                    return Ok(TreeNodeRecursion::Stop);
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })?;
        Ok(if found.is_some() {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    })?;
    match found {
        Some(name) => Err(Error::FeatureNotSupported(format!(
            "function {name}() is not allowed in a materialized view: its result changes from one call to the next, so the view could not equal its query"
        ))),
        None => Ok(()),
    }
}

/// Lowers an optimized logical plan.
pub fn lower(state: &SessionState, plan: &LogicalPlan, options: &LowerOptions) -> Result<ViewPlan> {
    let mut inputs = Vec::new();
    let mut root = lower_node(state, plan, &mut inputs, options)?;
    if inputs.is_empty() {
        return Err(unsupported("a view without a base table"));
    }
    let input_watermarks: Vec<Watermarks> = inputs
        .iter()
        .map(|i| (options.input_watermarks)(i))
        .collect();
    let mut closing = 0;
    let watermarks = plan_windows(&mut root, &input_watermarks, options, &mut closing);
    let input_append_only: Vec<bool> = inputs
        .iter()
        .map(|i| (options.input_append_only)(i))
        .collect();
    let append_only = node_append_only(&root, &input_append_only);
    if options.emit_on_close && closing == 0 {
        return Err(Error::FeatureNotSupported(
            "EMIT ON WINDOW CLOSE needs a GROUP BY on window_start or window_end of TUMBLE or HOP \
             (window_end of SESSION) over an input with a watermark (WATERMARK FOR on its source)"
                .into(),
        ));
    }
    Ok(ViewPlan {
        inputs,
        root,
        schema: Arc::new(plan.schema().as_arrow().clone()),
        watermarks,
        emit_on_close: options.emit_on_close,
        append_only,
    })
}

fn node_append_only(node: &Node, inputs: &[bool]) -> bool {
    let mut a = match &node.kind {
        NodeKind::Input(i) => inputs[*i],
        NodeKind::Binary { left, right, op } => op.append_only(
            node_append_only(left, inputs),
            node_append_only(right, inputs),
        ),
    };
    for op in &node.ops {
        a = op.append_only(a);
    }
    a
}

/// `EXPLAIN CREATE MATERIALIZED VIEW`: the streaming plan, top first, each
/// operator with whether its output is append-only and which of its
/// output columns carry a watermark (by position; `(window)` marks window
/// bounds).
pub fn explain(plan: &ViewPlan, options: &LowerOptions) -> Vec<String> {
    let wm_text = |w: &Watermarks, names: Option<&datafusion::arrow::datatypes::Schema>| {
        let cols: Vec<String> = w
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                c.map(|c| {
                    let name = names
                        .map(|s| s.field(i).name().clone())
                        .unwrap_or_else(|| format!("#{}", i + 1));
                    if c.window {
                        format!("{name} (window)")
                    } else {
                        name
                    }
                })
            })
            .collect();
        if cols.is_empty() {
            "none".to_string()
        } else {
            cols.join(", ")
        }
    };
    let mut lines = vec![format!(
        "materialize: {}{}; watermarks: {}",
        if plan.append_only {
            "append-only"
        } else {
            "inserts, updates and deletes"
        },
        if plan.emit_on_close {
            "; EMIT ON WINDOW CLOSE"
        } else {
            ""
        },
        wm_text(&plan.watermarks, Some(&plan.schema))
    )];
    let inputs: Vec<(Watermarks, bool)> = plan
        .inputs
        .iter()
        .map(|i| {
            (
                (options.input_watermarks)(i),
                (options.input_append_only)(i),
            )
        })
        .collect();
    let (body, _, _) = explain_node(&plan.root, plan, &inputs, &wm_text);
    lines.extend(body.into_iter().map(|l| format!("  {l}")));
    lines
}

type WmText<'a> = dyn Fn(&Watermarks, Option<&datafusion::arrow::datatypes::Schema>) -> String + 'a;

/// Lines of a subtree (top first), its output watermarks and append-only.
fn explain_node(
    node: &Node,
    plan: &ViewPlan,
    inputs: &[(Watermarks, bool)],
    wm_text: &WmText<'_>,
) -> (Vec<String>, Watermarks, bool) {
    let ao = |a: bool| if a { "append-only" } else { "retracts" };
    let (below, mut w, mut a) = match &node.kind {
        NodeKind::Input(i) => {
            let (w, a) = inputs[*i].clone();
            let line = format!(
                "input {}: {}; watermarks: {}",
                plan.inputs[*i],
                ao(a),
                wm_text(&w, None)
            );
            (vec![line], w, a)
        }
        NodeKind::Binary { left, right, op } => {
            let (ll, lw, la) = explain_node(left, plan, inputs, wm_text);
            let (rl, rw, ra) = explain_node(right, plan, inputs, wm_text);
            let w = op.output_watermarks(&lw, &rw);
            let a = op.append_only(la, ra);
            let mut lines = vec![format!(
                "{}: {}; watermarks: {}",
                op.name(),
                ao(a),
                wm_text(&w, None)
            )];
            lines.extend(ll.into_iter().map(|l| format!("  {l}")));
            lines.extend(rl.into_iter().map(|l| format!("  {l}")));
            (lines, w, a)
        }
    };
    let mut ops = Vec::new();
    for op in &node.ops {
        w = op.output_watermarks(&w);
        a = op.append_only(a);
        ops.push(format!(
            "{}: {}; watermarks: {}",
            op.describe(),
            ao(a),
            wm_text(&w, None)
        ));
    }
    ops.reverse();
    ops.extend(below);
    (ops, w, a)
}

/// `Unnest(Projection(…, streamlake_window_starts(ts, slide, size, offset), …))`,
/// the shape of TUMBLE and HOP: the projection with the time in place of
/// the list, then one window-assignment operator.
fn lower_windows(
    state: &SessionState,
    u: &datafusion::logical_expr::Unnest,
    inputs: &mut Vec<String>,
    options: &LowerOptions,
) -> Result<Node> {
    use datafusion::arrow::datatypes::{Field, Schema};
    let LogicalPlan::Projection(p) = u.input.as_ref() else {
        return Err(unsupported("UNNEST"));
    };
    let [(column, _)] = u.list_type_columns.as_slice() else {
        return Err(unsupported("UNNEST"));
    };
    let column = *column;
    if !u.struct_type_columns.is_empty() || u.schema.fields().len() != p.schema.fields().len() {
        return Err(unsupported("UNNEST"));
    }
    let Some(Expr::ScalarFunction(f)) = p.expr.get(column).map(|e| e.clone().unalias()) else {
        return Err(unsupported("UNNEST"));
    };
    if f.func.name() != crate::sql::windows::WINDOW_STARTS {
        return Err(unsupported("UNNEST"));
    }
    let constant = |i: usize| -> Result<i64> {
        match f.args.get(i) {
            Some(Expr::Literal(datafusion::scalar::ScalarValue::Int64(Some(v)), _)) => Ok(*v),
            _ => Err(Error::Internal("window bounds are not constants".into())),
        }
    };
    let (slide, size, offset) = (constant(1)?, constant(2)?, constant(3)?);
    let time = f.args[0].clone();
    let input_schema = p.input.schema();
    let time_type = time.get_type(input_schema)?;
    let mut exprs = Vec::with_capacity(p.expr.len());
    for (i, e) in p.expr.iter().enumerate() {
        exprs.push(if i == column {
            physical(state, &time, input_schema)?
        } else {
            physical(state, e, input_schema)?
        });
    }
    // The projection's schema with the time where the list was.
    let fields: Vec<Field> = p
        .schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, fld)| {
            if i == column {
                // Named as the time column, for the rows late_events keeps.
                let name = match &time {
                    Expr::Column(c) => c.name.clone(),
                    _ => fld.name().clone(),
                };
                Field::new(name, time_type.clone(), true)
            } else {
                fld.as_ref().clone()
            }
        })
        .collect();
    let with_time = Arc::new(Schema::new(fields));
    let out_schema = Arc::new(u.schema.as_arrow().clone());
    let node = lower_node(state, &p.input, inputs, options)?
        .then(ProjectOperator::new(
            exprs,
            Arc::new(input_schema.as_arrow().clone()),
            with_time,
        ))
        .then(WindowAssignOperator::new(
            column,
            slide,
            size,
            offset,
            out_schema,
            options.late.clone(),
        ));
    Ok(node)
}

fn lower_node(
    state: &SessionState,
    plan: &LogicalPlan,
    inputs: &mut Vec<String>,
    options: &LowerOptions,
) -> Result<Node> {
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
            let session = datafusion::datasource::source_as_provider(&scan.source)
                .ok()
                .filter(|p| p.as_any().is::<crate::sql::session::SessionProvider>());
            let mut node = match &session {
                Some(p) => {
                    let sp = p
                        .as_any()
                        .downcast_ref::<crate::sql::session::SessionProvider>()
                        .expect("checked");
                    let input_schema = Arc::new(sp.input.schema().as_arrow().clone());
                    lower_node(state, &sp.input, inputs, options)?.then(
                        SessionWindowOperator::try_new(
                            sp.keys.clone(),
                            sp.time,
                            sp.gap,
                            &input_schema,
                            p.schema(),
                            options.late.clone(),
                            &options.meter.child(),
                        )?,
                    )
                }
                None => {
                    inputs.push(name);
                    Node::leaf(inputs.len() - 1)
                }
            };
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
                node = node.then(FilterOperator::new(physical(
                    state,
                    &predicate,
                    &source_schema,
                )?));
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
                node = node.then(ProjectOperator::new(
                    exprs,
                    scan.source.schema(),
                    Arc::new(scan.projected_schema.as_arrow().clone()),
                ));
            }
            Ok(node)
        }
        LogicalPlan::Filter(f) if top_n_pattern(f).is_some() => {
            let (window, projection, limit) = top_n_pattern(f).expect("checked");
            let mut node = lower_node(state, &window.input, inputs, options)?
                .then(lower_window_top_n(state, window, limit, options)?);
            if let Some(p) = projection {
                node = node.then(project(state, p)?);
            }
            Ok(node.then(FilterOperator::new(physical(
                state,
                &f.predicate,
                f.input.schema(),
            )?)))
        }
        LogicalPlan::Filter(f) => Ok(lower_node(state, &f.input, inputs, options)?.then(
            FilterOperator::new(physical(state, &f.predicate, f.input.schema())?),
        )),
        LogicalPlan::Projection(p) => {
            Ok(lower_node(state, &p.input, inputs, options)?.then(project(state, p)?))
        }
        LogicalPlan::SubqueryAlias(a) => lower_node(state, &a.input, inputs, options),
        LogicalPlan::Aggregate(agg) => Ok(lower_node(state, &agg.input, inputs, options)?
            .then(lower_aggregate(state, agg, options)?)),
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
            let left = lower_node(state, &join.left, inputs, options)?;
            let right = lower_node(state, &join.right, inputs, options)?;
            let (ls, rs) = (join.left.schema(), join.right.schema());
            let mut left_keys = Vec::new();
            let mut right_keys = Vec::new();
            let mut key_types = Vec::new();
            for (l, r) in &join.on {
                left_keys.push(physical(state, l, ls)?);
                right_keys.push(physical(state, r, rs)?);
                key_types.push(l.get_type(ls)?);
            }
            let op = HashJoinOperator::try_new(
                kind,
                join.null_equality == NullEquality::NullEqualsNull,
                left_keys,
                right_keys,
                key_types,
                &Arc::new(ls.as_arrow().clone()),
                &Arc::new(rs.as_arrow().clone()),
                Arc::new(join.schema.as_arrow().clone()),
            )?;
            let mut node = Node::binary(left, right, Box::new(op));
            if let Some(filter) = &join.filter {
                node = node.then(FilterOperator::new(physical(state, filter, &join.schema)?));
            }
            Ok(node)
        }
        LogicalPlan::Union(u) => {
            // N inputs become a left-deep chain of two-input unions.
            let schema = Arc::new(u.schema.as_arrow().clone());
            let mut children = u.inputs.iter();
            let first = children
                .next()
                .ok_or_else(|| Error::Internal("UNION without inputs".into()))?;
            let mut node = lower_node(state, first, inputs, options)?;
            for child in children {
                let right = lower_node(state, child, inputs, options)?;
                node = Node::binary(node, right, Box::new(UnionOperator::new(schema.clone())));
            }
            Ok(node)
        }
        LogicalPlan::Window(_) => Err(unsupported(
            "a window function (other than ROW_NUMBER(), RANK() or DENSE_RANK() filtered to its first N)",
        )),
        // A view is a set of rows: an ORDER BY without LIMIT changes nothing
        // (PostgreSQL accepts it in a view definition too).
        LogicalPlan::Sort(sort) if sort.fetch.is_none() => {
            lower_node(state, &sort.input, inputs, options)
        }
        // ORDER BY … LIMIT n [OFFSET k]: a top-N over one partition.
        LogicalPlan::Sort(sort) => {
            let limit = sort.fetch.expect("fetch checked above");
            lower_order_limit(state, sort, 0, limit, inputs, options)
        }
        LogicalPlan::Limit(limit) => {
            use datafusion::logical_expr::{FetchType, SkipType};
            let (Ok(SkipType::Literal(skip)), Ok(FetchType::Literal(fetch))) =
                (limit.get_skip_type(), limit.get_fetch_type())
            else {
                return Err(unsupported("a LIMIT or OFFSET that is not a constant"));
            };
            let LogicalPlan::Sort(sort) = limit.input.as_ref() else {
                return Err(unsupported("LIMIT without ORDER BY"));
            };
            let Some(fetch) = fetch else {
                return Err(unsupported("OFFSET without LIMIT"));
            };
            lower_order_limit(state, sort, skip, skip + fetch, inputs, options)
        }
        LogicalPlan::Distinct(_) => Err(unsupported("DISTINCT ON")),
        LogicalPlan::Unnest(u) => lower_windows(state, u, inputs, options),
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
    if !matches!(wf.fun.name(), "row_number" | "rank" | "dense_rank") {
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

/// `ORDER BY … LIMIT`: the rows numbered `skip + 1 ..= limit` in the
/// sort order, without a number column.
fn lower_order_limit(
    state: &SessionState,
    sort: &datafusion::logical_expr::Sort,
    skip: usize,
    limit: usize,
    inputs: &mut Vec<String>,
    options: &LowerOptions,
) -> Result<Node> {
    let input_schema = sort.input.schema();
    let (order_by, order_types) = sort_keys(state, &sort.expr, input_schema)?;
    let op = TopNOperator::try_new(
        Vec::new(),
        Vec::new(),
        order_by,
        order_types,
        &Arc::new(input_schema.as_arrow().clone()),
        TopNSpec {
            numbering: Numbering::RowNumber,
            limit: sort.fetch.map_or(limit, |f| f.min(limit)),
            skip,
            with_number: false,
        },
        Arc::new(input_schema.as_arrow().clone()),
        &options.meter.child(),
        // A global ORDER BY … LIMIT is not deduplication: no TTL.
        None,
    )?;
    Ok(lower_node(state, &sort.input, inputs, options)?.then(op))
}

type SortKeys = (
    Vec<Arc<dyn PhysicalExpr>>,
    Vec<(
        datafusion::arrow::datatypes::DataType,
        datafusion::arrow::compute::SortOptions,
    )>,
);

fn sort_keys(
    state: &SessionState,
    exprs: &[datafusion::logical_expr::SortExpr],
    schema: &DFSchema,
) -> Result<SortKeys> {
    let mut order_by = Vec::new();
    let mut order_types = Vec::new();
    for s in exprs {
        order_by.push(physical(state, &s.expr, schema)?);
        order_types.push((
            s.expr.get_type(schema)?,
            datafusion::arrow::compute::SortOptions {
                descending: !s.asc,
                nulls_first: s.nulls_first,
            },
        ));
    }
    Ok((order_by, order_types))
}

fn lower_window_top_n(
    state: &SessionState,
    window: &datafusion::logical_expr::Window,
    limit: usize,
    options: &LowerOptions,
) -> Result<TopNOperator> {
    let Expr::WindowFunction(wf) = window.window_expr[0].clone().unalias() else {
        return Err(Error::Internal("top-N without its window function".into()));
    };
    let numbering = match wf.fun.name() {
        "rank" => Numbering::Rank,
        "dense_rank" => Numbering::DenseRank,
        _ => Numbering::RowNumber,
    };
    let input_schema = window.input.schema();
    let mut partition_by = Vec::new();
    let mut partition_types = Vec::new();
    for e in &wf.params.partition_by {
        partition_by.push(physical(state, e, input_schema)?);
        partition_types.push(e.get_type(input_schema)?);
    }
    let (order_by, order_types) = sort_keys(state, &wf.params.order_by, input_schema)?;
    TopNOperator::try_new(
        partition_by,
        partition_types,
        order_by,
        order_types,
        &Arc::new(input_schema.as_arrow().clone()),
        TopNSpec {
            numbering,
            limit,
            skip: 0,
            with_number: true,
        },
        Arc::new(window.schema.as_arrow().clone()),
        &options.meter.child(),
        options.state_ttl,
    )
}

fn lower_aggregate(
    state: &SessionState,
    agg: &datafusion::logical_expr::Aggregate,
    options: &LowerOptions,
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
        let ordered = matches!(
            name.as_str(),
            "first_value" | "last_value" | "any_value" | "string_agg" | "array_agg"
        );
        if !p.order_by.is_empty() && !ordered {
            return Err(unsupported(format!("{name}(… ORDER BY …)")));
        }
        let mut delimiter = None;
        let kind = match (name.as_str(), p.args.as_slice()) {
            // count(*) FILTER (…) counts the rows its filter keeps: a count
            // of a never-NULL argument.
            ("count", []) | ("count", [Expr::Literal(_, _)]) if p.filter.is_some() => {
                AggKind::Count
            }
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
            // Without ORDER BY any value of the group will do (PostgreSQL
            // leaves it unspecified): the view picks by the whole row.
            ("first_value" | "any_value", [_]) => AggKind::First,
            ("last_value", [_]) => AggKind::Last,
            ("string_agg", [_, d]) => {
                delimiter = Some(match d.clone().unalias() {
                    Expr::Literal(v, _) if !v.is_null() => v.to_string(),
                    Expr::Literal(..) => String::new(),
                    _ => return Err(unsupported("string_agg with a non-constant delimiter")),
                });
                AggKind::StringAgg
            }
            ("array_agg", [_]) => AggKind::ArrayAgg,
            _ => return Err(unsupported(format!("aggregate {name}"))),
        };
        if p.distinct
            && !p.order_by.is_empty()
            && p.order_by.iter().any(|s| Some(&s.expr) != p.args.first())
        {
            return Err(unsupported(format!(
                "{name}(DISTINCT …) ordered by something other than its argument"
            )));
        }
        let (input, input_type) = match (kind, p.args.first()) {
            (AggKind::CountStar, _) => (None, None),
            (AggKind::Count, None) => (
                Some(
                    Arc::new(datafusion::physical_expr::expressions::Literal::new(
                        datafusion::scalar::ScalarValue::Boolean(Some(true)),
                    )) as Arc<dyn PhysicalExpr>,
                ),
                Some(datafusion::arrow::datatypes::DataType::Boolean),
            ),
            (_, None) => (None, None),
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
        // first_value and last_value break ties by the whole input row, so
        // that the aggregates of one DISTINCT ON all pick the same row (and
        // the choice is the same after any history of changes).
        if matches!(kind, AggKind::First | AggKind::Last) {
            for (i, f) in input_schema.fields().iter().enumerate() {
                order_by.push((
                    Arc::new(datafusion::physical_expr::expressions::Column::new(
                        f.name(),
                        i,
                    )) as Arc<dyn PhysicalExpr>,
                    datafusion::arrow::row::SortField::new(f.data_type().clone()),
                ));
            }
        }
        // Without an ORDER BY, string_agg and array_agg list values in
        // value order: PostgreSQL leaves that order unspecified, and a
        // fixed one keeps the view's rows stable.
        if order_by.is_empty()
            && matches!(kind, AggKind::StringAgg | AggKind::ArrayAgg)
            && let (Some(arg), Some(ty)) = (p.args.first(), &input_type)
        {
            order_by.push((
                physical(state, arg, input_schema)?,
                datafusion::arrow::row::SortField::new(ty.clone()),
            ));
        }
        let filter = match &p.filter {
            Some(f) => Some(physical(state, f, input_schema)?),
            None => None,
        };
        specs.push(AggSpec {
            kind,
            input,
            output_type,
            order_by,
            filter,
            distinct: p.distinct,
            delimiter,
            ignore_nulls: match kind {
                AggKind::ArrayAgg => false,
                AggKind::First | AggKind::Last => matches!(
                    p.null_treatment,
                    Some(datafusion::logical_expr::expr::NullTreatment::IgnoreNulls)
                ),
                _ => true,
            },
        });
        input_types.push(input_type);
    }
    HashAggOperator::try_new(
        group_exprs,
        group_types,
        specs,
        input_types,
        Arc::new(agg.schema.as_arrow().clone()),
        &options.meter.child(),
        options.state_ttl,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emit_on_window_close_is_split_and_mended() {
        assert_eq!(
            split_emit_on_close("SELECT 1 FROM t emit  ON window\nclose ;"),
            ("SELECT 1 FROM t", true)
        );
        assert_eq!(split_emit_on_close("SELECT 1"), ("SELECT 1", false));
        assert_eq!(
            mend_emit_on_close(
                "create materialized view if not exists public.\"V\" as select a from t emit on window close"
            )
            .as_deref(),
            Some(
                "create materialized view if not exists public.\"V\" WITH (emit_on_window_close = true) as select a from t"
            )
        );
        assert_eq!(mend_emit_on_close("SELECT 'emit on window close'"), None);
        assert_eq!(
            mend_emit_on_close("CREATE MATERIALIZED VIEW v AS SELECT 1"),
            None
        );
    }
}
