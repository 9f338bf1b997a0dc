//! `information_schema` as PostgreSQL shows it, built on pg_catalog.
//!
//! DataFusion's own information_schema names Arrow types (`Int32`,
//! `Timestamp(µs, "+00:00")`) and has no constraints or view definitions, so
//! it is turned off and these views take its place: `tables`, `columns`,
//! `schemata`, `views`, `table_constraints` and `key_column_usage`, with
//! PostgreSQL's column names and values (`timestamp with time zone`,
//! `integer`, `BASE TABLE`). They are plain DataFusion views over the
//! pg_catalog tables, so they always describe the current catalog.
//!
//! One deliberate difference: streamlake's views are materialized views,
//! which PostgreSQL leaves out of information_schema; here they are listed
//! (`tables` with type `VIEW`, `columns`, `views`), because for streamlake
//! they are the point.

use std::sync::Arc;

use datafusion::catalog::{MemorySchemaProvider, SchemaProvider};
use datafusion::datasource::ViewTable;
use datafusion::prelude::SessionContext;

use crate::error::Result;

const RELKINDS: &str = "('r', 'p', 'v', 'm', 'f')";

fn tables(db: &str) -> String {
    format!(
        "SELECT CAST('{db}' AS VARCHAR) AS table_catalog, n.nspname AS table_schema, \
           c.relname AS table_name, \
           CASE c.relkind WHEN 'r' THEN 'BASE TABLE' WHEN 'p' THEN 'BASE TABLE' \
             WHEN 'f' THEN 'FOREIGN' ELSE 'VIEW' END AS table_type, \
           CAST(NULL AS VARCHAR) AS self_referencing_column_name, \
           CAST(NULL AS VARCHAR) AS reference_generation, \
           CAST(NULL AS VARCHAR) AS user_defined_type_catalog, \
           CAST(NULL AS VARCHAR) AS user_defined_type_schema, \
           CAST(NULL AS VARCHAR) AS user_defined_type_name, \
           CASE WHEN c.relkind IN ('r', 'p') THEN 'YES' ELSE 'NO' END AS is_insertable_into, \
           'NO' AS is_typed, CAST(NULL AS VARCHAR) AS commit_action \
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN {RELKINDS}"
    )
}

fn columns(db: &str) -> String {
    format!(
        "SELECT CAST('{db}' AS VARCHAR) AS table_catalog, n.nspname AS table_schema, \
           c.relname AS table_name, a.attname AS column_name, \
           CAST(a.attnum AS INT) AS ordinal_position, \
           CAST(NULL AS VARCHAR) AS column_default, \
           CASE WHEN a.attnotnull THEN 'NO' ELSE 'YES' END AS is_nullable, \
           CASE WHEN t.typcategory = 'A' THEN 'ARRAY' ELSE format_type(a.atttypid, -1) END \
             AS data_type, \
           CAST(NULL AS INT) AS character_maximum_length, \
           CASE WHEN a.atttypid IN (25, 1043, 1042) THEN 1073741824 END \
             AS character_octet_length, \
           CASE a.atttypid WHEN 21 THEN 16 WHEN 23 THEN 32 WHEN 20 THEN 64 \
             WHEN 700 THEN 24 WHEN 701 THEN 53 \
             WHEN 1700 THEN CASE WHEN a.atttypmod = -1 THEN NULL \
               ELSE ((a.atttypmod - 4) / 65536) % 65536 END END AS numeric_precision, \
           CASE WHEN a.atttypid IN (21, 23, 20, 700, 701) THEN 2 \
             WHEN a.atttypid = 1700 THEN 10 END AS numeric_precision_radix, \
           CASE WHEN a.atttypid IN (21, 23, 20) THEN 0 \
             WHEN a.atttypid = 1700 AND a.atttypmod <> -1 THEN (a.atttypmod - 4) % 65536 \
             END AS numeric_scale, \
           CASE WHEN a.atttypid = 1082 THEN 0 \
             WHEN a.atttypid IN (1083, 1114, 1184, 1266, 1186) THEN 6 END \
             AS datetime_precision, \
           CAST(NULL AS VARCHAR) AS interval_type, \
           CAST(NULL AS INT) AS interval_precision, \
           CAST(NULL AS VARCHAR) AS character_set_catalog, \
           CAST(NULL AS VARCHAR) AS character_set_schema, \
           CAST(NULL AS VARCHAR) AS character_set_name, \
           CAST(NULL AS VARCHAR) AS collation_catalog, \
           CAST(NULL AS VARCHAR) AS collation_schema, \
           CAST(NULL AS VARCHAR) AS collation_name, \
           CAST(NULL AS VARCHAR) AS domain_catalog, \
           CAST(NULL AS VARCHAR) AS domain_schema, \
           CAST(NULL AS VARCHAR) AS domain_name, \
           CAST('{db}' AS VARCHAR) AS udt_catalog, 'pg_catalog' AS udt_schema, \
           t.typname AS udt_name, \
           CAST(a.attnum AS VARCHAR) AS dtd_identifier, \
           'NO' AS is_self_referencing, 'NO' AS is_identity, \
           CAST(NULL AS VARCHAR) AS identity_generation, 'NEVER' AS is_generated, \
           CAST(NULL AS VARCHAR) AS generation_expression, \
           CASE WHEN c.relkind IN ('r', 'p') THEN 'YES' ELSE 'NO' END AS is_updatable \
         FROM pg_catalog.pg_attribute a \
         JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
         WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN {RELKINDS}"
    )
}

fn schemata(db: &str) -> String {
    format!(
        "SELECT CAST('{db}' AS VARCHAR) AS catalog_name, n.nspname AS schema_name, \
           'postgres' AS schema_owner, \
           CAST(NULL AS VARCHAR) AS default_character_set_catalog, \
           CAST(NULL AS VARCHAR) AS default_character_set_schema, \
           CAST(NULL AS VARCHAR) AS default_character_set_name, \
           CAST(NULL AS VARCHAR) AS sql_path \
         FROM pg_catalog.pg_namespace n"
    )
}

fn views(db: &str) -> String {
    format!(
        "SELECT CAST('{db}' AS VARCHAR) AS table_catalog, v.schemaname AS table_schema, \
           v.matviewname AS table_name, v.definition AS view_definition, \
           'NONE' AS check_option, 'NO' AS is_updatable, 'NO' AS is_insertable_into, \
           'NO' AS is_trigger_updatable, 'NO' AS is_trigger_deletable, \
           'NO' AS is_trigger_insertable_into \
         FROM pg_catalog.pg_matviews v"
    )
}

fn table_constraints(db: &str) -> String {
    format!(
        "SELECT CAST('{db}' AS VARCHAR) AS constraint_catalog, n.nspname AS constraint_schema, \
           con.conname AS constraint_name, CAST('{db}' AS VARCHAR) AS table_catalog, \
           n.nspname AS table_schema, c.relname AS table_name, \
           CASE con.contype WHEN 'p' THEN 'PRIMARY KEY' WHEN 'u' THEN 'UNIQUE' \
             WHEN 'f' THEN 'FOREIGN KEY' ELSE 'CHECK' END AS constraint_type, \
           'NO' AS is_deferrable, 'NO' AS initially_deferred, 'YES' AS enforced, \
           CAST(NULL AS VARCHAR) AS nulls_distinct \
         FROM pg_catalog.pg_constraint con \
         JOIN pg_catalog.pg_class c ON c.oid = con.conrelid \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
    )
}

fn key_column_usage(db: &str) -> String {
    format!(
        "SELECT CAST('{db}' AS VARCHAR) AS constraint_catalog, n.nspname AS constraint_schema, \
           con.conname AS constraint_name, CAST('{db}' AS VARCHAR) AS table_catalog, \
           n.nspname AS table_schema, c.relname AS table_name, a.attname AS column_name, \
           CAST(array_position(con.conkey, a.attnum) AS INT) AS ordinal_position, \
           CAST(NULL AS INT) AS position_in_unique_constraint \
         FROM pg_catalog.pg_constraint con \
         JOIN pg_catalog.pg_class c ON c.oid = con.conrelid \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid \
         WHERE con.contype IN ('p', 'u', 'f') AND array_has(con.conkey, a.attnum)"
    )
}

/// Builds the schema; register it as `information_schema` of `db`.
pub async fn schema(ctx: &SessionContext, db: &str) -> Result<Arc<dyn SchemaProvider>> {
    let schema = MemorySchemaProvider::new();
    for (name, sql) in [
        ("tables", tables(db)),
        ("columns", columns(db)),
        ("schemata", schemata(db)),
        ("views", views(db)),
        ("table_constraints", table_constraints(db)),
        ("key_column_usage", key_column_usage(db)),
    ] {
        let plan = ctx.sql(&sql).await?.into_unoptimized_plan();
        schema.register_table(name.into(), Arc::new(ViewTable::new(plan, None)))?;
    }
    Ok(Arc::new(schema))
}
