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

/// The tables of the one schema `public`.
#[derive(Debug, Default)]
pub struct LakeSchema {
    tables: RwLock<BTreeMap<String, LakeTable>>,
}

impl LakeSchema {
    pub fn get(&self, name: &str) -> Option<LakeTable> {
        self.tables.read().expect("schema lock").get(name).cloned()
    }

    pub fn names(&self) -> Vec<String> {
        self.tables
            .read()
            .expect("schema lock")
            .keys()
            .cloned()
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
        Ok(self
            .get(name)
            .map(|t| Arc::new(t) as Arc<dyn TableProvider>))
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
        self.tables.read().expect("schema lock").contains_key(name)
    }
}

/// Tables, their storage, and the DDL that changes them.
#[derive(Debug)]
pub struct Lake {
    warehouse: Arc<Warehouse>,
    public: Arc<LakeSchema>,
    /// Serializes DDL so two sessions cannot create the same name at once.
    ddl: Mutex<()>,
}

impl Lake {
    /// Loads every table the catalog knows.
    pub async fn open(warehouse: Arc<Warehouse>) -> Result<Arc<Lake>> {
        let public = Arc::new(LakeSchema::default());
        let idents = warehouse.list_tables("public").await?;
        for ident in &idents {
            let table = LakeTable::new(warehouse.clone(), warehouse.load_table(ident).await?)?;
            public
                .tables
                .write()
                .expect("schema lock")
                .insert(ident.name().to_string(), table);
        }
        tracing::info!(tables = idents.len(), warehouse = %warehouse.location(), "catalog loaded");
        Ok(Arc::new(Lake {
            warehouse,
            public,
            ddl: Mutex::new(()),
        }))
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
        if self.public.table_exist(&def.name) {
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
        self.warehouse.drop_table(&table.ident()).await?;
        self.public
            .tables
            .write()
            .expect("schema lock")
            .remove(name);
        tracing::info!(table = %name, "table dropped");
        Ok(true)
    }
}
