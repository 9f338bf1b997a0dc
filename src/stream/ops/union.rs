//! UNION ALL of two changelogs: each side's changes pass through, cast to
//! the union's column types. (UNION without ALL is planned by DataFusion as
//! a DISTINCT aggregation over this.)

use datafusion::arrow::datatypes::SchemaRef;

use crate::error::Result;
use crate::stream::chunk::Chunk;
use crate::stream::message::{ColumnWatermark, Watermarks, watermark_of};
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

    fn append_only(&self, left: bool, right: bool) -> bool {
        left && right
    }

    /// The minimum of the inputs' watermarks, per column; an input without
    /// one holds the column's back entirely.
    fn output_watermarks(
        &self,
        left: &[Option<ColumnWatermark>],
        right: &[Option<ColumnWatermark>],
    ) -> Watermarks {
        (0..self.schema.fields().len())
            .map(|i| match (watermark_of(left, i), watermark_of(right, i)) {
                (Some(l), Some(r)) => Some(ColumnWatermark {
                    micros: l.micros.min(r.micros),
                    window: l.window && r.window,
                }),
                _ => None,
            })
            .collect()
    }

    fn process(&mut self, _side: JoinSide, chunk: Chunk, out: &mut Vec<Chunk>) -> Result<()> {
        let batch =
            crate::storage::files::conform_columns(chunk.batch.columns().to_vec(), &self.schema)?;
        out.push(Chunk::new(batch, chunk.ops));
        Ok(())
    }
}
