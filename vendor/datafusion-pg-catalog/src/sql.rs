mod parser;
pub use parser::PostgresCompatibilityParser;
pub mod rules;
pub mod streamlake_rules;
