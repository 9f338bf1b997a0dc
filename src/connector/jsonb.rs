//! JSONB operators and functions over JSONB columns (stored as JSON text in
//! `Utf8`, see [`crate::connector::decode`]).
//!
//! | SQL | function | result |
//! |---|---|---|
//! | `j -> 'key'`, `j -> 2` | `jsonb_get` | jsonb: the field, or the array element (negative counts from the end) |
//! | `j ->> 'key'`, `j ->> 2` | `jsonb_get_text` | text: strings unquoted, other values as JSON text, JSON null as SQL NULL |
//! | `j #> '{a,b,0}'` | `jsonb_get_path` | jsonb at the path (a text[] literal or a list of text) |
//! | `j #>> '{a,b,0}'` | `jsonb_get_path_text` | text at the path |
//! | `jsonb_extract_path(j, VARIADIC keys)` | | as `#>` |
//! | `jsonb_extract_path_text(j, VARIADIC keys)` | | as `#>>` |
//! | `jsonb_typeof(j)` | | `object`, `array`, `string`, `number`, `boolean` or `null` |
//! | `jsonb_array_length(j)` | | INT; an error for a non-array, as in PostgreSQL |
//!
//! A missing key, an index out of range, a key applied to an array or an
//! index to an object all give NULL, as in PostgreSQL. Text that is not
//! JSON is an error (PostgreSQL would have refused it on input).
//!
//! DataFusion parses the four operators; [`JsonbPlanner`] (an
//! `ExprPlanner`) maps them to the functions. Each value is walked with
//! serde_json only as far as needed — values not on the path are skipped
//! unparsed — and results are slices of the input text, so nothing is
//! built per row but the output column. Results are the value's text as
//! stored: JSONB decoded from Kafka is compact; PostgreSQL's output form
//! (`{"a": 1}` with sorted keys) is not reproduced.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, GenericListArray, Int32Builder, Int64Array, OffsetSizeTrait,
    StringArray, StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::{DFSchema, Result, exec_err, plan_err};
use datafusion::execution::FunctionRegistry as _;
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::BinaryOperator;
use serde::Deserialize as _;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// Scalars visit to a constant (they have no fields or elements).
macro_rules! scalars_are {
    ($v:expr) => {
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok($v)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok($v)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok($v)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok($v)
        }
        fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
            Ok($v)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok($v)
        }
    };
}

/// Registers the functions and the operator planner on a context. Call it
/// once where the server builds its `SessionContext` (before any view is
/// planned, so restored views see the operators too).
pub fn register(ctx: &SessionContext) -> crate::Result<()> {
    for f in functions() {
        ctx.register_udf(f);
    }
    ctx.state_ref()
        .write()
        .register_expr_planner(Arc::new(JsonbPlanner))?;
    Ok(())
}

/// The functions, for callers that build a context their own way.
pub fn functions() -> Vec<ScalarUDF> {
    [
        Op::Get,
        Op::GetText,
        Op::GetPath,
        Op::GetPathText,
        Op::ExtractPath,
        Op::ExtractPathText,
        Op::Typeof,
        Op::ArrayLength,
    ]
    .into_iter()
    .map(udf)
    .collect()
}

fn udf(op: Op) -> ScalarUDF {
    ScalarUDF::new_from_impl(JsonbFunction {
        op,
        signature: Signature::user_defined(Volatility::Immutable),
    })
}

/// Maps `->`, `->>`, `#>`, `#>>` to the functions.
#[derive(Debug, Default)]
pub struct JsonbPlanner;

impl ExprPlanner for JsonbPlanner {
    fn plan_binary_op(
        &self,
        expr: RawBinaryExpr,
        _schema: &DFSchema,
    ) -> Result<PlannerResult<RawBinaryExpr>> {
        let op = match expr.op {
            BinaryOperator::Arrow => Op::Get,
            BinaryOperator::LongArrow => Op::GetText,
            BinaryOperator::HashArrow => Op::GetPath,
            BinaryOperator::HashLongArrow => Op::GetPathText,
            _ => return Ok(PlannerResult::Original(expr)),
        };
        Ok(PlannerResult::Planned(Expr::ScalarFunction(
            datafusion::logical_expr::expr::ScalarFunction::new_udf(
                Arc::new(udf(op)),
                vec![expr.left, expr.right],
            ),
        )))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Op {
    Get,
    GetText,
    GetPath,
    GetPathText,
    ExtractPath,
    ExtractPathText,
    Typeof,
    ArrayLength,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Get => "jsonb_get",
            Op::GetText => "jsonb_get_text",
            Op::GetPath => "jsonb_get_path",
            Op::GetPathText => "jsonb_get_path_text",
            Op::ExtractPath => "jsonb_extract_path",
            Op::ExtractPathText => "jsonb_extract_path_text",
            Op::Typeof => "jsonb_typeof",
            Op::ArrayLength => "jsonb_array_length",
        }
    }

    /// Whether the result is text (unquoted strings) rather than jsonb.
    fn as_text(self) -> bool {
        matches!(self, Op::GetText | Op::GetPathText | Op::ExtractPathText)
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonbFunction {
    op: Op,
    signature: Signature,
}

fn is_string(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null
    )
}

impl ScalarUDFImpl for JsonbFunction {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn name(&self) -> &str {
        self.op.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(match self.op {
            Op::ArrayLength => DataType::Int32,
            _ => DataType::Utf8,
        })
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let name = self.op.name();
        let Some(first) = arg_types.first() else {
            return plan_err!("{name} needs a jsonb argument");
        };
        if !is_string(first) {
            return plan_err!("{name}: expected jsonb, found {first}");
        }
        let mut out = vec![DataType::Utf8];
        let rest = &arg_types[1..];
        match self.op {
            Op::Typeof | Op::ArrayLength => {
                if !rest.is_empty() {
                    return plan_err!("{name} takes one argument");
                }
            }
            Op::Get | Op::GetText => {
                let [key] = rest else {
                    return plan_err!("{name} takes two arguments");
                };
                out.push(if key.is_integer() {
                    DataType::Int64
                } else if is_string(key) {
                    DataType::Utf8
                } else {
                    return plan_err!(
                        "operator does not exist: jsonb {} {key}",
                        if self.op == Op::Get { "->" } else { "->>" }
                    );
                });
            }
            Op::GetPath | Op::GetPathText => {
                let [path] = rest else {
                    return plan_err!("{name} takes two arguments");
                };
                out.push(match path {
                    t if is_string(t) => DataType::Utf8,
                    DataType::List(f) | DataType::LargeList(f) if is_string(f.data_type()) => {
                        DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true)))
                    }
                    other => {
                        return plan_err!("{name}: the path must be text[], found {other}");
                    }
                });
            }
            Op::ExtractPath | Op::ExtractPathText => {
                for t in rest {
                    if !is_string(t) && !t.is_integer() {
                        return plan_err!("{name}: path elements must be text, found {t}");
                    }
                    out.push(DataType::Utf8);
                }
            }
        }
        Ok(out)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let json = arrays[0].as_string::<i32>();
        let result: ArrayRef = match self.op {
            Op::Typeof => {
                let out: StringArray = json
                    .iter()
                    .map(|j| j.map(type_of).transpose())
                    .collect::<Result<_>>()?;
                Arc::new(out)
            }
            Op::ArrayLength => {
                let mut out = Int32Builder::with_capacity(rows);
                for j in json.iter() {
                    out.append_option(j.map(array_length).transpose()?);
                }
                Arc::new(out.finish())
            }
            Op::Get | Op::GetText => {
                let key = &arrays[1];
                let mut out = Output::new(rows, self.op.as_text());
                if let Some(ints) = key.as_any().downcast_ref::<Int64Array>() {
                    for (j, k) in json.iter().zip(ints.iter()) {
                        match (j, k) {
                            (Some(j), Some(k)) => out.push(lookup(j, Step::Index(k))?)?,
                            _ => out.null(),
                        }
                    }
                } else {
                    for (j, k) in json.iter().zip(key.as_string::<i32>().iter()) {
                        match (j, k) {
                            (Some(j), Some(k)) => out.push(lookup(j, Step::Key(k))?)?,
                            _ => out.null(),
                        }
                    }
                }
                out.finish()
            }
            Op::GetPath | Op::GetPathText => {
                let mut out = Output::new(rows, self.op.as_text());
                let mut path: Vec<String> = Vec::new();
                let paths = &arrays[1];
                for (i, j) in json.iter().enumerate() {
                    let Some(j) = j else {
                        out.null();
                        continue;
                    };
                    if paths.is_null(i) {
                        out.null();
                        continue;
                    }
                    path.clear();
                    match paths.data_type() {
                        DataType::List(_) => list_path(paths.as_list::<i32>(), i, &mut path),
                        _ => parse_text_array(paths.as_string::<i32>().value(i), &mut path)?,
                    }
                    out.push(walk(j, path.iter().map(String::as_str))?)?;
                }
                out.finish()
            }
            Op::ExtractPath | Op::ExtractPathText => {
                let mut out = Output::new(rows, self.op.as_text());
                let keys: Vec<&StringArray> =
                    arrays[1..].iter().map(|a| a.as_string::<i32>()).collect();
                for (i, j) in json.iter().enumerate() {
                    match j {
                        // PostgreSQL: a NULL path element makes the result NULL.
                        Some(j) if keys.iter().all(|k| !k.is_null(i)) => {
                            out.push(walk(j, keys.iter().map(|k| k.value(i)))?)?
                        }
                        _ => out.null(),
                    }
                }
                out.finish()
            }
        };
        Ok(ColumnarValue::Array(result))
    }
}

fn list_path<O: OffsetSizeTrait>(list: &GenericListArray<O>, row: usize, path: &mut Vec<String>) {
    let values = list.value(row);
    let values = values.as_string::<i32>();
    // A NULL element matches nothing; PostgreSQL returns NULL too.
    for v in values.iter() {
        path.push(v.unwrap_or("\u{0}").to_string());
    }
}

/// A PostgreSQL text[] literal such as `{a,b,0}` or `{"a b","c\"d"}`.
fn parse_text_array(s: &str, out: &mut Vec<String>) -> Result<()> {
    let t = s.trim();
    let Some(inner) = t.strip_prefix('{').and_then(|r| r.strip_suffix('}')) else {
        return exec_err!("malformed array literal: \"{s}\"");
    };
    if inner.trim().is_empty() {
        return Ok(());
    }
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut item = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(c) => item.push(c),
                        None => return exec_err!("malformed array literal: \"{s}\""),
                    },
                    Some(c) => item.push(c),
                    None => return exec_err!("malformed array literal: \"{s}\""),
                }
            }
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                item.push(c);
                chars.next();
            }
            let trimmed = item.trim_end().len();
            item.truncate(trimmed);
        }
        out.push(item);
        match chars.next() {
            None => return Ok(()),
            Some(',') => continue,
            Some(_) => return exec_err!("malformed array literal: \"{s}\""),
        }
    }
}

/// One step of a path.
#[derive(Debug, Clone, Copy)]
enum Step<'k> {
    Key(&'k str),
    Index(i64),
}

fn invalid_json(e: impl fmt::Display) -> datafusion::error::DataFusionError {
    datafusion::error::DataFusionError::Execution(format!(
        "invalid input syntax for type json: {e}"
    ))
}

/// The value `step` names inside `json`, as its text.
fn lookup<'j>(json: &'j str, step: Step<'_>) -> Result<Option<&'j str>> {
    let mut de = serde_json::Deserializer::from_str(json);
    let found = Lookup { step }.deserialize(&mut de).map_err(invalid_json)?;
    de.end().map_err(invalid_json)?;
    Ok(found.map(RawValue::get))
}

/// Follows a path of text steps: a key for objects, an integer for arrays.
fn walk<'j, 'p>(json: &'j str, path: impl Iterator<Item = &'p str>) -> Result<Option<&'j str>> {
    let mut current = json;
    let mut first = true;
    for key in path {
        let step = match first_byte(current) {
            Some(b'[') => match key.trim().parse::<i64>() {
                Ok(i) => Step::Index(i),
                Err(_) => return Ok(None),
            },
            Some(b'{') => Step::Key(key),
            _ if first => {
                // Validate scalar documents too, then: no such path.
                lookup(current, Step::Key(key))?;
                return Ok(None);
            }
            _ => return Ok(None),
        };
        first = false;
        match lookup(current, step)? {
            Some(v) => current = v,
            None => return Ok(None),
        }
    }
    if first {
        // An empty path is the document itself.
        lookup(current, Step::Key(""))?;
    }
    Ok(Some(current.trim()))
}

fn first_byte(json: &str) -> Option<u8> {
    json.trim_start().as_bytes().first().copied()
}

fn type_of(json: &str) -> Result<&'static str> {
    // Validate (cheaply: skipping) so that garbage is an error, not a type.
    let mut de = serde_json::Deserializer::from_str(json);
    IgnoredAny::deserialize(&mut de).map_err(invalid_json)?;
    de.end().map_err(invalid_json)?;
    Ok(match first_byte(json) {
        Some(b'{') => "object",
        Some(b'[') => "array",
        Some(b'"') => "string",
        Some(b't' | b'f') => "boolean",
        Some(b'n') => "null",
        _ => "number",
    })
}

fn array_length(json: &str) -> Result<i32> {
    struct Count;
    impl<'de> Visitor<'de> for Count {
        type Value = Option<i32>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON value")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<i32>, A::Error> {
            let mut n = 0;
            while seq.next_element::<IgnoredAny>()?.is_some() {
                n += 1;
            }
            Ok(Some(n))
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<i32>, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(None)
        }
        scalars_are!(None);
    }
    let mut de = serde_json::Deserializer::from_str(json);
    let n = de.deserialize_any(Count).map_err(invalid_json)?;
    de.end().map_err(invalid_json)?;
    match n {
        Some(n) => Ok(n),
        None if first_byte(json) == Some(b'{') => {
            exec_err!("cannot get array length of a non-array")
        }
        None => exec_err!("cannot get array length of a scalar"),
    }
}

/// Finds one step inside a JSON value, skipping everything else.
struct Lookup<'k> {
    step: Step<'k>,
}

impl<'de> DeserializeSeed<'de> for Lookup<'_> {
    type Value = Option<&'de RawValue>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Lookup<'_> {
    type Value = Option<&'de RawValue>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        let key = match self.step {
            Step::Key(k) => Some(k),
            Step::Index(_) => None,
        };
        while let Some(matches) = map.next_key_seed(KeyIs(key))? {
            if matches {
                // The last of duplicate keys wins, as in PostgreSQL's jsonb.
                found = Some(map.next_value::<&'de RawValue>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let Step::Index(i) = self.step else {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(None);
        };
        if i >= 0 {
            let mut found = None;
            let mut n = 0;
            while let Some(v) = seq.next_element::<&'de RawValue>()? {
                if n == i {
                    found = Some(v);
                }
                n += 1;
            }
            Ok(found)
        } else {
            // Negative: counted from the end, so the length is needed.
            let mut all = Vec::new();
            while let Some(v) = seq.next_element::<&'de RawValue>()? {
                all.push(v);
            }
            let at = all.len() as i64 + i;
            Ok((at >= 0).then(|| all[at as usize]))
        }
    }

    scalars_are!(None);
}

/// Whether an object key equals the one looked for (no allocation).
struct KeyIs<'k>(Option<&'k str>);

impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyIs<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E>(self, key: &str) -> Result<bool, E> {
        Ok(self.0 == Some(key))
    }
}

/// The output column: jsonb text, or text with strings unquoted.
struct Output {
    builder: StringBuilder,
    as_text: bool,
    scratch: String,
}

impl Output {
    fn new(rows: usize, as_text: bool) -> Output {
        Output {
            builder: StringBuilder::with_capacity(rows, rows * 8),
            as_text,
            scratch: String::new(),
        }
    }

    fn null(&mut self) {
        self.builder.append_null();
    }

    fn push(&mut self, value: Option<&str>) -> Result<()> {
        let Some(v) = value else {
            self.builder.append_null();
            return Ok(());
        };
        if !self.as_text {
            self.builder.append_value(v);
            return Ok(());
        }
        match first_byte(v) {
            Some(b'n') => self.builder.append_null(),
            Some(b'"') => {
                let inner = &v[1..v.len() - 1];
                if memchr::memchr(b'\\', inner.as_bytes()).is_none() {
                    self.builder.append_value(inner);
                } else {
                    self.scratch.clear();
                    crate::connector::decode::unescape_json(inner, &mut self.scratch)
                        .map_err(datafusion::error::DataFusionError::Execution)?;
                    self.builder.append_value(&self.scratch);
                }
            }
            _ => self.builder.append_value(v),
        }
        Ok(())
    }

    fn finish(mut self) -> ArrayRef {
        Arc::new(self.builder.finish())
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Int32Array, RecordBatch};
    use datafusion::arrow::datatypes::Schema;
    use datafusion::datasource::MemTable;

    use super::*;

    const DOC: &str = r#"{"a": {"b": [10, {"c": "x\"y"}, null, true]}, "n": 1.50, "s": "str", "e": "\u00e9", "z": null, "dup": 1, "dup": 2, "k.l": 3}"#;

    #[test]
    fn lookup_steps() {
        assert_eq!(lookup(DOC, Step::Key("n")).unwrap(), Some("1.50"));
        assert_eq!(lookup(DOC, Step::Key("dup")).unwrap(), Some("2"));
        assert_eq!(lookup(DOC, Step::Key("missing")).unwrap(), None);
        assert_eq!(lookup(DOC, Step::Index(0)).unwrap(), None);
        assert_eq!(lookup("[1,2,3]", Step::Index(-1)).unwrap(), Some("3"));
        assert_eq!(lookup("[1,2,3]", Step::Index(-3)).unwrap(), Some("1"));
        assert_eq!(lookup("[1,2,3]", Step::Index(-4)).unwrap(), None);
        assert_eq!(lookup("[1,2,3]", Step::Index(3)).unwrap(), None);
        assert_eq!(lookup("[1,2,3]", Step::Key("0")).unwrap(), None);
        assert_eq!(lookup("5", Step::Key("a")).unwrap(), None);
        assert!(lookup("{", Step::Key("a")).is_err());
        assert!(lookup("{} x", Step::Key("a")).is_err());
        assert_eq!(
            walk(DOC, ["a", "b", "1", "c"].into_iter()).unwrap(),
            Some(r#""x\"y""#)
        );
        assert_eq!(
            walk(DOC, ["a", "b", "-1"].into_iter()).unwrap(),
            Some("true")
        );
        assert_eq!(walk(DOC, ["a", "b", "x"].into_iter()).unwrap(), None);
        assert_eq!(walk(DOC, ["s", "x"].into_iter()).unwrap(), None);
    }

    #[test]
    fn text_array_literals() {
        let mut out = Vec::new();
        parse_text_array(r#"{a, "b c" ,"d\"e",0}"#, &mut out).unwrap();
        assert_eq!(out, ["a", "b c", "d\"e", "0"]);
        out.clear();
        parse_text_array("{}", &mut out).unwrap();
        assert!(out.is_empty());
        assert!(parse_text_array("a,b", &mut out).is_err());
    }

    /// A context as the server makes one: PostgreSQL's dialect (the
    /// generic one reads `j -> 'a'` as a lambda).
    fn context() -> SessionContext {
        let config = datafusion::prelude::SessionConfig::new()
            .set_str("datafusion.sql_parser.dialect", "PostgreSQL");
        let ctx = SessionContext::new_with_config(config);
        register(&ctx).unwrap();
        ctx
    }

    async fn query(sql: &str) -> Result<Vec<Option<String>>> {
        let ctx = context();
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("j", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 3, 4])),
                Arc::new(StringArray::from(vec![
                    Some(DOC),
                    Some(r#"[1, "two", [3]]"#),
                    Some("\"scalar\""),
                    None,
                ])),
            ],
        )?;
        ctx.register_table("t", Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))?;
        let batches = ctx.sql(sql).await?.collect().await?;
        let mut out = Vec::new();
        for b in batches {
            let col = datafusion::arrow::compute::cast(b.column(0), &DataType::Utf8)?;
            out.extend(col.as_string::<i32>().iter().map(|s| s.map(str::to_string)));
        }
        Ok(out)
    }

    fn strs(v: &[Option<&str>]) -> Vec<Option<String>> {
        v.iter().map(|s| s.map(str::to_string)).collect()
    }

    #[tokio::test]
    async fn operators_through_sql() {
        let cases: &[(&str, &[Option<&str>])] = &[
            (
                "SELECT j -> 'a' -> 'b' -> 1 FROM t ORDER BY id",
                &[Some(r#"{"c": "x\"y"}"#), None, None, None],
            ),
            (
                "SELECT j -> 'n' FROM t ORDER BY id",
                &[Some("1.50"), None, None, None],
            ),
            (
                "SELECT j ->> 'e' FROM t ORDER BY id",
                &[Some("é"), None, None, None],
            ),
            (
                "SELECT j ->> 's' FROM t ORDER BY id",
                &[Some("str"), None, None, None],
            ),
            (
                "SELECT j -> 'z' FROM t ORDER BY id",
                &[Some("null"), None, None, None],
            ),
            (
                "SELECT j ->> 'z' FROM t ORDER BY id",
                &[None, None, None, None],
            ),
            (
                "SELECT j -> 1 FROM t ORDER BY id",
                &[None, Some(r#""two""#), None, None],
            ),
            (
                "SELECT j ->> -2 FROM t ORDER BY id",
                &[None, Some("two"), None, None],
            ),
            (
                "SELECT j #> '{a,b,1,c}' FROM t ORDER BY id",
                &[Some(r#""x\"y""#), None, None, None],
            ),
            (
                "SELECT j #>> '{a,b,1,c}' FROM t ORDER BY id",
                &[Some("x\"y"), None, None, None],
            ),
            (
                "SELECT j #>> '{2,0}' FROM t ORDER BY id",
                &[None, Some("3"), None, None],
            ),
            (
                "SELECT j #>> ARRAY['a','b','0'] FROM t ORDER BY id",
                &[Some("10"), None, None, None],
            ),
            (
                "SELECT j #> '{}' FROM t WHERE id = 3",
                &[Some("\"scalar\"")],
            ),
            (
                "SELECT jsonb_extract_path(j, 'a', 'b', '3') FROM t ORDER BY id",
                &[Some("true"), None, None, None],
            ),
            (
                "SELECT jsonb_extract_path_text(j, 'k.l') FROM t ORDER BY id",
                &[Some("3"), None, None, None],
            ),
            (
                "SELECT jsonb_typeof(j) FROM t ORDER BY id",
                &[Some("object"), Some("array"), Some("string"), None],
            ),
            (
                "SELECT jsonb_typeof(j -> 'n') FROM t WHERE id = 1",
                &[Some("number")],
            ),
            (
                "SELECT jsonb_array_length(j) FROM t WHERE id = 2",
                &[Some("3")],
            ),
            (
                "SELECT jsonb_array_length(j #> '{a,b}') FROM t WHERE id = 1",
                &[Some("4")],
            ),
            // Casts and filters on extracted values.
            (
                "SELECT CAST(j ->> 'n' AS DOUBLE) * 2 FROM t WHERE j ->> 's' = 'str'",
                &[Some("3.0")],
            ),
            (
                "SELECT count(*) FROM t WHERE j -> 'a' IS NOT NULL",
                &[Some("1")],
            ),
        ];
        for (sql, want) in cases {
            assert_eq!(query(sql).await.unwrap(), strs(want), "{sql}");
        }
        let e = query("SELECT jsonb_array_length(j) FROM t WHERE id = 1")
            .await
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("cannot get array length of a non-array"),
            "{e}"
        );
        let e = query("SELECT jsonb_array_length(j) FROM t WHERE id = 3")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("of a scalar"), "{e}");
    }

    #[tokio::test]
    async fn operators_in_views() {
        let ctx = context();
        let schema = Arc::new(Schema::new(vec![Field::new("j", DataType::Utf8, true)]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(StringArray::from(vec![
                r#"{"k": "a", "v": 1}"#,
                r#"{"k": "a", "v": 2}"#,
                r#"{"k": "b", "v": 5}"#,
            ]))],
        )
        .unwrap();
        ctx.register_table(
            "src",
            Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap()),
        )
        .unwrap();
        ctx.sql(
            "CREATE VIEW totals AS SELECT j ->> 'k' AS k, sum(CAST(j -> 'v' AS BIGINT)) AS s \
             FROM src GROUP BY j ->> 'k'",
        )
        .await
        .unwrap();
        let b = ctx
            .sql("SELECT k, s FROM totals ORDER BY k")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let b = &b[0];
        assert_eq!(
            b.column(0).as_string::<i32>().iter().collect::<Vec<_>>(),
            [Some("a"), Some("b")]
        );
        let s = datafusion::arrow::compute::cast(b.column(1), &DataType::Int32).unwrap();
        assert_eq!(
            s.as_any()
                .downcast_ref::<Int32Array>()
                .unwrap()
                .values()
                .to_vec(),
            vec![3, 5]
        );
    }

    #[test]
    fn array_length_and_typeof_reject_garbage() {
        assert!(array_length("[1,").is_err());
        assert_eq!(array_length("[]").unwrap(), 0);
        assert!(type_of("nope").is_err());
        assert_eq!(type_of(" null ").unwrap(), "null");
    }
}
