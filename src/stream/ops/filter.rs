//! Filter: keeps the rows whose predicate is true (NULL counts as false),
//! evaluated as a DataFusion physical expression on the whole batch.
//!
//! An update pair whose halves disagree stays consistent downstream: a kept
//! `U-` with a dropped `U+` becomes a plain delete, and the reverse a plain
//! insert.

use std::sync::Arc;

use datafusion::arrow::array::{Array, BooleanArray};
use datafusion::arrow::compute::{filter_record_batch, prep_null_mask_filter};
use datafusion::physical_expr::PhysicalExpr;

use crate::error::{Error, Result};
use crate::stream::chunk::{Chunk, Op};
use crate::stream::message::{ColumnWatermark, Watermarks};
use crate::stream::operator::Operator;

pub struct FilterOperator {
    predicate: Arc<dyn PhysicalExpr>,
}

impl FilterOperator {
    pub fn new(predicate: Arc<dyn PhysicalExpr>) -> FilterOperator {
        FilterOperator { predicate }
    }
}

impl Operator for FilterOperator {
    fn name(&self) -> &'static str {
        "filter"
    }

    fn append_only(&self, input: bool) -> bool {
        input
    }

    fn output_watermarks(&self, input: &[Option<ColumnWatermark>]) -> Watermarks {
        input.to_vec()
    }

    fn process(&mut self, chunk: Chunk, out: &mut Vec<Chunk>) -> Result<()> {
        let n = chunk.num_rows();
        let value = self.predicate.evaluate(&chunk.batch)?.into_array(n)?;
        let mask = value
            .as_any()
            .downcast_ref::<BooleanArray>()
            .ok_or_else(|| Error::Internal("filter predicate is not boolean".into()))?;
        let mask = if mask.null_count() > 0 {
            prep_null_mask_filter(mask)
        } else {
            mask.clone()
        };
        match mask.true_count() {
            0 => return Ok(()),
            c if c == n => {
                out.push(chunk);
                return Ok(());
            }
            _ => {}
        }
        let batch = filter_record_batch(&chunk.batch, &mask)?;
        let mut ops = Vec::with_capacity(batch.num_rows());
        for (i, op) in chunk.ops.iter().enumerate() {
            if !mask.value(i) {
                continue;
            }
            // Re-pair updates whose other half was filtered out.
            let op = match op {
                Op::UpdateDelete if i + 1 >= n || !mask.value(i + 1) => Op::Delete,
                Op::UpdateInsert if i == 0 || !mask.value(i - 1) => Op::Insert,
                other => *other,
            };
            ops.push(op);
        }
        out.push(Chunk::new(batch, ops));
        Ok(())
    }
}
