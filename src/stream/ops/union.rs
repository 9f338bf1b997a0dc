//! UNION ALL of two changelogs: each side's changes pass through, cast to
//! the union's column types. (UNION without ALL is planned by DataFusion as
//! a DISTINCT aggregation over this.)

use datafusion::arrow::datatypes::SchemaRef;

use crate::error::Result;
use crate::stream::chunk::Chunk;
use crate::stream::operator::{JoinSide, TwoInputOperator};

pub struct UnionOperator {
    schema: SchemaRef,
}

impl UnionOperator {
    pub fn new(schema: SchemaRef) -> UnionOperator {
        UnionOperator { schema }
    }
}

impl TwoInputOperator for UnionOperator {
    fn name(&self) -> &'static str {
        "union"
    }

    fn process(&mut self, _side: JoinSide, chunk: Chunk, out: &mut Vec<Chunk>) -> Result<()> {
        let batch =
            crate::storage::files::conform_columns(chunk.batch.columns().to_vec(), &self.schema)?;
        out.push(Chunk::new(batch, chunk.ops));
        Ok(())
    }
}
