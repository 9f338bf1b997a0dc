//! Source watermarks against a real broker (tansu): `WATERMARK FOR` and
//! `watermark.idle_timeout` checked at CREATE over both protocols, each
//! partition's watermark in `streamlake.source_partitions` (largest event
//! time minus the delay), idle partitions, and a quiet source whose
//! watermark moves with the wall clock.

use std::time::{Duration, Instant};

use crate::broker::{Broker, Record, produce};
use crate::support::{Server, rows, sqlstate};

fn source(name: &str, topic: &str, broker: &Broker, watermark: &str, extra: &str) -> String {
    format!(
        "CREATE SOURCE {name} (id BIGINT, ts TIMESTAMPTZ, lts TIMESTAMP, n INT{watermark})
         INCLUDE partition AS p
         WITH (connector = 'kafka', topic = '{topic}',
               properties.bootstrap.server = '{}'{extra})
         FORMAT PLAIN ENCODE JSON",
        broker.bootstrap()
    )
}

/// The SQLSTATE of a statement run over the extended protocol.
async fn sqlstate_extended(client: &tokio_postgres::Client, sql: &str) -> String {
    match client.execute(sql, &[]).await {
        Ok(_) => panic!("{sql}: expected an error"),
        Err(e) => e
            .as_db_error()
            .map(|d| d.code().code().to_string())
            .unwrap_or_else(|| panic!("{sql}: not a db error: {e}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watermark_ddl_is_checked_at_create_over_both_protocols() {
    let broker = Broker::start();
    broker.create_topic("t", 1).await;
    let server = Server::start();
    let client = server.client().await;
    let cases: Vec<(String, &str)> =
        vec![
        (
            source("s", "t", &broker, ", WATERMARK FOR nope AS nope", ""),
            "42703",
        ),
        (
            source("s", "t", &broker, ", WATERMARK FOR n AS n", ""),
            "42804",
        ),
        (
            source(
                "s",
                "t",
                &broker,
                ", WATERMARK FOR ts AS ts - INTERVAL '1 month'",
                "",
            ),
            "0A000",
        ),
        (
            source(
                "s",
                "t",
                &broker,
                ", WATERMARK FOR ts AS ts + INTERVAL '1 second'",
                "",
            ),
            "0A000",
        ),
        (
            source(
                "s",
                "t",
                &broker,
                ", WATERMARK FOR ts AS lts - INTERVAL '1 second'",
                "",
            ),
            "0A000",
        ),
        (
            source("s", "t", &broker, ", WATERMARK FOR ts AS now()", ""),
            "0A000",
        ),
        (
            source(
                "s",
                "t",
                &broker,
                ", WATERMARK FOR ts AS ts",
                ", watermark.idle_timeout = 'soon'",
            ),
            "22023",
        ),
        // A connector table is checked the same way.
        (
            source("s", "t", &broker, ", WATERMARK FOR n AS n", "")
                .replacen("CREATE SOURCE", "CREATE TABLE", 1),
            "42804",
        ),
        // And a generator source.
        (
            "CREATE SOURCE g (id BIGINT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '1' YEAR)
             WITH (connector = 'datagen')"
                .to_string(),
            "0A000",
        ),
    ];
    for (sql, code) in &cases {
        assert_eq!(&sqlstate(&client, sql).await, code, "{sql}");
        assert_eq!(&sqlstate_extended(&client, sql).await, code, "{sql}");
    }
    // Nothing was created by the failures; good definitions are accepted
    // (every interval form, the idle timeout forms) and restored at restart.
    for (i, (wm, extra)) in [
        (", WATERMARK FOR ts AS ts", ""),
        (
            ", WATERMARK FOR ts AS ts - INTERVAL '5 minutes'",
            ", watermark.idle_timeout = '500ms'",
        ),
        (
            ", WATERMARK FOR lts AS lts - INTERVAL '2' SECOND",
            ", watermark.idle_timeout = '2 minutes'",
        ),
    ]
    .iter()
    .enumerate()
    {
        client
            .batch_execute(&source(&format!("ok{i}"), "t", &broker, wm, extra))
            .await
            .unwrap();
    }
    client
        .execute(
            source(
                "ok_ext",
                "t",
                &broker,
                ", WATERMARK FOR ts AS ts - INTERVAL '1 day'",
                ", watermark.idle_timeout = '30s'",
            )
            .as_str(),
            &[],
        )
        .await
        .unwrap();
    client
        .batch_execute(
            "CREATE SOURCE gen (id BIGINT, ts TIMESTAMPTZ, WATERMARK FOR ts AS ts - INTERVAL '10 seconds')
             WITH (connector = 'datagen', fields.id.kind = 'sequence', fields.id.end = '10',
                   watermark.idle_timeout = '1s')",
        )
        .await
        .unwrap();
    drop(client);
    let mut server = server;
    server.stop();
    server.restart();
    let client = server.client().await;
    let listed = rows(&client, "SHOW SOURCES").await;
    for name in ["ok0", "ok1", "ok2", "ok_ext", "gen"] {
        assert!(listed.iter().any(|r| r[0] == name), "{name}: {listed:?}");
    }
    assert!(
        !listed.iter().any(|r| r[0] == "s" || r[0] == "g"),
        "{listed:?}"
    );
}

/// 2026-01-01T00:00:00Z in µs.
const BASE_US: i64 = 1_767_225_600_000_000;

fn event(id: i64, minute: i64, second: i64) -> String {
    format!(r#"{{"id": {id}, "ts": "2026-01-01 00:{minute:02}:{second:02}+00", "n": 1}}"#)
}

/// (partition, watermark in µs since the epoch or None, state) of a source.
async fn partitions(
    client: &tokio_postgres::Client,
    source: &str,
) -> Vec<(i32, Option<i64>, String)> {
    rows(
        client,
        &format!(
            "SELECT partition, CAST(date_part('epoch', watermark) * 1000000 AS BIGINT), state
             FROM streamlake.source_partitions WHERE source = '{source}' ORDER BY partition"
        ),
    )
    .await
    .into_iter()
    .map(|r| {
        (
            r[0].parse().unwrap(),
            (r[1] != "NULL").then(|| r[1].parse().unwrap()),
            r[2].clone(),
        )
    })
    .collect()
}

async fn wait_for<F: Fn(&[(i32, Option<i64>, String)]) -> bool>(
    client: &tokio_postgres::Client,
    source: &str,
    what: &str,
    ok: F,
) -> Vec<(i32, Option<i64>, String)> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let p = partitions(client, source).await;
        if ok(&p) {
            return p;
        }
        assert!(Instant::now() < deadline, "{what}: {p:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_watermarks_idle_partitions_and_a_quiet_source() {
    let broker = Broker::start();
    broker.create_topic("ev", 3).await;
    broker.create_topic("quiet", 2).await;
    let server = Server::start();
    let client = server.client().await;
    // Default idle timeout (30 s): partitions with data stay "reading".
    client
        .batch_execute(&source(
            "ev",
            "ev",
            &broker,
            ", WATERMARK FOR ts AS ts - INTERVAL '5 minutes'",
            "",
        ))
        .await
        .unwrap();
    client
        .batch_execute(&format!(
            "{};
             CREATE MATERIALIZED VIEW ev_n AS SELECT p, count(*) AS n FROM ev GROUP BY p",
            source(
                "ct",
                "ev",
                &broker,
                ", WATERMARK FOR ts AS ts - INTERVAL '1 minute'",
                "",
            )
            .replacen("CREATE SOURCE", "CREATE TABLE", 1)
        ))
        .await
        .unwrap();
    let producer = broker.producer();
    // Partition 0: out of order, max 00:12:30; partition 1: max 00:20:00
    // and a NULL time (ignored); partition 2: nothing.
    let p0 = [event(1, 10, 0), event(2, 12, 30), event(3, 11, 0)];
    let p1 = [
        event(4, 20, 0),
        r#"{"id": 5, "ts": null, "n": 1}"#.to_string(),
        event(6, 3, 0),
    ];
    let mut records = Vec::new();
    for e in &p0 {
        let mut r = Record::new(e.as_bytes());
        r.partition = Some(0);
        records.push(r);
    }
    for e in &p1 {
        let mut r = Record::new(e.as_bytes());
        r.partition = Some(1);
        records.push(r);
    }
    produce(&producer, "ev", records).await;
    client.batch_execute("FLUSH").await.unwrap();
    assert_eq!(
        rows(&client, "SELECT p, n FROM ev_n ORDER BY p").await,
        vec![vec!["0", "3"], vec!["1", "3"]]
    );
    let min = 60_000_000i64;
    let expect = [
        Some(BASE_US + 12 * min + 30_000_000 - 5 * min),
        Some(BASE_US + 20 * min - 5 * min),
        None,
    ];
    // Partition 2 never had data: idle once the reader knows it is caught
    // up (its high watermark comes with the fetches).
    let p = wait_for(&client, "ev", "partition 2 idle", |p| {
        p.len() == 3 && p[2].2 == "idle"
    })
    .await;
    for (i, (part, wm, state)) in p.iter().enumerate() {
        assert_eq!(*part, i as i32);
        assert_eq!(*wm, expect[i], "partition {i}: {p:?}");
        if i < 2 {
            assert_eq!(state, "reading", "{p:?}");
        }
    }
    // The connector table reads the same topic with its own delay.
    let p = wait_for(&client, "ct", "connector table", |p| {
        p.len() == 3 && p[1].1.is_some()
    })
    .await;
    assert_eq!(p[0].1, Some(BASE_US + 12 * min + 30_000_000 - min), "{p:?}");
    assert_eq!(p[1].1, Some(BASE_US + 20 * min - min), "{p:?}");

    // A quiet source: idle after 1 s, then its watermark moves with the
    // wall clock.
    client
        .batch_execute(&format!(
            "{};
             CREATE MATERIALIZED VIEW quiet_n AS SELECT count(*) AS n FROM quiet",
            source(
                "quiet",
                "quiet",
                &broker,
                ", WATERMARK FOR ts AS ts - INTERVAL '10 seconds'",
                ", watermark.idle_timeout = '1s'",
            )
        ))
        .await
        .unwrap();
    let e = event(1, 30, 0);
    let mut r = Record::new(e.as_bytes());
    r.partition = Some(1);
    produce(&producer, "quiet", vec![r]).await;
    client.batch_execute("FLUSH").await.unwrap();
    assert_eq!(
        rows(&client, "SELECT n FROM quiet_n").await,
        vec![vec!["1"]]
    );
    let own = BASE_US + 30 * min - 10_000_000;
    let first = wait_for(&client, "quiet", "quiet source idle", |p| {
        p.len() == 2 && p.iter().all(|x| x.2 == "idle")
    })
    .await;
    let w1 = first[1].1.unwrap();
    // Idle after 1 s without records: already advanced by at least that.
    assert!(w1 >= own + 1_000_000, "{first:?}");
    assert_eq!(first[0].1, None, "no data, no watermark: {first:?}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let second = partitions(&client, "quiet").await;
    let w2 = second[1].1.unwrap();
    assert!(
        w2 - w1 >= 1_900_000 && w2 - w1 < 10_000_000,
        "advanced by {} µs: {first:?} {second:?}",
        w2 - w1
    );
    // New records end the quiet: the partition's own watermark, from its
    // new largest event time (plus at most a few seconds of a new quiet
    // spell, far below the minute the event time moved).
    let e = event(2, 31, 0);
    let mut r = Record::new(e.as_bytes());
    r.partition = Some(1);
    produce(&producer, "quiet", vec![r]).await;
    client.batch_execute("FLUSH").await.unwrap();
    wait_for(&client, "quiet", "records end the quiet", |p| {
        p.len() == 2
            && p[1]
                .1
                .is_some_and(|w| w >= own + min && w < own + min + 10_000_000)
    })
    .await;
}
