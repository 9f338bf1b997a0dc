//! One value: JSON value text or CSV field text → a typed [`Slot`].
//!
//! Both decoders end here, so a column type reads the same from either
//! format: a CSV field and a JSON string go through [`from_text`]; JSON
//! numbers, booleans, objects and arrays through [`from_json`], which reads
//! the value's exact text (serde_json's `RawValue`), never an `f64`.
//!
//! A parsed value is a [`Slot`]: `Copy`, no allocation. Strings stay where
//! they are (a range of the payload) unless they had to be unescaped or
//! rewritten, in which case they live in the decoder's reused scratch
//! buffers ([`Scratch`]). Errors are short human texts without the column
//! name (the caller adds it); they are built only on the error path.

use datafusion::arrow::datatypes::{DataType, Field, TimeUnit};

use crate::error::{Error, Result};

/// The field metadata key that marks a `Utf8` column as JSONB.
pub const TYPE_METADATA_KEY: &str = "streamlake.type";
/// The value of [`TYPE_METADATA_KEY`] for JSONB columns.
pub const JSONB: &str = "jsonb";

/// Microseconds in a day.
const DAY_US: i64 = 86_400_000_000;

/// What a column holds, as the decoders see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Int32,
    Int64,
    Float32,
    Float64,
    Boolean,
    Text,
    Jsonb,
    Decimal { precision: u8, scale: i8 },
    Date,
    Time,
    Timestamp,
    TimestampTz,
    Binary,
}

impl Kind {
    /// The kind of a declared column, or an error for a type the decoders
    /// do not produce.
    pub(crate) fn of(field: &Field) -> Result<Kind> {
        Ok(match field.data_type() {
            DataType::Int32 => Kind::Int32,
            DataType::Int64 => Kind::Int64,
            DataType::Float32 => Kind::Float32,
            DataType::Float64 => Kind::Float64,
            DataType::Boolean => Kind::Boolean,
            DataType::Utf8 if is_jsonb(field) => Kind::Jsonb,
            DataType::Utf8 => Kind::Text,
            DataType::Decimal128(p, s) if *s >= 0 && *s as u8 <= *p => Kind::Decimal {
                precision: *p,
                scale: *s,
            },
            DataType::Date32 => Kind::Date,
            DataType::Time64(TimeUnit::Microsecond) => Kind::Time,
            DataType::Timestamp(TimeUnit::Microsecond, None) => Kind::Timestamp,
            DataType::Timestamp(TimeUnit::Microsecond, Some(_)) => Kind::TimestampTz,
            DataType::Binary => Kind::Binary,
            other => {
                return Err(Error::FeatureNotSupported(format!(
                    "column \"{}\": type {other} cannot be decoded from a record",
                    field.name()
                )));
            }
        })
    }

    /// The SQL name, for error messages.
    pub(crate) fn sql_name(self) -> String {
        match self {
            Kind::Int32 => "integer".into(),
            Kind::Int64 => "bigint".into(),
            Kind::Float32 => "real".into(),
            Kind::Float64 => "double precision".into(),
            Kind::Boolean => "boolean".into(),
            Kind::Text => "text".into(),
            Kind::Jsonb => "jsonb".into(),
            Kind::Decimal { precision, scale } => format!("numeric({precision},{scale})"),
            Kind::Date => "date".into(),
            Kind::Time => "time".into(),
            Kind::Timestamp => "timestamp".into(),
            Kind::TimestampTz => "timestamp with time zone".into(),
            Kind::Binary => "bytea".into(),
        }
    }
}

/// Whether a `Utf8` field is flagged as JSONB ([`TYPE_METADATA_KEY`]).
pub fn is_jsonb(field: &Field) -> bool {
    field
        .metadata()
        .get(TYPE_METADATA_KEY)
        .is_some_and(|t| t.eq_ignore_ascii_case(JSONB))
}

/// Which buffer a string lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Buf {
    /// The record's payload.
    Payload,
    /// [`Scratch::unescaped`]: JSON strings with escapes, CSV fields with `""`.
    Unescaped,
    /// [`Scratch::text`]: text this module wrote (compacted JSONB).
    Derived,
}

/// A byte range of one of the buffers, on UTF-8 boundaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Loc {
    pub buf: Buf,
    pub start: u32,
    pub end: u32,
}

/// One parsed value. Integers, dates, times and timestamps are `Int`
/// (days or microseconds); decimals are unscaled at the column's scale.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Slot {
    Null,
    Int(i64),
    Decimal(i128),
    Float(f64),
    Bool(bool),
    Str(Loc),
    Static(&'static str),
    /// A range of [`Scratch::bytes`] (decoded `\x` hex).
    Bytes(u32, u32),
}

/// Buffers reused from record to record; cleared at the start of each.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    pub unescaped: String,
    pub text: String,
    pub bytes: Vec<u8>,
}

impl Scratch {
    pub(crate) fn clear(&mut self) {
        self.unescaped.clear();
        self.text.clear();
        self.bytes.clear();
    }

    /// The text a [`Loc`] points at.
    pub(crate) fn str<'a>(&'a self, payload: &'a str, loc: Loc) -> &'a str {
        let range = loc.start as usize..loc.end as usize;
        match loc.buf {
            Buf::Payload => &payload[range],
            Buf::Unescaped => &self.unescaped[range],
            Buf::Derived => &self.text[range],
        }
    }
}

/// Where the decoders put what they write while parsing one value.
pub(crate) struct Out<'a> {
    pub text: &'a mut String,
    pub bytes: &'a mut Vec<u8>,
}

/// A value for display in an error message, cut to a readable length.
pub(crate) fn shown(s: &str) -> String {
    const MAX: usize = 40;
    if s.len() <= MAX {
        return s.to_string();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn invalid(kind: Kind, s: &str) -> String {
    format!("\"{}\" is not a valid {}", shown(s), kind.sql_name())
}

fn out_of_range(kind: Kind, s: &str) -> String {
    format!("{} is out of range for type {}", shown(s), kind.sql_name())
}

// ---------------------------------------------------------------------------
// JSON values
// ---------------------------------------------------------------------------

/// Parses one JSON value (its exact text, already validated by serde_json)
/// for a column. `at` is the offset of `raw` in the payload.
pub(crate) fn from_json(
    kind: Kind,
    raw: &str,
    at: u32,
    unescaped: &mut String,
    out: Out<'_>,
) -> Result<Slot, String> {
    let payload_loc = Loc {
        buf: Buf::Payload,
        start: at,
        end: at + raw.len() as u32,
    };
    let Some(&first) = raw.as_bytes().first() else {
        return Err("empty value".into());
    };
    match first {
        b'n' => Ok(Slot::Null),
        b'"' => {
            if kind == Kind::Jsonb {
                return Ok(Slot::Str(payload_loc));
            }
            let inner = &raw[1..raw.len() - 1];
            if memchr::memchr(b'\\', inner.as_bytes()).is_none() {
                let loc = Loc {
                    buf: Buf::Payload,
                    start: at + 1,
                    end: at + 1 + inner.len() as u32,
                };
                from_text(kind, inner, loc, out)
            } else {
                let start = unescaped.len();
                unescape_json(inner, unescaped)?;
                let loc = Loc {
                    buf: Buf::Unescaped,
                    start: start as u32,
                    end: unescaped.len() as u32,
                };
                from_text(kind, &unescaped[start..], loc, out)
            }
        }
        b't' | b'f' => {
            let value = first == b't';
            match kind {
                Kind::Boolean => Ok(Slot::Bool(value)),
                Kind::Text | Kind::Binary => Ok(Slot::Static(if value { "true" } else { "false" })),
                Kind::Jsonb => Ok(Slot::Str(payload_loc)),
                _ => Err(format!(
                    "expected {}, found a JSON boolean",
                    kind.sql_name()
                )),
            }
        }
        b'{' | b'[' => match kind {
            Kind::Jsonb => Ok(compact_json(raw, payload_loc, out.text)),
            _ => Err(format!(
                "expected {}, found a JSON {}",
                kind.sql_name(),
                if first == b'{' { "object" } else { "array" }
            )),
        },
        _ => number(kind, raw, payload_loc),
    }
}

/// A JSON number (valid JSON number syntax) for a column.
fn number(kind: Kind, raw: &str, loc: Loc) -> Result<Slot, String> {
    match kind {
        Kind::Int32 | Kind::Int64 | Kind::Decimal { .. } | Kind::Float32 | Kind::Float64 => {
            numeric(kind, raw)
        }
        Kind::Text | Kind::Jsonb | Kind::Binary => Ok(Slot::Str(loc)),
        // Epoch milliseconds; a fraction keeps its microseconds.
        Kind::Timestamp | Kind::TimestampTz => {
            match decimal_text(raw.as_bytes()).and_then(|d| d.scaled(3, true)) {
                Some(us) if (i64::MIN as i128..=i64::MAX as i128).contains(&us) => {
                    Ok(Slot::Int(us as i64))
                }
                _ => Err(format!(
                    "{} is out of range for epoch milliseconds",
                    shown(raw)
                )),
            }
        }
        Kind::Boolean | Kind::Date | Kind::Time => {
            Err(format!("expected {}, found a JSON number", kind.sql_name()))
        }
    }
}

/// Text that must be a number of a numeric kind (JSON number text or a
/// trimmed string).
fn numeric(kind: Kind, s: &str) -> Result<Slot, String> {
    match kind {
        Kind::Int32 => {
            let v = integer(kind, s)?;
            if v < i32::MIN as i64 || v > i32::MAX as i64 {
                return Err(out_of_range(kind, s));
            }
            Ok(Slot::Int(v))
        }
        Kind::Int64 => Ok(Slot::Int(integer(kind, s)?)),
        Kind::Decimal { precision, scale } => {
            let d = decimal_text(s.as_bytes()).ok_or_else(|| invalid(kind, s))?;
            let v = d
                .scaled(scale as u32, true)
                .ok_or_else(|| out_of_range(kind, s))?;
            if v.unsigned_abs() >= 10u128.pow(precision as u32) {
                return Err(out_of_range(kind, s));
            }
            Ok(Slot::Decimal(v))
        }
        Kind::Float32 => {
            let v: f32 = s.parse().map_err(|_| invalid(kind, s))?;
            if v.is_infinite() && !names_infinity(s) {
                return Err(out_of_range(kind, s));
            }
            Ok(Slot::Float(v as f64))
        }
        Kind::Float64 => {
            let v: f64 = s.parse().map_err(|_| invalid(kind, s))?;
            if v.is_infinite() && !names_infinity(s) {
                return Err(out_of_range(kind, s));
            }
            Ok(Slot::Float(v))
        }
        _ => unreachable!("numeric() is called for numeric kinds only"),
    }
}

fn names_infinity(s: &str) -> bool {
    let s = s.trim_start_matches(['+', '-']);
    s.eq_ignore_ascii_case("inf") || s.eq_ignore_ascii_case("infinity")
}

/// An integer, exactly: `[+-]digits` directly; otherwise (`1.0`, `1e3`)
/// through the decimal reader, accepted only when the value is integral.
fn integer(kind: Kind, s: &str) -> Result<i64, String> {
    let b = s.as_bytes();
    let (neg, digits) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        Some(b'+') => (false, &b[1..]),
        _ => (false, b),
    };
    if !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) {
        // Accumulate negatively so that i64::MIN fits.
        let mut v: i64 = 0;
        for &d in digits {
            v = v
                .checked_mul(10)
                .and_then(|v| v.checked_sub((d - b'0') as i64))
                .ok_or_else(|| out_of_range(kind, s))?;
        }
        return if neg {
            Ok(v)
        } else {
            v.checked_neg().ok_or_else(|| out_of_range(kind, s))
        };
    }
    let d = decimal_text(b).ok_or_else(|| invalid(kind, s))?;
    let Some(v) = d.scaled(0, false) else {
        return Err(if d.is_integral() {
            out_of_range(kind, s)
        } else {
            format!("{} is not an integer", shown(s))
        });
    };
    i64::try_from(v).map_err(|_| out_of_range(kind, s))
}

/// A decimal number's text, split: `[+-]int[.frac][e[+-]exp]`.
struct DecimalText<'a> {
    negative: bool,
    int: &'a [u8],
    frac: &'a [u8],
    exp: i64,
}

fn decimal_text(b: &[u8]) -> Option<DecimalText<'_>> {
    let mut i = 0;
    let negative = match b.first() {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let int = &b[int_start..i];
    let mut frac: &[u8] = &[];
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        frac = &b[start..i];
    }
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let mut exp: i64 = 0;
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        let exp_neg = match b.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            // Saturate: beyond this any nonzero value overflows anyway.
            exp = (exp * 10 + (b[i] - b'0') as i64).min(1_000_000);
            i += 1;
        }
        if i == start {
            return None;
        }
        if exp_neg {
            exp = -exp;
        }
    }
    (i == b.len()).then_some(DecimalText {
        negative,
        int,
        frac,
        exp,
    })
}

impl DecimalText<'_> {
    fn digits(&self) -> impl Iterator<Item = u8> + '_ {
        self.int.iter().chain(self.frac.iter()).map(|d| d - b'0')
    }

    fn is_integral(&self) -> bool {
        // value = digits × 10^(exp − len(frac)); integral when every digit
        // that lands right of the point is zero.
        let shift = self.exp - self.frac.len() as i64;
        if shift >= 0 {
            return true;
        }
        let n = self.int.len() + self.frac.len();
        let dropped = (-shift).min(n as i64) as usize;
        self.digits().skip(n - dropped).all(|d| d == 0)
    }

    /// The value × 10^scale as an integer. With `round`, digits beyond the
    /// scale round half away from zero (PostgreSQL's numeric rounding);
    /// without, `None` unless they are all zero. `None` also on overflow of
    /// 38 digits.
    fn scaled(&self, scale: u32, round: bool) -> Option<i128> {
        let n = self.int.len() + self.frac.len();
        let shift = self.exp - self.frac.len() as i64 + scale as i64;
        // Digits dropped right of the scale; may exceed the digits written
        // (0.05 at scale 0 drops "5" and an implicit leading zero).
        let dropped = if shift < 0 { (-shift) as u64 } else { 0 };
        let kept = n - (dropped.min(n as u64) as usize);
        let mut v: u128 = 0;
        let mut significant = 0usize;
        for d in self.digits().take(kept) {
            if significant > 0 || d != 0 {
                significant += 1;
                if significant > 38 {
                    return None;
                }
            }
            v = v * 10 + d as u128;
        }
        if shift > 0 && v != 0 {
            if shift > 38 {
                return None;
            }
            v = v.checked_mul(10u128.pow(shift as u32))?;
        }
        if dropped > 0 {
            let first = if dropped <= n as u64 {
                self.digits().nth(kept).unwrap_or(0)
            } else {
                0
            };
            if round {
                if first >= 5 {
                    v += 1;
                }
            } else if self.digits().skip(kept).any(|d| d != 0) {
                return None;
            }
        }
        if v >= 10u128.pow(38) {
            return None;
        }
        let v = v as i128;
        Some(if self.negative { -v } else { v })
    }
}

/// A decimal's text at a column's precision and scale (unscaled), as the
/// decoders read it; `None` if it is not a number or does not fit.
pub(crate) fn parse_decimal(s: &str, precision: u8, scale: i8) -> Option<i128> {
    match numeric(Kind::Decimal { precision, scale }, s.trim()) {
        Ok(Slot::Decimal(v)) => Some(v),
        _ => None,
    }
}

/// A date's text (`YYYY-MM-DD`) as days since the epoch.
pub(crate) fn parse_date_days(s: &str) -> Option<i64> {
    let b = s.trim().as_bytes();
    parse_date(b)
        .filter(|(_, used)| *used == b.len())
        .map(|(d, _)| d)
}

// ---------------------------------------------------------------------------
// Text values (CSV fields, JSON strings)
// ---------------------------------------------------------------------------

/// Parses a value given as text (a CSV field or a JSON string's content)
/// for a column. `loc` is where `s` lives, so text columns keep it in place.
pub(crate) fn from_text(kind: Kind, s: &str, loc: Loc, out: Out<'_>) -> Result<Slot, String> {
    match kind {
        Kind::Text => Ok(Slot::Str(loc)),
        Kind::Int32 | Kind::Int64 | Kind::Decimal { .. } | Kind::Float32 | Kind::Float64 => {
            let t = s.trim();
            if t.is_empty() {
                return Err(invalid(kind, s));
            }
            numeric(kind, t)
        }
        Kind::Boolean => parse_bool(s)
            .map(Slot::Bool)
            .ok_or_else(|| invalid(kind, s)),
        Kind::Date => {
            let t = s.trim().as_bytes();
            match parse_date(t) {
                Some((days, used)) if used == t.len() => i32::try_from(days)
                    .map(|d| Slot::Int(d as i64))
                    .map_err(|_| out_of_range(kind, s)),
                _ => Err(invalid(kind, s)),
            }
        }
        Kind::Time => {
            let t = s.trim().as_bytes();
            match parse_time(t) {
                Some((us, used)) if used == t.len() && us <= DAY_US => Ok(Slot::Int(us)),
                _ => Err(invalid(kind, s)),
            }
        }
        Kind::Timestamp | Kind::TimestampTz => parse_timestamp(s.trim(), kind == Kind::TimestampTz)
            .map(Slot::Int)
            .ok_or_else(|| invalid(kind, s)),
        Kind::Binary => {
            if let Some(hex) = s.strip_prefix("\\x") {
                let start = out.bytes.len();
                decode_hex(hex.as_bytes(), out.bytes)
                    .ok_or_else(|| format!("\"{}\" is not valid hexadecimal bytea", shown(s)))?;
                Ok(Slot::Bytes(start as u32, out.bytes.len() as u32))
            } else {
                Ok(Slot::Str(loc))
            }
        }
        Kind::Jsonb => {
            // CSV: the field holds JSON text.
            if serde_json::from_str::<serde::de::IgnoredAny>(s).is_err() {
                return Err(format!("\"{}\" is not valid JSON", shown(s)));
            }
            Ok(compact_json(s.trim(), loc_trimmed(s, loc), out.text))
        }
    }
}

/// The location of `s.trim()` given the location of `s`.
fn loc_trimmed(s: &str, loc: Loc) -> Loc {
    let lead = s.len() - s.trim_start().len();
    let trail = s.len() - s.trim_end().len();
    Loc {
        buf: loc.buf,
        start: loc.start + lead as u32,
        end: loc.end - trail as u32,
    }
}

/// PostgreSQL's boolean input: unique prefixes of true/false/yes/no, on,
/// off, 1, 0; case-insensitive, surrounding whitespace allowed.
pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    let b = s.trim().as_bytes();
    let prefix_of = |word: &[u8]| b.len() <= word.len() && word[..b.len()].eq_ignore_ascii_case(b);
    match b.first()?.to_ascii_lowercase() {
        b't' if prefix_of(b"true") => Some(true),
        b'f' if prefix_of(b"false") => Some(false),
        b'y' if prefix_of(b"yes") => Some(true),
        b'n' if prefix_of(b"no") => Some(false),
        b'o' if b.eq_ignore_ascii_case(b"on") => Some(true),
        b'o' if b.eq_ignore_ascii_case(b"off") => Some(false),
        b'1' if b.len() == 1 => Some(true),
        b'0' if b.len() == 1 => Some(false),
        _ => None,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// Reads up to `max` digits; returns (value, digits read).
fn digits(b: &[u8], max: usize) -> (u64, usize) {
    let mut v = 0u64;
    let mut n = 0;
    while n < max && n < b.len() && b[n].is_ascii_digit() {
        v = v * 10 + (b[n] - b'0') as u64;
        n += 1;
    }
    (v, n)
}

/// `YYYY-MM-DD` (year of 4 to 6 digits, month and day of 1 or 2) at the
/// start of `b`: (days since the epoch, bytes read).
fn parse_date(b: &[u8]) -> Option<(i64, usize)> {
    let (y, ny) = digits(b, 6);
    if ny < 4 || b.get(ny) != Some(&b'-') {
        return None;
    }
    let mut i = ny + 1;
    let (m, nm) = digits(&b[i..], 2);
    if nm == 0 || b.get(i + nm) != Some(&b'-') {
        return None;
    }
    i += nm + 1;
    let (d, nd) = digits(&b[i..], 2);
    if nd == 0 {
        return None;
    }
    i += nd;
    let (y, m, d) = (y as i64, m as u32, d as u32);
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return None;
    }
    Some((days_from_civil(y, m, d), i))
}

/// `HH:MM[:SS[.fraction]]` at the start of `b`: (microseconds since
/// midnight, bytes read). Fractions beyond microseconds round half up;
/// 24:00:00 is allowed (as in PostgreSQL), as is a leap second 60.
fn parse_time(b: &[u8]) -> Option<(i64, usize)> {
    let (h, nh) = digits(b, 2);
    if nh == 0 || b.get(nh) != Some(&b':') {
        return None;
    }
    let mut i = nh + 1;
    let (mi, nm) = digits(&b[i..], 2);
    if nm != 2 {
        return None;
    }
    i += 2;
    let mut sec = 0;
    let mut us = 0i64;
    if b.get(i) == Some(&b':') {
        let (s, ns) = digits(&b[i + 1..], 2);
        if ns != 2 {
            return None;
        }
        sec = s;
        i += 3;
        if b.get(i) == Some(&b'.') {
            i += 1;
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let frac = &b[start..i];
            if frac.is_empty() {
                return None;
            }
            for k in 0..6 {
                us = us * 10 + frac.get(k).map_or(0, |d| (d - b'0') as i64);
            }
            if frac.get(6).is_some_and(|&d| d >= b'5') {
                us += 1;
            }
        }
    }
    if mi > 59 || sec > 60 || h > 24 || (h == 24 && (mi > 0 || sec > 0 || us > 0)) {
        return None;
    }
    Some((((h * 60 + mi) * 60 + sec) as i64 * 1_000_000 + us, i))
}

/// A UTC offset in seconds: `Z`, `UTC`, `GMT`, `±hh`, `±hh:mm`, `±hhmm`,
/// `±hh:mm:ss`. The whole of `b` must be the offset.
fn parse_offset(b: &[u8]) -> Option<i64> {
    if b.eq_ignore_ascii_case(b"z")
        || b.eq_ignore_ascii_case(b"utc")
        || b.eq_ignore_ascii_case(b"gmt")
    {
        return Some(0);
    }
    let sign = match b.first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let b = &b[1..];
    let (h, nh) = digits(b, 2);
    if nh == 0 {
        return None;
    }
    let mut rest = &b[nh..];
    let part = |rest: &mut &[u8]| -> Option<u64> {
        if rest.is_empty() {
            return Some(0);
        }
        if rest[0] == b':' {
            *rest = &rest[1..];
        }
        let (v, n) = digits(rest, 2);
        if n != 2 || v > 59 {
            return None;
        }
        *rest = &rest[2..];
        Some(v)
    };
    let m = part(&mut rest)?;
    let s = part(&mut rest)?;
    if !rest.is_empty() || h > 15 {
        return None;
    }
    Some(sign * (h * 3600 + m * 60 + s) as i64)
}

/// A timestamp in microseconds since the epoch: a date, optionally `T` or
/// spaces and a time, optionally an offset. With `with_tz` the offset
/// converts to UTC (none means UTC); without, it is ignored, as PostgreSQL
/// does for `timestamp without time zone`. A string of digits alone is
/// epoch milliseconds.
pub(crate) fn parse_timestamp(s: &str, with_tz: bool) -> Option<i64> {
    let b = s.as_bytes();
    if !b.is_empty()
        && b.iter()
            .enumerate()
            .all(|(i, c)| c.is_ascii_digit() || (i == 0 && *c == b'-'))
    {
        let ms: i64 = s.parse().ok()?;
        return ms.checked_mul(1000);
    }
    let (days, mut i) = parse_date(b)?;
    let mut us = 0;
    if i < b.len() {
        if b[i] == b'T' || b[i] == b't' {
            i += 1;
        } else if b[i] == b' ' {
            while b.get(i) == Some(&b' ') {
                i += 1;
            }
        } else {
            return None;
        }
        let (t, n) = parse_time(&b[i..])?;
        us = t;
        i += n;
    }
    let mut offset = 0;
    while b.get(i) == Some(&b' ') {
        i += 1;
    }
    if i < b.len() {
        offset = parse_offset(&b[i..])?;
    }
    let local = days.checked_mul(DAY_US)?.checked_add(us)?;
    if with_tz {
        local.checked_sub(offset * 1_000_000)
    } else {
        Some(local)
    }
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// PostgreSQL's bytea hex format after `\x`: digit pairs, whitespace
/// allowed between pairs.
fn decode_hex(b: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let hi = hex_val(b[i])?;
        let lo = hex_val(*b.get(i + 1)?)?;
        out.push(hi << 4 | lo);
        i += 2;
    }
    Some(())
}

/// Unescapes a JSON string's content (between the quotes; escapes already
/// checked by serde_json except for surrogate pairing) onto `out`.
pub(crate) fn unescape_json(s: &str, out: &mut String) -> Result<(), String> {
    let b = s.as_bytes();
    let mut i = 0;
    while let Some(k) = memchr::memchr(b'\\', &b[i..]) {
        out.push_str(&s[i..i + k]);
        i += k + 1;
        let c = b[i];
        i += 1;
        match c {
            b'"' => out.push('"'),
            b'\\' => out.push('\\'),
            b'/' => out.push('/'),
            b'b' => out.push('\u{8}'),
            b'f' => out.push('\u{c}'),
            b'n' => out.push('\n'),
            b'r' => out.push('\r'),
            b't' => out.push('\t'),
            b'u' => {
                let hex = |at: usize| -> Option<u32> {
                    let h = b.get(at..at + 4)?;
                    let mut v = 0u32;
                    for &c in h {
                        v = v << 4 | hex_val(c)? as u32;
                    }
                    Some(v)
                };
                let bad = || "invalid Unicode escape in a JSON string".to_string();
                let hi = hex(i).ok_or_else(bad)?;
                i += 4;
                let code = if (0xD800..0xDC00).contains(&hi) {
                    if b.get(i..i + 2) != Some(b"\\u") {
                        return Err(bad());
                    }
                    let lo = hex(i + 2).ok_or_else(bad)?;
                    if !(0xDC00..0xE000).contains(&lo) {
                        return Err(bad());
                    }
                    i += 6;
                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                } else if (0xDC00..0xE000).contains(&hi) {
                    return Err(bad());
                } else if hi == 0 {
                    // PostgreSQL text cannot hold NUL.
                    return Err("\\u0000 cannot be converted to text".into());
                } else {
                    hi
                };
                out.push(char::from_u32(code).ok_or_else(bad)?);
            }
            _ => return Err("invalid escape in a JSON string".into()),
        }
    }
    out.push_str(&s[i..]);
    Ok(())
}

/// Valid JSON text without the whitespace between tokens: borrowed when
/// there is none (the usual case for machine-written JSON), otherwise
/// written compactly to `out`. Key order, duplicate keys and number
/// spelling are kept as sent.
fn compact_json(raw: &str, loc: Loc, out: &mut String) -> Slot {
    let b = raw.as_bytes();
    let is_ws = |c: u8| matches!(c, b' ' | b'\t' | b'\n' | b'\r');
    let mut in_string = false;
    let mut escaped = false;
    let mut first_ws = None;
    for (i, &c) in b.iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
            } else if c == b'"' {
                in_string = false;
            }
        } else if c == b'"' {
            in_string = true;
        } else if is_ws(c) {
            first_ws = Some(i);
            break;
        }
    }
    let Some(first_ws) = first_ws else {
        return Slot::Str(loc);
    };
    let start = out.len();
    out.push_str(&raw[..first_ws]);
    let mut segment = first_ws;
    for (i, &c) in b.iter().enumerate().skip(first_ws) {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
            } else if c == b'"' {
                in_string = false;
            }
        } else if c == b'"' {
            in_string = true;
        } else if is_ws(c) {
            out.push_str(&raw[segment..i]);
            segment = i + 1;
        }
    }
    out.push_str(&raw[segment..]);
    Slot::Str(Loc {
        buf: Buf::Derived,
        start: start as u32,
        end: out.len() as u32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str, scale: u32) -> Option<i128> {
        decimal_text(s.as_bytes())?.scaled(scale, true)
    }

    #[test]
    fn decimals_round_half_away_from_zero_without_f64() {
        assert_eq!(dec("1.005", 2), Some(101));
        assert_eq!(dec("-1.005", 2), Some(-101));
        assert_eq!(dec("1.004999", 2), Some(100));
        assert_eq!(dec("12.5e-1", 0), Some(1));
        assert_eq!(dec("1.5", 0), Some(2));
        assert_eq!(dec("1e2", 2), Some(10000));
        assert_eq!(dec("0.000", 3), Some(0));
        assert_eq!(dec("0.05", 0), Some(0));
        assert_eq!(dec("0.5", 0), Some(1));
        assert_eq!(dec("5e-2", 0), Some(0));
        assert_eq!(dec("-0.5", 0), Some(-1));
        assert_eq!(dec("0e999999", 3), Some(0));
        assert_eq!(dec("1e999999", 3), None);
        assert_eq!(dec("1e-999999", 3), Some(0));
        assert_eq!(
            dec("99999999999999999999999999999999999999", 0),
            Some(99_999_999_999_999_999_999_999_999_999_999_999_999)
        );
        assert_eq!(dec("999999999999999999999999999999999999999", 0), None);
        assert_eq!(
            dec("0000000000000000000000000000000000000000001", 0),
            Some(1)
        );
        assert_eq!(dec("9007199254740993", 0), Some(9_007_199_254_740_993));
        assert!(decimal_text(b"1.2.3").is_none());
        assert!(decimal_text(b"").is_none());
        assert!(decimal_text(b".").is_none());
        assert!(decimal_text(b"1e").is_none());
    }

    #[test]
    fn integers_are_exact_and_integral() {
        assert_eq!(integer(Kind::Int64, "-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(integer(Kind::Int64, "9223372036854775807"), Ok(i64::MAX));
        assert!(integer(Kind::Int64, "9223372036854775808").is_err());
        assert_eq!(integer(Kind::Int64, "1.0"), Ok(1));
        assert_eq!(integer(Kind::Int64, "1e3"), Ok(1000));
        assert_eq!(
            integer(Kind::Int64, "1.5"),
            Err("1.5 is not an integer".to_string())
        );
        assert_eq!(integer(Kind::Int64, "+7"), Ok(7));
        assert!(integer(Kind::Int64, "-").is_err());
    }

    #[test]
    fn booleans_as_postgresql_reads_them() {
        for t in ["t", "TRUE", "tr", "yes", "Y", "on", "1", " true "] {
            assert_eq!(parse_bool(t), Some(true), "{t}");
        }
        for f in ["f", "False", "no", "N", "off", "0"] {
            assert_eq!(parse_bool(f), Some(false), "{f}");
        }
        for bad in ["", "o", "of", "onn", "2", "truex", "yess"] {
            assert_eq!(parse_bool(bad), None, "{bad}");
        }
    }

    #[test]
    fn timestamps_and_offsets() {
        let base = parse_timestamp("2024-02-29 12:34:56", false).unwrap();
        assert_eq!(base, 1_709_210_096_000_000);
        assert_eq!(parse_timestamp("2024-02-29T12:34:56", false), Some(base));
        assert_eq!(parse_timestamp("2024-02-29T12:34:56Z", true), Some(base));
        assert_eq!(parse_timestamp("2024-02-29T14:34:56+02", true), Some(base));
        assert_eq!(
            parse_timestamp("2024-02-29T10:04:56-02:30", true),
            Some(base)
        );
        assert_eq!(
            parse_timestamp("2024-02-29T14:34:56+0200", true),
            Some(base)
        );
        // TIMESTAMP ignores the offset.
        assert_eq!(
            parse_timestamp("2024-02-29 12:34:56+05:00", false),
            Some(base)
        );
        assert_eq!(
            parse_timestamp("2024-02-29 12:34:56.1234565", false),
            Some(base + 123_457)
        );
        assert_eq!(
            parse_timestamp("2024-02-29 12:34:56.9999995", false),
            Some(base + 1_000_000)
        );
        assert_eq!(parse_timestamp("1970-01-01", true), Some(0));
        assert_eq!(
            parse_timestamp("1700000000123", true),
            Some(1_700_000_000_123_000)
        );
        assert_eq!(parse_timestamp("2023-02-29 00:00:00", false), None);
        assert_eq!(parse_timestamp("2024-01-01 25:00:00", false), None);
        assert_eq!(parse_timestamp("2024-01-01x", false), None);
        assert_eq!(parse_timestamp("2024-01-01 10:00:00+", true), None);
    }

    #[test]
    fn unescaping_handles_surrogate_pairs() {
        let mut out = String::new();
        unescape_json(r#"a\"b\\c\/\n\u00e9\ud83d\ude00"#, &mut out).unwrap();
        assert_eq!(out, "a\"b\\c/\né😀");
        assert!(unescape_json(r"\ud83d", &mut String::new()).is_err());
        assert!(unescape_json(r"\ude00", &mut String::new()).is_err());
        assert!(unescape_json(r"\u0000", &mut String::new()).is_err());
    }

    #[test]
    fn compaction_keeps_whitespace_inside_strings() {
        let raw = "{ \"a b\" : [1, 2 ,\"x \\\" y\"] }";
        let mut out = String::new();
        let loc = Loc {
            buf: Buf::Payload,
            start: 0,
            end: raw.len() as u32,
        };
        let Slot::Str(l) = compact_json(raw, loc, &mut out) else {
            panic!()
        };
        assert_eq!(
            &out[l.start as usize..l.end as usize],
            r#"{"a b":[1,2,"x \" y"]}"#
        );
        assert_eq!(compact_json("[1,2]", loc, &mut out), Slot::Str(loc));
    }
}
