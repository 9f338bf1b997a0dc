//! streamlake patch: primary keys as PostgreSQL's catalogs show them.
//!
//! A table whose provider reports `Constraint::PrimaryKey` gets what
//! PostgreSQL creates for `PRIMARY KEY`: a constraint `<table>_pkey`
//! (pg_constraint, contype 'p') backed by a unique btree index of the same
//! name (pg_index, plus a pg_class row with relkind 'i'). Their OIDs live in
//! the shared OID cache next to the table's, so pg_class, pg_constraint and
//! pg_index join; `pg_get_constraintdef` and `pg_get_indexdef` answer from
//! the definitions the last scan recorded ([`KeyDefinitions`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, RwLock as SyncRwLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type, Schema};
use datafusion::common::Constraint;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use postgres_types::Oid;
use tokio::sync::RwLock;

use super::OidCacheKey;
use super::catalog_info::CatalogInfo;
use super::quote_ident_udf::needs_quoting;

/// One key column: its attnum (1-based), name and type.
#[derive(Debug, Clone)]
pub(crate) struct KeyColumn {
    pub attnum: i16,
    pub name: String,
    pub data_type: DataType,
}

/// A table's primary key with the OIDs of everything that describes it.
#[derive(Debug, Clone)]
pub(crate) struct PrimaryKey {
    pub schema_name: String,
    pub table_name: String,
    pub schema_oid: Oid,
    pub table_oid: Oid,
    /// The backing index, a pg_class row of its own.
    pub index_oid: Oid,
    pub constraint_oid: Oid,
    /// In key order.
    pub columns: Vec<KeyColumn>,
}

impl PrimaryKey {
    /// PostgreSQL's default name for both the constraint and its index.
    pub fn name(&self) -> String {
        format!("{}_pkey", self.table_name)
    }

    fn column_list(&self) -> String {
        self.columns
            .iter()
            .map(|c| quote_ident(&c.name))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// What `pg_get_constraintdef` answers.
    pub fn constraint_def(&self) -> String {
        format!("PRIMARY KEY ({})", self.column_list())
    }

    /// What `pg_get_indexdef` answers.
    pub fn index_def(&self) -> String {
        format!(
            "CREATE UNIQUE INDEX {} ON {}.{} USING btree ({})",
            quote_ident(&self.name()),
            quote_ident(&self.schema_name),
            quote_ident(&self.table_name),
            self.column_list()
        )
    }
}

/// An identifier as PostgreSQL's quote_ident prints it.
pub(crate) fn quote_ident(ident: &str) -> String {
    if needs_quoting(ident) || ident.chars().any(|c| c.is_uppercase()) {
        format!("\"{}\"", ident.replace('"', "\"\""))
    } else {
        ident.to_string()
    }
}

/// The OID for `key`: the one `seen` or the cache already holds, else a new
/// one. Recorded in `seen`, which the caller merges into the cache.
pub(crate) fn oid_of(
    key: OidCacheKey,
    cache: &HashMap<OidCacheKey, Oid>,
    counter: &AtomicU32,
    seen: &mut HashMap<OidCacheKey, Oid>,
) -> Oid {
    if let Some(oid) = seen.get(&key) {
        return *oid;
    }
    let oid = match cache.get(&key) {
        Some(oid) => *oid,
        None => counter.fetch_add(1, Ordering::Relaxed),
    };
    seen.insert(key, oid);
    oid
}

/// The primary key columns of a table, if it has a primary key.
pub(crate) async fn key_columns<C: CatalogInfo>(
    catalog_list: &C,
    catalog_name: &str,
    schema_name: &str,
    table_name: &str,
    table_schema: &Schema,
) -> Result<Option<Vec<KeyColumn>>> {
    let Some(constraints) = catalog_list
        .table_constraints(catalog_name, schema_name, table_name)
        .await?
    else {
        return Ok(None);
    };
    for constraint in constraints.iter() {
        if let Constraint::PrimaryKey(indices) = constraint {
            let columns: Vec<KeyColumn> = indices
                .iter()
                .filter_map(|&i| {
                    table_schema.fields().get(i).map(|f| KeyColumn {
                        attnum: (i + 1) as i16,
                        name: f.name().clone(),
                        data_type: f.data_type().clone(),
                    })
                })
                .collect();
            if !columns.is_empty() {
                return Ok(Some(columns));
            }
        }
    }
    Ok(None)
}

/// The OIDs of a table's key constraint and index, recorded in `seen`.
pub(crate) fn key_oids(
    catalog_name: &str,
    schema_name: &str,
    table_name: &str,
    cache: &HashMap<OidCacheKey, Oid>,
    counter: &AtomicU32,
    seen: &mut HashMap<OidCacheKey, Oid>,
) -> (Oid, Oid) {
    let names = || {
        (
            catalog_name.to_string(),
            schema_name.to_string(),
            table_name.to_string(),
        )
    };
    let (c, s, t) = names();
    let index_oid = oid_of(OidCacheKey::PrimaryKeyIndex(c, s, t), cache, counter, seen);
    let (c, s, t) = names();
    let constraint_oid = oid_of(
        OidCacheKey::PrimaryKeyConstraint(c, s, t),
        cache,
        counter,
        seen,
    );
    (index_oid, constraint_oid)
}

/// Every primary key in the catalog, numbered from the shared cache. Like
/// pg_attribute, this scan owns the table-level entries (tables and their
/// keys) and keeps the catalog and schema ones it did not visit.
pub(crate) async fn primary_keys<C: CatalogInfo>(
    catalog_list: &C,
    counter: &AtomicU32,
    oid_cache: &RwLock<HashMap<OidCacheKey, Oid>>,
    definitions: &KeyDefinitions,
) -> Result<Vec<PrimaryKey>> {
    let mut cache = oid_cache.write().await;
    let mut seen = HashMap::new();
    let mut keys = Vec::new();
    for catalog_name in catalog_list.catalog_names().await? {
        let Some(schema_names) = catalog_list.schema_names(&catalog_name).await? else {
            continue;
        };
        for schema_name in schema_names {
            let schema_oid = oid_of(
                OidCacheKey::Schema(catalog_name.clone(), schema_name.clone()),
                &cache,
                counter,
                &mut seen,
            );
            let Some(table_names) = catalog_list
                .table_names(&catalog_name, &schema_name)
                .await?
            else {
                continue;
            };
            for table_name in table_names {
                let table_oid = oid_of(
                    OidCacheKey::Table(
                        catalog_name.clone(),
                        schema_name.clone(),
                        table_name.clone(),
                    ),
                    &cache,
                    counter,
                    &mut seen,
                );
                let Some(table_schema) = catalog_list
                    .table_schema(&catalog_name, &schema_name, &table_name)
                    .await?
                else {
                    continue;
                };
                let Some(columns) = key_columns(
                    catalog_list,
                    &catalog_name,
                    &schema_name,
                    &table_name,
                    &table_schema,
                )
                .await?
                else {
                    continue;
                };
                let (index_oid, constraint_oid) = key_oids(
                    &catalog_name,
                    &schema_name,
                    &table_name,
                    &cache,
                    counter,
                    &mut seen,
                );
                keys.push(PrimaryKey {
                    schema_name: schema_name.clone(),
                    table_name,
                    schema_oid,
                    table_oid,
                    index_oid,
                    constraint_oid,
                    columns,
                });
            }
        }
    }
    cache.retain(|key, _| match key {
        OidCacheKey::Catalog(..) | OidCacheKey::Schema(..) => true,
        OidCacheKey::Table(..)
        | OidCacheKey::PrimaryKeyIndex(..)
        | OidCacheKey::PrimaryKeyConstraint(..) => seen.contains_key(key),
    });
    cache.extend(seen);
    definitions.record(&keys);
    Ok(keys)
}

#[derive(Debug, Default)]
struct Definitions {
    /// Constraint OID → `PRIMARY KEY (…)`.
    constraints: HashMap<Oid, String>,
    /// Index OID → (`CREATE UNIQUE INDEX …`, key column names).
    indexes: HashMap<Oid, (String, Vec<String>)>,
}

/// The definitions of the keys the last pg_class, pg_constraint or pg_index
/// scan saw. An OID a query passes to `pg_get_constraintdef` or
/// `pg_get_indexdef` comes from such a scan, so it is here.
#[derive(Debug, Default)]
pub struct KeyDefinitions {
    inner: SyncRwLock<Definitions>,
}

impl KeyDefinitions {
    pub(crate) fn record(&self, keys: &[PrimaryKey]) {
        let mut defs = Definitions::default();
        for key in keys {
            defs.constraints
                .insert(key.constraint_oid, key.constraint_def());
            defs.indexes.insert(
                key.index_oid,
                (
                    key.index_def(),
                    key.columns.iter().map(|c| quote_ident(&c.name)).collect(),
                ),
            );
        }
        *self.inner.write().unwrap_or_else(|e| e.into_inner()) = defs;
    }

    fn constraint(&self, oid: i64) -> Option<String> {
        let defs = self.inner.read().unwrap_or_else(|e| e.into_inner());
        defs.constraints.get(&u32::try_from(oid).ok()?).cloned()
    }

    /// The whole definition for `column` 0, else that key column's name.
    fn index(&self, oid: i64, column: i64) -> Option<String> {
        let defs = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let (def, columns) = defs.indexes.get(&u32::try_from(oid).ok()?)?;
        if column == 0 {
            Some(def.clone())
        } else {
            columns.get(usize::try_from(column - 1).ok()?).cloned()
        }
    }
}

/// Argument `i` as Int64 values (OIDs and column numbers arrive as Int32,
/// Int64 or untyped parameters).
fn int64_arg(args: &[ArrayRef], i: usize, rows: usize) -> Result<Int64Array> {
    match args.get(i) {
        Some(a) if a.data_type() == &DataType::Null => Ok(Int64Array::new_null(a.len())),
        Some(a) => Ok(cast(a, &DataType::Int64)?
            .as_primitive::<Int64Type>()
            .clone()),
        None => Ok(Int64Array::from(vec![0; rows])),
    }
}

/// `pg_get_constraintdef(oid [, pretty])` and `pg_get_indexdef(oid [,
/// column, pretty])`.
#[derive(Debug)]
struct KeyDefUdf {
    name: &'static str,
    signature: Signature,
    definitions: Arc<KeyDefinitions>,
}

impl PartialEq for KeyDefUdf {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && Arc::ptr_eq(&self.definitions, &other.definitions)
    }
}

impl Eq for KeyDefUdf {}

impl std::hash::Hash for KeyDefUdf {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl ScalarUDFImpl for KeyDefUdf {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let args = ColumnarValue::values_to_arrays(&args.args)?;
        let oids = int64_arg(&args, 0, rows)?;
        let mut builder = StringBuilder::new();
        if self.name == "pg_get_indexdef" {
            let columns = int64_arg(&args, 1, oids.len())?;
            for (oid, column) in oids.iter().zip(columns.iter()) {
                builder.append_option(match (oid, column) {
                    (Some(oid), Some(column)) => self.definitions.index(oid, column),
                    _ => None,
                });
            }
        } else {
            for oid in oids.iter() {
                // Constraints other than primary keys do not exist here; the
                // empty text is what this function answered before.
                builder.append_option(
                    oid.map(|oid| self.definitions.constraint(oid).unwrap_or_default()),
                );
            }
        }
        Ok(ColumnarValue::Array(Arc::new(builder.finish())))
    }
}

/// `pg_get_constraintdef(oid [, pretty])`: `PRIMARY KEY (a, b)`.
pub(crate) fn create_pg_get_constraintdef(definitions: Arc<KeyDefinitions>) -> ScalarUDF {
    ScalarUDF::new_from_impl(KeyDefUdf {
        name: "pg_get_constraintdef",
        // Any: clients bind `pretty` as an untyped parameter.
        signature: Signature::new(
            TypeSignature::OneOf(vec![TypeSignature::Any(1), TypeSignature::Any(2)]),
            Volatility::Stable,
        ),
        definitions,
    })
}

/// `pg_get_indexdef(oid [, column, pretty])`: `CREATE UNIQUE INDEX t_pkey ON
/// public.t USING btree (a, b)`, or one key column's name.
pub(crate) fn create_pg_get_indexdef(definitions: Arc<KeyDefinitions>) -> ScalarUDF {
    ScalarUDF::new_from_impl(KeyDefUdf {
        name: "pg_get_indexdef",
        signature: Signature::new(
            TypeSignature::OneOf(vec![TypeSignature::Any(1), TypeSignature::Any(3)]),
            Volatility::Stable,
        ),
        definitions,
    })
}
