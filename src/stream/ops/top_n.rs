//! Top-N per group: `ROW_NUMBER() OVER (PARTITION BY … ORDER BY …)` kept to
//! the rows numbered 1..=N — deduplication when N is 1.
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
//! row of each partition (a deleted leader must be replaced by the next).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, UInt64Array};
use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::physical_expr::PhysicalExpr;

use crate::error::Result;
use crate::stream::chunk::{Chunk, Op};
use crate::stream::message::Epoch;
use crate::stream::operator::Operator;

/// A row's place in its partition: (encoded sort key, encoded row).
type Ranked = (Box<[u8]>, Box<[u8]>);

#[derive(Default)]
struct Partition {
    rows: BTreeMap<Ranked, i64>,
    /// Rows emitted at the last barrier, in rank order.
    emitted: Vec<Box<[u8]>>,
    dirty: bool,
}

pub struct TopNOperator {
    partition_by: Vec<Arc<dyn PhysicalExpr>>,
    partition_converter: RowConverter,
    order_by: Vec<Arc<dyn PhysicalExpr>>,
    order_converter: RowConverter,
    rows: RowConverter,
    limit: usize,
    /// Input columns plus the row number.
    schema: SchemaRef,
    partitions: HashMap<Box<[u8]>, Partition>,
    dirty: Vec<Box<[u8]>>,
}

impl TopNOperator {
    #[allow(clippy::too_many_arguments)]
    pub fn try_new(
        partition_by: Vec<Arc<dyn PhysicalExpr>>,
        partition_types: Vec<DataType>,
        order_by: Vec<Arc<dyn PhysicalExpr>>,
        order_types: Vec<(DataType, SortOptions)>,
        input_schema: &SchemaRef,
        limit: usize,
        schema: SchemaRef,
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
            limit,
            schema,
            partitions: HashMap::new(),
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
            let partition = match self.partitions.get_mut(key) {
                Some(p) => p,
                None => self.partitions.entry(Box::from(key)).or_default(),
            };
            if !partition.dirty {
                partition.dirty = true;
                self.dirty.push(Box::from(key));
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

    fn on_barrier(&mut self, _epoch: Epoch, out: &mut Vec<Chunk>) -> Result<()> {
        let mut changes: Vec<(Box<[u8]>, u64, Op)> = Vec::new();
        for key in std::mem::take(&mut self.dirty) {
            let Some(p) = self.partitions.get_mut(&key) else {
                continue;
            };
            p.dirty = false;
            let mut top: Vec<Box<[u8]>> = Vec::with_capacity(self.limit);
            'fill: for ((_, row), &count) in &p.rows {
                for _ in 0..count {
                    if top.len() == self.limit {
                        break 'fill;
                    }
                    top.push(row.clone());
                }
            }
            let len = p.emitted.len().max(top.len());
            for rank in 0..len {
                let (old, new) = (p.emitted.get(rank), top.get(rank));
                if old == new {
                    continue;
                }
                if let Some(o) = old {
                    changes.push((o.clone(), rank as u64 + 1, Op::Delete));
                }
                if let Some(n) = new {
                    changes.push((n.clone(), rank as u64 + 1, Op::Insert));
                }
            }
            p.emitted = top;
            if p.rows.is_empty() {
                self.partitions.remove(&key);
            }
        }
        if changes.is_empty() {
            return Ok(());
        }
        // Deletes first, so a row moving rank never appears twice.
        changes.sort_by_key(|(_, _, op)| op.weight());
        let parser = self.rows.parser();
        let mut columns = self
            .rows
            .convert_rows(changes.iter().map(|(r, _, _)| parser.parse(r)))?;
        let ranks: ArrayRef = Arc::new(UInt64Array::from_iter_values(
            changes.iter().map(|(_, n, _)| *n),
        ));
        columns.push(ranks);
        let batch = crate::storage::files::conform_columns(columns, &self.schema)?;
        let ops = changes.into_iter().map(|(_, _, op)| op).collect();
        out.push(Chunk::new(batch, ops));
        Ok(())
    }
}
