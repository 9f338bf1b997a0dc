//! Table benchmarks through the real pgwire server (in-process, release
//! build), compared in the same run with DataFusion reading the same Parquet
//! files directly.
//!
//! - bulk load with `COPY … FROM STDIN` (text), rows/s;
//! - bulk load with multi-row `INSERT … VALUES`, rows/s;
//! - `SELECT g, count(*), sum(x) … GROUP BY g` over the COPY-loaded table
//!   through streamlake vs DataFusion over the table's Parquet data files.
//!
//! Run: `cargo bench --bench tables` (BENCH_ROWS, BENCH_INSERT_ROWS and
//! BENCH_GROUPS override the sizes). Results go in docs/benchmarks.md.

use std::time::Instant;

use bytes::Bytes;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use futures::SinkExt;

mod common;
use common::{env_usize, median, start_server};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rows = env_usize("BENCH_ROWS", 10_000_000);
    let insert_rows = env_usize("BENCH_INSERT_ROWS", 200_000);
    let groups = env_usize("BENCH_GROUPS", 1_000);
    let (dir, client) = start_server().await?;

    println!("| benchmark | rows | time | rate |");
    println!("|---|---:|---:|---:|");

    // 1. COPY FROM STDIN.
    client
        .batch_execute("CREATE TABLE facts (id BIGINT, g INT, x BIGINT)")
        .await?;
    let start = Instant::now();
    let sink = client.copy_in("COPY facts FROM STDIN").await?;
    futures::pin_mut!(sink);
    let mut buf = String::with_capacity(1 << 20);
    for i in 0..rows {
        use std::fmt::Write;
        let _ = writeln!(buf, "{i}\t{}\t{}", i % groups, (i * 7919) % 1000);
        if buf.len() > (1 << 20) - 64 {
            sink.send(Bytes::from(std::mem::take(&mut buf))).await?;
            buf.reserve(1 << 20);
        }
    }
    sink.send(Bytes::from(buf)).await?;
    let copied = sink.finish().await?;
    let t = start.elapsed();
    assert_eq!(copied as usize, rows);
    println!(
        "| COPY FROM STDIN (text) | {rows} | {:.2} s | {:.0} rows/s |",
        t.as_secs_f64(),
        rows as f64 / t.as_secs_f64()
    );

    // 2. Multi-row INSERT, 1000 rows per statement.
    client
        .batch_execute("CREATE TABLE inserted (id BIGINT, g INT, x BIGINT)")
        .await?;
    let start = Instant::now();
    let per = 1000;
    let mut done = 0;
    while done < insert_rows {
        let n = per.min(insert_rows - done);
        let mut sql = String::from("INSERT INTO inserted VALUES ");
        for i in done..done + n {
            use std::fmt::Write;
            if i > done {
                sql.push(',');
            }
            let _ = write!(sql, "({i},{},{})", i % groups, (i * 7919) % 1000);
        }
        client.batch_execute(&sql).await?;
        done += n;
    }
    let t = start.elapsed();
    println!(
        "| INSERT … VALUES, {per} rows/statement | {insert_rows} | {:.2} s | {:.0} rows/s |",
        t.as_secs_f64(),
        insert_rows as f64 / t.as_secs_f64()
    );

    // 3. GROUP BY through streamlake vs DataFusion on the same files.
    let query = "SELECT g, count(*), sum(x) FROM facts GROUP BY g";
    let mut ours = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        let result = client.simple_query(query).await?;
        ours.push(start.elapsed());
        let n = result
            .iter()
            .filter(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_)))
            .count();
        assert_eq!(n, groups.min(rows));
    }
    let data_dir = dir.path().join("warehouse/public/facts/data");
    let ctx = SessionContext::new();
    ctx.register_parquet(
        "facts",
        data_dir.to_str().unwrap(),
        ParquetReadOptions::default(),
    )
    .await?;
    let mut theirs = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        let batches = ctx.sql(query).await?.collect().await?;
        theirs.push(start.elapsed());
        let n: usize = batches.iter().map(|b| b.num_rows()).sum();
        assert_eq!(n, groups.min(rows));
    }
    let (o, d) = (median(ours), median(theirs));
    println!(
        "| GROUP BY {groups} groups, streamlake over pgwire (median of 3) | {rows} | {:.3} s | {:.0} rows/s |",
        o.as_secs_f64(),
        rows as f64 / o.as_secs_f64()
    );
    println!(
        "| same query, DataFusion on the Parquet files (median of 3) | {rows} | {:.3} s | {:.0} rows/s |",
        d.as_secs_f64(),
        rows as f64 / d.as_secs_f64()
    );
    println!(
        "\nstreamlake / DataFusion: {:.2}x",
        o.as_secs_f64() / d.as_secs_f64()
    );
    Ok(())
}
