//! Numeric literals with exponents beyond what a 128-bit decimal holds.
//!
//! streamlake parses `1.5` as a numeric literal, as PostgreSQL does (so
//! `0.908 * price` is exact). PostgreSQL's numeric also takes `1e150` and
//! `1e-150`; DataFusion's decimals stop at 38 digits and refuse to plan such
//! a literal at all. Before parsing, each literal whose exponent is past
//! ±38 is written as `CAST('…' AS DOUBLE PRECISION)`: the value PostgreSQL
//! would use once it meets a double column or function, which is where
//! such literals appear.

use std::borrow::Cow;

/// Rewrites wide-exponent literals; text inside quotes and comments is
/// left alone.
pub fn wide_exponents(sql: &str) -> Cow<'_, str> {
    let b = sql.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            q @ (b'\'' | b'"') => {
                i += 1;
                while i < b.len() && b[i] != q {
                    i += 1;
                }
                i += 1;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            c if (c.is_ascii_digit() || c == b'.')
                && (i == 0
                    || !(b[i - 1].is_ascii_alphanumeric()
                        || b[i - 1] == b'_'
                        || b[i - 1] == b'$')) =>
            {
                let start = i;
                while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
                    i += 1;
                }
                if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
                    let mut j = i + 1;
                    if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
                        j += 1;
                    }
                    let digits = j;
                    while j < b.len() && b[j].is_ascii_digit() {
                        j += 1;
                    }
                    let wide = j > digits
                        && (j >= b.len() || !(b[j].is_ascii_alphanumeric() || b[j] == b'_'))
                        && sql[digits..j].parse::<u32>().map_or(true, |e| e > 38);
                    if wide {
                        let o = out.get_or_insert_with(String::new);
                        o.push_str(&sql[copied..start]);
                        o.push_str("CAST('");
                        o.push_str(&sql[start..j]);
                        o.push_str("' AS DOUBLE PRECISION)");
                        copied = j;
                    }
                    i = j;
                }
            }
            _ => i += 1,
        }
    }
    match out {
        None => Cow::Borrowed(sql),
        Some(mut o) => {
            o.push_str(&sql[copied..]);
            Cow::Owned(o)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::wide_exponents;

    #[test]
    fn only_wide_exponents_outside_quotes_become_doubles() {
        assert_eq!(
            wide_exponents("SELECT 1e150, -1E-150, 1e20, 'x 1e99', t1e99, 2.5e+300"),
            "SELECT CAST('1e150' AS DOUBLE PRECISION), -CAST('1E-150' AS DOUBLE PRECISION), \
             1e20, 'x 1e99', t1e99, CAST('2.5e+300' AS DOUBLE PRECISION)"
        );
        assert!(matches!(
            wide_exponents("SELECT 1.5"),
            std::borrow::Cow::Borrowed(_)
        ));
    }
}
