//! Shared plumbing of streamlake's scalar functions: all-scalar arguments
//! are computed once and answered as a scalar, anything else row by row.

use datafusion::arrow::array::ArrayRef;
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs};

/// Whether every argument is a scalar, and how many rows to compute (one
/// if so).
pub fn rows(args: &ScalarFunctionArgs) -> (bool, usize) {
    let scalar = args
        .args
        .iter()
        .all(|a| matches!(a, ColumnarValue::Scalar(_)));
    (scalar, if scalar { 1 } else { args.number_rows })
}

/// The function's result: a scalar when every argument was one.
pub fn output(out: ArrayRef, scalar: bool) -> Result<ColumnarValue> {
    if scalar {
        return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?));
    }
    Ok(ColumnarValue::Array(out))
}
