//! Client authentication: SCRAM-SHA-256 when a password is configured,
//! trust otherwise (the config refuses trust on non-loopback addresses).

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use pgwire::api::ConnectionManager;
use pgwire::api::auth::noop::NoopStartupHandler;
use pgwire::api::auth::sasl::scram::{SCRAM_ITERATIONS, gen_salted_password};
use pgwire::api::auth::{AuthSource, LoginInfo, Password};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};

/// Trust: any user name is accepted.
pub struct TrustStartup {
    pub connections: Arc<ConnectionManager>,
}

#[async_trait]
impl NoopStartupHandler for TrustStartup {
    fn connection_manager(&self) -> Option<Arc<ConnectionManager>> {
        Some(self.connections.clone())
    }
}

/// The one configured user and the salted form of its password.
#[derive(Debug)]
pub struct StaticUser {
    user: String,
    salt: Vec<u8>,
    salted: Vec<u8>,
}

impl StaticUser {
    pub fn new(user: &str, password: &str) -> StaticUser {
        let salt: Vec<u8> = uuid::Uuid::new_v4().as_bytes().to_vec();
        let salted = gen_salted_password(password, &salt, SCRAM_ITERATIONS);
        StaticUser {
            user: user.to_string(),
            salt,
            salted,
        }
    }
}

#[async_trait]
impl AuthSource for StaticUser {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        if login.user() != Some(self.user.as_str()) {
            return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                "FATAL".into(),
                "28P01".into(),
                format!(
                    "password authentication failed for user \"{}\"",
                    login.user().unwrap_or_default()
                ),
            ))));
        }
        Ok(Password::new(Some(self.salt.clone()), self.salted.clone()))
    }
}
