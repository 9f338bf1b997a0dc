//! Storage: the warehouse (catalog + files), Parquet data files, snapshot
//! commits (with snapshot expiry), and the table provider that reads and
//! writes them.

pub mod commit;
pub mod deletes;
pub mod expire;
pub mod fault;
pub mod files;
pub mod table;
pub mod warehouse;
