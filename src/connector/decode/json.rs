//! ENCODE JSON: one JSON object per record → one row of slots.
//!
//! serde_json walks the payload with our visitor ([`RowVisitor`]); it never
//! builds a `Value`. Keys are matched against the column names as borrowed
//! strings (serde_json unescapes escaped keys into its own buffer), values
//! of declared columns arrive as their exact text (`&RawValue`) and are
//! parsed by [`super::value::from_json`]; values of unknown keys are skipped
//! unparsed (`IgnoredAny`). The payload is checked for UTF-8 once, up front,
//! so serde_json can read it as a `str` without checking again.

use std::fmt;

use serde::Deserializer;
use serde::de::{DeserializeSeed, Error as _, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::Columns;
use super::value::{self, Out, Scratch, Slot};

/// Parses one record into `slots` (which the caller reset to NULL). On
/// error, returns the dead-letter text; the slots are then garbage.
pub(super) fn decode(
    text: &str,
    columns: &Columns,
    slots: &mut [Slot],
    scratch: &mut Scratch,
) -> Result<(), String> {
    let start = text.trim_start_matches([' ', '\t', '\n', '\r']);
    match start.as_bytes().first() {
        None => return Err("empty payload: expected a JSON object".into()),
        Some(b'{') => {}
        Some(&c) => {
            return Err(format!(
                "payload is not a JSON object (it starts with {})",
                what_starts_with(c)
            ));
        }
    }
    let mut error = None;
    let mut de = serde_json::Deserializer::from_str(text);
    let visitor = RowVisitor {
        columns,
        slots,
        scratch,
        base: text.as_ptr() as usize,
        error: &mut error,
    };
    if let Err(e) = de.deserialize_map(visitor) {
        return Err(error.unwrap_or_else(|| format!("invalid JSON: {e}")));
    }
    if de.end().is_err() {
        // Error path only: find where the first value ended.
        let mut values = serde_json::Deserializer::from_str(text).into_iter::<IgnoredAny>();
        let _ = values.next();
        let rest = text[values.byte_offset()..].trim_start_matches([' ', '\t', '\n', '\r']);
        return Err(match rest.as_bytes().first() {
            Some(b'{' | b'[') => "payload holds more than one JSON value".into(),
            _ => format!(
                "trailing characters after the JSON object: {}",
                value::shown(rest)
            ),
        });
    }
    Ok(())
}

fn what_starts_with(c: u8) -> &'static str {
    match c {
        b'[' => "an array",
        b'"' => "a string",
        b'-' | b'0'..=b'9' => "a number",
        b't' | b'f' => "a boolean",
        b'n' => "null",
        _ => "something that is not JSON",
    }
}

/// Visits the top-level object, filling the slots of declared columns.
struct RowVisitor<'a> {
    columns: &'a Columns,
    slots: &'a mut [Slot],
    scratch: &'a mut Scratch,
    /// Address of the payload text: raw values are located by pointer.
    base: usize,
    /// The real error, when ours (a bad value) aborted the walk.
    error: &'a mut Option<String>,
}

impl<'de> Visitor<'de> for RowVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut hint = 0;
        while let Some(found) = map.next_key_seed(KeySeed {
            columns: self.columns,
            hint,
        })? {
            let Some(i) = found else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            hint = i + 1;
            let raw: &'de RawValue = map.next_value()?;
            let raw = raw.get();
            let at = (raw.as_ptr() as usize - self.base) as u32;
            let out = Out {
                text: &mut self.scratch.text,
                bytes: &mut self.scratch.bytes,
            };
            match value::from_json(
                self.columns.kinds[i],
                raw,
                at,
                &mut self.scratch.unescaped,
                out,
            ) {
                Ok(slot) => self.slots[i] = slot,
                Err(msg) => {
                    *self.error = Some(format!("column \"{}\": {msg}", self.columns.names[i]));
                    return Err(A::Error::custom("bad value"));
                }
            }
        }
        Ok(())
    }
}

/// A key → the index of the column it names, if any.
struct KeySeed<'a> {
    columns: &'a Columns,
    hint: usize,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E>(self, key: &str) -> Result<Option<usize>, E> {
        Ok(self.columns.find(key, self.hint))
    }
}
