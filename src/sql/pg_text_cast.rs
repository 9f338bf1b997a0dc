//! `ts::text` and `n::text` as PostgreSQL prints them.
//!
//! DataFusion casts a timestamp to text in ISO 8601 (`2024-01-01T10:00:00Z`)
//! and a decimal with all of its scale (`10.5000000000`). This analyzer rule
//! rewrites every cast of a timestamp or Decimal128 to a string type into
//! `pg_text_out(x)`, which prints what the wire protocol prints for the same
//! value (arrow-pg's `pg_text`, shared with query results and COPY TO):
//! `2024-01-01 10:00:00+00`, `10.5`. timestamptz is printed in the
//! statement's `execution.time_zone`, which datafusion-postgres sets to the
//! session's TimeZone (UTC without one).

use std::any::Any;
use std::sync::Arc;

use datafusion::arrow::array::timezone::Tz;
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

// Stable, not immutable: the text of a timestamptz depends on the session's
// TimeZone.
impl PgTextOut {
    pub fn udf() -> Arc<ScalarUDF> {
        Arc::new(ScalarUDF::new_from_impl(PgTextOut {
            signature: Signature::any(1, Volatility::Stable),
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
        let (scalar, rows) = super::columnar::rows(&args);
        let array = args.args[0].to_array(rows)?;
        // The session's TimeZone, which datafusion-postgres puts in the
        // statement's config; UTC without one.
        let zone = args
            .config_options
            .execution
            .time_zone
            .as_deref()
            .and_then(|z| z.parse::<Tz>().ok());
        let out: ArrayRef = Arc::new(text_of(&array, zone.as_ref())?);
        super::columnar::output(out, scalar)
    }
}

/// PostgreSQL's text of a timestamp (`utc`); a timestamptz (`with_zone`)
/// is shown in `zone`, or UTC. Shared with COPY TO.
pub fn timestamp_text(utc: &chrono::NaiveDateTime, with_zone: bool, zone: Option<&Tz>) -> String {
    use chrono::{Offset, TimeZone};
    let mut s = String::with_capacity(32);
    match (with_zone, zone) {
        (false, _) => write_timestamp(&mut s, utc, None),
        (true, None) => write_timestamp(&mut s, utc, Some(0)),
        (true, Some(zone)) => {
            let secs = zone.offset_from_utc_datetime(utc).fix().local_minus_utc();
            let local = *utc + chrono::Duration::seconds(secs as i64);
            write_timestamp(&mut s, &local, Some(secs));
        }
    }
    s
}

fn text_of(array: &ArrayRef, zone: Option<&Tz>) -> Result<datafusion::arrow::array::StringArray> {
    let mut out = StringBuilder::with_capacity(array.len(), array.len() * 24);
    for row in 0..array.len() {
        if array.is_null(row) {
            out.append_null();
            continue;
        }
        match array.data_type() {
            DataType::Timestamp(unit, tz) => match timestamp_value(array, row, unit) {
                Some(utc) => out.append_value(timestamp_text(&utc, tz.is_some(), zone)),
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

#[cfg(test)]
mod tests {
    //! The shared printing code lives in the vendored arrow-pg
    //! (`pg_text`), whose own tests the suite does not run; these pin it.
    use bytes::BytesMut;
    use chrono::NaiveDate;
    use datafusion_postgres::arrow_pg::pg_text::{
        PgNumeric, float4_text, float8_text, write_timestamp,
    };

    #[test]
    fn timestamps_print_as_postgres_does() {
        let at = |micro| {
            NaiveDate::from_ymd_opt(2024, 1, 1)
                .unwrap()
                .and_hms_micro_opt(10, 0, 0, micro)
                .unwrap()
        };
        let text = |micro, offset| {
            let mut s = String::new();
            write_timestamp(&mut s, &at(micro), offset);
            s
        };
        assert_eq!(text(0, None), "2024-01-01 10:00:00");
        assert_eq!(text(500_000, Some(0)), "2024-01-01 10:00:00.5+00");
        assert_eq!(
            text(123_456, Some(19_800)),
            "2024-01-01 10:00:00.123456+05:30"
        );
        assert_eq!(text(0, Some(-8 * 3600)), "2024-01-01 10:00:00-08");
    }

    #[test]
    fn numerics_keep_declared_scale_or_normalize() {
        assert_eq!(PgNumeric::new(1050, 10, 2).text(), "10.50");
        assert_eq!(PgNumeric::new(105_000_000_000, 38, 10).text(), "10.5");
        assert_eq!(PgNumeric::new(30_000_000_000, 38, 10).text(), "3");
        assert_eq!(PgNumeric::new(-5, 38, 10).text(), "-0.0000000005");
        assert_eq!(PgNumeric::new(0, 38, 10).text(), "0");
        assert_eq!(PgNumeric::new(-7, 5, 2).text(), "-0.07");
        // Beyond rust_decimal's 28 digits.
        assert_eq!(
            PgNumeric::new(12_345_678_901_234_567_890_123_456_789_000_000_000, 38, 10).text(),
            "1234567890123456789012345678.9"
        );
    }

    #[test]
    fn numeric_binary_is_base_10000_with_display_scale() {
        let bin = |v, p, s| {
            let mut b = BytesMut::new();
            PgNumeric::new(v, p, s).write_binary(&mut b);
            b.to_vec()
        };
        // 12345.678: digits 1, 2345, 6780; weight 1; dscale 3.
        assert_eq!(
            bin(12_345_678, 10, 3),
            [0, 3, 0, 1, 0, 0, 0, 3, 0, 1, 0x09, 0x29, 0x1a, 0x7c]
        );
        // 0.0005: one digit 5 at weight -1, dscale 4.
        assert_eq!(bin(5, 10, 4), [0, 1, 0xff, 0xff, 0, 0, 0, 4, 0, 5]);
        // Bare NUMERIC 3: dscale 0.
        assert_eq!(bin(30_000_000_000, 38, 10), [0, 1, 0, 0, 0, 0, 0, 0, 0, 3]);
    }

    #[test]
    fn floats_print_as_postgres_does() {
        assert_eq!(float8_text(2.0), "2");
        assert_eq!(float8_text(1.5), "1.5");
        assert_eq!(float8_text(1e20), "1e+20");
        assert_eq!(float8_text(123_456_789_012_345.0), "123456789012345");
        assert_eq!(float8_text(0.0001), "0.0001");
        assert_eq!(float8_text(0.00001), "1e-05");
        assert_eq!(float8_text(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(float4_text(1e6), "1e+06");
        assert_eq!(float8_text(f64::NEG_INFINITY), "-Infinity");
    }

    #[test]
    fn client_sql_is_rewritten_for_datafusion() {
        let parser =
            datafusion_postgres::datafusion_pg_catalog::sql::PostgresCompatibilityParser::new();
        let sql = |s: &str| {
            parser
                .parse(s)
                .unwrap()
                .into_iter()
                .map(|st| st.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        };
        assert_eq!(
            sql("SELECT i, i % 10, i FROM s"),
            "SELECT i, i % 10 AS \"?column?\", i AS \"i\u{1f}1\" FROM s"
        );
        let out = sql("SELECT 1 FROM pg_attribute WHERE attrelid = 't'::regclass");
        assert!(
            out.contains("pg_class") && !out.contains("regclass"),
            "{out}"
        );
        let out = sql("SELECT oid::regtype::text AS r FROM pg_type WHERE oid = to_regtype($1)");
        assert!(out.contains("format_type(oid, -1) AS r"), "{out}");
        let out = sql("SELECT 1 FROM t WHERE a LIKE 'x/_%' ESCAPE '/'");
        assert!(out.ends_with("a LIKE 'x\\_%'"), "{out}");
    }
}
