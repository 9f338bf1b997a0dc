//! The SQL front door: statements that streamlake handles itself (DDL,
//! COPY) are translated here; queries and DML go to DataFusion.

pub mod aggregate_filter;
pub mod copy_format;
pub mod ddl;
pub mod pg_text_cast;
pub mod view_plan;
pub mod windows;
