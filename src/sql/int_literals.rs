//! Integer literals typed as PostgreSQL types them in arithmetic: `2` is an
//! integer (int4) when it fits.
//!
//! DataFusion types every integer literal as a bigint, so `qty * 2` over an
//! integer column became bigint arithmetic: a different result type, and no
//! "integer out of range" where PostgreSQL raises one. This analyzer rule
//! runs before type coercion and narrows a bigint literal that fits 32 bits
//! where it meets an integer (or smallint) operand of `+ - * / %`, so the
//! operation stays integer as in PostgreSQL. Elsewhere (function arguments,
//! comparisons, bare select-list constants) literals keep DataFusion's type:
//! narrowing there would change no result but could leave a node's schema
//! behind the coercion that follows.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::Result;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{BinaryExpr, Expr, ExprSchemable, LogicalPlan, Operator};
use datafusion::optimizer::AnalyzerRule;
use datafusion::scalar::ScalarValue;

#[derive(Debug, Default)]
pub struct IntegerLiterals;

fn narrow(e: &Expr) -> Option<Expr> {
    match e {
        Expr::Literal(ScalarValue::Int64(Some(v)), meta) if i32::try_from(*v).is_ok() => Some(
            Expr::Literal(ScalarValue::Int32(Some(*v as i32)), meta.clone()),
        ),
        _ => None,
    }
}

impl AnalyzerRule for IntegerLiterals {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            if matches!(node, LogicalPlan::TableScan(_)) {
                return Ok(Transformed::no(node));
            }
            let schema = merge_schema(&node.inputs());
            let preserver = NamePreserver::new(&node);
            let t = node.map_expressions(|e| {
                let saved = preserver.save(&e);
                let t = e.transform_up(|e| {
                    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = &e else {
                        return Ok(Transformed::no(e));
                    };
                    if !matches!(
                        op,
                        Operator::Plus
                            | Operator::Minus
                            | Operator::Multiply
                            | Operator::Divide
                            | Operator::Modulo
                    ) {
                        return Ok(Transformed::no(e));
                    }
                    let small = |x: &Expr| {
                        matches!(
                            x.get_type(&schema),
                            Ok(DataType::Int32 | DataType::Int16 | DataType::Int8)
                        )
                    };
                    let (l, r) = match (narrow(left), narrow(right)) {
                        (None, Some(r)) if small(left) => (left.as_ref().clone(), r),
                        (Some(l), None) if small(right) => (l, right.as_ref().clone()),
                        _ => return Ok(Transformed::no(e)),
                    };
                    Ok(Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(
                        Box::new(l),
                        *op,
                        Box::new(r),
                    ))))
                })?;
                Ok(t.update_data(|e| saved.restore(e)))
            })?;
            if t.transformed {
                t.map_data(|p| p.recompute_schema())
            } else {
                Ok(t)
            }
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "integer_literals"
    }
}
