//! UNION ALL of two changelogs: each side's changes pass through, cast to
//! the union's column types. (UNION without ALL is planned by DataFusion as
//! a DISTINCT aggregation over this.)

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::cast;
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
        let columns = chunk
            .batch
            .columns()
            .iter()
            .zip(self.schema.fields())
            .map(|(c, f)| {
                if c.data_type() == f.data_type() {
                    Ok(c.clone())
                } else {
                    cast(c, f.data_type())
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        let batch = RecordBatch::try_new(self.schema.clone(), columns)?;
        out.push(Chunk::new(batch, chunk.ops));
        Ok(())
    }
}
