//! Hash join of two changelogs: inner, left, right and full outer
//! equi-joins.
//!
//! ```text
//!   left chunk ──▶ key ──▶ probe right state ──▶ joined rows (± weights)
//!        │                      └─ no match: left ⋈ NULLs (left/full)
//!        └──▶ update left state; first/last match of a key flips the
//!             right rows' NULL-extended output (right/full)
//!   (and symmetrically for right chunks)
//! ```
//!
//! STATES: per side, the rows of each join key as a counted multiset in
//! Arrow row format. Work per change is proportional to the matching rows
//! of the other side, never to either input. SQL equality never matches
//! NULL keys; with `IS NOT DISTINCT FROM` keys they match each other.

use crate::stream::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, new_null_array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::row::{RowConverter, Rows, SortField};
use datafusion::physical_expr::PhysicalExpr;

use crate::error::Result;
use crate::stream::chunk::{Chunk, Op};
use crate::stream::message::{ColumnWatermark, Watermarks, watermark_of};
use crate::stream::operator::{JoinSide, TwoInputOperator};

/// Which rows without a match are kept, NULL-extended; or, for semi and
/// anti joins, whether a left row is kept while it has a match or while it
/// has none (its output is the left row alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinKind {
    Inner,
    Left,
    Right,
    Full,
    Semi,
    Anti,
}

impl JoinKind {
    fn filters_left(self) -> bool {
        matches!(self, JoinKind::Semi | JoinKind::Anti)
    }

    fn keeps(self, side: JoinSide) -> bool {
        matches!(
            (self, side),
            (JoinKind::Full, _)
                | (JoinKind::Left, JoinSide::Left)
                | (JoinKind::Right, JoinSide::Right)
        )
    }
}

type RowCounts = HashMap<Box<[u8]>, i64>;

struct Side {
    keys: Vec<Arc<dyn PhysicalExpr>>,
    rows: RowConverter,
    /// The encoding of an all-NULL row of this side.
    null_row: Box<[u8]>,
    state: HashMap<Box<[u8]>, RowCounts>,
}

impl Side {
    fn new(keys: Vec<Arc<dyn PhysicalExpr>>, schema: &SchemaRef) -> Result<Side> {
        let rows = RowConverter::new(
            schema
                .fields()
                .iter()
                .map(|f| SortField::new(f.data_type().clone()))
                .collect(),
        )?;
        let nulls: Vec<ArrayRef> = schema
            .fields()
            .iter()
            .map(|f| new_null_array(f.data_type(), 1))
            .collect();
        let null_row = Box::from(rows.convert_columns(&nulls)?.row(0).as_ref());
        Ok(Side {
            keys,
            rows,
            null_row,
            state: HashMap::default(),
        })
    }
}

pub struct HashJoinOperator {
    kind: JoinKind,
    nulls_match: bool,
    key_converter: RowConverter,
    key_types: Vec<DataType>,
    left: Side,
    right: Side,
    schema: SchemaRef,
    /// Columns of the left input (the right's follow them in the output).
    left_width: usize,
}

/// One output row before decoding: the two sides' encodings and a weight.
type Pending = (Option<Box<[u8]>>, Option<Box<[u8]>>, i64);

impl HashJoinOperator {
    #[allow(clippy::too_many_arguments)]
    pub fn try_new(
        kind: JoinKind,
        nulls_match: bool,
        left_keys: Vec<Arc<dyn PhysicalExpr>>,
        right_keys: Vec<Arc<dyn PhysicalExpr>>,
        key_types: Vec<DataType>,
        left_schema: &SchemaRef,
        right_schema: &SchemaRef,
        schema: SchemaRef,
    ) -> Result<HashJoinOperator> {
        Ok(HashJoinOperator {
            kind,
            nulls_match,
            key_converter: RowConverter::new(
                key_types.iter().cloned().map(SortField::new).collect(),
            )?,
            key_types,
            left: Side::new(left_keys, left_schema)?,
            right: Side::new(right_keys, right_schema)?,
            schema,
            left_width: left_schema.fields().len(),
        })
    }

    fn decode(&self, pending: Vec<Pending>) -> Result<Option<Chunk>> {
        let mut lefts = Vec::new();
        let mut rights = Vec::new();
        let mut ops = Vec::new();
        for (l, r, w) in &pending {
            let op = if *w > 0 { Op::Insert } else { Op::Delete };
            for _ in 0..w.unsigned_abs() {
                lefts.push(l.as_deref().unwrap_or(&self.left.null_row));
                rights.push(r.as_deref().unwrap_or(&self.right.null_row));
                ops.push(op);
            }
        }
        if ops.is_empty() {
            return Ok(None);
        }
        let lp = self.left.rows.parser();
        let rp = self.right.rows.parser();
        let mut columns = self
            .left
            .rows
            .convert_rows(lefts.iter().map(|b| lp.parse(b)))?;
        columns.extend(
            self.right
                .rows
                .convert_rows(rights.iter().map(|b| rp.parse(b)))?,
        );
        let batch = crate::storage::files::conform_columns(columns, &self.schema)?;
        Ok(Some(Chunk::new(batch, ops)))
    }
}

impl HashJoinOperator {
    /// The join keys (in the common key types), their encoding, and the
    /// encoding of the whole rows, of one side's batch.
    fn encode(&self, side: JoinSide, batch: &RecordBatch) -> Result<(Vec<ArrayRef>, Rows, Rows)> {
        let this_side = match side {
            JoinSide::Left => &self.left,
            JoinSide::Right => &self.right,
        };
        let n = batch.num_rows();
        let keys = this_side
            .keys
            .iter()
            .zip(&self.key_types)
            .map(|(e, t)| {
                let a = e.evaluate(batch)?.into_array(n)?;
                Ok(if a.data_type() == t { a } else { cast(&a, t)? })
            })
            .collect::<Result<Vec<ArrayRef>>>()?;
        let key_rows = self.key_converter.convert_columns(&keys)?;
        let rows = this_side.rows.convert_columns(batch.columns())?;
        Ok((keys, key_rows, rows))
    }

    /// Semi and anti joins: a left row is in the output while its key has
    /// (semi) or lacks (anti) rows on the right; a right change that takes
    /// a key's count across zero flips every left row of that key.
    fn process_semi(&mut self, side: JoinSide, chunk: Chunk, out: &mut Vec<Chunk>) -> Result<()> {
        let semi = self.kind == JoinKind::Semi;
        let batch = &chunk.batch;
        let n = batch.num_rows();
        let (keys, key_rows, rows) = self.encode(side, batch)?;
        let mut pending: Vec<Pending> = Vec::new();
        for (i, op) in chunk.ops.iter().enumerate().take(n) {
            let w = op.weight();
            let row: Box<[u8]> = Box::from(rows.row(i).as_ref());
            let null_key = !self.nulls_match && keys.iter().any(|k| k.is_null(i));
            match side {
                JoinSide::Left => {
                    if null_key {
                        // Never matches: kept by anti joins only.
                        if !semi {
                            pending.push((Some(row), None, w));
                        }
                        continue;
                    }
                    let key: Box<[u8]> = Box::from(key_rows.row(i).as_ref());
                    let matched = self
                        .right
                        .state
                        .get(&key)
                        .is_some_and(|m| m.values().sum::<i64>() > 0);
                    if matched == semi {
                        pending.push((Some(row.clone()), None, w));
                    }
                    bump(&mut self.left.state, &key, &row, w);
                }
                JoinSide::Right => {
                    if null_key {
                        continue;
                    }
                    let key: Box<[u8]> = Box::from(key_rows.row(i).as_ref());
                    let before: i64 = self.right.state.get(&key).map_or(0, |m| m.values().sum());
                    let after = before + w;
                    if (before == 0) != (after == 0)
                        && let Some(lefts) = self.left.state.get(&key)
                    {
                        // Semi: rows enter when the first match appears;
                        // anti: they leave.
                        let entering = (after > 0) == semi;
                        let sign = if entering { 1 } else { -1 };
                        for (lrow, &count) in lefts {
                            pending.push((Some(lrow.clone()), None, sign * count));
                        }
                    }
                    bump(&mut self.right.state, &key, &row, w);
                }
            }
        }
        if let Some(c) = self.decode(pending)? {
            out.push(c);
        }
        Ok(())
    }
}

/// Adds `w` to `row` under `key`, dropping entries that reach zero; it
/// allocates only for a new key or row.
fn bump(state: &mut HashMap<Box<[u8]>, RowCounts>, key: &[u8], row: &[u8], w: i64) {
    match state.get_mut(key) {
        Some(rows) => {
            match rows.get_mut(row) {
                Some(c) => {
                    *c += w;
                    if *c == 0 {
                        rows.remove(row);
                    }
                }
                None => {
                    rows.insert(Box::from(row), w);
                }
            }
            if rows.is_empty() {
                state.remove(key);
            }
        }
        None => {
            state.insert(Box::from(key), HashMap::from_iter([(Box::from(row), w)]));
        }
    }
}

impl TwoInputOperator for HashJoinOperator {
    fn name(&self) -> &'static str {
        "hash_join"
    }

    /// An inner join of two append-only inputs only adds pairs.
    fn append_only(&self, left: bool, right: bool) -> bool {
        self.kind == JoinKind::Inner && left && right
    }

    /// Each side's columns keep their watermarks where that side's rows
    /// are the output's rows: both sides of an inner join, the preserved
    /// side of an outer one (its NULL-extended rows still carry its
    /// times), the left of semi and anti joins.
    fn output_watermarks(
        &self,
        left: &[Option<ColumnWatermark>],
        right: &[Option<ColumnWatermark>],
    ) -> Watermarks {
        let (keep_left, keep_right) = match self.kind {
            JoinKind::Inner => (true, true),
            JoinKind::Left | JoinKind::Semi | JoinKind::Anti => (true, false),
            JoinKind::Right => (false, true),
            JoinKind::Full => (false, false),
        };
        let mut out: Watermarks = vec![None; self.schema.fields().len()];
        for (i, slot) in out.iter_mut().enumerate() {
            *slot = if i < self.left_width {
                keep_left.then(|| watermark_of(left, i)).flatten()
            } else {
                keep_right
                    .then(|| watermark_of(right, i - self.left_width))
                    .flatten()
            };
        }
        out
    }

    fn process(&mut self, side: JoinSide, chunk: Chunk, out: &mut Vec<Chunk>) -> Result<()> {
        if self.kind.filters_left() {
            return self.process_semi(side, chunk, out);
        }
        let batch = &chunk.batch;
        let n = batch.num_rows();
        let (keys, key_rows, rows) = self.encode(side, batch)?;
        let other_side = match side {
            JoinSide::Left => JoinSide::Right,
            JoinSide::Right => JoinSide::Left,
        };
        let this_keeps = self.kind.keeps(side);
        let other_keeps = self.kind.keeps(other_side);
        let pair = |mine: Option<Box<[u8]>>, theirs: Option<Box<[u8]>>, w: i64| match side {
            JoinSide::Left => (mine, theirs, w),
            JoinSide::Right => (theirs, mine, w),
        };
        let (mine, theirs) = match side {
            JoinSide::Left => (&mut self.left.state, &self.right.state),
            JoinSide::Right => (&mut self.right.state, &self.left.state),
        };
        let mut pending: Vec<Pending> = Vec::new();
        for (i, op) in chunk.ops.iter().enumerate().take(n) {
            let w = op.weight();
            let row: Box<[u8]> = Box::from(rows.row(i).as_ref());
            if !self.nulls_match && keys.iter().any(|k| k.is_null(i)) {
                // NULL never equals anything: no match, ever.
                if this_keeps {
                    pending.push(pair(Some(row), None, w));
                }
                continue;
            }
            let key: Box<[u8]> = Box::from(key_rows.row(i).as_ref());
            let matches = theirs.get(&key);
            let other_total: i64 = matches.map_or(0, |m| m.values().sum());
            if let Some(m) = matches {
                for (orow, &count) in m {
                    pending.push(pair(Some(row.clone()), Some(orow.clone()), w * count));
                }
            }
            if this_keeps && other_total == 0 {
                pending.push(pair(Some(row.clone()), None, w));
            }
            let rows_of_key = mine.entry(key).or_default();
            let before: i64 = rows_of_key.values().sum();
            let after = before + w;
            if other_keeps && other_total > 0 && (before == 0) != (after == 0) {
                // This key's first row appears (the other side's rows stop
                // being NULL-extended) or its last row goes (they are again).
                let sign = if after == 0 { 1 } else { -1 };
                for (orow, &count) in matches.expect("other_total > 0") {
                    pending.push(pair(None, Some(orow.clone()), sign * count));
                }
            }
            let c = rows_of_key.entry(row.clone()).or_insert(0);
            *c += w;
            if *c == 0 {
                rows_of_key.remove(&row);
            }
            if rows_of_key.is_empty() {
                // State stays proportional to the live rows.
                mine.remove(key_rows.row(i).as_ref());
            }
        }
        if let Some(c) = self.decode(pending)? {
            out.push(c);
        }
        Ok(())
    }
}
