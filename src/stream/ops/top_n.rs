//! Top-N per group: `ROW_NUMBER() OVER (PARTITION BY … ORDER BY …)` kept to
//! the rows numbered 1..=N — deduplication when N is 1 — and likewise
//! `RANK()` (ties share a rank, so more than N rows may qualify) and
//! `DENSE_RANK()`. Without a partition and without the number column it is
//! a view's global `ORDER BY … LIMIT n OFFSET k`.
//!
//! ```text
//!   chunk ──▶ partition key ──▶ ordered multiset (sort key, row) ──▶ dirty
//!   barrier ──▶ per dirty partition: first N in order, numbered ──▶ diff
//!               with what was emitted ──▶ - old (row, n) / + new (row, n)
//! ```
//!
//! Sort keys are encoded in Arrow's row format with the query's ASC/DESC
//! and NULLS FIRST/LAST, so byte order is the SQL order; ties are broken by
//! the whole row, so the numbering is deterministic. State holds every live
//! row of each partition (a deleted leader must be replaced by the next),
//! one [`StateTable`] entry per partition. With the view's `state_ttl`, a
//! partition not written for that long is forgotten — its emitted rows
//! stay in the view, and a later row of that partition starts it afresh
//! (a deduplicated key can then appear again: the documented exception).

use std::collections::BTreeMap;

use crate::stream::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, UInt64Array};
use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::physical_expr::PhysicalExpr;

use crate::error::Result;
use crate::stream::chunk::{Chunk, Op};
use crate::stream::message::EpochInfo;
use crate::stream::message::{ColumnWatermark, Watermarks};
use crate::stream::operator::{Operator, StateSummary};
use crate::stream::state::{Meter, SlotId, StateTable, StateValue};

/// A row's place in its partition: (encoded sort key, encoded row).
type Ranked = (Box<[u8]>, Box<[u8]>);

/// How rows are numbered in their partition's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Numbering {
    /// 1, 2, 3, … (ties broken by the whole row, so it is deterministic).
    RowNumber,
    /// 1, 1, 3, …: one more than the number of rows strictly before.
    Rank,
    /// 1, 1, 2, …: one more than the number of distinct keys before.
    DenseRank,
}

/// What the operator emits.
#[derive(Debug, Clone, Copy)]
pub struct TopNSpec {
    pub numbering: Numbering,
    /// Keep rows numbered `skip + 1 ..= limit`.
    pub limit: usize,
    pub skip: usize,
    /// Append the number as the last column (the window function's value).
    pub with_number: bool,
}

#[derive(Default)]
struct Partition {
    rows: BTreeMap<Ranked, i64>,
    /// (row, number) emitted at the last barrier, in order.
    emitted: Vec<(Box<[u8]>, u64)>,
    dirty: bool,
}

/// B-tree entry overhead per (key, value) beyond the entry itself (node
/// headers and slack, amortized).
const BTREE_ENTRY_OVERHEAD: usize = 16;

impl StateValue for Partition {
    fn heap_bytes(&self) -> usize {
        let rows: usize = self
            .rows
            .keys()
            .map(|(k, r)| {
                k.len() + r.len() + std::mem::size_of::<(Ranked, i64)>() + BTREE_ENTRY_OVERHEAD
            })
            .sum();
        let emitted: usize = self.emitted.iter().map(|(r, _)| r.len()).sum::<usize>()
            + self.emitted.capacity() * std::mem::size_of::<(Box<[u8]>, u64)>();
        rows + emitted
    }
}

pub struct TopNOperator {
    partition_by: Vec<Arc<dyn PhysicalExpr>>,
    partition_converter: RowConverter,
    order_by: Vec<Arc<dyn PhysicalExpr>>,
    order_converter: RowConverter,
    rows: RowConverter,
    spec: TopNSpec,
    /// Input columns, plus the number if `spec.with_number`.
    schema: SchemaRef,
    partitions: StateTable<Partition>,
    dirty: Vec<SlotId>,
}

impl TopNOperator {
    #[allow(clippy::too_many_arguments)]
    pub fn try_new(
        partition_by: Vec<Arc<dyn PhysicalExpr>>,
        partition_types: Vec<DataType>,
        order_by: Vec<Arc<dyn PhysicalExpr>>,
        order_types: Vec<(DataType, SortOptions)>,
        input_schema: &SchemaRef,
        spec: TopNSpec,
        schema: SchemaRef,
        meter: &Meter,
        ttl: Option<i64>,
    ) -> Result<TopNOperator> {
        Ok(TopNOperator {
            partition_by,
            partition_converter: RowConverter::new(
                partition_types.into_iter().map(SortField::new).collect(),
            )?,
            order_by,
            order_converter: RowConverter::new(
                order_types
                    .into_iter()
                    .map(|(t, o)| SortField::new_with_options(t, o))
                    .collect(),
            )?,
            rows: RowConverter::new(
                input_schema
                    .fields()
                    .iter()
                    .map(|f| SortField::new(f.data_type().clone()))
                    .collect(),
            )?,
            spec,
            schema,
            partitions: StateTable::new("partitions", meter).with_ttl(ttl),
            dirty: Vec::new(),
        })
    }

    fn eval(exprs: &[Arc<dyn PhysicalExpr>], batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
        exprs
            .iter()
            .map(|e| Ok(e.evaluate(batch)?.into_array(batch.num_rows())?))
            .collect()
    }
}

impl Operator for TopNOperator {
    fn name(&self) -> &'static str {
        "top_n"
    }

    /// Its rows are input rows (plus a number): the input columns keep
    /// their watermarks. A row that enters the top N late (it displaced
    /// one) is late downstream too.
    fn output_watermarks(&self, input: &[Option<ColumnWatermark>]) -> Watermarks {
        input.to_vec()
    }

    fn process(&mut self, chunk: Chunk, _out: &mut Vec<Chunk>) -> Result<()> {
        let batch = &chunk.batch;
        let parts = Self::eval(&self.partition_by, batch)?;
        // No PARTITION BY: one partition (the row format cannot encode zero
        // columns).
        let part_rows = if parts.is_empty() {
            None
        } else {
            Some(self.partition_converter.convert_columns(&parts)?)
        };
        let order_rows = self
            .order_converter
            .convert_columns(&Self::eval(&self.order_by, batch)?)?;
        let rows = self.rows.convert_columns(batch.columns())?;
        for (i, op) in chunk.ops.iter().enumerate() {
            let key: &[u8] = part_rows.as_ref().map_or(&[][..], |p| p.row(i).data());
            let (slot, _) = self.partitions.find_or_insert_with(key, Partition::default);
            let partition = self.partitions.value_mut(slot);
            if !partition.dirty {
                partition.dirty = true;
                self.dirty.push(slot);
            }
            let entry = (
                Box::<[u8]>::from(order_rows.row(i).as_ref()),
                Box::<[u8]>::from(rows.row(i).as_ref()),
            );
            let c = partition.rows.entry(entry.clone()).or_insert(0);
            *c += op.weight();
            if *c <= 0 {
                partition.rows.remove(&entry);
            }
        }
        Ok(())
    }

    fn state(&self) -> Vec<StateSummary> {
        vec![self.partitions.summary()]
    }

    fn on_barrier(&mut self, epoch: EpochInfo, out: &mut Vec<Chunk>) -> Result<()> {
        let mut changes: Vec<(Box<[u8]>, u64, Op)> = Vec::new();
        // Slots stay valid through the loop: it removes, never inserts.
        for slot in std::mem::take(&mut self.dirty) {
            let p = self.partitions.value_mut(slot);
            p.dirty = false;
            let top = self.spec.top(&p.rows);
            diff_sorted(&p.emitted, &top, &mut changes);
            p.emitted = top;
            if p.rows.is_empty() {
                self.partitions.remove(slot);
            }
        }
        // Partitions past the TTL are forgotten; what they emitted stays.
        self.partitions.settle(epoch.now);
        if changes.is_empty() {
            return Ok(());
        }
        // Deletes first, so a row moving rank never appears twice.
        changes.sort_by_key(|(_, _, op)| op.weight());
        let parser = self.rows.parser();
        let mut columns = self
            .rows
            .convert_rows(changes.iter().map(|(r, _, _)| parser.parse(r)))?;
        if self.spec.with_number {
            let ranks: ArrayRef = Arc::new(UInt64Array::from_iter_values(
                changes.iter().map(|(_, n, _)| *n),
            ));
            columns.push(ranks);
        }
        let batch = crate::storage::files::conform_columns(columns, &self.schema)?;
        let ops = changes.into_iter().map(|(_, _, op)| op).collect();
        out.push(Chunk::new(batch, ops));
        Ok(())
    }
}

impl TopNSpec {
    /// The rows of a partition this spec keeps, with their numbers, in
    /// order. Reads only as far as the last kept row.
    fn top(&self, rows: &BTreeMap<Ranked, i64>) -> Vec<(Box<[u8]>, u64)> {
        let mut top = Vec::new();
        let mut position = 0u64;
        let mut distinct = 0u64;
        let mut number = 0u64;
        let mut previous: Option<&[u8]> = None;
        'fill: for ((key, row), &count) in rows {
            let new_key = previous != Some(&key[..]);
            previous = Some(&key[..]);
            if new_key {
                distinct += 1;
            }
            for copy in 0..count.max(0) {
                position += 1;
                number = match self.numbering {
                    Numbering::RowNumber => position,
                    Numbering::Rank if new_key && copy == 0 => position,
                    Numbering::Rank => number,
                    Numbering::DenseRank => distinct,
                };
                if number > self.limit as u64 {
                    break 'fill;
                }
                if number > self.skip as u64 {
                    top.push((row.clone(), number));
                }
            }
        }
        top
    }
}

/// The changes from `old` to `new` (both lists of (row, number)): what
/// is in one and not the other, as deletes and inserts. Equal entries,
/// however they moved, produce nothing.
fn diff_sorted(
    old: &[(Box<[u8]>, u64)],
    new: &[(Box<[u8]>, u64)],
    changes: &mut Vec<(Box<[u8]>, u64, Op)>,
) {
    let mut counts: HashMap<(&[u8], u64), i64> = HashMap::default();
    for (r, n) in old {
        *counts.entry((r, *n)).or_default() -= 1;
    }
    for (r, n) in new {
        *counts.entry((r, *n)).or_default() += 1;
    }
    for ((r, n), c) in counts {
        let op = if c < 0 { Op::Delete } else { Op::Insert };
        for _ in 0..c.abs() {
            changes.push((Box::from(r), n, op));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::ops::testing::{chunk, lines};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::physical_expr::expressions::col;

    fn input() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("v", DataType::Int64, true),
        ]))
    }

    /// Rows numbered 1..=limit per k by v DESC NULLS FIRST (PostgreSQL's
    /// default for DESC), without the number column.
    fn top(limit: usize, meter: &Meter, ttl: Option<i64>) -> TopNOperator {
        let s = input();
        TopNOperator::try_new(
            vec![col("k", &s).unwrap()],
            vec![DataType::Int64],
            vec![col("v", &s).unwrap()],
            vec![(
                DataType::Int64,
                SortOptions {
                    descending: true,
                    nulls_first: true,
                },
            )],
            &s,
            TopNSpec {
                numbering: Numbering::RowNumber,
                limit,
                skip: 0,
                with_number: false,
            },
            s.clone(),
            meter,
            ttl,
        )
        .unwrap()
    }

    fn step(op: &mut TopNOperator, text: &str, now: i64) -> Vec<String> {
        let mut out = Vec::new();
        op.process(chunk(&input(), text), &mut out).unwrap();
        op.on_barrier(EpochInfo { epoch: 1, now }, &mut out)
            .unwrap();
        lines(&out)
    }

    #[test]
    fn the_next_row_takes_a_deleted_leaders_place_and_empty_partitions_go() {
        let meter = Meter::root();
        let mut op = top(1, &meter, None);
        assert_eq!(
            step(&mut op, "+ 1 5\n+ 1 9\n+ 1 9\n+ 2 NULL\n+ 2 3\n+ NULL 1", 0),
            ["+ 1 9", "+ 2 NULL", "+ NULL 1"]
        );
        // One copy of a tie deleted: the other still leads, nothing changes.
        assert!(step(&mut op, "- 1 9", 1).is_empty());
        assert_eq!(step(&mut op, "- 1 9", 2), ["+ 1 5", "- 1 9"]);
        assert_eq!(
            step(&mut op, "- 2 NULL\n- 2 3\n- NULL 1", 3),
            ["- 2 NULL", "- NULL 1"]
        );
        assert_eq!(op.state()[0].keys, 1);
        assert_eq!(step(&mut op, "- 1 5", 4), ["- 1 5"]);
        assert_eq!(op.state()[0].keys, 0);
        assert_eq!(meter.bytes(), 0);
    }

    #[test]
    fn dedup_keys_expire_with_state_ttl() {
        let mut op = top(1, &Meter::root(), Some(10));
        assert_eq!(step(&mut op, "+ 1 5", 100), ["+ 1 5"]);
        assert!(step(&mut op, "+ 1 4", 105).is_empty());
        assert!(step(&mut op, "", 116).is_empty());
        assert_eq!(op.state()[0].keys, 0);
        // Forgotten: a later row of the key is emitted again (the
        // documented exception of state_ttl).
        assert_eq!(step(&mut op, "+ 1 3", 117), ["+ 1 3"]);
    }
}
