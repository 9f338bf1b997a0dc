//! One Iceberg snapshot commit that can add *and remove* data files.
//!
//! The Apache `iceberg` crate 0.10 can only fast-append; UPDATE, DELETE and
//! compaction need a snapshot that drops data files. We build that snapshot
//! from the crate's public spec types:
//!
//! ```text
//!  new data files ──▶ manifest (ADDED) ─┐
//!  untouched manifests ─────────────────┼─▶ manifest list ─▶ snapshot ─▶ metadata.json
//!  manifests holding removed files ──▶ rewritten (EXISTING, minus removed)
//!                                                        │
//!            catalog row: CAS metadata_location old → new ◀┘
//! ```
//!
//! The compare-and-swap on the catalog row is the commit point: a crash
//! before it leaves only unreferenced files behind, never a half-visible
//! change, and nothing after it can fail (see [`commit`]). Tables' removed files are copied-on-write by the caller, so every
//! Iceberg reader sees exactly the live rows without having to understand
//! delete files. Views may also add position delete files
//! (`storage::deletes`), which every v2 reader applies.
//!
//! The same new metadata also expires old snapshots and trims the metadata
//! log (see [`crate::storage::expire`]); once the swap has succeeded, the
//! files only they reached are deleted. Callers hold the table's writer
//! lock, so expiry never races a commit of the same table.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use iceberg::spec::{
    DataContentType, DataFile, DataFileFormat, FormatVersion, MAIN_BRANCH, ManifestContentType,
    ManifestFile, ManifestListWriter, ManifestWriter, ManifestWriterBuilder, Operation, Snapshot,
    SnapshotReference, SnapshotRetention, Summary, TableMetadataBuilder,
};
use iceberg::table::Table;
use iceberg::{MetadataLocation, TableIdent};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::storage::expire;
use crate::storage::warehouse::Warehouse;

/// More manifests than this in a snapshot are merged by its commit.
const MAX_MANIFESTS: usize = 16;

/// What one commit changes.
#[derive(Debug, Default)]
pub struct Change {
    /// Data files to add (already written).
    pub added: Vec<DataFile>,
    /// Position delete files to add (already written; views only).
    pub added_deletes: Vec<DataFile>,
    /// Paths of live data files to remove.
    pub removed: HashSet<String>,
    /// Extra snapshot-summary properties (epoch, offsets, statement kind).
    pub properties: HashMap<String, String>,
    /// The files are rewritten without changing the table's rows
    /// (compaction): Iceberg's `replace` operation.
    pub rewrite_only: bool,
}

impl Change {
    fn operation(&self) -> Operation {
        if self.rewrite_only {
            return Operation::Replace;
        }
        let deletes = !self.removed.is_empty() || !self.added_deletes.is_empty();
        match (self.added.is_empty(), deletes) {
            (_, false) => Operation::Append,
            (true, true) => Operation::Delete,
            (false, true) => Operation::Overwrite,
        }
    }
}

/// A live data file of the current snapshot, with the bookkeeping needed to
/// carry it into a rewritten manifest.
#[derive(Debug, Clone)]
pub struct LiveFile {
    pub data_file: DataFile,
    pub snapshot_id: i64,
    pub sequence_number: i64,
    pub file_sequence_number: Option<i64>,
}

/// Lists the live data files of the table's current snapshot, per manifest.
pub async fn live_files(table: &Table) -> Result<Vec<(ManifestFile, Vec<LiveFile>)>> {
    let Some(snapshot) = table.metadata().current_snapshot() else {
        return Ok(Vec::new());
    };
    let list = table.manifest_list_reader(snapshot).load().await?;
    let mut out = Vec::with_capacity(list.entries().len());
    for manifest_file in list.entries() {
        let manifest = manifest_file.load_manifest(table.file_io()).await?;
        let files = manifest
            .entries()
            .iter()
            .filter(|e| e.is_alive())
            .map(|e| LiveFile {
                data_file: e.data_file().clone(),
                snapshot_id: e.snapshot_id().unwrap_or(snapshot.snapshot_id()),
                sequence_number: e.sequence_number().unwrap_or(0),
                file_sequence_number: e.file_sequence_number,
            })
            .collect();
        out.push((manifest_file.clone(), files));
    }
    Ok(out)
}

/// Commits `change` on top of `table`'s current metadata and returns the
/// table as reloaded from the catalog. Fails with [`Error::CommitConflict`]
/// if another writer moved the table in between.
pub async fn commit(warehouse: &Warehouse, table: &Table, change: Change) -> Result<Table> {
    let metadata = table.metadata();
    if metadata.format_version() != FormatVersion::V2 {
        return Err(Error::Internal(format!(
            "table {} is not an Iceberg v2 table",
            table.identifier()
        )));
    }
    let file_io = table.file_io();
    let snapshot_id = new_snapshot_id(table);
    let sequence_number = metadata.next_sequence_number();
    let commit_uuid = Uuid::new_v4();
    let location = metadata.location();
    let schema = metadata.current_schema().clone();
    let spec = metadata.default_partition_spec().as_ref().clone();
    let operation = change.operation();

    let mut manifests: Vec<ManifestFile> = Vec::new();
    let mut deleted_files = 0u64;
    let mut deleted_records = 0u64;
    let mut deleted_size = 0u64;
    let mut total_files = 0u64;
    let mut total_records = 0u64;
    let mut total_size = 0u64;
    let mut total_delete_files = 0u64;
    let mut total_position_deletes = 0u64;
    let mut manifest_counter = 0u32;
    let mut next_manifest_path = || {
        manifest_counter += 1;
        format!("{location}/metadata/{commit_uuid}-m{manifest_counter}.avro")
    };

    // Manifests carried over unchanged; merged if too many pile up.
    let mut untouched: Vec<(ManifestFile, Vec<LiveFile>)> = Vec::new();
    for (manifest_file, files) in live_files(table).await? {
        let touched = files
            .iter()
            .any(|f| change.removed.contains(f.data_file.file_path()));
        for f in &files {
            if change.removed.contains(f.data_file.file_path()) {
                deleted_files += 1;
                if f.data_file.content_type() == DataContentType::Data {
                    deleted_records += f.data_file.record_count();
                }
                deleted_size += f.data_file.file_size_in_bytes();
            } else if f.data_file.content_type() != DataContentType::Data {
                total_delete_files += 1;
                total_position_deletes += f.data_file.record_count();
            } else {
                total_files += 1;
                total_records += f.data_file.record_count();
                total_size += f.data_file.file_size_in_bytes();
            }
        }
        if !touched {
            untouched.push((manifest_file, files));
            continue;
        }
        let kept: Vec<&crate::storage::commit::LiveFile> = files
            .iter()
            .filter(|f| !change.removed.contains(f.data_file.file_path()))
            .collect();
        if kept.is_empty() {
            continue;
        }
        let mut writer = manifest_writer(
            file_io.new_output(next_manifest_path())?,
            snapshot_id,
            &schema,
            &spec,
            manifest_file.content,
        );
        for f in kept {
            writer.add_existing_file(
                f.data_file.clone(),
                f.snapshot_id,
                f.sequence_number,
                f.file_sequence_number.or(Some(f.sequence_number)),
            )?;
        }
        manifests.push(writer.write_manifest_file().await?);
    }
    // Every commit adds a manifest or two and every later commit reads
    // them all, so once they pile up the untouched ones of the current
    // partition spec are merged, one per content type (Iceberg's manifest
    // merging). Their entries keep their snapshot and sequence numbers.
    if untouched.len() + manifests.len() + 2 > MAX_MANIFESTS {
        let spec_id = metadata.default_partition_spec_id();
        let mut merge: HashMap<ManifestContentType, Vec<LiveFile>> = HashMap::new();
        for (manifest_file, files) in untouched {
            if manifest_file.partition_spec_id == spec_id {
                merge
                    .entry(manifest_file.content)
                    .or_default()
                    .extend(files);
            } else {
                manifests.push(manifest_file);
            }
        }
        for (content, files) in merge {
            if files.is_empty() {
                continue;
            }
            let mut writer = manifest_writer(
                file_io.new_output(next_manifest_path())?,
                snapshot_id,
                &schema,
                &spec,
                content,
            );
            for f in files {
                writer.add_existing_file(
                    f.data_file,
                    f.snapshot_id,
                    f.sequence_number,
                    f.file_sequence_number.or(Some(f.sequence_number)),
                )?;
            }
            manifests.push(writer.write_manifest_file().await?);
        }
    } else {
        manifests.extend(untouched.into_iter().map(|(m, _)| m));
    }
    if deleted_files as usize != change.removed.len() {
        return Err(Error::CommitConflict(format!(
            "table {} changed underneath the statement: {} of {} files to replace are gone",
            table.identifier(),
            change.removed.len() - deleted_files as usize,
            change.removed.len()
        )));
    }

    let mut added_records = 0u64;
    let mut added_size = 0u64;
    if change
        .added
        .iter()
        .chain(&change.added_deletes)
        .any(|f| f.file_format() != DataFileFormat::Parquet)
    {
        return Err(Error::Internal("only Parquet files are written".into()));
    }
    let mut added_position_deletes = 0u64;
    for (files, content) in [
        (&change.added, ManifestContentType::Data),
        (&change.added_deletes, ManifestContentType::Deletes),
    ] {
        if files.is_empty() {
            continue;
        }
        let mut writer = manifest_writer(
            file_io.new_output(next_manifest_path())?,
            snapshot_id,
            &schema,
            &spec,
            content,
        );
        for f in files {
            match content {
                ManifestContentType::Data => {
                    added_records += f.record_count();
                    added_size += f.file_size_in_bytes();
                }
                ManifestContentType::Deletes => {
                    added_position_deletes += f.record_count();
                    total_size += f.file_size_in_bytes();
                }
            }
            writer.add_file(f.clone(), sequence_number)?;
        }
        manifests.push(writer.write_manifest_file().await?);
    }
    total_files += change.added.len() as u64;
    total_records += added_records;
    total_size += added_size;
    total_delete_files += change.added_deletes.len() as u64;
    total_position_deletes += added_position_deletes;

    let list_path = format!("{location}/metadata/snap-{snapshot_id}-0-{commit_uuid}.avro");
    let mut list_writer = ManifestListWriter::v2(
        file_io.new_output(&list_path)?.writer().await?,
        snapshot_id,
        metadata.current_snapshot_id(),
        sequence_number,
    );
    list_writer.add_manifests(manifests.into_iter())?;
    list_writer.close().await?;

    let mut props = change.properties;
    let mut put = |k: &str, v: u64| {
        props.insert(k.to_string(), v.to_string());
    };
    put("added-data-files", change.added.len() as u64);
    put("added-records", added_records);
    put("added-files-size", added_size);
    put("deleted-data-files", deleted_files);
    put("deleted-records", deleted_records);
    put("removed-files-size", deleted_size);
    put("total-data-files", total_files);
    put("total-records", total_records);
    put("total-files-size", total_size);
    if !change.added_deletes.is_empty() {
        put("added-delete-files", change.added_deletes.len() as u64);
        put("added-position-deletes", added_position_deletes);
    }
    put("total-delete-files", total_delete_files);
    put("total-position-deletes", total_position_deletes);
    put("total-equality-deletes", 0);
    let now_ms = chrono::Utc::now().timestamp_millis();
    let snapshot = Snapshot::builder()
        .with_snapshot_id(snapshot_id)
        .with_parent_snapshot_id(metadata.current_snapshot_id())
        .with_sequence_number(sequence_number)
        .with_timestamp_ms(now_ms)
        .with_manifest_list(list_path)
        .with_summary(Summary {
            operation,
            additional_properties: props,
        })
        .with_schema_id(metadata.current_schema_id())
        .build();

    let old_location = table.metadata_location_result()?.to_string();
    let policy = expire::Policy::of(metadata.properties(), warehouse.retention());
    let expiry = expire::plan(metadata, &snapshot, &policy, now_ms)?;
    let builder =
        TableMetadataBuilder::new_from_metadata(metadata.clone(), Some(old_location.clone()))
            .add_snapshot(snapshot)?
            .set_ref(
                MAIN_BRANCH,
                SnapshotReference::new(snapshot_id, SnapshotRetention::branch(None, None, None)),
            )?;
    let built = expiry.apply(builder).build()?;
    let (new_metadata, old_metadata_files) =
        expire::trim_metadata_log(metadata, &old_location, built.metadata, &policy)?;
    // Every commit writes a new metadata file (next version, new UUID) and
    // never touches the current one: the CAS below is the only switch.
    let new_location = match MetadataLocation::from_str(&old_location) {
        Ok(l) => l.with_next_version().with_new_metadata(&new_metadata),
        Err(_) => {
            return Err(Error::Internal(format!(
                "unexpected metadata location {old_location}"
            )));
        }
    };
    if new_location.to_string() == old_location {
        return Err(Error::Internal("metadata location did not advance".into()));
    }
    new_metadata.write_to(file_io, &new_location).await?;
    let new_location = new_location.to_string();
    if let Err(e) = warehouse
        .swap_metadata_location(table.identifier(), &old_location, &new_location)
        .await
    {
        // The swap can have happened even though it reported an error (an
        // acknowledgment lost on the way back). Reporting a durable commit
        // as failed would skip the views and leave the caller's snapshot
        // one commit behind the catalog, so the catalog row decides.
        return match warehouse.load_table(table.identifier()).await {
            Ok(now) if now.metadata_location() == Some(new_location.as_str()) => {
                tracing::warn!(table = %table.identifier(), error = %e,
                    "catalog swap reported an error but took effect; commit stands");
                Ok(now)
            }
            _ => Err(e),
        };
    }
    // The commit is durable. The new table is built from what was just
    // written rather than read back, so that nothing after the commit
    // point can fail and make a committed statement look failed.
    let local = iceberg::Runtime::try_current().and_then(|runtime| {
        Table::builder()
            .metadata(new_metadata)
            .metadata_location(new_location)
            .identifier(table.identifier().clone())
            .file_io(file_io.clone())
            .runtime(runtime)
            .build()
    });
    let committed = match local {
        Ok(t) => t,
        // Not expected (every required part is given); reading it back is
        // the fallback.
        Err(_) => warehouse.load_table(table.identifier()).await?,
    };
    expire::clean_up(&committed, &expiry, &old_metadata_files, &policy).await;
    Ok(committed)
}

/// A manifest writer of the new snapshot, for data or delete files.
fn manifest_writer(
    output: iceberg::io::OutputFile,
    snapshot_id: i64,
    schema: &iceberg::spec::SchemaRef,
    spec: &iceberg::spec::PartitionSpec,
    content: ManifestContentType,
) -> ManifestWriter {
    let builder =
        ManifestWriterBuilder::new(output, Some(snapshot_id), schema.clone(), spec.clone());
    match content {
        ManifestContentType::Deletes => builder.build_v2_deletes(),
        ManifestContentType::Data => builder.build_v2_data(),
    }
}

fn new_snapshot_id(table: &Table) -> i64 {
    loop {
        let (a, b) = Uuid::new_v4().as_u64_pair();
        let id = ((a ^ b) & (i64::MAX as u64)) as i64;
        if id != 0 && table.metadata().snapshot_by_id(id).is_none() {
            return id;
        }
    }
}

/// The identifier as the SQL catalog stores it.
pub fn catalog_row_key(ident: &TableIdent) -> (String, String) {
    (ident.namespace().join("."), ident.name().to_string())
}
