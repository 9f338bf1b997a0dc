//! The SQL front door: statements that streamlake handles itself (DDL,
//! COPY) are translated here; queries and DML go to DataFusion.

pub mod aggregate_filter;
pub mod checked_arithmetic;
pub mod columnar;
pub mod copy_format;
pub mod ddl;
pub mod int_literals;
pub mod literals;
pub mod pg_aggregates;
pub mod pg_round;
pub mod pg_text_cast;
pub mod pg_to_char;
pub mod session;
pub mod source_ddl;
pub mod view_plan;
pub mod windows;
