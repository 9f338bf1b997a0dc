//! streamlake patch: values printed as PostgreSQL prints them.
//!
//! Timestamps: `2024-01-01 10:00:00` (timestamp) and
//! `2024-01-01 10:00:00+00` (timestamptz, in the session's TimeZone), with
//! fractional seconds only when non-zero and trailing zeros trimmed
//! (`10:00:00.5`), and the offset as `+HH[:MM[:SS]]`.
//!
//! Numerics: a `Decimal128` value prints with its declared scale, except an
//! *unconstrained* numeric (see [`is_unconstrained_numeric`]), which prints
//! normalized (`10.5`, `3`) as PostgreSQL prints a bare NUMERIC. The binary
//! form is PostgreSQL's base-10000 numeric with the same display scale, built
//! from the i128 directly (no 28-digit limit).

use std::error::Error;
use std::fmt::Write as _;

use bytes::{BufMut, BytesMut};
use chrono::{DateTime, Datelike, FixedOffset, NaiveDateTime, Timelike};
use pgwire::types::ToSqlText;
use pgwire::types::format::FormatOptions;
use postgres_types::{IsNull, ToSql, Type, to_sql_checked};

/// Separates a repeated select-list name from the suffix that makes it
/// unique for DataFusion (see `datatypes::output_name`).
pub const DUPLICATE_NAME_MARK: char = '\u{1f}';

/// Whether a `Decimal128(precision, scale)` is an unconstrained NUMERIC.
///
/// streamlake stores a column declared bare `NUMERIC` as `Decimal128(38, 10)`
/// (Iceberg decimals are bounded), and DataFusion's arithmetic and
/// aggregates over such values keep precision 38 with a scale of at least
/// 10. A column declared `NUMERIC(38, s)` with `s >= 10` is therefore
/// indistinguishable and prints normalized too.
pub fn is_unconstrained_numeric(precision: u8, scale: i8) -> bool {
    precision == 38 && scale >= 10
}

/// Writes PostgreSQL's ISO text of a timestamp: `naive` is the wall-clock
/// time; `offset` (seconds east of UTC) is printed for timestamptz.
pub fn write_timestamp(out: &mut String, naive: &NaiveDateTime, offset: Option<i32>) {
    let (bc, year) = match naive.year() {
        y if y <= 0 => (true, 1 - y),
        y => (false, y),
    };
    let _ = write!(
        out,
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        year,
        naive.month(),
        naive.day(),
        naive.hour(),
        naive.minute(),
        naive.second()
    );
    // PostgreSQL keeps microseconds.
    let micros = naive.nanosecond() / 1_000;
    if micros != 0 {
        let frac = format!("{micros:06}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    if let Some(offset) = offset {
        let sign = if offset < 0 { '-' } else { '+' };
        let abs = offset.unsigned_abs();
        let _ = write!(out, "{sign}{:02}", abs / 3600);
        if abs % 3600 != 0 {
            let _ = write!(out, ":{:02}", (abs % 3600) / 60);
            if abs % 60 != 0 {
                let _ = write!(out, ":{:02}", abs % 60);
            }
        }
    }
    if bc {
        out.push_str(" BC");
    }
}

/// A timestamp to encode: without a zone, or at an instant shown in a zone.
#[derive(Debug, Clone, Copy)]
pub enum PgTimestamp {
    Naive(NaiveDateTime),
    Zoned(DateTime<FixedOffset>),
}

impl PgTimestamp {
    pub fn text(&self) -> String {
        let mut s = String::with_capacity(32);
        match self {
            PgTimestamp::Naive(n) => write_timestamp(&mut s, n, None),
            PgTimestamp::Zoned(z) => write_timestamp(
                &mut s,
                &z.naive_local(),
                Some(z.offset().local_minus_utc()),
            ),
        }
        s
    }
}

impl ToSql for PgTimestamp {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        match self {
            PgTimestamp::Naive(n) => n.to_sql(ty, out),
            PgTimestamp::Zoned(z) => z.to_sql(ty, out),
        }
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::TIMESTAMP | Type::TIMESTAMPTZ)
    }

    to_sql_checked!();
}

impl ToSqlText for PgTimestamp {
    fn to_sql_text(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
        _format_options: &FormatOptions,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        out.put_slice(self.text().as_bytes());
        Ok(IsNull::No)
    }
}

/// PostgreSQL's text of a float (extra_float_digits > 0, the default since
/// PostgreSQL 12): the shortest text that reads back exactly, in exponent
/// form when the decimal exponent is below -4 or at least `max_exp` (15 for
/// float8, 6 for float4): `2`, `1.5`, `1e+20`, `1e-05`, `Infinity`, `NaN`.
pub fn float_text(v: f64, shortest_sci: String, shortest: String, max_exp: i32) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let (mantissa, exp) = shortest_sci.split_once('e').unwrap_or((&shortest_sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if exp < -4 || exp >= max_exp {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.unsigned_abs())
    } else {
        shortest
    }
}

pub fn float8_text(v: f64) -> String {
    float_text(v, format!("{v:e}"), format!("{v}"), 15)
}

pub fn float4_text(v: f32) -> String {
    float_text(v as f64, format!("{v:e}"), format!("{v}"), 6)
}

/// A float to encode with PostgreSQL's text form (binary unchanged).
#[derive(Debug, Clone, Copy)]
pub enum PgFloat {
    F4(f32),
    F8(f64),
}

impl ToSql for PgFloat {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        match self {
            PgFloat::F4(v) => v.to_sql(ty, out),
            PgFloat::F8(v) => v.to_sql(ty, out),
        }
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::FLOAT4 | Type::FLOAT8)
    }

    to_sql_checked!();
}

impl ToSqlText for PgFloat {
    fn to_sql_text(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
        _format_options: &FormatOptions,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        let text = match self {
            PgFloat::F4(v) => float4_text(*v),
            PgFloat::F8(v) => float8_text(*v),
        };
        out.put_slice(text.as_bytes());
        Ok(IsNull::No)
    }
}

/// A numeric value: `value * 10^-scale`, printed with `dscale` digits after
/// the point.
#[derive(Debug, Clone, Copy)]
pub struct PgNumeric {
    value: i128,
    scale: u32,
}

impl PgNumeric {
    /// The value of a `Decimal128(precision, scale)` cell, normalized when the
    /// type is an unconstrained numeric.
    pub fn new(value: i128, precision: u8, scale: i8) -> PgNumeric {
        // A negative scale multiplies; print it as an integer.
        let (mut value, mut scale) = if scale < 0 {
            (
                value.saturating_mul(10i128.saturating_pow(scale.unsigned_abs() as u32)),
                0u32,
            )
        } else {
            (value, scale as u32)
        };
        if is_unconstrained_numeric(precision, scale as i8) {
            while scale > 0 && value % 10 == 0 {
                value /= 10;
                scale -= 1;
            }
        }
        PgNumeric { value, scale }
    }

    pub fn text(&self) -> String {
        let digits = self.value.unsigned_abs().to_string();
        let scale = self.scale as usize;
        let mut s = String::with_capacity(digits.len() + 3);
        if self.value < 0 {
            s.push('-');
        }
        if scale == 0 {
            s.push_str(&digits);
        } else if digits.len() > scale {
            let (int, frac) = digits.split_at(digits.len() - scale);
            s.push_str(int);
            s.push('.');
            s.push_str(frac);
        } else {
            s.push_str("0.");
            for _ in 0..(scale - digits.len()) {
                s.push('0');
            }
            s.push_str(&digits);
        }
        s
    }

    /// PostgreSQL's binary numeric: ndigits, weight, sign, dscale, then
    /// base-10000 digits, most significant first.
    pub fn write_binary(&self, out: &mut BytesMut) {
        let abs = self.value.unsigned_abs();
        let scale = self.scale;
        let pow = 10u128.pow(scale);
        let (int, frac) = (abs / pow, abs % pow);
        // Integer groups, least significant first.
        let mut int_groups = Vec::new();
        let mut i = int;
        while i > 0 {
            int_groups.push((i % 10_000) as i16);
            i /= 10_000;
        }
        int_groups.reverse();
        // Fraction padded on the right to whole groups.
        let frac_groups_len = scale.div_ceil(4);
        let mut frac_groups = Vec::with_capacity(frac_groups_len as usize);
        if frac_groups_len > 0 {
            let mut f = frac * 10u128.pow(frac_groups_len * 4 - scale);
            for _ in 0..frac_groups_len {
                frac_groups.push((f % 10_000) as i16);
                f /= 10_000;
            }
            frac_groups.reverse();
        }
        let mut weight = int_groups.len() as i16 - 1;
        let mut digits: Vec<i16> = int_groups.into_iter().chain(frac_groups).collect();
        // Strip leading zero groups (each lowers the weight) and trailing ones.
        let leading = digits.iter().take_while(|d| **d == 0).count();
        digits.drain(..leading);
        weight -= leading as i16;
        while digits.last() == Some(&0) {
            digits.pop();
        }
        if digits.is_empty() {
            weight = 0;
        }
        out.put_i16(digits.len() as i16);
        out.put_i16(weight);
        out.put_u16(if self.value < 0 { 0x4000 } else { 0 });
        out.put_u16(scale as u16);
        for d in digits {
            out.put_i16(d);
        }
    }
}

impl ToSql for PgNumeric {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        self.write_binary(out);
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::NUMERIC)
    }

    to_sql_checked!();
}

impl ToSqlText for PgNumeric {
    fn to_sql_text(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
        _format_options: &FormatOptions,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        out.put_slice(self.text().as_bytes());
        Ok(IsNull::No)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn ts(h: u32, m: u32, s: u32, micro: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2024, 1, 1)
            .unwrap()
            .and_hms_micro_opt(h, m, s, micro)
            .unwrap()
    }

    #[test]
    fn timestamps_print_as_postgres_does() {
        let mut s = String::new();
        write_timestamp(&mut s, &ts(10, 0, 0, 0), None);
        assert_eq!(s, "2024-01-01 10:00:00");
        s.clear();
        write_timestamp(&mut s, &ts(10, 0, 0, 500_000), Some(0));
        assert_eq!(s, "2024-01-01 10:00:00.5+00");
        s.clear();
        write_timestamp(&mut s, &ts(10, 0, 0, 123_456), Some(19_800));
        assert_eq!(s, "2024-01-01 10:00:00.123456+05:30");
        s.clear();
        write_timestamp(&mut s, &ts(10, 0, 0, 0), Some(-8 * 3600));
        assert_eq!(s, "2024-01-01 10:00:00-08");
    }

    #[test]
    fn numerics_keep_declared_scale_or_normalize() {
        assert_eq!(PgNumeric::new(1050, 10, 2).text(), "10.50");
        assert_eq!(PgNumeric::new(105_000_000_000, 38, 10).text(), "10.5");
        assert_eq!(PgNumeric::new(30_000_000_000, 38, 10).text(), "3");
        assert_eq!(PgNumeric::new(-5, 38, 10).text(), "-0.0000000005");
        assert_eq!(PgNumeric::new(0, 38, 10).text(), "0");
        assert_eq!(PgNumeric::new(-7, 5, 2).text(), "-0.07");
    }

    #[test]
    fn floats_print_as_postgres_does() {
        assert_eq!(float8_text(2.0), "2");
        assert_eq!(float8_text(1.5), "1.5");
        assert_eq!(float8_text(1e20), "1e+20");
        assert_eq!(float8_text(123456789012345.0), "123456789012345");
        assert_eq!(float8_text(0.0001), "0.0001");
        assert_eq!(float8_text(0.00001), "1e-05");
        assert_eq!(float8_text(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(float4_text(1e6), "1e+06");
        assert_eq!(float4_text(123456.0), "123456");
        assert_eq!(float8_text(f64::NEG_INFINITY), "-Infinity");
    }

    #[test]
    fn numeric_binary_is_base_10000() {
        let mut b = BytesMut::new();
        // 12345.678 (scale 3): digits 1, 2345, 6780; weight 1.
        PgNumeric::new(12_345_678, 10, 3).write_binary(&mut b);
        assert_eq!(
            &b[..],
            &[0, 3, 0, 1, 0, 0, 0, 3, 0, 1, 0x09, 0x29, 0x1a, 0x7c]
        );
        let mut b = BytesMut::new();
        // 0.0005: one digit 5 at weight -1, dscale 4.
        PgNumeric::new(5, 10, 4).write_binary(&mut b);
        assert_eq!(&b[..], &[0, 1, 0xff, 0xff, 0, 0, 0, 4, 0, 5]);
    }
}
