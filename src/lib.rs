//! streamlake: a SQL-first streaming database.
//!
//! The data flows left to right, and so do the modules:
//!
//! - [`connector`]: streams in — record decoders (JSON, CSV → Arrow), the
//!   Nexmark and datagen generators, JSONB operators.
//! - [`server`]: PostgreSQL wire protocol, sessions, auth, SQLSTATE mapping.
//! - [`sql`]: the front door — DDL translation and COPY formats; queries
//!   and DML are planned by DataFusion.
//! - [`catalog`]: the durable list of tables (the Iceberg SQL catalog).
//! - [`stream`]: the runtime — sources (table change feeds), the barrier
//!   coordinator and its durable epochs, operators, materialized views.
//! - [`storage`]: the warehouse (catalog + object storage), Parquet data
//!   files, snapshot commits and expiry, and the table provider that reads and writes
//!   Iceberg tables.
//! - [`config`]: flags, environment and TOML configuration.
//! - [`error`]: the engine's errors and their SQLSTATEs.

pub mod catalog;
pub mod config;
pub mod connector;
pub mod error;
pub mod playground;
pub mod server;
pub mod sql;
pub mod storage;
pub mod stream;

pub use error::{Error, Result};
