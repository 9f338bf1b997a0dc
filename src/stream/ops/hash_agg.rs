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
//!
//! State: one [`StateTable`] entry per group, keyed by the encoded group
//! key (the key columns are decoded from it for output, never kept twice).
//! A group whose rows are all deleted is removed at the barrier. With the
//! view's `state_ttl`, a group not written for that long is forgotten (its
//! row stays in the view): how `DISTINCT ON` deduplication is bounded.

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
use crate::stream::event_time::micros_array;
use crate::stream::exact::{NumState, NumericAgg, NumericFunc, NumericInput, Spread};
use crate::stream::late_events::{LateEvent, LateSink, row_json};
use crate::stream::message::{ColumnWatermark, EpochInfo, Watermarks, watermark_of};
use crate::stream::operator::{Operator, StateSummary};
use crate::stream::state::{Meter, SlotId, StateTable, StateValue};

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
    rows: i64,
    accs: Vec<Acc>,
    /// For DISTINCT aggregates: how many live rows carry each argument value.
    seen: Vec<Option<HashMap<Box<[u8]>, i64>>>,
    /// The aggregate values last emitted (the key columns are the state
    /// key).
    emitted: Option<Vec<ScalarValue>>,
    dirty: bool,
    /// The group's window bound (µs) when the aggregate closes windows.
    bound: Option<i64>,
}

/// Per-entry overhead of a B-tree map entry (node headers, slack).
const BTREE_ENTRY_OVERHEAD: usize = 16;

impl StateValue for Acc {
    fn heap_bytes(&self) -> usize {
        match self {
            Acc::Count(_) | Acc::Num(_) | Acc::Bools { .. } => 0,
            Acc::Extreme(m) => m
                .keys()
                .map(|k| k.len() + std::mem::size_of::<(Box<[u8]>, i64)>() + BTREE_ENTRY_OVERHEAD)
                .sum(),
            Acc::ExtremeInt(m) => m.len() * (16 + BTREE_ENTRY_OVERHEAD),
            Acc::Ordered(m) => m
                .keys()
                .map(|(k, v)| {
                    k.len()
                        + v.len()
                        + std::mem::size_of::<(SortedValue, i64)>()
                        + BTREE_ENTRY_OVERHEAD
                })
                .sum(),
        }
    }
}

impl StateValue for Group {
    fn heap_bytes(&self) -> usize {
        let accs: usize = self
            .accs
            .iter()
            .map(|a| std::mem::size_of::<Acc>() + a.heap_bytes())
            .sum();
        let seen: usize = self
            .seen
            .iter()
            .map(|m| {
                std::mem::size_of::<Option<HashMap<Box<[u8]>, i64>>>()
                    + m.as_ref().map_or(0, |m| m.heap_bytes())
            })
            .sum();
        let emitted = self.emitted.as_ref().map_or(0, |v| {
            v.iter()
                .map(|x| std::mem::size_of::<ScalarValue>() + x.size() - std::mem::size_of_val(x))
                .sum()
        });
        accs + seen + emitted
    }
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
    groups: StateTable<Group>,
    dirty: Vec<SlotId>,
    /// Groups whose value raises a data error (a sum past 38 digits): no
    /// row is shown for them, and the view reports the error.
    poisoned: BTreeMap<usize, (&'static str, String)>,
    /// Event-time windows, when a group key is a window bound.
    windows: Option<Windows>,
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
    /// Open groups by their bound (microseconds). An entry may name a
    /// group removed since (all its rows deleted): closing checks the
    /// group's bound.
    open: BTreeMap<i64, Vec<SlotId>>,
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
        meter: &Meter,
        ttl: Option<i64>,
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
            groups: StateTable::new("groups", meter).with_ttl(ttl),
            dirty: Vec::new(),
            poisoned: BTreeMap::new(),
            windows: None,
        };
        if op.group_exprs.is_empty() {
            // The one group of a global aggregate exists from the start
            // (slot 0, the empty key) and is never removed.
            op.group_slot(&[], None);
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

    /// Releases the groups whose window closed (EOWC: emitting them first
    /// into `emit`); their slots go to `release`.
    fn close_windows(&mut self, emit: &mut Emitted, release: &mut Vec<SlotId>) -> Result<()> {
        let Some(w) = &mut self.windows else {
            return Ok(());
        };
        let Some(bound) = w.close_below else {
            return Ok(());
        };
        let still_open = w.open.split_off(&bound);
        let closed = std::mem::replace(&mut w.open, still_open);
        let eowc = w.emit_on_close;
        for (b, slots) in closed {
            for slot in slots {
                // Skip entries of groups removed since (their slot may hold
                // another window's group now).
                if !self.groups.is_live(slot) || self.groups.value(slot).bound != Some(b) {
                    continue;
                }
                if eowc {
                    match self.output_row(self.groups.value(slot)) {
                        Ok(Some(row)) => emit.push(slot, row, Op::Insert),
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
                // Not live after this barrier: no duplicate release.
                self.groups.value_mut(slot).bound = None;
                release.push(slot);
            }
        }
        Ok(())
    }

    /// The slot of the group with encoded key `key`, created if new
    /// (`bound`: its window bound, when the aggregate closes windows).
    fn group_slot(&mut self, key: &[u8], bound: Option<i64>) -> SlotId {
        let (inputs, distinct) = (&self.inputs, &self.distinct);
        let (slot, inserted) = self.groups.find_or_insert_with(key, || {
            let accs = inputs
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
            let seen = distinct
                .iter()
                .map(|d| d.as_ref().map(|_| HashMap::default()))
                .collect();
            Group {
                rows: 0,
                accs,
                seen,
                emitted: None,
                // A global aggregate emits its row at the first barrier.
                dirty: true,
                bound,
            }
        });
        if inserted {
            if let Some(w) = &mut self.windows
                && let Some(b) = bound
            {
                w.open.entry(b).or_default().push(slot);
            }
            self.dirty.push(slot);
        }
        slot
    }

    /// The aggregate values of a group (its key columns come from its
    /// state key); `None` for a group without rows.
    fn output_row(&self, g: &Group) -> Result<Option<Vec<ScalarValue>>> {
        if g.rows == 0 && !self.group_exprs.is_empty() {
            return Ok(None);
        }
        let mut row = Vec::with_capacity(self.aggs.len());
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
        let window_bounds = match &self.windows {
            Some(w) => Some(micros_array(&keys[w.key])?),
            None => None,
        };
        let closed_below = match (&self.windows, &window_bounds) {
            (Some(w), Some(b)) => w.close_below.map(|below| (b, below)),
            _ => None,
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
                    let bound = window_bounds
                        .as_ref()
                        .and_then(|b| b.is_valid(row_idx).then(|| b.value(row_idx)));
                    self.group_slot(rows.row(row_idx).as_ref(), bound)
                }
            };
            let group = self.groups.value_mut(gid);
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

    fn state(&self) -> Vec<StateSummary> {
        vec![self.groups.summary()]
    }

    fn on_barrier(&mut self, epoch: EpochInfo, out: &mut Vec<Chunk>) -> Result<()> {
        let mut emit = Emitted::default();
        let mut release: Vec<SlotId> = Vec::new();
        let dirty = std::mem::take(&mut self.dirty);
        let emit_on_close = self.windows.as_ref().is_some_and(|w| w.emit_on_close);
        let global = self.group_exprs.is_empty();
        for gid in dirty {
            if emit_on_close {
                // Emitted once, when its window closes.
                let group = self.groups.value_mut(gid);
                group.dirty = false;
                if group.rows == 0 {
                    release.push(gid);
                }
                continue;
            }
            let new = match self.output_row(self.groups.value(gid)) {
                Ok(row) => {
                    self.poisoned.remove(&(gid as usize));
                    row
                }
                Err(e) if e.sqlstate().starts_with("22") => {
                    let (code, message) = crate::error::sqlstate_of(&e);
                    self.poisoned.insert(gid as usize, (code, message));
                    None
                }
                Err(e) => return Err(e),
            };
            let group = self.groups.value_mut(gid);
            group.dirty = false;
            match (group.emitted.take(), new) {
                (None, None) => {}
                (None, Some(n)) => {
                    group.emitted = Some(n.clone());
                    emit.push(gid, n, Op::Insert);
                }
                (Some(o), None) => emit.push(gid, o, Op::Delete),
                (Some(o), Some(n)) => {
                    group.emitted = Some(n.clone());
                    if o != n {
                        emit.push(gid, o, Op::UpdateDelete);
                        emit.push(gid, n, Op::UpdateInsert);
                    }
                }
            }
            // A group without rows holds nothing worth keeping.
            if group.rows == 0 && !global {
                release.push(gid);
            }
        }
        self.close_windows(&mut emit, &mut release)?;
        if !emit.ops.is_empty() {
            out.push(self.emitted_chunk(emit)?);
        }
        release.sort_unstable();
        release.dedup();
        for slot in release {
            self.poisoned.remove(&(slot as usize));
            self.groups.remove(slot);
        }
        // Groups past the view's state_ttl are forgotten; their rows stay.
        for (key, _) in self.groups.settle(epoch.now) {
            tracing::trace!(bytes = key.len(), "aggregate group expired by state_ttl");
        }
        Ok(())
    }
}

/// Output rows being gathered at a barrier: each group's slot (its key
/// columns), aggregate values and op.
#[derive(Default)]
struct Emitted {
    slots: Vec<SlotId>,
    values: Vec<Vec<ScalarValue>>,
    ops: Vec<Op>,
}

impl Emitted {
    fn push(&mut self, slot: SlotId, values: Vec<ScalarValue>, op: Op) {
        self.slots.push(slot);
        self.values.push(values);
        self.ops.push(op);
    }
}

impl HashAggOperator {
    /// The chunk of gathered rows: key columns decoded from the groups'
    /// state keys in one pass, then the aggregate columns.
    fn emitted_chunk(&self, emit: Emitted) -> Result<Chunk> {
        let mut columns = if self.group_exprs.is_empty() {
            Vec::new()
        } else {
            let parser = self.key_converter.parser();
            self.key_converter
                .convert_rows(emit.slots.iter().map(|&s| parser.parse(self.groups.key(s))))?
        };
        for a in 0..self.aggs.len() {
            let values = emit.values.iter().map(|r| r[a].clone());
            columns.push(ScalarValue::iter_to_array(values)?);
        }
        let batch = crate::storage::files::conform_columns(columns, &self.schema)?;
        Ok(Chunk::new(batch, emit.ops))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::ops::testing::{chunk, lines};
    use datafusion::arrow::datatypes::{Field, Schema, TimeUnit};
    use datafusion::physical_expr::expressions::col;

    fn input() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("w", DataType::Timestamp(TimeUnit::Microsecond, None), true),
            Field::new("v", DataType::Int64, true),
        ]))
    }

    /// `SELECT <keys>, count(*), min(v) … GROUP BY <keys>`.
    fn agg(keys: &[&str], meter: &Meter, ttl: Option<i64>) -> HashAggOperator {
        let schema = input();
        let mut fields: Vec<Field> = keys
            .iter()
            .map(|k| schema.field_with_name(k).unwrap().clone())
            .collect();
        fields.push(Field::new("n", DataType::Int64, false));
        fields.push(Field::new("lo", DataType::Int64, true));
        let spec = |kind, input: Option<&str>| AggSpec {
            kind,
            input: input.map(|c| col(c, &schema).unwrap()),
            output_type: DataType::Int64,
            order_by: Vec::new(),
            filter: None,
            distinct: false,
            delimiter: None,
            ignore_nulls: true,
        };
        HashAggOperator::try_new(
            keys.iter().map(|k| col(k, &schema).unwrap()).collect(),
            keys.iter()
                .map(|k| schema.field_with_name(k).unwrap().data_type().clone())
                .collect(),
            vec![
                spec(AggKind::CountStar, None),
                spec(AggKind::Min, Some("v")),
            ],
            vec![None, Some(DataType::Int64)],
            Arc::new(Schema::new(fields)),
            meter,
            ttl,
        )
        .unwrap()
    }

    fn step(op: &mut HashAggOperator, text: &str, now: i64) -> Vec<String> {
        let mut out = Vec::new();
        op.process(chunk(&input(), text), &mut out).unwrap();
        op.on_barrier(EpochInfo { epoch: 1, now }, &mut out)
            .unwrap();
        lines(&out)
    }

    #[test]
    fn groups_update_once_per_barrier_and_leave_state_when_empty() {
        let meter = Meter::root();
        let mut op = agg(&["k"], &meter, None);
        assert_eq!(
            step(
                &mut op,
                "+ 1 NULL 5\n+ 1 NULL 3\n+ 2 NULL 7\n+ NULL NULL NULL",
                0
            ),
            ["+ 1 2 3", "+ 2 1 7", "+ NULL 1 NULL"]
        );
        // The minimum deleted: the next one takes its place.
        assert_eq!(step(&mut op, "- 1 NULL 3", 1), ["U+ 1 1 5", "U- 1 2 3"]);
        assert_eq!(op.state()[0].keys, 3);
        // Every row of a group deleted: its row goes, and so does its state.
        assert_eq!(
            step(&mut op, "- 2 NULL 7\n- NULL NULL NULL", 2),
            ["- 2 1 7", "- NULL 1 NULL"]
        );
        assert_eq!(op.state()[0].keys, 1);
        assert!(meter.bytes() > 0);
        assert_eq!(step(&mut op, "- 1 NULL 5", 3), ["- 1 1 5"]);
        assert_eq!(
            op.state(),
            vec![StateSummary {
                table: "groups",
                keys: 0,
                bytes: 0
            }]
        );
        assert_eq!(meter.bytes(), 0);
        // A group coming back starts afresh.
        assert_eq!(step(&mut op, "+ 1 NULL 9", 4), ["+ 1 1 9"]);
    }

    #[test]
    fn a_global_aggregate_keeps_its_one_row() {
        let mut op = agg(&[], &Meter::root(), None);
        assert_eq!(step(&mut op, "", 0), ["+ 0 NULL"]);
        assert_eq!(step(&mut op, "+ 1 NULL 4", 1), ["U+ 1 4", "U- 0 NULL"]);
        assert_eq!(step(&mut op, "- 1 NULL 4", 2), ["U+ 0 NULL", "U- 1 4"]);
        assert_eq!(op.state()[0].keys, 1);
    }

    fn watermark(op: &mut HashAggOperator, micros: i64) {
        let mut w: Watermarks = vec![None; 3];
        w[1] = Some(ColumnWatermark {
            micros,
            window: true,
        });
        op.on_watermarks(&w);
    }

    fn windowed(emit_on_close: bool) -> (HashAggOperator, Arc<std::sync::Mutex<Vec<i64>>>) {
        let mut op = agg(&["k", "w"], &Meter::root(), None);
        let late = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = late.clone();
        let sink: LateSink = Arc::new(move |e: LateEvent| seen.lock().unwrap().push(e.watermark));
        assert!(op.with_windows(1, emit_on_close, Some(sink)));
        (op, late)
    }

    const T0: &str = "1970-01-01T00:00:00";
    const T1: &str = "1970-01-01T00:01:00";

    #[test]
    fn windows_close_at_the_watermark_and_release_their_groups() {
        let (mut op, late) = windowed(false);
        let rows = format!("+ 1 {T0} 5\n+ 2 {T0} 6\n+ 1 {T1} 7");
        assert_eq!(step(&mut op, &rows, 0).len(), 3);
        // The watermark reaches the second window's start: the first closes.
        watermark(&mut op, 60_000_000);
        assert!(step(&mut op, "", 1).is_empty());
        assert_eq!(op.state()[0].keys, 1);
        // A row for the closed window is late: left out, recorded.
        assert_eq!(
            step(&mut op, &format!("+ 1 {T0} 1\n+ 1 {T1} 2"), 2),
            [
                "U+ 1 1970-01-01T00:01:00 2 2",
                "U- 1 1970-01-01T00:01:00 1 7"
            ]
        );
        assert_eq!(*late.lock().unwrap(), [60_000_000]);
    }

    #[test]
    fn emit_on_window_close_emits_each_window_once_final() {
        let (mut op, _) = windowed(true);
        assert!(step(&mut op, &format!("+ 1 {T0} 5\n+ 1 {T1} 7"), 0).is_empty());
        assert!(step(&mut op, &format!("+ 1 {T0} 3\n- 1 {T1} 7"), 1).is_empty());
        watermark(&mut op, 60_000_001);
        assert_eq!(step(&mut op, "", 2), ["+ 1 1970-01-01T00:00:00 2 3"]);
        // The second window lost its only row: nothing to emit, no state.
        assert_eq!(op.state()[0].keys, 0);
        watermark(&mut op, 120_000_000);
        assert!(step(&mut op, "", 3).is_empty());
    }

    #[test]
    fn state_ttl_forgets_groups_not_written_for_that_long() {
        let mut op = agg(&["k"], &Meter::root(), Some(10));
        step(&mut op, "+ 1 NULL 5\n+ 2 NULL 5", 100);
        step(&mut op, "+ 2 NULL 4", 105);
        assert!(step(&mut op, "", 111).is_empty(), "expiry emits nothing");
        assert_eq!(op.state()[0].keys, 1);
        // The forgotten key starts again from nothing (the documented
        // exception: its earlier row stays in the view).
        assert_eq!(step(&mut op, "+ 1 NULL 8", 112), ["+ 1 1 8"]);
    }
}
