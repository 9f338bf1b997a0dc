//! The Kafka-fed differential suite for event time: random events (out of
//! order, late, duplicated, NULL times and keys) are produced in rounds to
//! one partition read by two sources with a WATERMARK (one on a TIMESTAMP
//! column, one on a TIMESTAMPTZ column holding the same instants), with a
//! FLUSH after each round. The harness simulates the watermark rule
//! exactly — with one partition, periodic barriers off and one FLUSH per
//! round, the events of round r meet the watermark of the barrier after
//! round r−1 (the largest event time so far minus the delay) and a window
//! [s, e) is closed when e <= that watermark — and gives the PostgreSQL
//! oracle the events and the (view, event, window) triples that must be
//! left out as late. Then every view equals its query on the oracle (EOWC
//! views: only closed windows), a view not windowed on event time counts
//! everything, and `streamlake.late_events` holds exactly the late
//! triples.
//!
//! Seeds: `STREAMLAKE_WINDOW_SEEDS=7,8` replays given seeds; a failure
//! names its seed.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use tokio_postgres::Client;

use crate::broker::{Broker, Record, produce};
use crate::oracle::Postgres;
use crate::support::{Rng, Server, ServerOptions, rows};
use crate::views::{diff, normalized};

/// Milliseconds: event times, window sizes.
const S: i64 = 1000;
/// The WATERMARK delay of both sources.
const DELAY: i64 = 10 * S;
/// 2024-01-01 04:00:00 UTC, the time the rounds start from.
const BASE: i64 = 1_704_081_600_000;

/// A window-assigning view: its SQL in streamlake, the grouping and
/// aggregates (the same text runs on PostgreSQL over the assigned rows).
struct WindowView {
    name: &'static str,
    /// `ev` (TIMESTAMP `ts`) or `evz` (TIMESTAMPTZ `tz`).
    tz: bool,
    slide: i64,
    size: i64,
    offset: i64,
    eowc: bool,
    select: &'static str,
    group_by: &'static str,
}

const WINDOW_VIEWS: &[WindowView] = &[
    WindowView {
        name: "t_live",
        tz: false,
        slide: 60 * S,
        size: 60 * S,
        offset: 0,
        eowc: false,
        select: "k, window_start, window_end, count(*) AS n, count(v) AS nv, sum(v) AS s, \
                 min(v) AS lo, max(v) AS hi, avg(v) AS mean",
        group_by: "k, window_start, window_end",
    },
    WindowView {
        name: "t_eowc",
        tz: false,
        slide: 60 * S,
        size: 60 * S,
        offset: 0,
        eowc: true,
        select: "k, window_start, window_end, count(*) AS n, count(v) AS nv, sum(v) AS s, \
                 min(v) AS lo, max(v) AS hi, avg(v) AS mean",
        group_by: "k, window_start, window_end",
    },
    WindowView {
        name: "h_live",
        tz: false,
        slide: 20 * S,
        size: 60 * S,
        offset: 0,
        eowc: false,
        select: "k, window_start, count(*) AS n, sum(v) AS s",
        group_by: "k, window_start",
    },
    WindowView {
        name: "h_eowc",
        tz: false,
        slide: 20 * S,
        size: 60 * S,
        offset: 0,
        eowc: true,
        select: "window_start, window_end, count(*) AS n, min(v) AS lo, max(v) AS hi, avg(v) AS mean",
        group_by: "window_start, window_end",
    },
    WindowView {
        name: "t_off_eowc",
        tz: false,
        slide: 60 * S,
        size: 60 * S,
        offset: 15 * S,
        eowc: true,
        select: "k, window_start, window_end, count(*) AS n, sum(v) AS s",
        group_by: "k, window_start, window_end",
    },
    WindowView {
        name: "z_eowc",
        tz: true,
        slide: 30 * S,
        size: 30 * S,
        offset: 0,
        eowc: true,
        select: "k, window_start, window_end, count(*) AS n, sum(v) AS s, max(v) AS hi",
        group_by: "k, window_start, window_end",
    },
    WindowView {
        name: "z_hop_live",
        tz: true,
        slide: 10 * S,
        size: 30 * S,
        offset: 5 * S,
        eowc: false,
        select: "window_start, count(*) AS n, sum(v) AS s, min(v) AS lo",
        group_by: "window_start",
    },
];

/// Views not windowed on event time: they count every event.
const PLAIN_VIEWS: &[(&str, &str)] = &[
    (
        "all_ev",
        "SELECT k, count(*) AS n, count(ts) AS nts, sum(v) AS s FROM ev GROUP BY k",
    ),
    (
        "all_evz",
        "SELECT count(*) AS n, min(tz) AS first, max(tz) AS last FROM evz",
    ),
];

fn interval(ms: i64) -> String {
    format!("INTERVAL '{} milliseconds'", ms)
}

impl WindowView {
    fn source(&self) -> &'static str {
        if self.tz { "evz" } else { "ev" }
    }

    fn column(&self) -> &'static str {
        if self.tz { "tz" } else { "ts" }
    }

    fn create(&self) -> String {
        let from = if self.slide == self.size {
            format!(
                "TUMBLE({}, {}, {}{})",
                self.source(),
                self.column(),
                interval(self.size),
                if self.offset != 0 {
                    format!(", {}", interval(self.offset))
                } else {
                    String::new()
                }
            )
        } else {
            format!(
                "HOP({}, {}, {}, {}{})",
                self.source(),
                self.column(),
                interval(self.slide),
                interval(self.size),
                if self.offset != 0 {
                    format!(", {}", interval(self.offset))
                } else {
                    String::new()
                }
            )
        };
        format!(
            "CREATE MATERIALIZED VIEW {} AS SELECT {} FROM {from} GROUP BY {}{}",
            self.name,
            self.select,
            self.group_by,
            if self.eowc {
                " EMIT ON WINDOW CLOSE"
            } else {
                ""
            }
        )
    }

    /// The view's query on the oracle: windows assigned by PostgreSQL
    /// (date_bin and generate_series), the late triples left out, and for
    /// EOWC only the windows the watermark `wm` has closed.
    fn oracle(&self, wm: Option<i64>) -> String {
        let (ty, col) = if self.tz {
            ("TIMESTAMPTZ", "tz")
        } else {
            ("TIMESTAMP", "ts")
        };
        let origin = format!("{ty} '1970-01-01 00:00:00+00' + {}", interval(self.offset));
        let last = format!("date_bin({}, e.{col}, {origin})", interval(self.slide));
        let closed = match (self.eowc, wm) {
            (false, _) => String::new(),
            (true, None) => " AND false".into(),
            (true, Some(w)) => format!(
                " AND s + {} <= {ty} '{}'",
                interval(self.size),
                text(w, self.tz)
            ),
        };
        format!(
            "WITH a AS (SELECT e.id, e.k, e.v, s AS window_start, s + {size} AS window_end \
             FROM ev e, generate_series({last} - {back}, {last}, {slide}) s \
             WHERE e.{col} IS NOT NULL AND e.{col} < s + {size} \
             AND NOT EXISTS (SELECT 1 FROM late l WHERE l.view = '{name}' AND l.id = e.id \
                             AND l.ws = (extract(epoch FROM s) * 1000)::bigint){closed}) \
             SELECT {select} FROM a GROUP BY {group_by}",
            size = interval(self.size),
            back = interval(self.size - self.slide),
            slide = interval(self.slide),
            name = self.name,
            select = self.select,
            group_by = self.group_by,
        )
    }

    /// Window starts holding `t` (ms), as the spec defines them.
    fn windows(&self, t: i64) -> Vec<i64> {
        let last = (t - self.offset).div_euclid(self.slide) * self.slide + self.offset;
        (0..self.size / self.slide)
            .map(|k| last - k * self.slide)
            .filter(|s| *s <= t && t < s + self.size)
            .collect()
    }
}

/// A time (ms since the epoch) as streamlake and PostgreSQL print it
/// (UTC), with `+00` for timestamptz.
fn text(ms: i64, tz: bool) -> String {
    let t: DateTime<Utc> = Utc.timestamp_millis_opt(ms).unwrap();
    let mut s = t.format("%Y-%m-%d %H:%M:%S").to_string();
    if ms % 1000 != 0 {
        s.push_str(&format!(".{:03}", ms.rem_euclid(1000)));
        while s.ends_with('0') {
            s.pop();
        }
    }
    if tz {
        s.push_str("+00");
    }
    s
}

/// A printed timestamp with its fraction's trailing zeros removed (both
/// engines, timestamptz included).
fn canon_time(v: &str) -> String {
    let (body, zone) = match v.find('+') {
        Some(i) => v.split_at(i),
        None => (v, ""),
    };
    let body = if body.len() > 19 && body.as_bytes()[19] == b'.' {
        body.trim_end_matches('0').trim_end_matches('.')
    } else {
        body
    };
    format!("{body}{zone}")
}

/// Rows as the differential suites compare them, times canonical first.
fn canon(r: Vec<Vec<String>>) -> Vec<Vec<String>> {
    normalized(
        r.into_iter()
            .map(|row| row.iter().map(|v| canon_time(v)).collect())
            .collect(),
    )
}

/// One generated event.
#[derive(Clone)]
struct Event {
    id: i64,
    k: Option<&'static str>,
    v: Option<i64>,
    /// Event time, ms since the epoch.
    t: Option<i64>,
    /// The zone offset (seconds) the timestamptz text is written in.
    zone: i32,
}

impl Event {
    fn json(&self) -> String {
        let k = self.k.map_or("null".to_string(), |k| format!("\"{k}\""));
        let v = self.v.map_or("null".to_string(), |v| v.to_string());
        let (ts, tz) = match self.t {
            None => ("null".to_string(), "null".to_string()),
            Some(t) => {
                let utc: DateTime<Utc> = Utc.timestamp_millis_opt(t).unwrap();
                let local = utc.with_timezone(&FixedOffset::east_opt(self.zone).unwrap());
                (
                    format!("\"{}\"", utc.format("%Y-%m-%d %H:%M:%S%.3f")),
                    format!("\"{}\"", local.format("%Y-%m-%d %H:%M:%S%.3f%:z")),
                )
            }
        };
        format!(
            "{{\"id\": {}, \"k\": {k}, \"v\": {v}, \"ts\": {ts}, \"tz\": {tz}}}",
            self.id
        )
    }

    fn sql(&self) -> String {
        let k = self.k.map_or("NULL".to_string(), |k| format!("'{k}'"));
        let v = self.v.map_or("NULL".to_string(), |v| v.to_string());
        let (ts, tz) = match self.t {
            None => ("NULL".to_string(), "NULL".to_string()),
            Some(t) => (
                format!("'{}'", text(t, false)),
                format!("'{}'", text(t, true)),
            ),
        };
        format!("({}, {k}, {v}, {ts}, {tz})", self.id)
    }
}

/// The events of round `round` (1-based): mostly around a clock that
/// advances 45 s a round, some well behind it (late), some NULL.
fn round_events(rng: &mut Rng, round: i64, next_id: &mut i64) -> Vec<Event> {
    let clock = BASE + round * 45 * S;
    let n = 30 + rng.below(40);
    let mut out = Vec::new();
    for _ in 0..n {
        *next_id += 1;
        let k = match rng.below(8) {
            0 => None,
            i => Some(["a", "b", "c"][(i % 3) as usize]),
        };
        let v = match rng.below(10) {
            0 => None,
            _ => Some(rng.below(250) as i64 - 50),
        };
        let t = match rng.below(12) {
            0 => None,
            1 | 2 => Some(clock - (60 + rng.below(240) as i64) * S),
            _ => Some(clock + (rng.below(90) as i64 - 60) * S),
        }
        .map(|t| match rng.below(6) {
            // On a 5 s grid often, so events land on window bounds and on
            // the watermark exactly; sometimes half a second off.
            0..=2 => t - t.rem_euclid(5 * S),
            3 => t - t.rem_euclid(S) + 500,
            _ => t - t.rem_euclid(S),
        });
        let zone = [0, 7200, -12600, 19800][rng.below(4) as usize];
        let e = Event {
            id: *next_id,
            k,
            v,
            t,
            zone,
        };
        // Exact duplicates: the same record twice.
        if rng.below(10) == 0 {
            out.push(e.clone());
        }
        out.push(e);
    }
    out
}

async fn compare(
    c: &Client,
    pg: &Client,
    seed: u64,
    round: usize,
    wm: Option<i64>,
    late: &[(String, i64, i64, i64)],
) {
    for v in WINDOW_VIEWS {
        let view = canon(rows(c, &format!("SELECT * FROM {}", v.name)).await);
        let oracle = canon(rows(pg, &v.oracle(wm)).await);
        diff(seed, round, v.name, "PostgreSQL", &view, &oracle);
        assert!(
            round < 3 || !oracle.is_empty(),
            "seed {seed}, round {round}: {} is empty on the oracle too; the generator should fill it",
            v.name
        );
    }
    for (name, query) in PLAIN_VIEWS {
        let view = canon(rows(c, &format!("SELECT * FROM {name}")).await);
        let oracle = canon(rows(pg, query).await);
        diff(seed, round, name, "PostgreSQL", &view, &oracle);
    }
    // Exactly the late (view, event, window) triples, as many times as
    // the event arrived.
    let mut got: Vec<Vec<String>> = rows(
        c,
        "SELECT view, event_time, watermark, window_start, window_end FROM streamlake.late_events",
    )
    .await
    .into_iter()
    .map(|r| r.iter().map(|v| canon_time(v)).collect())
    .collect();
    got.sort();
    let mut want: Vec<Vec<String>> = late
        .iter()
        .map(|(view, t, w, s)| {
            let size = WINDOW_VIEWS
                .iter()
                .find(|v| v.name == view)
                .expect("view")
                .size;
            vec![
                view.clone(),
                text(*t, true),
                text(*w, true),
                text(*s, true),
                text(s + size, true),
            ]
        })
        .collect();
    want.sort();
    diff(
        seed,
        round,
        "streamlake.late_events",
        "the harness",
        &got,
        &want,
    );
}

async fn run_seed(broker: &Broker, pg: &Client, seed: u64) {
    eprintln!("kafka_windows: seed {seed} (replay with STREAMLAKE_WINDOW_SEEDS={seed})");
    let topic = format!("windows_{seed}");
    broker.create_topic(&topic, 1).await;
    // Barriers only at FLUSH, so a round is read within one epoch.
    let server = Server::start_with(ServerOptions {
        flags: vec![("barrier_interval".into(), "1h".into())],
        ..ServerOptions::default()
    });
    let c = server.client().await;
    pg.batch_execute(
        "DROP VIEW IF EXISTS evz; DROP TABLE IF EXISTS ev, late;
         CREATE TABLE ev (id BIGINT, k TEXT, v BIGINT, ts TIMESTAMP, tz TIMESTAMPTZ);
         CREATE TABLE late (view TEXT, id BIGINT, ws BIGINT);
         CREATE VIEW evz AS SELECT id, k, v, tz FROM ev",
    )
    .await
    .unwrap();
    for (name, col, ty) in [("ev", "ts", "TIMESTAMP"), ("evz", "tz", "TIMESTAMPTZ")] {
        c.batch_execute(&format!(
            "CREATE SOURCE {name} (id BIGINT, k VARCHAR, v BIGINT, {col} {ty}, \
             WATERMARK FOR {col} AS {col} - INTERVAL '10 seconds') \
             WITH (connector = 'kafka', topic = '{topic}', \
             properties.bootstrap.server = '{}', watermark.idle_timeout = '1h') \
             FORMAT PLAIN ENCODE JSON",
            broker.bootstrap()
        ))
        .await
        .unwrap_or_else(|e| panic!("create source {name}: {e:?}"));
    }
    for v in WINDOW_VIEWS {
        c.batch_execute(&v.create())
            .await
            .unwrap_or_else(|e| panic!("{}: {e:?}", v.create()));
    }
    for (name, query) in PLAIN_VIEWS {
        c.batch_execute(&format!("CREATE MATERIALIZED VIEW {name} AS {query}"))
            .await
            .unwrap_or_else(|e| panic!("create {name}: {e:?}"));
    }

    let producer = broker.producer();
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut next_id = 0;
    let mut max_t: Option<i64> = None;
    // (view, event time, watermark, window start) of every late arrival.
    let mut late: Vec<(String, i64, i64, i64)> = Vec::new();
    let mut late_counts: BTreeMap<&str, usize> = BTreeMap::new();
    for round in 1..=7usize {
        let wm = max_t.map(|m| m - DELAY);
        let events = round_events(&mut rng, round as i64, &mut next_id);
        let mut late_rows = Vec::new();
        for e in &events {
            let (Some(t), Some(w)) = (e.t, wm) else {
                continue;
            };
            for v in WINDOW_VIEWS {
                for s in v.windows(t) {
                    if s + v.size <= w {
                        late.push((v.name.to_string(), t, w, s));
                        late_rows.push(format!("('{}', {}, {s})", v.name, e.id));
                        *late_counts.entry(v.name).or_default() += 1;
                    }
                }
            }
        }
        for e in &events {
            max_t = max_t.max(e.t);
        }
        let sql: Vec<String> = events.iter().map(Event::sql).collect();
        pg.batch_execute(&format!("INSERT INTO ev VALUES {}", sql.join(",")))
            .await
            .unwrap();
        if !late_rows.is_empty() {
            pg.batch_execute(&format!("INSERT INTO late VALUES {}", late_rows.join(",")))
                .await
                .unwrap();
        }
        let json: Vec<String> = events.iter().map(Event::json).collect();
        produce(
            &producer,
            &topic,
            json.iter().map(|j| Record::new(j.as_bytes())).collect(),
        )
        .await;
        c.batch_execute("FLUSH").await.unwrap();
        compare(&c, pg, seed, round, max_t.map(|m| m - DELAY), &late).await;
        // The sources' watermark is the simulated one.
        let w = rows(
            &c,
            "SELECT source, watermark FROM streamlake.source_partitions ORDER BY source",
        )
        .await;
        let want = text(max_t.unwrap() - DELAY, true);
        assert_eq!(
            w.iter().map(|r| canon_time(&r[1])).collect::<Vec<_>>(),
            vec![want.clone(), want],
            "seed {seed}, round {round}: source watermarks {w:?}"
        );
    }
    eprintln!("kafka_windows: seed {seed}: late arrivals per view {late_counts:?}");
    assert!(
        late_counts.values().sum::<usize>() > 0,
        "seed {seed}: no late event at all; the generator should make some"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windowed_views_over_kafka_equal_the_oracle_given_the_watermark_rule() {
    let seeds: Vec<u64> = match std::env::var("STREAMLAKE_WINDOW_SEEDS") {
        Ok(s) => s.split(',').map(|x| x.trim().parse().unwrap()).collect(),
        Err(_) => vec![1, 2, 3],
    };
    let broker = Broker::start();
    let oracle = Postgres::start();
    let pg = oracle.client().await;
    pg.batch_execute("SET TimeZone = 'UTC'").await.unwrap();
    for seed in seeds {
        run_seed(&broker, &pg, seed).await;
    }
}

/// Every snapshot of `tables` as pyiceberg sees it
/// (tests/python/iceberg_operations.py).
fn iceberg_operations(server: &Server, tables: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec![server.catalog_db().to_str().unwrap().to_string()];
    args.extend(tables.iter().map(|t| format!("public.{t}")));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    crate::support::run_python("iceberg_operations.py", &args, &[])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// An EMIT ON WINDOW CLOSE view is append-only, and so is its Iceberg
/// table: every snapshot an append without delete files, across rounds
/// that close windows, update open ones and bring late events; its rows
/// equal SELECT. The same windows without EOWC (rows that change) are the
/// control: their table does get deletes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_iceberg_table_of_an_eowc_view_gets_appends_only() {
    let broker = Broker::start();
    broker.create_topic("eowc_iceberg", 1).await;
    let server = Server::start_with(ServerOptions {
        flags: vec![("barrier_interval".into(), "1h".into())],
        ..ServerOptions::default()
    });
    let c = server.client().await;
    c.batch_execute(&format!(
        "CREATE SOURCE ev (id BIGINT, k VARCHAR, v BIGINT, ts TIMESTAMP, \
         WATERMARK FOR ts AS ts - INTERVAL '10 seconds') \
         WITH (connector = 'kafka', topic = 'eowc_iceberg', \
         properties.bootstrap.server = '{}', watermark.idle_timeout = '1h') \
         FORMAT PLAIN ENCODE JSON",
        broker.bootstrap()
    ))
    .await
    .unwrap();
    let body = "SELECT k, window_start, window_end, count(*) AS n, sum(v) AS total, max(v) AS hi \
                FROM TUMBLE(ev, ts, INTERVAL '1 minute') GROUP BY k, window_start, window_end";
    c.batch_execute(&format!(
        "CREATE MATERIALIZED VIEW closed_1m AS {body} EMIT ON WINDOW CLOSE"
    ))
    .await
    .unwrap();
    c.batch_execute(&format!("CREATE MATERIALIZED VIEW live_1m AS {body}"))
        .await
        .unwrap();
    let producer = broker.producer();
    let mut rng = Rng(0x5EED_1CEB);
    let mut next_id = 0;
    for round in 1..=6 {
        let events = round_events(&mut rng, round, &mut next_id);
        let json: Vec<String> = events.iter().map(Event::json).collect();
        produce(
            &producer,
            "eowc_iceberg",
            json.iter().map(|j| Record::new(j.as_bytes())).collect(),
        )
        .await;
        c.batch_execute("FLUSH").await.unwrap();
    }
    let late = rows(
        &c,
        "SELECT count(*) FROM streamlake.late_events WHERE view = 'closed_1m'",
    )
    .await;
    assert_ne!(late[0][0], "0", "the rounds should bring late events");
    let tables = iceberg_operations(&server, &["closed_1m", "live_1m"]);
    let (closed, live) = (&tables[0], &tables[1]);
    let snapshots = closed["snapshots"].as_array().unwrap();
    assert!(
        snapshots.len() >= 3,
        "closed_1m: one snapshot per FLUSH that closed windows: {closed}"
    );
    for s in snapshots {
        assert_eq!(s["operation"], "append", "closed_1m: {s}");
        assert_eq!(s["delete_files"], 0, "closed_1m: {s}");
        assert!(
            s["added_delete_files"].is_null() || s["added_delete_files"] == "0",
            "closed_1m: {s}"
        );
    }
    assert!(
        live["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["operation"] != "append" || s["delete_files"] != 0),
        "live_1m's rows change, its table should have deletes: {live}"
    );
    for (name, table) in [("closed_1m", closed), ("live_1m", live)] {
        let want = crate::python::pgwire_rows(&c, &format!("SELECT * FROM {name}")).await;
        let got: Vec<Vec<Option<String>>> = serde_json::from_value(table["rows"].clone()).unwrap();
        assert!(!want.is_empty(), "{name} is empty");
        assert_eq!(got, want, "pyiceberg disagrees with SELECT on {name}");
    }
}

/// The server's resident set size (VmRSS), in kB.
fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Waits until the server has counted at least `n` bids; returns the
/// count reached.
async fn bids_at_least(c: &Client, n: u64) -> u64 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        c.batch_execute("FLUSH").await.unwrap();
        let got: u64 = rows(c, "SELECT n FROM bid_count").await[0][0]
            .parse()
            .unwrap();
        if got >= n {
            return got;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {got} of {n} bids after 60 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Memory stays flat through Nexmark bids into TUMBLE and HOP windows
/// with EMIT ON WINDOW CLOSE (per-window distinct sets of the event times,
/// ~100,000 values a window, released when the window closes; the same
/// set over all bids, checked by hand, grows the RSS past the margin): the server's RSS after 2N events is within a
/// margin of its RSS after N (the short CI version of issue 10's 10M/50M
/// measurement).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_flat_through_eowc_windows_over_nexmark() {
    const N: u64 = 600_000;
    let server = Server::start();
    let c = server.client().await;
    c.batch_execute(
        "CREATE SOURCE bid (auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, \
         url VARCHAR, date_time TIMESTAMP, extra VARCHAR, \
         WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND) \
         WITH (connector = 'nexmark', nexmark.table.type = 'Bid', \
         nexmark.min.event.gap.in.ns = '10000')",
    )
    .await
    .unwrap();
    c.batch_execute(
        "CREATE MATERIALIZED VIEW bid_10s AS \
         SELECT window_start, window_end, count(*) AS n, max(price) AS top, \
                count(DISTINCT auction) AS auctions, count(DISTINCT date_time) AS times \
         FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND) \
         GROUP BY window_start, window_end EMIT ON WINDOW CLOSE",
    )
    .await
    .unwrap();
    c.batch_execute(
        "CREATE MATERIALIZED VIEW bid_hop AS \
         SELECT window_start, count(*) AS n, count(DISTINCT date_time) AS times \
         FROM HOP(bid, date_time, INTERVAL '2' SECOND, INTERVAL '10' SECOND) \
         GROUP BY window_start EMIT ON WINDOW CLOSE",
    )
    .await
    .unwrap();
    c.batch_execute("CREATE MATERIALIZED VIEW bid_count AS SELECT count(*) AS n FROM bid")
        .await
        .unwrap();
    let pid = server.pid().unwrap();
    let started = std::time::Instant::now();
    // Warm-up: allocator arenas and the first windows.
    bids_at_least(&c, N / 2).await;
    let at_n = bids_at_least(&c, N).await;
    let rss_n = rss_kb(pid);
    let at_2n = bids_at_least(&c, 2 * N).await;
    let rss_2n = rss_kb(pid);
    let windows: u64 = rows(&c, "SELECT count(*) FROM bid_10s").await[0][0]
        .parse()
        .unwrap();
    eprintln!(
        "memory: {at_n} bids: {rss_n} kB; {at_2n} bids: {rss_2n} kB; {windows} closed 10 s windows; {:?}",
        started.elapsed()
    );
    assert!(windows >= 2, "windows should close as the bids go by");
    // Every closed window's count is final and adds up with what is open.
    let closed: u64 = rows(&c, "SELECT sum(n) FROM bid_10s").await[0][0]
        .parse()
        .unwrap();
    assert!(closed <= at_2n && closed > 0);
    assert!(
        rss_2n <= rss_n + rss_n / 20 + 8 * 1024,
        "RSS grew from {rss_n} kB after {at_n} bids to {rss_2n} kB after {at_2n}"
    );
}

/// Late events of a view that reads the source directly name the record
/// they came from (SQL.md §5: partition and offset are NULL only when the
/// view does not read the source directly).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "product bug: streamlake.late_events.partition and \"offset\" are always NULL (src/stream/late_events.rs to_batch appends nulls; the window operators never see the record's partition/offset)"]
async fn late_events_name_the_partition_and_offset_of_their_record() {
    let broker = Broker::start();
    broker.create_topic("late_where", 2).await;
    let server = Server::start();
    let c = server.client().await;
    c.batch_execute(&format!(
        "CREATE SOURCE ev (id BIGINT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '1 second') \
         WITH (connector = 'kafka', topic = 'late_where', \
         properties.bootstrap.server = '{}', watermark.idle_timeout = '1h') \
         FORMAT PLAIN ENCODE JSON",
        broker.bootstrap()
    ))
    .await
    .unwrap();
    c.batch_execute(
        "CREATE MATERIALIZED VIEW w AS SELECT window_start, count(*) AS n \
         FROM TUMBLE(ev, ts, INTERVAL '10 seconds') GROUP BY window_start",
    )
    .await
    .unwrap();
    let producer = broker.producer();
    for (p, json) in [
        (0, r#"{"id":1,"ts":"2026-01-01 00:00:30"}"#),
        (1, r#"{"id":2,"ts":"2026-01-01 00:00:40"}"#),
    ] {
        let mut r = Record::new(json.as_bytes());
        r.partition = Some(p);
        produce(&producer, "late_where", vec![r]).await;
    }
    c.batch_execute("FLUSH").await.unwrap();
    // Partition 1, offset 1: late for [00:00:00, 00:00:10).
    let mut r = Record::new(br#"{"id":3,"ts":"2026-01-01 00:00:05"}"#);
    r.partition = Some(1);
    produce(&producer, "late_where", vec![r]).await;
    c.batch_execute("FLUSH").await.unwrap();
    assert_eq!(
        rows(
            &c,
            "SELECT source, partition, \"offset\" FROM streamlake.late_events"
        )
        .await,
        vec![vec!["ev".to_string(), "1".to_string(), "1".to_string()]]
    );
}

/// `EMIT ON WINDOW CLOSE` belongs to the statement it ends, also in a
/// query string of several statements (psql -c, batch_execute, scripts).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emit_on_window_close_in_a_multi_statement_query() {
    let server = Server::start();
    let c = server.client().await;
    c.batch_execute(
        "CREATE SOURCE ev (k VARCHAR, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '5 seconds') \
         WITH (connector = 'datagen', datagen.rows.per.second = '1')",
    )
    .await
    .unwrap();
    let body = "SELECT window_start, count(*) AS n FROM TUMBLE(ev, ts, INTERVAL '1 minute') \
                GROUP BY window_start";
    c.batch_execute(&format!(
        "CREATE MATERIALIZED VIEW b AS {body}; CREATE MATERIALIZED VIEW a AS {body} EMIT ON WINDOW CLOSE"
    ))
    .await
    .unwrap();
    c.batch_execute(&format!(
        "CREATE MATERIALIZED VIEW d AS {body} EMIT ON WINDOW CLOSE; CREATE MATERIALIZED VIEW e AS {body}"
    ))
    .await
    .unwrap();
    let eowc = rows(
        &c,
        "SELECT matviewname, definition LIKE '%EMIT ON WINDOW CLOSE' FROM pg_matviews ORDER BY 1",
    )
    .await;
    let want: Vec<Vec<String>> = [("a", "t"), ("b", "f"), ("d", "t"), ("e", "f")]
        .iter()
        .map(|(n, e)| vec![n.to_string(), e.to_string()])
        .collect();
    assert_eq!(eowc, want);
}
