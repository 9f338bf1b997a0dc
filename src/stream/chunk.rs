//! The changelog chunk: an Arrow [`RecordBatch`] plus one [`Op`] per row.
//!
//! Ops live beside the batch, never inside the user schema. An update is the
//! pair `UpdateDelete` (old row) then `UpdateInsert` (new row), adjacent and
//! never split across chunks. For tests and logs a chunk has a text form, one
//! row per line: `+ 1 a` (insert), `- 1 a` (delete), `U- 1 a` / `U+ 1 b`.

use std::fmt;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::display::array_value_to_string;

/// What a row of a chunk does to the collection it describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i8)]
pub enum Op {
    Insert = 1,
    Delete = -1,
    UpdateInsert = 2,
    UpdateDelete = -2,
}

impl Op {
    /// +1 for rows that add to the collection, -1 for rows that remove.
    pub fn weight(self) -> i64 {
        match self {
            Op::Insert | Op::UpdateInsert => 1,
            Op::Delete | Op::UpdateDelete => -1,
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            Op::Insert => "+",
            Op::Delete => "-",
            Op::UpdateInsert => "U+",
            Op::UpdateDelete => "U-",
        }
    }
}

/// A batch of changes.
#[derive(Debug, Clone)]
pub struct Chunk {
    pub batch: RecordBatch,
    pub ops: Vec<Op>,
}

impl Chunk {
    /// A chunk whose rows all have the same op.
    pub fn uniform(batch: RecordBatch, op: Op) -> Chunk {
        let ops = vec![op; batch.num_rows()];
        Chunk { batch, ops }
    }

    pub fn new(batch: RecordBatch, ops: Vec<Op>) -> Chunk {
        debug_assert_eq!(batch.num_rows(), ops.len());
        Chunk { batch, ops }
    }

    pub fn num_rows(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

impl fmt::Display for Chunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (row, op) in self.ops.iter().enumerate() {
            write!(f, "{}", op.symbol())?;
            for col in self.batch.columns() {
                let v = if col.is_null(row) {
                    "NULL".to_string()
                } else {
                    array_value_to_string(col, row).map_err(|_| fmt::Error)?
                };
                write!(f, " {v}")?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}
