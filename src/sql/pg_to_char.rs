//! `to_char(timestamp | date, pattern)` with PostgreSQL's patterns.
//!
//! DataFusion's `to_char` takes chrono's `%Y-%m-%d`, so the PostgreSQL
//! spelling `to_char(date_time, 'YYYY-MM-DD')` (Nexmark q15–q17, every
//! daily report) printed the pattern back unchanged. This replaces it for
//! dates and timestamps: the pattern is parsed once per call into fields
//! (`YYYY`, `MM`, `DD`, `HH24`, `MI`, `SS`, `MS`, `US`, `Mon`, `Month`,
//! `Dy`, `Day`, `AM`, `DDD`, `D`, `Q`, `IW`, with `FM` and "quoted text")
//! and each value is written field by field. A timestamp with time zone is
//! shown in UTC.

use std::any::Any;
use std::fmt::Write;
use std::sync::Arc;

use chrono::{Datelike, NaiveDateTime, Timelike};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
use datafusion::common::{Result, ScalarValue, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

pub fn udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(PgToChar {
        signature: Signature::user_defined(Volatility::Immutable),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct PgToChar {
    signature: Signature,
}

/// One piece of a pattern.
#[derive(Debug, Clone, PartialEq)]
enum Field {
    Text(String),
    /// A field, and whether FM (no padding) precedes it.
    Part(&'static str, bool),
}

/// Longest first, so `YYYY` wins over `YY` and `HH24` over `HH`.
const PARTS: &[&str] = &[
    "YYYY", "MONTH", "Month", "month", "HH24", "HH12", "A.M.", "P.M.", "a.m.", "p.m.", "YYY",
    "MON", "Mon", "mon", "DAY", "Day", "day", "DDD", "YY", "MM", "DD", "HH", "MI", "SS", "MS",
    "US", "DY", "Dy", "dy", "AM", "PM", "am", "pm", "IW", "TZ", "tz", "Y", "D", "Q",
];

fn parse(pattern: &str) -> Vec<Field> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut rest = pattern;
    let mut fill = false;
    'outer: while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('"') {
            // "quoted text" is copied as is.
            let end = r.find('"').unwrap_or(r.len());
            text.push_str(&r[..end]);
            rest = r.get(end + 1..).unwrap_or("");
            continue;
        }
        if let Some(r) = rest.strip_prefix("FM") {
            fill = true;
            rest = r;
            continue;
        }
        for p in PARTS {
            if let Some(r) = rest.strip_prefix(p) {
                if !text.is_empty() {
                    out.push(Field::Text(std::mem::take(&mut text)));
                }
                out.push(Field::Part(p, fill));
                fill = false;
                rest = r;
                continue 'outer;
            }
        }
        let c = rest.chars().next().expect("not empty");
        text.push(c);
        rest = &rest[c.len_utf8()..];
    }
    if !text.is_empty() {
        out.push(Field::Text(text));
    }
    out
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// Writes a name in the case the pattern was written in, padded to 9
/// characters unless FM (as PostgreSQL pads Month and Day).
fn name(out: &mut String, full: &str, part: &str, fill: bool, short: bool) {
    let s: String = if short {
        full.chars().take(3).collect()
    } else {
        full.to_string()
    };
    let s = if part.chars().all(|c| c.is_ascii_uppercase()) {
        s.to_uppercase()
    } else if part.chars().all(|c| c.is_ascii_lowercase()) {
        s.to_lowercase()
    } else {
        s
    };
    if short || fill {
        out.push_str(&s);
    } else {
        let _ = write!(out, "{s:<9}");
    }
}

fn format(fields: &[Field], t: &NaiveDateTime, out: &mut String) {
    for f in fields {
        let (part, fill) = match f {
            Field::Text(s) => {
                out.push_str(s);
                continue;
            }
            Field::Part(p, fill) => (*p, *fill),
        };
        let num = |out: &mut String, v: i64, width: usize| {
            if fill {
                let _ = write!(out, "{v}");
            } else {
                let _ = write!(out, "{v:0width$}");
            }
        };
        match part {
            "YYYY" => num(out, t.year() as i64, 4),
            "YYY" => num(out, (t.year() % 1000) as i64, 3),
            "YY" => num(out, (t.year() % 100) as i64, 2),
            "Y" => num(out, (t.year() % 10) as i64, 1),
            "MM" => num(out, t.month() as i64, 2),
            "DD" => num(out, t.day() as i64, 2),
            "DDD" => num(out, t.ordinal() as i64, 3),
            "D" => num(out, t.weekday().num_days_from_sunday() as i64 + 1, 1),
            "HH24" => num(out, t.hour() as i64, 2),
            "HH" | "HH12" => num(out, t.hour12().1 as i64, 2),
            "MI" => num(out, t.minute() as i64, 2),
            "SS" => num(out, t.second() as i64, 2),
            "MS" => num(out, (t.nanosecond() / 1_000_000) as i64, 3),
            "US" => num(out, (t.nanosecond() / 1_000) as i64, 6),
            "Q" => num(out, ((t.month() - 1) / 3 + 1) as i64, 1),
            "IW" => num(out, t.iso_week().week() as i64, 2),
            "MONTH" | "Month" | "month" => {
                name(out, MONTHS[t.month0() as usize], part, fill, false)
            }
            "MON" | "Mon" | "mon" => name(out, MONTHS[t.month0() as usize], part, fill, true),
            "DAY" | "Day" | "day" => name(
                out,
                DAYS[t.weekday().num_days_from_sunday() as usize],
                part,
                fill,
                false,
            ),
            "DY" | "Dy" | "dy" => name(
                out,
                DAYS[t.weekday().num_days_from_sunday() as usize],
                part,
                fill,
                true,
            ),
            "AM" | "PM" => out.push_str(if t.hour() < 12 { "AM" } else { "PM" }),
            "am" | "pm" => out.push_str(if t.hour() < 12 { "am" } else { "pm" }),
            "A.M." | "P.M." => out.push_str(if t.hour() < 12 { "A.M." } else { "P.M." }),
            "a.m." | "p.m." => out.push_str(if t.hour() < 12 { "a.m." } else { "p.m." }),
            "TZ" => out.push_str("UTC"),
            "tz" => out.push_str("utc"),
            other => out.push_str(other),
        }
    }
}

impl ScalarUDFImpl for PgToChar {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn name(&self) -> &str {
        "to_char"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types {
            [t, f] if (t.is_temporal() || t.is_null()) && (f.is_string() || f.is_null()) => {
                Ok(vec![
                    DataType::Timestamp(TimeUnit::Microsecond, None),
                    DataType::Utf8,
                ])
            }
            _ => plan_err!(
                "function to_char({arg_types:?}) does not exist: streamlake's to_char formats dates and timestamps"
            ),
        }
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (scalar, rows) = super::columnar::rows(&args);
        let values = args.args[0].to_array(rows)?;
        let values = cast(&values, &DataType::Timestamp(TimeUnit::Microsecond, None))?;
        let values = values.as_primitive::<TimestampMicrosecondType>();
        // The common case: one pattern for every row, parsed once.
        let fixed = match &args.args[1] {
            ColumnarValue::Scalar(ScalarValue::Utf8(Some(p))) => Some(parse(p)),
            _ => None,
        };
        let patterns = match &fixed {
            Some(_) => None,
            None => Some(cast(&args.args[1].to_array(rows)?, &DataType::Utf8)?),
        };
        let mut out = StringBuilder::with_capacity(rows, rows * 16);
        let mut buf = String::new();
        for i in 0..rows {
            let fields = match (&fixed, &patterns) {
                (Some(f), _) => std::borrow::Cow::Borrowed(f),
                (None, Some(p)) if p.is_valid(i) => {
                    std::borrow::Cow::Owned(parse(p.as_string::<i32>().value(i)))
                }
                _ => {
                    out.append_null();
                    continue;
                }
            };
            if values.is_null(i) {
                out.append_null();
                continue;
            }
            let Some(t) = chrono::DateTime::from_timestamp_micros(values.value(i)) else {
                out.append_null();
                continue;
            };
            buf.clear();
            format(&fields, &t.naive_utc(), &mut buf);
            out.append_value(&buf);
        }
        super::columnar::output(Arc::new(out.finish()) as ArrayRef, scalar)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(p: &str, ts: &str) -> String {
        let t = NaiveDateTime::parse_from_str(ts, "%Y-%m-%d %H:%M:%S%.f").unwrap();
        let mut s = String::new();
        format(&parse(p), &t, &mut s);
        s
    }

    #[test]
    fn postgresql_patterns() {
        assert_eq!(fmt("YYYY-MM-DD", "2024-03-05 07:08:09"), "2024-03-05");
        assert_eq!(
            fmt("HH24:MI:SS.MS", "2024-03-05 17:08:09.25"),
            "17:08:09.250"
        );
        assert_eq!(fmt("HH12 AM", "2024-03-05 17:08:09"), "05 PM");
        assert_eq!(fmt("Mon DD, YYYY", "2024-03-05 07:08:09"), "Mar 05, 2024");
        assert_eq!(
            fmt("Month|FMMonth|MONTH", "2024-03-05 00:00:00"),
            "March    |March|MARCH    "
        );
        assert_eq!(
            fmt("FMDD \"of\" FMMonth", "2024-03-05 00:00:00"),
            "5 of March"
        );
        assert_eq!(fmt("Dy D Q DDD", "2024-03-05 00:00:00"), "Tue 3 1 065");
    }
}
