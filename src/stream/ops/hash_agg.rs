//! Hash aggregation with retractions.
//!
//! ```text
//!   chunk ──▶ group keys (Arrow row format) ──▶ group index ──▶ per-aggregate state
//!                                                      │ dirty set
//!   barrier ──▶ for each dirty group: old output row ─▶ U-/U+ (or +/-) ──▶ out
//! ```
//!
//! PROPERTIES: the group-by expressions, the aggregate specs, the output
//! schema (group columns then aggregates, as DataFusion's Aggregate node).
//! STATES: per group, the number of live input rows, one accumulator per
//! aggregate, and the row last emitted.
//!
//! Every aggregate can retract: count keeps a counter; sum, avg, variance
//! and stddev keep the exact state of `stream::exact` (integers in 128
//! bits, doubles in a superaccumulator) and finish with PostgreSQL's types
//! and digits, exactly as the batch aggregates do; min and max keep a
//! counted ordered multiset of the values so deleting the current extreme
//! finds the next one. Output is held until the barrier, so a group changed
//! many times in an epoch emits one update. A global aggregate (no GROUP BY)
//! always has exactly one row, even over empty input.
//!
//! Windows: when a group key is a window bound (window_start or
//! window_end of TUMBLE/HOP, see [`crate::stream::message::ColumnWatermark`]),
//! a group whose bound is below that column's watermark at a barrier is
//! closed: its state is released (the row it emitted stays in the view),
//! and a later row for it is late — left out and recorded in
//! streamlake.late_events. With EMIT ON WINDOW CLOSE a group emits
//! nothing while open and one insert, final, when it closes: the output is
//! append-only. Open groups are indexed by their bound, so closing costs
//! the groups closed, not all groups.
//!
//! `FILTER (WHERE …)` masks the rows an aggregate sees; `DISTINCT` keeps a
//! counted set of the argument values per group and passes a value on only
//! when its count goes from 0 to 1 (or back), so the accumulator behind it
//! sees each distinct value once. string_agg and array_agg keep the values
//! in their ORDER BY (then value order) and rebuild the result for the
//! groups that changed.

use std::collections::BTreeMap;

use crate::stream::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type, SchemaRef};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::scalar::ScalarValue;

use crate::error::{Error, Result};
use crate::stream::chunk::{Chunk, Op};
use crate::stream::event_time::{micros_array, scalar_micros};
use crate::stream::exact::{NumState, NumericAgg, NumericFunc, NumericInput, Spread};
use crate::stream::late_events::{LateEvent, LateSink, row_json};
use crate::stream::message::{ColumnWatermark, EpochInfo, Watermarks, watermark_of};
use crate::stream::operator::Operator;

/// The aggregate functions maintained incrementally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggKind {
    CountStar,
    Count,
    Sum,
    Avg,
    Min,
    Max,
    VarSamp,
    VarPop,
    StddevSamp,
    StddevPop,
    BoolAnd,
    BoolOr,
    /// first_value/last_value by the aggregate's ORDER BY (DISTINCT ON).
    First,
    Last,
    /// string_agg(value, delimiter [ORDER BY …]): NULL values skipped.
    StringAgg,
    /// array_agg(value [ORDER BY …]): NULL values kept.
    ArrayAgg,
}

/// One aggregate of the node.
pub struct AggSpec {
    pub kind: AggKind,
    /// The argument; `None` for count(*).
    pub input: Option<Arc<dyn PhysicalExpr>>,
    pub output_type: DataType,
    /// For first/last, string_agg and array_agg: the ordering, as
    /// expressions with their sort fields.
    pub order_by: Vec<(Arc<dyn PhysicalExpr>, SortField)>,
    /// `FILTER (WHERE …)`: rows where it is not true are not aggregated.
    pub filter: Option<Arc<dyn PhysicalExpr>>,
    /// `agg(DISTINCT …)`.
    pub distinct: bool,
    /// string_agg's delimiter.
    pub delimiter: Option<String>,
    /// Whether NULL arguments are skipped: every aggregate but array_agg
    /// and first/last_value (which keep them, unless IGNORE NULLS).
    pub ignore_nulls: bool,
}

/// A value of first/last with its place in the ORDER BY: (encoded sort
/// key, encoded value).
type SortedValue = (Box<[u8]>, Box<[u8]>);

/// Running state of one aggregate in one group.
enum Acc {
    Count(i64),
    /// sum, avg, variance and stddev: exact state shared with the batch
    /// aggregates (`stream::exact`), so both give the same numbers.
    Num(NumState),
    /// Counted multiset of row-encoded values.
    Extreme(BTreeMap<Box<[u8]>, i64>),
    /// The same for integers, without encoding (no allocation per value).
    ExtremeInt(BTreeMap<i64, i64>),
    /// Counts of true and false inputs.
    Bools {
        t: i64,
        f: i64,
    },
    /// Counted multiset of (encoded sort key, encoded value).
    Ordered(BTreeMap<SortedValue, i64>),
}

struct Group {
    key: Vec<ScalarValue>,
    rows: i64,
    accs: Vec<Acc>,
    /// For DISTINCT aggregates: how many live rows carry each argument value.
    seen: Vec<Option<HashMap<Box<[u8]>, i64>>>,
    emitted: Option<Vec<ScalarValue>>,
    dirty: bool,
}

/// How an aggregate reads its argument column.
enum Input {
    None,
    /// sum, avg, variance, stddev.
    Numeric(NumericAgg),
    /// min/max: values encoded with this converter.
    Ordered(RowConverter),
    /// min/max of integers, kept as i64.
    OrderedInt,
    Bool,
    /// first/last, string_agg, array_agg: values and sort keys encoded
    /// with these converters.
    ByOrder(RowConverter, RowConverter),
}

pub struct HashAggOperator {
    group_exprs: Vec<Arc<dyn PhysicalExpr>>,
    aggs: Vec<AggSpec>,
    inputs: Vec<Input>,
    /// Encoders of DISTINCT aggregates' arguments.
    distinct: Vec<Option<RowConverter>>,
    schema: SchemaRef,
    key_converter: RowConverter,
    index: HashMap<Box<[u8]>, usize>,
    groups: Vec<Group>,
    dirty: Vec<usize>,
    /// Groups whose value raises a data error (a sum past 38 digits): no
    /// row is shown for them, and the view reports the error.
    poisoned: BTreeMap<usize, (&'static str, String)>,
    /// Event-time windows, when a group key is a window bound.
    windows: Option<Windows>,
    /// Ids of released groups, reused by new ones.
    free: Vec<usize>,
}

/// The window side of an aggregate grouped by a window bound.
struct Windows {
    /// Position of the window-bound column among the group keys.
    key: usize,
    /// The input column it is (the watermark to follow).
    column: usize,
    /// Emit each group once, when it closes (EMIT ON WINDOW CLOSE).
    emit_on_close: bool,
    /// Groups whose bound is below this are closed.
    close_below: Option<i64>,
    /// Open groups by their bound (microseconds).
    open: BTreeMap<i64, Vec<usize>>,
    late: Option<LateSink>,
    /// Closed groups whose final value raised a data error (EOWC), for
    /// the view to report; keyed apart from live group ids.
    failed: u64,
}

impl HashAggOperator {
    /// `input_types` are the argument types of `aggs` (ignored for count(*)).
    pub fn try_new(
        group_exprs: Vec<Arc<dyn PhysicalExpr>>,
        group_types: Vec<DataType>,
        aggs: Vec<AggSpec>,
        input_types: Vec<Option<DataType>>,
        schema: SchemaRef,
    ) -> Result<HashAggOperator> {
        let key_converter =
            RowConverter::new(group_types.into_iter().map(SortField::new).collect())?;
        let mut inputs = Vec::with_capacity(aggs.len());
        for (spec, ty) in aggs.iter().zip(&input_types) {
            inputs.push(match (spec.kind, ty) {
                (AggKind::CountStar, _) | (AggKind::Count, _) => Input::None,
                (AggKind::Min | AggKind::Max, Some(t)) if t.is_integer() => Input::OrderedInt,
                (AggKind::Min | AggKind::Max, Some(t)) => {
                    Input::Ordered(RowConverter::new(vec![SortField::new(t.clone())])?)
                }
                (
                    AggKind::Sum
                    | AggKind::Avg
                    | AggKind::VarSamp
                    | AggKind::VarPop
                    | AggKind::StddevSamp
                    | AggKind::StddevPop,
                    Some(t),
                ) if NumericInput::of(t).is_some() => Input::Numeric(NumericAgg {
                    func: match spec.kind {
                        AggKind::Sum => NumericFunc::Sum,
                        AggKind::Avg => NumericFunc::Avg,
                        AggKind::VarSamp => NumericFunc::Spread(Spread::VarSamp),
                        AggKind::VarPop => NumericFunc::Spread(Spread::VarPop),
                        AggKind::StddevSamp => NumericFunc::Spread(Spread::StddevSamp),
                        _ => NumericFunc::Spread(Spread::StddevPop),
                    },
                    input: NumericInput::of(t).expect("checked"),
                    output: spec.output_type.clone(),
                }),
                (AggKind::BoolAnd | AggKind::BoolOr, Some(DataType::Boolean)) => Input::Bool,
                (
                    AggKind::First | AggKind::Last | AggKind::StringAgg | AggKind::ArrayAgg,
                    Some(t),
                ) => Input::ByOrder(
                    RowConverter::new(vec![SortField::new(t.clone())])?,
                    RowConverter::new(spec.order_by.iter().map(|(_, f)| f.clone()).collect())?,
                ),
                (kind, t) => {
                    return Err(Error::FeatureNotSupported(format!(
                        "{kind:?} over {t:?} in a materialized view"
                    )));
                }
            });
        }
        let distinct = aggs
            .iter()
            .zip(&input_types)
            .map(|(spec, ty)| match (spec.distinct, ty) {
                (true, Some(t)) => Ok(Some(RowConverter::new(vec![SortField::new(t.clone())])?)),
                _ => Ok(None),
            })
            .collect::<Result<Vec<_>>>()?;
        let mut op = HashAggOperator {
            group_exprs,
            aggs,
            inputs,
            distinct,
            schema,
            key_converter,
            index: HashMap::default(),
            groups: Vec::new(),
            dirty: Vec::new(),
            poisoned: BTreeMap::new(),
            windows: None,
            free: Vec::new(),
        };
        if op.group_exprs.is_empty() {
            // The one group of a global aggregate exists from the start.
            op.new_group(Box::from(&[][..]), Vec::new());
        }
        Ok(op)
    }

    /// Group key `key` (input column `column`) is a window bound: close
    /// groups behind its watermark; with `emit_on_close`, emit each group
    /// once, when it closes. Returns false (and changes nothing) when that
    /// key is not a plain input column.
    pub fn with_windows(
        &mut self,
        key: usize,
        emit_on_close: bool,
        late: Option<LateSink>,
    ) -> bool {
        let Some(column) = self.key_column(key) else {
            return false;
        };
        self.windows = Some(Windows {
            key,
            column,
            emit_on_close,
            close_below: None,
            open: BTreeMap::new(),
            late,
            failed: 0,
        });
        true
    }

    /// The input column group key `k` reads, if it is a plain column.
    pub fn key_column(&self, k: usize) -> Option<usize> {
        self.group_exprs.get(k).and_then(|e| {
            e.as_any()
                .downcast_ref::<datafusion::physical_expr::expressions::Column>()
                .map(|c| c.index())
        })
    }

    /// Group keys that are window bounds, given the input's watermarks.
    pub fn window_keys(&self, input: &[Option<ColumnWatermark>]) -> Vec<usize> {
        (0..self.group_exprs.len())
            .filter(|&k| {
                self.key_column(k)
                    .and_then(|c| watermark_of(input, c))
                    .is_some_and(|w| w.window)
            })
            .collect()
    }

    /// Releases the groups whose window closed (EOWC: emitting them first).
    fn close_windows(&mut self, rows: &mut Vec<Vec<ScalarValue>>, ops: &mut Vec<Op>) -> Result<()> {
        let Some(w) = &mut self.windows else {
            return Ok(());
        };
        let Some(bound) = w.close_below else {
            return Ok(());
        };
        let still_open = w.open.split_off(&bound);
        let closed: Vec<usize> = std::mem::replace(&mut w.open, still_open)
            .into_values()
            .flatten()
            .collect();
        if closed.is_empty() {
            return Ok(());
        }
        let emit = w.emit_on_close;
        let mut released_keys: Vec<Vec<ScalarValue>> = Vec::with_capacity(closed.len());
        for gid in closed {
            if emit {
                match self.output_row(&self.groups[gid]) {
                    Ok(Some(row)) => {
                        rows.push(row);
                        ops.push(Op::Insert);
                    }
                    Ok(None) => {}
                    Err(e) if e.sqlstate().starts_with("22") => {
                        let w = self.windows.as_mut().expect("windows");
                        w.failed += 1;
                        let (code, message) = crate::error::sqlstate_of(&e);
                        self.poisoned
                            .insert(usize::MAX - w.failed as usize, (code, message));
                    }
                    Err(e) => return Err(e),
                }
            }
            self.poisoned.remove(&gid);
            let g = &mut self.groups[gid];
            released_keys.push(std::mem::take(&mut g.key));
            g.accs = Vec::new();
            g.seen = Vec::new();
            g.emitted = None;
            g.rows = 0;
            g.dirty = false;
            self.free.push(gid);
        }
        // Forget the released keys: encode them back to the index's form.
        let columns = (0..self.group_exprs.len())
            .map(|c| ScalarValue::iter_to_array(released_keys.iter().map(|k| k[c].clone())))
            .collect::<Result<Vec<_>, _>>()?;
        let encoded = self.key_converter.convert_columns(&columns)?;
        for r in encoded.iter() {
            self.index.remove(r.as_ref());
        }
        Ok(())
    }

    fn new_group(&mut self, key_bytes: Box<[u8]>, key: Vec<ScalarValue>) -> usize {
        let accs = self
            .inputs
            .iter()
            .map(|i| match i {
                Input::None => Acc::Count(0),
                Input::Numeric(agg) => Acc::Num(agg.new_state()),
                Input::Ordered(_) => Acc::Extreme(BTreeMap::new()),
                Input::OrderedInt => Acc::ExtremeInt(BTreeMap::new()),
                Input::Bool => Acc::Bools { t: 0, f: 0 },
                Input::ByOrder(..) => Acc::Ordered(BTreeMap::new()),
            })
            .collect();
        let seen = self
            .distinct
            .iter()
            .map(|d| d.as_ref().map(|_| HashMap::default()))
            .collect();
        if let Some(w) = &mut self.windows
            && let Some(bound) = key.get(w.key).and_then(scalar_micros)
        {
            let id = self.free.last().copied().unwrap_or(self.groups.len());
            w.open.entry(bound).or_default().push(id);
        }
        let group = Group {
            key,
            rows: 0,
            accs,
            seen,
            emitted: None,
            // A global aggregate emits its row at the first barrier.
            dirty: true,
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.groups[id] = group;
                id
            }
            None => {
                self.groups.push(group);
                self.groups.len() - 1
            }
        };
        self.dirty.push(id);
        self.index.insert(key_bytes, id);
        id
    }

    fn output_row(&self, g: &Group) -> Result<Option<Vec<ScalarValue>>> {
        if g.rows == 0 && !self.group_exprs.is_empty() {
            return Ok(None);
        }
        let mut row = g.key.clone();
        for ((spec, input), acc) in self.aggs.iter().zip(&self.inputs).zip(&g.accs) {
            let v = match (spec.kind, acc) {
                (AggKind::CountStar, _) => ScalarValue::Int64(Some(g.rows)),
                (AggKind::Count, Acc::Count(n)) => ScalarValue::Int64(Some(*n)),
                (_, Acc::Num(st)) => match input {
                    Input::Numeric(agg) => agg.finish(st)?,
                    _ => return Err(Error::Internal("numeric state without its spec".into())),
                },
                (AggKind::Min, Acc::Extreme(m)) => {
                    extreme(m.keys().next().map(|k| &k[..]), input, &spec.output_type)?
                }
                (AggKind::Max, Acc::Extreme(m)) => extreme(
                    m.keys().next_back().map(|k| &k[..]),
                    input,
                    &spec.output_type,
                )?,
                (AggKind::Min, Acc::ExtremeInt(m)) => ScalarValue::Int64(m.keys().next().copied()),
                (AggKind::Max, Acc::ExtremeInt(m)) => {
                    ScalarValue::Int64(m.keys().next_back().copied())
                }
                (AggKind::First, Acc::Ordered(m)) => ordered_value(
                    m.keys().next().map(|(_, v)| &v[..]),
                    input,
                    &spec.output_type,
                )?,
                (AggKind::Last, Acc::Ordered(m)) => ordered_value(
                    m.keys().next_back().map(|(_, v)| &v[..]),
                    input,
                    &spec.output_type,
                )?,
                (AggKind::StringAgg, Acc::Ordered(m)) => {
                    string_agg(m, input, spec.delimiter.as_deref().unwrap_or(""))?
                }
                (AggKind::ArrayAgg, Acc::Ordered(m)) => array_agg(m, input, &spec.output_type)?,
                (AggKind::BoolAnd, Acc::Bools { t, f }) => {
                    ScalarValue::Boolean((t + f > 0).then_some(*f == 0))
                }
                (AggKind::BoolOr, Acc::Bools { t, f }) => {
                    ScalarValue::Boolean((t + f > 0).then_some(*t > 0))
                }
                _ => return Err(Error::Internal("aggregate state mismatch".into())),
            };
            let v = if v.data_type() == spec.output_type {
                v
            } else {
                v.cast_to(&spec.output_type)?
            };
            row.push(v);
        }
        Ok(Some(row))
    }
}

/// Decodes the values of an ordered multiset, each as often as it occurs,
/// in order.
fn ordered_values(m: &BTreeMap<SortedValue, i64>, input: &Input) -> Result<Option<ArrayRef>> {
    let Input::ByOrder(conv, _) = input else {
        return Err(Error::Internal(
            "ordered aggregate without its encoder".into(),
        ));
    };
    if m.is_empty() {
        return Ok(None);
    }
    let parser = conv.parser();
    let rows = m
        .iter()
        .flat_map(|((_, v), n)| std::iter::repeat_n(v, (*n).max(0) as usize))
        .map(|v| parser.parse(v));
    Ok(Some(conv.convert_rows(rows)?.remove(0)))
}

fn string_agg(
    m: &BTreeMap<SortedValue, i64>,
    input: &Input,
    delimiter: &str,
) -> Result<ScalarValue> {
    let Some(values) = ordered_values(m, input)? else {
        return Ok(ScalarValue::Utf8(None));
    };
    let values = cast(&values, &DataType::Utf8)?;
    let values = values.as_string::<i32>();
    let mut out = String::new();
    for (i, v) in values.iter().flatten().enumerate() {
        if i > 0 {
            out.push_str(delimiter);
        }
        out.push_str(v);
    }
    Ok(ScalarValue::Utf8(Some(out)))
}

fn array_agg(m: &BTreeMap<SortedValue, i64>, input: &Input, out: &DataType) -> Result<ScalarValue> {
    let Some(values) = ordered_values(m, input)? else {
        return Ok(ScalarValue::try_from(out)?);
    };
    let nullable = match out {
        DataType::List(f) => f.is_nullable(),
        _ => true,
    };
    Ok(
        datafusion::common::utils::SingleRowListArrayBuilder::new(values)
            .with_nullable(nullable)
            .build_list_scalar(),
    )
}

fn ordered_value(value: Option<&[u8]>, input: &Input, out: &DataType) -> Result<ScalarValue> {
    let (Some(value), Input::ByOrder(conv, _)) = (value, input) else {
        return Ok(ScalarValue::try_from(out)?);
    };
    let arrays = conv.convert_rows(std::iter::once(conv.parser().parse(value)))?;
    Ok(ScalarValue::try_from_array(&arrays[0], 0)?)
}

fn extreme(key: Option<&[u8]>, input: &Input, out: &DataType) -> Result<ScalarValue> {
    let (Some(key), Input::Ordered(conv)) = (key, input) else {
        return Ok(ScalarValue::try_from(out)?);
    };
    let parser = conv.parser();
    let arrays = conv.convert_rows(std::iter::once(parser.parse(key)))?;
    Ok(ScalarValue::try_from_array(&arrays[0], 0)?)
}

fn evaluate(expr: &Arc<dyn PhysicalExpr>, batch: &RecordBatch) -> Result<ArrayRef> {
    Ok(expr.evaluate(batch)?.into_array(batch.num_rows())?)
}

impl Operator for HashAggOperator {
    fn name(&self) -> &'static str {
        "hash_agg"
    }

    /// With EMIT ON WINDOW CLOSE each group is emitted once, final.
    fn append_only(&self, _input: bool) -> bool {
        self.windows.as_ref().is_some_and(|w| w.emit_on_close)
    }

    fn describe(&self) -> String {
        let mut s = format!(
            "hash_agg ({} group keys, {} aggregates",
            self.group_exprs.len(),
            self.aggs.len()
        );
        if let Some(w) = &self.windows {
            s.push_str(&format!(
                "; closes windows on group key #{} (state released when the watermark passes it)",
                w.key + 1
            ));
            if w.emit_on_close {
                s.push_str("; emits each window once, when it closes");
            }
        }
        s.push(')');
        s
    }

    fn data_error(&self) -> Option<(&'static str, String)> {
        self.poisoned.values().next().cloned()
    }

    fn process(&mut self, chunk: Chunk, _out: &mut Vec<Chunk>) -> Result<()> {
        let batch = &chunk.batch;
        let n = batch.num_rows();
        let keys: Vec<ArrayRef> = self
            .group_exprs
            .iter()
            .map(|e| evaluate(e, batch))
            .collect::<Result<_>>()?;
        // A global aggregate has no key columns (and the row format cannot
        // encode zero columns): every row belongs to group 0.
        let rows = if keys.is_empty() {
            None
        } else {
            Some(self.key_converter.convert_columns(&keys)?)
        };
        // Argument columns, read once per chunk in the type each state uses.
        let mut args: Vec<Option<ArrayRef>> = Vec::with_capacity(self.aggs.len());
        let mut encoded: Vec<Option<datafusion::arrow::row::Rows>> =
            Vec::with_capacity(self.aggs.len());
        // Encoded sort keys of the ordered aggregates, by aggregate.
        let mut order_keys: Vec<Option<datafusion::arrow::row::Rows>> =
            Vec::with_capacity(self.aggs.len());
        // FILTER masks and DISTINCT argument encodings, per aggregate.
        let mut masks: Vec<Option<datafusion::arrow::array::BooleanArray>> =
            Vec::with_capacity(self.aggs.len());
        let mut distinct_values: Vec<Option<datafusion::arrow::row::Rows>> =
            Vec::with_capacity(self.aggs.len());
        for (agg_idx, (spec, input)) in self.aggs.iter().zip(&self.inputs).enumerate() {
            let arr = match &spec.input {
                Some(e) => Some(evaluate(e, batch)?),
                None => None,
            };
            masks.push(match &spec.filter {
                Some(f) => Some(evaluate(f, batch)?.as_boolean().clone()),
                None => None,
            });
            distinct_values.push(match (&self.distinct[agg_idx], &arr) {
                (Some(conv), Some(a)) => Some(conv.convert_columns(std::slice::from_ref(a))?),
                _ => None,
            });
            let (arg, enc) = match (input, arr) {
                (Input::OrderedInt, Some(a)) => (Some(cast(&a, &DataType::Int64)?), None),
                (Input::Numeric(agg), Some(a)) => match agg.input {
                    NumericInput::Int => (Some(cast(&a, &DataType::Int64)?), None),
                    NumericInput::Float => (Some(cast(&a, &DataType::Float64)?), None),
                    NumericInput::Decimal { .. } => (Some(a), None),
                },
                (Input::Ordered(c), Some(a)) => {
                    let enc = c.convert_columns(std::slice::from_ref(&a))?;
                    (Some(a), Some(enc))
                }
                (Input::ByOrder(values, orders), Some(a)) => {
                    let keys = spec
                        .order_by
                        .iter()
                        .map(|(e, _)| evaluate(e, batch))
                        .collect::<Result<Vec<_>>>()?;
                    order_keys.push(Some(orders.convert_columns(&keys)?));
                    let enc = values.convert_columns(std::slice::from_ref(&a))?;
                    (Some(a), Some(enc))
                }
                (_, a) => (a, None),
            };
            if order_keys.len() == agg_idx {
                order_keys.push(None);
            }
            args.push(arg);
            encoded.push(enc);
        }
        // Rows for windows that closed: late, left out (the window
        // assignment below the aggregate catches them first; this is for
        // other paths, e.g. a retraction arriving after the close).
        let closed_below = match &self.windows {
            Some(w) => match w.close_below {
                Some(bound) => Some((micros_array(&keys[w.key])?, bound)),
                None => None,
            },
            None => None,
        };
        for (row_idx, op) in chunk.ops.iter().enumerate().take(n) {
            if let Some((bounds, below)) = &closed_below
                && bounds.is_valid(row_idx)
                && bounds.value(row_idx) < *below
            {
                if op.weight() > 0
                    && let Some(sink) = self.windows.as_ref().and_then(|w| w.late.as_ref())
                {
                    sink(LateEvent {
                        event_time: None,
                        watermark: *below,
                        window_start: None,
                        window_end: None,
                        row: row_json(batch, row_idx),
                    });
                }
                continue;
            }
            let w = op.weight();
            let gid = match &rows {
                None => 0,
                Some(rows) => {
                    let key = rows.row(row_idx);
                    match self.index.get(key.as_ref()) {
                        Some(&g) => g,
                        None => {
                            let key_values = keys
                                .iter()
                                .map(|k| ScalarValue::try_from_array(k, row_idx))
                                .collect::<Result<Vec<_>, _>>()?;
                            self.new_group(Box::from(key.as_ref()), key_values)
                        }
                    }
                }
            };
            let group = &mut self.groups[gid];
            group.rows += w;
            if !group.dirty {
                group.dirty = true;
                self.dirty.push(gid);
            }
            for (a, acc) in group.accs.iter_mut().enumerate() {
                let Some(arg) = &args[a] else {
                    continue; // count(*)
                };
                if let Some(mask) = &masks[a]
                    && !(mask.is_valid(row_idx) && mask.value(row_idx))
                {
                    continue;
                }
                if arg.is_null(row_idx) && self.aggs[a].ignore_nulls {
                    continue;
                }
                let mut w = w;
                if let (Some(seen), Some(values)) = (&mut group.seen[a], &distinct_values[a]) {
                    // Only the first copy of a value in, the last one out.
                    let v = values.row(row_idx);
                    // Allocates only for a value the group has not seen.
                    let before = match seen.get_mut(v.as_ref()) {
                        Some(c) => {
                            *c += w;
                            *c - w
                        }
                        None => {
                            seen.insert(Box::from(v.as_ref()), w);
                            0
                        }
                    };
                    let after = before + w;
                    if after == 0 {
                        seen.remove(v.as_ref());
                    }
                    w = match (before > 0, after > 0) {
                        (false, true) => 1,
                        (true, false) => -1,
                        _ => continue,
                    };
                }
                match acc {
                    Acc::Count(c) => *c += w,
                    Acc::Num(st) => match arg.data_type() {
                        DataType::Decimal128(_, _) => NumericAgg::add_int(
                            st,
                            arg.as_primitive::<datafusion::arrow::datatypes::Decimal128Type>()
                                .value(row_idx),
                            w,
                        ),
                        DataType::Float64 => NumericAgg::add_float(
                            st,
                            arg.as_primitive::<Float64Type>().value(row_idx),
                            w,
                        ),
                        _ => NumericAgg::add_int(
                            st,
                            arg.as_primitive::<Int64Type>().value(row_idx) as i128,
                            w,
                        ),
                    },
                    Acc::Bools { t, f } => {
                        if arg.as_boolean().value(row_idx) {
                            *t += w;
                        } else {
                            *f += w;
                        }
                    }
                    Acc::Ordered(map) => {
                        let enc = encoded[a].as_ref().expect("encoded above");
                        let keys = order_keys[a].as_ref().expect("sort keys encoded above");
                        let k = (
                            Box::<[u8]>::from(keys.row(row_idx).as_ref()),
                            Box::<[u8]>::from(enc.row(row_idx).as_ref()),
                        );
                        let c = map.entry(k.clone()).or_insert(0);
                        *c += w;
                        if *c == 0 {
                            map.remove(&k);
                        }
                    }
                    Acc::ExtremeInt(map) => {
                        let v = arg.as_primitive::<Int64Type>().value(row_idx);
                        let c = map.entry(v).or_insert(0);
                        *c += w;
                        if *c == 0 {
                            map.remove(&v);
                        }
                    }
                    Acc::Extreme(map) => {
                        let enc = encoded[a].as_ref().expect("encoded above");
                        let k = enc.row(row_idx);
                        match map.get_mut(k.as_ref()) {
                            Some(c) => {
                                *c += w;
                                if *c == 0 {
                                    map.remove(k.as_ref());
                                }
                            }
                            None => {
                                map.insert(Box::from(k.as_ref()), w);
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Group keys that are plain input columns keep their watermarks.
    fn output_watermarks(&self, input: &[Option<ColumnWatermark>]) -> Watermarks {
        (0..self.schema.fields().len())
            .map(|k| {
                self.key_column(k)
                    .filter(|_| k < self.group_exprs.len())
                    .and_then(|c| watermark_of(input, c))
            })
            .collect()
    }

    fn plan_windows(
        &mut self,
        input: &[Option<ColumnWatermark>],
        emit_on_close: bool,
        late: Option<LateSink>,
    ) -> bool {
        match self.window_keys(input).first() {
            Some(&k) => self.with_windows(k, emit_on_close, late),
            None => false,
        }
    }

    fn on_watermarks(&mut self, input: &[Option<ColumnWatermark>]) {
        if let Some(w) = &mut self.windows
            && let Some(t) = watermark_of(input, w.column)
        {
            w.close_below = Some(w.close_below.map_or(t.micros, |b| b.max(t.micros)));
        }
    }

    fn on_barrier(&mut self, _epoch: EpochInfo, out: &mut Vec<Chunk>) -> Result<()> {
        let mut rows: Vec<Vec<ScalarValue>> = Vec::new();
        let mut ops: Vec<Op> = Vec::new();
        let dirty = std::mem::take(&mut self.dirty);
        let emit_on_close = self.windows.as_ref().is_some_and(|w| w.emit_on_close);
        for gid in dirty {
            if emit_on_close {
                // Emitted once, when its window closes.
                self.groups[gid].dirty = false;
                continue;
            }
            let new = match self.output_row(&self.groups[gid]) {
                Ok(row) => {
                    self.poisoned.remove(&gid);
                    row
                }
                Err(e) if e.sqlstate().starts_with("22") => {
                    let (code, message) = crate::error::sqlstate_of(&e);
                    self.poisoned.insert(gid, (code, message));
                    None
                }
                Err(e) => return Err(e),
            };
            let group = &mut self.groups[gid];
            group.dirty = false;
            match (group.emitted.take(), new) {
                (None, None) => {}
                (None, Some(n)) => {
                    rows.push(n.clone());
                    ops.push(Op::Insert);
                    group.emitted = Some(n);
                }
                (Some(o), None) => {
                    rows.push(o);
                    ops.push(Op::Delete);
                }
                (Some(o), Some(n)) => {
                    if o != n {
                        rows.push(o);
                        ops.push(Op::UpdateDelete);
                        rows.push(n.clone());
                        ops.push(Op::UpdateInsert);
                    }
                    group.emitted = Some(n);
                }
            }
        }
        self.close_windows(&mut rows, &mut ops)?;
        if rows.is_empty() {
            return Ok(());
        }
        let columns = (0..self.schema.fields().len())
            .map(|c| {
                let values = rows.iter().map(|r| r[c].clone());
                ScalarValue::iter_to_array(values)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let batch = crate::storage::files::conform_columns(columns, &self.schema)?;
        out.push(Chunk::new(batch, ops));
        Ok(())
    }
}
