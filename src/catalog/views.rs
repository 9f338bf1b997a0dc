//! Materialized views: creation (plan, backfill, subscribe), the barriers
//! (epochs, and the checkpoints behind `FLUSH`), drop, and restore after a
//! restart.
//!
//! A view's definition is durable as properties of its own Iceberg table
//! (`streamlake.view.sql`), which also holds its contents as of the last
//! checkpoint. After a restart every view is planned again and recomputed
//! from its base table, then follows it as before.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::prelude::SessionContext;
use iceberg::{NamespaceIdent, TableIdent};
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::sql::view_plan;
use crate::storage::table::LakeTable;
use crate::stream::message::{BarrierKind, Epoch};
use crate::stream::ops::materialize::MaterializeOperator;
use crate::stream::view::{ViewContents, ViewTable, ViewTask};

/// Table property holding a view's defining query.
pub const VIEW_SQL_PROPERTY: &str = "streamlake.view.sql";
/// Snapshot-summary key recording the epoch a view commit covers.
pub const EPOCH_PROPERTY: &str = "streamlake.epoch";

/// The view's schema in types Iceberg stores: no unsigned integers (a
/// row number is stored as a long), plain UTF-8 strings. Each snapshot is
/// cast to it when committed.
fn storable(schema: &datafusion::arrow::datatypes::Schema) -> datafusion::arrow::datatypes::Schema {
    use datafusion::arrow::datatypes::{DataType as D, Field, Schema};
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            let t = match f.data_type() {
                D::UInt8 | D::UInt16 => D::Int32,
                D::UInt32 | D::UInt64 => D::Int64,
                D::Utf8View | D::LargeUtf8 => D::Utf8,
                D::BinaryView | D::LargeBinary => D::Binary,
                other => other.clone(),
            };
            Field::new(f.name(), t, f.is_nullable())
        })
        .collect();
    Schema::new(fields)
}

/// The runtime side of one view.
pub struct ViewEntry {
    /// The tables or views it reads.
    pub inputs: Vec<String>,
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
        if existing.is_none() && (self.public.table_exist_any(name) || self.is_broken_view(name)) {
            if if_not_exists {
                return Ok(false);
            }
            return Err(Error::DuplicateTable(name.to_string()));
        }
        // The optimizer turns a single DISTINCT aggregate into aggregation
        // over aggregation, which the runtime maintains; other DISTINCT
        // aggregates reach the lowering and are refused there by name.
        let lowered = self.plan_view(name, query, ctx).await?;

        let created = existing.is_none();
        let storage = match existing {
            Some(t) => t,
            None => {
                let schema = iceberg::arrow::arrow_schema_to_schema_auto_assign_ids(&storable(
                    &lowered.schema,
                ))?;
                let ident = TableIdent::new(NamespaceIdent::new("public".into()), name.to_string());
                let props = HashMap::from([(VIEW_SQL_PROPERTY.to_string(), query.to_string())]);
                let table = self.warehouse.create_table(&ident, schema, props).await?;
                LakeTable::new(self.warehouse.clone(), table)?
            }
        };
        let inputs = lowered.inputs.clone();
        if let Err(e) = self.start_view(name, query, lowered, storage.clone()).await {
            // A view that failed part-way must not leave its Iceberg table
            // behind: the name would be taken by a table nobody can see.
            // A restored view's table is the user's data and stays.
            if created && let Err(d) = self.warehouse.drop_table(&storage.ident()).await {
                tracing::warn!(view = %name, error = %d, "could not remove the table of a failed view");
            }
            return Err(e);
        }
        drop(_guard);
        tracing::info!(view = %name, ?inputs, "materialized view created");
        // Not FLUSH: another view's failure is not this statement's.
        self.end_epoch().await?;
        Ok(true)
    }

    /// Plans a view (without starting it): the query through DataFusion,
    /// then the lowering, knowing which inputs carry watermarks.
    async fn plan_view(
        &self,
        name: &str,
        query: &str,
        ctx: &SessionContext,
    ) -> Result<view_plan::ViewPlan> {
        let (plan, options) = self.view_options(name, query, ctx).await?;
        view_plan::lower(&ctx.state(), &plan, &options)
    }

    /// `EXPLAIN CREATE MATERIALIZED VIEW`: the streaming plan's lines.
    pub async fn explain_view(
        &self,
        name: &str,
        query: &str,
        ctx: &SessionContext,
    ) -> Result<Vec<String>> {
        let (plan, options) = self.view_options(name, query, ctx).await?;
        let lowered = view_plan::lower(&ctx.state(), &plan, &options)?;
        Ok(view_plan::explain(&lowered, &options))
    }

    async fn view_options(
        &self,
        name: &str,
        query: &str,
        ctx: &SessionContext,
    ) -> Result<(
        datafusion::logical_expr::LogicalPlan,
        view_plan::LowerOptions,
    )> {
        let (body, emit_on_close) = view_plan::split_emit_on_close(query);
        let df = ctx.sql(body).await?;
        view_plan::refuse_volatile(df.logical_plan())?;
        let plan = df.into_optimized_plan()?;
        let public = self.public.clone();
        let public_ao = self.public.clone();
        let reads_source = plan_sources(&plan)
            .into_iter()
            .find(|t| self.public.source(t).is_some());
        let options = view_plan::LowerOptions {
            input_watermarks: Box::new(move |input: &str| {
                if let Some(v) = public.view(input) {
                    v.watermarks.clone()
                } else if let Some(s) = public.source(input) {
                    s.static_watermarks()
                } else if let Some(t) = public.get(input)
                    && let Some(sql) = t.properties().get(super::sources::CONNECTOR_SQL_PROPERTY)
                {
                    super::source_table::definition_watermarks(sql, &t.arrow_schema())
                } else {
                    Vec::new()
                }
            }),
            emit_on_close,
            late: Some(self.late_events.sink(name, reads_source)),
            input_append_only: Box::new(move |input: &str| {
                if let Some(v) = public_ao.view(input) {
                    v.append_only
                } else if public_ao.source(input).is_some() {
                    true
                } else {
                    public_ao.get(input).is_some_and(|t| {
                        t.properties()
                            .contains_key(super::sources::CONNECTOR_SQL_PROPERTY)
                    })
                }
            }),
            meter: self.state_meter.child(),
            state_ttl: None,
        };
        Ok((plan, options))
    }

    /// Subscribes a view to its inputs, starts its task and registers it.
    /// Called under the DDL lock.
    async fn start_view(
        &self,
        name: &str,
        query: &str,
        lowered: view_plan::ViewPlan,
        storage: LakeTable,
    ) -> Result<()> {
        // Subscribe to each input: its rows now and its changes from exactly
        // that point (tables under their writer lock, views inside their
        // task), so nothing is missed or counted twice. No barrier may be
        // injected meanwhile: a table subscribed twice (self-join, HOP) or
        // two tables would otherwise see an epoch on one feed and not the
        // other, and the view would wait for it forever. Barriers of epochs
        // up to `start_epoch` can still arrive through upstream views; the
        // task drops them (their changes are all there, in later epochs).
        let paused = self.coordinator.pause().await;
        let start_epoch = paused.epoch;
        let mut backfills = Vec::new();
        let mut feeds = Vec::new();
        for input in &lowered.inputs {
            let (rows, rx) = if let Some(view) = self.public.view(input) {
                view.subscribe().await?
            } else if let Some(source) = self.coordinator.source(input) {
                source.subscribe().await?
            } else {
                return Err(Error::UndefinedTable(input.clone()));
            };
            backfills.push(rows);
            feeds.push(rx);
        }
        drop(paused);
        let watermarks = lowered.watermarks.clone();
        let append_only = lowered.append_only;
        let upstream = lowered
            .inputs
            .iter()
            .filter_map(|i| self.public.view(i).map(|v| v.contents.clone()))
            .collect();
        let contents =
            ViewContents::new(lowered.schema.clone(), upstream, self.coordinator.clock());
        let poison = self.view_dead_letters(name, &lowered.inputs);
        let persist_to = storage.clone();
        let (control_tx, control_rx) = tokio::sync::mpsc::channel(4);
        let task = ViewTask {
            name: name.to_string(),
            root: lowered.root,
            start_epoch,
            materialize: MaterializeOperator::try_new(lowered.schema.clone())?,
            contents: contents.clone(),
            persist: Box::new(move |epoch: Epoch, commit| {
                let t = persist_to.clone();
                Box::pin(async move {
                    let props = HashMap::from([(EPOCH_PROPERTY.to_string(), epoch.to_string())]);
                    t.commit_view(commit, props).await
                })
            }),
            control: control_rx,
            downstream: Vec::new(),
            poison,
            rebuild: Some(self.rebuild_tx.clone()),
            fault: crate::stream::view::Fault::from_env(name),
            watermarks: Vec::new(),
        };
        let handle = tokio::spawn(task.run(backfills, feeds));
        self.public.add_view(
            name.to_string(),
            Arc::new(ViewTable {
                name: name.to_string(),
                watermarks,
                append_only,
                definition: query.to_string(),
                contents,
                control: control_tx,
            }),
        );
        self.views.lock().expect("views lock").insert(
            name.to_string(),
            ViewEntry {
                inputs: lowered.inputs,
                storage,
                task: handle,
            },
        );
        Ok(())
    }

    /// A view reading a source leaves the rows whose evaluation fails out
    /// and records them in streamlake.dead_letters with its name (an event
    /// is never deleted, so waiting for it to go, as views over tables do,
    /// would fail the view for good).
    fn view_dead_letters(&self, view: &str, inputs: &[String]) -> crate::stream::view::Poison {
        let Some(source) = inputs.iter().find_map(|i| self.public.source(i)) else {
            return Default::default();
        };
        let (dead_letters, view, topic, name) = (
            self.dead_letters.clone(),
            view.to_string(),
            source.topic(),
            source.name().to_string(),
        );
        let sink: crate::stream::view::DeadLetterSink =
            Arc::new(move |l: crate::stream::view::ViewDeadLetter| {
                tracing::debug!(view = %view, error = %l.error, "row left out of the view");
                dead_letters.add_now(
                    &view,
                    crate::connector::kafka::reader::DeadLetter {
                        source: name.clone(),
                        topic: topic.clone(),
                        partition: None,
                        offset: None,
                        kafka_timestamp: None,
                        key: None,
                        payload: Some(l.row.into_bytes()),
                        error: l.error,
                        view: Some(view.clone()),
                        received_at: chrono::Utc::now().timestamp_micros(),
                    },
                );
            });
        crate::stream::view::Poison::with_dead_letters(sink)
    }

    /// Starts the task that rebuilds views whose task stopped (an internal
    /// error or a panic in an operator): each is re-created from its
    /// inputs, with the views that read it, after a pause that doubles
    /// while rebuilds keep failing (1 s up to a minute).
    pub fn start_rebuilder(self: &Arc<Self>, ctx: SessionContext) {
        let Some(mut rx) = self.rebuild_rx.lock().expect("rebuild lock").take() else {
            return;
        };
        let lake = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut pause = std::time::Duration::from_secs(1);
            while let Some(name) = rx.recv().await {
                tokio::time::sleep(pause).await;
                let Some(lake) = lake.upgrade() else { break };
                match lake.rebuild_view(&name, &ctx).await {
                    Ok(()) => pause = std::time::Duration::from_secs(1),
                    Err(e) => {
                        tracing::error!(view = %name, error = %e, "rebuilding the view failed; retrying");
                        pause = (pause * 2).min(std::time::Duration::from_secs(60));
                        let _ = lake.rebuild_tx.send(name);
                    }
                }
            }
        });
    }

    /// Re-creates a stopped view and the views that read it, keeping their
    /// Iceberg tables.
    async fn rebuild_view(&self, name: &str, ctx: &SessionContext) -> Result<()> {
        let failed = self
            .public
            .view(name)
            .is_some_and(|v| v.contents.failure().is_some());
        if !failed {
            return Ok(()); // dropped, or already rebuilt
        }
        let mut order = vec![name.to_string()];
        let mut dependents = Vec::new();
        self.collect_dependents(name, &mut dependents);
        // Inputs before readers: the deepest dependents come first there.
        dependents.reverse();
        order.extend(dependents);
        for view in order {
            let Some(entry) = self.views.lock().expect("views lock").remove(&view) else {
                continue;
            };
            entry.task.abort();
            let definition = self.public.view(&view).map(|v| v.definition.clone());
            self.public.remove_view(&view);
            let Some(sql) = definition else { continue };
            tracing::warn!(view = %view, "rebuilding materialized view from its inputs");
            self.create_view(&view, &sql, false, ctx, Some(entry.storage))
                .await?;
        }
        Ok(())
    }

    /// Drops a view (and, with `cascade`, the views that read it); returns
    /// false if it did not exist and `if_exists`.
    pub async fn drop_view(&self, name: &str, if_exists: bool, cascade: bool) -> Result<bool> {
        let _guard = self.ddl.lock().await;
        let broken = self
            .broken_views
            .lock()
            .expect("views lock")
            .get(name)
            .cloned();
        if let Some(storage) = broken {
            // Nothing runs for it and nothing reads it: only the table goes.
            self.warehouse.drop_table(&storage.ident()).await?;
            self.broken_views.lock().expect("views lock").remove(name);
            tracing::info!(view = %name, "unrestorable materialized view dropped");
            return Ok(true);
        }
        if !self.views.lock().expect("views lock").contains_key(name) {
            if if_exists {
                return Ok(false);
            }
            return Err(Error::UndefinedTable(name.to_string()));
        }
        let dependents = self.dependents(name);
        if !dependents.is_empty() && !cascade {
            return Err(Error::DependentObjects {
                what: format!("materialized view {name}"),
                detail: format!(
                    "materialized view {} depends on materialized view {name}",
                    dependents.join(", ")
                ),
            });
        }
        // Dependents first, deepest first.
        let mut order = Vec::new();
        self.collect_dependents(name, &mut order);
        order.push(name.to_string());
        for view in order {
            self.drop_one_view(&view).await?;
        }
        Ok(true)
    }

    fn collect_dependents(&self, name: &str, out: &mut Vec<String>) {
        for d in self.dependents(name) {
            self.collect_dependents(&d, out);
            if !out.contains(&d) {
                out.push(d);
            }
        }
    }

    async fn drop_one_view(&self, name: &str) -> Result<()> {
        let Some(entry) = self.views.lock().expect("views lock").remove(name) else {
            return Ok(());
        };
        entry.task.abort();
        self.public.remove_view(name);
        self.warehouse.drop_table(&entry.storage.ident()).await?;
        tracing::info!(view = %name, "materialized view dropped");
        Ok(())
    }

    /// Whether `name` is a view whose restore failed at start.
    pub fn is_broken_view(&self, name: &str) -> bool {
        self.broken_views
            .lock()
            .expect("views lock")
            .contains_key(name)
    }

    /// Names of the views reading `relation` (a table or a view).
    pub fn dependents(&self, relation: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .views
            .lock()
            .expect("views lock")
            .iter()
            .filter(|(_, e)| e.inputs.iter().any(|i| i == relation))
            .map(|(n, _)| n.clone())
            .collect();
        v.sort();
        v
    }

    /// Names and definitions of all views.
    pub fn view_definitions(&self) -> Vec<(String, String)> {
        self.public.view_definitions()
    }

    /// FLUSH: a checkpoint — when it returns, every change made before the
    /// call is in every view and in every view's Iceberg table. Fails
    /// (XX000) if a view has stopped and is not rebuilt yet, rather than
    /// answer as if its stale rows were current.
    pub async fn flush(&self) -> Result<Epoch> {
        self.catch_up_connectors().await?;
        let epoch = self.checkpoint().await?;
        // Rows views over sources left out during that epoch, and late
        // events.
        self.dead_letters.commit().await?;
        self.late_events.commit().await?;
        for (name, _) in self.public.view_definitions() {
            if let Some(why) = self.public.view(&name).and_then(|v| v.contents.failure()) {
                return Err(Error::ViewError {
                    view: name,
                    sqlstate: "XX000",
                    message: format!("the view stopped and is being rebuilt: {why}"),
                });
            }
        }
        Ok(epoch)
    }

    /// Ends the current epoch: returns once every change made before the
    /// call is reflected in every view, published for reads (the views'
    /// Iceberg tables catch up at the next checkpoint).
    pub async fn end_epoch(&self) -> Result<Epoch> {
        self.barrier(BarrierKind::Epoch).await
    }

    /// Ends the current epoch with a checkpoint: returns once every change
    /// made before the call is published in every view and committed to
    /// the views' Iceberg tables (one snapshot per view changed since its
    /// last commit).
    pub async fn checkpoint(&self) -> Result<Epoch> {
        // Connector tables and dead letters commit first: their rows then
        // reach the views in the epoch this checkpoint ends.
        self.commit_connectors().await?;
        self.barrier(BarrierKind::Checkpoint).await
    }

    /// The periodic barrier: a checkpoint once `checkpoint_interval` has
    /// passed since the last one (FLUSH's included), else an epoch.
    pub async fn tick(&self, checkpoint_interval: std::time::Duration) -> Result<Epoch> {
        if self.coordinator.since_checkpoint() >= checkpoint_interval {
            self.checkpoint().await
        } else {
            self.end_epoch().await
        }
    }

    async fn barrier(&self, kind: BarrierKind) -> Result<Epoch> {
        self.coordinator
            .end_epoch(kind, |epoch| {
                self.views
                    .lock()
                    .expect("views lock")
                    .keys()
                    .filter(|name| {
                        self.public
                            .view(name)
                            .is_some_and(|v| v.contents.epoch() < epoch)
                    })
                    .cloned()
                    .collect()
            })
            .await
    }

    /// Re-creates the views found in the catalog at start.
    pub async fn restore_views(&self, ctx: &SessionContext) -> Result<()> {
        let mut pending = std::mem::take(&mut *self.pending_views.lock().expect("pending lock"));
        // Views over views need their inputs first: retry while progress is made.
        loop {
            let mut failed = Vec::new();
            let before = pending.len();
            for (name, table) in pending {
                let Some(sql) = table.properties().get(VIEW_SQL_PROPERTY).cloned() else {
                    continue;
                };
                if let Err(e) = self
                    .create_view(&name, &sql, false, ctx, Some(table.clone()))
                    .await
                {
                    failed.push((name, table, e));
                }
            }
            if failed.is_empty() {
                return Ok(());
            }
            if failed.len() == before {
                let mut broken = self.broken_views.lock().expect("views lock");
                for (name, table, e) in failed {
                    tracing::error!(view = %name, error = %e,
                        "could not restore materialized view; DROP MATERIALIZED VIEW removes it");
                    broken.insert(name, table);
                }
                return Ok(());
            }
            pending = failed.into_iter().map(|(n, t, _)| (n, t)).collect();
        }
    }
}

/// The tables a plan scans (by name), for naming the source a view reads.
fn plan_sources(plan: &datafusion::logical_expr::LogicalPlan) -> Vec<String> {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    let mut names = Vec::new();
    let _ = plan.apply(|node| {
        if let datafusion::logical_expr::LogicalPlan::TableScan(scan) = node {
            names.push(scan.table_name.table().to_string());
        }
        Ok(TreeNodeRecursion::Continue)
    });
    names
}
