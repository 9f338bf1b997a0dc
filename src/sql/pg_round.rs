//! `round` as PostgreSQL has it, replacing DataFusion's.
//!
//! - `round(numeric [, digits])` rounds half away from zero and keeps the
//!   argument's type (DataFusion 53 plans one decimal type and returns
//!   another, so `round(x, 0) = 3` fails to compare).
//! - `round(double precision)` rounds half to even (`round(2.5::float8)` is
//!   2, as C's `rint` gives).
//! - `round(double precision, digits)` is not PostgreSQL's, but queries
//!   written for other engines use it: half away from zero, as DataFusion.

use std::any::Any;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Decimal128Builder, Float64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Decimal128Type, Float64Type, Int64Type};
use datafusion::common::{Result, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use crate::stream::exact::check_precision;

pub fn udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(PgRound {
        signature: Signature::user_defined(Volatility::Immutable),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct PgRound {
    signature: Signature,
}

impl ScalarUDFImpl for PgRound {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn name(&self) -> &str {
        "round"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        use DataType::*;
        let value = match (arg_types.first(), arg_types.len()) {
            (Some(Decimal128(p, s)), _) => Decimal128(*p, *s),
            (Some(Decimal32(_, s) | Decimal64(_, s) | Decimal256(_, s)), _) => Decimal128(38, *s),
            (Some(t), 2) if t.is_integer() => Decimal128(20, 0),
            (Some(t), _) if t.is_integer() || t.is_floating() || t.is_null() => Float64,
            _ => return plan_err!("function round({arg_types:?}) does not exist"),
        };
        match arg_types.len() {
            1 => Ok(vec![value]),
            2 if arg_types[1].is_integer() || arg_types[1].is_null() => Ok(vec![value, Int64]),
            _ => plan_err!("function round({arg_types:?}) does not exist"),
        }
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(match &arg_types[0] {
            DataType::Decimal128(_, s) => DataType::Decimal128(38, *s),
            _ => DataType::Float64,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (scalar, rows) = super::columnar::rows(&args);
        let values = args.args[0].to_array(rows)?;
        let digits: Option<ArrayRef> = match args.args.get(1) {
            Some(d) => Some(cast(&d.to_array(rows)?, &DataType::Int64)?),
            None => None,
        };
        let digit = |i: usize| -> Option<i64> {
            match &digits {
                None => Some(0),
                Some(d) if d.is_null(i) => None,
                Some(d) => Some(d.as_primitive::<Int64Type>().value(i)),
            }
        };
        let out: ArrayRef = match values.data_type() {
            DataType::Decimal128(_, s) => {
                let s = *s as i64;
                let v = values.as_primitive::<Decimal128Type>();
                let mut b = Decimal128Builder::with_capacity(rows);
                for i in 0..rows {
                    match (v.is_null(i), digit(i)) {
                        (false, Some(d)) => b.append_value(
                            round_decimal(v.value(i), s, d).map_err(|e| e.into_datafusion())?,
                        ),
                        _ => b.append_null(),
                    }
                }
                Arc::new(b.finish().with_precision_and_scale(38, s as i8)?)
            }
            _ => {
                let v = values.as_primitive::<Float64Type>();
                let one_arg = digits.is_none();
                let out: Float64Array = (0..rows)
                    .map(|i| match (v.is_null(i), digit(i)) {
                        (false, Some(_)) if one_arg => Some(v.value(i).round_ties_even()),
                        (false, Some(d)) => {
                            let f = 10f64.powi(d as i32);
                            Some((v.value(i) * f).round() / f)
                        }
                        _ => None,
                    })
                    .collect();
                Arc::new(out)
            }
        };
        super::columnar::output(out, scalar)
    }
}

/// Rounds `unscaled · 10^-scale` to `digits` fractional digits, half away
/// from zero, keeping the scale.
fn round_decimal(unscaled: i128, scale: i64, digits: i64) -> crate::Result<i128> {
    let drop = scale - digits;
    if drop <= 0 {
        return Ok(unscaled);
    }
    if drop > 38 {
        return Ok(0);
    }
    let f = 10i128.pow(drop as u32);
    let q = unscaled / f;
    let r = unscaled % f;
    let q = if r.abs() * 2 >= f {
        q + unscaled.signum()
    } else {
        q
    };
    check_precision(
        q.checked_mul(f)
            .ok_or_else(crate::stream::exact::overflow)?,
    )
}

#[cfg(test)]
mod tests {
    use super::round_decimal;

    #[test]
    fn decimals_round_half_away_from_zero() {
        assert_eq!(round_decimal(25, 1, 0).unwrap(), 30);
        assert_eq!(round_decimal(-25, 1, 0).unwrap(), -30);
        assert_eq!(round_decimal(-24, 1, 0).unwrap(), -20);
        assert_eq!(round_decimal(12345, 3, 2).unwrap(), 12350);
        assert_eq!(round_decimal(12345, 3, 5).unwrap(), 12345);
        assert_eq!(round_decimal(555, 0, -1).unwrap(), 560);
    }
}
