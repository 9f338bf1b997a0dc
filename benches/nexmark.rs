//! Nexmark through streamlake's sources: server CPU per event, against
//! DataFusion's batch execution of the same queries over the same rows in
//! the same run.
//!
//! Every run starts the release `streamlake serve` binary as its own
//! process on a fresh data directory, so the server's CPU time (utime +
//! stime of the process, from `/proc/<pid>/stat`) and memory (VmRSS,
//! VmHWM) are its own: the client, DataFusion and the Kafka producer run in
//! this process.
//!
//! - **Generator part**, one server per query: `CREATE SOURCE bid … WITH
//!   (connector = 'nexmark', nexmark.event.num = N)` (and `auction` for the
//!   join), then one `CREATE MATERIALIZED VIEW v AS <query>`; the generator
//!   starts with the view and runs flat out. Server CPU is counted from
//!   just before CREATE MATERIALIZED VIEW until FLUSH returns after the
//!   server went idle (under 5% of a core for two 0.5 s samples), and the
//!   view is then checked against DataFusion's result (row count and
//!   column sums; a mismatch means the wait continues). Rate = rows the
//!   source produced / server CPU seconds. DataFusion batch: the same rows
//!   made by the same generator in this process, two in-memory partitions
//!   (`MemTable`), the query collected three times, median CPU time of
//!   this process (count(*) is not answered from statistics).
//! - **Kafka part**: the bench process hosts librdkafka's mock cluster;
//!   Nexmark bids as JSON (~244 B) are produced while the server consumes
//!   them into `CREATE SOURCE … FORMAT PLAIN ENCODE JSON` and a filtered
//!   view. The mock cluster keeps only 5 MiB per partition, so production
//!   stays at most [`KAFKA_IN_FLIGHT`] records per partition ahead of the
//!   server's position (`streamlake.source_partitions`, polled every
//!   100 ms; those queries count as server CPU).
//! - **Memory**: server RSS while N events flow through one nexmark source
//!   and three views, and while a Kafka source reads a backlog it is far
//!   behind (every partition full before the view starts).
//!
//! Run: `cargo bench --bench nexmark`. Sizes: BENCH_NEXMARK_EVENTS
//! (nexmark.event.num, default 10000000: 9.2M bids), BENCH_KAFKA_EVENTS
//! (bids produced, default 5000000), BENCH_KAFKA_PARTITIONS (default 16).
//! BENCH_NEXMARK_ONLY=q0,q1,…,kafka,memory runs some parts. Results go in
//! docs/benchmarks.md.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef, TimeUnit};
use datafusion::datasource::MemTable;
use datafusion::execution::SessionStateBuilder;
use datafusion::physical_optimizer::optimizer::PhysicalOptimizer;
use datafusion::prelude::SessionContext;
use rdkafka::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use streamlake::connector::generator;
use tempfile::TempDir;
use tokio_postgres::{Client, NoTls};

#[allow(dead_code)] // start_server: here the server is its own process
mod common;
use common::{env_usize, median};

/// Records a Kafka partition may be ahead of the server: ~2.2 MB of the
/// mock cluster's 5 MiB per partition, so nothing unread is dropped.
const KAFKA_IN_FLIGHT: i64 = 8000;

const BID_COLUMNS: &str = "auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, \
                           url VARCHAR, date_time TIMESTAMP, extra VARCHAR";
const AUCTION_COLUMNS: &str = "id BIGINT, item_name VARCHAR, description VARCHAR, \
                               initial_bid BIGINT, reserve BIGINT, date_time TIMESTAMP, \
                               expires TIMESTAMP, seller BIGINT, category BIGINT, extra VARCHAR";

/// A Nexmark table the queries read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Table {
    Bid,
    Auction,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Bid => "bid",
            Table::Auction => "auction",
        }
    }

    fn columns(self) -> &'static str {
        match self {
            Table::Bid => BID_COLUMNS,
            Table::Auction => AUCTION_COLUMNS,
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Table::Bid => "Bid",
            Table::Auction => "Auction",
        }
    }

    fn schema(self) -> SchemaRef {
        let ts = || DataType::Timestamp(TimeUnit::Microsecond, None);
        let fields = match self {
            Table::Bid => vec![
                ("auction", DataType::Int64),
                ("bidder", DataType::Int64),
                ("price", DataType::Int64),
                ("channel", DataType::Utf8),
                ("url", DataType::Utf8),
                ("date_time", ts()),
                ("extra", DataType::Utf8),
            ],
            Table::Auction => vec![
                ("id", DataType::Int64),
                ("item_name", DataType::Utf8),
                ("description", DataType::Utf8),
                ("initial_bid", DataType::Int64),
                ("reserve", DataType::Int64),
                ("date_time", ts()),
                ("expires", ts()),
                ("seller", DataType::Int64),
                ("category", DataType::Int64),
                ("extra", DataType::Utf8),
            ],
        };
        Arc::new(Schema::new(
            fields
                .into_iter()
                .map(|(n, t)| Field::new(n, t, true))
                .collect::<Vec<_>>(),
        ))
    }

    /// Rows of this table among the first `events` events: of every 50,
    /// one person, then three auctions, then 46 bids.
    fn rows(self, events: usize) -> usize {
        let (whole, rest) = (events / 50, events % 50);
        match self {
            Table::Bid => whole * 46 + rest.saturating_sub(4),
            Table::Auction => whole * 3 + rest.saturating_sub(1).min(3),
        }
    }

    fn create_source(self, events: usize) -> String {
        format!(
            "CREATE SOURCE {} ({}) WITH (connector = 'nexmark', nexmark.table.type = '{}', \
             nexmark.event.num = '{events}')",
            self.name(),
            self.columns(),
            self.kind()
        )
    }
}

/// One measured query.
struct Query {
    name: &'static str,
    /// The view's query (streamlake SQL, RisingWave's Nexmark form).
    view: &'static str,
    /// The same query for DataFusion over the generated tables.
    batch: &'static str,
    /// Aggregates over the result that must agree (each cast to BIGINT).
    check: &'static [&'static str],
    tables: &'static [Table],
    goal: f64,
    /// nexmark.event.num unless BENCH_NEXMARK_EVENTS is set: smaller for
    /// the operators whose state grows with every row (the dedup keeps
    /// ~2 KB per key today), so a run fits in memory.
    events: usize,
}

const HOP_BATCH: &str = "SELECT auction, window_start, count(*) AS n FROM (\
    SELECT auction, date_bin(INTERVAL '2 seconds', date_time, TIMESTAMP '1970-01-01 00:00:00') AS window_start FROM bid \
    UNION ALL SELECT auction, date_bin(INTERVAL '2 seconds', date_time, TIMESTAMP '1970-01-01 00:00:00') - INTERVAL '2 seconds' FROM bid \
    UNION ALL SELECT auction, date_bin(INTERVAL '2 seconds', date_time, TIMESTAMP '1970-01-01 00:00:00') - INTERVAL '4 seconds' FROM bid \
    UNION ALL SELECT auction, date_bin(INTERVAL '2 seconds', date_time, TIMESTAMP '1970-01-01 00:00:00') - INTERVAL '6 seconds' FROM bid \
    UNION ALL SELECT auction, date_bin(INTERVAL '2 seconds', date_time, TIMESTAMP '1970-01-01 00:00:00') - INTERVAL '8 seconds' FROM bid\
    ) AS h GROUP BY auction, window_start";

const QUERIES: &[Query] = &[
    Query {
        name: "q0",
        view: "SELECT count(*) AS n FROM bid",
        batch: "SELECT count(*) AS n FROM bid",
        check: &["sum(n)"],
        tables: &[Table::Bid],
        goal: 1_000_000.0,
        events: 10_000_000,
    },
    Query {
        name: "q1",
        view: "SELECT auction, bidder, 0.908 * price AS price, date_time FROM bid",
        batch: "SELECT auction, bidder, 0.908 * price AS price, date_time FROM bid",
        check: &["count(*)", "sum(auction)", "sum(bidder)"],
        tables: &[Table::Bid],
        goal: 1_000_000.0,
        events: 10_000_000,
    },
    Query {
        name: "q1-sum",
        view: "SELECT count(*) AS n, sum(price) AS s FROM (SELECT auction, bidder, \
               0.908 * price AS price, date_time FROM bid) AS q1",
        batch: "SELECT count(*) AS n, sum(price) AS s FROM (SELECT auction, bidder, \
                0.908 * price AS price, date_time FROM bid) AS q1",
        check: &["sum(n)"],
        tables: &[Table::Bid],
        goal: 1_000_000.0,
        events: 10_000_000,
    },
    Query {
        name: "q2",
        view: "SELECT auction, price FROM bid WHERE auction % 123 = 0",
        batch: "SELECT auction, price FROM bid WHERE auction % 123 = 0",
        check: &["count(*)", "sum(auction)", "sum(price)"],
        tables: &[Table::Bid],
        goal: 1_000_000.0,
        events: 10_000_000,
    },
    Query {
        name: "tumble",
        view: "SELECT auction, window_start, max(price) AS max_price \
               FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND) GROUP BY auction, window_start",
        batch: "SELECT auction, date_bin(INTERVAL '10 seconds', date_time, \
                TIMESTAMP '1970-01-01 00:00:00') AS window_start, max(price) AS max_price \
                FROM bid GROUP BY 1, 2",
        check: &["count(*)", "sum(auction)", "sum(max_price)"],
        tables: &[Table::Bid],
        goal: 1_000_000.0,
        events: 10_000_000,
    },
    Query {
        name: "hop",
        view: "SELECT auction, window_start, count(*) AS n \
               FROM HOP(bid, date_time, INTERVAL '2' SECOND, INTERVAL '10' SECOND) \
               GROUP BY auction, window_start",
        batch: HOP_BATCH,
        check: &["count(*)", "sum(auction)", "sum(n)"],
        tables: &[Table::Bid],
        goal: 600_000.0,
        events: 5_000_000,
    },
    Query {
        name: "dedup",
        view: "SELECT DISTINCT ON (auction, bidder) auction, bidder, price, date_time \
               FROM bid ORDER BY auction, bidder, date_time",
        batch: "SELECT DISTINCT ON (auction, bidder) auction, bidder, price, date_time \
                FROM bid ORDER BY auction, bidder, date_time",
        check: &["count(*)", "sum(auction)", "sum(bidder)"],
        tables: &[Table::Bid],
        goal: 600_000.0,
        events: 2_000_000,
    },
    Query {
        name: "join",
        view: "SELECT a.id, a.seller, b.price FROM auction a JOIN bid b ON a.id = b.auction",
        batch: "SELECT a.id, a.seller, b.price FROM auction a JOIN bid b ON a.id = b.auction",
        check: &["count(*)", "sum(seller)", "sum(price)"],
        tables: &[Table::Auction, Table::Bid],
        goal: 600_000.0,
        events: 5_000_000,
    },
];

fn check_sql(check: &[&str], from: &str) -> String {
    let cols: Vec<String> = check
        .iter()
        .map(|c| format!("CAST({c} AS BIGINT)"))
        .collect();
    format!("SELECT {} FROM {from}", cols.join(", "))
}

// ---------------------------------------------------------------------------
// CPU and memory from /proc

/// utime + stime of a process (every thread, exited ones included).
fn process_cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): state is the
    // first, utime the 12th, stime the 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // USER_HZ is 100 on Linux.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// (VmRSS, VmHWM) of a process in MiB.
fn process_rss(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (kb("VmRSS:"), kb("VmHWM:"))
}

// ---------------------------------------------------------------------------
// The server process

struct Server {
    child: Child,
    _dir: TempDir,
    log: PathBuf,
    port: u16,
}

impl Server {
    async fn start() -> anyhow::Result<(Server, Client)> {
        let dir = tempfile::tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let log = dir.path().join("server.log");
        let out = std::fs::File::create(&log)?;
        let child = Command::new(env!("CARGO_BIN_EXE_streamlake"))
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .env("STREAMLAKE_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("starting streamlake serve")?;
        let server = Server {
            child,
            _dir: dir,
            log,
            port,
        };
        let start = Instant::now();
        loop {
            match tokio_postgres::connect(
                &format!("host=127.0.0.1 port={} user=bench dbname=dev", server.port),
                NoTls,
            )
            .await
            {
                Ok((client, conn)) => {
                    tokio::spawn(conn);
                    return Ok((server, client));
                }
                Err(e) if start.elapsed() > Duration::from_secs(60) => {
                    bail!("server did not start: {e}\n{}", server.log_tail());
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn cpu(&self) -> Duration {
        process_cpu(self.pid())
    }

    fn rss(&self) -> (f64, f64) {
        process_rss(self.pid())
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn check_values(client: &Client, sql: &str) -> anyhow::Result<Vec<i64>> {
    let row = client.query_one(sql, &[]).await?;
    Ok((0..row.len())
        .map(|i| row.get::<_, Option<i64>>(i).unwrap_or(0))
        .collect())
}

/// Waits until the server is idle, FLUSHes, and checks the view; repeats
/// until the view equals `expected`. Returns the server CPU and wall time
/// at the FLUSH that passed, and the largest RSS seen.
async fn wait_done(
    server: &Server,
    client: &Client,
    check: &str,
    expected: &[i64],
    start: Instant,
) -> anyhow::Result<(Duration, Duration, f64)> {
    let mut last = server.cpu();
    let mut idle = 0;
    let mut busy_until = start.elapsed();
    let mut max_rss: f64 = 0.0;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = server.cpu();
        max_rss = max_rss.max(server.rss().0);
        if now.saturating_sub(last) < Duration::from_millis(25) {
            idle += 1;
        } else {
            idle = 0;
            busy_until = start.elapsed();
        }
        last = now;
        if idle >= 2 {
            client.batch_execute("FLUSH").await?;
            let cpu = server.cpu();
            let got = check_values(client, check).await?;
            if got == expected {
                return Ok((cpu, busy_until, max_rss));
            }
            println!("  (idle but the view has {got:?}, want {expected:?}; waiting)");
            idle = 0;
        }
        if start.elapsed() > Duration::from_secs(3600) {
            bail!("gave up after an hour\n{}", server.log_tail());
        }
    }
}

// ---------------------------------------------------------------------------
// DataFusion batch over the same rows

/// The rows a nexmark source with `events` events makes, and the CPU time
/// of this process it took to make them.
fn generate(table: Table, events: usize) -> anyhow::Result<(Vec<RecordBatch>, Duration)> {
    let options = BTreeMap::from([
        ("nexmark.table.type".to_string(), table.kind().to_string()),
        ("nexmark.event.num".to_string(), events.to_string()),
    ]);
    let mut g = generator::nexmark(&options, table.schema())?;
    let start = self_cpu();
    let mut batches = Vec::new();
    while let Some(b) = g.next_batch(8192) {
        batches.push(b);
    }
    Ok((batches, self_cpu() - start))
}

/// CPU time of this process's live threads, in nanoseconds from each
/// thread's schedstat (finer than the 10 ms ticks of /proc/<pid>/stat; the
/// batch queries run on the runtime's long-lived worker threads).
fn self_cpu() -> Duration {
    let mut ns = 0;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for t in tasks.flatten() {
            ns += std::fs::read_to_string(t.path().join("schedstat"))
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Duration::from_nanos(ns)
}

/// A session with both cores that scans count(*) rather than answering it
/// from the MemTable's exact row count.
fn batch_context() -> SessionContext {
    let rules = PhysicalOptimizer::new()
        .rules
        .into_iter()
        .filter(|r| r.name() != "aggregate_statistics")
        .collect();
    let state = SessionStateBuilder::new()
        .with_default_features()
        .with_physical_optimizer_rules(rules)
        .build();
    SessionContext::new_with_state(state)
}

/// Median CPU time of the query over three runs, and its check values.
async fn run_batch(
    q: &Query,
    tables: &BTreeMap<&'static str, Vec<RecordBatch>>,
) -> anyhow::Result<(Duration, Vec<i64>)> {
    let ctx = batch_context();
    for t in q.tables {
        let batches = &tables[t.name()];
        // Two partitions, one per core.
        let mut parts = vec![Vec::new(), Vec::new()];
        for (i, b) in batches.iter().enumerate() {
            parts[i % 2].push(b.clone());
        }
        ctx.register_table(t.name(), Arc::new(MemTable::try_new(t.schema(), parts)?))?;
    }
    let mut times = Vec::new();
    for _ in 0..3 {
        let start = self_cpu();
        let out = ctx.sql(q.batch).await?.collect().await?;
        times.push(self_cpu() - start);
        drop(out);
    }
    let check = check_sql(q.check, &format!("({}) AS t", q.batch));
    let out = ctx.sql(&check).await?.collect().await?;
    let row = &out[0];
    let values = row
        .columns()
        .iter()
        .map(|c| {
            let c = c.as_primitive::<Int64Type>();
            if c.is_null(0) { 0 } else { c.value(0) }
        })
        .collect();
    Ok((median(times), values))
}

// ---------------------------------------------------------------------------
// Results

struct Line {
    what: String,
    rows: usize,
    cpu: Duration,
    batch: Option<f64>,
    goal: f64,
    note: String,
}

impl Line {
    fn rate(&self) -> f64 {
        self.rows as f64 / self.cpu.as_secs_f64()
    }
}

fn print_table(lines: &[Line]) {
    println!();
    println!(
        "| query | events | server CPU s | events/CPU-s | DataFusion batch events/CPU-s | goal | met? | notes |"
    );
    println!("|---|---:|---:|---:|---:|---:|---|---|");
    for l in lines {
        println!(
            "| {} | {} | {:.2} | {:.0} | {} | {:.0} | {} | {} |",
            l.what,
            l.rows,
            l.cpu.as_secs_f64(),
            l.rate(),
            l.batch.map_or("-".to_string(), |b| format!("{b:.0}")),
            l.goal,
            if l.rate() >= l.goal { "yes" } else { "no" },
            l.note
        );
    }
}

fn selected(part: &str) -> bool {
    match std::env::var("BENCH_NEXMARK_ONLY") {
        Ok(only) => only.split(',').any(|p| p.trim() == part),
        Err(_) => true,
    }
}

// ---------------------------------------------------------------------------
// Generator part

async fn run_query(
    q: &Query,
    events: usize,
    tables: &BTreeMap<&'static str, Vec<RecordBatch>>,
) -> anyhow::Result<Line> {
    let rows: usize = q
        .tables
        .iter()
        .map(|t| tables[t.name()].iter().map(|b| b.num_rows()).sum::<usize>())
        .sum();
    let (batch_cpu, expected) = run_batch(q, tables).await?;

    let (server, client) = Server::start().await?;
    for t in q.tables {
        client.batch_execute(&t.create_source(events)).await?;
    }
    let (rss_before, _) = server.rss();
    let cpu0 = server.cpu();
    let start = Instant::now();
    client
        .batch_execute(&format!("CREATE MATERIALIZED VIEW v AS {}", q.view))
        .await?;
    let check = check_sql(q.check, "v");
    let (cpu1, wall, max_rss) = wait_done(&server, &client, &check, &expected, start).await?;
    let cpu = cpu1 - cpu0;
    let (_, hwm) = server.rss();
    let line = Line {
        what: q.name.to_string(),
        rows,
        cpu,
        batch: Some(rows as f64 / batch_cpu.as_secs_f64()),
        goal: q.goal,
        note: format!(
            "wall {:.1} s, {:.2} cores; RSS {rss_before:.0} → max {max_rss:.0} MiB (HWM {hwm:.0})",
            wall.as_secs_f64(),
            cpu.as_secs_f64() / wall.as_secs_f64().max(1e-3)
        ),
    };
    println!(
        "{}: {} rows, server CPU {:.2} s → {:.0} rows/CPU-s; DataFusion {:.3} s → {:.0}; {}",
        q.name,
        rows,
        cpu.as_secs_f64(),
        line.rate(),
        batch_cpu.as_secs_f64(),
        line.batch.unwrap_or(0.0),
        line.note
    );
    Ok(line)
}

/// RSS while `events` flow through one source and three views.
async fn run_memory(events: usize, bids: usize) -> anyhow::Result<()> {
    let (server, client) = Server::start().await?;
    client
        .batch_execute(&Table::Bid.create_source(events))
        .await?;
    let (idle_rss, _) = server.rss();
    let cpu0 = server.cpu();
    let start = Instant::now();
    client
        .batch_execute(
            "CREATE MATERIALIZED VIEW c AS SELECT count(*) AS n FROM bid;
             CREATE MATERIALIZED VIEW f AS SELECT auction, price FROM bid WHERE auction % 123 = 0;
             CREATE MATERIALIZED VIEW g AS SELECT channel, count(*) AS n, sum(price) AS s \
                FROM bid GROUP BY channel;",
        )
        .await?;
    println!("\nmemory: {events} events ({bids} bids) through a source and three views");
    println!("| seconds | bids in view c | server RSS MiB |");
    println!("|---:|---:|---:|");
    let mut samples = Vec::new();
    let mut last_print = 0usize;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let n = client
            .query_one("SELECT n FROM c", &[])
            .await
            .ok()
            .and_then(|r| r.get::<_, Option<i64>>(0))
            .unwrap_or(0) as usize;
        let (rss, _) = server.rss();
        samples.push(rss);
        if n >= last_print + bids / 8 || n >= bids {
            println!("| {:.1} | {n} | {rss:.0} |", start.elapsed().as_secs_f64());
            last_print = n;
        }
        if n >= bids {
            break;
        }
        if start.elapsed() > Duration::from_secs(1800) {
            bail!("memory run gave up at {n} bids\n{}", server.log_tail());
        }
    }
    client.batch_execute("FLUSH").await?;
    let cpu = server.cpu() - cpu0;
    let (rss, hwm) = server.rss();
    let max = samples.iter().copied().fold(0.0, f64::max);
    let mid = samples[samples.len() / 2];
    println!(
        "memory (three views): idle before {idle_rss:.0} MiB, middle {mid:.0} MiB, \
         max sampled {max:.0} MiB, after FLUSH {rss:.0} MiB, VmHWM {hwm:.0} MiB; \
         server CPU {:.1} s ({:.0} bids/CPU-s for all three views)",
        cpu.as_secs_f64(),
        bids as f64 / cpu.as_secs_f64()
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// Kafka part

/// Nexmark bids as JSON payloads, as a Kafka producer would send them.
struct BidJson {
    events: nexmark::EventGenerator,
    line: String,
}

impl BidJson {
    fn new() -> BidJson {
        let config = nexmark::config::NexmarkConfig {
            base_time: generator::DEFAULT_BASE_TIME_MS as u64,
            ..Default::default()
        };
        BidJson {
            events: nexmark::EventGenerator::new(config)
                .with_type_filter(nexmark::event::EventType::Bid),
            line: String::with_capacity(512),
        }
    }

    /// The next bid's JSON, its auction and its price.
    fn next(&mut self) -> (&str, i64, i64) {
        let Some(nexmark::event::Event::Bid(b)) = self.events.next() else {
            unreachable!("an unbounded generator filtered to bids")
        };
        let ts = chrono::DateTime::from_timestamp_millis(b.date_time as i64)
            .expect("a valid time")
            .naive_utc()
            .format("%Y-%m-%d %H:%M:%S%.3f");
        self.line.clear();
        let _ = write!(
            self.line,
            r#"{{"auction":{},"bidder":{},"price":{},"channel":"{}","url":"{}","date_time":"{ts}","extra":"{}"}}"#,
            b.auction, b.bidder, b.price, b.channel, b.url, b.extra
        );
        (&self.line, b.auction as i64, b.price as i64)
    }
}

fn kafka_producer(bootstrap: &str) -> anyhow::Result<ThreadedProducer<DefaultProducerContext>> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .create()?)
}

/// Produces `count` bids round-robin over `positions.len()` partitions,
/// never more than `in_flight` records ahead of a partition's position
/// (`None`: flat out). Returns the expected (count, sum of price) of the
/// filtered view `auction % 123 = 0` and the bytes produced.
fn produce_bids(
    producer: &ThreadedProducer<DefaultProducerContext>,
    topic: &str,
    count: usize,
    positions: &[AtomicI64],
    in_flight: Option<i64>,
    stop: &AtomicBool,
) -> (i64, i64, usize) {
    let parts = positions.len();
    let mut produced = vec![0i64; parts];
    let mut bids = BidJson::new();
    let (mut n, mut sum, mut bytes) = (0i64, 0i64, 0usize);
    let mut p = 0;
    let mut i = 0;
    while i < count {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if let Some(limit) = in_flight {
            // The next partition with room, or wait for the server.
            let mut tried = 0;
            while produced[p] - positions[p].load(Ordering::Relaxed) >= limit && tried < parts {
                p = (p + 1) % parts;
                tried += 1;
            }
            if tried == parts {
                std::thread::sleep(Duration::from_millis(2));
                continue;
            }
        }
        let (json, auction, price) = bids.next();
        if auction % 123 == 0 {
            n += 1;
            sum += price;
        }
        bytes += json.len();
        let mut record: BaseRecord<'_, (), str> =
            BaseRecord::to(topic).payload(json).partition(p as i32);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((e, r)) => {
                    assert_eq!(
                        e.rdkafka_error_code(),
                        Some(rdkafka::types::RDKafkaErrorCode::QueueFull),
                        "producing: {e}"
                    );
                    // Queue full: let librdkafka send.
                    record = r;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
        produced[p] += 1;
        p = (p + 1) % parts;
        i += 1;
    }
    let _ = producer.flush(Duration::from_secs(60));
    (n, sum, bytes)
}

async fn kafka_source(client: &Client, bootstrap: &str, topic: &str) -> anyhow::Result<()> {
    client
        .batch_execute(&format!(
            "CREATE SOURCE bid ({BID_COLUMNS}) WITH (connector = 'kafka', topic = '{topic}', \
             properties.bootstrap.server = '{bootstrap}', scan.startup.mode = 'earliest') \
             FORMAT PLAIN ENCODE JSON"
        ))
        .await?;
    Ok(())
}

/// Per-partition positions of the server's reader.
async fn read_positions(client: &Client, positions: &[AtomicI64]) -> anyhow::Result<(i64, i64)> {
    let rows = client
        .query(
            "SELECT partition, committed_offset, lag FROM streamlake.source_partitions",
            &[],
        )
        .await?;
    let (mut total, mut lag) = (0, 0);
    for r in rows {
        let p: i32 = r.get(0);
        let o: i64 = r.get::<_, Option<i64>>(1).unwrap_or(0);
        lag += r.get::<_, Option<i64>>(2).unwrap_or(0);
        if let Some(slot) = positions.get(p as usize) {
            slot.store(o, Ordering::Relaxed);
        }
        total += o;
    }
    Ok((total, lag))
}

const KAFKA_VIEW: &str = "SELECT auction, price FROM bid WHERE auction % 123 = 0";

async fn run_kafka(count: usize, partitions: usize) -> anyhow::Result<Line> {
    let cluster = MockCluster::new(1)?;
    cluster.create_topic("bids", partitions as i32, 1)?;
    let bootstrap = cluster.bootstrap_servers();
    let (server, client) = Server::start().await?;
    kafka_source(&client, &bootstrap, "bids").await?;

    let positions: Arc<Vec<AtomicI64>> =
        Arc::new((0..partitions).map(|_| AtomicI64::new(0)).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let cpu0 = server.cpu();
    let start = Instant::now();
    client
        .batch_execute(&format!("CREATE MATERIALIZED VIEW v AS {KAFKA_VIEW}"))
        .await?;
    let producer = {
        let (positions, stop, bootstrap) = (positions.clone(), stop.clone(), bootstrap.clone());
        std::thread::spawn(move || -> anyhow::Result<(i64, i64, usize)> {
            let producer = kafka_producer(&bootstrap)?;
            Ok(produce_bids(
                &producer,
                "bids",
                count,
                &positions,
                Some(KAFKA_IN_FLIGHT),
                &stop,
            ))
        })
    };
    let mut max_rss: f64 = 0.0;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (done, lag) = read_positions(&client, &positions).await?;
        if std::env::var("BENCH_DEBUG").is_ok() {
            eprintln!(
                "{:.1} done {done} lag {lag} cpu {:?}",
                start.elapsed().as_secs_f64(),
                server.cpu()
            );
        }
        max_rss = max_rss.max(server.rss().0);
        if done as usize >= count {
            break;
        }
        if start.elapsed() > Duration::from_secs(1800) || producer.is_finished() && done == 0 {
            stop.store(true, Ordering::Relaxed);
            bail!("kafka run stuck at {done}\n{}", server.log_tail());
        }
    }
    client.batch_execute("FLUSH").await?;
    let cpu = server.cpu() - cpu0;
    let wall = start.elapsed();
    let (n, sum, bytes) = producer.join().expect("producer thread")?;
    let got = check_values(
        &client,
        "SELECT CAST(count(*) AS BIGINT), CAST(sum(price) AS BIGINT) FROM v",
    )
    .await?;
    anyhow::ensure!(got == [n, sum], "view has {got:?}, produced {:?}", [n, sum]);
    let dead = check_values(
        &client,
        "SELECT CAST(count(*) AS BIGINT) FROM streamlake.dead_letters",
    )
    .await?;
    let line = Line {
        what: format!("Kafka JSON → q2 filter ({partitions} partitions)"),
        rows: count,
        cpu,
        batch: None,
        goal: 500_000.0,
        note: format!(
            "{} B/record; wall {:.1} s, {:.2} cores; max RSS {max_rss:.0} MiB; {} dead letters",
            bytes / count,
            wall.as_secs_f64(),
            cpu.as_secs_f64() / wall.as_secs_f64(),
            dead[0]
        ),
    };
    println!(
        "kafka: {count} bids, server CPU {:.2} s → {:.0} bids/CPU-s; {}",
        cpu.as_secs_f64(),
        line.rate(),
        line.note
    );
    Ok(line)
}

/// Server RSS while a Kafka source reads a backlog that fills every
/// partition of the mock cluster.
async fn run_kafka_behind(partitions: usize) -> anyhow::Result<()> {
    // ~4.3 MB of each partition's 5 MiB.
    let per_partition = 15_000;
    let count = per_partition * partitions;
    let cluster = MockCluster::new(1)?;
    cluster.create_topic("backlog", partitions as i32, 1)?;
    let bootstrap = cluster.bootstrap_servers();
    let (server, client) = Server::start().await?;
    kafka_source(&client, &bootstrap, "backlog").await?;
    let positions: Vec<AtomicI64> = (0..partitions).map(|_| AtomicI64::new(0)).collect();
    let producer = kafka_producer(&bootstrap)?;
    let (n, sum, _) = produce_bids(
        &producer,
        "backlog",
        count,
        &positions,
        None,
        &AtomicBool::new(false),
    );
    let (rss_before, _) = server.rss();
    client
        .batch_execute(&format!("CREATE MATERIALIZED VIEW v AS {KAFKA_VIEW}"))
        .await?;
    let start = Instant::now();
    let mut max_rss: f64 = 0.0;
    let mut max_lag = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (done, lag) = read_positions(&client, &positions).await?;
        max_rss = max_rss.max(server.rss().0);
        max_lag = max_lag.max(lag);
        if done as usize >= count {
            break;
        }
        if start.elapsed() > Duration::from_secs(1800) {
            bail!("backlog run stuck at {done}\n{}", server.log_tail());
        }
    }
    client.batch_execute("FLUSH").await?;
    let got = check_values(
        &client,
        "SELECT CAST(count(*) AS BIGINT), CAST(sum(price) AS BIGINT) FROM v",
    )
    .await?;
    anyhow::ensure!(got == [n, sum], "view has {got:?}, produced {:?}", [n, sum]);
    let (rss, hwm) = server.rss();
    println!(
        "memory (Kafka consumer behind): backlog {count} records in {partitions} partitions; \
         server RSS before the view {rss_before:.0} MiB, max sampled while catching up \
         {max_rss:.0} MiB (largest lag seen {max_lag}), after {rss:.0} MiB, VmHWM {hwm:.0} MiB; \
         caught up in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

fn machine() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!("load average {}", load.join(" "))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let events_override = std::env::var("BENCH_NEXMARK_EVENTS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok());
    let events_of = |q: &Query| events_override.unwrap_or(q.events);
    let memory_events = events_override.unwrap_or(10_000_000);
    let kafka_events = env_usize("BENCH_KAFKA_EVENTS", 5_000_000);
    let kafka_partitions = env_usize("BENCH_KAFKA_PARTITIONS", 16);
    println!("nexmark bench; {}", machine());

    let mut lines = Vec::new();
    let wanted: Vec<&Query> = QUERIES.iter().filter(|q| selected(q.name)).collect();
    if !wanted.is_empty() {
        // Each table once, for the largest event count; smaller counts
        // are its prefixes (an event's rows depend only on its number).
        let mut tables = BTreeMap::new();
        for t in [Table::Bid, Table::Auction] {
            let Some(events) = wanted
                .iter()
                .filter(|q| q.tables.contains(&t))
                .map(|q| events_of(q))
                .max()
            else {
                continue;
            };
            let (batches, cpu) = generate(t, events)?;
            let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
            anyhow::ensure!(
                rows == t.rows(events),
                "{t:?}: {rows} rows from {events} events"
            );
            println!(
                "generator alone ({}): {rows} rows in {:.2} s CPU → {:.0} rows/CPU-s",
                t.kind(),
                cpu.as_secs_f64(),
                rows as f64 / cpu.as_secs_f64()
            );
            tables.insert(t.name(), batches);
        }
        for q in wanted {
            let events = events_of(q);
            let prefix = q
                .tables
                .iter()
                .map(|t| (t.name(), prefix(&tables[t.name()], t.rows(events))))
                .collect();
            lines.push(run_query(q, events, &prefix).await?);
            println!("  ({})", machine());
        }
    }
    if selected("memory") {
        run_memory(memory_events, Table::Bid.rows(memory_events)).await?;
        println!("  ({})", machine());
    }
    if selected("kafka") {
        lines.push(run_kafka(kafka_events, kafka_partitions).await?);
        println!("  ({})", machine());
        run_kafka_behind(64).await?;
        println!("  ({})", machine());
    }
    print_table(&lines);
    Ok(())
}

/// The first `rows` rows of `batches`.
fn prefix(batches: &[RecordBatch], mut rows: usize) -> Vec<RecordBatch> {
    let mut out = Vec::new();
    for b in batches {
        if rows == 0 {
            break;
        }
        let n = b.num_rows().min(rows);
        out.push(b.slice(0, n));
        rows -= n;
    }
    out
}
