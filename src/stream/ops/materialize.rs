//! Materialize: the view's contents, kept as a multiset of rows in Arrow
//! row format, so every changelog (keyed or not, with duplicates) applies
//! exactly: an insert adds a copy of its row, a delete takes one away.
//!
//! Each copy also knows where it lives in the view's Iceberg table — (data
//! file, row position) — so an epoch is committed in proportion to its
//! changes:
//!
//! ```text
//!   inserts ──▶ pending copies ──▶ barrier: one new data file ──▶ placed at (file, pos)
//!   deletes ──▶ a pending copy cancels, else a placed copy's (file, pos) ──▶ position delete file
//! ```
//!
//! When the dead rows pile up (more than half the live ones) or the files
//! do (more than [`MAX_FILES`]), or at the first epoch (whatever an earlier
//! run left in the table is stale), the epoch instead rewrites the whole
//! contents. The published contents that reads see mirror the same files
//! (see `stream::view`), so publishing is proportional to the change too.

use crate::stream::HashMap;
use std::collections::hash_map::Entry;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::row::{RowConverter, SortField};

use crate::error::{Error, Result};
use crate::storage::table::ViewCommit;
use crate::stream::chunk::Chunk;

/// More files than this since the last rewrite make the next epoch a
/// rewrite, so readers never open thousands of tiny files.
pub const MAX_FILES: usize = 64;

/// A copy's place: data file index (high 32 bits) and row position.
pub type Loc = u64;

fn loc(file: usize, pos: u64) -> Loc {
    ((file as u64) << 32) | pos
}

/// The file index and position of a location.
pub fn split(l: Loc) -> (usize, usize) {
    ((l >> 32) as usize, (l & 0xFFFF_FFFF) as usize)
}

/// Where the copies of one row live (most rows have one copy).
enum Locs {
    One(Loc),
    Many(Vec<Loc>),
}

impl Locs {
    fn push(&mut self, l: Loc) {
        match self {
            Locs::One(first) => *self = Locs::Many(vec![*first, l]),
            Locs::Many(v) => v.push(l),
        }
    }

    /// Takes one copy's place; true when none is left.
    fn pop(&mut self) -> (Loc, bool) {
        match self {
            Locs::One(l) => (*l, true),
            Locs::Many(v) => {
                let l = v.pop().expect("never empty");
                (l, v.is_empty())
            }
        }
    }

    fn len(&self) -> usize {
        match self {
            Locs::One(_) => 1,
            Locs::Many(v) => v.len(),
        }
    }
}

/// What an epoch changed in a view.
#[derive(Debug, Clone)]
pub enum Delta {
    /// New rows (written as new files, in this order) and the places of
    /// the rows gone.
    Change {
        inserted: Option<RecordBatch>,
        deleted: Vec<Loc>,
    },
    /// The whole contents, replacing every file.
    Replace(RecordBatch),
}

pub struct MaterializeOperator {
    schema: SchemaRef,
    converter: RowConverter,
    /// Copies written to the table, by row.
    placed: HashMap<Box<[u8]>, Locs>,
    /// Copies inserted since the last barrier, not written yet.
    pending: HashMap<Box<[u8]>, u32>,
    /// Places of the written copies deleted since the last barrier.
    deleted: Vec<Loc>,
    /// Rows (with their copy counts) of the delta being written, in the
    /// order the delta's batch holds them.
    placing: Vec<(Box<[u8]>, u32)>,
    /// Data file paths of the table, by index.
    files: Vec<String>,
    live: u64,
    /// Deleted rows since the last rewrite (still in the files).
    dead: u64,
    changed: bool,
    /// The next delta rewrites everything.
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
            placed: HashMap::default(),
            pending: HashMap::default(),
            deleted: Vec::new(),
            placing: Vec::new(),
            files: Vec::new(),
            live: 0,
            dead: 0,
            changed: true,
            // The first publication replaces whatever an earlier run left
            // in the view's table.
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
            let key = row.as_ref();
            if op.weight() > 0 {
                self.live += 1;
                match self.pending.get_mut(key) {
                    Some(n) => *n += 1,
                    None => {
                        self.pending.insert(Box::from(key), 1);
                    }
                }
                continue;
            }
            self.live = self.live.saturating_sub(1);
            // A copy not written yet simply never will be.
            if let Some(n) = self.pending.get_mut(key) {
                *n -= 1;
                if *n == 0 {
                    self.pending.remove(key);
                }
                continue;
            }
            let Some(locs) = self.placed.get_mut(key) else {
                return Err(Error::Internal(
                    "materialize: delete of a row that is not in the view".into(),
                ));
            };
            let (l, empty) = locs.pop();
            if empty {
                self.placed.remove(key);
            }
            self.deleted.push(l);
            self.dead += 1;
        }
        self.changed = true;
        Ok(())
    }

    /// Whether anything changed since the last delta.
    pub fn changed(&self) -> bool {
        self.changed
    }

    /// The live contents as insert changes (a downstream view's backfill).
    pub fn live_chunk(&self) -> Result<Option<Chunk>> {
        let all: Vec<(&[u8], u32)> = self
            .placed
            .iter()
            .map(|(k, l)| (&k[..], l.len() as u32))
            .chain(self.pending.iter().map(|(k, n)| (&k[..], *n)))
            .collect();
        let batch = self.decode(all.iter().map(|(k, n)| (*k, *n)))?;
        Ok((batch.num_rows() > 0).then(|| Chunk::uniform(batch, crate::stream::chunk::Op::Insert)))
    }

    /// What changed since the last delta. [`Self::placed`] must follow
    /// with the files the delta was written to.
    pub fn delta(&mut self) -> Result<Delta> {
        self.changed = false;
        let rewrite = self.replace
            || self.files.len() >= MAX_FILES
            || (self.dead > 1024 && self.dead > self.live / 2);
        if rewrite {
            self.replace = false;
            self.deleted.clear();
            let mut all: HashMap<Box<[u8]>, u32> = self
                .placed
                .drain()
                .map(|(k, l)| (k, l.len() as u32))
                .collect();
            for (k, n) in self.pending.drain() {
                *all.entry(k).or_insert(0) += n;
            }
            self.placing = all.into_iter().collect();
            let batch = self.decode(self.placing.iter().map(|(k, n)| (&k[..], *n)))?;
            self.files.clear();
            self.dead = 0;
            return Ok(Delta::Replace(batch));
        }
        self.placing = self.pending.drain().collect();
        let inserted = if self.placing.is_empty() {
            None
        } else {
            Some(self.decode(self.placing.iter().map(|(k, n)| (&k[..], *n)))?)
        };
        Ok(Delta::Change {
            inserted,
            deleted: std::mem::take(&mut self.deleted),
        })
    }

    /// The delta as the view's table commits it: deleted places as paths.
    pub fn commit_of(&self, delta: &Delta) -> ViewCommit {
        match delta {
            Delta::Replace(batch) => ViewCommit {
                rows: Some(batch.clone()),
                deleted: Vec::new(),
                replace: true,
            },
            Delta::Change { inserted, deleted } => ViewCommit {
                rows: inserted.clone(),
                deleted: deleted
                    .iter()
                    .map(|l| {
                        let (file, pos) = split(*l);
                        (self.files[file].clone(), pos as i64)
                    })
                    .collect(),
                replace: false,
            },
        }
    }

    /// The delta's rows were written to `files` ((path, row count), in row
    /// order): record each copy's place.
    pub fn placed(&mut self, files: &[(String, u64)]) -> Result<()> {
        let first = self.files.len();
        self.files.extend(files.iter().map(|(p, _)| p.clone()));
        let mut file = first;
        let mut pos = 0u64;
        let mut room = files.first().map_or(0, |(_, n)| *n);
        for (key, n) in self.placing.drain(..) {
            let mut next = || -> Result<Loc> {
                while pos == room {
                    file += 1;
                    pos = 0;
                    room = files
                        .get(file - first)
                        .map(|(_, n)| *n)
                        .ok_or_else(|| Error::Internal("view rows outran their files".into()))?;
                }
                pos += 1;
                Ok(loc(file, pos - 1))
            };
            let mut locs = Locs::One(next()?);
            for _ in 1..n {
                locs.push(next()?);
            }
            // One lookup per row: the key moves in, never copied.
            match self.placed.entry(key) {
                Entry::Occupied(mut o) => match locs {
                    Locs::One(l) => o.get_mut().push(l),
                    Locs::Many(v) => v.into_iter().for_each(|l| o.get_mut().push(l)),
                },
                Entry::Vacant(v) => {
                    v.insert(locs);
                }
            }
        }
        Ok(())
    }

    /// Decodes rows, each repeated its count of times, in order.
    fn decode<'a>(&self, rows: impl Iterator<Item = (&'a [u8], u32)>) -> Result<RecordBatch> {
        let parser = self.converter.parser();
        let mut encoded = Vec::new();
        for (row, count) in rows {
            for _ in 0..count {
                encoded.push(parser.parse(row));
            }
        }
        let columns = self.converter.convert_rows(encoded)?;
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}
