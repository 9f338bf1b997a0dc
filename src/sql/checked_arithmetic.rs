//! Integer `+`, `-` and `*` that fail on overflow, as PostgreSQL's do.
//!
//! DataFusion's arithmetic wraps (`9223372036854775807 * 2` is `-2`), and
//! its physical planner offers no switch for the operators it plans. This
//! analyzer rule replaces each integer `a + b`, `a - b`, `a * b` with a
//! function doing the same arithmetic through Arrow's checked kernels,
//! which raises 22003 ("bigint out of range") instead of returning a wrong
//! number, in plain queries and in views alike. Column names are kept.
//!
//! Decimal division is PostgreSQL's numeric division too: DataFusion
//! widens the scale of `numeric / numeric` until an ordinary bigint-sized
//! value no longer fits 38 digits ("Number less than minimum value that can
//! be represented"), where PostgreSQL keeps 16 significant digits. The
//! quotient here is computed as PostgreSQL does (its result scale, rounded
//! half away from zero) and returned at scale 18 (or the operands' larger
//! scale), which holds it whole for quotients up to 10^20.

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

fn is_decimal(t: &DataType) -> bool {
    matches!(t, DataType::Decimal128(..))
}

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
        let div = Arc::new(ScalarUDF::new_from_impl(NumericDiv {
            signature: Signature::user_defined(Volatility::Immutable),
        }));
        plan.transform_up_with_subqueries(|node| {
            if matches!(node, LogicalPlan::TableScan(_)) {
                return Ok(Transformed::no(node));
            }
            let schema = merge_schema(&node.inputs());
            let preserver = NamePreserver::new(&node);
            node.map_expressions(|e| {
                let saved = preserver.save(&e);
                let t = e.transform_up(|e| {
                    // abs(x) of an integer: abs(-9223372036854775808) is out
                    // of range (DataFusion returns the argument).
                    if let Expr::ScalarFunction(f) = &e
                        && f.func.name() == "abs"
                        && let [x] = f.args.as_slice()
                        && let Ok(t) = x.get_type(&schema)
                        && is_integer(&t)
                    {
                        let zero =
                            Expr::Literal(datafusion::scalar::ScalarValue::new_zero(&t)?, None);
                        let negated = sub.call(vec![zero.clone(), x.clone()]);
                        return Ok(Transformed::yes(
                            datafusion::logical_expr::when(x.clone().lt(zero), negated)
                                .otherwise(x.clone())?,
                        ));
                    }
                    // -x is 0 - x: -(-9223372036854775808) is out of range.
                    if let Expr::Negative(inner) = &e
                        && let Ok(t) = inner.get_type(&schema)
                        && is_integer(&t)
                    {
                        let zero = datafusion::scalar::ScalarValue::new_zero(&t)?;
                        return Ok(Transformed::yes(
                            sub.call(vec![Expr::Literal(zero, None), inner.as_ref().clone()]),
                        ));
                    }
                    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = &e else {
                        return Ok(Transformed::no(e));
                    };
                    let (Ok(lt), Ok(rt)) = (left.get_type(&schema), right.get_type(&schema)) else {
                        return Ok(Transformed::no(e));
                    };
                    let udf = match op {
                        Operator::Plus if is_integer(&lt) && lt == rt => &add,
                        Operator::Minus if is_integer(&lt) && lt == rt => &sub,
                        Operator::Multiply if is_integer(&lt) && lt == rt => &mul,
                        Operator::Divide
                            if (is_decimal(&lt) || is_decimal(&rt))
                                && (is_decimal(&lt) || is_integer(&lt))
                                && (is_decimal(&rt) || is_integer(&rt)) =>
                        {
                            let as_decimal = |e: &Expr, t: &DataType| {
                                if is_decimal(t) {
                                    e.clone()
                                } else {
                                    Expr::Cast(datafusion::logical_expr::Cast::new(
                                        Box::new(e.clone()),
                                        DataType::Decimal128(20, 0),
                                    ))
                                }
                            };
                            return Ok(Transformed::yes(
                                div.call(vec![as_decimal(left, &lt), as_decimal(right, &rt)]),
                            ));
                        }
                        _ => return Ok(Transformed::no(e)),
                    };
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
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

/// The wider of two integer types (both sides become it, as coercion of
/// `+` would do); a plan analyzed before its parameters were bound meets
/// its values here.
fn wider_integer(a: &DataType, b: &DataType) -> DataType {
    let rank = |t: &DataType| match t {
        DataType::Int8 => 1,
        DataType::Int16 => 2,
        DataType::Int32 => 3,
        _ => 4,
    };
    if rank(a) >= rank(b) {
        a.clone()
    } else {
        b.clone()
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

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let [a, b] = arg_types else {
            return Err(DataFusionError::Plan("two arguments expected".into()));
        };
        let t = if is_integer(a) && is_integer(b) {
            wider_integer(a, b)
        } else {
            DataType::Int64
        };
        Ok(vec![t.clone(), t])
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(wider_integer(&arg_types[0], &arg_types[1]))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [l, r] = args.args.as_slice() else {
            return Err(DataFusionError::Internal("two arguments expected".into()));
        };
        let ty = l.data_type();
        let (scalar, rows) = super::columnar::rows(&args);
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
        super::columnar::output(out, scalar)
    }
}

/// `numeric / numeric` with PostgreSQL's digits.
#[derive(Debug, PartialEq, Eq, Hash)]
struct NumericDiv {
    signature: Signature,
}

fn decimal_parts(t: &DataType) -> Result<(u8, i8)> {
    match t {
        DataType::Decimal128(p, s) => Ok((*p, *s)),
        other => Err(DataFusionError::Internal(format!(
            "numeric division of {other}"
        ))),
    }
}

impl ScalarUDFImpl for NumericDiv {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn name(&self) -> &str {
        "numeric_div"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        Ok(arg_types
            .iter()
            .map(|t| match t {
                DataType::Decimal128(..) => t.clone(),
                _ => DataType::Decimal128(20, 0),
            })
            .collect())
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        let (_, s1) = decimal_parts(&arg_types[0])?;
        let (_, s2) = decimal_parts(&arg_types[1])?;
        Ok(DataType::Decimal128(38, s1.max(s2).max(18)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        use crate::stream::exact::{Decimal, UNCONSTRAINED_NUMERIC, natural_scale, pg_div};
        use datafusion::arrow::array::{Array, AsArray, Decimal128Builder};
        use datafusion::arrow::datatypes::Decimal128Type;
        let [l, r] = args.args.as_slice() else {
            return Err(DataFusionError::Internal("two arguments expected".into()));
        };
        let lt = decimal_parts(&l.data_type())?;
        let rt = decimal_parts(&r.data_type())?;
        let DataType::Decimal128(_, out_scale) = args.return_field.data_type().clone() else {
            return Err(DataFusionError::Internal(
                "numeric_div returns a decimal".into(),
            ));
        };
        let (scalar, rows) = super::columnar::rows(&args);
        let (la, ra) = (l.to_array(rows)?, r.to_array(rows)?);
        let (la, ra) = (
            la.as_primitive::<Decimal128Type>(),
            ra.as_primitive::<Decimal128Type>(),
        );
        // A bare NUMERIC shows each value's own digits; a declared scale
        // shows them all.
        let operand = |v: i128, (p, s): (u8, i8)| Decimal {
            unscaled: v,
            scale: s.max(0) as u32,
            dscale: if (p, s) == UNCONSTRAINED_NUMERIC {
                natural_scale(v, s)
            } else {
                s.max(0) as u32
            },
        };
        let mut out = Decimal128Builder::with_capacity(rows);
        for i in 0..rows {
            if la.is_null(i) || ra.is_null(i) {
                out.append_null();
                continue;
            }
            let q = pg_div(
                operand(la.value(i), lt),
                operand(ra.value(i), rt),
                out_scale.max(0) as u32,
            )
            .map_err(|e| e.into_datafusion())?;
            out.append_value(q);
        }
        let out: datafusion::arrow::array::ArrayRef =
            Arc::new(out.finish().with_precision_and_scale(38, out_scale)?);
        super::columnar::output(out, scalar)
    }
}
