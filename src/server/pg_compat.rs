//! Small pieces of PostgreSQL's catalog surface that datafusion-pg-catalog
//! does not provide, so psql's backslash commands run unchanged.

use std::any::Any;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::scalar::ScalarValue;

/// A function whose answer is fixed: comments (`col_description`,
/// `obj_description`) are NULL text, as in a database where none were set;
/// visibility checks are true (one schema on the search path); relation
/// sizes are 0 (data lives in Iceberg files, not relation forks).
#[derive(Debug, PartialEq, Eq, Hash)]
struct Constant {
    name: &'static str,
    value: ScalarValue,
    signature: Signature,
}

impl ScalarUDFImpl for Constant {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(self.value.data_type())
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Ok(ColumnarValue::Scalar(self.value.clone()))
    }
}

/// `version()` in PostgreSQL's shape: drivers (SQLAlchemy among them)
/// parse the leading `PostgreSQL X.Y`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Version {
    signature: Signature,
}

impl ScalarUDFImpl for Version {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn name(&self) -> &str {
        "version"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(format!(
            "PostgreSQL 16.6 (streamlake {}) on {}-linux, compatible",
            env!("CARGO_PKG_VERSION"),
            std::env::consts::ARCH
        )))))
    }
}

/// `current_setting(name)` inside a larger query: the server's values
/// (`DEFAULT_SETTINGS`). A bare `SELECT current_setting('x')` is answered
/// with the session's value by [`super::settings`]; an unknown name is an
/// error, as in PostgreSQL.
#[derive(Debug, PartialEq, Eq, Hash)]
struct CurrentSetting {
    signature: Signature,
}

impl ScalarUDFImpl for CurrentSetting {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn name(&self) -> &str {
        "current_setting"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let lookup = |name: &str| -> Result<String> {
            datafusion_pg_catalog::pg_catalog::pg_settings::DEFAULT_SETTINGS
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.to_string())
                .ok_or_else(|| {
                    datafusion::error::DataFusionError::Plan(format!(
                        "unrecognized configuration parameter \"{name}\""
                    ))
                })
        };
        match &args.args[0] {
            ColumnarValue::Scalar(v) => Ok(ColumnarValue::Scalar(ScalarValue::Utf8(
                match v.cast_to(&DataType::Utf8)? {
                    ScalarValue::Utf8(Some(name)) => Some(lookup(&name)?),
                    _ => None,
                },
            ))),
            ColumnarValue::Array(a) => {
                let names = datafusion::arrow::compute::cast(a, &DataType::Utf8)?;
                let names = datafusion::arrow::array::AsArray::as_string::<i32>(&names);
                let values = names
                    .iter()
                    .map(|n| n.map(lookup).transpose())
                    .collect::<Result<datafusion::arrow::array::StringArray>>()?;
                Ok(ColumnarValue::Array(std::sync::Arc::new(values)))
            }
        }
    }
}

/// `pg_size_pretty(bigint)` exactly as PostgreSQL 15 rounds: bytes below
/// 10 kB, then kB, MB, GB, TB, PB, each rounded half away from zero.
pub fn size_pretty(size: i64) -> String {
    const LIMIT: i64 = 10 * 1024;
    const LIMIT2: i64 = LIMIT * 2 - 1;
    let half_rounded = |x: i64| (x + if x < 0 { -1 } else { 1 }) / 2;
    if size.abs() < LIMIT {
        return format!("{size} bytes");
    }
    // Units of half a kB keep one bit for rounding.
    let mut size = size >> 9;
    for unit in ["kB", "MB", "GB", "TB"] {
        if size.abs() < LIMIT2 {
            return format!("{} {unit}", half_rounded(size));
        }
        size >>= 10;
    }
    format!("{} PB", half_rounded(size))
}

fn size_pretty_udf() -> ScalarUDF {
    use datafusion::logical_expr::create_udf;
    create_udf(
        "pg_size_pretty",
        vec![DataType::Int64],
        DataType::Utf8,
        Volatility::Immutable,
        std::sync::Arc::new(|args: &[ColumnarValue]| {
            let sizes = ColumnarValue::values_to_arrays(args)?;
            let sizes = datafusion::arrow::array::AsArray::as_primitive::<
                datafusion::arrow::datatypes::Int64Type,
            >(&sizes[0]);
            let out: datafusion::arrow::array::StringArray =
                sizes.iter().map(|s| s.map(size_pretty)).collect();
            Ok(ColumnarValue::Array(std::sync::Arc::new(out)))
        }),
    )
}

/// The extra functions to register on every session context.
pub fn functions() -> Vec<ScalarUDF> {
    let version = ScalarUDF::new_from_impl(Version {
        signature: Signature::exact(vec![], Volatility::Stable),
    });
    let visible = [
        "pg_function_is_visible",
        "pg_type_is_visible",
        "pg_operator_is_visible",
        "pg_opclass_is_visible",
        "pg_collation_is_visible",
    ]
    .into_iter()
    .map(|name| {
        ScalarUDF::new_from_impl(Constant {
            name,
            value: ScalarValue::Boolean(Some(true)),
            signature: Signature::any(1, Volatility::Stable),
        })
    });
    let current_setting = ScalarUDF::new_from_impl(CurrentSetting {
        signature: Signature::any(1, Volatility::Stable),
    });
    let sizes = [
        "pg_total_relation_size",
        "pg_relation_size",
        "pg_table_size",
        "pg_indexes_size",
    ]
    .into_iter()
    .map(|name| {
        ScalarUDF::new_from_impl(Constant {
            name,
            value: ScalarValue::Int64(Some(0)),
            signature: Signature::variadic_any(Volatility::Stable),
        })
    });
    [version, current_setting, size_pretty_udf()]
        .into_iter()
        .chain(visible)
        .chain(sizes)
        .chain(
            [
                ("col_description", 2),
                ("obj_description", 2),
                ("shobj_description", 2),
                // No user-defined functions or extension types exist here.
                ("pg_get_function_result", 1),
                ("pg_get_function_arguments", 1),
                ("pg_get_function_identity_arguments", 1),
                ("pg_get_serial_sequence", 2),
                // Only reached for identity columns, which streamlake has none of;
                // 0 marks a variadic function.
                ("json_build_object", 0),
            ]
            .into_iter()
            .map(|(name, arity)| {
                ScalarUDF::new_from_impl(Constant {
                    name,
                    value: ScalarValue::Utf8(None),
                    signature: if arity == 0 {
                        Signature::variadic_any(Volatility::Stable)
                    } else {
                        Signature::any(arity, Volatility::Stable)
                    },
                })
            }),
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::size_pretty;

    #[test]
    fn sizes_round_as_postgres_does() {
        assert_eq!(size_pretty(0), "0 bytes");
        assert_eq!(size_pretty(10_239), "10239 bytes");
        assert_eq!(size_pretty(10_240), "10 kB");
        assert_eq!(size_pretty(123_456), "121 kB");
        assert_eq!(size_pretty(20_970_496), "20 MB");
        assert_eq!(size_pretty(-123_456), "-121 kB");
    }
}
