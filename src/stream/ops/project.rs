//! Project: evaluates a list of DataFusion physical expressions on the whole
//! batch (CASE, casts, string/date/math functions, …). Ops pass through.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::physical_expr::PhysicalExpr;

use crate::error::Result;
use crate::stream::chunk::Chunk;
use crate::stream::operator::Operator;

pub struct ProjectOperator {
    exprs: Vec<Arc<dyn PhysicalExpr>>,
    schema: SchemaRef,
}

impl ProjectOperator {
    pub fn new(exprs: Vec<Arc<dyn PhysicalExpr>>, schema: SchemaRef) -> ProjectOperator {
        ProjectOperator { exprs, schema }
    }
}

impl Operator for ProjectOperator {
    fn name(&self) -> &'static str {
        "project"
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
