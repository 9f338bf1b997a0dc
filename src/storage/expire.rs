//! Snapshot expiry and old-file cleanup, done by every commit.
//!
//! Without it a table's history grows by a snapshot per statement and a view's
//! by one per checkpoint, and every commit rewrites all of it into a new
//! metadata.json. So each commit (see [`crate::storage::commit`]), in the
//! same new metadata and under the same per-table writer lock, also:
//!
//! ```text
//!   snapshots:  s1  s2  s3  s4 ... s20 s21 [new]       (current snapshot's ancestry, oldest first)
//!               └─ expired ─┘└──────── kept ────────┘
//!   kept = the newest `retain_last`, and every snapshot that stopped being
//!          current less than `min_age` ago, and every one newer than a kept one
//!   metadata-log: the last `previous_versions_max` metadata files; older ones are deleted
//! ```
//!
//! A snapshot's age counts from when it *stopped* being current (the
//! timestamp of its child), not from when it was made: a reader that picked
//! the current snapshot less than `min_age` ago still finds every file of
//! it. Snapshots named by a branch or tag other than `main`, and snapshots
//! off the current ancestry (left by a rollback in another engine), are
//! never expired.
//!
//! Once the commit is durable, the files that only expired snapshots
//! reached are deleted: each expired snapshot's manifest list (a snapshot
//! owns its list alone), and — only when the history is one line with no
//! other refs — the manifests and the data and delete files that no kept
//! snapshot lists. On one line a file is live in a contiguous run of
//! snapshots (no writer re-adds a path it removed), so a file live in an
//! expired snapshot and not in the oldest kept one is live in no kept
//! snapshot. What a commit removed is found by comparing each expired
//! snapshot's manifest list with its child's: only the manifests that
//! differ are read, so the work follows the change, not the table's size.
//! Deletion is best effort: a failure is logged and leaves an orphan (orphan
//! cleanup is later work), never a broken table.

use std::collections::{HashMap, HashSet};

use iceberg::spec::{
    MAIN_BRANCH, MetadataLog, Snapshot, SnapshotRef, TableMetadata, TableMetadataBuilder,
};
use iceberg::table::Table;

use crate::config::Retention;
use crate::error::{Error, Result};

/// Iceberg's names for the settings a table may carry itself.
const MIN_SNAPSHOTS_TO_KEEP: &str = "history.expire.min-snapshots-to-keep";
const MAX_SNAPSHOT_AGE_MS: &str = "history.expire.max-snapshot-age-ms";
const PREVIOUS_VERSIONS_MAX: &str = "write.metadata.previous-versions-max";
const DELETE_AFTER_COMMIT: &str = "write.metadata.delete-after-commit.enabled";
const GC_ENABLED: &str = "gc.enabled";

/// The history one table keeps: the server's [`Retention`], overridden by
/// the table's own Iceberg properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub retain_last: usize,
    pub min_age_ms: i64,
    pub previous_versions_max: usize,
    /// Delete the metadata files that leave the metadata log (unless the
    /// table sets `write.metadata.delete-after-commit.enabled=false`).
    pub delete_metadata: bool,
    /// Delete the files only expired snapshots reached (unless the table
    /// sets `gc.enabled=false`).
    pub delete_files: bool,
}

impl Policy {
    pub fn of(properties: &HashMap<String, String>, retention: &Retention) -> Policy {
        let number = |key: &str| {
            properties
                .get(key)
                .and_then(|v| v.trim().parse::<i64>().ok())
        };
        let disabled = |key: &str| {
            properties
                .get(key)
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("false"))
        };
        Policy {
            retain_last: number(MIN_SNAPSHOTS_TO_KEEP)
                .map_or(retention.snapshot_retain_last, |n| n.max(1) as usize),
            min_age_ms: number(MAX_SNAPSHOT_AGE_MS).map_or(
                retention.snapshot_min_age.as_millis().min(i64::MAX as u128) as i64,
                |n| n.max(0),
            ),
            previous_versions_max: number(PREVIOUS_VERSIONS_MAX)
                .map_or(retention.metadata_previous_versions_max, |n| {
                    n.max(1) as usize
                }),
            delete_metadata: !disabled(DELETE_AFTER_COMMIT),
            delete_files: !disabled(GC_ENABLED),
        }
    }
}

/// What one commit expires.
#[derive(Debug, Default)]
pub struct Plan {
    /// Expired snapshots, newest first.
    pub expired: Vec<SnapshotRef>,
    /// The oldest kept snapshot of the current ancestry (the child of the
    /// newest expired one), when the history is one line with no other
    /// refs: only then are manifests and data files deleted.
    pub oldest_kept: Option<SnapshotRef>,
}

impl Plan {
    /// Removes the expired snapshots (and any statistics of theirs) from the
    /// new metadata; its snapshot log drops the entries before them.
    pub fn apply(&self, mut builder: TableMetadataBuilder) -> TableMetadataBuilder {
        if self.expired.is_empty() {
            return builder;
        }
        let ids: Vec<i64> = self.expired.iter().map(|s| s.snapshot_id()).collect();
        for id in &ids {
            builder = builder
                .remove_statistics(*id)
                .remove_partition_statistics(*id);
        }
        builder.remove_snapshots(&ids)
    }
}

/// How many snapshots of the ancestry `retired` describes stay: entry `i`
/// is when the `i`-th snapshot, newest first, stopped being current (`None`
/// for the current one). The kept ones are always the newest: the oldest
/// snapshot the rules keep keeps every newer one too.
fn kept_count(retired: &[Option<i64>], policy: &Policy, now_ms: i64) -> usize {
    retired
        .iter()
        .enumerate()
        .rposition(|(i, r)| {
            i < policy.retain_last || r.is_none_or(|t| now_ms.saturating_sub(t) < policy.min_age_ms)
        })
        .map_or(retired.len(), |i| i + 1)
}

/// Plans what a commit adding `new` on top of `old` expires.
pub fn plan(old: &TableMetadata, new: &Snapshot, policy: &Policy, now_ms: i64) -> Result<Plan> {
    // The ancestry of the new snapshot, newest first.
    let mut chain: Vec<SnapshotRef> = Vec::new();
    let mut parent = new.parent_snapshot_id();
    while let Some(s) = parent.and_then(|id| old.snapshot_by_id(id)) {
        if chain.len() > old.snapshots().len() {
            return Err(Error::Internal(format!(
                "snapshot {} is its own ancestor",
                s.snapshot_id()
            )));
        }
        chain.push(s.clone());
        parent = s.parent_snapshot_id();
    }
    if chain.len() < policy.retain_last {
        return Ok(Plan::default());
    }
    // Entry i of the ancestry (the new snapshot being -1) stopped being
    // current when its child was made.
    let retired: Vec<Option<i64>> = std::iter::once(None)
        .chain(
            std::iter::once(new.timestamp_ms())
                .chain(chain.iter().map(|s| s.timestamp_ms()))
                .map(Some),
        )
        .take(chain.len() + 1)
        .collect();
    let kept = kept_count(&retired, policy, now_ms);
    if kept > chain.len() {
        return Ok(Plan::default());
    }
    // Snapshots other refs name stay; their refs would go with them.
    let pinned = other_refs(old)?;
    let expired: Vec<SnapshotRef> = chain[kept - 1..]
        .iter()
        .filter(|s| !pinned.contains(&s.snapshot_id()))
        .cloned()
        .collect();
    let one_line = pinned.is_empty() && chain.len() == old.snapshots().len();
    let oldest_kept = match kept {
        _ if !one_line || expired.is_empty() => None,
        1 => Some(SnapshotRef::new(new.clone())),
        k => Some(chain[k - 2].clone()),
    };
    Ok(Plan {
        expired,
        oldest_kept,
    })
}

/// Snapshot ids named by refs other than `main` (the crate has no accessor
/// for the refs; they are read from the metadata's JSON form).
fn other_refs(metadata: &TableMetadata) -> Result<HashSet<i64>> {
    let json = serde_json::to_value(metadata)
        .map_err(|e| Error::Internal(format!("table metadata as JSON: {e}")))?;
    Ok(json
        .get("refs")
        .and_then(|r| r.as_object())
        .into_iter()
        .flatten()
        .filter(|(name, _)| name.as_str() != MAIN_BRANCH)
        .filter_map(|(_, r)| r.get("snapshot-id").and_then(|id| id.as_i64()))
        .collect())
}

/// Keeps the last `previous_versions_max` entries of the metadata log:
/// `old` is the metadata before the commit, `old_location` its file, and
/// `built` the new metadata (whose log the crate trimmed by its own
/// default). Returns the metadata to write and the files that left the log.
pub fn trim_metadata_log(
    old: &TableMetadata,
    old_location: &str,
    built: TableMetadata,
    policy: &Policy,
) -> Result<(TableMetadata, Vec<String>)> {
    let mut all: Vec<MetadataLog> = old.metadata_log().to_vec();
    all.push(MetadataLog {
        metadata_file: old_location.to_string(),
        timestamp_ms: old.last_updated_ms(),
    });
    let cut = all.len().saturating_sub(policy.previous_versions_max);
    let dropped: Vec<String> = all[..cut].iter().map(|m| m.metadata_file.clone()).collect();
    let keep = &all[cut..];
    if built.metadata_log() == keep {
        return Ok((built, dropped));
    }
    // The crate trims by the table property or its own default of 100;
    // the log is not settable otherwise, so it is set on the JSON form.
    let mut json = serde_json::to_value(&built)
        .map_err(|e| Error::Internal(format!("table metadata as JSON: {e}")))?;
    json["metadata-log"] = serde_json::to_value(keep)
        .map_err(|e| Error::Internal(format!("metadata log as JSON: {e}")))?;
    let metadata: TableMetadata = serde_json::from_value(json)
        .map_err(|e| Error::Internal(format!("table metadata from JSON: {e}")))?;
    Ok((metadata, dropped))
}

/// Deletes what the committed `plan` and metadata log trim left
/// unreachable; `table` is the table as committed. Never fails: what
/// cannot be deleted stays behind as an orphan.
pub async fn clean_up(table: &Table, plan: &Plan, old_metadata: &[String], policy: &Policy) {
    let mut doomed: Vec<String> = Vec::new();
    if policy.delete_metadata {
        doomed.extend(old_metadata.iter().cloned());
    }
    if policy.delete_files {
        doomed.extend(plan.expired.iter().map(|s| s.manifest_list().to_string()));
        if let Some(oldest_kept) = &plan.oldest_kept {
            match unreachable_files(table, oldest_kept, &plan.expired).await {
                Ok(files) => doomed.extend(files),
                Err(e) => tracing::warn!(table = %table.identifier(), error = %e,
                    "could not list the files of expired snapshots; they stay"),
            }
        }
    }
    if doomed.is_empty() && plan.expired.is_empty() {
        return;
    }
    let mut failed = 0usize;
    for path in &doomed {
        if let Err(e) = table.file_io().delete(path).await {
            failed += 1;
            tracing::debug!(%path, error = %e, "could not delete an unreachable file");
        }
    }
    tracing::debug!(
        table = %table.identifier(),
        snapshots = plan.expired.len(),
        files = doomed.len() - failed,
        failed,
        "expired old snapshots"
    );
}

/// The manifests and the data and delete files that the `expired`
/// snapshots (newest first, the first being `oldest_kept`'s parent, all
/// on one line) reach and no kept snapshot does.
async fn unreachable_files(
    table: &Table,
    oldest_kept: &SnapshotRef,
    expired: &[SnapshotRef],
) -> Result<Vec<String>> {
    let mut manifests: HashMap<String, iceberg::spec::ManifestFile> = HashMap::new();
    let mut lists: Vec<HashSet<String>> = Vec::with_capacity(expired.len() + 1);
    for s in std::iter::once(oldest_kept).chain(expired) {
        let list = table.manifest_list_reader(s).load().await?;
        let paths = list
            .entries()
            .iter()
            .map(|m| {
                manifests
                    .entry(m.manifest_path.clone())
                    .or_insert_with(|| m.clone());
                m.manifest_path.clone()
            })
            .collect();
        lists.push(paths);
    }
    // The live files of a manifest, read once.
    let mut live: HashMap<String, Vec<String>> = HashMap::new();
    let mut files_of = async |path: &String| -> Result<Vec<String>> {
        if let Some(f) = live.get(path) {
            return Ok(f.clone());
        }
        let manifest = manifests[path].load_manifest(table.file_io()).await?;
        let files: Vec<String> = manifest
            .entries()
            .iter()
            .filter(|e| e.is_alive())
            .map(|e| e.file_path().to_string())
            .collect();
        live.insert(path.clone(), files.clone());
        Ok(files)
    };
    let mut out: HashSet<String> = HashSet::new();
    // Each step from an expired snapshot to its child removed the files
    // in the manifests only the parent lists, less those in the manifests
    // only the child lists (rewritten manifests carry files over).
    for i in 1..lists.len() {
        let (child, parent) = (&lists[i - 1], &lists[i]);
        let mut carried: HashSet<String> = HashSet::new();
        for m in child.difference(parent) {
            carried.extend(files_of(m).await?);
        }
        for m in parent.difference(child) {
            out.extend(
                files_of(m)
                    .await?
                    .into_iter()
                    .filter(|f| !carried.contains(f)),
            );
        }
    }
    let kept = &lists[0];
    let gone_manifests: HashSet<&String> = lists[1..]
        .iter()
        .flatten()
        .filter(|m| !kept.contains(*m))
        .collect();
    out.extend(gone_manifests.into_iter().cloned());
    Ok(out.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn policy(retain_last: usize, min_age_ms: i64) -> Policy {
        Policy {
            retain_last,
            min_age_ms,
            previous_versions_max: 3,
            delete_metadata: true,
            delete_files: true,
        }
    }

    #[test]
    fn the_newest_and_the_recently_current_snapshots_stay() {
        // Retired at 100, 90, ... 10 (newest first); the first is current.
        let retired: Vec<Option<i64>> = std::iter::once(None)
            .chain((1..10).map(|i| Some(100 - 10 * i)))
            .collect();
        // By count only.
        assert_eq!(kept_count(&retired, &policy(3, 0), 100), 3);
        // Age wins when it keeps more: retired less than 35 ms before 100.
        assert_eq!(kept_count(&retired, &policy(1, 35), 100), 4);
        // Nothing to expire.
        assert_eq!(kept_count(&retired, &policy(20, 0), 100), 10);
        // The current snapshot always stays.
        assert_eq!(kept_count(&retired[..1], &policy(1, 0), 100), 1);
    }

    #[test]
    fn a_tables_properties_win_over_the_server_settings() {
        let retention = Retention {
            snapshot_retain_last: 10,
            snapshot_min_age: Duration::from_secs(60),
            metadata_previous_versions_max: 20,
        };
        let p = Policy::of(&HashMap::new(), &retention);
        assert_eq!(p.retain_last, 10);
        assert_eq!(p.min_age_ms, 60_000);
        assert_eq!(p.previous_versions_max, 20);
        assert!(p.delete_metadata && p.delete_files);
        let props: HashMap<String, String> = [
            (MIN_SNAPSHOTS_TO_KEEP, "2"),
            (MAX_SNAPSHOT_AGE_MS, "5"),
            (PREVIOUS_VERSIONS_MAX, "0"),
            (GC_ENABLED, "false"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let p = Policy::of(&props, &retention);
        assert_eq!(
            (p.retain_last, p.min_age_ms, p.previous_versions_max),
            (2, 5, 1)
        );
        assert!(p.delete_metadata && !p.delete_files);
    }
}
