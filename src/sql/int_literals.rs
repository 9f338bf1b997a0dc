//! Integer literals typed as PostgreSQL types them: `2` is an integer
//! (int4) when it fits, a bigint only when it does not.
//!
//! DataFusion types every integer literal as a bigint, so `qty * 2` over an
//! integer column became bigint arithmetic: a different result type, and no
//! "integer out of range" where PostgreSQL raises one. This analyzer rule
//! runs before type coercion and narrows each bigint literal that fits 32
//! bits; coercion then widens it wherever the other side is a bigint,
//! exactly as PostgreSQL's operator resolution does.

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::Result;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::optimizer::AnalyzerRule;
use datafusion::scalar::ScalarValue;

#[derive(Debug, Default)]
pub struct IntegerLiterals;

impl AnalyzerRule for IntegerLiterals {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            // LIMIT/OFFSET take bigints; scans hold pushed-down filters over
            // the table's own types.
            if matches!(
                node,
                LogicalPlan::Limit(_) | LogicalPlan::TableScan(_) | LogicalPlan::Values(_)
            ) {
                return Ok(Transformed::no(node));
            }
            let preserver = NamePreserver::new(&node);
            let t = node.map_expressions(|e| {
                let saved = preserver.save(&e);
                let t = e.transform_up(|e| match e {
                    Expr::Literal(ScalarValue::Int64(Some(v)), meta)
                        if i32::try_from(v).is_ok() =>
                    {
                        Ok(Transformed::yes(Expr::Literal(
                            ScalarValue::Int32(Some(v as i32)),
                            meta,
                        )))
                    }
                    other => Ok(Transformed::no(other)),
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
