//! Exact arithmetic shared by incremental aggregation ([`super::ops::hash_agg`])
//! and the batch aggregates registered in DataFusion
//! ([`crate::sql::pg_aggregates`]), so that a view and its query run as a
//! batch compute the same numbers, bit for bit, whatever the history of
//! inserts and deletes.
//!
//! - [`ExactSum`]: a fixed-point superaccumulator over the whole `f64`
//!   range. Adding and retracting a double are exact, so after
//!   `+1e20 +1 +2 -1e20` the sum is exactly 3; the result is the exact sum
//!   rounded once to the nearest double. Infinities and NaNs are counted,
//!   so they retract too.
//! - [`Moments`]: count, exact Σx and Σx² of doubles (x² split exactly into
//!   two doubles with an FMA), from which the variance is computed around
//!   the mean (never `n·Σx² − (Σx)²` in floating point).
//! - [`pg_numeric_div`]: PostgreSQL's numeric division as `avg(numeric)`
//!   and `avg(integer)` use it: the result scale of `select_div_scale`
//!   (at least 16 significant digits), rounded half away from zero.

use datafusion::arrow::datatypes::{DataType, i256};
use datafusion::scalar::ScalarValue;

use crate::error::{Error, Result};

/// Bits below the binary point: the smallest double is 2^-1074.
const BIAS: i32 = 1088;
/// Radix 2^56 digits in i64: 64 additions fit before carries must move.
const DIGIT_BITS: i32 = 56;
/// 2^-1088 .. 2^1152: every double, and sums of up to 2^63 of them.
const DIGITS: usize = 40;
const CARRY_EVERY: u32 = 64;

/// An exact sum of doubles with retraction.
#[derive(Clone, Debug, PartialEq)]
pub struct ExactSum {
    digits: Box<[i64; DIGITS]>,
    pending: u32,
    pos_inf: i64,
    neg_inf: i64,
    nan: i64,
}

impl Default for ExactSum {
    fn default() -> Self {
        ExactSum {
            digits: Box::new([0; DIGITS]),
            pending: 0,
            pos_inf: 0,
            neg_inf: 0,
            nan: 0,
        }
    }
}

impl ExactSum {
    /// Adds `x` `weight` times (weight ±1 for an insert or a delete).
    pub fn add(&mut self, x: f64, weight: i64) {
        if !x.is_finite() {
            let c = if x.is_nan() {
                &mut self.nan
            } else if x > 0.0 {
                &mut self.pos_inf
            } else {
                &mut self.neg_inf
            };
            *c += weight;
            return;
        }
        if x == 0.0 {
            return;
        }
        let bits = x.to_bits();
        let exp = ((bits >> 52) & 0x7ff) as i32;
        let frac = bits & ((1u64 << 52) - 1);
        // x = mantissa · 2^e exactly.
        let (mantissa, e) = if exp == 0 {
            (frac, -1074)
        } else {
            (frac | (1u64 << 52), exp - 1075)
        };
        let offset = e + BIAS;
        let digit = (offset / DIGIT_BITS) as usize;
        let shift = offset % DIGIT_BITS;
        let wide = (mantissa as u128) << shift;
        let mask = (1u128 << DIGIT_BITS) - 1;
        let lo = (wide & mask) as i64;
        let hi = (wide >> DIGIT_BITS) as i64;
        let sign = if x < 0.0 { -weight } else { weight };
        // |weight| is 1 in practice; a larger one is applied one unit at a
        // time so digits never overflow.
        for _ in 0..sign.unsigned_abs() {
            let s = sign.signum();
            self.digits[digit] += s * lo;
            self.digits[digit + 1] += s * hi;
            self.pending += 1;
            if self.pending >= CARRY_EVERY {
                self.carry();
            }
        }
    }

    /// Adds another sum (for merging partial aggregates).
    pub fn merge(&mut self, other: &ExactSum) {
        self.carry();
        let mut o = other.clone();
        o.carry();
        for (a, b) in self.digits.iter_mut().zip(o.digits.iter()) {
            *a += *b;
        }
        self.pending = 2;
        self.carry();
        self.pos_inf += o.pos_inf;
        self.neg_inf += o.neg_inf;
        self.nan += o.nan;
    }

    /// Moves carries up so every digit but the top is in [0, 2^56).
    fn carry(&mut self) {
        let mut carry = 0i64;
        for d in self.digits.iter_mut() {
            let v = *d + carry;
            carry = v >> DIGIT_BITS;
            *d = v - (carry << DIGIT_BITS);
        }
        self.digits[DIGITS - 1] += carry << DIGIT_BITS;
        self.pending = 0;
    }

    /// Whether no finite value is left (all digits zero).
    fn is_zero(&self) -> bool {
        self.digits.iter().all(|d| *d == 0)
    }

    /// The sum rounded once to the nearest double (ties to even). `None`
    /// when the finite part does not fit in a double (PostgreSQL raises
    /// "value out of range: overflow" there).
    pub fn value(&self) -> Option<f64> {
        if self.nan > 0 || (self.pos_inf > 0 && self.neg_inf > 0) {
            return Some(f64::NAN);
        }
        if self.pos_inf > 0 {
            return Some(f64::INFINITY);
        }
        if self.neg_inf > 0 {
            return Some(f64::NEG_INFINITY);
        }
        let mut s = self.clone();
        s.carry();
        if s.is_zero() {
            return Some(0.0);
        }
        let negative = s.digits[DIGITS - 1] < 0;
        if negative {
            // Two's complement of the digit string: negate, then carry.
            for d in s.digits.iter_mut() {
                *d = -*d;
            }
            s.carry();
        }
        // Magnitude as base-2^56 digits, all in [0, 2^56) now.
        let top = s.digits.iter().rposition(|d| *d != 0)?;
        let top_bits = 64 - (s.digits[top] as u64).leading_zeros() as i32;
        // Position (from 2^-BIAS) of the highest set bit.
        let msb = top as i32 * DIGIT_BITS + top_bits - 1;
        // Collect the 64 bits below and including msb, and a sticky bit.
        let bit = |i: i32| -> u64 {
            if i < 0 {
                return 0;
            }
            let d = (i / DIGIT_BITS) as usize;
            ((s.digits[d] as u64) >> (i % DIGIT_BITS)) & 1
        };
        let exponent = msb - BIAS; // value in [2^exponent, 2^(exponent+1))
        let magnitude = if exponent < -1022 {
            // Subnormal: a multiple of 2^-1074 below 2^-1022 is exact.
            // Bits start at 2^-1088: the 14 below 2^-1074 are zero because
            // every input was a multiple of 2^-1074.
            let mut m = 0u64;
            for i in ((BIAS - 1074)..=msb).rev() {
                m = (m << 1) | bit(i);
            }
            f64::from_bits(m)
        } else {
            let mut m = 0u64;
            for i in (msb - 52..=msb).rev() {
                m = (m << 1) | bit(i);
            }
            let round = bit(msb - 53);
            let below = msb - 53; // bits [0, below) only decide ties
            let sticky = below > 0 && {
                let d = (below / DIGIT_BITS) as usize;
                let r = below % DIGIT_BITS;
                s.digits[..d].iter().any(|x| *x != 0) || (s.digits[d] & ((1i64 << r) - 1)) != 0
            };
            let mut exponent = exponent;
            if round == 1 && (sticky || m & 1 == 1) {
                m += 1;
                if m == 1u64 << 53 {
                    m >>= 1;
                    exponent += 1;
                }
            }
            if exponent > 1023 {
                return None;
            }
            f64::from_bits((((exponent + 1023) as u64) << 52) | (m & ((1u64 << 52) - 1)))
        };
        Some(if negative { -magnitude } else { magnitude })
    }

    /// Serialized form for DataFusion's partial aggregate state.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut s = self.clone();
        s.carry();
        let mut out = Vec::with_capacity(DIGITS * 8 + 24);
        for d in s.digits.iter() {
            out.extend_from_slice(&d.to_le_bytes());
        }
        for c in [s.pos_inf, s.neg_inf, s.nan] {
            out.extend_from_slice(&c.to_le_bytes());
        }
        out
    }

    pub fn from_bytes(b: &[u8]) -> Result<ExactSum> {
        if b.len() != DIGITS * 8 + 24 {
            return Err(Error::Internal("malformed exact sum state".into()));
        }
        let word = |i: usize| i64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        let mut s = ExactSum::default();
        for i in 0..DIGITS {
            s.digits[i] = word(i);
        }
        s.pos_inf = word(DIGITS);
        s.neg_inf = word(DIGITS + 1);
        s.nan = word(DIGITS + 2);
        Ok(s)
    }
}

/// Count, Σx and Σx² of doubles, exactly.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Moments {
    pub n: i64,
    pub sum: ExactSum,
    pub sumsq: ExactSum,
}

/// Which second moment to finish with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Spread {
    VarSamp,
    VarPop,
    StddevSamp,
    StddevPop,
}

impl Moments {
    pub fn add(&mut self, x: f64, weight: i64) {
        self.n += weight;
        self.sum.add(x, weight);
        let sq = x * x;
        // x² = sq + err exactly (unless it overflows or underflows).
        let err = x.mul_add(x, -sq);
        self.sumsq.add(sq, weight);
        if sq.is_finite() {
            self.sumsq.add(err, weight);
        }
    }

    pub fn merge(&mut self, other: &Moments) {
        self.n += other.n;
        self.sum.merge(&other.sum);
        self.sumsq.merge(&other.sumsq);
    }

    /// The variance or standard deviation; `Ok(None)` where SQL says NULL.
    ///
    /// Σ(x−m)² = Σx² − n·m² − 2·m·(Σx − n·m) holds for any m; with m the
    /// rounded mean every term but the last is added exactly, so no
    /// cancellation is left.
    pub fn spread(&self, kind: Spread) -> Result<Option<f64>> {
        let n = self.n;
        let divisor = match kind {
            Spread::VarSamp | Spread::StddevSamp if n > 1 => (n - 1) as f64,
            Spread::VarPop | Spread::StddevPop if n > 0 => n as f64,
            _ => return Ok(None),
        };
        let sum = self.sum.value().ok_or_else(overflow)?;
        if !sum.is_finite() {
            return Ok(Some(f64::NAN));
        }
        let nf = n as f64;
        let mean = sum / nf;
        // D = Σx − n·m, exactly then rounded.
        let mut d = self.sum.clone();
        let (p, e) = two_product(nf, mean);
        d.add(p, -1);
        d.add(e, -1);
        let d = d.value().ok_or_else(overflow)?;
        // Σx² − n·m², exactly: n·(a + b) with m² = a + b.
        let mut r = self.sumsq.clone();
        let (a, b) = two_product(mean, mean);
        for part in [two_product(nf, a), two_product(nf, b)] {
            r.add(part.0, -1);
            r.add(part.1, -1);
        }
        r.add(2.0 * mean * d, -1);
        let ss = r.value().ok_or_else(overflow)?;
        if ss.is_nan() {
            return Ok(Some(f64::NAN));
        }
        let var = (ss / divisor).max(0.0);
        Ok(Some(match kind {
            Spread::StddevSamp | Spread::StddevPop => var.sqrt(),
            _ => var,
        }))
    }
}

/// a·b = p + e exactly (when finite).
fn two_product(a: f64, b: f64) -> (f64, f64) {
    let p = a * b;
    if !p.is_finite() {
        return (p, 0.0);
    }
    (p, a.mul_add(b, -p))
}

/// PostgreSQL's "numeric field overflow" (22003).
pub fn overflow() -> Error {
    Error::NumericOverflow("value out of range: overflow".into())
}

fn pow10(k: u32) -> i256 {
    i256::from_i128(10).wrapping_pow(k)
}

/// Decimal digits of |v| (v ≠ 0).
fn digits(v: i256) -> u32 {
    let mut v = v.wrapping_abs();
    let ten = i256::from_i128(10);
    let mut n = 0;
    while v != i256::ZERO {
        v = v.wrapping_div(ten);
        n += 1;
    }
    n
}

/// Weight and first digit of `unscaled · 10^-scale` in base 10000, as
/// PostgreSQL's NumericVar holds it.
fn base10000(unscaled: i256, scale: u32) -> (i32, i64) {
    let msd = digits(unscaled) as i32 - 1 - scale as i32;
    let weight = msd.div_euclid(4);
    // First base-10000 digit: |v| / 10000^weight, truncated.
    let shift = scale as i32 + 4 * weight;
    let abs = unscaled.wrapping_abs();
    let first = if shift >= 0 {
        abs.wrapping_div(pow10(shift as u32))
    } else {
        abs.wrapping_mul(pow10((-shift) as u32))
    };
    (weight, first.as_i128() as i64)
}

/// The number of fractional digits a value shows without trailing zeros.
pub fn natural_scale(unscaled: i128, scale: i8) -> u32 {
    if unscaled == 0 || scale <= 0 {
        return 0;
    }
    let mut v = unscaled;
    let mut s = scale as u32;
    while s > 0 && v % 10 == 0 {
        v /= 10;
        s -= 1;
    }
    s
}

/// `num / den` as PostgreSQL's `numeric_div` computes it, where `num` is
/// `num_unscaled · 10^-num_scale` with display scale `num_dscale` and `den`
/// a positive integer count; the result is returned unscaled at
/// `out_scale`. PostgreSQL rounds at its result scale (at least 16
/// significant digits); where that scale exceeds `out_scale` the result is
/// rounded at `out_scale` instead. Fails with 22003 when the result does
/// not fit in 38 digits.
pub fn pg_numeric_div(
    num_unscaled: i128,
    num_scale: u32,
    num_dscale: u32,
    den: i64,
    out_scale: u32,
) -> Result<i128> {
    pg_div(
        Decimal {
            unscaled: num_unscaled,
            scale: num_scale,
            dscale: num_dscale,
        },
        Decimal {
            unscaled: den as i128,
            scale: 0,
            dscale: 0,
        },
        out_scale,
    )
}

/// A decimal operand: `unscaled · 10^-scale`, shown with `dscale` digits.
#[derive(Debug, Clone, Copy)]
pub struct Decimal {
    pub unscaled: i128,
    pub scale: u32,
    pub dscale: u32,
}

/// PostgreSQL's numeric division of two decimals, as [`pg_numeric_div`].
pub fn pg_div(num: Decimal, den: Decimal, out_scale: u32) -> Result<i128> {
    if den.unscaled == 0 {
        return Err(Error::DivisionByZero);
    }
    if num.unscaled == 0 {
        return Ok(0);
    }
    let n0 = i256::from_i128(num.unscaled);
    let d0 = i256::from_i128(den.unscaled);
    let (w1, f1) = base10000(n0, num.scale);
    let (w2, f2) = base10000(d0, den.scale);
    let mut qweight = w1 - w2;
    if f1 <= f2 {
        qweight -= 1;
    }
    let rscale = (16 - qweight * 4)
        .max(num.dscale as i32)
        .max(den.dscale as i32)
        .clamp(0, 1000) as u32;
    let at = rscale.min(out_scale);
    // q = round(num / den · 10^at), half away from zero:
    // (n0 · 10^(at + den.scale)) / (d0 · 10^num.scale).
    let up = at + den.scale;
    let (n, d) = if up >= num.scale {
        (
            n0.checked_mul(pow10(up - num.scale)).ok_or_else(overflow)?,
            d0,
        )
    } else {
        (
            n0,
            d0.checked_mul(pow10(num.scale - up)).ok_or_else(overflow)?,
        )
    };
    let q = n.wrapping_div(d);
    let r = n.wrapping_rem(d);
    let twice = r.wrapping_abs().wrapping_mul(i256::from_i128(2));
    let q = if twice >= d.wrapping_abs() {
        if n.is_negative() != d.is_negative() {
            q.wrapping_sub(i256::ONE)
        } else {
            q.wrapping_add(i256::ONE)
        }
    } else {
        q
    };
    let q = q.checked_mul(pow10(out_scale - at)).ok_or_else(overflow)?;
    let q = q.to_i128().ok_or_else(overflow)?;
    check_precision(q)
}

/// Fails with 22003 unless `unscaled` fits in 38 decimal digits.
pub fn check_precision(unscaled: i128) -> Result<i128> {
    const MAX: i128 = 99_999_999_999_999_999_999_999_999_999_999_999_999;
    if unscaled.abs() > MAX {
        return Err(Error::NumericOverflow("numeric field overflow".into()));
    }
    Ok(unscaled)
}

/// Exact n·Σx² − (Σx)² of integers, for their variance.
pub fn int_spread(n: i64, sum: i128, sumsq: i256, kind: Spread) -> Option<f64> {
    let divisor = match kind {
        Spread::VarSamp | Spread::StddevSamp if n > 1 => (n as f64) * ((n - 1) as f64),
        Spread::VarPop | Spread::StddevPop if n > 0 => (n as f64) * (n as f64),
        _ => return None,
    };
    let s = i256::from_i128(sum);
    let num = i256::from_i128(n as i128)
        .wrapping_mul(sumsq)
        .wrapping_sub(s.wrapping_mul(s));
    let num = i256_to_f64(num);
    let var = (num / divisor).max(0.0);
    Some(match kind {
        Spread::StddevSamp | Spread::StddevPop => var.sqrt(),
        _ => var,
    })
}

/// i256 to the nearest double (through its decimal text, which is exact
/// and rounded once by the float parser).
fn i256_to_f64(v: i256) -> f64 {
    if let Some(small) = v.to_i128() {
        // Two halves: hi·2^64 + lo, each exact, one rounding at the add
        // unless the value fits 64 bits.
        if let Ok(x) = i64::try_from(small) {
            return x as f64;
        }
    }
    v.to_string().parse::<f64>().unwrap_or(f64::NAN)
}

/// The numeric aggregates computed with PostgreSQL's types and digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NumericFunc {
    Sum,
    Avg,
    Spread(Spread),
}

/// How an aggregate reads its argument: integers (any width, as i128),
/// decimals (unscaled i128 at a scale) or doubles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumericInput {
    Int,
    /// `unconstrained`: a bare NUMERIC column (stored at scale 10), whose
    /// values show only their own digits.
    Decimal {
        scale: i8,
        unconstrained: bool,
    },
    Float,
}

impl NumericInput {
    /// How a column of this type is aggregated, if it is numeric.
    pub fn of(t: &DataType) -> Option<NumericInput> {
        Some(match t {
            t if t.is_integer() => NumericInput::Int,
            DataType::Decimal128(p, s) => NumericInput::Decimal {
                scale: *s,
                unconstrained: (*p, *s) == UNCONSTRAINED_NUMERIC,
            },
            t if t.is_floating() => NumericInput::Float,
            _ => return None,
        })
    }
}

/// Precision and scale a bare `NUMERIC` column is stored with.
pub const UNCONSTRAINED_NUMERIC: (u8, i8) = (38, 10);

/// PostgreSQL's result type of `func` over `arg` (after coercion: Int32 for
/// smallint/integer, Int64, Decimal128, Float64).
pub fn pg_return_type(func: NumericFunc, arg: &DataType) -> Option<DataType> {
    use DataType::*;
    Some(match (func, arg) {
        (NumericFunc::Spread(_), _) => Float64,
        (NumericFunc::Sum, Int8 | Int16 | Int32 | UInt8 | UInt16) => Int64,
        (NumericFunc::Sum, Int64 | UInt32 | UInt64) => Decimal128(38, 0),
        (NumericFunc::Sum, Decimal128(_, s)) => Decimal128(38, *s),
        (NumericFunc::Avg, Int8 | Int16 | Int32 | UInt8 | UInt16) => Decimal128(38, 28),
        (NumericFunc::Avg, Int64 | UInt32 | UInt64) => Decimal128(38, 19),
        (NumericFunc::Avg, Decimal128(_, s)) => Decimal128(38, (*s).max(20)),
        (NumericFunc::Sum | NumericFunc::Avg, Float16 | Float32 | Float64) => Float64,
        _ => return None,
    })
}

/// Running state of one numeric aggregate, with retraction.
#[derive(Debug, Clone, PartialEq)]
pub enum NumState {
    Int { n: i64, sum: i128 },
    IntMoments { n: i64, sum: i128, sumsq: i256 },
    Float { n: i64, sum: ExactSum },
    FloatMoments(Moments),
}

/// A numeric aggregate: what it computes, over what, into which type.
#[derive(Debug, Clone, PartialEq)]
pub struct NumericAgg {
    pub func: NumericFunc,
    pub input: NumericInput,
    pub output: DataType,
}

impl NumericAgg {
    pub fn new_state(&self) -> NumState {
        match (self.func, self.input) {
            (NumericFunc::Spread(_), NumericInput::Float) => {
                NumState::FloatMoments(Moments::default())
            }
            (NumericFunc::Spread(_), _) => NumState::IntMoments {
                n: 0,
                sum: 0,
                sumsq: i256::ZERO,
            },
            (_, NumericInput::Float) => NumState::Float {
                n: 0,
                sum: ExactSum::default(),
            },
            _ => NumState::Int { n: 0, sum: 0 },
        }
    }

    /// Adds (weight 1) or retracts (weight −1) an integer or an unscaled
    /// decimal.
    pub fn add_int(st: &mut NumState, v: i128, weight: i64) {
        match st {
            NumState::Int { n, sum } => {
                *n += weight;
                *sum += v * weight as i128;
            }
            NumState::IntMoments { n, sum, sumsq } => {
                *n += weight;
                *sum += v * weight as i128;
                let sq = i256::from_i128(v).wrapping_mul(i256::from_i128(v));
                *sumsq = if weight >= 0 {
                    sumsq.wrapping_add(sq)
                } else {
                    sumsq.wrapping_sub(sq)
                };
            }
            NumState::Float { n, sum } => {
                *n += weight;
                sum.add(v as f64, weight);
            }
            NumState::FloatMoments(m) => m.add(v as f64, weight),
        }
    }

    pub fn add_float(st: &mut NumState, v: f64, weight: i64) {
        match st {
            NumState::Float { n, sum } => {
                *n += weight;
                sum.add(v, weight);
            }
            NumState::FloatMoments(m) => m.add(v, weight),
            // Not reached: float inputs get float states.
            other => Self::add_int(other, v as i128, weight),
        }
    }

    /// The aggregate's value in its output type; NULL over no rows.
    pub fn finish(&self, st: &NumState) -> Result<ScalarValue> {
        let null = || ScalarValue::try_from(&self.output).map_err(Error::from);
        let scale = match self.input {
            NumericInput::Decimal { scale, .. } => scale.max(0) as u32,
            _ => 0,
        };
        match (self.func, st) {
            (_, NumState::Int { n: 0, .. } | NumState::Float { n: 0, .. }) => null(),
            (NumericFunc::Sum, NumState::Int { sum, .. }) => match &self.output {
                DataType::Int64 => i64::try_from(*sum)
                    .map(|v| ScalarValue::Int64(Some(v)))
                    .map_err(|_| Error::NumericOverflow("bigint out of range".into())),
                DataType::Decimal128(p, s) => {
                    let v = rescale(*sum, scale, (*s).max(0) as u32)?;
                    Ok(ScalarValue::Decimal128(Some(check_precision(v)?), *p, *s))
                }
                other => Ok(ScalarValue::Decimal128(Some(*sum), 38, scale as i8).cast_to(other)?),
            },
            (NumericFunc::Avg, NumState::Int { n, sum }) => match &self.output {
                DataType::Decimal128(p, s) => {
                    let dscale = match self.input {
                        NumericInput::Decimal {
                            unconstrained: true,
                            scale,
                        } => natural_scale(*sum, scale),
                        _ => scale,
                    };
                    let v = pg_numeric_div(*sum, scale, dscale, *n, (*s).max(0) as u32)?;
                    Ok(ScalarValue::Decimal128(Some(v), *p, *s))
                }
                other => {
                    let v = *sum as f64 / 10f64.powi(scale as i32) / *n as f64;
                    Ok(ScalarValue::Float64(Some(v)).cast_to(other)?)
                }
            },
            (NumericFunc::Sum, NumState::Float { sum, .. }) => Ok(ScalarValue::Float64(Some(
                sum.value().ok_or_else(overflow)?,
            ))),
            (NumericFunc::Avg, NumState::Float { n, sum }) => Ok(ScalarValue::Float64(Some(
                sum.value().ok_or_else(overflow)? / *n as f64,
            ))),
            (NumericFunc::Spread(kind), NumState::IntMoments { n, sum, sumsq }) => {
                let v = int_spread(*n, *sum, *sumsq, kind).map(|v| match kind {
                    Spread::StddevSamp | Spread::StddevPop => v / 10f64.powi(scale as i32),
                    _ => v / 10f64.powi(2 * scale as i32),
                });
                Ok(ScalarValue::Float64(v))
            }
            (NumericFunc::Spread(kind), NumState::FloatMoments(m)) => {
                Ok(ScalarValue::Float64(m.spread(kind)?))
            }
            _ => Err(Error::Internal("numeric aggregate state mismatch".into())),
        }
    }
}

impl NumState {
    /// Adds another partial state of the same aggregate.
    pub fn merge(&mut self, other: &NumState) -> Result<()> {
        match (self, other) {
            (NumState::Int { n, sum }, NumState::Int { n: n2, sum: s2 }) => {
                *n += n2;
                *sum += s2;
            }
            (
                NumState::IntMoments { n, sum, sumsq },
                NumState::IntMoments {
                    n: n2,
                    sum: s2,
                    sumsq: q2,
                },
            ) => {
                *n += n2;
                *sum += s2;
                *sumsq = sumsq.wrapping_add(*q2);
            }
            (NumState::Float { n, sum }, NumState::Float { n: n2, sum: s2 }) => {
                *n += n2;
                sum.merge(s2);
            }
            (NumState::FloatMoments(a), NumState::FloatMoments(b)) => a.merge(b),
            _ => return Err(Error::Internal("merging different aggregate states".into())),
        }
        Ok(())
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            NumState::Int { n, sum } => {
                out.push(0);
                out.extend_from_slice(&n.to_le_bytes());
                out.extend_from_slice(&sum.to_le_bytes());
            }
            NumState::IntMoments { n, sum, sumsq } => {
                out.push(1);
                out.extend_from_slice(&n.to_le_bytes());
                out.extend_from_slice(&sum.to_le_bytes());
                out.extend_from_slice(&sumsq.to_le_bytes());
            }
            NumState::Float { n, sum } => {
                out.push(2);
                out.extend_from_slice(&n.to_le_bytes());
                out.extend_from_slice(&sum.to_bytes());
            }
            NumState::FloatMoments(m) => {
                out.push(3);
                out.extend_from_slice(&m.n.to_le_bytes());
                out.extend_from_slice(&m.sum.to_bytes());
                out.extend_from_slice(&m.sumsq.to_bytes());
            }
        }
        out
    }

    pub fn from_bytes(b: &[u8]) -> Result<NumState> {
        let bad = || Error::Internal("malformed aggregate state".into());
        let n = i64::from_le_bytes(b.get(1..9).ok_or_else(bad)?.try_into().map_err(|_| bad())?);
        let rest = &b[9..];
        let i128_at = |r: &[u8]| -> Result<i128> {
            Ok(i128::from_le_bytes(
                r.get(..16).ok_or_else(bad)?.try_into().map_err(|_| bad())?,
            ))
        };
        let sum_len = DIGITS * 8 + 24;
        Ok(match b[0] {
            0 => NumState::Int {
                n,
                sum: i128_at(rest)?,
            },
            1 => NumState::IntMoments {
                n,
                sum: i128_at(rest)?,
                sumsq: i256::from_le_bytes(
                    rest.get(16..48)
                        .ok_or_else(bad)?
                        .try_into()
                        .map_err(|_| bad())?,
                ),
            },
            2 => NumState::Float {
                n,
                sum: ExactSum::from_bytes(rest)?,
            },
            3 => NumState::FloatMoments(Moments {
                n,
                sum: ExactSum::from_bytes(rest.get(..sum_len).ok_or_else(bad)?)?,
                sumsq: ExactSum::from_bytes(rest.get(sum_len..).ok_or_else(bad)?)?,
            }),
            _ => return Err(bad()),
        })
    }
}

/// An unscaled decimal moved from scale `from` to scale `to` (exact when
/// widening; PostgreSQL never narrows a sum).
fn rescale(v: i128, from: u32, to: u32) -> Result<i128> {
    if to >= from {
        v.checked_mul(10i128.checked_pow(to - from).ok_or_else(overflow)?)
            .ok_or_else(|| Error::NumericOverflow("numeric field overflow".into()))
    } else {
        Ok(v / 10i128.pow(from - to))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(xs: &[(f64, i64)]) -> f64 {
        let mut s = ExactSum::default();
        for (x, w) in xs {
            s.add(*x, *w);
        }
        s.value().unwrap()
    }

    #[test]
    fn retracting_a_huge_value_leaves_the_small_ones_exactly() {
        assert_eq!(sum(&[(1e20, 1), (1.0, 1), (2.0, 1), (1e20, -1)]), 3.0);
        assert_eq!(sum(&[(1e308, 1), (-1e308, 1), (1e-300, 1)]), 1e-300);
        assert_eq!(sum(&[(0.1, 1), (0.2, 1), (0.3, 1)]), 0.6);
        assert_eq!(sum(&[(-0.5, 1), (0.25, 1)]), -0.25);
        assert_eq!(
            sum(&[(f64::MIN_POSITIVE / 4.0, 1), (5e-324, 1)]),
            f64::MIN_POSITIVE / 4.0 + 5e-324
        );
        assert_eq!(sum(&[(f64::MAX, 1), (-f64::MAX, 1), (-1.5, 1)]), -1.5);
        assert!(sum(&[(f64::INFINITY, 1), (1.0, 1)]).is_infinite());
        assert_eq!(
            sum(&[(f64::INFINITY, 1), (1.0, 1), (f64::INFINITY, -1)]),
            1.0
        );
        assert!(sum(&[(f64::NAN, 1), (1.0, 1)]).is_nan());
        let mut s = ExactSum::default();
        s.add(f64::MAX, 1);
        s.add(f64::MAX, 1);
        assert_eq!(s.value(), None);
    }

    #[test]
    fn many_additions_carry_correctly() {
        let mut s = ExactSum::default();
        for i in 0..10_000 {
            s.add(i as f64 * 0.5, 1);
            s.add(-(i as f64) * 1e10, 1);
        }
        // Σi·(0.5 − 1e10) with Σi = 49,995,000, in integers.
        assert_eq!(s.value().unwrap(), -499_949_999_975_002_500i64 as f64);
        let round = ExactSum::from_bytes(&s.to_bytes()).unwrap();
        assert_eq!(round.value(), s.value());
    }

    #[test]
    fn variance_is_stable_around_a_large_mean() {
        let mut m = Moments::default();
        for x in [1e9 + 4.0, 1e9 + 7.0, 1e9 + 13.0, 1e9 + 16.0] {
            m.add(x, 1);
        }
        assert_eq!(m.spread(Spread::VarSamp).unwrap(), Some(30.0));
        m.add(1e300, 1);
        m.add(1e300, -1);
        assert_eq!(m.spread(Spread::VarPop).unwrap(), Some(22.5));
    }

    #[test]
    fn numeric_division_matches_postgresql_digits() {
        // avg(1, 2) = 1.5000000000000000
        assert_eq!(pg_numeric_div(3, 0, 0, 2, 20).unwrap(), 15 * 10i128.pow(19));
        // 2/3 = 0.66666666666666666667 (rscale 20)
        assert_eq!(
            pg_numeric_div(2, 0, 0, 3, 20).unwrap(),
            66666666666666666667
        );
        // 10/3 = 3.3333333333333333 (rscale 16), shown at scale 20
        assert_eq!(
            pg_numeric_div(10, 0, 0, 3, 20).unwrap(),
            333333333333333330000
        );
        // 2^63 / 2 at rscale 0; -7/2 rounds away from zero to -4 at scale 0
        assert_eq!(
            pg_numeric_div(1 << 63, 0, 0, 2, 19).unwrap(),
            (1i128 << 62) * 10i128.pow(19)
        );
        assert_eq!(pg_numeric_div(-7, 0, 0, 2, 0).unwrap(), -4);
        assert!(pg_numeric_div(i128::MAX / 2, 0, 0, 1, 19).is_err());
        // 4611686018427387904::numeric / 3 rounds to an integer (rscale 0).
        let d = |unscaled, scale| Decimal {
            unscaled,
            scale,
            dscale: scale,
        };
        assert_eq!(
            pg_div(d(4611686018427387904, 0), d(3, 0), 16).unwrap(),
            1537228672809129301 * 10i128.pow(16)
        );
        // 1 / -3 = -0.33333333333333333333; 7.50 / 2.5 = 3.0000000000000000
        assert_eq!(
            pg_div(d(1, 0), d(-3, 0), 20).unwrap(),
            -33333333333333333333
        );
        assert_eq!(pg_div(d(750, 2), d(25, 1), 16).unwrap(), 3 * 10i128.pow(16));
    }
}
