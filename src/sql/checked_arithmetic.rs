//! Integer `+`, `-` and `*` that fail on overflow, as PostgreSQL's do.
//!
//! DataFusion's arithmetic wraps (`9223372036854775807 * 2` is `-2`), and
//! its physical planner offers no switch for the operators it plans. This
//! analyzer rule replaces each integer `a + b`, `a - b`, `a * b` with a
//! function doing the same arithmetic through Arrow's checked kernels,
//! which raises 22003 ("bigint out of range") instead of returning a wrong
//! number, in plain queries and in views alike. Column names are kept.

use std::any::Any;
use std::sync::Arc;

use datafusion::arrow::compute::kernels::numeric;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;

#[derive(Debug, Default)]
pub struct CheckedIntegerArithmetic;

fn is_integer(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64
    )
}

impl AnalyzerRule for CheckedIntegerArithmetic {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        let add = Arc::new(ScalarUDF::new_from_impl(Checked::new(Operator::Plus)));
        let sub = Arc::new(ScalarUDF::new_from_impl(Checked::new(Operator::Minus)));
        let mul = Arc::new(ScalarUDF::new_from_impl(Checked::new(Operator::Multiply)));
        plan.transform_up_with_subqueries(|node| {
            if matches!(node, LogicalPlan::TableScan(_)) {
                return Ok(Transformed::no(node));
            }
            let schema = merge_schema(&node.inputs());
            let preserver = NamePreserver::new(&node);
            node.map_expressions(|e| {
                let saved = preserver.save(&e);
                let t = e.transform_up(|e| {
                    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = &e else {
                        return Ok(Transformed::no(e));
                    };
                    let udf = match op {
                        Operator::Plus => &add,
                        Operator::Minus => &sub,
                        Operator::Multiply => &mul,
                        _ => return Ok(Transformed::no(e)),
                    };
                    let (Ok(lt), Ok(rt)) = (left.get_type(&schema), right.get_type(&schema)) else {
                        return Ok(Transformed::no(e));
                    };
                    if !(is_integer(&lt) && lt == rt) {
                        return Ok(Transformed::no(e));
                    }
                    Ok(Transformed::yes(
                        udf.call(vec![left.as_ref().clone(), right.as_ref().clone()]),
                    ))
                })?;
                Ok(t.update_data(|e| saved.restore(e)))
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "checked_integer_arithmetic"
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Checked {
    op: Operator,
    signature: Signature,
}

impl Checked {
    fn new(op: Operator) -> Checked {
        Checked {
            op,
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for Checked {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn name(&self) -> &str {
        match self.op {
            Operator::Plus => "int_add",
            Operator::Minus => "int_sub",
            _ => "int_mul",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(arg_types[0].clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [l, r] = args.args.as_slice() else {
            return Err(DataFusionError::Internal("two arguments expected".into()));
        };
        let ty = l.data_type();
        let scalar = matches!((l, r), (ColumnarValue::Scalar(_), ColumnarValue::Scalar(_)));
        let rows = if scalar { 1 } else { args.number_rows };
        let (la, ra) = (l.to_array(rows)?, r.to_array(rows)?);
        let out = match self.op {
            Operator::Plus => numeric::add(&la, &ra),
            Operator::Minus => numeric::sub(&la, &ra),
            _ => numeric::mul(&la, &ra),
        }
        .map_err(|e| match e {
            datafusion::arrow::error::ArrowError::ArithmeticOverflow(_) => {
                let name = match ty {
                    DataType::Int64 => "bigint",
                    DataType::Int16 | DataType::Int8 => "smallint",
                    _ => "integer",
                };
                crate::error::Error::NumericOverflow(format!("{name} out of range"))
                    .into_datafusion()
            }
            other => DataFusionError::from(other),
        })?;
        if scalar {
            return Ok(ColumnarValue::Scalar(
                datafusion::scalar::ScalarValue::try_from_array(&out, 0)?,
            ));
        }
        Ok(ColumnarValue::Array(out))
    }
}
