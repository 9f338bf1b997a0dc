//! Materialize: the view's contents, kept as a counted multiset of rows in
//! Arrow row format, so every changelog (keyed or not, with duplicates)
//! applies exactly: an insert adds one to its row's count, a delete takes
//! one away.
//!
//! At a barrier the view publishes the epoch's [`Delta`]: when every change
//! since the last barrier was an insert (an append-only view, or an epoch
//! that only added rows), just the new rows — appended to what reads see and
//! committed to Iceberg as an append, work proportional to the change.
//! Otherwise the rows with a positive count, decoded back into one Arrow
//! batch, replace the contents. Reads see the published contents until the
//! next barrier, so every view answers as of the same epoch.

use std::collections::HashMap;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::row::{RowConverter, SortField};

use crate::error::{Error, Result};
use crate::stream::chunk::Chunk;

/// What an epoch changed in a view.
#[derive(Debug, Clone)]
pub enum Delta {
    /// Only inserts: these rows are added.
    Append(Vec<RecordBatch>),
    /// The whole contents, replacing the previous ones.
    Replace(RecordBatch),
}

pub struct MaterializeOperator {
    schema: SchemaRef,
    converter: RowConverter,
    rows: HashMap<Box<[u8]>, i64>,
    changed: bool,
    /// Inserted rows since the last delta, while no row was deleted.
    appended: Vec<RecordBatch>,
    /// A row was deleted (or nothing was published yet): the next delta
    /// replaces the contents.
    replace: bool,
}

impl MaterializeOperator {
    pub fn try_new(schema: SchemaRef) -> Result<MaterializeOperator> {
        let converter = RowConverter::new(
            schema
                .fields()
                .iter()
                .map(|f| SortField::new(f.data_type().clone()))
                .collect(),
        )?;
        Ok(MaterializeOperator {
            schema,
            converter,
            rows: HashMap::new(),
            changed: true,
            // The first publication replaces whatever an earlier run left
            // in the view's table.
            appended: Vec::new(),
            replace: true,
        })
    }

    /// Applies one chunk of changes.
    pub fn apply(&mut self, chunk: &Chunk) -> Result<()> {
        if chunk.is_empty() {
            return Ok(());
        }
        let batch =
            crate::storage::files::conform_columns(chunk.batch.columns().to_vec(), &self.schema)?;
        let rows = self.converter.convert_columns(batch.columns())?;
        for (row, op) in rows.iter().zip(&chunk.ops) {
            let w = op.weight();
            match self.rows.get_mut(row.as_ref()) {
                Some(c) => {
                    *c += w;
                    if *c == 0 {
                        self.rows.remove(row.as_ref());
                    }
                }
                None if w > 0 => {
                    self.rows.insert(Box::from(row.as_ref()), w);
                }
                None => {
                    return Err(Error::Internal(
                        "materialize: delete of a row that is not in the view".into(),
                    ));
                }
            }
        }
        self.changed = true;
        if !self.replace {
            if chunk.ops.iter().all(|op| op.weight() > 0) {
                self.appended.push(batch);
            } else {
                self.replace = true;
                self.appended.clear();
            }
        }
        Ok(())
    }

    /// Whether anything changed since the last snapshot.
    pub fn changed(&self) -> bool {
        self.changed
    }

    /// The live contents as insert changes (a downstream view's backfill).
    pub fn live_chunk(&self) -> Result<Option<Chunk>> {
        let batch = self.decode()?;
        Ok((batch.num_rows() > 0).then(|| Chunk::uniform(batch, crate::stream::chunk::Op::Insert)))
    }

    /// What changed since the last delta.
    pub fn delta(&mut self) -> Result<Delta> {
        self.changed = false;
        if std::mem::take(&mut self.replace) {
            self.appended.clear();
            Ok(Delta::Replace(self.decode()?))
        } else {
            Ok(Delta::Append(std::mem::take(&mut self.appended)))
        }
    }

    fn decode(&self) -> Result<RecordBatch> {
        let parser = self.converter.parser();
        let mut encoded = Vec::with_capacity(self.rows.len());
        for (row, &count) in &self.rows {
            for _ in 0..count {
                encoded.push(parser.parse(row));
            }
        }
        let columns = self.converter.convert_rows(encoded)?;
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}
