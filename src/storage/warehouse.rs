//! The warehouse: the Iceberg SQL catalog (a SQLite file) and the FileIO
//! that reaches table files on local disk or S3.
//!
//! The catalog uses the table layout of pyiceberg's `SqlCatalog`
//! (`iceberg_tables`, `iceberg_namespace_properties`), so pyiceberg opens
//! the same file. Commits that the `iceberg` crate cannot express (see
//! [`crate::storage::commit`]) swap the `metadata_location` of a table's row
//! with our own compare-and-swap on the same database.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use iceberg::spec::Schema;
use iceberg::table::Table;
use iceberg::{Catalog, CatalogBuilder, NamespaceIdent, TableCreation, TableIdent};
use iceberg_catalog_sql::{SqlCatalog, SqlCatalogBuilder};
use iceberg_storage_opendal::OpenDalResolvingStorageFactory;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

use crate::config::Config;
use crate::error::{Error, Result};

/// The catalog and storage every table lives in.
pub struct Warehouse {
    catalog: SqlCatalog,
    /// A second pool on the catalog file for our own compare-and-swap.
    pool: SqlitePool,
    catalog_name: String,
    location: String,
    /// The history every table keeps (applied by each commit).
    retention: crate::config::Retention,
}

impl std::fmt::Debug for Warehouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Warehouse")
            .field("catalog", &self.catalog_name)
            .field("location", &self.location)
            .finish()
    }
}

impl Warehouse {
    /// Opens (creating if needed) the catalog described by `config`.
    pub async fn open(config: &Config) -> Result<Arc<Warehouse>> {
        let db = config.catalog_path();
        // Create the file with WAL journaling before the catalog's pool opens
        // it: every acknowledged commit must survive a kill -9.
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", db.display()))?
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .synchronous(sqlx::sqlite::SqliteSynchronous::Full)
            .busy_timeout(std::time::Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(opts)
            .await?;

        let mut props = HashMap::new();
        props.insert("uri".to_string(), format!("sqlite:{}", db.display()));
        props.insert("warehouse".to_string(), config.warehouse.clone());
        let s3 = &config.s3;
        if let Some(endpoint) = &s3.endpoint {
            props.insert("s3.endpoint".into(), endpoint.clone());
        }
        props.insert("s3.region".into(), s3.region.clone());
        props.insert("s3.path-style-access".into(), s3.path_style.to_string());
        if let Some(k) = &s3.access_key_id {
            props.insert("s3.access-key-id".into(), k.clone());
        }
        if let Some(k) = &s3.secret_access_key {
            props.insert("s3.secret-access-key".into(), k.clone());
        }
        if let Some(k) = &s3.session_token {
            props.insert("s3.session-token".into(), k.clone());
        }
        let catalog = SqlCatalogBuilder::default()
            .with_storage_factory(Arc::new(OpenDalResolvingStorageFactory::default()))
            .load(&config.catalog_name, props)
            .await?;
        let wh = Warehouse {
            catalog,
            pool,
            catalog_name: config.catalog_name.clone(),
            location: config.warehouse.clone(),
            retention: config.retention.clone(),
        };
        wh.ensure_namespace("public").await?;
        wh.ensure_namespace("streamlake").await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS streamlake_counters \
             (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
        )
        .execute(&wh.pool)
        .await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS streamlake_sources \
             (name TEXT PRIMARY KEY, definition TEXT NOT NULL, start_offsets TEXT NOT NULL)",
        )
        .execute(&wh.pool)
        .await?;
        Ok(Arc::new(wh))
    }

    /// The history every table keeps, unless its own properties say
    /// otherwise (see [`crate::storage::expire`]).
    pub fn retention(&self) -> &crate::config::Retention {
        &self.retention
    }

    /// The warehouse root (`file:///…` or `s3://…`).
    pub fn location(&self) -> &str {
        &self.location
    }

    async fn ensure_namespace(&self, name: &str) -> Result<()> {
        let ns = NamespaceIdent::new(name.to_string());
        if !self.catalog.namespace_exists(&ns).await? {
            self.catalog.create_namespace(&ns, HashMap::new()).await?;
        }
        Ok(())
    }

    /// Tables of one namespace, by name.
    pub async fn list_tables(&self, namespace: &str) -> Result<Vec<TableIdent>> {
        let ns = NamespaceIdent::new(namespace.to_string());
        Ok(self.catalog.list_tables(&ns).await?)
    }

    pub async fn load_table(&self, ident: &TableIdent) -> Result<Table> {
        Ok(self.catalog.load_table(ident).await?)
    }

    pub async fn table_exists(&self, ident: &TableIdent) -> Result<bool> {
        Ok(self.catalog.table_exists(ident).await?)
    }

    /// Creates an empty Iceberg v2 table.
    pub async fn create_table(
        &self,
        ident: &TableIdent,
        schema: Schema,
        properties: HashMap<String, String>,
    ) -> Result<Table> {
        let creation = TableCreation::builder()
            .name(ident.name().to_string())
            .schema(schema)
            .properties(properties)
            .build();
        Ok(self
            .catalog
            .create_table(ident.namespace(), creation)
            .await?)
    }

    /// Removes the table from the catalog. Its files stay in the warehouse
    /// (like `DROP TABLE` without purge in other Iceberg engines).
    pub async fn drop_table(&self, ident: &TableIdent) -> Result<()> {
        Ok(self.catalog.drop_table(ident).await?)
    }

    /// The commit point of [`crate::storage::commit`]: moves the table's
    /// metadata pointer from `old` to `new` if nobody else moved it first.
    pub async fn swap_metadata_location(
        &self,
        ident: &TableIdent,
        old: &str,
        new: &str,
    ) -> Result<()> {
        let result = sqlx::query(
            "UPDATE iceberg_tables SET metadata_location = ?, previous_metadata_location = ? \
             WHERE catalog_name = ? AND table_namespace = ? AND table_name = ? \
             AND metadata_location = ?",
        )
        .bind(new)
        .bind(old)
        .bind(&self.catalog_name)
        .bind(ident.namespace().join("."))
        .bind(ident.name())
        .bind(old)
        .execute(&self.pool)
        .await?;
        if result.rows_affected() != 1 {
            return Err(Error::CommitConflict(format!(
                "table {ident} was changed by another writer"
            )));
        }
        // The swap took effect; the caller is told it did not.
        if crate::storage::fault::fire("lose-commit-ack", ident.name()) {
            return Err(crate::storage::fault::error("lose-commit-ack"));
        }
        Ok(())
    }

    /// A durable counter of the catalog database (0 if never stored).
    pub async fn load_counter(&self, name: &str) -> Result<u64> {
        let row: Option<(i64,)> =
            sqlx::query_as("SELECT value FROM streamlake_counters WHERE name = ?")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map_or(0, |(v,)| v as u64))
    }

    /// Stores a durable counter; it survives a kill -9 once this returns.
    pub async fn store_counter(&self, name: &str, value: u64) -> Result<()> {
        sqlx::query(
            "INSERT INTO streamlake_counters (name, value) VALUES (?, ?) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .bind(name)
        .bind(value as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records a source: its statement and resolved start offsets (JSON).
    pub async fn save_source(&self, name: &str, definition: &str, start: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO streamlake_sources (name, definition, start_offsets) VALUES (?, ?, ?)",
        )
        .bind(name)
        .bind(definition)
        .bind(start)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn delete_source(&self, name: &str) -> Result<()> {
        sqlx::query("DELETE FROM streamlake_sources WHERE name = ?")
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Every source: (name, statement, start offsets).
    pub async fn load_sources(&self) -> Result<Vec<(String, String, String)>> {
        Ok(sqlx::query_as(
            "SELECT name, definition, start_offsets FROM streamlake_sources ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?)
    }
}
