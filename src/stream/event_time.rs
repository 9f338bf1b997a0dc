//! Event time inside a view's pipeline: timestamps as microseconds, and
//! how a column's watermark carries through an expression.
//!
//! A projection keeps a watermark when its output is a non-decreasing
//! function of one watermarked input column: the column itself, a cast
//! between time types, the column plus or minus a constant, `date_bin`
//! and `date_trunc` of it. The output's watermark is the expression
//! evaluated at the input's watermark, which is right for any
//! non-decreasing function (a later row's input is `>=` the watermark, so
//! its output is `>=` the output at the watermark). Anything else drops
//! the watermark: the operator above then never closes state on it.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, Int64Array, RecordBatch, new_null_array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Field, Schema, SchemaRef, TimeUnit, TimestampMicrosecondType,
};
use datafusion::logical_expr::Operator as BinOp;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{BinaryExpr, CastExpr, Column, Literal, TryCastExpr};
use datafusion::scalar::ScalarValue;

use crate::error::Result;
use crate::stream::message::{ColumnWatermark, watermark_of};

/// A time value (any timestamp unit or time zone — stored as UTC — or a
/// date) as microseconds since the Unix epoch.
pub fn scalar_micros(v: &ScalarValue) -> Option<i64> {
    match v {
        ScalarValue::TimestampSecond(Some(x), _) => x.checked_mul(1_000_000),
        ScalarValue::TimestampMillisecond(Some(x), _) => x.checked_mul(1_000),
        ScalarValue::TimestampMicrosecond(Some(x), _) => Some(*x),
        ScalarValue::TimestampNanosecond(Some(x), _) => Some(x.div_euclid(1_000)),
        ScalarValue::Date32(Some(d)) => (*d as i64).checked_mul(86_400_000_000),
        ScalarValue::Date64(Some(ms)) => ms.checked_mul(1_000),
        _ => None,
    }
}

/// `micros` as a value of type `t` (a timestamp of any unit and zone, or
/// a date), rounding down.
pub fn micros_scalar(micros: i64, t: &DataType) -> Option<ScalarValue> {
    Some(match t {
        DataType::Timestamp(TimeUnit::Second, tz) => {
            ScalarValue::TimestampSecond(Some(micros.div_euclid(1_000_000)), tz.clone())
        }
        DataType::Timestamp(TimeUnit::Millisecond, tz) => {
            ScalarValue::TimestampMillisecond(Some(micros.div_euclid(1_000)), tz.clone())
        }
        DataType::Timestamp(TimeUnit::Microsecond, tz) => {
            ScalarValue::TimestampMicrosecond(Some(micros), tz.clone())
        }
        DataType::Timestamp(TimeUnit::Nanosecond, tz) => {
            ScalarValue::TimestampNanosecond(Some(micros.checked_mul(1_000)?), tz.clone())
        }
        DataType::Date32 => {
            ScalarValue::Date32(Some(i32::try_from(micros.div_euclid(86_400_000_000)).ok()?))
        }
        DataType::Date64 => ScalarValue::Date64(Some(micros.div_euclid(1_000))),
        _ => return None,
    })
}

/// A time column as microseconds (nulls kept), without a per-row branch:
/// one cast kernel.
pub fn micros_array(a: &ArrayRef) -> Result<Int64Array> {
    let tz = match a.data_type() {
        DataType::Timestamp(_, tz) => tz.clone(),
        _ => None,
    };
    let us = cast(a, &DataType::Timestamp(TimeUnit::Microsecond, tz))?;
    Ok(us
        .as_primitive::<TimestampMicrosecondType>()
        .reinterpret_cast::<datafusion::arrow::datatypes::Int64Type>())
}

/// Which input column `expr` is a non-decreasing function of, and whether
/// it keeps a window bound a window bound (a constant shift does; binning
/// does not).
fn monotone_source(expr: &Arc<dyn PhysicalExpr>) -> Option<(usize, bool)> {
    let any = expr.as_any();
    if let Some(c) = any.downcast_ref::<Column>() {
        return Some((c.index(), true));
    }
    if let Some(c) = any.downcast_ref::<CastExpr>() {
        return is_time(c.cast_type())
            .then(|| monotone_source(c.expr()))
            .flatten();
    }
    if let Some(c) = any.downcast_ref::<TryCastExpr>() {
        return is_time(c.cast_type())
            .then(|| monotone_source(c.expr()))
            .flatten();
    }
    let is_lit = |e: &Arc<dyn PhysicalExpr>| e.as_any().downcast_ref::<Literal>().is_some();
    if let Some(b) = any.downcast_ref::<BinaryExpr>() {
        return match b.op() {
            BinOp::Plus if is_lit(b.right()) => monotone_source(b.left()),
            BinOp::Plus if is_lit(b.left()) => monotone_source(b.right()),
            BinOp::Minus if is_lit(b.right()) => monotone_source(b.left()),
            _ => None,
        };
    }
    if let Some(f) = any.downcast_ref::<datafusion::physical_expr::ScalarFunctionExpr>() {
        let args = f.args();
        return match (f.name(), args) {
            ("date_bin", [size, t]) if is_lit(size) => monotone_source(t).map(|(c, _)| (c, false)),
            ("date_bin", [size, t, origin]) if is_lit(size) && is_lit(origin) => {
                monotone_source(t).map(|(c, _)| (c, false))
            }
            ("date_trunc" | "datetrunc", [unit, t]) if is_lit(unit) => {
                monotone_source(t).map(|(c, _)| (c, false))
            }
            _ => None,
        };
    }
    None
}

fn is_time(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Timestamp(..) | DataType::Date32 | DataType::Date64
    )
}

/// The watermark of `expr`'s value, given the watermarks of its input
/// columns (`input_schema`), if `expr` is a non-decreasing function of one
/// of them.
pub fn derive(
    expr: &Arc<dyn PhysicalExpr>,
    input_schema: &SchemaRef,
    input: &[Option<ColumnWatermark>],
) -> Option<ColumnWatermark> {
    let (col, keeps_window) = monotone_source(expr)?;
    let w = watermark_of(input, col)?;
    if expr.as_any().downcast_ref::<Column>().is_some() {
        return Some(w);
    }
    // Evaluate at the watermark: one row, every other column NULL (the
    // expression reads only `col`).
    let fields: Vec<Field> = input_schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    let columns: Vec<ArrayRef> = input_schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            if i == col {
                micros_scalar(w.micros, f.data_type())
                    .and_then(|v| v.to_array_of_size(1).ok())
                    .unwrap_or_else(|| new_null_array(f.data_type(), 1))
            } else {
                new_null_array(f.data_type(), 1)
            }
        })
        .collect();
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).ok()?;
    let value = expr.evaluate(&batch).ok()?.into_array(1).ok()?;
    let micros = scalar_micros(&ScalarValue::try_from_array(&value, 0).ok()?)?;
    Some(ColumnWatermark {
        micros,
        window: w.window && keeps_window,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::physical_expr::expressions::{binary, lit};

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, false),
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Microsecond, None),
                false,
            ),
        ]))
    }

    #[test]
    fn a_shift_keeps_the_window_flag_and_moves_the_watermark() {
        let s = schema();
        let ts: Arc<dyn PhysicalExpr> = Arc::new(Column::new("ts", 1));
        let plus = binary(
            ts.clone(),
            BinOp::Plus,
            lit(ScalarValue::new_interval_mdn(0, 0, 60_000_000_000)),
            &s,
        )
        .unwrap();
        let input = vec![
            None,
            Some(ColumnWatermark {
                micros: 1_000_000,
                window: true,
            }),
        ];
        assert_eq!(
            derive(&plus, &s, &input),
            Some(ColumnWatermark {
                micros: 61_000_000,
                window: true
            })
        );
        assert_eq!(derive(&ts, &s, &input), input[1]);
        let a: Arc<dyn PhysicalExpr> = Arc::new(Column::new("a", 0));
        assert_eq!(derive(&a, &s, &input), None);
        // a * ts is not monotone in ts: no watermark.
        let neg = binary(lit(ScalarValue::Int64(Some(0))), BinOp::Minus, a, &s).unwrap();
        assert_eq!(derive(&neg, &s, &input), None);
    }

    #[test]
    fn micros_round_trip_through_units() {
        for t in [
            DataType::Timestamp(TimeUnit::Nanosecond, None),
            DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
            DataType::Timestamp(TimeUnit::Millisecond, None),
        ] {
            let v = micros_scalar(1_234_000, &t).unwrap();
            assert_eq!(scalar_micros(&v), Some(1_234_000));
        }
        assert_eq!(
            scalar_micros(
                &micros_scalar(-1, &DataType::Timestamp(TimeUnit::Millisecond, None)).unwrap()
            ),
            Some(-1000)
        );
    }
}
