//! The PostgreSQL wire protocol server.
//!
//! datafusion-postgres provides the simple and extended query handlers, the
//! pg_catalog emulation (datafusion-pg-catalog) and Arrow → wire encoding
//! (arrow-pg); we add our statement hook ([`hook`]), session settings
//! ([`settings`]), COPY ([`copy`]),
//! authentication ([`auth`]) and SQLSTATE mapping ([`errors`]). Each
//! connection runs in its own task: a failing statement or a dropped client
//! affects nobody else.

pub mod auth;
pub mod copy;
pub mod errors;
pub mod front;
pub mod hook;
pub mod information_schema;
pub mod pg_compat;
pub mod settings;

use std::net::SocketAddr;
use std::sync::Arc;

use datafusion::catalog::{CatalogProvider, MemoryCatalogProvider};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_pg_catalog::pg_catalog::setup_pg_catalog;
use datafusion_postgres::hooks::cursor::CursorStatementHook;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::{DfSessionService, QueryHook};
use pgwire::api::auth::DefaultServerParameterProvider;
use pgwire::api::auth::StartupHandler;
use pgwire::api::auth::sasl::SASLAuthStartupHandler;
use pgwire::api::auth::sasl::scram::ScramAuth;
use pgwire::api::cancel::{CancelHandler, DefaultCancelHandler};
use pgwire::api::copy::CopyHandler;
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::{ConnectionManager, ErrorHandler, PgWireServerHandlers};
use tokio::net::TcpListener;

use crate::catalog::Lake;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::storage::warehouse::Warehouse;

/// The database name clients connect to.
pub const DATABASE: &str = "dev";

/// The engine behind the server: catalog, tables and the query context.
pub struct Engine {
    pub lake: Arc<Lake>,
    pub ctx: Arc<SessionContext>,
}

impl Engine {
    /// Opens the warehouse and loads every table.
    pub async fn open(config: &Config) -> Result<Engine> {
        let warehouse = Warehouse::open(config).await?;
        let lake = Lake::open(warehouse).await?;
        let session_config = SessionConfig::new()
            // Ours (information_schema.rs) replaces DataFusion's.
            .with_information_schema(false)
            // `1.5` is a numeric literal in PostgreSQL, not a double.
            .set_bool("datafusion.sql_parser.parse_float_as_decimal", true)
            // Views are planned with ctx.sql(): parse them as clients'
            // statements are (PostgreSQL's dialect: `j -> 'k'` is the JSON
            // operator, not a lambda).
            .set_str("datafusion.sql_parser.dialect", "PostgreSQL")
            .with_default_catalog_and_schema(DATABASE, "public");
        // PostgreSQL's literal types must be in place before DataFusion's
        // type coercion runs; our other rules run after it.
        let mut analyzer: Vec<Arc<dyn datafusion::optimizer::AnalyzerRule + Send + Sync>> =
            vec![Arc::new(crate::sql::int_literals::IntegerLiterals)];
        analyzer.extend(datafusion::optimizer::Analyzer::new().rules);
        let state = datafusion::execution::SessionStateBuilder::new()
            .with_config(session_config)
            .with_default_features()
            .with_analyzer_rules(analyzer)
            .build();
        let ctx = SessionContext::new_with_state(state);
        ctx.add_analyzer_rule(Arc::new(
            crate::sql::aggregate_filter::NullSafeAggregateFilter,
        ));
        ctx.add_analyzer_rule(Arc::new(
            crate::sql::checked_arithmetic::CheckedIntegerArithmetic,
        ));
        ctx.add_analyzer_rule(Arc::new(crate::sql::pg_text_cast::PgTextCast::default()));
        let catalog = MemoryCatalogProvider::new();
        catalog.register_schema("public", lake.schema())?;
        catalog.register_schema("streamlake", lake.system_schema())?;
        ctx.register_catalog(DATABASE, Arc::new(catalog));
        setup_pg_catalog(&ctx, DATABASE, EmptyContextProvider)
            .map_err(|e| Error::DataFusion(*e))?;
        let info = information_schema::schema(&ctx, DATABASE).await?;
        ctx.catalog(DATABASE)
            .expect("registered above")
            .register_schema("information_schema", info)?;
        // datafusion-pg-catalog answers "datafusion" here; clients show it.
        ctx.register_udf(current_database_udf());
        crate::sql::pg_aggregates::register(&ctx);
        ctx.register_udf(crate::sql::pg_round::udf());
        ctx.register_udf(crate::sql::pg_to_char::udf());
        // PostgreSQL 16's any_value: any value of the group.
        ctx.register_udaf(
            datafusion::functions_aggregate::first_last::first_value_udaf()
                .as_ref()
                .clone()
                .with_aliases(["any_value"]),
        );
        // PostgreSQL's name for DataFusion's uuid().
        ctx.register_udf(
            datafusion::functions::string::uuid()
                .as_ref()
                .clone()
                .with_aliases(["gen_random_uuid"]),
        );
        for f in pg_compat::functions() {
            ctx.register_udf(f);
        }
        crate::connector::jsonb::register(&ctx)?;
        let schema = lake.schema();
        let resolve: crate::sql::windows::Resolver = Arc::new(move |name: &str| {
            let name = name.strip_prefix("public.").unwrap_or(name);
            schema.provider(name)
        });
        // DataFusion looks table functions up by the name as written.
        for (name, kind) in [
            ("tumble", crate::sql::windows::WindowKind::Tumble),
            ("TUMBLE", crate::sql::windows::WindowKind::Tumble),
            ("Tumble", crate::sql::windows::WindowKind::Tumble),
            ("hop", crate::sql::windows::WindowKind::Hop),
            ("HOP", crate::sql::windows::WindowKind::Hop),
            ("Hop", crate::sql::windows::WindowKind::Hop),
        ] {
            ctx.register_udtf(
                name,
                Arc::new(crate::sql::windows::WindowFunction::new(
                    kind,
                    resolve.clone(),
                )),
            );
        }
        for name in ["session", "SESSION", "Session"] {
            ctx.register_udtf(
                name,
                Arc::new(crate::sql::session::SessionFunction::new(resolve.clone())),
            );
        }
        lake.restore_views(&ctx).await?;
        lake.start_rebuilder(ctx.clone());
        // Periodic barriers keep views fresh without FLUSH: an epoch every
        // barrier_interval, and every checkpoint_interval a checkpoint that
        // commits the views to Iceberg.
        let ticker = Arc::downgrade(&lake);
        let (every, checkpoint_interval) = (config.barrier_interval, config.checkpoint_interval);
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(every);
            // A slow barrier delays the next; ticks never pile up.
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                let Some(lake) = ticker.upgrade() else { break };
                if let Err(e) = lake.tick(checkpoint_interval).await {
                    tracing::warn!(error = %e, "periodic barrier failed");
                }
            }
        });
        Ok(Engine {
            lake,
            ctx: Arc::new(ctx),
        })
    }
}

fn current_database_udf() -> datafusion::logical_expr::ScalarUDF {
    use datafusion::arrow::datatypes::DataType;
    use datafusion::logical_expr::{ColumnarValue, Volatility, create_udf};
    use datafusion::scalar::ScalarValue;
    create_udf(
        "current_database",
        vec![],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(|_args: &[ColumnarValue]| {
            Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(
                DATABASE.to_string(),
            ))))
        }),
    )
}

/// The pgwire handlers of one server.
pub struct Handlers {
    front: Arc<front::FrontDoor>,
    connections: Arc<ConnectionManager>,
    scram: Option<Arc<auth::StaticUser>>,
}

impl Handlers {
    pub fn new(engine: &Engine, config: &Config) -> Handlers {
        let hooks: Vec<Arc<dyn QueryHook>> = vec![
            Arc::new(hook::SavepointHook),
            // First, so that a failed transaction block refuses everything.
            Arc::new(TransactionStatementHook),
            Arc::new(hook::LakeHook {
                lake: engine.lake.clone(),
            }),
            Arc::new(settings::SettingsHook),
            Arc::new(CursorStatementHook),
            Arc::new(SetShowHook),
        ];
        let scram = match (&config.user, &config.password) {
            (Some(u), Some(p)) => Some(Arc::new(auth::StaticUser::new(u, p))),
            _ => None,
        };
        Handlers {
            front: Arc::new(front::FrontDoor::new(
                Arc::new(DfSessionService::new_with_hooks(engine.ctx.clone(), hooks)),
                engine.lake.clone(),
            )),
            connections: Arc::new(ConnectionManager::new()),
            scram,
        }
    }
}

/// Either trust or SCRAM, chosen once at start.
enum Startup {
    Trust(auth::TrustStartup),
    Scram(SASLAuthStartupHandler<DefaultServerParameterProvider>),
}

#[async_trait::async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: pgwire::messages::PgWireFrontendMessage,
    ) -> pgwire::error::PgWireResult<()>
    where
        C: pgwire::api::ClientInfo
            + futures::Sink<pgwire::messages::PgWireBackendMessage>
            + Unpin
            + Send
            + Sync,
        C::Error: std::fmt::Debug,
        pgwire::error::PgWireError:
            From<<C as futures::Sink<pgwire::messages::PgWireBackendMessage>>::Error>,
    {
        match self {
            Startup::Trust(h) => h.on_startup(client, message).await,
            Startup::Scram(h) => h.on_startup(client, message).await,
        }
    }
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.front.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.front.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        Arc::new(match &self.scram {
            Some(user) => Startup::Scram(
                SASLAuthStartupHandler::new(Arc::new(DefaultServerParameterProvider::default()))
                    .with_scram(ScramAuth::new(user.clone()))
                    .with_connection_manager(self.connections.clone()),
            ),
            None => Startup::Trust(auth::TrustStartup {
                connections: self.connections.clone(),
            }),
        })
    }

    fn copy_handler(&self) -> Arc<impl CopyHandler> {
        Arc::new(copy::LakeCopyHandler)
    }

    fn error_handler(&self) -> Arc<impl ErrorHandler> {
        Arc::new(errors::SqlStateErrorHandler)
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        Arc::new(DefaultCancelHandler::new(self.connections.clone()))
    }
}

/// Binds the listener; [`serve`] then accepts on it until the process ends.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    Ok(TcpListener::bind(addr).await?)
}

/// Accepts connections forever, one task per connection.
pub async fn serve(listener: TcpListener, handlers: Arc<Handlers>) -> Result<()> {
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                continue;
            }
        };
        let _ = socket.set_nodelay(true);
        let handlers = handlers.clone();
        tokio::spawn(async move {
            if let Err(e) = pgwire::tokio::process_socket(socket, None, handlers).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}

/// Runs a SQL script (e.g. the playground) statement by statement.
pub async fn run_script(engine: &Engine, sql: &str) -> Result<()> {
    use datafusion::sql::parser::{DFParser, Statement as DFStatement};
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    let hook = hook::LakeHook {
        lake: engine.lake.clone(),
    };
    for piece in front::split_statements(sql) {
        if crate::sql::source_ddl::is_source_ddl(piece) {
            engine.lake.create_source(piece).await?;
            continue;
        }
        let piece = front::mend(piece);
        let statements = DFParser::parse_sql_with_dialect(&piece, &PostgreSqlDialect {})
            .map_err(|e| Error::Syntax(e.to_string()))?;
        for statement in statements {
            match statement {
                DFStatement::Statement(s) => hook.execute(&s, &engine.ctx).await?,
                other => {
                    engine.ctx.sql(&other.to_string()).await?.collect().await?;
                }
            }
        }
    }
    Ok(())
}
