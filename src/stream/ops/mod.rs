//! One operator per file.

pub mod filter;
pub mod hash_agg;
pub mod hash_join;
pub mod materialize;
pub mod project;
pub mod session_window;
pub mod top_n;
pub mod union;
pub mod window_assign;

#[cfg(test)]
pub mod testing;
