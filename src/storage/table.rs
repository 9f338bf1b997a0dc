//! A durable table: an Iceberg v2 table read and written through DataFusion.
//!
//! Reads scan the table's current snapshot through iceberg-datafusion, so a
//! table never has to fit in memory. Writes go through one lock per table
//! (writes from many sessions are serialized, none is lost) and end in one
//! snapshot commit each:
//!
//! | statement        | files written                         | snapshot  |
//! |------------------|---------------------------------------|-----------|
//! | INSERT, COPY     | new files with the rows               | append    |
//! | DELETE           | rewrites of the files with hits       | delete/overwrite |
//! | UPDATE           | rewrites + the updated rows           | overwrite |
//! | (compaction)     | small files merged into one           | replace   |
//!
//! UPDATE and DELETE are copy-on-write: every Iceberg reader sees exactly the
//! live rows without having to apply delete files.
//!
//! Storage knows nothing of chunks, barriers or views. After each commit of
//! a statement, and still under the table's writer lock, the table reports
//! what the commit changed — a [`CommitReport`] of the rows it added and
//! removed — to its [`CommitObserver`], if one is set. The streaming
//! runtime's table source (`stream::source`) is that observer and turns the
//! reports into change chunks. [`LakeTable::with_writes_paused`] lets the
//! source take a snapshot and start observing at exactly the same point.

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use datafusion::arrow::array::{Array, BooleanArray, RecordBatch};
use datafusion::arrow::compute::{filter_record_batch, not, prep_null_mask_filter};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::catalog::Session;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, Constraints, DFSchema};
use datafusion::datasource::sink::{DataSink, DataSinkExec};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan};
use futures::StreamExt;
use iceberg::TableIdent;
use iceberg::table::Table;
use iceberg_datafusion::IcebergStaticTableProvider;
use tokio::sync::Mutex;

use crate::error::{Error, Result};
use crate::storage::commit::{self, Change};
use crate::storage::files::{FileWriter, read_file};
use crate::storage::warehouse::Warehouse;

/// Compaction merges the table's small files once this many accumulate.
const COMPACT_MIN_SMALL_FILES: usize = 16;
/// Files below this size count as small.
const SMALL_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// One epoch of a view as committed to its Iceberg table.
#[derive(Debug, Default)]
pub struct ViewCommit {
    /// Rows to add (with `replace`, the whole contents).
    pub rows: Option<RecordBatch>,
    /// Rows gone: (data file path, position).
    pub deleted: Vec<(String, i64)>,
    /// Drop every current file first.
    pub replace: bool,
}

/// A table provider over one Iceberg table.
#[derive(Clone)]
pub struct LakeTable {
    inner: Arc<TableInner>,
}

/// Shared by the provider and the sinks of running statements.
struct TableInner {
    name: String,
    warehouse: Arc<Warehouse>,
    /// Arrow schema with Iceberg field ids in the field metadata.
    schema: SchemaRef,
    constraints: Option<Constraints>,
    /// Column indexes of the primary key (empty: none).
    primary_key: Vec<usize>,
    /// The snapshot reads use; replaced after each commit.
    current: RwLock<Table>,
    /// Held for the whole of a write; guards the key index and the
    /// reports to the observer.
    writer: Mutex<WriterState>,
    /// Hears of every commit of a statement (the table's change feed).
    observer: std::sync::OnceLock<Arc<dyn CommitObserver>>,
    /// See [`LakeTable::written_by`].
    written_by: Option<String>,
}

/// What one committed statement changed, as reported to the table's
/// [`CommitObserver`]: rows added and rows removed (an UPDATE reports its
/// old rows as removed and its new rows as added).
#[derive(Debug, Default)]
pub struct CommitReport {
    /// Rows removed, in the order they were found.
    pub removed: Vec<RecordBatch>,
    /// Rows added, in statement order.
    pub added: Vec<RecordBatch>,
    /// More rows added, to be read back from these committed data files
    /// (in order, after `added`): a statement whose rows would take more
    /// than [`report_memory_limit`] bytes keeps none of them in memory.
    pub added_files: Vec<String>,
    /// The committed snapshot, to read `added_files` from.
    pub table: Option<Table>,
    /// The table's schema (what `added_files` are read as).
    pub schema: Option<SchemaRef>,
}

/// How many bytes of an INSERT's or COPY's rows a table keeps in memory
/// for its observer; beyond that the observer reads the committed files
/// back instead. 64 MiB, or `STREAMLAKE_REPORT_MEMORY_BYTES` (tests).
pub fn report_memory_limit() -> usize {
    std::env::var("STREAMLAKE_REPORT_MEMORY_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64 << 20)
}

/// Who hears of a table's commits. Called after each commit, under the
/// table's writer lock, so reports arrive in commit order and before the
/// statement returns; a report may block (backpressure) and so delays the
/// next write of the same table, never a read.
#[async_trait]
pub trait CommitObserver: Send + Sync {
    /// Whether reports are wanted now; when not, the rows are not kept.
    fn wants_reports(&self) -> bool;
    /// One commit's changes.
    async fn committed(&self, report: CommitReport);
    /// Event time of the rows committed so far (a connector table with
    /// `WATERMARK FOR`): column index in the table's rows and µs since the
    /// Unix epoch. Told after the commit that carried those rows.
    fn watermark(&self, _column: usize, _timestamp: i64) {}
}

#[derive(Default)]
struct WriterState {
    /// Encoded primary keys of all live rows, loaded on the first write.
    keys: Option<HashSet<Box<[u8]>>>,
}

impl fmt::Debug for LakeTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LakeTable({})", self.inner.name)
    }
}

impl LakeTable {
    /// Wraps a loaded Iceberg table. The primary key comes from the schema's
    /// identifier fields.
    pub fn new(warehouse: Arc<Warehouse>, table: Table) -> Result<LakeTable> {
        let iceberg_schema = table.metadata().current_schema().clone();
        let schema = Arc::new(iceberg::arrow::schema_to_arrow_schema(&iceberg_schema)?);
        let ids: Vec<i32> = iceberg_schema.identifier_field_ids().collect();
        let mut primary_key: Vec<usize> = Vec::new();
        for (i, field) in iceberg_schema.as_struct().fields().iter().enumerate() {
            if ids.contains(&field.id) {
                primary_key.push(i);
            }
        }
        let constraints = if primary_key.is_empty() {
            None
        } else {
            Some(Constraints::new_unverified(vec![
                datafusion::common::Constraint::PrimaryKey(primary_key.clone()),
            ]))
        };
        let written_by = table
            .metadata()
            .properties()
            .get(WRITTEN_BY_PROPERTY)
            .cloned();
        Ok(LakeTable {
            inner: Arc::new(TableInner {
                name: table.identifier().name().to_string(),
                warehouse,
                schema,
                constraints,
                primary_key,
                current: RwLock::new(table),
                writer: Mutex::new(WriterState::default()),
                observer: std::sync::OnceLock::new(),
                written_by,
            }),
        })
    }

    /// Who writes the table when statements may not (a connector table's
    /// topic, a system table): INSERT, UPDATE, DELETE and COPY are refused.
    pub fn written_by(&self) -> Option<&str> {
        self.inner.written_by.as_deref()
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }

    pub fn ident(&self) -> TableIdent {
        self.inner.snapshot().identifier().clone()
    }

    /// The Iceberg table as of the last commit.
    pub fn snapshot(&self) -> Table {
        self.inner.snapshot()
    }

    /// Column indexes of the primary key.
    pub fn primary_key(&self) -> &[usize] {
        &self.inner.primary_key
    }

    /// Appends the stream's rows in one commit; returns the row count.
    pub async fn append(&self, stream: SendableRecordBatchStream) -> Result<u64> {
        self.inner.append(stream).await
    }

    /// A writer of new data files for rows committed later by
    /// [`LakeTable::commit_staged`] (a connector table stages what it reads
    /// between checkpoints in files, never in memory).
    pub async fn stage(&self) -> Result<FileWriter> {
        FileWriter::new(&self.inner.snapshot(), self.inner.schema.clone()).await
    }

    /// Commits staged files as one append snapshot with `properties` in its
    /// summary (keys under [`CARRIED_PREFIX`] stay on later snapshots), and
    /// feeds the observer from the committed files. Nothing is committed
    /// when there are no files and no properties changed.
    pub async fn commit_staged(
        &self,
        files: Vec<iceberg::spec::DataFile>,
        properties: HashMap<String, String>,
    ) -> Result<()> {
        self.inner.commit_staged(files, properties).await
    }

    /// The Arrow schema rows are written in.
    pub fn arrow_schema(&self) -> SchemaRef {
        self.inner.schema.clone()
    }

    /// Commits one epoch of a view (see [`ViewCommit`]); returns the data
    /// files written, in row order, as (path, row count).
    pub async fn commit_view(
        &self,
        commit: ViewCommit,
        properties: HashMap<String, String>,
    ) -> Result<Vec<(String, u64)>> {
        self.inner.commit_view(commit, properties).await
    }

    /// The table's Iceberg properties.
    pub fn properties(&self) -> HashMap<String, String> {
        self.inner.snapshot().metadata().properties().clone()
    }

    /// Tells the observer the event-time watermark of the rows committed
    /// so far (see [`CommitObserver::watermark`]).
    pub fn report_watermark(&self, column: usize, timestamp: i64) {
        if let Some(o) = self.inner.observer.get() {
            o.watermark(column, timestamp);
        }
    }

    /// Sets the observer that hears of every commit from now on. A table
    /// has at most one; returns false if one was set already.
    pub fn set_observer(&self, observer: Arc<dyn CommitObserver>) -> bool {
        self.inner.observer.set(observer).is_ok()
    }

    /// Runs `f` with the current snapshot while no write can commit or
    /// report: whatever `f` starts observing begins exactly after that
    /// snapshot.
    pub async fn with_writes_paused<F, Fut, R>(&self, f: F) -> R
    where
        F: FnOnce(Table) -> Fut,
        Fut: std::future::Future<Output = R>,
    {
        let _state = self.inner.writer.lock().await;
        f(self.inner.snapshot()).await
    }

    /// The data files holding the given snapshot's live rows, in table
    /// order. Each is checked to exist, so a snapshot whose files are gone
    /// fails here rather than part-way through a read.
    pub async fn data_files(&self, table: &Table) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for (_, files) in commit::live_files(table).await? {
            for f in files {
                let path = f.data_file.file_path().to_string();
                if !table.file_io().exists(&path).await? {
                    return Err(Error::Internal(format!(
                        "data file {path} of table {} is missing",
                        self.inner.name
                    )));
                }
                out.push(path);
            }
        }
        Ok(out)
    }

    /// The rows of one data file of the given snapshot, in batches of at
    /// most 8,192 rows.
    pub async fn read_data_file(&self, table: &Table, path: &str) -> Result<Vec<RecordBatch>> {
        read_file(table.file_io(), path, &self.inner.schema).await
    }
}

impl TableInner {
    fn snapshot(&self) -> Table {
        self.current.read().expect("table lock poisoned").clone()
    }

    fn publish(&self, table: Table) {
        *self.current.write().expect("table lock poisoned") = table;
    }

    /// Whether the observer wants this statement's rows kept.
    fn reporting(&self) -> bool {
        self.observer.get().is_some_and(|o| o.wants_reports())
    }

    /// Reports a committed statement's changes. Called under the writer
    /// lock.
    async fn report(&self, report: CommitReport) {
        if report.added.is_empty() && report.removed.is_empty() && report.added_files.is_empty() {
            return;
        }
        if let Some(o) = self.observer.get() {
            o.committed(report).await;
        }
    }

    /// Commits `change` on top of `table` and publishes the result. Called
    /// under the writer lock (`state`). On failure the snapshot is checked
    /// against the catalog: if the table moved underneath (a commit whose
    /// outcome was lost, another writer), reads and the next write start
    /// from where the catalog is, instead of failing with a conflict on
    /// every statement until a restart; the key index is rebuilt then.
    async fn commit_change(
        &self,
        state: &mut WriterState,
        table: &Table,
        change: Change,
    ) -> Result<()> {
        match commit::commit(&self.warehouse, table, change).await {
            Ok(committed) => {
                self.publish(committed);
                Ok(())
            }
            Err(e) => {
                match self.warehouse.load_table(table.identifier()).await {
                    Ok(latest) if latest.metadata_location() != table.metadata_location() => {
                        tracing::warn!(table = %self.name, "table moved underneath a failed commit; reloaded");
                        self.publish(latest);
                        state.keys = None;
                    }
                    Ok(_) => {}
                    Err(reload) => {
                        tracing::warn!(table = %self.name, error = %reload, "could not reload table after a failed commit");
                    }
                }
                Err(e)
            }
        }
    }

    fn pk_name(&self) -> String {
        format!("{}_pkey", self.name)
    }

    /// Checks NOT NULL columns; the batch must already be in table schema.
    fn check_not_null(&self, batch: &RecordBatch) -> Result<()> {
        for (field, col) in self.schema.fields().iter().zip(batch.columns()) {
            if !field.is_nullable() && col.null_count() > 0 {
                return Err(Error::NotNullViolation {
                    table: self.name.clone(),
                    column: field.name().clone(),
                });
            }
        }
        Ok(())
    }

    fn key_converter(&self) -> Result<RowConverter> {
        let fields = self
            .primary_key
            .iter()
            .map(|&i| SortField::new(self.schema.field(i).data_type().clone()))
            .collect();
        Ok(RowConverter::new(fields)?)
    }

    fn key_columns(&self, batch: &RecordBatch) -> Vec<Arc<dyn Array>> {
        self.primary_key
            .iter()
            .map(|&i| batch.column(i).clone())
            .collect()
    }

    /// Loads the key index on first use by reading the key columns.
    async fn keys<'a>(&self, state: &'a mut WriterState) -> Result<&'a mut HashSet<Box<[u8]>>> {
        if state.keys.is_none() {
            let converter = self.key_converter()?;
            let mut keys = HashSet::new();
            let table = self.snapshot();
            for (_, files) in commit::live_files(&table).await? {
                for f in files {
                    for batch in
                        read_file(table.file_io(), f.data_file.file_path(), &self.schema).await?
                    {
                        let rows = converter.convert_columns(&self.key_columns(&batch))?;
                        for row in rows.iter() {
                            keys.insert(Box::<[u8]>::from(row.as_ref()));
                        }
                    }
                }
            }
            state.keys = Some(keys);
        }
        Ok(state.keys.as_mut().expect("loaded above"))
    }

    /// Adds the batch's keys to `pending`, failing on any duplicate of a
    /// key in `existing` (less those in `freed`, the keys of rows the
    /// statement replaces) or in `pending`. The index itself is not touched:
    /// it changes only once the statement has committed.
    fn check_new_keys(
        &self,
        converter: &RowConverter,
        existing: &HashSet<Box<[u8]>>,
        freed: &HashSet<Box<[u8]>>,
        pending: &mut HashSet<Box<[u8]>>,
        batch: &RecordBatch,
    ) -> Result<()> {
        let rows = converter.convert_columns(&self.key_columns(batch))?;
        for (i, row) in rows.iter().enumerate() {
            let key: Box<[u8]> = row.as_ref().into();
            if (existing.contains(&key) && !freed.contains(&key)) || !pending.insert(key) {
                return Err(self.duplicate_key(batch, i));
            }
        }
        Ok(())
    }

    fn duplicate_key(&self, batch: &RecordBatch, row: usize) -> Error {
        let names: Vec<&str> = self
            .primary_key
            .iter()
            .map(|&i| self.schema.field(i).name().as_str())
            .collect();
        let values: Vec<String> = self
            .primary_key
            .iter()
            .map(|&i| {
                datafusion::arrow::util::display::array_value_to_string(batch.column(i), row)
                    .unwrap_or_default()
            })
            .collect();
        Error::UniqueViolation {
            constraint: self.pk_name(),
            detail: format!(
                "Key ({})=({}) already exists.",
                names.join(", "),
                values.join(", ")
            ),
        }
    }

    fn check_writable(&self) -> Result<()> {
        match &self.written_by {
            Some(by) => Err(Error::FeatureNotSupported(format!(
                "cannot change \"{}\": it is append-only, written by {by}",
                self.name
            ))),
            None => Ok(()),
        }
    }

    async fn append(&self, mut stream: SendableRecordBatchStream) -> Result<u64> {
        self.check_writable()?;
        let mut state = self.writer.lock().await;
        let table = self.snapshot();
        let mut writer = FileWriter::new(&table, self.schema.clone()).await?;
        let mut pending = HashSet::new();
        let converter = if self.primary_key.is_empty() {
            None
        } else {
            Some(self.key_converter()?)
        };
        if converter.is_some() {
            self.keys(&mut state).await?;
        }
        let reporting = self.reporting();
        let mut changes = Vec::new();
        let (limit, mut kept, mut reread) = (report_memory_limit(), 0usize, false);
        while let Some(batch) = stream.next().await {
            let batch = crate::storage::files::conform(batch?, &self.schema)?;
            self.check_not_null(&batch)?;
            if let Some(conv) = &converter {
                let existing = state.keys.as_ref().expect("loaded above");
                self.check_new_keys(conv, existing, &HashSet::new(), &mut pending, &batch)?;
            }
            if reporting && !reread && batch.num_rows() > 0 {
                kept += batch.get_array_memory_size();
                if kept > limit {
                    // Too big to keep: the observer reads the files back.
                    changes.clear();
                    reread = true;
                } else {
                    changes.push(batch.clone());
                }
            }
            writer.write(batch).await?;
        }
        let rows = writer.rows();
        let added = writer.finish().await?;
        if added.is_empty() {
            return Ok(0);
        }
        let added_files: Vec<String> = if reread {
            added.iter().map(|f| f.file_path().to_string()).collect()
        } else {
            Vec::new()
        };
        let change = Change {
            added,
            properties: carried_properties(&table, "insert"),
            ..Default::default()
        };
        self.commit_change(&mut state, &table, change).await?;
        if let Some(keys) = state.keys.as_mut() {
            keys.extend(pending);
        }
        self.report(CommitReport {
            added: changes,
            added_files,
            table: Some(self.snapshot()),
            schema: Some(self.schema.clone()),
            ..Default::default()
        })
        .await;
        // The rows are committed: a failed compaction must not report the
        // statement as failed.
        if let Err(e) = self.maybe_compact(&mut state).await {
            tracing::warn!(table = %self.name, error = %e, "compaction failed; will retry later");
        }
        Ok(rows)
    }

    async fn commit_staged(
        &self,
        files: Vec<iceberg::spec::DataFile>,
        properties: HashMap<String, String>,
    ) -> Result<()> {
        let mut state = self.writer.lock().await;
        let table = self.snapshot();
        let mut props = carried_properties(&table, "ingest");
        let unchanged = properties.iter().all(|(k, v)| props.get(k) == Some(v));
        if files.is_empty() && unchanged {
            return Ok(());
        }
        props.extend(properties);
        let added_files: Vec<String> = files.iter().map(|f| f.file_path().to_string()).collect();
        let change = Change {
            added: files,
            properties: props,
            ..Default::default()
        };
        self.commit_change(&mut state, &table, change).await?;
        if self.reporting() && !added_files.is_empty() {
            self.report(CommitReport {
                added_files,
                table: Some(self.snapshot()),
                schema: Some(self.schema.clone()),
                ..Default::default()
            })
            .await;
        }
        if let Err(e) = self.maybe_compact(&mut state).await {
            tracing::warn!(table = %self.name, error = %e, "compaction failed; will retry later");
        }
        Ok(())
    }

    /// Commits one epoch of a view: its new rows, the positions of the
    /// rows it lost (a position delete file), or with `replace` its whole
    /// contents in place of every current file. Returns the data files
    /// written, in row order, as (path, row count).
    async fn commit_view(
        &self,
        commit: ViewCommit,
        properties: HashMap<String, String>,
    ) -> Result<Vec<(String, u64)>> {
        let mut state = self.writer.lock().await;
        let table = self.snapshot();
        let mut writer = FileWriter::new(&table, self.schema.clone()).await?;
        if let Some(rows) = commit.rows {
            writer
                .write(crate::storage::files::conform(rows, &self.schema)?)
                .await?;
        }
        let added = writer.finish().await?;
        let written = added
            .iter()
            .map(|f| (f.file_path().to_string(), f.record_count()))
            .collect();
        let removed = if commit.replace {
            commit::live_files(&table)
                .await?
                .into_iter()
                .flat_map(|(_, files)| files)
                .map(|f| f.data_file.file_path().to_string())
                .collect()
        } else {
            HashSet::new()
        };
        let added_deletes = if commit.deleted.is_empty() {
            Vec::new()
        } else {
            vec![crate::storage::deletes::write_position_deletes(&table, commit.deleted).await?]
        };
        if added.is_empty() && added_deletes.is_empty() && removed.is_empty() && !commit.replace {
            return Ok(written);
        }
        self.commit_change(
            &mut state,
            &table,
            Change {
                added,
                added_deletes,
                removed,
                properties,
                rewrite_only: false,
            },
        )
        .await?;
        Ok(written)
    }

    /// Copy-on-write DELETE (no assignments) or UPDATE.
    async fn rewrite(
        &self,
        predicate: Option<Arc<dyn PhysicalExpr>>,
        assignments: Vec<(usize, Arc<dyn PhysicalExpr>)>,
    ) -> Result<u64> {
        self.check_writable()?;
        let mut state = self.writer.lock().await;
        let table = self.snapshot();
        let is_update = !assignments.is_empty();
        let key_changes = !self.primary_key.is_empty()
            && (!is_update
                || assignments
                    .iter()
                    .any(|(i, _)| self.primary_key.contains(i)));
        let converter = if key_changes {
            self.keys(&mut state).await?;
            Some(self.key_converter()?)
        } else {
            None
        };
        let mut writer = FileWriter::new(&table, self.schema.clone()).await?;
        let mut removed = HashSet::new();
        let mut removed_keys: HashSet<Box<[u8]>> = HashSet::new();
        let mut updated: Vec<RecordBatch> = Vec::new();
        let mut deleted: Vec<RecordBatch> = Vec::new();
        let mut hits = 0u64;
        let reporting = self.reporting();
        for (_, files) in commit::live_files(&table).await? {
            for f in files {
                let path = f.data_file.file_path().to_string();
                let batches = read_file(table.file_io(), &path, &self.schema).await?;
                let masks = batches
                    .iter()
                    .map(|b| match &predicate {
                        Some(p) => evaluate_mask(p, b),
                        None => Ok(BooleanArray::from(vec![true; b.num_rows()])),
                    })
                    .collect::<Result<Vec<_>>>()?;
                if masks.iter().all(|m| m.true_count() == 0) {
                    continue;
                }
                removed.insert(path);
                for (batch, mask) in batches.iter().zip(&masks) {
                    let matched = filter_record_batch(batch, mask)?;
                    hits += matched.num_rows() as u64;
                    writer
                        .write(filter_record_batch(batch, &not(mask)?)?)
                        .await?;
                    if matched.num_rows() == 0 {
                        continue;
                    }
                    if let Some(conv) = &converter {
                        let rows = conv.convert_columns(&self.key_columns(&matched))?;
                        removed_keys.extend(rows.iter().map(|r| Box::<[u8]>::from(r.as_ref())));
                    }
                    if is_update {
                        updated.push(self.apply_assignments(&matched, &assignments)?);
                    }
                    if reporting {
                        deleted.push(matched);
                    }
                }
            }
        }
        if hits == 0 {
            return Ok(0);
        }
        // Every check comes before the key index changes: a statement that
        // fails anywhere short of its commit leaves the index as it was.
        let mut pending = HashSet::new();
        if let Some(conv) = &converter {
            let keys = state.keys.as_ref().expect("loaded above");
            for b in &updated {
                self.check_new_keys(conv, keys, &removed_keys, &mut pending, b)?;
            }
        }
        if crate::storage::fault::fire("rewrite-write", &self.name) {
            return Err(crate::storage::fault::error("rewrite-write"));
        }
        let mut added = Vec::new();
        for batch in updated {
            self.check_not_null(&batch)?;
            if reporting {
                added.push(batch.clone());
            }
            writer.write(batch).await?;
        }
        let change = Change {
            added: writer.finish().await?,
            removed,
            properties: carried_properties(&table, if is_update { "update" } else { "delete" }),
            rewrite_only: false,
            ..Default::default()
        };
        self.commit_change(&mut state, &table, change).await?;
        if let Some(keys) = state.keys.as_mut() {
            for k in &removed_keys {
                keys.remove(k);
            }
            keys.extend(pending);
        }
        self.report(CommitReport {
            removed: deleted,
            added,
            ..Default::default()
        })
        .await;
        Ok(hits)
    }

    fn apply_assignments(
        &self,
        batch: &RecordBatch,
        assignments: &[(usize, Arc<dyn PhysicalExpr>)],
    ) -> Result<RecordBatch> {
        let mut columns = batch.columns().to_vec();
        for (i, expr) in assignments {
            let value = expr.evaluate(batch)?.into_array(batch.num_rows())?;
            let target = self.schema.field(*i).data_type();
            columns[*i] = if value.data_type() == target {
                value
            } else {
                datafusion::arrow::compute::cast(&value, target)?
            };
        }
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }

    /// Merges small files once enough have piled up, so that many small
    /// INSERTs do not leave thousands of tiny files behind. Runs under the
    /// writer lock, after the statement's own commit.
    async fn maybe_compact(&self, state: &mut WriterState) -> Result<()> {
        let table = self.snapshot();
        let small: Vec<_> = commit::live_files(&table)
            .await?
            .into_iter()
            .flat_map(|(_, files)| files)
            .filter(|f| f.data_file.file_size_in_bytes() < SMALL_FILE_BYTES)
            .collect();
        if small.len() < COMPACT_MIN_SMALL_FILES {
            return Ok(());
        }
        let mut writer = FileWriter::new(&table, self.schema.clone()).await?;
        let mut removed = HashSet::new();
        for f in &small {
            for batch in read_file(table.file_io(), f.data_file.file_path(), &self.schema).await? {
                writer.write(batch).await?;
            }
            removed.insert(f.data_file.file_path().to_string());
        }
        let change = Change {
            added: writer.finish().await?,
            removed,
            properties: carried_properties(&table, "compact"),
            rewrite_only: true,
            ..Default::default()
        };
        let files = small.len();
        self.commit_change(state, &table, change).await?;
        tracing::info!(table = %self.name, files, "compacted small data files");
        Ok(())
    }
}

/// The predicate as a selection mask; NULL counts as false (SQL WHERE).
fn evaluate_mask(predicate: &Arc<dyn PhysicalExpr>, batch: &RecordBatch) -> Result<BooleanArray> {
    let value = predicate.evaluate(batch)?.into_array(batch.num_rows())?;
    let mask = value
        .as_any()
        .downcast_ref::<BooleanArray>()
        .ok_or_else(|| Error::InvalidParameter("argument of WHERE must be type boolean".into()))?;
    Ok(if mask.null_count() > 0 {
        prep_null_mask_filter(mask)
    } else {
        mask.clone()
    })
}

/// Drops table qualifiers: the DML filters refer to our columns only.
pub fn unqualify(expr: Expr) -> DFResult<Expr> {
    expr.transform_up(|e| {
        Ok(match e {
            Expr::Column(c) => Transformed::yes(Expr::Column(Column::new_unqualified(c.name))),
            other => Transformed::no(other),
        })
    })
    .map(|t| t.data)
}

#[async_trait]
impl TableProvider for LakeTable {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn schema(&self) -> SchemaRef {
        self.inner.schema.clone()
    }

    fn constraints(&self) -> Option<&Constraints> {
        self.inner.constraints.as_ref()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let provider = IcebergStaticTableProvider::try_new_from_table(self.inner.snapshot())
            .await
            .map_err(|e| Error::from(e).into_datafusion())?;
        provider.scan(state, projection, filters, limit).await
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DFResult<Vec<TableProviderFilterPushDown>> {
        // Iceberg prunes files by the filters; DataFusion still applies them.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn insert_into(
        &self,
        _state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        if insert_op != InsertOp::Append {
            return Err(Error::FeatureNotSupported(format!("{insert_op} is not supported")).into());
        }
        let sink = LakeSink {
            table: self.clone(),
            op: SinkOp::Append,
        };
        Ok(Arc::new(DataSinkExec::new(input, Arc::new(sink), None)))
    }

    async fn delete_from(
        &self,
        state: &dyn Session,
        filters: Vec<Expr>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let predicate = self.physical_predicate(state, filters)?;
        let sink = LakeSink {
            table: self.clone(),
            op: SinkOp::Rewrite {
                predicate,
                assignments: Vec::new(),
            },
        };
        let input = Arc::new(EmptyExec::new(self.inner.schema.clone()));
        Ok(Arc::new(DataSinkExec::new(input, Arc::new(sink), None)))
    }

    async fn update(
        &self,
        state: &dyn Session,
        assignments: Vec<(String, Expr)>,
        filters: Vec<Expr>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let predicate = self.physical_predicate(state, filters)?;
        let df_schema = DFSchema::try_from(self.inner.schema.as_ref().clone())?;
        let mut physical = Vec::with_capacity(assignments.len());
        for (name, expr) in assignments {
            let index = self.inner.schema.index_of(&name).map_err(|_| {
                DataFusionError::Plan(format!(
                    "column \"{name}\" of relation \"{}\" does not exist",
                    self.inner.name
                ))
            })?;
            physical.push((
                index,
                state.create_physical_expr(unqualify(expr)?, &df_schema)?,
            ));
        }
        if physical.is_empty() {
            // `UPDATE t SET a = a`: rows match but nothing changes; still count them.
            let sink = LakeSink {
                table: self.clone(),
                op: SinkOp::Count { predicate },
            };
            let input = Arc::new(EmptyExec::new(self.inner.schema.clone()));
            return Ok(Arc::new(DataSinkExec::new(input, Arc::new(sink), None)));
        }
        let sink = LakeSink {
            table: self.clone(),
            op: SinkOp::Rewrite {
                predicate,
                assignments: physical,
            },
        };
        let input = Arc::new(EmptyExec::new(self.inner.schema.clone()));
        Ok(Arc::new(DataSinkExec::new(input, Arc::new(sink), None)))
    }
}

impl LakeTable {
    fn physical_predicate(
        &self,
        state: &dyn Session,
        filters: Vec<Expr>,
    ) -> DFResult<Option<Arc<dyn PhysicalExpr>>> {
        let Some(conjunction) = filters.into_iter().reduce(Expr::and) else {
            return Ok(None);
        };
        let df_schema = DFSchema::try_from(self.inner.schema.as_ref().clone())?;
        Ok(Some(state.create_physical_expr(
            unqualify(conjunction)?,
            &df_schema,
        )?))
    }

    async fn count_matching(&self, predicate: &Option<Arc<dyn PhysicalExpr>>) -> Result<u64> {
        let table = self.inner.snapshot();
        let mut n = 0u64;
        for (_, files) in commit::live_files(&table).await? {
            for f in files {
                for b in
                    read_file(table.file_io(), f.data_file.file_path(), &self.inner.schema).await?
                {
                    n += match predicate {
                        Some(p) => evaluate_mask(p, &b)?.true_count() as u64,
                        None => b.num_rows() as u64,
                    };
                }
            }
        }
        Ok(n)
    }
}

/// What a sink does when its plan runs.
enum SinkOp {
    Append,
    Rewrite {
        predicate: Option<Arc<dyn PhysicalExpr>>,
        assignments: Vec<(usize, Arc<dyn PhysicalExpr>)>,
    },
    Count {
        predicate: Option<Arc<dyn PhysicalExpr>>,
    },
}

/// The DataFusion sink behind INSERT, UPDATE and DELETE on a [`LakeTable`].
struct LakeSink {
    table: LakeTable,
    op: SinkOp,
}

impl fmt::Debug for LakeSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LakeSink({})", self.table.name())
    }
}

impl DisplayAs for LakeSink {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            SinkOp::Append => "append",
            SinkOp::Rewrite {
                ref assignments, ..
            } if assignments.is_empty() => "delete",
            SinkOp::Rewrite { .. } => "update",
            SinkOp::Count { .. } => "update (no change)",
        };
        write!(f, "LakeSink: table={} op={op}", self.table.name())
    }
}

#[async_trait]
impl DataSink for LakeSink {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn schema(&self) -> &SchemaRef {
        &self.table.inner.schema
    }

    async fn write_all(
        &self,
        data: SendableRecordBatchStream,
        _context: &Arc<TaskContext>,
    ) -> DFResult<u64> {
        let result = match &self.op {
            SinkOp::Append => self.table.inner.append(data).await,
            SinkOp::Rewrite {
                predicate,
                assignments,
            } => {
                self.table
                    .inner
                    .rewrite(predicate.clone(), assignments.clone())
                    .await
            }
            SinkOp::Count { predicate } => self.table.count_matching(predicate).await,
        };
        result.map_err(Error::into_datafusion)
    }
}

/// Table property naming who writes a table that statements may not
/// change (a connector table: `kafka topic "t"`).
pub const WRITTEN_BY_PROPERTY: &str = "streamlake.written_by";

/// Snapshot-summary keys that say where a table is (`streamlake.offsets`,
/// dead-letter positions): a snapshot that does not change them — a
/// compaction — carries them over, so the current snapshot always answers.
pub const CARRIED_PREFIX: &str = "streamlake.carry.";

fn carried_properties(table: &Table, statement: &str) -> HashMap<String, String> {
    let mut props: HashMap<String, String> = table
        .metadata()
        .current_snapshot()
        .map(|s| {
            s.summary()
                .additional_properties
                .iter()
                .filter(|(k, _)| k.starts_with(CARRIED_PREFIX))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    props.insert("streamlake.statement".into(), statement.into());
    props
}

/// A carried snapshot-summary value of the table's current snapshot.
pub fn carried(table: &Table, key: &str) -> Option<String> {
    table
        .metadata()
        .current_snapshot()
        .and_then(|s| s.summary().additional_properties.get(key).cloned())
}
