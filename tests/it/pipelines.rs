//! The background documents' pipelines (sql/pipelines/*.sql) run as users
//! would run them: each file statement by statement over pgwire against a
//! real tansu broker, then a deterministic event sequence produced to its
//! topic — exact duplicates, re-stamped retries, out-of-order and late
//! events, NULLs and malformed records — with a FLUSH per round.
//!
//! The oracle is PostgreSQL fed the same JSON (jsonb_populate_record) for
//! every record that decodes: the files' views without event-time windows
//! are created there verbatim (as plain views); a view with TUMBLE or HOP
//! gets the same query over a PostgreSQL rendering of the windows that
//! keeps only what the watermark rule says the view holds. With one
//! partition and one FLUSH per round, round r's records are judged by the
//! watermark after round r-1 (the largest event time of earlier rounds
//! minus the delay): a record's window [s, e) is closed for it when
//! e <= that watermark (it goes to streamlake.late_events instead); an EMIT
//! ON WINDOW CLOSE view holds the windows with e <= the current watermark.
//! Each round is checked to give the same answer wherever a barrier falls
//! inside it. Dead letters are checked by offset and payload.

use std::time::Instant;

use rdkafka::producer::FutureProducer;
use tokio_postgres::Client;

use crate::broker::{Broker, Record, produce};
use crate::oracle::Postgres;
use crate::support::{Rng, Server, rows};
use crate::views::{diff, normalized};

/// 2026-01-13 14:00:00 UTC.
const BASE: i64 = 1_768_312_800;

fn iso(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn pg_ts(secs: Option<i64>) -> String {
    match secs {
        Some(s) => format!("TIMESTAMPTZ '{}'", iso(s)),
        None => "NULL::timestamptz".into(),
    }
}

/// One Kafka record: its payload, whether it decodes (else it must be a
/// dead letter) and its event time (None: no time, or it does not decode).
#[derive(Clone)]
struct Ev {
    json: String,
    valid: bool,
    ts: Option<i64>,
}

/// A JSON object from (key, value-as-JSON) pairs; a None value is written
/// as null or left out (both are NULL), alternately.
fn obj(fields: &[(&str, Option<String>)], omit_nulls: bool) -> String {
    let mut parts = Vec::new();
    for (k, v) in fields {
        match v {
            Some(v) => parts.push(format!("\"{k}\": {v}")),
            None if omit_nulls => {}
            None => parts.push(format!("\"{k}\": null")),
        }
    }
    format!("{{{}}}", parts.join(", "))
}

fn s(v: &str) -> Option<String> {
    Some(format!("\"{v}\""))
}

fn n(v: impl std::fmt::Display) -> Option<String> {
    Some(v.to_string())
}

fn ev(fields: &[(&str, Option<String>)], ts: Option<i64>, rng: &mut Rng) -> Ev {
    ev_at(fields, "ts", ts, rng)
}

/// [`ev`] with the time under another key.
fn ev_at(fields: &[(&str, Option<String>)], key: &str, ts: Option<i64>, rng: &mut Rng) -> Ev {
    let mut f: Vec<(&str, Option<String>)> = fields.to_vec();
    f.push((key, ts.map(|t| format!("\"{}\"", iso(t)))));
    Ev {
        json: obj(&f, rng.below(2) == 0),
        valid: true,
        ts,
    }
}

/// Records that must become dead letters.
const MALFORMED: &[&str] = &[
    "not json at all",
    "[1, 2, 3]",
    "",
    "{\"ts\": \"noon\"}",
    "{\"a\": 1}{\"a\": 2}",
    "{\"truncated\": ",
];

fn malformed(rng: &mut Rng) -> Ev {
    Ev {
        json: MALFORMED[rng.below(MALFORMED.len() as u64) as usize].to_string(),
        valid: false,
        ts: None,
    }
}

/// Splits a SQL script on `;` outside quotes and comments; pieces holding
/// only comments and blanks are dropped.
fn split_sql(sql: &str) -> Vec<String> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let (mut start, mut i) = (0, 0);
    let mut has_code = false;
    while i < b.len() {
        match b[i] {
            b'\'' | b'"' => {
                let q = b[i];
                i += 1;
                while i < b.len() {
                    if b[i] == q {
                        if i + 1 < b.len() && b[i + 1] == q {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                has_code = true;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 1;
            }
            b';' => {
                if has_code {
                    out.push(sql[start..i].trim().to_string());
                }
                start = i + 1;
                has_code = false;
            }
            c if !c.is_ascii_whitespace() => has_code = true,
            _ => {}
        }
        i += 1;
    }
    if has_code {
        out.push(sql[start..].trim().to_string());
    }
    out
}

/// The statement without the comment lines before it, as psql sends it
/// (psql drops comments while its query buffer is empty). Sent with them,
/// CREATE SOURCE fails: see `create_source_after_a_comment`.
fn without_leading_comments(stmt: &str) -> String {
    let mut lines = stmt.lines().peekable();
    while lines
        .peek()
        .is_some_and(|l| l.trim().is_empty() || l.trim_start().starts_with("--"))
    {
        lines.next();
    }
    lines.collect::<Vec<_>>().join("\n")
}

/// The statement's words without comments, upper-cased (for classifying).
fn head(stmt: &str) -> String {
    let code: Vec<&str> = stmt
        .lines()
        .map(|l| l.split("--").next().unwrap())
        .filter(|l| !l.trim().is_empty())
        .collect();
    code.join(" ")
        .split_whitespace()
        .take(8)
        .collect::<Vec<_>>()
        .join(" ")
        .to_uppercase()
}

/// PostgreSQL's rendering of TUMBLE/HOP over `input` (a relation with
/// `ts` and `arrival_wm`): one row per (row, window), only the windows the
/// view holds — not closed when the row arrived, and for EMIT ON WINDOW
/// CLOSE closed now (`wm.w`).
fn pg_windows(input: &str, slide: &str, steps: u32, size: &str, eowc: bool) -> String {
    let closed = if eowc {
        " AND x.window_end <= (SELECT w FROM wm)"
    } else {
        ""
    };
    format!(
        "(SELECT * FROM {} x WHERE (x.arrival_wm IS NULL OR x.window_end > x.arrival_wm){closed}) AS windowed",
        all_windows(input, slide, steps, size)
    )
}

/// Every (row, window) pair of `input`, with window_start and window_end.
fn all_windows(input: &str, slide: &str, steps: u32, size: &str) -> String {
    format!(
        "(SELECT i.*, b.ws AS window_start, b.ws + INTERVAL '{size}' AS window_end \
         FROM {input} i, LATERAL (SELECT date_bin(INTERVAL '{slide}', i.ts, TIMESTAMPTZ 'epoch') \
         - k * INTERVAL '{slide}' AS ws FROM generate_series(0, {last}) AS k) b \
         WHERE i.ts IS NOT NULL)",
        last = steps - 1
    )
}

/// The late_events rows a windowed view should have: its input's rows
/// whose window had closed when they arrived.
fn pg_late(view: &str, input: &str, slide: &str, steps: u32, size: &str) -> String {
    format!(
        "SELECT '{view}', x.ts, x.arrival_wm, x.window_start, x.window_end FROM {} x \
         WHERE x.arrival_wm IS NOT NULL AND x.window_end <= x.arrival_wm",
        all_windows(input, slide, steps, size)
    )
}

const SL_LATE: &str = "SELECT view, event_time, watermark, window_start, window_end \
                       FROM streamlake.late_events";

/// One pipeline: broker, oracle, server and the topic feed.
struct Rig {
    c: Client,
    pg: Client,
    views: Vec<String>,
    feed: Feed,
    started: Instant,
    /// Rows per view at the last check (reported).
    counts: String,
    server: Server,
    _oracle: Postgres,
    _broker: Broker,
}

struct Feed {
    source: String,
    topic: String,
    table: String,
    delay: Option<i64>,
    max_ts: Option<i64>,
    offset: i64,
    producer: FutureProducer,
    /// (offset, payload) of every record that must be a dead letter.
    bad: Vec<(i64, String)>,
    rounds: usize,
}

impl Feed {
    fn watermark(&self) -> Option<i64> {
        Some(self.max_ts? - self.delay?)
    }

    /// Produces one round to the topic and inserts its decodable records
    /// into the oracle with their offset and arrival watermark; FLUSH.
    async fn round(&mut self, c: &Client, pg: &Client, events: &[Ev]) {
        let w_prev = self.watermark();
        let mut running = self.max_ts;
        let mut values = Vec::new();
        for e in events {
            let off = self.offset;
            self.offset += 1;
            if let (Some(t), Some(d)) = (e.ts, self.delay) {
                // Wherever a barrier falls in the round, the record must be
                // judged the same: either nothing before it in the round
                // raised the watermark, or it is not late even so.
                let rw = running.map(|m| m - d);
                if rw != w_prev {
                    assert!(
                        t >= rw.unwrap(),
                        "generator: round {} record {off} at {} depends on barrier placement",
                        self.rounds,
                        iso(t)
                    );
                }
            }
            if let Some(t) = e.ts {
                running = Some(running.map_or(t, |m| m.max(t)));
            }
            if e.valid {
                values.push(format!(
                    "('{}', {off}, {})",
                    e.json.replace('\'', "''"),
                    pg_ts(w_prev)
                ));
            } else {
                self.bad.push((off, e.json.clone()));
            }
        }
        if !values.is_empty() {
            let t = &self.table;
            pg.batch_execute(&format!(
                "INSERT INTO {t} SELECT r.* FROM (VALUES {}) AS v(j, off, wm), \
                 jsonb_populate_record(NULL::{t}, v.j::jsonb || jsonb_build_object(\
                 'kafka_offset', v.off, 'kafka_partition', 0, 'arrival_wm', v.wm)) AS r",
                values.join(", ")
            ))
            .await
            .unwrap();
        }
        produce(
            &self.producer,
            &self.topic,
            events
                .iter()
                .map(|e| Record::new(e.json.as_bytes()))
                .collect(),
        )
        .await;
        c.batch_execute("FLUSH").await.unwrap();
        self.max_ts = running;
        if let Some(w) = self.watermark() {
            // The watermark the oracle is given is the source's.
            let got = rows(
                c,
                &format!(
                    "SELECT watermark FROM streamlake.source_partitions WHERE source = '{}'",
                    self.source
                ),
            )
            .await;
            let want = chrono::DateTime::from_timestamp(w, 0)
                .unwrap()
                .format("%Y-%m-%d %H:%M:%S+00")
                .to_string();
            assert_eq!(
                got,
                vec![vec![want]],
                "watermark after round {}",
                self.rounds
            );
        }
        pg.batch_execute(&format!("UPDATE wm SET w = {}", pg_ts(self.watermark())))
            .await
            .unwrap();
        self.rounds += 1;
    }
}

/// Starts a broker, the oracle and a server; runs the pipeline file on the
/// server and its PostgreSQL rendering on the oracle.
///
/// `pg_table` is the oracle's table for the topic's records (named like the
/// source, with kafka_partition, kafka_offset and arrival_wm columns);
/// `pg_setup` runs after it; `pg_views` replaces the queries of the
/// windowed views by name.
async fn rig(
    file: &str,
    placeholder: &str,
    source: &str,
    delay: Option<i64>,
    pg_table: &str,
    pg_setup: &[&str],
    pg_views: &[(&str, String)],
) -> Rig {
    let started = Instant::now();
    let broker = Broker::start();
    let topic = format!("{source}_events");
    broker.create_topic(&topic, 1).await;
    let oracle = Postgres::start();
    let pg = oracle.client().await;
    pg.batch_execute("SET TIME ZONE 'UTC'").await.unwrap();
    pg.batch_execute(pg_table).await.unwrap();
    pg.batch_execute("CREATE TABLE wm (w TIMESTAMPTZ); INSERT INTO wm VALUES (NULL)")
        .await
        .unwrap();
    for sql in pg_setup {
        pg.batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("postgres: {sql}: {e}"));
    }
    let server = Server::start();
    let c = server.client().await;
    let path = format!("{}/sql/pipelines/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("{{BROKER}}", &broker.bootstrap())
        .replace(placeholder, &topic);
    assert!(!text.contains("{{"), "{file}: a placeholder is left");
    let mut views = Vec::new();
    for stmt in split_sql(&text) {
        let stmt = without_leading_comments(&stmt);
        c.batch_execute(&stmt)
            .await
            .unwrap_or_else(|e| panic!("{file}: {stmt}\n{e:?}"));
        let h = head(&stmt);
        if h.starts_with("CREATE SOURCE")
            || (h.starts_with("CREATE TABLE") && stmt.contains("connector"))
        {
            continue;
        }
        let pg_stmt = if let Some(rest) = h.strip_prefix("CREATE MATERIALIZED VIEW ") {
            let name = rest.split_whitespace().next().unwrap().to_lowercase();
            views.push(name.clone());
            match pg_views.iter().find(|(n, _)| *n == name) {
                Some((_, q)) => format!("CREATE VIEW {name} AS {q}"),
                None => {
                    assert!(
                        !h.contains("TUMBLE") && !stmt.contains("HOP("),
                        "{name} needs a PostgreSQL rendering"
                    );
                    stmt.replacen("MATERIALIZED VIEW", "VIEW", 1)
                }
            }
        } else {
            stmt.clone()
        };
        pg.batch_execute(&pg_stmt)
            .await
            .unwrap_or_else(|e| panic!("postgres: {pg_stmt}\n{e}"));
    }
    let feed = Feed {
        source: source.to_string(),
        topic,
        table: source.to_string(),
        delay,
        max_ts: None,
        offset: 0,
        producer: broker.producer(),
        bad: Vec::new(),
        rounds: 0,
    };
    Rig {
        c,
        pg,
        views,
        feed,
        started,
        counts: String::new(),
        server,
        _oracle: oracle,
        _broker: broker,
    }
}

impl Rig {
    async fn round(&mut self, events: &[Ev]) {
        self.feed.round(&self.c, &self.pg, events).await;
    }

    /// A clean stop and a start on the same data directory.
    async fn restart(&mut self) {
        self.server.stop();
        self.server.restart();
        self.c = self.server.client().await;
    }

    /// Runs a statement on both (a reference-table change) and FLUSHes.
    async fn both(&self, sql: &str) {
        self.c.batch_execute(sql).await.unwrap();
        self.pg.batch_execute(sql).await.unwrap();
        self.c.batch_execute("FLUSH").await.unwrap();
    }

    /// Same rows from a streamlake query and a PostgreSQL query.
    async fn same(&self, label: &str, sl: &str, pg: &str) -> usize {
        let got = normalized(rows(&self.c, sl).await);
        let want = normalized(rows(&self.pg, pg).await);
        diff(0, self.feed.rounds, label, "PostgreSQL", &got, &want);
        got.len()
    }

    /// Every view of the file equals its query on the oracle.
    async fn check_views(&mut self) {
        let mut counts = Vec::new();
        for v in &self.views {
            let q = format!("SELECT * FROM {v}");
            counts.push(format!("{v} {}", self.same(v, &q, &q).await));
        }
        self.counts = counts.join(", ");
    }

    async fn check_dead_letters(&self) {
        let got = rows(
            &self.c,
            &format!(
                "SELECT \"offset\", payload, view FROM streamlake.dead_letters \
                 WHERE source = '{}' ORDER BY \"offset\"",
                self.feed.source
            ),
        )
        .await;
        let want: Vec<Vec<String>> = self
            .feed
            .bad
            .iter()
            .map(|(o, p)| {
                let hex: String = p.bytes().map(|b| format!("{b:02x}")).collect();
                vec![o.to_string(), format!("\\x{hex}"), "NULL".into()]
            })
            .collect();
        assert_eq!(got, want, "dead letters of {}", self.feed.source);
    }

    fn done(&self, name: &str) {
        eprintln!(
            "pipeline {name}: {} rounds, {} records ({} dead letters), {:.1?}; rows: {}",
            self.feed.rounds,
            self.feed.offset,
            self.feed.bad.len(),
            self.started.elapsed(),
            self.counts
        );
    }
}

/// Event times advancing by `step` seconds per round; normal records fall
/// in [frontier - spread, frontier + ahead], late ones below the previous
/// round's watermark.
struct Clock {
    step: i64,
    spread: i64,
    ahead: i64,
}

impl Clock {
    fn frontier(&self, round: i64) -> i64 {
        BASE + 600 + round * self.step
    }

    fn normal(&self, round: i64, rng: &mut Rng) -> i64 {
        self.frontier(round) - self.spread + rng.below((self.spread + self.ahead) as u64) as i64
    }
}

fn amount(rng: &mut Rng, max: u64) -> String {
    format!("{}.{:02}", 1 + rng.below(max), rng.below(4) * 25)
}

// ---------------------------------------------------------------- trades

#[derive(Clone)]
struct Trade {
    id: String,
    account: String,
    symbol: Option<String>,
    amount: Option<String>,
    status: String,
    ts: Option<i64>,
}

impl Trade {
    fn ev(&self, rng: &mut Rng) -> Ev {
        ev(
            &[
                ("trade_id", s(&self.id)),
                ("account", s(&self.account)),
                ("symbol", self.symbol.as_deref().and_then(s)),
                ("amount", self.amount.clone().and_then(n)),
                ("status", s(&self.status)),
            ],
            self.ts,
            rng,
        )
    }
}

fn trade_rounds() -> Vec<Vec<Ev>> {
    let mut rng = Rng(0x7ADE_5EED);
    let clock = Clock {
        step: 150,
        spread: 240,
        ahead: 60,
    };
    let delay = 300;
    let symbols = ["AAPL", "MSFT", "SAP", "BMW"];
    let mut sent: Vec<(Ev, Trade)> = Vec::new();
    let mut max_ts: Option<i64> = None;
    let mut rounds = Vec::new();
    let mut next = 0;
    for r in 0..7i64 {
        let mut round = Vec::new();
        let floor = clock.frontier(r) - clock.spread;
        // Late records first: judged by the previous round's watermark.
        if let Some(m) = max_ts {
            let w = m - delay;
            for _ in 0..3 {
                next += 1;
                let t = Trade {
                    id: format!("T-{next:04}"),
                    account: format!("A-{}", rng.below(5)),
                    symbol: Some(rng.pick(&symbols).to_string()),
                    amount: Some(amount(&mut rng, 900)),
                    status: "filled".into(),
                    ts: Some(w - 1 - rng.below(400) as i64),
                };
                let e = t.ev(&mut rng);
                round.push(e.clone());
                sent.push((e, t));
            }
            // A late redelivery of an old trade: already counted.
            let old = sent[rng.below(sent.len() as u64) as usize].0.clone();
            round.push(old);
        }
        for _ in 0..22 {
            let recent: Vec<(Ev, Trade)> = sent
                .iter()
                .filter(|(e, _)| e.ts.is_some_and(|t| t >= floor))
                .cloned()
                .collect();
            let e = match rng.below(20) {
                0 => malformed(&mut rng),
                // Redelivered as is.
                1 | 2 if !recent.is_empty() => {
                    recent[rng.below(recent.len() as u64) as usize].0.clone()
                }
                3 if !recent.is_empty() => {
                    // A retry re-stamped 30 s later: not the first event.
                    let mut t = recent[rng.below(recent.len() as u64) as usize].1.clone();
                    t.ts = t.ts.map(|x| x + 30);
                    t.ev(&mut rng)
                }
                _ => {
                    next += 1;
                    let t = Trade {
                        id: format!("T-{next:04}"),
                        account: format!("A-{}", rng.below(5)),
                        symbol: match rng.below(25) {
                            0 => None,
                            _ => Some(rng.pick(&symbols).to_string()),
                        },
                        amount: match rng.below(15) {
                            0 => None,
                            1 => Some("-5.00".to_string()),
                            _ => Some(amount(&mut rng, 900)),
                        },
                        status: match rng.below(10) {
                            0 => "cancelled",
                            1 | 2 => "pending",
                            _ => "filled",
                        }
                        .into(),
                        ts: match rng.below(30) {
                            0 => None,
                            _ => Some(clock.normal(r, &mut rng)),
                        },
                    };
                    let e = t.ev(&mut rng);
                    sent.push((e.clone(), t));
                    e
                }
            };
            round.push(e);
        }
        for e in &round {
            if let Some(t) = e.ts {
                max_ts = Some(max_ts.map_or(t, |m| m.max(t)));
            }
        }
        rounds.push(round);
    }
    rounds
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_trades_dedup_and_final_minute_volumes() {
    let volume_1m = format!(
        "SELECT symbol, window_start, window_end, count(*) AS trades, sum(amount) AS volume, \
         min(amount) AS min_amount, max(amount) AS max_amount FROM {} \
         GROUP BY symbol, window_start, window_end",
        pg_windows("trades_silver_arrivals", "1 minute", 1, "1 minute", true)
    );
    let mut rig = rig(
        "trades.sql",
        "{{TRADES_TOPIC}}",
        "trades",
        Some(300),
        "CREATE TABLE trades (kafka_partition INT, kafka_offset BIGINT, arrival_wm TIMESTAMPTZ, \
         trade_id VARCHAR, account VARCHAR, symbol VARCHAR, amount NUMERIC(18, 4), \
         status VARCHAR, ts TIMESTAMPTZ)",
        // The silver rows with the arrival watermark of the record that
        // made them (the first delivery of the earliest event).
        &["CREATE VIEW trades_silver_arrivals AS SELECT * FROM ( \
           SELECT *, ROW_NUMBER() OVER (PARTITION BY trade_id ORDER BY ts, kafka_offset) AS rn \
           FROM trades WHERE trade_id IS NOT NULL AND symbol IS NOT NULL AND ts IS NOT NULL \
           AND amount > 0 AND status <> 'cancelled') AS t WHERE rn = 1"],
        &[("volume_1m", volume_1m)],
    )
    .await;
    let late = pg_late(
        "volume_1m",
        "trades_silver_arrivals",
        "1 minute",
        1,
        "1 minute",
    );
    for round in trade_rounds() {
        rig.round(&round).await;
        rig.check_views().await;
        rig.same("late_events", SL_LATE, &late).await;
    }
    // The sequence did exercise what it is meant to.
    // The late trades themselves are kept: the columns the view reads.
    rig.same(
        "late_events rows",
        "SELECT event_time, row->>'symbol', row->>'amount' FROM streamlake.late_events",
        &format!(
            "SELECT x.ts, x.symbol, x.amount FROM {} x \
             WHERE x.arrival_wm IS NOT NULL AND x.window_end <= x.arrival_wm",
            all_windows("trades_silver_arrivals", "1 minute", 1, "1 minute")
        ),
    )
    .await;
    let closed = rig
        .same(
            "volume_1m",
            "SELECT * FROM volume_1m",
            "SELECT * FROM volume_1m",
        )
        .await;
    let late_rows = rig.same("late_events", SL_LATE, &late).await;
    assert!(
        closed > 10 && late_rows >= 3,
        "{closed} windows, {late_rows} late"
    );
    rig.check_dead_letters().await;
    rig.done("trades");
}

/// Statements sent with a comment before them, as most clients other than
/// psql send a script's statements.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_source_after_a_comment() {
    let broker = Broker::start();
    broker.create_topic("t", 1).await;
    let server = Server::start();
    let c = server.client().await;
    c.batch_execute(&format!(
        "-- the trades feed\nCREATE SOURCE s (id BIGINT) WITH (connector = 'kafka', \
         topic = 't', properties.bootstrap.server = '{}') FORMAT PLAIN ENCODE JSON",
        broker.bootstrap()
    ))
    .await
    .unwrap();
    c.batch_execute("-- wait for the views\nFLUSH")
        .await
        .unwrap();
}

// ----------------------------------------------------------------- fraud

fn fraud_rounds() -> Vec<Vec<Ev>> {
    let mut rng = Rng(0xF4A0D);
    let clock = Clock {
        step: 180,
        spread: 100,
        ahead: 20,
    };
    let delay = 120;
    // (customer, usual amount in cents)
    let customers = [
        ("C-1", 2_000u64),
        ("C-2", 3_500),
        ("C-3", 5_000),
        ("C-4", 8_000),
        ("C-5", 12_000),
        ("C-9", 6_000),
    ];
    let mut sent: Vec<Ev> = Vec::new();
    let mut max_ts: Option<i64> = None;
    let mut rounds = Vec::new();
    let mut next = 0;
    let mut txn = |rng: &mut Rng, ts: Option<i64>, hot: bool| {
        next += 1;
        let (cust, usual) = if hot {
            customers[1]
        } else {
            customers[rng.below(customers.len() as u64) as usize]
        };
        let card = if hot {
            "K-2-1".to_string()
        } else {
            format!("K-{}-{}", &cust[2..], 1 + rng.below(3))
        };
        let cents = match rng.below(25) {
            0 => usual * 12,
            _ => usual * 8 / 10 + rng.below(usual * 4 / 10),
        };
        let null = rng.below(40);
        ev(
            &[
                ("txn_id", s(&format!("X-{next:05}"))),
                ("customer_id", if null == 0 { None } else { s(cust) }),
                ("card_id", if null == 1 { None } else { s(&card) }),
                ("store_id", s(&format!("S-{}", rng.below(5)))),
                (
                    "amount",
                    if null == 2 {
                        None
                    } else {
                        n(format!("{}.{:02}", cents / 100, cents % 100))
                    },
                ),
            ],
            if null == 3 { None } else { ts },
            rng,
        )
    };
    for r in 0..8i64 {
        let mut round = Vec::new();
        let floor = clock.frontier(r) - clock.spread;
        if let Some(m) = max_ts {
            for _ in 0..2 {
                let t = m - delay - 1 - rng.below(700) as i64;
                let e = txn(&mut rng, Some(t), false);
                sent.push(e.clone());
                round.push(e);
            }
        }
        for _ in 0..18 {
            let recent: Vec<&Ev> = sent
                .iter()
                .filter(|e| e.ts.is_some_and(|t| t >= floor))
                .collect();
            let e = match rng.below(20) {
                0 => malformed(&mut rng),
                1 if !recent.is_empty() => recent[rng.below(recent.len() as u64) as usize].clone(),
                k => {
                    let t = clock.normal(r, &mut rng);
                    let e = txn(&mut rng, Some(t), k < 5);
                    sent.push(e.clone());
                    e
                }
            };
            round.push(e);
        }
        for e in &round {
            if let Some(t) = e.ts {
                max_ts = Some(max_ts.map_or(t, |m| m.max(t)));
            }
        }
        rounds.push(round);
    }
    rounds
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_fraud_rules() {
    let velocity = format!(
        "SELECT card_id, window_start, window_end, count(*) AS txns, sum(amount) AS total \
         FROM {} GROUP BY card_id, window_start, window_end",
        pg_windows(
            "transactions_unique_arrivals",
            "1 minute",
            10,
            "10 minutes",
            false
        )
    );
    let mut rig = rig(
        "fraud.sql",
        "{{TRANSACTIONS_TOPIC}}",
        "transactions",
        Some(120),
        "CREATE TABLE transactions (kafka_partition INT, kafka_offset BIGINT, \
         arrival_wm TIMESTAMPTZ, txn_id VARCHAR, customer_id VARCHAR, card_id VARCHAR, \
         store_id VARCHAR, amount NUMERIC(12, 2), ts TIMESTAMPTZ)",
        &[
            "CREATE VIEW transactions_unique_arrivals AS SELECT * FROM ( \
           SELECT *, ROW_NUMBER() OVER (PARTITION BY txn_id ORDER BY ts, kafka_offset) AS rn \
           FROM transactions WHERE txn_id IS NOT NULL) AS t WHERE rn = 1",
        ],
        &[("card_velocity_10m", velocity)],
    )
    .await;
    let late = pg_late(
        "card_velocity_10m",
        "transactions_unique_arrivals",
        "1 minute",
        10,
        "10 minutes",
    );
    for (r, round) in fraud_rounds().iter().enumerate() {
        rig.round(round).await;
        rig.check_views().await;
        rig.same("late_events", SL_LATE, &late).await;
        if r == 3 {
            // Listing a customer flags their past transactions too (a plain
            // join; a lookup join would flag only later ones).
            rig.both("INSERT INTO blacklist VALUES ('C-3', 'account takeover', DATE '2026-01-13')")
                .await;
            rig.check_views().await;
            let past = rows(
                &rig.c,
                "SELECT count(*) FROM blacklist_alerts WHERE customer_id = 'C-3'",
            )
            .await;
            assert_ne!(past[0][0], "0", "C-3's past transactions are not flagged");
        }
        if r == 5 {
            rig.both("DELETE FROM blacklist WHERE customer_id = 'C-9'")
                .await;
            rig.check_views().await;
        }
    }
    for (what, sql) in [
        (
            "high-value alerts",
            "SELECT count(*) FROM high_value_alerts",
        ),
        ("velocity alerts", "SELECT count(*) FROM velocity_alerts"),
        (
            "quiet velocity windows",
            "SELECT count(*) FROM card_velocity_10m WHERE txns < 5",
        ),
        ("late events", "SELECT count(*) FROM streamlake.late_events"),
    ] {
        let n = rows(&rig.c, sql).await;
        assert_ne!(
            n[0][0], "0",
            "no {what}: the sequence does not exercise the rule"
        );
    }
    rig.check_dead_letters().await;
    rig.done("fraud");
}

/// DISTINCT ON is the same deduplication as ROW_NUMBER() … WHERE rn = 1
/// (SQL.md §2), so a window over it must close on the source's watermark
/// the same way. fraud.sql uses the ROW_NUMBER form because of this.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "bug: a view over a DISTINCT ON view gets no watermark: a TUMBLE or HOP \
            window over it takes late rows into windows the watermark has closed and \
            records no late event, and EMIT ON WINDOW CLOSE over it is refused (0A000); \
            the ROW_NUMBER form is right"]
async fn windows_over_distinct_on_close_on_the_watermark() {
    let broker = Broker::start();
    broker.create_topic("d", 1).await;
    let server = Server::start();
    let c = server.client().await;
    c.batch_execute(&format!(
        "CREATE SOURCE d (id VARCHAR, ts TIMESTAMPTZ, WATERMARK FOR ts AS ts - INTERVAL '1 minute') \
         WITH (connector = 'kafka', topic = 'd', properties.bootstrap.server = '{}') \
         FORMAT PLAIN ENCODE JSON",
        broker.bootstrap()
    ))
    .await
    .unwrap();
    c.batch_execute(
        "CREATE MATERIALIZED VIEW u AS SELECT DISTINCT ON (id) id, ts FROM d ORDER BY id, ts;
         CREATE MATERIALIZED VIEW per_min AS SELECT window_start, count(*) AS n \
         FROM TUMBLE(u, ts, INTERVAL '1 minute') GROUP BY window_start",
    )
    .await
    .unwrap();
    let producer = broker.producer();
    for batch in [
        &[
            r#"{"id": "a", "ts": "2026-01-13T14:00:10Z"}"#,
            r#"{"id": "b", "ts": "2026-01-13T14:05:00Z"}"#,
        ][..],
        // The watermark is 14:04:00: [14:00, 14:01) has closed.
        &[r#"{"id": "c", "ts": "2026-01-13T14:00:20Z"}"#][..],
    ] {
        produce(
            &producer,
            "d",
            batch.iter().map(|j| Record::new(j.as_bytes())).collect(),
        )
        .await;
        c.batch_execute("FLUSH").await.unwrap();
    }
    assert_eq!(
        rows(&c, "SELECT view, event_time FROM streamlake.late_events").await,
        vec![vec!["per_min".to_string(), "2026-01-13 14:00:20+00".into()]]
    );
    assert_eq!(
        rows(&c, "SELECT window_start, n FROM per_min ORDER BY 1").await,
        vec![
            vec!["2026-01-13 14:00:00+00".to_string(), "1".into()],
            vec!["2026-01-13 14:05:00+00".to_string(), "1".into()],
        ]
    );
    // And EMIT ON WINDOW CLOSE over it is accepted (today: 0A000, "needs …
    // an input with a watermark").
    c.batch_execute(
        "CREATE MATERIALIZED VIEW final_min AS SELECT window_start, count(*) AS n \
         FROM TUMBLE(u, ts, INTERVAL '1 minute') GROUP BY window_start EMIT ON WINDOW CLOSE",
    )
    .await
    .unwrap();
}

// ---------------------------------------------------------------- orders

fn order_rounds() -> Vec<Vec<Ev>> {
    let mut rng = Rng(0x0DE125);
    let statuses = ["created", "paid", "shipped", "delivered"];
    // Per order: (customer, amount, last version sent, terminal).
    let mut orders: Vec<(String, String, i64, bool)> = (0..25)
        .map(|i| (format!("C-{}", i % 6), amount(&mut rng, 400), 0, false))
        .collect();
    let mut sent: Vec<Ev> = Vec::new();
    let mut held: Vec<Ev> = Vec::new();
    let mut rounds = Vec::new();
    for _ in 0..6 {
        // Records held back from the previous round arrive now, after a
        // newer version of their order.
        let mut round: Vec<Ev> = std::mem::take(&mut held);
        for _ in 0..24 {
            let e = match rng.below(25) {
                0 => malformed(&mut rng),
                1 | 2 if !sent.is_empty() => sent[rng.below(sent.len() as u64) as usize].clone(),
                k => {
                    let i = rng.below(orders.len() as u64) as usize;
                    let o = &mut orders[i];
                    if o.3 {
                        continue;
                    }
                    o.2 += 1;
                    let v = o.2;
                    let status = if v >= 2 && rng.below(6) == 0 {
                        o.3 = true;
                        "cancelled"
                    } else {
                        statuses[(v as usize - 1).min(3)]
                    };
                    if v >= 4 {
                        o.3 = true;
                    }
                    // A price adjustment now and then.
                    if rng.below(8) == 0 {
                        o.1 = amount(&mut rng, 400);
                    }
                    let e = ev_at(
                        &[
                            (
                                "order_id",
                                if k == 3 {
                                    None
                                } else {
                                    s(&format!("O-{i:03}"))
                                },
                            ),
                            ("customer_id", s(&o.0)),
                            ("status", s(status)),
                            ("amount", n(&o.1)),
                            ("version", if k == 4 { None } else { n(v) }),
                        ],
                        "updated_at",
                        Some(BASE + v * 600 + i as i64 * 7),
                        &mut rng,
                    );
                    sent.push(e.clone());
                    if rng.below(6) == 0 {
                        held.push(e);
                        continue;
                    }
                    e
                }
            };
            round.push(e);
        }
        rounds.push(round);
    }
    rounds.push(held);
    rounds
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_orders_serving_view() {
    let mut rig = rig(
        "orders.sql",
        "{{ORDERS_TOPIC}}",
        "order_events",
        None,
        "CREATE TABLE order_events (kafka_partition INT, kafka_offset BIGINT, \
         arrival_wm TIMESTAMPTZ, order_id VARCHAR, customer_id VARCHAR, status VARCHAR, \
         amount NUMERIC(12, 2), version BIGINT, updated_at TIMESTAMPTZ)",
        &[],
        &[],
    )
    .await;
    let mut slowest = std::time::Duration::ZERO;
    for round in order_rounds() {
        rig.round(&round).await;
        rig.check_views().await;
        // Point lookups by key, as an application does.
        for id in ["O-000", "O-007", "O-013", "O-024", "O-999"] {
            let q = format!(
                "SELECT status, amount, version, updated_at FROM orders_current WHERE order_id = '{id}'"
            );
            let t = Instant::now();
            rig.same(&format!("lookup {id}"), &q, &q).await;
            slowest = slowest.max(t.elapsed());
        }
    }
    let by_status = rows(&rig.c, "SELECT count(*) FROM orders_by_status").await;
    assert!(by_status[0][0].parse::<i32>().unwrap() >= 4);
    // Some older versions did arrive after newer ones.
    let stale = rows(
        &rig.pg,
        "SELECT count(*) FROM order_events a JOIN order_events b ON a.order_id = b.order_id \
         AND a.version < b.version AND a.kafka_offset > b.kafka_offset",
    )
    .await;
    assert_ne!(stale[0][0], "0", "no version arrived out of order");
    rig.check_dead_letters().await;
    rig.done("orders");
    eprintln!("orders: slowest point lookup (both engines, round trip) {slowest:?}");
}

// ------------------------------------------------------------- medallion

fn medallion_rounds() -> Vec<Vec<Ev>> {
    let mut rng = Rng(0xB201DE);
    let types = [
        " Signup",
        "login",
        "LOGIN",
        "purchase",
        "Purchase ",
        "refund",
        "click",
    ];
    let countries = ["de", "us", "FR"];
    let mut sent: Vec<Ev> = Vec::new();
    let mut rounds = Vec::new();
    let mut next = 0;
    for r in 0..5i64 {
        let mut round = Vec::new();
        for _ in 0..30 {
            let e = match rng.below(20) {
                0 => malformed(&mut rng),
                1 | 2 if !sent.is_empty() => sent[rng.below(sent.len() as u64) as usize].clone(),
                _ => {
                    next += 1;
                    let ty = match rng.below(15) {
                        0 => None,
                        _ => Some(rng.pick(&types)),
                    };
                    let money = ty.is_some_and(|t| {
                        let t = t.trim().to_lowercase();
                        t == "purchase" || t == "refund"
                    });
                    let amt = match rng.below(25) {
                        0 => Some("-3.50".to_string()),
                        _ if money => Some(amount(&mut rng, 200)),
                        _ => None,
                    };
                    let e = ev(
                        &[
                            (
                                "event_id",
                                if rng.below(30) == 0 {
                                    None
                                } else {
                                    s(&format!("E-{next:04}"))
                                },
                            ),
                            ("event_type", ty.and_then(s)),
                            (
                                "user_id",
                                if rng.below(20) == 0 {
                                    None
                                } else {
                                    n(1 + rng.below(12))
                                },
                            ),
                            ("amount", amt.and_then(n)),
                            (
                                "country",
                                if rng.below(12) == 0 {
                                    None
                                } else {
                                    s(rng.pick(&countries))
                                },
                            ),
                        ],
                        // Out of order over three hours, and later rounds
                        // still reach back into earlier hours.
                        match rng.below(30) {
                            0 => None,
                            _ => Some(BASE + r * 1200 + rng.below(3 * 3600) as i64 - 1800),
                        },
                        &mut rng,
                    );
                    sent.push(e.clone());
                    e
                }
            };
            round.push(e);
        }
        rounds.push(round);
    }
    rounds
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_medallion_bronze_silver_gold() {
    let mut rig = rig(
        "medallion.sql",
        "{{EVENTS_TOPIC}}",
        "app_events_bronze",
        None,
        "CREATE TABLE app_events_bronze (kafka_partition INT, kafka_offset BIGINT, \
         arrival_wm TIMESTAMPTZ, event_id VARCHAR, event_type VARCHAR, user_id BIGINT, \
         amount NUMERIC(12, 2), country VARCHAR, ts TIMESTAMPTZ)",
        &[],
        &[],
    )
    .await;
    let bronze = "SELECT event_id, event_type, user_id, amount, country, ts, kafka_partition, \
                  kafka_offset FROM app_events_bronze";
    for (r, round) in medallion_rounds().iter().enumerate() {
        rig.round(round).await;
        rig.check_views().await;
        rig.same("app_events_bronze", bronze, bronze).await;
        if r == 2 {
            // Bronze is exactly-once across a restart; the views over it
            // come back the same.
            rig.restart().await;
            rig.c.batch_execute("FLUSH").await.unwrap();
            rig.check_views().await;
            rig.same("app_events_bronze", bronze, bronze).await;
        }
    }
    let dup = rows(
        &rig.pg,
        "SELECT count(*) - count(DISTINCT event_id) FROM app_events_bronze",
    )
    .await;
    assert_ne!(dup[0][0], "0", "no redelivered events in bronze");
    rig.check_dead_letters().await;
    rig.done("medallion");
}

// --------------------------------------------------------------- quality

/// The query of `CREATE MATERIALIZED VIEW name AS …` in a pipeline file.
fn file_view_query(file: &str, name: &str) -> String {
    let path = format!("{}/sql/pipelines/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap();
    let prefix = format!("CREATE MATERIALIZED VIEW {name} AS");
    split_sql(&text)
        .into_iter()
        .map(|s| without_leading_comments(&s))
        .find_map(|s| s.strip_prefix(&prefix).map(str::to_string))
        .unwrap_or_else(|| panic!("{file}: no view {name}"))
}

fn payment_rounds() -> Vec<Vec<Ev>> {
    let mut rng = Rng(0xD0A11);
    let clock = Clock {
        step: 90,
        spread: 50,
        ahead: 10,
    };
    let delay = 60;
    let systems = ["web", "pos", "app"];
    let currencies = ["EUR", "USD", "GBP"];
    let statuses = ["authorized", "captured", "refunded", "failed"];
    let mut sent: Vec<Ev> = Vec::new();
    let mut max_ts: Option<i64> = None;
    let mut rounds = Vec::new();
    let mut next = 0;
    let mut payment = |rng: &mut Rng, ts: Option<i64>| {
        next += 1;
        let amt = match rng.below(20) {
            0 => None,
            1 => Some("0".to_string()),
            2 => Some("20000.00".to_string()),
            _ => Some(amount(rng, 900)),
        };
        let currency = match rng.below(15) {
            0 => Some("JPY"),
            1 => None,
            _ => Some(rng.pick(&currencies)),
        };
        let status = match rng.below(15) {
            0 => Some("unknown"),
            1 => None,
            _ => Some(rng.pick(&statuses)),
        };
        ev(
            &[
                (
                    "payment_id",
                    if rng.below(15) == 0 {
                        None
                    } else {
                        s(&format!("P-{next:04}"))
                    },
                ),
                ("src_system", s(rng.pick(&systems))),
                ("merchant", s(&format!("M-{}", rng.below(4)))),
                ("amount", amt.and_then(n)),
                ("currency", currency.and_then(s)),
                ("status", status.and_then(s)),
            ],
            if rng.below(30) == 0 { None } else { ts },
            rng,
        )
    };
    for r in 0..8i64 {
        let mut round = Vec::new();
        let floor = clock.frontier(r) - clock.spread;
        if let Some(m) = max_ts {
            for _ in 0..2 {
                let t = m - delay - 1 - rng.below(200) as i64;
                round.push(payment(&mut rng, Some(t)));
            }
        }
        for _ in 0..24 {
            let recent: Vec<&Ev> = sent
                .iter()
                .filter(|e| e.ts.is_some_and(|t| t >= floor))
                .collect();
            let e = match rng.below(20) {
                0 => malformed(&mut rng),
                1 | 2 if !recent.is_empty() => {
                    recent[rng.below(recent.len() as u64) as usize].clone()
                }
                _ => {
                    let t = clock.normal(r, &mut rng);
                    let e = payment(&mut rng, Some(t));
                    sent.push(e.clone());
                    e
                }
            };
            round.push(e);
        }
        for e in &round {
            if let Some(t) = e.ts {
                max_ts = Some(max_ts.map_or(t, |m| m.max(t)));
            }
        }
        rounds.push(round);
    }
    rounds
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_data_quality_counts() {
    // The file's own query over PostgreSQL's rendering of the windows.
    let dq_1m = file_view_query("quality.sql", "dq_payments_1m")
        .replace(
            "TUMBLE(payments, ts, INTERVAL '1 minute')",
            &pg_windows("payments", "1 minute", 1, "1 minute", true),
        )
        .replace("EMIT ON WINDOW CLOSE", "");
    let mut rig = rig(
        "quality.sql",
        "{{PAYMENTS_TOPIC}}",
        "payments",
        Some(60),
        "CREATE TABLE payments (kafka_partition INT, kafka_offset BIGINT, \
         arrival_wm TIMESTAMPTZ, payment_id VARCHAR, src_system VARCHAR, merchant VARCHAR, \
         amount NUMERIC(12, 2), currency VARCHAR, status VARCHAR, ts TIMESTAMPTZ)",
        &[],
        &[("dq_payments_1m", dq_1m)],
    )
    .await;
    let late = pg_late("dq_payments_1m", "payments", "1 minute", 1, "1 minute");
    for round in payment_rounds() {
        rig.round(&round).await;
        rig.check_views().await;
        rig.same("late_events", SL_LATE, &late).await;
    }
    // Every rule was broken somewhere, and some minutes passed everything.
    let totals = rows(
        &rig.c,
        "SELECT sum(payment_id_null), sum(payment_id_duplicate), sum(amount_null), \
         sum(amount_out_of_range), sum(currency_not_accepted), sum(status_not_accepted), \
         count(*) FILTER (WHERE rows_passed = rows_checked), count(*) FROM dq_payments_1m",
    )
    .await;
    assert!(
        totals[0].iter().all(|v| v != "0" && v != "NULL"),
        "rules not exercised: {totals:?}"
    );
    // The late records are named by source (their partition and offset:
    // see `late_events_name_the_source_and_position`).
    rig.same(
        "late_events source",
        "SELECT view, source, event_time FROM streamlake.late_events",
        &format!(
            "SELECT 'dq_payments_1m', 'payments', x.ts FROM {} x \
             WHERE x.arrival_wm IS NOT NULL AND x.window_end <= x.arrival_wm",
            all_windows("payments", "1 minute", 1, "1 minute")
        ),
    )
    .await;
    let late_rows = rows(&rig.c, "SELECT count(*) FROM streamlake.late_events").await;
    assert_ne!(late_rows[0][0], "0");
    rig.check_dead_letters().await;
    rig.done("quality");
}

/// SQL.md §5: late_events names the source of every late event, and its
/// partition and offset when the view reads the source directly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "bug: late_events has partition and offset NULL even for a window read \
            straight from the source, and source NULL for a window over a view"]
async fn late_events_name_the_source_and_position() {
    let broker = Broker::start();
    broker.create_topic("p", 1).await;
    let server = Server::start();
    let c = server.client().await;
    c.batch_execute(&format!(
        "CREATE SOURCE p (id VARCHAR, ts TIMESTAMPTZ, WATERMARK FOR ts AS ts - INTERVAL '1 minute') \
         WITH (connector = 'kafka', topic = 'p', properties.bootstrap.server = '{}') \
         FORMAT PLAIN ENCODE JSON",
        broker.bootstrap()
    ))
    .await
    .unwrap();
    c.batch_execute(
        "CREATE MATERIALIZED VIEW direct AS SELECT window_start, count(*) AS n \
         FROM TUMBLE(p, ts, INTERVAL '1 minute') GROUP BY window_start;
         CREATE MATERIALIZED VIEW firsts AS SELECT id, ts FROM (SELECT id, ts, \
         ROW_NUMBER() OVER (PARTITION BY id ORDER BY ts) AS rn FROM p) AS t WHERE rn = 1;
         CREATE MATERIALIZED VIEW via_view AS SELECT window_start, count(*) AS n \
         FROM TUMBLE(firsts, ts, INTERVAL '1 minute') GROUP BY window_start",
    )
    .await
    .unwrap();
    let producer = broker.producer();
    for batch in [
        &[
            r#"{"id": "a", "ts": "2026-01-13T14:00:10Z"}"#,
            r#"{"id": "b", "ts": "2026-01-13T14:05:00Z"}"#,
        ][..],
        &[r#"{"id": "c", "ts": "2026-01-13T14:00:20Z"}"#][..],
    ] {
        produce(
            &producer,
            "p",
            batch.iter().map(|j| Record::new(j.as_bytes())).collect(),
        )
        .await;
        c.batch_execute("FLUSH").await.unwrap();
    }
    assert_eq!(
        rows(
            &c,
            "SELECT view, source, partition, \"offset\" FROM streamlake.late_events ORDER BY view"
        )
        .await,
        vec![
            vec!["direct".to_string(), "p".into(), "0".into(), "2".into()],
            vec![
                "via_view".to_string(),
                "p".into(),
                "NULL".into(),
                "NULL".into()
            ],
        ]
    );
}
