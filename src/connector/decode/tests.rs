//! Record decoder tests: every column type from JSON and CSV, NULLs, every
//! dead-letter case, and alignment after bad records.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Field, Float32Type, Float64Type, Int32Type, Int64Type,
    Schema, SchemaRef, Time64MicrosecondType, TimeUnit, TimestampMicrosecondType,
};

use super::*;

fn jsonb(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true).with_metadata(HashMap::from([(
        TYPE_METADATA_KEY.to_string(),
        JSONB.to_string(),
    )]))
}

/// One column of every type.
fn all_types() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("i", DataType::Int32, true),
        Field::new("l", DataType::Int64, true),
        Field::new("r", DataType::Float32, true),
        Field::new("d", DataType::Float64, true),
        Field::new("b", DataType::Boolean, true),
        Field::new("t", DataType::Utf8, true),
        Field::new("n", DataType::Decimal128(10, 2), true),
        Field::new("dt", DataType::Date32, true),
        Field::new("tm", DataType::Time64(TimeUnit::Microsecond), true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, None), true),
        Field::new(
            "tz",
            DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
            true,
        ),
        Field::new("by", DataType::Binary, true),
        jsonb("j"),
    ]))
}

fn json() -> RecordDecoder {
    RecordDecoder::new(all_types(), Encoding::Json).unwrap()
}

fn one(schema: Field) -> RecordDecoder {
    RecordDecoder::new(Arc::new(Schema::new(vec![schema])), Encoding::Json).unwrap()
}

fn csv(schema: SchemaRef) -> RecordDecoder {
    RecordDecoder::new(
        schema,
        Encoding::Csv {
            delimiter: b',',
            without_header: false,
        },
    )
    .unwrap()
}

fn err(d: &mut RecordDecoder, payload: &str) -> String {
    let before = d.rows();
    let e = d.push(payload.as_bytes()).expect_err(payload).to_string();
    assert_eq!(d.rows(), before, "nothing appended for {payload}");
    e
}

fn col<T: datafusion::arrow::datatypes::ArrowPrimitiveType>(
    b: &RecordBatch,
    name: &str,
) -> Vec<Option<T::Native>> {
    b.column_by_name(name)
        .unwrap()
        .as_primitive::<T>()
        .iter()
        .collect()
}

fn strings(b: &RecordBatch, name: &str) -> Vec<Option<String>> {
    b.column_by_name(name)
        .unwrap()
        .as_string::<i32>()
        .iter()
        .map(|s| s.map(str::to_string))
        .collect()
}

const TS_2024: i64 = 1_709_210_096_000_000; // 2024-02-29 12:34:56

#[test]
fn json_every_type_with_extreme_values() {
    let mut d = json();
    let rows = [
        r#"{"i": -2147483648, "l": -9223372036854775808, "r": 1.5, "d": -0.0, "b": true,
            "t": "héllo \"wörld\" \u00e9\ud83d\ude00", "n": -99999999.99, "dt": "2024-02-29",
            "tm": "23:59:59.999999", "ts": "2024-02-29T12:34:56", "tz": "2024-02-29 14:34:56+02:00",
            "by": "\\x00ff10", "j": {"a": [1, 2, {"b": null}], "c": "x y"}}"#,
        r#"{"i": 2147483647, "l": 9223372036854775807, "r": "NaN", "d": "-Infinity", "b": "off",
            "t": 42.50, "n": "99999999.99", "dt": "0001-01-01", "tm": "00:00", "ts": 1709210096000,
            "tz": "2024-02-29T12:34:56.5Z", "by": "plain", "j": "just a string"}"#,
        r#"{"l": 9007199254740993, "d": 9007199254740993, "t": true, "n": 0.005, "ts": "2024-02-29 12:34:56-08",
            "tz": 1709210096000.5, "j": 12.50}"#,
        r#"{"i": null, "l": null, "t": null, "j": null, "unknown": {"deep": [1, 2, 3]}, "b": null}"#,
        "{}",
    ];
    for r in rows {
        assert!(d.push(r.as_bytes()).unwrap(), "{r}");
    }
    let b = d.finish();
    assert_eq!(b.num_rows(), 5);
    assert_eq!(b.schema(), all_types());
    assert_eq!(
        col::<Int32Type>(&b, "i"),
        [Some(i32::MIN), Some(i32::MAX), None, None, None]
    );
    assert_eq!(
        col::<Int64Type>(&b, "l"),
        [
            Some(i64::MIN),
            Some(i64::MAX),
            Some(9_007_199_254_740_993),
            None,
            None
        ]
    );
    let r = col::<Float32Type>(&b, "r");
    assert_eq!(r[0], Some(1.5));
    assert!(r[1].unwrap().is_nan());
    let dd = col::<Float64Type>(&b, "d");
    assert!(dd[0].unwrap() == 0.0 && dd[0].unwrap().is_sign_negative());
    assert_eq!(dd[1], Some(f64::NEG_INFINITY));
    assert_eq!(dd[2], Some(9_007_199_254_740_992.0));
    let bools: Vec<_> = b.column_by_name("b").unwrap().as_boolean().iter().collect();
    assert_eq!(bools, [Some(true), Some(false), None, None, None]);
    assert_eq!(
        strings(&b, "t"),
        [
            Some("héllo \"wörld\" é😀".into()),
            Some("42.50".into()),
            Some("true".into()),
            None,
            None
        ]
    );
    assert_eq!(
        col::<Decimal128Type>(&b, "n"),
        [
            Some(-9_999_999_999),
            Some(9_999_999_999),
            Some(1),
            None,
            None
        ]
    );
    assert_eq!(
        col::<Date32Type>(&b, "dt"),
        [Some(19_782), Some(-719_162), None, None, None]
    );
    assert_eq!(
        col::<Time64MicrosecondType>(&b, "tm"),
        [Some(86_399_999_999), Some(0), None, None, None]
    );
    assert_eq!(
        col::<TimestampMicrosecondType>(&b, "ts"),
        [Some(TS_2024), Some(TS_2024), Some(TS_2024), None, None]
    );
    assert_eq!(
        col::<TimestampMicrosecondType>(&b, "tz"),
        [
            Some(TS_2024),
            Some(TS_2024 + 500_000),
            Some(TS_2024 + 500),
            None,
            None
        ]
    );
    let by: Vec<_> = b
        .column_by_name("by")
        .unwrap()
        .as_binary::<i32>()
        .iter()
        .collect();
    assert_eq!(
        by,
        [
            Some(&[0u8, 0xff, 0x10][..]),
            Some(b"plain"),
            None,
            None,
            None
        ]
    );
    assert_eq!(
        strings(&b, "j"),
        [
            Some(r#"{"a":[1,2,{"b":null}],"c":"x y"}"#.into()),
            Some(r#""just a string""#.into()),
            Some("12.50".into()),
            None,
            None
        ]
    );
}

#[test]
fn json_keys_match_exactly_including_escaped_keys() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("a", DataType::Int64, true),
        Field::new("Mixed Case", DataType::Int64, true),
        Field::new("é", DataType::Int64, true),
    ]));
    let mut d = RecordDecoder::new(schema, Encoding::Json).unwrap();
    d.push(br#"{"A": 1, "a": 2, "Mixed Case": 3, "\u00e9": 4}"#)
        .unwrap();
    d.push(br#"{"\u0061": 5, "mixed case": 6}"#).unwrap();
    // A duplicate key: the last value wins, as in PostgreSQL's jsonb.
    d.push(br#"{"a": 7, "a": 8}"#).unwrap();
    let b = d.finish();
    assert_eq!(col::<Int64Type>(&b, "a"), [Some(2), Some(5), Some(8)]);
    assert_eq!(col::<Int64Type>(&b, "Mixed Case"), [Some(3), None, None]);
    assert_eq!(col::<Int64Type>(&b, "é"), [Some(4), None, None]);
}

#[test]
fn json_wide_schemas_use_the_name_map() {
    let fields: Vec<Field> = (0..40)
        .map(|i| Field::new(format!("c{i}"), DataType::Int64, true))
        .collect();
    let mut d = RecordDecoder::new(Arc::new(Schema::new(fields)), Encoding::Json).unwrap();
    d.push(br#"{"c39": 39, "c0": 0, "c17": 17, "zz": 1}"#)
        .unwrap();
    let b = d.finish();
    assert_eq!(col::<Int64Type>(&b, "c39"), [Some(39)]);
    assert_eq!(col::<Int64Type>(&b, "c17"), [Some(17)]);
    assert_eq!(col::<Int64Type>(&b, "c1"), [None]);
}

#[test]
fn json_numeric_strings_and_integral_numbers() {
    let mut d = json();
    d.push(br#"{"i": " 12 ", "l": "-9223372036854775808", "n": "1.005", "d": "1e3", "r": "-inf"}"#)
        .unwrap();
    d.push(br#"{"i": 1.0, "l": 1e3, "n": 12, "d": 1, "b": "YES"}"#)
        .unwrap();
    let b = d.finish();
    assert_eq!(col::<Int32Type>(&b, "i"), [Some(12), Some(1)]);
    assert_eq!(col::<Int64Type>(&b, "l"), [Some(i64::MIN), Some(1000)]);
    assert_eq!(col::<Decimal128Type>(&b, "n"), [Some(101), Some(1200)]);
    assert_eq!(col::<Float64Type>(&b, "d"), [Some(1000.0), Some(1.0)]);
    assert_eq!(col::<Float32Type>(&b, "r")[0], Some(f32::NEG_INFINITY));
}

#[test]
fn json_bad_values_are_dead_letters_naming_the_column() {
    let mut d = json();
    let cases = [
        (r#"{"i": 1.5}"#, r#"column "i": 1.5 is not an integer"#),
        (
            r#"{"i": 2147483648}"#,
            r#"column "i": 2147483648 is out of range for type integer"#,
        ),
        (
            r#"{"i": -2147483649}"#,
            r#"column "i": -2147483649 is out of range for type integer"#,
        ),
        (
            r#"{"l": 9223372036854775808}"#,
            r#"column "l": 9223372036854775808 is out of range for type bigint"#,
        ),
        (
            r#"{"l": -9223372036854775809}"#,
            r#"column "l": -9223372036854775809 is out of range for type bigint"#,
        ),
        (
            r#"{"l": 1e19}"#,
            r#"column "l": 1e19 is out of range for type bigint"#,
        ),
        (
            r#"{"l": "abc"}"#,
            r#"column "l": "abc" is not a valid bigint"#,
        ),
        (r#"{"l": ""}"#, r#"column "l": "" is not a valid bigint"#),
        (
            r#"{"l": true}"#,
            r#"column "l": expected bigint, found a JSON boolean"#,
        ),
        (
            r#"{"l": [1]}"#,
            r#"column "l": expected bigint, found a JSON array"#,
        ),
        (
            r#"{"n": 100000000}"#,
            r#"column "n": 100000000 is out of range for type numeric(10,2)"#,
        ),
        (
            r#"{"n": 99999999.995}"#,
            r#"column "n": 99999999.995 is out of range for type numeric(10,2)"#,
        ),
        (
            r#"{"n": "NaN"}"#,
            r#"column "n": "NaN" is not a valid numeric(10,2)"#,
        ),
        (
            r#"{"d": 1e400}"#,
            r#"column "d": 1e400 is out of range for type double precision"#,
        ),
        (
            r#"{"r": 1e39}"#,
            r#"column "r": 1e39 is out of range for type real"#,
        ),
        (
            r#"{"d": "x"}"#,
            r#"column "d": "x" is not a valid double precision"#,
        ),
        (
            r#"{"b": "maybe"}"#,
            r#"column "b": "maybe" is not a valid boolean"#,
        ),
        (
            r#"{"b": 1}"#,
            r#"column "b": expected boolean, found a JSON number"#,
        ),
        (
            r#"{"t": {"a": 1}}"#,
            r#"column "t": expected text, found a JSON object"#,
        ),
        (
            r#"{"t": [1]}"#,
            r#"column "t": expected text, found a JSON array"#,
        ),
        (
            r#"{"t": "\u0000"}"#,
            r#"column "t": \u0000 cannot be converted to text"#,
        ),
        (
            r#"{"t": "\ud800"}"#,
            r#"column "t": invalid Unicode escape in a JSON string"#,
        ),
        (
            r#"{"dt": "2023-02-29"}"#,
            r#"column "dt": "2023-02-29" is not a valid date"#,
        ),
        (
            r#"{"dt": 5}"#,
            r#"column "dt": expected date, found a JSON number"#,
        ),
        (
            r#"{"tm": "24:00:01"}"#,
            r#"column "tm": "24:00:01" is not a valid time"#,
        ),
        (
            r#"{"ts": "2024-01-01 10:00 PST"}"#,
            r#"column "ts": "2024-01-01 10:00 PST" is not a valid timestamp"#,
        ),
        (
            r#"{"tz": "yesterday"}"#,
            r#"column "tz": "yesterday" is not a valid timestamp with time zone"#,
        ),
        (
            r#"{"tz": 1e30}"#,
            r#"column "tz": 1e30 is out of range for epoch milliseconds"#,
        ),
        (
            r#"{"by": "\\xZZ"}"#,
            r#"column "by": "\xZZ" is not valid hexadecimal bytea"#,
        ),
        (
            r#"{"by": "\\x0"}"#,
            r#"column "by": "\x0" is not valid hexadecimal bytea"#,
        ),
    ];
    for (payload, want) in cases {
        assert_eq!(err(&mut d, payload), want, "{payload}");
    }
    assert_eq!(d.finish().num_rows(), 0);
}

#[test]
fn json_bad_payloads_are_dead_letters() {
    let mut d = json();
    let cases: [(&[u8], &str); 14] = [
        (b"", "empty payload: expected a JSON object"),
        (b"  \n\t ", "empty payload: expected a JSON object"),
        (
            b"[1, 2]",
            "payload is not a JSON object (it starts with an array)",
        ),
        (
            b"42",
            "payload is not a JSON object (it starts with a number)",
        ),
        (
            b"\"s\"",
            "payload is not a JSON object (it starts with a string)",
        ),
        (
            b"null",
            "payload is not a JSON object (it starts with null)",
        ),
        (
            b"true",
            "payload is not a JSON object (it starts with a boolean)",
        ),
        (
            b"hello",
            "payload is not a JSON object (it starts with something that is not JSON)",
        ),
        (
            b"{\"l\": 1}{\"l\": 2}",
            "payload holds more than one JSON value",
        ),
        (
            b"{\"l\": 1}\n{\"l\": 2}\n",
            "payload holds more than one JSON value",
        ),
        (
            b"{\"l\": 1} x",
            "trailing characters after the JSON object: x",
        ),
        (
            b"{\"l\": 1",
            "invalid JSON: EOF while parsing an object at line 1 column 7",
        ),
        (
            b"{\"l\": 01}",
            "invalid JSON: invalid number at line 1 column 8",
        ),
        (
            b"{\"t\": \"\xff\"}",
            "payload is not valid UTF-8 (invalid byte at offset 7)",
        ),
    ];
    for (payload, want) in cases {
        let e = d.push(payload).expect_err(want).to_string();
        assert_eq!(e, want);
        assert_eq!(d.rows(), 0);
    }
    // Whitespace around one object is fine.
    assert!(d.push(b" \n{\"l\": 1}\r\n ").unwrap());
}

#[test]
fn json_not_null_columns_refuse_missing_values() {
    let mut d = one(Field::new("x", DataType::Int64, false));
    assert_eq!(
        err(&mut d, r#"{"y": 1}"#),
        r#"column "x" is declared NOT NULL but the record has no value for it"#
    );
    assert_eq!(
        err(&mut d, r#"{"x": null}"#),
        r#"column "x" is declared NOT NULL but the record has no value for it"#
    );
    d.push(br#"{"x": 3}"#).unwrap();
    assert_eq!(d.finish().num_rows(), 1);
}

#[test]
fn good_rows_after_bad_ones_stay_aligned() {
    let mut d = json();
    let bad = [
        r#"{"l": 1.5, "t": "bad"}"#,
        r#"{"t": "bad", "i": 99999999999}"#,
        r#"{"t": "bad"} {"t": "worse"}"#,
        r#"[{"t": "bad"}]"#,
        r#"{"t": "bad", "n": 1e99}"#,
        r#"{"t": "bad", "ts": "never"}"#,
        r#"{"t": "bad", "l": 1,"#,
        "",
    ];
    let mut want = Vec::new();
    for k in 0..1000i64 {
        let payload = bad[k as usize % bad.len()];
        assert!(d.push(payload.as_bytes()).is_err(), "{payload}");
        let good = format!(
            r#"{{"l": {k}, "t": "row {k}", "ts": {}, "n": "{k}.25", "j": [{k}]}}"#,
            1_700_000_000_000 + k
        );
        assert!(d.push(good.as_bytes()).unwrap());
        want.push(k);
    }
    assert_eq!(d.rows(), 1000);
    let b = d.finish();
    assert_eq!(d.rows(), 0);
    assert_eq!(b.num_rows(), 1000);
    for c in b.columns() {
        assert_eq!(c.len(), 1000);
    }
    let l = col::<Int64Type>(&b, "l");
    let t = strings(&b, "t");
    let ts = col::<TimestampMicrosecondType>(&b, "ts");
    let n = col::<Decimal128Type>(&b, "n");
    let j = strings(&b, "j");
    for k in want {
        let i = k as usize;
        assert_eq!(l[i], Some(k));
        assert_eq!(t[i].as_deref(), Some(format!("row {k}").as_str()));
        assert_eq!(ts[i], Some((1_700_000_000_000 + k) * 1000));
        assert_eq!(n[i], Some(k as i128 * 100 + 25));
        assert_eq!(j[i].as_deref(), Some(format!("[{k}]").as_str()));
    }
    assert_eq!(b.column_by_name("i").unwrap().null_count(), 1000);
    // The decoder is reusable after finish.
    d.push(br#"{"l": 1}"#).unwrap();
    assert_eq!(d.finish().num_rows(), 1);
}

#[test]
fn finish_without_rows_gives_an_empty_batch() {
    let mut d = json();
    let b = d.finish();
    assert_eq!(b.num_rows(), 0);
    assert_eq!(b.schema(), all_types());
}

#[test]
fn unsupported_types_and_delimiters_are_refused() {
    let e = RecordDecoder::new(
        Arc::new(Schema::new(vec![Field::new("x", DataType::UInt8, true)])),
        Encoding::Json,
    )
    .unwrap_err();
    assert!(e.to_string().contains("column \"x\""), "{e}");
    let e = RecordDecoder::new(
        all_types(),
        Encoding::Csv {
            delimiter: b'"',
            without_header: false,
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("delimiter"), "{e}");
}

// ---------------------------------------------------------------------------
// CSV
// ---------------------------------------------------------------------------

#[test]
fn csv_every_type() {
    let mut d = csv(all_types());
    let rows = [
        "-2147483648,-9223372036854775808,1.5,-Infinity,t,\"héllo, \"\"wörld\"\"\",-99999999.99,2024-02-29,23:59:59.999999,2024-02-29T12:34:56,2024-02-29 14:34:56+02:00,\\x00ff10,\"{\"\"a\"\": [1, 2]}\"\n",
        "2147483647,9223372036854775807,NaN,1e308,no,\"multi\nline\",0.005,0001-01-01,00:00,1709210096000,2024-02-29T12:34:56.5Z,plain,\"\"\"s\"\"\"\r\n",
        ",,,,,\"\",,,,,,,",
        ",9007199254740993,,,,x,,,,2024-02-29 12:34:56-08,,\"\",null",
    ];
    for r in rows {
        assert!(d.push(r.as_bytes()).unwrap(), "{r}");
    }
    let b = d.finish();
    assert_eq!(b.num_rows(), 4);
    assert_eq!(
        col::<Int32Type>(&b, "i"),
        [Some(i32::MIN), Some(i32::MAX), None, None]
    );
    assert_eq!(
        col::<Int64Type>(&b, "l"),
        [
            Some(i64::MIN),
            Some(i64::MAX),
            None,
            Some(9_007_199_254_740_993)
        ]
    );
    assert!(col::<Float32Type>(&b, "r")[1].unwrap().is_nan());
    assert_eq!(
        col::<Float64Type>(&b, "d"),
        [Some(f64::NEG_INFINITY), Some(1e308), None, None]
    );
    let bools: Vec<_> = b.column_by_name("b").unwrap().as_boolean().iter().collect();
    assert_eq!(bools, [Some(true), Some(false), None, None]);
    assert_eq!(
        strings(&b, "t"),
        [
            Some("héllo, \"wörld\"".into()),
            Some("multi\nline".into()),
            Some(String::new()),
            Some("x".into())
        ]
    );
    assert_eq!(
        col::<Decimal128Type>(&b, "n"),
        [Some(-9_999_999_999), Some(1), None, None]
    );
    assert_eq!(
        col::<Date32Type>(&b, "dt"),
        [Some(19_782), Some(-719_162), None, None]
    );
    assert_eq!(
        col::<TimestampMicrosecondType>(&b, "ts"),
        [Some(TS_2024), Some(TS_2024), None, Some(TS_2024)]
    );
    assert_eq!(
        col::<TimestampMicrosecondType>(&b, "tz"),
        [Some(TS_2024), Some(TS_2024 + 500_000), None, None]
    );
    let by: Vec<_> = b
        .column_by_name("by")
        .unwrap()
        .as_binary::<i32>()
        .iter()
        .collect();
    assert_eq!(
        by,
        [
            Some(&[0u8, 0xff, 0x10][..]),
            Some(b"plain"),
            None,
            Some(b"")
        ]
    );
    assert_eq!(
        strings(&b, "j"),
        [
            Some(r#"{"a":[1,2]}"#.into()),
            Some(r#""s""#.into()),
            None,
            Some("null".into())
        ]
    );
}

fn three() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("note", DataType::Utf8, true),
    ]))
}

#[test]
fn csv_headers_are_skipped_unless_without_header() {
    let mut d = csv(three());
    assert!(!d.push(b"ID,Name,\"note\"\n").unwrap());
    assert!(d.push(b"1,a,b").unwrap());
    // A header again later (files concatenated into a topic) is skipped too.
    assert!(!d.push(b"id,name,note").unwrap());
    assert_eq!(d.finish().num_rows(), 1);

    let mut d = RecordDecoder::new(
        three(),
        Encoding::Csv {
            delimiter: b'|',
            without_header: true,
        },
    )
    .unwrap();
    assert_eq!(
        d.push(b"id|name|note").unwrap_err().to_string(),
        r#"column "id": "id" is not a valid bigint"#
    );
    assert!(d.push(b"2|x,y|\"a|b\"").unwrap());
    let b = d.finish();
    assert_eq!(strings(&b, "name"), [Some("x,y".into())]);
    assert_eq!(strings(&b, "note"), [Some("a|b".into())]);
}

#[test]
fn csv_bad_records_are_dead_letters() {
    let mut d = csv(three());
    let cases: [(&[u8], &str); 8] = [
        (b"", "empty record"),
        (b"\n", "empty record"),
        (b"1,a", "expected 3 fields, found 2"),
        (b"1,a,b,c", "expected 3 fields, found 4"),
        (b"1,\"a,b", "unterminated quoted field 2"),
        (
            b"1,\"a\"x,b",
            "unexpected character after the closing quote of field 2",
        ),
        (b"x,a,b", r#"column "id": "x" is not a valid bigint"#),
        (
            b"1,\xc3,b",
            "payload is not valid UTF-8 (invalid byte at offset 2)",
        ),
    ];
    for (k, (payload, want)) in cases.into_iter().enumerate() {
        assert_eq!(d.push(payload).unwrap_err().to_string(), want);
        assert_eq!(d.rows(), k);
        assert!(d.push(b"7,ok,\"fine\"").unwrap());
    }
    let b = d.finish();
    assert_eq!(b.num_rows(), 8);
    assert_eq!(col::<Int64Type>(&b, "id"), vec![Some(7); 8]);
}

#[test]
fn csv_quotes_inside_unquoted_fields_are_data() {
    let mut d = csv(three());
    d.push(b"1,a\"b,\"\"\"\"").unwrap();
    d.push(b"2,,\"\"").unwrap();
    let b = d.finish();
    assert_eq!(strings(&b, "name"), [Some("a\"b".into()), None]);
    assert_eq!(
        strings(&b, "note"),
        [Some("\"".into()), Some(String::new())]
    );
}
