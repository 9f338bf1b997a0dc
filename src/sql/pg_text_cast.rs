//! `ts::text` and `n::text` as PostgreSQL prints them.
//!
//! DataFusion casts a timestamp to text in ISO 8601 (`2024-01-01T10:00:00Z`)
//! and a decimal with all of its scale (`10.5000000000`). This analyzer rule
//! rewrites every cast of a timestamp or Decimal128 to a string type into
//! `pg_text_out(x)`, which prints what the wire protocol prints for the same
//! value (arrow-pg's `pg_text`, shared with query results and COPY TO):
//! `2024-01-01 10:00:00+00`, `10.5`. timestamptz is printed in UTC here, not
//! in the session's TimeZone (a function does not see the session).

use std::any::Any;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Decimal128Type};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::Result;
use datafusion::logical_expr::expr::{Cast, ScalarFunction, TryCast};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExprSchemable, LogicalPlan, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;
use datafusion_postgres::arrow_pg::encoder::timestamp_value;
use datafusion_postgres::arrow_pg::pg_text::{PgNumeric, write_timestamp};

/// The function the casts become.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PgTextOut {
    signature: Signature,
}

impl PgTextOut {
    pub fn udf() -> Arc<ScalarUDF> {
        Arc::new(ScalarUDF::new_from_impl(PgTextOut {
            signature: Signature::any(1, Volatility::Immutable),
        }))
    }
}

fn needs_pg_text(t: &DataType) -> bool {
    matches!(t, DataType::Timestamp(..) | DataType::Decimal128(..))
}

impl ScalarUDFImpl for PgTextOut {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn name(&self) -> &str {
        "pg_text_out"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = matches!(args.args[0], ColumnarValue::Scalar(_));
        let array = args.args[0].to_array(args.number_rows)?;
        let out: ArrayRef = Arc::new(text_of(&array)?);
        Ok(if scalar {
            ColumnarValue::Scalar(datafusion::scalar::ScalarValue::try_from_array(&out, 0)?)
        } else {
            ColumnarValue::Array(out)
        })
    }
}

fn text_of(array: &ArrayRef) -> Result<datafusion::arrow::array::StringArray> {
    let mut out = StringBuilder::with_capacity(array.len(), array.len() * 24);
    for row in 0..array.len() {
        if array.is_null(row) {
            out.append_null();
            continue;
        }
        match array.data_type() {
            DataType::Timestamp(unit, tz) => match timestamp_value(array, row, unit) {
                Some(v) => {
                    let mut s = String::with_capacity(32);
                    write_timestamp(&mut s, &v, tz.as_ref().map(|_| 0));
                    out.append_value(s);
                }
                None => out.append_null(),
            },
            DataType::Decimal128(p, s) => {
                let v = array.as_primitive::<Decimal128Type>().value(row);
                out.append_value(PgNumeric::new(v, *p, *s).text());
            }
            other => {
                return Err(datafusion::error::DataFusionError::Internal(format!(
                    "pg_text_out of {other}: this is a bug"
                )));
            }
        }
    }
    Ok(out.finish())
}

/// The analyzer rule; see the module docs.
#[derive(Debug)]
pub struct PgTextCast {
    udf: Arc<ScalarUDF>,
}

impl Default for PgTextCast {
    fn default() -> Self {
        PgTextCast {
            udf: PgTextOut::udf(),
        }
    }
}

fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8)
}

impl AnalyzerRule for PgTextCast {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            let schema = merge_schema(&node.inputs());
            let preserver = NamePreserver::new(&node);
            node.map_expressions(|e| {
                let saved = preserver.save(&e);
                let t = e.transform_up(|e| {
                    let (inner, target) = match &e {
                        Expr::Cast(Cast { expr, data_type })
                        | Expr::TryCast(TryCast { expr, data_type })
                            if is_string(data_type) =>
                        {
                            (expr.as_ref(), data_type)
                        }
                        _ => return Ok(Transformed::no(e)),
                    };
                    match inner.get_type(&schema) {
                        Ok(t) if needs_pg_text(&t) => {
                            let call = Expr::ScalarFunction(ScalarFunction::new_udf(
                                self.udf.clone(),
                                vec![inner.clone()],
                            ));
                            let call = if *target == DataType::Utf8 {
                                call
                            } else {
                                Expr::Cast(Cast::new(Box::new(call), target.clone()))
                            };
                            Ok(Transformed::yes(call))
                        }
                        _ => Ok(Transformed::no(e)),
                    }
                })?;
                Ok(t.update_data(|e| saved.restore(e)))
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "pg_text_cast"
    }
}
