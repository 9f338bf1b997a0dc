//! The durable catalog of tables, and the DataFusion schema that serves it.
//!
//! The Iceberg SQL catalog in the warehouse is the single source of truth:
//! at start every table registered there is loaded, `CREATE TABLE` commits a
//! new Iceberg table before it is acknowledged, and `DROP TABLE` removes the
//! catalog row. [`LakeSchema`] answers DataFusion's name lookups from the
//! loaded tables, so `pg_catalog`, `information_schema` and every query see
//! the same list.

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::error::{DataFusionError, Result as DFResult};
use iceberg::{NamespaceIdent, TableIdent};
use tokio::sync::Mutex;

use crate::error::{Error, Result};
use crate::sql::ddl::TableDef;
use crate::storage::table::LakeTable;
use crate::storage::warehouse::Warehouse;
use crate::stream::coordinator::BarrierCoordinator;
use crate::stream::source::TableSource;
use crate::stream::view::ViewTable;

pub mod source_table;
pub mod sources;
pub mod system;
pub mod views;

/// The tables and views of the one schema `public`.
#[derive(Debug, Default)]
pub struct LakeSchema {
    tables: RwLock<BTreeMap<String, LakeTable>>,
    views: RwLock<BTreeMap<String, Arc<ViewTable>>>,
    sources: RwLock<BTreeMap<String, source_table::SourceTable>>,
}

impl LakeSchema {
    pub fn get(&self, name: &str) -> Option<LakeTable> {
        self.tables.read().expect("schema lock").get(name).cloned()
    }

    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .tables
            .read()
            .expect("schema lock")
            .keys()
            .cloned()
            .collect();
        names.extend(self.views.read().expect("schema lock").keys().cloned());
        names.extend(self.sources.read().expect("schema lock").keys().cloned());
        names.sort();
        names
    }

    pub fn view(&self, name: &str) -> Option<Arc<ViewTable>> {
        self.views.read().expect("schema lock").get(name).cloned()
    }

    pub fn all_tables(&self) -> Vec<LakeTable> {
        self.tables
            .read()
            .expect("schema lock")
            .values()
            .cloned()
            .collect()
    }

    pub fn is_view(&self, name: &str) -> bool {
        self.views.read().expect("schema lock").contains_key(name)
    }

    /// Whether a table, a view or a source has this name.
    pub fn table_exist_any(&self, name: &str) -> bool {
        self.tables.read().expect("schema lock").contains_key(name)
            || self.is_view(name)
            || self.source(name).is_some()
    }

    pub fn source(&self, name: &str) -> Option<source_table::SourceTable> {
        self.sources.read().expect("schema lock").get(name).cloned()
    }

    pub fn sources(&self) -> Vec<source_table::SourceTable> {
        self.sources
            .read()
            .expect("schema lock")
            .values()
            .cloned()
            .collect()
    }

    fn add_source(&self, name: String, source: source_table::SourceTable) {
        self.sources
            .write()
            .expect("schema lock")
            .insert(name, source);
    }

    fn remove_source(&self, name: &str) -> Option<source_table::SourceTable> {
        self.sources.write().expect("schema lock").remove(name)
    }

    /// The relation of that name: a view, a table or a source.
    pub fn provider(&self, name: &str) -> Option<Arc<dyn TableProvider>> {
        if let Some(v) = self.view(name) {
            return Some(v);
        }
        if let Some(t) = self.get(name) {
            return Some(Arc::new(t));
        }
        self.source(name)
            .map(|s| Arc::new(s) as Arc<dyn TableProvider>)
    }

    fn add_view(&self, name: String, view: Arc<ViewTable>) {
        self.views.write().expect("schema lock").insert(name, view);
    }

    fn remove_view(&self, name: &str) {
        self.views.write().expect("schema lock").remove(name);
    }

    fn view_definitions(&self) -> Vec<(String, String)> {
        self.views
            .read()
            .expect("schema lock")
            .values()
            .map(|v| (v.name.clone(), v.definition.clone()))
            .collect()
    }
}

#[async_trait]
impl SchemaProvider for LakeSchema {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn table_names(&self) -> Vec<String> {
        self.names()
    }

    async fn table(&self, name: &str) -> DFResult<Option<Arc<dyn TableProvider>>> {
        Ok(self.provider(name))
    }

    fn register_table(
        &self,
        name: String,
        _table: Arc<dyn TableProvider>,
    ) -> DFResult<Option<Arc<dyn TableProvider>>> {
        Err(DataFusionError::NotImplemented(format!(
            "cannot register \"{name}\" directly; use CREATE TABLE"
        )))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.table_exist_any(name)
    }
}

/// Tables, views, their storage, and the DDL that changes them.
pub struct Lake {
    warehouse: Arc<Warehouse>,
    public: Arc<LakeSchema>,
    /// Serializes DDL so two sessions cannot create the same name at once.
    ddl: Mutex<()>,
    views: std::sync::Mutex<HashMap<String, views::ViewEntry>>,
    /// Views found in the catalog at start, restored once the query
    /// context exists.
    pending_views: std::sync::Mutex<Vec<(String, LakeTable)>>,
    /// Views whose restore failed at start, by name, with their Iceberg
    /// table: not queryable, but their name stays taken (as the table does
    /// in the catalog) and DROP MATERIALIZED VIEW removes them.
    broken_views: std::sync::Mutex<HashMap<String, LakeTable>>,
    /// Owns the epochs and the sources (one change feed per table).
    coordinator: BarrierCoordinator,
    /// Views whose task stopped on an internal error or a panic report
    /// here; the rebuilder re-creates them from their inputs.
    rebuild_tx: tokio::sync::mpsc::UnboundedSender<String>,
    rebuild_rx: std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<String>>>,
    /// `streamlake.dead_letters`, shared by every reader.
    dead_letters: Arc<crate::stream::dead_letters::DeadLetters>,
    /// `streamlake.late_events`, shared by every windowed view.
    late_events: Arc<crate::stream::late_events::LateEvents>,
    /// Every Kafka reader's live state (`streamlake.source_partitions`).
    readers: Arc<system::Readers>,
    /// The readers of connector tables, by table name.
    ingests: std::sync::Mutex<HashMap<String, Arc<crate::stream::ingest::ConnectorIngest>>>,
    /// The bytes of every view's operator state (each view's meter is a
    /// child of this one).
    state_meter: crate::stream::state::Meter,
}

impl std::fmt::Debug for Lake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lake")
            .field("warehouse", &self.warehouse)
            .finish()
    }
}

impl Lake {
    /// Loads every table the catalog knows.
    pub async fn open(warehouse: Arc<Warehouse>) -> Result<Arc<Lake>> {
        let public = Arc::new(LakeSchema::default());
        let coordinator = BarrierCoordinator::open(warehouse.clone()).await?;
        let idents = warehouse.list_tables("public").await?;
        let mut pending = Vec::new();
        for ident in &idents {
            let table = LakeTable::new(warehouse.clone(), warehouse.load_table(ident).await?)?;
            if table.properties().contains_key(views::VIEW_SQL_PROPERTY) {
                pending.push((ident.name().to_string(), table));
                continue;
            }
            coordinator.add_source(ident.name(), Arc::new(TableSource::new(table.clone())?));
            public
                .tables
                .write()
                .expect("schema lock")
                .insert(ident.name().to_string(), table);
        }
        tracing::info!(
            tables = idents.len() - pending.len(),
            views = pending.len(),
            warehouse = %warehouse.location(),
            "catalog loaded"
        );
        let (rebuild_tx, rebuild_rx) = tokio::sync::mpsc::unbounded_channel();
        let dead_letters = Arc::new(crate::stream::dead_letters::DeadLetters::new(
            Self::open_dead_letters(&warehouse).await?,
        ));
        let late_events = Arc::new(crate::stream::late_events::LateEvents::new(
            Self::open_system_table(
                &warehouse,
                "late_events",
                crate::stream::late_events::schema()?,
                "streamlake (the events windowed views did not add: their window had closed)",
            )
            .await?,
        ));
        let lake = Arc::new(Lake {
            warehouse,
            public,
            ddl: Mutex::new(()),
            views: std::sync::Mutex::new(HashMap::new()),
            pending_views: std::sync::Mutex::new(pending),
            broken_views: std::sync::Mutex::new(HashMap::new()),
            coordinator,
            rebuild_tx,
            rebuild_rx: std::sync::Mutex::new(Some(rebuild_rx)),
            dead_letters,
            late_events,
            readers: Arc::new(system::Readers::default()),
            ingests: std::sync::Mutex::new(HashMap::new()),
            state_meter: crate::stream::state::Meter::root(),
        });
        lake.restore_sources().await?;
        Ok(lake)
    }

    async fn open_dead_letters(warehouse: &Arc<Warehouse>) -> Result<LakeTable> {
        Self::open_system_table(
            warehouse,
            "dead_letters",
            crate::stream::dead_letters::schema()?,
            "streamlake (the records sources could not read)",
        )
        .await
    }

    /// An append-only Iceberg table of schema `streamlake`, created on
    /// first use; DML on it is refused (`streamlake.written_by`).
    async fn open_system_table(
        warehouse: &Arc<Warehouse>,
        name: &str,
        schema: iceberg::spec::Schema,
        written_by: &str,
    ) -> Result<LakeTable> {
        let ident = TableIdent::new(NamespaceIdent::new("streamlake".into()), name.into());
        let table = if warehouse.table_exists(&ident).await? {
            warehouse.load_table(&ident).await?
        } else {
            warehouse
                .create_table(
                    &ident,
                    schema,
                    HashMap::from([(
                        crate::storage::table::WRITTEN_BY_PROPERTY.to_string(),
                        written_by.to_string(),
                    )]),
                )
                .await?
        };
        LakeTable::new(warehouse.clone(), table)
    }

    /// Schema `streamlake` (system tables).
    pub fn system_schema(&self) -> Arc<system::SystemSchema> {
        Arc::new(system::SystemSchema {
            dead_letters: self.dead_letters.table().clone(),
            late_events: self.late_events.table().clone(),
            readers: self.readers.clone(),
        })
    }

    pub fn schema(&self) -> Arc<LakeSchema> {
        self.public.clone()
    }

    pub fn warehouse(&self) -> &Arc<Warehouse> {
        &self.warehouse
    }

    pub fn table(&self, name: &str) -> Option<LakeTable> {
        self.public.get(name)
    }

    fn check_schema(schema: &str) -> Result<()> {
        if schema != "public" {
            return Err(Error::FeatureNotSupported(format!(
                "schema \"{schema}\" does not exist; only \"public\" is supported"
            )));
        }
        Ok(())
    }

    /// Creates a table; returns false if it existed and `if_not_exists`.
    pub async fn create_table(&self, def: TableDef, if_not_exists: bool) -> Result<bool> {
        Self::check_schema(&def.schema_name)?;
        let _guard = self.ddl.lock().await;
        if self.public.table_exist_any(&def.name) || self.is_broken_view(&def.name) {
            if if_not_exists {
                return Ok(false);
            }
            return Err(Error::DuplicateTable(def.name));
        }
        let ident = TableIdent::new(
            NamespaceIdent::new(def.schema_name.clone()),
            def.name.clone(),
        );
        let table = self
            .warehouse
            .create_table(&ident, def.schema, HashMap::new())
            .await?;
        let lake_table = LakeTable::new(self.warehouse.clone(), table)?;
        self.coordinator
            .add_source(&def.name, Arc::new(TableSource::new(lake_table.clone())?));
        self.public
            .tables
            .write()
            .expect("schema lock")
            .insert(def.name.clone(), lake_table);
        tracing::info!(table = %def.name, "table created");
        Ok(true)
    }

    /// Drops a table; returns false if it did not exist and `if_exists`.
    pub async fn drop_table(&self, schema: &str, name: &str, if_exists: bool) -> Result<bool> {
        Self::check_schema(schema)?;
        let _guard = self.ddl.lock().await;
        let Some(table) = self.public.get(name) else {
            if if_exists {
                return Ok(false);
            }
            return Err(Error::UndefinedTable(name.to_string()));
        };
        let dependents = self.dependents(name);
        if !dependents.is_empty() {
            return Err(Error::DependentObjects {
                what: format!("table {name}"),
                detail: format!(
                    "materialized view {} depends on table {name}",
                    dependents.join(", ")
                ),
            });
        }
        self.stop_ingest(name).await;
        self.warehouse.drop_table(&table.ident()).await?;
        self.coordinator.remove_source(name);
        self.public
            .tables
            .write()
            .expect("schema lock")
            .remove(name);
        tracing::info!(table = %name, "table dropped");
        Ok(true)
    }
}
