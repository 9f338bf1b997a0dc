//! Project: evaluates a list of DataFusion physical expressions on the whole
//! batch (CASE, casts, string/date/math functions, …). Ops pass through.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::physical_expr::PhysicalExpr;

use crate::error::Result;
use crate::stream::chunk::Chunk;
use crate::stream::message::{ColumnWatermark, Watermarks};
use crate::stream::operator::Operator;

pub struct ProjectOperator {
    exprs: Vec<Arc<dyn PhysicalExpr>>,
    /// The input's schema (to carry watermarks through expressions).
    input: SchemaRef,
    schema: SchemaRef,
}

impl ProjectOperator {
    pub fn new(
        exprs: Vec<Arc<dyn PhysicalExpr>>,
        input: SchemaRef,
        schema: SchemaRef,
    ) -> ProjectOperator {
        ProjectOperator {
            exprs,
            input,
            schema,
        }
    }
}

impl Operator for ProjectOperator {
    fn name(&self) -> &'static str {
        "project"
    }

    fn append_only(&self, input: bool) -> bool {
        input
    }

    /// A column keeps a watermark when its expression is non-decreasing in
    /// one watermarked input column (see [`crate::stream::event_time`]).
    fn output_watermarks(&self, input: &[Option<ColumnWatermark>]) -> Watermarks {
        if input.iter().all(Option::is_none) {
            return Vec::new();
        }
        self.exprs
            .iter()
            .map(|e| crate::stream::event_time::derive(e, &self.input, input))
            .collect()
    }

    fn process(&mut self, chunk: Chunk, out: &mut Vec<Chunk>) -> Result<()> {
        let n = chunk.num_rows();
        let columns = self
            .exprs
            .iter()
            .map(|e| Ok(e.evaluate(&chunk.batch)?.into_array(n)?))
            .collect::<Result<Vec<ArrayRef>>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(n));
        let batch = RecordBatch::try_new_with_options(self.schema.clone(), columns, &options)?;
        out.push(Chunk::new(batch, chunk.ops));
        Ok(())
    }
}
