//! Materialized-view benchmarks through the real server (in-process,
//! release build), against DataFusion's batch execution of the same query
//! over the same rows in the same run. Three parts, each on its own fresh
//! server and data directory:
//!
//! - `agg`: maintaining a GROUP BY view (count/sum/avg/min/max) while rows
//!   are loaded with COPY, then FLUSH, vs the batch query over the loaded
//!   rows; latency of a one-row UPDATE plus FLUSH under that view;
//! - `join`: a fact table joined to a dimension table (one row per group,
//!   loaded first), the same comparison; latency of a one-row UPDATE plus
//!   FLUSH of a dimension row (fans out to its facts) and of a fact row;
//! - `dedup`: `ROW_NUMBER() OVER (PARTITION BY k ORDER BY ts) = 1` over
//!   events with four rows per key, the same comparison; latency of a
//!   one-row UPDATE plus FLUSH.
//!
//! Maintenance cost is the load with the view (COPY + FLUSH) minus the same
//! COPY into a table without a view. The batch query is DataFusion over the
//! tables' Parquet data files (`<data-dir>/warehouse/public/<table>/data`),
//! median of 3. Process RSS is reported before and after each load.
//!
//! Run: `cargo bench --bench views`. Sizes: BENCH_VIEW_ROWS (rows loaded in
//! every part, default 2000000), BENCH_VIEW_GROUPS (GROUP BY groups and join
//! dimension rows, default 100000); BENCH_JOIN_ROWS, BENCH_JOIN_DIMS and
//! BENCH_DEDUP_ROWS override one part. BENCH_VIEW_ONLY=agg|join|dedup runs
//! one part. Results go in docs/benchmarks.md.

use std::fmt::Write;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::SinkExt;
use tempfile::TempDir;
use tokio_postgres::Client;

mod common;
use common::{env_usize, median, start_server};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

const AGG_QUERY: &str = "SELECT g, count(*) AS n, sum(x) AS s, avg(x) AS a, \
                         min(x) AS lo, max(x) AS hi FROM facts GROUP BY g";
const JOIN_QUERY: &str =
    "SELECT f.id, f.x, d.label, f.x * d.w AS xw FROM facts f JOIN dims d ON f.g = d.g";
const DEDUP_QUERY: &str = "SELECT k, ts, v FROM (SELECT *, ROW_NUMBER() OVER \
                           (PARTITION BY k ORDER BY ts) AS rn FROM events) AS t WHERE rn = 1";
const FACTS: &str = "(id BIGINT, g INT, x BIGINT)";
const EVENTS: &str = "(id BIGINT, k BIGINT, ts BIGINT, v BIGINT)";

/// Row `i` of the fact table (agg and join parts): `groups` values of g.
fn fact_row(buf: &mut String, i: usize, groups: usize) {
    let _ = writeln!(
        buf,
        "{i}\t{}\t{}",
        (i * 7919) % groups,
        (i * 104_729) % 10_000
    );
}

/// Row `i` of the events table: `keys` distinct k (rows / keys rows each,
/// as 7919 is prime), ts a permutation of 0..rows.
fn event_row(buf: &mut String, i: usize, keys: usize, rows: usize) {
    let _ = writeln!(
        buf,
        "{i}\t{}\t{}\t{}",
        (i * 7919) % keys,
        (i * 104_729) % rows,
        i % 1000
    );
}

/// `COPY table FROM STDIN` of `rows` text rows written by `row`.
async fn copy_rows(
    client: &Client,
    table: &str,
    rows: usize,
    row: impl Fn(&mut String, usize),
) -> anyhow::Result<()> {
    let sink = client.copy_in(&format!("COPY {table} FROM STDIN")).await?;
    futures::pin_mut!(sink);
    let mut buf = String::with_capacity(1 << 20);
    for i in 0..rows {
        row(&mut buf, i);
        if buf.len() > (1 << 20) - 128 {
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

/// One line of a part's result table.
fn report(what: &str, rows: usize, groups: usize, t: Duration) {
    println!(
        "| {what} | {rows} | {groups} | {:.2} s | {:.0} rows/s |",
        t.as_secs_f64(),
        rows as f64 / t.as_secs_f64()
    );
}

/// One view benchmark: the view's input table, its rows, and the query.
struct ViewBench<'a> {
    /// e.g. "GROUP BY view"
    label: &'a str,
    /// The input table the rows are loaded into, and its columns.
    table: &'a str,
    columns: &'a str,
    rows: usize,
    /// Groups (agg), dimension rows (join) or distinct keys (dedup).
    groups: usize,
    query: &'a str,
    /// Tables DataFusion registers (their Parquet data directories).
    batch_tables: &'a [&'a str],
}

/// Loads the rows into a table without a view, then into `b.table` with
/// the view `v` maintained until FLUSH returns, and compares the difference
/// with DataFusion's batch execution of the query over the Parquet files.
async fn measure_view(
    dir: &TempDir,
    client: &Client,
    b: &ViewBench<'_>,
    row: impl Fn(&mut String, usize) + Copy,
) -> anyhow::Result<()> {
    let (rows, groups) = (b.rows, b.groups);
    println!("\n### {}\n", b.label);
    println!("| benchmark | rows | groups | time | rate |");
    println!("|---|---:|---:|---:|---:|");

    // Load without a view: the cost of storage alone.
    client
        .batch_execute(&format!("CREATE TABLE plain {}", b.columns))
        .await?;
    let plain_rss_before = rss_mib();
    let start = Instant::now();
    copy_rows(client, "plain", rows, row).await?;
    let plain = start.elapsed();
    let plain_rss_after = rss_mib();
    report("COPY into a table, no view", rows, groups, plain);

    // The same load with the view maintained, until FLUSH returns.
    client
        .batch_execute(&format!("CREATE TABLE {} {}", b.table, b.columns))
        .await?;
    client
        .batch_execute(&format!("CREATE MATERIALIZED VIEW v AS {}", b.query))
        .await?;
    let rss_before = rss_mib();
    let start = Instant::now();
    copy_rows(client, b.table, rows, row).await?;
    client.batch_execute("FLUSH").await?;
    let with_view = start.elapsed();
    let rss_after = rss_mib();
    report(
        &format!("COPY + maintain {} + FLUSH", b.label),
        rows,
        groups,
        with_view,
    );
    let maintenance = with_view.saturating_sub(plain);

    // DataFusion's batch execution of the same query over the same rows.
    let ctx = datafusion::prelude::SessionContext::new();
    for t in b.batch_tables {
        let data = dir.path().join(format!("warehouse/public/{t}/data"));
        ctx.register_parquet(*t, data.to_str().unwrap(), Default::default())
            .await?;
    }
    let mut times = Vec::new();
    let mut n = 0;
    for _ in 0..3 {
        let start = Instant::now();
        let batches = ctx.sql(b.query).await?.collect().await?;
        times.push(start.elapsed());
        n = batches.iter().map(|b| b.num_rows()).sum::<usize>();
    }
    let batch = median(times);
    let view_rows = client.query_one("SELECT count(*) FROM v", &[]).await?;
    assert_eq!(view_rows.get::<_, i64>(0) as usize, n, "view vs batch rows");
    report(
        "DataFusion batch query over the same rows (Parquet, median of 3)",
        rows,
        groups,
        batch,
    );
    println!(
        "\nview maintenance (load with view − load without): {:.2} s = {:.2}x the batch query",
        maintenance.as_secs_f64(),
        maintenance.as_secs_f64() / batch.as_secs_f64()
    );
    println!(
        "process RSS, load without a view: {plain_rss_before:.0} MiB before, \
         {plain_rss_after:.0} MiB after (+{:.0} MiB)",
        plain_rss_after - plain_rss_before
    );
    println!(
        "process RSS, load with the view: {rss_before:.0} MiB before, {rss_after:.0} MiB after \
         (+{:.0} MiB; view has {n} rows)",
        rss_after - rss_before
    );
    Ok(())
}

/// Median latency of five one-row UPDATEs (statement `i` from `update`),
/// each followed by FLUSH.
async fn update_latency(
    client: &Client,
    what: &str,
    update: impl Fn(usize) -> String,
) -> anyhow::Result<()> {
    let (mut total, mut dml, mut flush) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..5 {
        let start = Instant::now();
        client.batch_execute(&update(i)).await?;
        let updated = Instant::now();
        client.batch_execute("FLUSH").await?;
        total.push(start.elapsed());
        dml.push(updated - start);
        flush.push(updated.elapsed());
    }
    println!(
        "{what} + FLUSH: median {:.1} ms (of 5; min {:.1}, max {:.1}; \
         UPDATE median {:.1} ms, FLUSH median {:.1} ms)",
        ms(median(total.clone())),
        ms(*total.iter().min().unwrap()),
        ms(*total.iter().max().unwrap()),
        ms(median(dml)),
        ms(median(flush))
    );
    Ok(())
}

async fn bench_agg(rows: usize, groups: usize) -> anyhow::Result<TempDir> {
    let (dir, client) = start_server().await?;
    let b = ViewBench {
        label: "GROUP BY view",
        table: "facts",
        columns: FACTS,
        rows,
        groups,
        query: AGG_QUERY,
        batch_tables: &["facts"],
    };
    measure_view(&dir, &client, &b, |buf, i| fact_row(buf, i, groups)).await?;
    update_latency(&client, "one-row UPDATE under the GROUP BY view", |i| {
        format!("UPDATE facts SET x = x + 1 WHERE id = {}", i * 1000)
    })
    .await?;
    Ok(dir)
}

async fn bench_join(rows: usize, dims: usize) -> anyhow::Result<TempDir> {
    let (dir, client) = start_server().await?;
    client
        .batch_execute("CREATE TABLE dims (g INT PRIMARY KEY, label TEXT, w BIGINT)")
        .await?;
    copy_rows(&client, "dims", dims, |buf, g| {
        let _ = writeln!(buf, "{g}\tlabel-{g}\t{}", g % 100 + 1);
    })
    .await?;
    let b = ViewBench {
        label: "join view",
        table: "facts",
        columns: FACTS,
        rows,
        groups: dims,
        query: JOIN_QUERY,
        batch_tables: &["facts", "dims"],
    };
    measure_view(&dir, &client, &b, |buf, i| fact_row(buf, i, dims)).await?;
    let fan_out = rows / dims.max(1);
    update_latency(
        &client,
        &format!("one dimension-row UPDATE under the join view (~{fan_out} view rows change)"),
        |i| format!("UPDATE dims SET w = w + 1 WHERE g = {}", i * 7 % dims),
    )
    .await?;
    update_latency(&client, "one fact-row UPDATE under the join view", |i| {
        format!("UPDATE facts SET x = x + 1 WHERE id = {}", i * 1000)
    })
    .await?;
    Ok(dir)
}

async fn bench_dedup(rows: usize) -> anyhow::Result<TempDir> {
    let (dir, client) = start_server().await?;
    let keys = (rows / 4).max(1);
    let b = ViewBench {
        label: "dedup view",
        table: "events",
        columns: EVENTS,
        rows,
        groups: keys,
        query: DEDUP_QUERY,
        batch_tables: &["events"],
    };
    measure_view(&dir, &client, &b, |buf, i| event_row(buf, i, keys, rows)).await?;
    update_latency(&client, "one-row UPDATE under the dedup view", |i| {
        format!("UPDATE events SET ts = ts - {rows} WHERE id = {}", i * 1000)
    })
    .await?;
    Ok(dir)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rows = env_usize("BENCH_VIEW_ROWS", 2_000_000);
    let groups = env_usize("BENCH_VIEW_GROUPS", 100_000);
    let only = std::env::var("BENCH_VIEW_ONLY").unwrap_or_default();
    let run = |part: &str| only.is_empty() || only == part;
    // Each part's server keeps running (idle) until the end; its data
    // directory must outlive it.
    let mut dirs = Vec::new();
    if run("agg") {
        dirs.push(bench_agg(rows, groups).await?);
    }
    if run("join") {
        let join_rows = env_usize("BENCH_JOIN_ROWS", rows);
        let dims = env_usize("BENCH_JOIN_DIMS", groups);
        dirs.push(bench_join(join_rows, dims).await?);
    }
    if run("dedup") {
        dirs.push(bench_dedup(env_usize("BENCH_DEDUP_ROWS", rows)).await?);
    }
    Ok(())
}
