//! Materialized views: creation (plan, backfill, subscribe), the epoch
//! barrier behind `FLUSH`, drop, and restore after a restart.
//!
//! A view's definition is durable as properties of its own Iceberg table
//! (`streamlake.view.sql`), which also holds its contents as of the last
//! epoch. After a restart every view is planned again and recomputed from
//! its base table, then follows it as before.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::prelude::SessionContext;
use iceberg::{NamespaceIdent, TableIdent};
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::sql::view_plan;
use crate::storage::table::LakeTable;
use crate::stream::message::{Barrier, BarrierAck, Epoch};
use crate::stream::ops::materialize::MaterializeOperator;
use crate::stream::view::{ViewContents, ViewTable, ViewTask};

/// Table property holding a view's defining query.
pub const VIEW_SQL_PROPERTY: &str = "streamlake.view.sql";
/// Snapshot-summary key recording the epoch a view commit covers.
pub const EPOCH_PROPERTY: &str = "streamlake.epoch";

/// The runtime side of one view.
pub struct ViewEntry {
    pub source: String,
    pub storage: LakeTable,
    pub task: JoinHandle<()>,
}

impl super::Lake {
    /// Creates (or, with `existing`, restores) a materialized view and
    /// returns once its contents are published.
    pub async fn create_view(
        &self,
        name: &str,
        query: &str,
        if_not_exists: bool,
        ctx: &SessionContext,
        existing: Option<LakeTable>,
    ) -> Result<bool> {
        let _guard = self.ddl.lock().await;
        if existing.is_none() && (self.public.table_exist_any(name)) {
            if if_not_exists {
                return Ok(false);
            }
            return Err(Error::DuplicateTable(name.to_string()));
        }
        let df = ctx.sql(query).await?;
        // The optimizer rewrites DISTINCT aggregates into nested aggregation;
        // name them as the user wrote them.
        view_plan::refuse_distinct_aggregates(df.logical_plan())?;
        let plan = df.into_optimized_plan()?;
        let is_view = |n: &str| self.public.is_view(n);
        let lowered = view_plan::lower(&ctx.state(), &plan, &is_view)?;
        let source = self
            .table(&lowered.source)
            .ok_or_else(|| Error::UndefinedTable(lowered.source.clone()))?;

        let storage = match existing {
            Some(t) => t,
            None => {
                let schema =
                    iceberg::arrow::arrow_schema_to_schema_auto_assign_ids(&lowered.schema)?;
                let ident = TableIdent::new(NamespaceIdent::new("public".into()), name.to_string());
                let props = HashMap::from([(VIEW_SQL_PROPERTY.to_string(), query.to_string())]);
                let table = self.warehouse.create_table(&ident, schema, props).await?;
                LakeTable::new(self.warehouse.clone(), table)?
            }
        };
        // Subscribe first, under the base table's writer lock: the snapshot
        // and the feed meet exactly, nothing is missed or counted twice.
        let (snapshot, rx) = source.subscribe().await;
        let backfill = source.snapshot_chunks(&snapshot).await?;
        let contents = ViewContents::new(lowered.schema.clone());
        let persist_to = storage.clone();
        let task = ViewTask {
            name: name.to_string(),
            ops: lowered.operators,
            materialize: MaterializeOperator::try_new(lowered.schema.clone())?,
            contents: contents.clone(),
            persist: Box::new(move |epoch: Epoch, batch| {
                let t = persist_to.clone();
                Box::pin(async move {
                    let props = HashMap::from([(EPOCH_PROPERTY.to_string(), epoch.to_string())]);
                    t.replace_all(batch, props).await
                })
            }),
        };
        let handle = tokio::spawn(task.run(backfill, rx));
        self.public.add_view(
            name.to_string(),
            Arc::new(ViewTable {
                name: name.to_string(),
                definition: query.to_string(),
                contents,
            }),
        );
        self.views.lock().expect("views lock").insert(
            name.to_string(),
            ViewEntry {
                source: lowered.source.clone(),
                storage,
                task: handle,
            },
        );
        drop(_guard);
        tracing::info!(view = %name, source = %lowered.source, "materialized view created");
        self.flush().await?;
        Ok(true)
    }

    /// Drops a view; returns false if it did not exist and `if_exists`.
    pub async fn drop_view(&self, name: &str, if_exists: bool) -> Result<bool> {
        let _guard = self.ddl.lock().await;
        let entry = self.views.lock().expect("views lock").remove(name);
        let Some(entry) = entry else {
            if if_exists {
                return Ok(false);
            }
            return Err(Error::UndefinedTable(name.to_string()));
        };
        entry.task.abort();
        self.public.remove_view(name);
        self.warehouse.drop_table(&entry.storage.ident()).await?;
        tracing::info!(view = %name, "materialized view dropped");
        Ok(true)
    }

    /// Names of the views reading `table`.
    pub fn dependents(&self, table: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .views
            .lock()
            .expect("views lock")
            .iter()
            .filter(|(_, e)| e.source == table)
            .map(|(n, _)| n.clone())
            .collect();
        v.sort();
        v
    }

    /// Names and definitions of all views.
    pub fn view_definitions(&self) -> Vec<(String, String)> {
        self.public.view_definitions()
    }

    /// Ends the current epoch: returns once every change made before the
    /// call is reflected in every view, published and committed to the
    /// views' Iceberg tables.
    pub async fn flush(&self) -> Result<Epoch> {
        let _barrier = self.barrier.lock().await;
        let epoch = self.epoch.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let sources: Vec<String> = {
            let views = self.views.lock().expect("views lock");
            let mut s: Vec<String> = views.values().map(|e| e.source.clone()).collect();
            s.sort();
            s.dedup();
            s
        };
        let (ack, mut rx) = BarrierAck::new();
        let mut expected = 0;
        for source in sources {
            if let Some(t) = self.table(&source) {
                expected += t
                    .send_barrier(Barrier {
                        epoch,
                        ack: Some(ack.clone()),
                    })
                    .await;
            }
        }
        drop(ack);
        for _ in 0..expected {
            if rx.recv().await.is_none() {
                break;
            }
        }
        Ok(epoch)
    }

    /// Re-creates the views found in the catalog at start.
    pub async fn restore_views(&self, ctx: &SessionContext) -> Result<()> {
        let pending = std::mem::take(&mut *self.pending_views.lock().expect("pending lock"));
        for (name, table) in pending {
            let Some(sql) = table.properties().get(VIEW_SQL_PROPERTY).cloned() else {
                continue;
            };
            if let Err(e) = self.create_view(&name, &sql, false, ctx, Some(table)).await {
                tracing::error!(view = %name, error = %e, "could not restore materialized view");
            }
        }
        Ok(())
    }
}
