//! Test helpers: chunks from their text form and back.
//!
//! `chunk(&schema, "+ 1 a\n- 2 NULL")` builds a chunk: one row per line,
//! the op (`+`, `-`, `U-`, `U+`) then one whitespace-separated value per
//! column, parsed by Arrow's cast from text (`NULL` is null; timestamps as
//! `2026-01-01T00:00:00`). [`lines`] gives the text form of output chunks,
//! sorted, so tests compare with a literal list.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::SchemaRef;

use crate::stream::chunk::{Chunk, Op};

pub fn chunk(schema: &SchemaRef, text: &str) -> Chunk {
    let mut ops = Vec::new();
    let mut cells: Vec<Vec<Option<String>>> = vec![Vec::new(); schema.fields().len()];
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let mut parts = line.split_whitespace();
        ops.push(match parts.next() {
            Some("+") => Op::Insert,
            Some("-") => Op::Delete,
            Some("U+") => Op::UpdateInsert,
            Some("U-") => Op::UpdateDelete,
            other => panic!("bad op {other:?} in {line:?}"),
        });
        let values: Vec<&str> = parts.collect();
        assert_eq!(values.len(), cells.len(), "columns in {line:?}");
        for (c, v) in cells.iter_mut().zip(values) {
            c.push((v != "NULL").then(|| v.to_string()));
        }
    }
    let columns: Vec<ArrayRef> = cells
        .into_iter()
        .zip(schema.fields())
        .map(|(c, f)| cast(&(Arc::new(StringArray::from(c)) as ArrayRef), f.data_type()).unwrap())
        .collect();
    Chunk::new(RecordBatch::try_new(schema.clone(), columns).unwrap(), ops)
}

/// The text form of `out`, one line per row, sorted.
pub fn lines(out: &[Chunk]) -> Vec<String> {
    let mut v: Vec<String> = out
        .iter()
        .flat_map(|c| {
            c.to_string()
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    v.sort();
    v
}
