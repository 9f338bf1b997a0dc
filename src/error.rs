//! Errors of the engine and their SQLSTATE classes.
//!
//! Every error a user can cause carries a PostgreSQL SQLSTATE, chosen here
//! once, so that the pgwire edge ([`crate::server`]) only has to ask
//! [`Error::sqlstate`] or [`sqlstate_of`] for it. Errors raised inside
//! DataFusion execution (for example by our table sinks) travel as
//! `DataFusionError::External` and are found again by [`sqlstate_of`].

use datafusion::error::DataFusionError;

/// The result type of the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An engine error. User errors have a SQLSTATE of their own; storage and
/// internal errors map to the classes PostgreSQL uses for them.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("relation \"{0}\" already exists")]
    DuplicateTable(String),
    #[error("relation \"{0}\" does not exist")]
    UndefinedTable(String),
    #[error("duplicate key value violates unique constraint \"{constraint}\"")]
    UniqueViolation { constraint: String, detail: String },
    #[error(
        "null value in column \"{column}\" of relation \"{table}\" violates not-null constraint"
    )]
    NotNullViolation { table: String, column: String },
    #[error("{0}")]
    FeatureNotSupported(String),
    #[error("syntax error: {0}")]
    Syntax(String),
    #[error("{0}")]
    InvalidText(String),
    #[error("{0}")]
    InvalidParameter(String),
    #[error("storage error: {0}")]
    Iceberg(#[from] iceberg::Error),
    #[error("catalog database error: {0}")]
    CatalogDb(#[from] sqlx::Error),
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
    #[error(transparent)]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    #[error(transparent)]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("could not serialize access: {0}")]
    CommitConflict(String),
    #[error("{0}")]
    QueryCanceled(String),
    #[error("cannot drop {what} because other objects depend on it")]
    DependentObjects { what: String, detail: String },
    /// A value that does not fit its type (22003): PostgreSQL's "numeric
    /// field overflow" and "value out of range".
    #[error("{0}")]
    NumericOverflow(String),
    #[error("division by zero")]
    DivisionByZero,
    /// A materialized view whose query fails over its inputs' current rows
    /// (or whose operator failed): reads report the cause, with its
    /// SQLSTATE, until the view recovers.
    #[error("materialized view \"{view}\": {message}")]
    ViewError {
        view: String,
        sqlstate: &'static str,
        message: String,
    },
    #[error("{0}")]
    UndefinedColumn(String),
    /// A column of the wrong type for its use (42804), e.g. a WATERMARK
    /// FOR column that is not a timestamp.
    #[error("{0}")]
    DatatypeMismatch(String),
    /// A source or other named object that does not exist (42704).
    #[error("{0}")]
    UndefinedObject(String),
    /// A broker that cannot be reached or refuses a request (08001 at
    /// DDL time: the connection could not be made).
    #[error("kafka: {0}")]
    Kafka(String),
    #[error("internal error: {0} (this is a bug)")]
    Internal(String),
}

impl Error {
    /// The SQLSTATE sent to the client for this error.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            Error::DuplicateTable(_) => "42P07",
            Error::UndefinedTable(_) => "42P01",
            Error::UniqueViolation { .. } => "23505",
            Error::NotNullViolation { .. } => "23502",
            Error::FeatureNotSupported(_) => "0A000",
            Error::Syntax(_) => "42601",
            Error::InvalidText(_) => "22P02",
            Error::InvalidParameter(_) => "22023",
            Error::CommitConflict(_) => "40001",
            Error::QueryCanceled(_) => "57014",
            Error::DependentObjects { .. } => "2BP01",
            Error::DataFusion(e) => sqlstate_of_datafusion(e),
            Error::Arrow(e) => sqlstate_of_arrow(e),
            Error::Iceberg(_) | Error::Parquet(_) | Error::Io(_) => "58030",
            Error::CatalogDb(_) => "58000",
            Error::NumericOverflow(_) => "22003",
            Error::DivisionByZero => "22012",
            Error::ViewError { sqlstate, .. } => sqlstate,
            Error::UndefinedColumn(_) => "42703",
            Error::DatatypeMismatch(_) => "42804",
            Error::UndefinedObject(_) => "42704",
            Error::Kafka(_) => "08001",
            Error::Internal(_) => "XX000",
        }
    }

    /// Extra detail for the ErrorResponse, when there is any.
    pub fn detail(&self) -> Option<String> {
        match self {
            Error::UniqueViolation { detail, .. } | Error::DependentObjects { detail, .. } => {
                Some(detail.clone())
            }
            _ => None,
        }
    }

    /// Wraps the error so it can travel through DataFusion execution.
    pub fn into_datafusion(self) -> DataFusionError {
        match self {
            Error::DataFusion(e) => e,
            e => DataFusionError::External(Box::new(e)),
        }
    }
}

impl From<Error> for DataFusionError {
    fn from(e: Error) -> Self {
        e.into_datafusion()
    }
}

/// The SQLSTATE and message for any error that reaches the pgwire edge.
pub fn sqlstate_of(err: &(dyn std::error::Error + 'static)) -> (&'static str, String) {
    if let Some(e) = err.downcast_ref::<Error>() {
        if let Error::DataFusion(inner) = e {
            return (sqlstate_of_datafusion(inner), datafusion_message(inner));
        }
        return (e.sqlstate(), e.to_string());
    }
    if let Some(e) = err.downcast_ref::<DataFusionError>() {
        return (sqlstate_of_datafusion(e), datafusion_message(e));
    }
    if let Some(e) = err.downcast_ref::<datafusion::sql::sqlparser::parser::ParserError>() {
        return ("42601", e.to_string());
    }
    ("XX000", err.to_string())
}

/// Strips DataFusion's wrappers so the message reads like PostgreSQL's.
fn datafusion_message(e: &DataFusionError) -> String {
    let root = e.find_root();
    if let DataFusionError::External(inner) = root
        && let Some(own) = inner.downcast_ref::<Error>()
    {
        return own.to_string();
    }
    if is_not_null_violation(root) {
        // DataFusion checks NOT NULL while building the batch to insert, and
        // names the column of the VALUES list rather than of the table.
        return "null value violates not-null constraint".to_string();
    }
    let text = root.to_string();
    // PostgreSQL's wording for an unknown relation: `relation "x" does not
    // exist` (DataFusion says `table 'dev.public.x' not found`).
    if let Some(rest) = text.split("table '").nth(1)
        && let Some(name) = rest.strip_suffix("' not found")
    {
        let bare = name.rsplit('.').next().unwrap_or(name);
        return format!("relation \"{bare}\" does not exist");
    }
    for prefix in [
        "Error during planning: ",
        "Execution error: ",
        "SQL error: ",
        "This feature is not implemented: ",
        "Arrow error: ",
        "Schema error: ",
    ] {
        if let Some(rest) = text.strip_prefix(prefix) {
            return rest.to_string();
        }
    }
    text
}

/// DataFusion's two NOT NULL checks on rows to insert: building the VALUES
/// batch (an Arrow error), or checking the batch against the table's schema
/// before the sink (an execution error). Which one fires depends on the
/// plan's nullability, which differs between a statement planned from its
/// text and one whose bound parameters were substituted.
fn is_not_null_violation(root: &DataFusionError) -> bool {
    match root {
        DataFusionError::ArrowError(a, _) => matches!(
            a.as_ref(),
            datafusion::arrow::error::ArrowError::InvalidArgumentError(m) if m.contains("non-nullable")
        ),
        DataFusionError::Execution(m) => m.contains("has null but schema specifies non-nullable"),
        _ => false,
    }
}

/// Classifies a DataFusion error by its root cause.
pub fn sqlstate_of_datafusion(e: &DataFusionError) -> &'static str {
    let root = e.find_root();
    if is_not_null_violation(root) {
        return "23502";
    }
    match root {
        DataFusionError::External(inner) => {
            if let Some(own) = inner.downcast_ref::<Error>() {
                own.sqlstate()
            } else {
                "XX000"
            }
        }
        DataFusionError::SQL(_, _) => "42601",
        DataFusionError::NotImplemented(_) => "0A000",
        DataFusionError::ArrowError(a, _) => sqlstate_of_arrow(a),
        DataFusionError::SchemaError(s, _) => {
            let text = s.to_string();
            if text.contains("No field named") || text.contains("not found") {
                "42703"
            } else if text.contains("ambiguous") || text.contains("Ambiguous") {
                "42702"
            } else {
                "42P10"
            }
        }
        DataFusionError::Plan(msg) => {
            if msg.contains("table '") && msg.contains("not found") {
                "42P01"
            } else if msg.contains("already exists") {
                "42P07"
            } else if msg.contains("No field named") {
                "42703"
            } else if msg.contains("Invalid function") || msg.contains("No function matches") {
                "42883"
            } else if msg.contains("Cannot infer common") || msg.contains("type") {
                "42804"
            } else {
                "42601"
            }
        }
        DataFusionError::Execution(msg) => {
            if msg.contains("Divide by zero") || msg.contains("division by zero") {
                "22012"
            } else if msg.contains("overflow") || msg.contains("Overflow") {
                "22003"
            } else if msg.contains("Cannot cast") || msg.contains("Cast error") {
                "22P02"
            } else if msg.starts_with("Prepared statement '") && msg.ends_with("' does not exist") {
                "26000"
            } else if msg.starts_with("Prepared statement '") && msg.ends_with("' already exists") {
                "42P05"
            } else {
                "XX000"
            }
        }
        DataFusionError::ResourcesExhausted(_) => "53200",
        _ => "XX000",
    }
}

fn sqlstate_of_arrow(e: &datafusion::arrow::error::ArrowError) -> &'static str {
    use datafusion::arrow::error::ArrowError as A;
    match e {
        A::DivideByZero => "22012",
        A::ArithmeticOverflow(_) => "22003",
        A::InvalidArgumentError(m) if m.contains("non-nullable") => "23502",
        A::CastError(_) | A::ParseError(_) | A::InvalidArgumentError(_) => "22P02",
        A::CsvError(_) => "22P04",
        _ => "XX000",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_errors_keep_their_sqlstate_through_datafusion() {
        let e = Error::UniqueViolation {
            constraint: "t_pkey".into(),
            detail: "Key (id)=(1) already exists.".into(),
        }
        .into_datafusion();
        let wrapped = DataFusionError::Context("insert".into(), Box::new(e));
        assert_eq!(sqlstate_of_datafusion(&wrapped), "23505");
        let (code, msg) = sqlstate_of(&wrapped);
        assert_eq!(code, "23505");
        assert!(msg.starts_with("duplicate key value"), "{msg}");
    }

    #[test]
    fn plan_errors_for_missing_tables_are_42p01() {
        let e = DataFusionError::Plan("table 'dev.public.nope' not found".into());
        assert_eq!(sqlstate_of_datafusion(&e), "42P01");
    }
}
