//! What the benchmarks share: sizes from the environment, medians, and a
//! real server started in-process on a fresh data directory.

use std::sync::Arc;
use std::time::Duration;

use streamlake::config::{Config, ServeArgs};
use streamlake::server::{self, Engine, Handlers};
use tempfile::TempDir;
use tokio_postgres::{Client, NoTls};

/// A size from the environment, or the default.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// A fresh server on its own data directory and a client connected to it.
pub async fn start_server() -> anyhow::Result<(TempDir, Client)> {
    let dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let args = ServeArgs {
        listen: Some(format!("127.0.0.1:{port}").parse()?),
        data_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    };
    let config = Config::resolve(&args)?;
    let engine = Engine::open(&config).await?;
    let listener = server::bind(config.listen).await?;
    tokio::spawn(server::serve(
        listener,
        Arc::new(Handlers::new(&engine, &config)),
    ));
    let (client, conn) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={port} user=bench dbname=dev"),
        NoTls,
    )
    .await?;
    tokio::spawn(conn);
    Ok((dir, client))
}
