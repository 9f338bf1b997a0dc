//! Materialized-view benchmarks through the real server (in-process,
//! release build), against DataFusion's batch execution of the same query
//! over the same rows in the same run.
//!
//! - maintaining a GROUP BY view (count/sum/avg/min/max) while rows are
//!   loaded with COPY, then FLUSH, vs the batch query over the loaded rows;
//! - latency of a one-row UPDATE plus FLUSH under that view.
//!
//! Run: `cargo bench --bench views` (BENCH_VIEW_ROWS, BENCH_VIEW_GROUPS
//! override the sizes). Results go in docs/benchmarks.md.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::SinkExt;
use streamlake::config::{Config, ServeArgs};
use streamlake::server::{self, Engine, Handlers};
use tokio_postgres::NoTls;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const QUERY: &str = "SELECT g, count(*) AS n, sum(x) AS s, avg(x) AS a, min(x) AS lo, max(x) AS hi \
                     FROM facts GROUP BY g";

async fn load(
    client: &tokio_postgres::Client,
    table: &str,
    rows: usize,
    groups: usize,
) -> anyhow::Result<()> {
    let sink = client.copy_in(&format!("COPY {table} FROM STDIN")).await?;
    futures::pin_mut!(sink);
    let mut buf = String::with_capacity(1 << 20);
    for i in 0..rows {
        use std::fmt::Write;
        let _ = writeln!(
            buf,
            "{i}\t{}\t{}",
            (i * 7919) % groups,
            (i * 104_729) % 10_000
        );
        if buf.len() > (1 << 20) - 64 {
            sink.send(Bytes::from(std::mem::take(&mut buf))).await?;
        }
    }
    sink.send(Bytes::from(buf)).await?;
    sink.finish().await?;
    Ok(())
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        })
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rows = env_usize("BENCH_VIEW_ROWS", 2_000_000);
    let groups = env_usize("BENCH_VIEW_GROUPS", 100_000);
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

    println!("| benchmark | rows | groups | time | rate |");
    println!("|---|---:|---:|---:|---:|");

    // Load without a view: the cost of storage alone.
    client
        .batch_execute("CREATE TABLE plain (id BIGINT, g INT, x BIGINT)")
        .await?;
    let start = Instant::now();
    load(&client, "plain", rows, groups).await?;
    let plain = start.elapsed();
    println!(
        "| COPY into a table, no view | {rows} | {groups} | {:.2} s | {:.0} rows/s |",
        plain.as_secs_f64(),
        rows as f64 / plain.as_secs_f64()
    );

    // The same load with the view maintained, until FLUSH returns.
    client
        .batch_execute("CREATE TABLE facts (id BIGINT, g INT, x BIGINT)")
        .await?;
    client
        .batch_execute(&format!("CREATE MATERIALIZED VIEW agg AS {QUERY}"))
        .await?;
    let rss_before = rss_mib();
    let start = Instant::now();
    load(&client, "facts", rows, groups).await?;
    client.batch_execute("FLUSH").await?;
    let with_view = start.elapsed();
    let rss_after = rss_mib();
    println!(
        "| COPY + maintain GROUP BY view + FLUSH | {rows} | {groups} | {:.2} s | {:.0} rows/s |",
        with_view.as_secs_f64(),
        rows as f64 / with_view.as_secs_f64()
    );
    let maintenance = with_view.saturating_sub(plain);

    // DataFusion's batch execution of the same query over the same rows.
    let ctx = datafusion::prelude::SessionContext::new();
    let data = dir.path().join("warehouse/public/facts/data");
    ctx.register_parquet("facts", data.to_str().unwrap(), Default::default())
        .await?;
    let start = Instant::now();
    let batches = ctx.sql(QUERY).await?.collect().await?;
    let batch = start.elapsed();
    let n: usize = batches.iter().map(|b| b.num_rows()).sum();
    let view_rows = client.query_one("SELECT count(*) FROM agg", &[]).await?;
    assert_eq!(view_rows.get::<_, i64>(0) as usize, n);
    println!(
        "| DataFusion batch query over the same rows (Parquet) | {rows} | {groups} | {:.2} s | {:.0} rows/s |",
        batch.as_secs_f64(),
        rows as f64 / batch.as_secs_f64()
    );
    println!(
        "\nview maintenance (load with view − load without): {:.2} s = {:.2}x the batch query",
        maintenance.as_secs_f64(),
        maintenance.as_secs_f64() / batch.as_secs_f64()
    );
    println!(
        "process RSS: {rss_before:.0} MiB before the load, {rss_after:.0} MiB after ({} groups)",
        n
    );

    // One-row UPDATE under the view, until FLUSH returns.
    let mut lat = Vec::new();
    for i in 0..5 {
        let start = Instant::now();
        client
            .batch_execute(&format!(
                "UPDATE facts SET x = x + 1 WHERE id = {}",
                i * 1000
            ))
            .await?;
        client.batch_execute("FLUSH").await?;
        lat.push(start.elapsed());
    }
    lat.sort();
    println!(
        "one-row UPDATE + FLUSH under the view: median {:.1} ms (of 5)",
        lat[2].as_secs_f64() * 1000.0
    );
    Ok(())
}
