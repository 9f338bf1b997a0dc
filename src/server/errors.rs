//! SQLSTATE mapping at the pgwire edge.
//!
//! Errors from our own code arrive as [`crate::error::Error`]; errors from
//! datafusion-postgres' query path arrive as `PgWireError::ApiError` around a
//! DataFusion error. Both become an ErrorResponse with the SQLSTATE chosen by
//! [`crate::error::sqlstate_of`].

use pgwire::api::{ClientInfo, ErrorHandler};
use pgwire::error::{ErrorInfo, PgWireError};

use crate::error::{Error, sqlstate_of};

/// Builds the ErrorResponse for one of our errors.
pub fn to_pg(err: Error) -> PgWireError {
    let (code, message) = sqlstate_of(&err);
    let mut info = ErrorInfo::new("ERROR".into(), code.into(), message);
    info.detail = err.detail();
    PgWireError::UserError(Box::new(info))
}

/// Rewrites opaque API errors into ErrorResponses with a SQLSTATE.
#[derive(Debug, Default)]
pub struct SqlStateErrorHandler;

impl ErrorHandler for SqlStateErrorHandler {
    fn on_error<C>(&self, _client: &C, error: &mut PgWireError)
    where
        C: ClientInfo,
    {
        if let PgWireError::ApiError(inner) = error {
            let (code, message) = sqlstate_of(inner.as_ref());
            let mut info = ErrorInfo::new("ERROR".into(), code.into(), message);
            if let Some(own) = inner.downcast_ref::<Error>() {
                info.detail = own.detail();
            }
            *error = PgWireError::UserError(Box::new(info));
        }
        if let PgWireError::UserError(info) = error {
            tracing::debug!(code = %info.code, message = %info.message, "statement failed");
        }
    }
}
