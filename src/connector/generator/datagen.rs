//! `connector = 'datagen'`: sequence and random columns, with RisingWave's
//! option names.
//!
//! | option | meaning |
//! |---|---|
//! | `fields.<col>.kind` | `sequence` or `random` (default) |
//! | `fields.<col>.start`, `.end` | sequence bounds, inclusive (default 0 and unbounded); the source ends when a sequence passes its end |
//! | `fields.<col>.min`, `.max` | random numbers (and dates) within these bounds, inclusive (default 0 and the type's maximum; floats 0 and 1) |
//! | `fields.<col>.length` | random text/bytea length (default 10) |
//! | `fields.<col>.seed` | the column's seed (default: its position) |
//! | `fields.<col>.max_past` | random timestamps/dates within this long before the base time (default `1 day`; `10s`, `2h 37min`, `3 days`) |
//! | `datagen.rows.per.second`, `rows.per.second` | pacing (0 = flat out) |
//! | `datagen.split.num` | accepted; one split generates everything |
//! | `datagen.base.time` | streamlake's: the base time of random timestamps, epoch ms (default 2026-01-01T00:00:00Z; RisingWave uses the start time, which would not repeat) |
//!
//! Without a rate, a source bounded by a sequence runs flat out and an
//! unbounded one paces at RisingWave's default of 10 rows/s.
//!
//! Every value is a pure function of (column seed, row position): a
//! stateless hash, so [`seek`](Generator::seek) only moves the position.
//! Sequences are supported for numeric and text columns; booleans, dates,
//! times, timestamps and bytea are random only.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BinaryBuilder, BooleanArray, Date32Array, Decimal128Array, Float32Array,
    Float64Array, Int32Array, Int64Array, RecordBatch, RecordBatchOptions, StringBuilder,
    Time64MicrosecondArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit};

use super::{
    COMMON_OPTIONS, DEFAULT_BASE_TIME_MS, Generator, parse_option, parse_rate, unknown_option,
};
use crate::error::{Error, Result};

const SOURCE_OPTIONS: &[&str] = &[
    "datagen.rows.per.second",
    "rows.per.second",
    "datagen.split.num",
    "datagen.base.time",
];
const FIELD_OPTIONS: &[&str] = &[
    "kind", "start", "end", "min", "max", "length", "seed", "max_past",
];

/// What a column holds (the Arrow types the decoders use).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Type {
    Int32,
    Int64,
    Float32,
    Float64,
    Decimal(u8, i8),
    Boolean,
    Text,
    Binary,
    Date,
    Time,
    Timestamp,
}

/// How a column's values are made.
#[derive(Debug, Clone, PartialEq)]
enum Values {
    /// start + row, for integers and decimals (unscaled) and text.
    IntSequence {
        start: i128,
        end: i128,
    },
    FloatSequence {
        start: f64,
        end: f64,
    },
    /// Uniform in [min, max] (unscaled for decimals; days for dates).
    RandomInt {
        min: i128,
        max: i128,
    },
    RandomFloat {
        min: f64,
        max: f64,
    },
    RandomBool,
    RandomText {
        length: usize,
    },
    RandomBytes {
        length: usize,
    },
    /// Microseconds since midnight.
    RandomTime,
    /// base − uniform [0, max_past] microseconds.
    RandomTimestamp {
        base_us: i64,
        max_past_us: i64,
    },
    /// base date − uniform [0, max_past] days.
    RandomDate {
        base_day: i64,
        max_past_days: i64,
    },
}

#[derive(Debug, Clone)]
struct ColumnGen {
    ty: Type,
    tz: Option<Arc<str>>,
    seed: u64,
    values: Values,
}

pub(super) struct DatagenGenerator {
    schema: SchemaRef,
    columns: Vec<ColumnGen>,
    /// Rows in total (the shortest sequence), or u64::MAX.
    total: u64,
    position: u64,
    rate: Option<f64>,
}

/// A 64-bit mix of (seed, row, draw): splitmix64's finalizer over a
/// combination, so any value is computed directly from its position.
fn hash(seed: u64, row: u64, draw: u64) -> u64 {
    let mut z = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(row.wrapping_mul(0xD1B5_4A32_D192_ED03))
        .wrapping_add(draw.wrapping_mul(0x8CB9_2BA7_2F3D_8DD7));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Uniform in [min, max] (inclusive; the tiny modulo bias is irrelevant
/// for test data).
fn uniform(seed: u64, row: u64, min: i128, max: i128) -> i128 {
    let span = max.abs_diff(min).wrapping_add(1);
    let r = ((hash(seed, row, 0) as u128) << 64) | hash(seed, row, 1) as u128;
    min.wrapping_add((if span == 0 { r } else { r % span }) as i128)
}

fn unit_float(seed: u64, row: u64) -> f64 {
    (hash(seed, row, 0) >> 11) as f64 / (1u64 << 53) as f64
}

const ALPHANUMERIC: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

impl DatagenGenerator {
    pub(super) fn new(
        options: &BTreeMap<String, String>,
        schema: SchemaRef,
    ) -> Result<DatagenGenerator> {
        let mut field_options: BTreeMap<&str, BTreeMap<&str, &str>> = BTreeMap::new();
        let valid = || {
            let mut v: Vec<String> = SOURCE_OPTIONS.iter().map(|s| s.to_string()).collect();
            v.extend(FIELD_OPTIONS.iter().map(|o| format!("fields.<column>.{o}")));
            v
        };
        for (key, value) in options {
            if SOURCE_OPTIONS.contains(&key.as_str()) || COMMON_OPTIONS.contains(&key.as_str()) {
                continue;
            }
            let parsed = key
                .strip_prefix("fields.")
                .and_then(|rest| rest.rsplit_once('.'))
                .filter(|(_, opt)| FIELD_OPTIONS.contains(opt));
            let Some((column, opt)) = parsed else {
                let v = valid();
                let v: Vec<&str> = v.iter().map(String::as_str).collect();
                return Err(unknown_option("datagen", key, &v));
            };
            if schema.field_with_name(column).is_err() {
                return Err(Error::InvalidParameter(format!(
                    "option {key} names column \"{column}\", which is not declared"
                )));
            }
            field_options
                .entry(column)
                .or_default()
                .insert(opt, value.as_str());
        }
        let get = |k: &str| options.get(k).map(String::as_str);
        let base_ms: i64 = match get("datagen.base.time") {
            Some(v) => parse_option("datagen.base.time", v)?,
            None => DEFAULT_BASE_TIME_MS,
        };
        if let Some(v) = get("datagen.split.num") {
            let _: std::num::NonZeroU32 = parse_option("datagen.split.num", v)?;
        }

        let empty = BTreeMap::new();
        let mut columns = Vec::with_capacity(schema.fields().len());
        let mut total = u64::MAX;
        for (i, field) in schema.fields().iter().enumerate() {
            let opts = field_options.get(field.name().as_str()).unwrap_or(&empty);
            let col = column_gen(field.name(), field.data_type(), i, opts, base_ms)?;
            match col.values {
                Values::IntSequence { start, end } => {
                    let n = (end - start + 1).max(0);
                    total = total.min(u64::try_from(n).unwrap_or(u64::MAX));
                }
                Values::FloatSequence { start, end } => {
                    let n = (end - start).floor() + 1.0;
                    total = total.min(if n <= 0.0 {
                        0
                    } else {
                        n.min(u64::MAX as f64) as u64
                    });
                }
                _ => {}
            }
            columns.push(col);
        }
        let rate = match (get("datagen.rows.per.second"), get("rows.per.second")) {
            (Some(r), _) => parse_rate("datagen.rows.per.second", r)?,
            (None, Some(r)) => parse_rate("rows.per.second", r)?,
            (None, None) if total == u64::MAX => Some(10.0),
            (None, None) => None,
        };
        Ok(DatagenGenerator {
            schema,
            columns,
            total,
            position: 0,
            rate,
        })
    }
}

/// Parses one column's options.
fn column_gen(
    name: &str,
    data_type: &DataType,
    index: usize,
    opts: &BTreeMap<&str, &str>,
    base_ms: i64,
) -> Result<ColumnGen> {
    let key = |o: &str| format!("fields.{name}.{o}");
    let (ty, tz) = match data_type {
        DataType::Int32 => (Type::Int32, None),
        DataType::Int64 => (Type::Int64, None),
        DataType::Float32 => (Type::Float32, None),
        DataType::Float64 => (Type::Float64, None),
        DataType::Decimal128(p, s) if *s >= 0 => (Type::Decimal(*p, *s), None),
        DataType::Boolean => (Type::Boolean, None),
        DataType::Utf8 => (Type::Text, None),
        DataType::Binary => (Type::Binary, None),
        DataType::Date32 => (Type::Date, None),
        DataType::Time64(TimeUnit::Microsecond) => (Type::Time, None),
        DataType::Timestamp(TimeUnit::Microsecond, tz) => (Type::Timestamp, tz.clone()),
        other => {
            return Err(Error::FeatureNotSupported(format!(
                "datagen cannot generate column \"{name}\" of type {other}"
            )));
        }
    };
    let seed = match opts.get("seed") {
        Some(v) => parse_option::<u64>(&key("seed"), v)?,
        None => index as u64,
    };
    let sequence = match opts.get("kind").map(|k| k.to_ascii_lowercase()).as_deref() {
        Some("sequence") => true,
        Some("random") | None => false,
        Some(other) => {
            return Err(Error::InvalidParameter(format!(
                "invalid value for option {}: \"{other}\" (expected sequence or random)",
                key("kind")
            )));
        }
    };
    let allowed: &[&str] = match (ty, sequence) {
        (_, true) => &["kind", "start", "end", "seed"],
        (Type::Text | Type::Binary, false) => &["kind", "length", "seed"],
        (Type::Timestamp, false) => &["kind", "max_past", "seed"],
        (Type::Date, false) => &["kind", "max_past", "min", "max", "seed"],
        (Type::Boolean | Type::Time, false) => &["kind", "seed"],
        (_, false) => &["kind", "min", "max", "seed"],
    };
    if let Some(bad) = opts.keys().find(|o| !allowed.contains(o)) {
        return Err(Error::InvalidParameter(format!(
            "option {} does not apply to a {} column \"{name}\" of type {data_type}; valid: {}",
            key(bad),
            if sequence { "sequence" } else { "random" },
            allowed
                .iter()
                .map(|o| key(o))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    // An integer-like bound at the column's scale.
    let int_bound = |o: &str, default: i128| -> Result<i128> {
        let Some(v) = opts.get(o) else {
            return Ok(default);
        };
        let parsed = match ty {
            Type::Decimal(p, s) => crate::connector::decode::parse_decimal(v, p, s),
            Type::Int32 => v.trim().parse::<i32>().ok().map(i128::from),
            _ => v.trim().parse::<i64>().ok().map(i128::from),
        };
        parsed.ok_or_else(|| {
            Error::InvalidParameter(format!(
                "invalid value for option {}: \"{v}\" (not a {data_type})",
                key(o)
            ))
        })
    };
    let float_bound = |o: &str, default: f64| -> Result<f64> {
        match opts.get(o) {
            Some(v) => parse_option(&key(o), v),
            None => Ok(default),
        }
    };
    let type_max: i128 = match ty {
        Type::Int32 => i32::MAX as i128,
        Type::Decimal(p, _) => 10i128.pow(p as u32) - 1,
        _ => i64::MAX as i128,
    };
    let values = match (ty, sequence) {
        (Type::Float32 | Type::Float64, true) => Values::FloatSequence {
            start: float_bound("start", 0.0)?,
            end: float_bound("end", f64::MAX)?,
        },
        (Type::Int32 | Type::Int64 | Type::Decimal(..) | Type::Text, true) => {
            let (start, end) = (int_bound("start", 0)?, int_bound("end", type_max)?);
            Values::IntSequence { start, end }
        }
        (_, true) => {
            return Err(Error::InvalidParameter(format!(
                "column \"{name}\" of type {data_type} cannot be a sequence; use kind random"
            )));
        }
        (Type::Int32 | Type::Int64 | Type::Decimal(..), false) => {
            let (min, max) = (int_bound("min", 0)?, int_bound("max", type_max)?);
            if min > max {
                return Err(Error::InvalidParameter(format!(
                    "{} is greater than {}",
                    key("min"),
                    key("max")
                )));
            }
            Values::RandomInt { min, max }
        }
        (Type::Float32 | Type::Float64, false) => {
            let (min, max) = (float_bound("min", 0.0)?, float_bound("max", 1.0)?);
            if min > max || !min.is_finite() || !max.is_finite() {
                return Err(Error::InvalidParameter(format!(
                    "{} and {} must be finite, min <= max",
                    key("min"),
                    key("max")
                )));
            }
            Values::RandomFloat { min, max }
        }
        (Type::Boolean, false) => Values::RandomBool,
        (Type::Text | Type::Binary, false) => {
            let length = match opts.get("length") {
                Some(v) => parse_option(&key("length"), v)?,
                None => 10,
            };
            if ty == Type::Text {
                Values::RandomText { length }
            } else {
                Values::RandomBytes { length }
            }
        }
        (Type::Time, false) => Values::RandomTime,
        (Type::Timestamp, false) => {
            let max_past_us = match opts.get("max_past") {
                Some(v) => parse_duration_us(v).ok_or_else(|| {
                    Error::InvalidParameter(format!(
                        "invalid value for option {}: \"{v}\" (a duration like '10s', '2h 37min', '3 days')",
                        key("max_past")
                    ))
                })?,
                None => 86_400_000_000,
            };
            Values::RandomTimestamp {
                base_us: base_ms.saturating_mul(1000),
                max_past_us,
            }
        }
        (Type::Date, false) => {
            if opts.contains_key("min") || opts.contains_key("max") {
                let date = |o: &str, default: i64| -> Result<i64> {
                    match opts.get(o) {
                        None => Ok(default),
                        Some(v) => crate::connector::decode::parse_date(v).ok_or_else(|| {
                            Error::InvalidParameter(format!(
                                "invalid value for option {}: \"{v}\" (expected YYYY-MM-DD)",
                                key(o)
                            ))
                        }),
                    }
                };
                let base_day = base_ms.div_euclid(86_400_000);
                let (min, max) = (date("min", base_day - 365)?, date("max", base_day)?);
                if min > max {
                    return Err(Error::InvalidParameter(format!(
                        "{} is after {}",
                        key("min"),
                        key("max")
                    )));
                }
                Values::RandomDate {
                    base_day: max,
                    max_past_days: max - min,
                }
            } else {
                let max_past_days = match opts.get("max_past") {
                    Some(v) => parse_duration_us(v)
                        .map(|us| us / 86_400_000_000)
                        .ok_or_else(|| {
                            Error::InvalidParameter(format!(
                                "invalid value for option {}: \"{v}\"",
                                key("max_past")
                            ))
                        })?,
                    None => 1,
                };
                Values::RandomDate {
                    base_day: base_ms.div_euclid(86_400_000),
                    max_past_days,
                }
            }
        }
    };
    Ok(ColumnGen {
        ty,
        tz,
        seed,
        values,
    })
}

/// A duration such as `10s`, `2h 37min`, `3 days`, `1 day 2 hours`, `500ms`
/// or a plain number of seconds, in microseconds.
fn parse_duration_us(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<i64>() {
        return secs.checked_mul(1_000_000).filter(|v| *v >= 0);
    }
    let b = s.as_bytes();
    let mut i = 0;
    let mut total: i64 = 0;
    let mut any = false;
    while i < b.len() {
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        if i == b.len() {
            break;
        }
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let n: i64 = s[start..i].parse().ok()?;
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        let ustart = i;
        while i < b.len() && b[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit: i64 = match s[ustart..i].to_ascii_lowercase().as_str() {
            "us" | "usec" | "microsecond" | "microseconds" => 1,
            "ms" | "msec" | "millisecond" | "milliseconds" => 1_000,
            "s" | "sec" | "secs" | "second" | "seconds" => 1_000_000,
            "m" | "min" | "mins" | "minute" | "minutes" => 60_000_000,
            "h" | "hr" | "hrs" | "hour" | "hours" => 3_600_000_000,
            "d" | "day" | "days" => 86_400_000_000,
            "w" | "week" | "weeks" => 604_800_000_000,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(unit)?)?;
        any = true;
    }
    any.then_some(total)
}

impl ColumnGen {
    /// The column's values for rows `from..from + n`.
    fn array(&self, from: u64, n: usize) -> ArrayRef {
        let rows = from..from + n as u64;
        let seed = self.seed;
        match (&self.values, self.ty) {
            (Values::IntSequence { start, .. }, Type::Text) => {
                let mut b = StringBuilder::with_capacity(n, n * 8);
                let mut buf = itoa_buf();
                for r in rows {
                    b.append_value(fmt_i128(&mut buf, start + r as i128));
                }
                Arc::new(b.finish())
            }
            (Values::IntSequence { start, .. }, ty) => {
                self.int_array(ty, rows.map(|r| start + r as i128))
            }
            (Values::RandomInt { min, max }, ty) => {
                self.int_array(ty, rows.map(|r| uniform(seed, r, *min, *max)))
            }
            (Values::FloatSequence { start, .. }, Type::Float32) => Arc::new(
                Float32Array::from_iter_values(rows.map(|r| (start + r as f64) as f32)),
            ),
            (Values::FloatSequence { start, .. }, _) => Arc::new(Float64Array::from_iter_values(
                rows.map(|r| start + r as f64),
            )),
            (Values::RandomFloat { min, max }, ty) => {
                let v = rows.map(|r| min + (max - min) * unit_float(seed, r));
                if ty == Type::Float32 {
                    Arc::new(Float32Array::from_iter_values(v.map(|x| x as f32)))
                } else {
                    Arc::new(Float64Array::from_iter_values(v))
                }
            }
            (Values::RandomBool, _) => Arc::new(BooleanArray::from_iter(
                rows.map(|r| Some(hash(seed, r, 0) & 1 == 1)),
            )),
            (Values::RandomText { length }, _) => {
                let mut b = StringBuilder::with_capacity(n, n * length);
                let mut s = String::with_capacity(*length);
                for r in rows {
                    s.clear();
                    let mut word = 0;
                    for k in 0..*length {
                        if k % 8 == 0 {
                            word = hash(seed, r, k as u64 / 8);
                        }
                        s.push(ALPHANUMERIC[(word & 0xff) as usize % 62] as char);
                        word >>= 8;
                    }
                    b.append_value(&s);
                }
                Arc::new(b.finish())
            }
            (Values::RandomBytes { length }, _) => {
                let mut b = BinaryBuilder::with_capacity(n, n * length);
                let mut v = Vec::with_capacity(*length);
                for r in rows {
                    v.clear();
                    for k in 0..length.div_ceil(8) {
                        v.extend_from_slice(&hash(seed, r, k as u64).to_le_bytes());
                    }
                    v.truncate(*length);
                    b.append_value(&v);
                }
                Arc::new(b.finish())
            }
            (Values::RandomTime, _) => Arc::new(Time64MicrosecondArray::from_iter_values(
                rows.map(|r| uniform(seed, r, 0, 86_399_999_999) as i64),
            )),
            (
                Values::RandomTimestamp {
                    base_us,
                    max_past_us,
                },
                _,
            ) => Arc::new(
                TimestampMicrosecondArray::from_iter_values(
                    rows.map(|r| base_us - uniform(seed, r, 0, *max_past_us as i128) as i64),
                )
                .with_timezone_opt(self.tz.clone()),
            ),
            (
                Values::RandomDate {
                    base_day,
                    max_past_days,
                },
                _,
            ) => Arc::new(Date32Array::from_iter_values(rows.map(|r| {
                (base_day - uniform(seed, r, 0, *max_past_days as i128) as i64) as i32
            }))),
        }
    }

    fn int_array(&self, ty: Type, values: impl Iterator<Item = i128>) -> ArrayRef {
        match ty {
            Type::Int32 => Arc::new(Int32Array::from_iter_values(values.map(|v| v as i32))),
            Type::Int64 => Arc::new(Int64Array::from_iter_values(values.map(|v| v as i64))),
            Type::Decimal(p, s) => Arc::new(
                Decimal128Array::from_iter_values(values)
                    .with_precision_and_scale(p, s)
                    .expect("precision and scale come from the schema"),
            ),
            _ => unreachable!("integer values for integer types only"),
        }
    }
}

fn itoa_buf() -> String {
    String::with_capacity(40)
}

fn fmt_i128(buf: &mut String, v: i128) -> &str {
    use std::fmt::Write;
    buf.clear();
    let _ = write!(buf, "{v}");
    buf
}

impl Generator for DatagenGenerator {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn next_batch(&mut self, max_rows: usize) -> Option<RecordBatch> {
        let left = self.total.saturating_sub(self.position);
        let n = (max_rows.max(1) as u64).min(left) as usize;
        if n == 0 {
            return None;
        }
        let arrays: Vec<ArrayRef> = self
            .columns
            .iter()
            .map(|c| c.array(self.position, n))
            .collect();
        self.position += n as u64;
        Some(
            RecordBatch::try_new_with_options(
                self.schema.clone(),
                arrays,
                &RecordBatchOptions::new().with_row_count(Some(n)),
            )
            .expect("arrays follow the schema"),
        )
    }

    fn rate(&self) -> Option<f64> {
        self.rate
    }

    fn position(&self) -> u64 {
        self.position
    }

    fn seek(&mut self, position: u64) {
        self.position = position;
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::compute::concat_batches;
    use datafusion::arrow::datatypes::{
        Date32Type, Decimal128Type, Field, Float64Type, Int32Type, Int64Type, Schema,
        TimestampMicrosecondType,
    };

    use super::*;

    fn options(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn every_type() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("i", DataType::Int32, true),
            Field::new("r", DataType::Float32, true),
            Field::new("d", DataType::Float64, true),
            Field::new("n", DataType::Decimal128(6, 2), true),
            Field::new("b", DataType::Boolean, true),
            Field::new("t", DataType::Utf8, true),
            Field::new("by", DataType::Binary, true),
            Field::new("dt", DataType::Date32, true),
            Field::new("tm", DataType::Time64(TimeUnit::Microsecond), true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, None), true),
            Field::new(
                "tz",
                DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
                true,
            ),
        ]))
    }

    fn every_type_options() -> BTreeMap<String, String> {
        options(&[
            ("connector", "datagen"),
            ("fields.id.kind", "sequence"),
            ("fields.id.start", "1"),
            ("fields.id.end", "1000"),
            ("fields.i.min", "-5"),
            ("fields.i.max", "5"),
            ("fields.d.min", "10"),
            ("fields.d.max", "20"),
            ("fields.n.min", "-1.5"),
            ("fields.n.max", "9999.99"),
            ("fields.t.length", "16"),
            ("fields.t.seed", "7"),
            ("fields.by.length", "3"),
            ("fields.dt.min", "2024-01-01"),
            ("fields.dt.max", "2024-01-31"),
            ("fields.ts.max_past", "2h 30min"),
        ])
    }

    fn all(g: &mut dyn Generator, chunk: usize) -> RecordBatch {
        let batches: Vec<_> = std::iter::from_fn(|| g.next_batch(chunk)).collect();
        concat_batches(&g.schema(), &batches).unwrap()
    }

    #[test]
    fn every_type_within_bounds_and_the_sequence_ends() {
        let mut g = super::super::datagen(&every_type_options(), every_type()).unwrap();
        assert_eq!(g.rate(), None, "bounded by the sequence: flat out");
        let b = all(g.as_mut(), 300);
        assert_eq!(b.num_rows(), 1000);
        assert_eq!(g.position(), 1000);
        let id = b.column(0).as_primitive::<Int64Type>();
        assert_eq!(id.values().to_vec(), (1..=1000).collect::<Vec<i64>>());
        let i = b.column(1).as_primitive::<Int32Type>();
        assert!(i.values().iter().all(|v| (-5..=5).contains(v)));
        assert!(
            (-5..=5).all(|x| i.values().contains(&x)),
            "covers the range"
        );
        let d = b.column(3).as_primitive::<Float64Type>();
        assert!(d.values().iter().all(|v| (10.0..=20.0).contains(v)));
        let n = b.column(4).as_primitive::<Decimal128Type>();
        assert!(n.values().iter().all(|v| (-150..=999_999).contains(v)));
        assert_eq!(b.column(4).data_type(), &DataType::Decimal128(6, 2));
        let bools = b.column(5).as_boolean();
        assert!(bools.true_count() > 400 && bools.false_count() > 400);
        let t = b.column(6).as_string::<i32>();
        assert!(t.iter().all(
            |s| s.unwrap().len() == 16 && s.unwrap().bytes().all(|c| c.is_ascii_alphanumeric())
        ));
        let by = b.column(7).as_binary::<i32>();
        assert!(by.iter().all(|s| s.unwrap().len() == 3));
        let dt = b.column(8).as_primitive::<Date32Type>();
        assert!(dt.values().iter().all(|v| (19_723..=19_753).contains(v)));
        let ts = b.column(10).as_primitive::<TimestampMicrosecondType>();
        let base = DEFAULT_BASE_TIME_MS * 1000;
        assert!(
            ts.values()
                .iter()
                .all(|v| (base - 9_000_000_000..=base).contains(v))
        );
        assert_eq!(b.schema(), every_type());
        assert!(g.next_batch(10).is_none());
    }

    #[test]
    fn deterministic_and_seek_equals_continuing() {
        let mut a = super::super::datagen(&every_type_options(), every_type()).unwrap();
        let whole = all(a.as_mut(), 128);
        let mut b = super::super::datagen(&every_type_options(), every_type()).unwrap();
        assert_eq!(all(b.as_mut(), 77), whole);
        let mut c = super::super::datagen(&every_type_options(), every_type()).unwrap();
        c.next_batch(5);
        c.seek(600);
        assert_eq!(all(c.as_mut(), 50), whole.slice(600, 400));
        // A different seed changes the column.
        let mut o = every_type_options();
        o.insert("fields.t.seed".into(), "8".into());
        let mut d = super::super::datagen(&o, every_type()).unwrap();
        assert_ne!(all(d.as_mut(), 1000).column(6), whole.column(6));
    }

    #[test]
    fn unbounded_sources_pace_by_default() {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, true)]));
        let g = super::super::datagen(&options(&[]), schema.clone()).unwrap();
        assert_eq!(g.rate(), Some(10.0));
        let g = super::super::datagen(&options(&[("rows.per.second", "1000")]), schema.clone())
            .unwrap();
        assert_eq!(g.rate(), Some(1000.0));
        let mut g =
            super::super::datagen(&options(&[("datagen.rows.per.second", "0")]), schema).unwrap();
        assert_eq!(g.rate(), None);
        assert_eq!(g.next_batch(100).unwrap().num_rows(), 100);
    }

    #[test]
    fn option_errors() {
        let schema = every_type();
        let err = |pairs: &[(&str, &str)]| {
            super::super::datagen(&options(pairs), schema.clone())
                .err()
                .expect("an error")
                .to_string()
        };
        let e = err(&[("rows.per.sec", "1")]);
        assert!(
            e.contains("unknown option") && e.contains("rows.per.second"),
            "{e}"
        );
        let e = err(&[("fields.nope.kind", "random")]);
        assert!(e.contains("\"nope\""), "{e}");
        let e = err(&[("fields.id.kind", "cycle")]);
        assert!(e.contains("sequence or random"), "{e}");
        let e = err(&[("fields.b.kind", "sequence")]);
        assert!(
            e.contains("cannot be a sequence") || e.contains("does not apply"),
            "{e}"
        );
        let e = err(&[("fields.id.length", "3")]);
        assert!(e.contains("does not apply"), "{e}");
        let e = err(&[("fields.i.min", "3000000000")]);
        assert!(e.contains("fields.i.min"), "{e}");
        let e = err(&[("fields.n.max", "10000")]);
        assert!(e.contains("fields.n.max"), "{e}");
        let e = err(&[("fields.ts.max_past", "forever")]);
        assert!(e.contains("max_past"), "{e}");
        let e = err(&[("fields.i.min", "5"), ("fields.i.max", "1")]);
        assert!(e.contains("greater"), "{e}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_us("10s"), Some(10_000_000));
        assert_eq!(
            parse_duration_us("2h 37min"),
            Some((2 * 60 + 37) * 60_000_000)
        );
        assert_eq!(parse_duration_us("3 days"), Some(3 * 86_400_000_000));
        assert_eq!(parse_duration_us("90"), Some(90_000_000));
        assert_eq!(parse_duration_us("1 fortnight"), None);
        assert_eq!(parse_duration_us(""), None);
    }

    #[test]
    fn text_sequences() {
        let schema = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, true)]));
        let mut g = super::super::datagen(
            &options(&[
                ("fields.s.kind", "sequence"),
                ("fields.s.start", "98"),
                ("fields.s.end", "101"),
            ]),
            schema,
        )
        .unwrap();
        let b = all(g.as_mut(), 10);
        let s: Vec<_> = b.column(0).as_string::<i32>().iter().flatten().collect();
        assert_eq!(s, ["98", "99", "100", "101"]);
    }
}
