//! Materialize: the view's contents, kept as a multiset of rows in Arrow
//! row format, so every changelog (keyed or not, with duplicates) applies
//! exactly: an insert adds a copy of its row, a delete takes one away.
//!
//! Two cadences meet here. Every epoch the view *publishes* its contents
//! for reads (in memory); at each checkpoint it *commits* the changes of
//! the epochs since its last commit to its Iceberg table, as one snapshot.
//! The published contents are a list of segments — Arrow batches, each with
//! a mask of its live rows. The first segments are the table's data files,
//! one for one; after them come the segments of the epochs published since
//! the last commit. Each copy knows its place, (segment, position), so
//! both publishing and committing cost what changed, not the view's size:
//!
//! ```text
//!                      epoch barrier                     checkpoint barrier
//!   inserts ─▶ fresh ───────────────▶ epoch segment ───────────────────────▶ one new data file (its
//!                       (published)   (not committed)  (the epoch segments'   segment replaces the
//!                                                       live rows)            epoch segments)
//!   deletes ─▶ a fresh copy cancels; an epoch segment's copy is masked;
//!              a data file's copy is masked and, at the checkpoint, listed
//!              in a position delete file
//! ```
//!
//! A row inserted and deleted between two checkpoints never reaches the
//! table. When the dead rows of the files pile up (more than half the live
//! ones) or the files do (more than [`MAX_FILES`]), or at the first
//! checkpoint (whatever an earlier run left in the table is stale), the
//! checkpoint instead rewrites the whole contents. Epoch segments are
//! merged into one once [`MAX_FILES`] of them pile up between checkpoints
//! (a long `checkpoint_interval`), so reads never scan thousands of tiny
//! batches.

use crate::stream::HashMap;
use std::collections::hash_map::Entry;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::row::{RowConverter, SortField};

use crate::error::{Error, Result};
use crate::storage::table::ViewCommit;
use crate::stream::chunk::Chunk;

/// More files than this since the last rewrite make the next checkpoint a
/// rewrite, and more epoch segments than this are merged into one, so
/// readers never open thousands of tiny files or batches.
pub const MAX_FILES: usize = 64;

/// A copy's place: segment index (high 32 bits) and row position. For a
/// committed copy the segment is its data file.
pub type Loc = u64;

fn loc(segment: usize, pos: u64) -> Loc {
    ((segment as u64) << 32) | pos
}

/// The segment index and position of a location.
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

/// How a barrier changes the published segments.
#[derive(Debug, Clone, Default)]
pub struct Publication {
    /// The previous segments kept, a prefix; the ones after it go (their
    /// live rows are in `added`).
    pub keep: usize,
    /// Places, in the kept segments, of the rows gone.
    pub deleted: Vec<Loc>,
    /// New segments, appended after the kept ones.
    pub added: Vec<RecordBatch>,
}

pub struct MaterializeOperator {
    schema: SchemaRef,
    converter: RowConverter,
    /// Copies in the table's data files, by row; a place's segment is its
    /// file.
    committed: HashMap<Box<[u8]>, Locs>,
    /// Copies in the epoch segments (published, not committed), by row.
    published: HashMap<Box<[u8]>, Locs>,
    /// Copies inserted since the last barrier.
    fresh: HashMap<Box<[u8]>, u32>,
    /// Places of published copies deleted since the last barrier.
    unpublished_deletes: Vec<Loc>,
    /// Places in the data files of copies deleted since the last commit.
    uncommitted_deletes: Vec<Loc>,
    /// Data file paths of the table, by index (= segment index).
    files: Vec<String>,
    /// Epoch segments after the files.
    epoch_segments: usize,
    /// The commit being written (between [`Self::checkpoint`] and
    /// [`Self::committed`]).
    placing: Option<Placing>,
    live: u64,
    /// Deleted rows since the last rewrite (still in the files).
    dead: u64,
    /// Changed since the last barrier.
    changed: bool,
    /// Changed since the last commit.
    uncommitted: bool,
    /// The next commit rewrites everything.
    replace: bool,
}

/// The rows of a commit being written: each row with its copy count, in
/// the order of `batch`.
struct Placing {
    rows: Vec<(Box<[u8]>, u32)>,
    batch: RecordBatch,
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
            committed: HashMap::default(),
            published: HashMap::default(),
            fresh: HashMap::default(),
            unpublished_deletes: Vec::new(),
            uncommitted_deletes: Vec::new(),
            files: Vec::new(),
            epoch_segments: 0,
            placing: None,
            live: 0,
            dead: 0,
            changed: true,
            uncommitted: true,
            // The first commit replaces whatever an earlier run left in
            // the view's table.
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
                match self.fresh.get_mut(key) {
                    Some(n) => *n += 1,
                    None => {
                        self.fresh.insert(Box::from(key), 1);
                    }
                }
                continue;
            }
            self.live = self.live.saturating_sub(1);
            // A copy not published yet simply never will be.
            if let Some(n) = self.fresh.get_mut(key) {
                *n -= 1;
                if *n == 0 {
                    self.fresh.remove(key);
                }
                continue;
            }
            // Then one not committed yet: it never reaches the table.
            if let Some(l) = take(&mut self.published, key) {
                self.unpublished_deletes.push(l);
                continue;
            }
            let Some(l) = take(&mut self.committed, key) else {
                return Err(Error::Internal(
                    "materialize: delete of a row that is not in the view".into(),
                ));
            };
            self.unpublished_deletes.push(l);
            self.uncommitted_deletes.push(l);
            self.dead += 1;
        }
        self.changed = true;
        self.uncommitted = true;
        Ok(())
    }

    /// Whether anything changed since the last barrier.
    pub fn changed(&self) -> bool {
        self.changed
    }

    /// The live contents as insert changes (a downstream view's backfill).
    pub fn live_chunk(&self) -> Result<Option<Chunk>> {
        let all: Vec<(&[u8], u32)> = self
            .committed
            .iter()
            .chain(&self.published)
            .map(|(k, l)| (&k[..], l.len() as u32))
            .chain(self.fresh.iter().map(|(k, n)| (&k[..], *n)))
            .collect();
        let batch = self.decode(all.iter().map(|(k, n)| (*k, *n)))?;
        Ok((batch.num_rows() > 0).then(|| Chunk::uniform(batch, crate::stream::chunk::Op::Insert)))
    }

    /// An epoch ends without a checkpoint: the rows inserted since the last
    /// barrier become a new epoch segment. `None` if nothing changed.
    pub fn epoch(&mut self) -> Result<Option<Publication>> {
        if !self.changed {
            return Ok(None);
        }
        self.changed = false;
        let files = self.files.len();
        let deleted = std::mem::take(&mut self.unpublished_deletes);
        if self.epoch_segments >= MAX_FILES {
            // Merge every epoch segment, and the new rows, into one.
            let mut rows = counts(&mut self.published);
            rows.extend(self.fresh.drain());
            let batch = self.decode(rows.iter().map(|(k, n)| (&k[..], *n)))?;
            place(&mut self.published, rows, &[batch.num_rows() as u64], files)?;
            self.epoch_segments = 1;
            return Ok(Some(Publication {
                keep: files,
                deleted: deleted
                    .into_iter()
                    .filter(|l| split(*l).0 < files)
                    .collect(),
                added: vec![batch],
            }));
        }
        let keep = files + self.epoch_segments;
        if self.fresh.is_empty() {
            return Ok(Some(Publication {
                keep,
                deleted,
                added: Vec::new(),
            }));
        }
        let rows: Vec<(Box<[u8]>, u32)> = self.fresh.drain().collect();
        let batch = self.decode(rows.iter().map(|(k, n)| (&k[..], *n)))?;
        place(&mut self.published, rows, &[batch.num_rows() as u64], keep)?;
        self.epoch_segments += 1;
        Ok(Some(Publication {
            keep,
            deleted,
            added: vec![batch],
        }))
    }

    /// A checkpoint: what to commit since the last commit (`None` if
    /// nothing changed). [`Self::committed`] must follow with the files
    /// it was written to.
    pub fn checkpoint(&mut self) -> Result<Option<ViewCommit>> {
        if !self.uncommitted && !self.replace {
            return Ok(None);
        }
        self.uncommitted = false;
        self.changed = false;
        let rewrite = self.replace
            || self.files.len() >= MAX_FILES
            || (self.dead > 1024 && self.dead > self.live / 2);
        let mut rows = if rewrite {
            counts(&mut self.committed)
        } else {
            Vec::new()
        };
        rows.extend(counts(&mut self.published));
        rows.extend(self.fresh.drain());
        let batch = self.decode(rows.iter().map(|(k, n)| (&k[..], *n)))?;
        let commit = if rewrite {
            ViewCommit {
                rows: Some(batch.clone()),
                deleted: Vec::new(),
                replace: true,
            }
        } else {
            ViewCommit {
                rows: (batch.num_rows() > 0).then(|| batch.clone()),
                deleted: self
                    .uncommitted_deletes
                    .iter()
                    .map(|l| {
                        let (file, pos) = split(*l);
                        (self.files[file].clone(), pos as i64)
                    })
                    .collect(),
                replace: false,
            }
        };
        self.placing = Some(Placing {
            rows,
            batch,
            replace: rewrite,
        });
        Ok(Some(commit))
    }

    /// The commit of [`Self::checkpoint`] wrote its rows to `files` ((path,
    /// row count), in row order): record each copy's place, and return how
    /// the published segments change — the epoch segments give way to the
    /// new files.
    pub fn committed(&mut self, files: &[(String, u64)]) -> Result<Publication> {
        let placing = self
            .placing
            .take()
            .ok_or_else(|| Error::Internal("view commit without a checkpoint".into()))?;
        let deleted = std::mem::take(&mut self.unpublished_deletes);
        self.uncommitted_deletes.clear();
        self.epoch_segments = 0;
        let keep = if placing.replace {
            self.replace = false;
            self.files.clear();
            self.dead = 0;
            0
        } else {
            self.files.len()
        };
        self.files.extend(files.iter().map(|(p, _)| p.clone()));
        let sizes: Vec<u64> = files.iter().map(|(_, n)| *n).collect();
        place(&mut self.committed, placing.rows, &sizes, keep)?;
        // One segment per file, so segment indexes are file indexes.
        let mut offset = 0;
        let added = sizes
            .iter()
            .map(|n| {
                let s = placing.batch.slice(offset, *n as usize);
                offset += *n as usize;
                s
            })
            .collect();
        Ok(Publication {
            keep,
            // Deletes in the epoch segments are moot: they go.
            deleted: deleted.into_iter().filter(|l| split(*l).0 < keep).collect(),
            added,
        })
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

/// Takes the place of one copy of `key`, if `map` holds one.
fn take(map: &mut HashMap<Box<[u8]>, Locs>, key: &[u8]) -> Option<Loc> {
    let locs = map.get_mut(key)?;
    let (l, empty) = locs.pop();
    if empty {
        map.remove(key);
    }
    Some(l)
}

/// Empties `map` into rows with their copy counts.
fn counts(map: &mut HashMap<Box<[u8]>, Locs>) -> Vec<(Box<[u8]>, u32)> {
    map.drain().map(|(k, l)| (k, l.len() as u32)).collect()
}

/// Records the places of `rows` (each with its copy count), written in
/// this order to consecutive segments of the given sizes, the first of
/// them at index `first`.
fn place(
    map: &mut HashMap<Box<[u8]>, Locs>,
    rows: Vec<(Box<[u8]>, u32)>,
    sizes: &[u64],
    first: usize,
) -> Result<()> {
    let mut segment = 0;
    let mut pos = 0u64;
    let mut room = sizes.first().copied().unwrap_or(0);
    for (key, n) in rows {
        let mut next = || -> Result<Loc> {
            while pos == room {
                segment += 1;
                pos = 0;
                room = *sizes
                    .get(segment)
                    .ok_or_else(|| Error::Internal("view rows outran their files".into()))?;
            }
            pos += 1;
            Ok(loc(first + segment, pos - 1))
        };
        let mut locs = Locs::One(next()?);
        for _ in 1..n {
            locs.push(next()?);
        }
        // One lookup per row: the key moves in, never copied.
        match map.entry(key) {
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use datafusion::arrow::array::{Array, Int64Array};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;
    use crate::stream::chunk::Op;

    /// What reads see: segments with the rows they hold (`None`: deleted).
    type Segments = Vec<Vec<Option<i64>>>;

    fn values(batch: &RecordBatch) -> Vec<i64> {
        let a = batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        (0..a.len()).map(|i| a.value(i)).collect()
    }

    fn publish(segments: &mut Segments, p: &Publication) {
        segments.truncate(p.keep);
        for l in &p.deleted {
            let (s, pos) = split(*l);
            assert!(segments[s][pos].take().is_some(), "deleted twice");
        }
        segments.extend(
            p.added
                .iter()
                .map(|b| values(b).into_iter().map(Some).collect()),
        );
    }

    fn multiset<'a>(rows: impl Iterator<Item = &'a Option<i64>>) -> BTreeMap<i64, usize> {
        let mut m = BTreeMap::new();
        for v in rows.flatten() {
            *m.entry(*v).or_insert(0) += 1;
        }
        m
    }

    /// Random inserts and deletes (many duplicates), epochs and
    /// checkpoints: every epoch the published segments hold exactly the
    /// live rows, and after every checkpoint so does the table (its data
    /// files less its position deletes), whose files the first segments
    /// mirror.
    #[test]
    fn published_segments_and_the_table_follow_the_changes() {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, true)]));
        let mut m = MaterializeOperator::try_new(schema.clone()).unwrap();
        let mut live: Vec<i64> = Vec::new();
        let mut segments: Segments = Vec::new();
        // The table: files (path → rows) and deleted (path, position).
        let mut table: Vec<(String, Vec<i64>)> = Vec::new();
        let mut deleted: std::collections::HashSet<(String, i64)> = Default::default();
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut rand = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut commits = 0;
        for step in 0..400 {
            let mut ops = Vec::new();
            let mut rows = Vec::new();
            for _ in 0..rand(6) {
                if !live.is_empty() && rand(3) == 0 {
                    let v = live.swap_remove(rand(live.len() as u64) as usize);
                    rows.push(v);
                    ops.push(Op::Delete);
                } else {
                    let v = rand(20) as i64;
                    live.push(v);
                    rows.push(v);
                    ops.push(Op::Insert);
                }
            }
            let batch =
                RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(rows))])
                    .unwrap();
            m.apply(&Chunk::new(batch, ops)).unwrap();
            if rand(4) == 0 {
                let Some(commit) = m.checkpoint().unwrap() else {
                    continue;
                };
                commits += 1;
                if commit.replace {
                    table.clear();
                    deleted.clear();
                }
                deleted.extend(commit.deleted);
                // The writer may roll over to a second file.
                let rows = commit.rows.as_ref().map(values).unwrap_or_default();
                let cut = if rows.len() > 1 && rand(2) == 0 {
                    rows.len() / 2
                } else {
                    rows.len()
                };
                let mut written = Vec::new();
                for part in [&rows[..cut], &rows[cut..]] {
                    if !part.is_empty() {
                        let path = format!("f{step}-{}", written.len());
                        table.push((path.clone(), part.to_vec()));
                        written.push((path, part.len() as u64));
                    }
                }
                publish(&mut segments, &m.committed(&written).unwrap());
                let in_table: Vec<Option<i64>> = table
                    .iter()
                    .flat_map(|(p, rows)| {
                        rows.iter()
                            .enumerate()
                            .map(|(i, v)| (!deleted.contains(&(p.clone(), i as i64))).then_some(*v))
                    })
                    .collect();
                assert_eq!(
                    multiset(in_table.iter()),
                    multiset(live.iter().map(|v| Some(*v)).collect::<Vec<_>>().iter()),
                    "table after commit {commits}"
                );
                // The segments mirror the files.
                assert_eq!(segments.len(), table.len());
            } else if let Some(p) = m.epoch().unwrap() {
                publish(&mut segments, &p);
            }
            assert_eq!(
                multiset(segments.iter().flatten()),
                multiset(live.iter().map(|v| Some(*v)).collect::<Vec<_>>().iter()),
                "published at step {step}"
            );
        }
        assert!(commits > 50, "{commits}");
    }

    #[test]
    fn many_epochs_between_checkpoints_merge_into_one_segment() {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, true)]));
        let mut m = MaterializeOperator::try_new(schema.clone()).unwrap();
        let mut segments: Segments = Vec::new();
        for i in 0..(MAX_FILES as i64 + 5) {
            let batch =
                RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![i]))])
                    .unwrap();
            m.apply(&Chunk::uniform(batch, Op::Insert)).unwrap();
            publish(&mut segments, &m.epoch().unwrap().unwrap());
            assert!(segments.len() <= MAX_FILES);
        }
        assert_eq!(
            multiset(segments.iter().flatten()).len(),
            MAX_FILES + 5,
            "every row published once"
        );
        // Nothing changed: nothing to publish or commit after a checkpoint.
        let commit = m.checkpoint().unwrap().unwrap();
        assert_eq!(commit.rows.unwrap().num_rows(), MAX_FILES + 5);
        publish(&mut segments, &m.committed(&[("f".into(), 69)]).unwrap());
        assert_eq!(segments.len(), 1);
        assert!(m.epoch().unwrap().is_none());
        assert!(m.checkpoint().unwrap().is_none());
    }
}
