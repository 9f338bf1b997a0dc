//! The `streamlake` binary: `serve` and `playground`.

use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use streamlake::config::{Config, ServeArgs};
use streamlake::server::{self, Engine, Handlers};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(name = "streamlake", version, about = "A SQL-first streaming database")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Run the server with demo tables (sql/playground.sql) loaded.
    Playground(ServeArgs),
}

/// The demo script, compiled in so the binary works from any directory.
const PLAYGROUND_SQL: &str = include_str!("../sql/playground.sql");

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("STREAMLAKE_LOG")
                .unwrap_or_else(|_| EnvFilter::new("info,datafusion_postgres=warn,pgwire=warn")),
        )
        .init();
    // A panic (in an operator, say) is caught where it can be and the view
    // rebuilt; the log keeps where it happened.
    std::panic::set_hook(Box::new(|info| {
        let backtrace = std::backtrace::Backtrace::force_capture();
        tracing::error!(panic = %info, %backtrace, "panic");
    }));
    let cli = Cli::parse();
    let (args, playground) = match cli.command {
        Command::Serve(a) => (a, false),
        Command::Playground(a) => (a, true),
    };
    let mut args = args;
    if playground && args.data_dir.is_none() {
        // The broker is in memory, so the playground starts clean too.
        let dir = std::path::PathBuf::from("./streamlake-playground");
        if dir.exists() {
            std::fs::remove_dir_all(&dir).context("cleaning ./streamlake-playground")?;
        }
        args.data_dir = Some(dir);
    }
    let config = Config::resolve(&args)?;
    let broker = if playground {
        let p = streamlake::playground::start().context("starting the playground broker")?;
        tracing::info!(broker = %p.bootstrap, topic = "trades",
            "playground broker running; produce to it with any Kafka client");
        Some(p)
    } else {
        None
    };
    let engine = Engine::open(&config)
        .await
        .context("opening the warehouse")?;
    let listener = server::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    if let Some(p) = &broker {
        streamlake::server::run_script(
            &engine,
            &PLAYGROUND_SQL.replace("{{BROKER}}", &p.bootstrap),
        )
        .await
        .context("running sql/playground.sql")?;
        tracing::info!(
            warehouse = %config.warehouse,
            "playground loaded: try SELECT * FROM volume_by_symbol; SELECT * FROM streamlake.dead_letters; \
             SELECT * FROM streamlake.source_partitions"
        );
    }
    let handlers = Arc::new(Handlers::new(&engine, &config));
    tracing::info!(
        listen = %config.listen,
        data_dir = %config.data_dir.display(),
        warehouse = %config.warehouse,
        auth = if config.password.is_some() { "scram-sha-256" } else { "trust" },
        "streamlake ready: psql -h {} -p {} -d dev",
        config.listen.ip(),
        config.listen.port()
    );
    tokio::select! {
        r = server::serve(listener, handlers) => r?,
        _ = shutdown_signal() => {
            // A last checkpoint, so the views' Iceberg tables are current
            // for other engines (after a restart views rebuild anyway).
            tracing::info!("shutting down: committing the views");
            let last = engine.lake.checkpoint();
            match tokio::time::timeout(std::time::Duration::from_secs(10), last).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "the last checkpoint failed"),
                Err(_) => tracing::warn!("the last checkpoint did not finish in 10 s"),
            }
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {},
        _ = term.recv() => {},
    }
}
