//! Kafka sources and connector tables against a real broker process
//! (tansu): every column type and metadata column, malformed records
//! interleaved with good ones, views over a source, dead letters,
//! source_partitions, startup modes, DDL errors over both protocols, and a
//! connector table that is exactly-once across kill -9.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::broker::{Broker, Record, produce};
use crate::support::{Rng, Server, rows, sqlstate};

fn source_sql(name: &str, kind: &str, topic: &str, broker: &Broker, extra: &str) -> String {
    format!(
        "CREATE {kind} {name} (
            id BIGINT, account VARCHAR, amount NUMERIC(18,4), price DOUBLE PRECISION,
            qty INT, ok BOOLEAN, day DATE, ts TIMESTAMPTZ, lts TIMESTAMP, doc JSONB)
         INCLUDE partition AS p INCLUDE offset AS o INCLUDE timestamp AS kts
         INCLUDE key AS k INCLUDE header 'trace' AS trace
         WITH (connector = 'kafka', topic = '{topic}',
               properties.bootstrap.server = '{}'{extra})
         FORMAT PLAIN ENCODE JSON",
        broker.bootstrap()
    )
}

/// A good record: (json, account, id, amount in 1e-4 units).
fn good(i: i64, rng: &mut Rng) -> (String, String, i64, i128) {
    let account = format!("acct-{}", rng.below(5));
    let id = match i % 7 {
        0 => i64::MAX - i,
        1 => i64::MIN + i,
        // Beyond f64's exact integers.
        2 => 9_007_199_254_740_993 + i,
        _ => i,
    };
    let units: i128 = (rng.below(2_000_000) as i128 - 1_000_000) * 37;
    let amount = format!(
        "{}{}.{:04}",
        if units < 0 { "-" } else { "" },
        units.abs() / 10_000,
        units.abs() % 10_000
    );
    // Some amounts as JSON strings, as the contract allows.
    let amount_json = if i % 3 == 0 {
        format!("\"{amount}\"")
    } else {
        amount.clone()
    };
    let json = format!(
        r#"{{"id": {id}, "account": "{account}", "amount": {amount_json}, "price": {}, "qty": {}, "ok": {}, "day": "2026-0{}-1{}", "ts": "2026-11-2{}T10:{:02}:{:02}.123456+02:00", "lts": "2026-11-22 10:00:0{}", "doc": {{"n": {i}, "tags": ["a", "b"], "nested": {{"k": "v{i}"}}}}, "unknown": [1,2]}}"#,
        (i as f64) * 0.5 - 3.25,
        if i % 11 == 0 {
            "null".to_string()
        } else {
            ((i % 1000) as i32 - 500).to_string()
        },
        if i % 2 == 0 { "true" } else { "false" },
        1 + i % 9,
        i % 10,
        i % 8,
        i % 60,
        (i * 7) % 60,
        i % 10,
    );
    (json, account, id, units)
}

const BAD: &[&str] = &[
    "",
    "   ",
    "not json",
    "[1,2,3]",
    "42",
    r#"{"id": 1.5, "account": "x"}"#,
    r#"{"id": 99999999999999999999, "account": "x"}"#,
    r#"{"qty": 3000000000, "account": "x"}"#,
    r#"{"id": 1}{"id": 2}"#,
    r#"{"id": 1, "ts": "yesterday"}"#,
    r#"{"id": 1, "amount": 12345678901234567.5}"#,
    r#"{"id": 1, "account": {"nested": true}}"#,
    "{\"id\": 1, \"account\": \"\u{0}\"",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_source_feeds_views_and_bad_records_become_dead_letters() {
    let broker = Broker::start();
    broker.create_topic("trades", 3).await;
    let server = Server::start();
    let client = server.client().await;
    // No headers on these records: tansu 0.6 never answers a fetch from
    // the start of a backlog whose records carry headers (reproduced: a
    // fresh consumer at offset 0 got no record in 30 s, with or without
    // headers it reads the same topic at once). Headers are tested on
    // records read as they arrive (csv_and_jsonb_sources…).
    client
        .batch_execute(&source_sql("trades", "SOURCE", "trades", &broker, ""))
        .await
        .unwrap();
    client
        .batch_execute(
            "CREATE MATERIALIZED VIEW by_account AS
             SELECT account, count(*) AS n, sum(amount) AS total, sum(id) AS ids,
                    count(qty) AS qtys, max(day) AS last_day
             FROM trades GROUP BY account;
             CREATE MATERIALIZED VIEW ratio AS
             SELECT account, count(*) AS n, sum(1000 / qty) AS r FROM trades GROUP BY account",
        )
        .await
        .unwrap();

    let mut rng = Rng(7);
    let mut zero_qty = 0;
    let producer = broker.producer();
    let mut payloads: Vec<(Vec<u8>, Option<String>)> = Vec::new();
    let mut expected: BTreeMap<String, (i64, i128, i128, i64)> = BTreeMap::new();
    let (mut good_n, mut bad_n) = (0, 0);
    for i in 0..20_000i64 {
        if i % 2 == 1 {
            let mut b = BAD[(i as usize / 2) % BAD.len()].as_bytes().to_vec();
            if i % 1001 == 1 {
                b = vec![b'{', b'"', b'a', 0xff, 0xfe, b'"', b':', b'1', b'}'];
            }
            payloads.push((b, None));
            bad_n += 1;
        } else {
            let (json, account, id, units) = good(i, &mut rng);
            let e = expected.entry(account.clone()).or_default();
            e.0 += 1;
            e.1 += units;
            e.2 += id as i128;
            if i % 11 != 0 {
                e.3 += 1;
                if (i % 1000) - 500 == 0 {
                    zero_qty += 1;
                }
            }
            payloads.push((json.into_bytes(), Some(account)));
            good_n += 1;
        }
    }
    let records: Vec<Record> = payloads
        .iter()
        .map(|(p, key)| Record {
            key: key.as_deref().map(str::as_bytes),
            ..Record::new(p)
        })
        .collect();
    produce(&producer, "trades", records).await;
    let t = Instant::now();
    client.batch_execute("FLUSH").await.unwrap();
    eprintln!("FLUSH after 20,000 records took {:?}", t.elapsed());

    let got = rows(
        &client,
        "SELECT account, n, total, ids, qtys FROM by_account ORDER BY account",
    )
    .await;
    let want: Vec<Vec<String>> = expected
        .iter()
        .map(|(a, (n, units, ids, qtys))| {
            let sign = if *units < 0 { "-" } else { "" };
            vec![
                a.clone(),
                n.to_string(),
                format!("{sign}{}.{:04}", units.abs() / 10_000, units.abs() % 10_000),
                ids.to_string(),
                qtys.to_string(),
            ]
        })
        .collect();
    assert_eq!(got, want);
    assert_eq!(good_n, 10_000);

    // Every bad record is a dead letter, once, with where it came from.
    let dl = rows(
        &client,
        "SELECT count(*), count(DISTINCT (partition, \"offset\")), min(error), \
         count(*) FILTER (WHERE payload IS NULL) FROM streamlake.dead_letters WHERE source = 'trades' AND view IS NULL",
    )
    .await;
    assert_eq!(dl[0][0], bad_n.to_string(), "{dl:?}");
    assert_eq!(dl[0][1], bad_n.to_string());

    // A view over a source leaves the events it cannot evaluate out and
    // records them with its name; it never fails for them.
    let ratio = rows(&client, "SELECT sum(n) FROM ratio").await;
    assert_eq!(ratio[0][0], (10_000 - zero_qty).to_string());
    let dl = rows(
        &client,
        "SELECT count(*), min(error), bool_and(payload IS NOT NULL) FROM streamlake.dead_letters WHERE view = 'ratio'",
    )
    .await;
    assert!(zero_qty > 0);
    assert_eq!(dl[0][0], zero_qty.to_string(), "{dl:?}");
    assert!(dl[0][1].to_lowercase().contains("by zero"), "{dl:?}");

    // Metadata columns, a bounded read of the source, and a view created
    // later (it backfills from the start offsets).
    let meta = rows(
        &client,
        "SELECT count(*), count(DISTINCT p), min(o) >= 0, bool_and(trace IS NULL), \
         bool_and(kts IS NOT NULL), count(DISTINCT k) FROM trades",
    )
    .await;
    assert_eq!(meta[0], vec!["10000", "3", "t", "t", "t", "5"]);
    client
        .batch_execute(
            "CREATE MATERIALIZED VIEW late AS SELECT account, count(*) AS n FROM trades GROUP BY account",
        )
        .await
        .unwrap();
    let late = rows(&client, "SELECT sum(n) FROM late").await;
    assert_eq!(late[0][0], "10000");

    let parts = rows(
        &client,
        "SELECT partition, lag, state FROM streamlake.source_partitions WHERE source = 'trades' ORDER BY partition",
    )
    .await;
    assert_eq!(parts.len(), 3, "{parts:?}");
    for p in &parts {
        assert_eq!(p[1], "0", "{parts:?}");
    }
    let listed = rows(&client, "SHOW SOURCES").await;
    assert!(listed.iter().any(|r| r[0] == "trades"), "{listed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_source_ddl_fails_fast_with_clear_errors() {
    let broker = Broker::start();
    broker.create_topic("t", 1).await;
    let server = Server::start();
    let client = server.client().await;
    // Nothing listens there.
    let dead = crate::support::free_port();
    let t = Instant::now();
    let e = client
        .batch_execute(&format!(
            "CREATE SOURCE s (a INT) WITH (connector='kafka', topic='t', properties.bootstrap.server='127.0.0.1:{dead}') FORMAT PLAIN ENCODE JSON"
        ))
        .await
        .unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
    let db = e.as_db_error().unwrap();
    assert_eq!(db.code().code(), "08001", "{db:?}");

    let e = client
        .batch_execute(&format!(
            "CREATE SOURCE s (a INT) WITH (connector='kafka', topic='nope', properties.bootstrap.server='{}') FORMAT PLAIN ENCODE JSON",
            broker.bootstrap()
        ))
        .await
        .unwrap_err();
    assert!(e.as_db_error().unwrap().message().contains("nope"), "{e:?}");

    let e = client
        .batch_execute(&format!(
            "CREATE SOURCE s (a INT) WITH (connector='kafka', topic='t', properties.bootstrap.server='{}', scan.startup.mod='earliest') FORMAT PLAIN ENCODE JSON",
            broker.bootstrap()
        ))
        .await
        .unwrap_err();
    let msg = e.as_db_error().unwrap().message().to_string();
    assert!(
        msg.contains("scan.startup.mode") && msg.contains("topic"),
        "{msg}"
    );

    // The name stays free after failures; a connector table refuses DML
    // and PRIMARY KEY.
    client
        .batch_execute(&format!(
            "CREATE TABLE ct (a INT) WITH (connector='kafka', topic='t', properties.bootstrap.server='{}') FORMAT PLAIN ENCODE JSON",
            broker.bootstrap()
        ))
        .await
        .unwrap();
    assert_eq!(
        sqlstate(&client, "INSERT INTO ct VALUES (1)").await,
        "0A000"
    );
    assert_eq!(sqlstate(&client, "DELETE FROM ct").await, "0A000");
    assert_eq!(
        sqlstate(
            &client,
            &format!(
                "CREATE TABLE ct2 (a INT PRIMARY KEY) WITH (connector='kafka', topic='t', properties.bootstrap.server='{}') FORMAT PLAIN ENCODE JSON",
                broker.bootstrap()
            )
        )
        .await,
        "0A000"
    );
    assert_eq!(sqlstate(&client, "DROP SOURCE nothing").await, "42704");
    client
        .batch_execute("DROP SOURCE IF EXISTS nothing")
        .await
        .unwrap();

    // The same DDL over the extended protocol.
    let sql = format!(
        "CREATE SOURCE ext (a INT) WITH (connector='kafka', topic='t', properties.bootstrap.server='{}') FORMAT PLAIN ENCODE CSV (without_header = 'true')",
        broker.bootstrap()
    );
    client.execute(sql.as_str(), &[]).await.unwrap();
    let shown = client.query("SHOW CREATE SOURCE ext", &[]).await.unwrap();
    assert!(shown[0].get::<_, String>(1).contains("ENCODE CSV"));
    client.execute("DROP SOURCE ext", &[]).await.unwrap();
    assert_eq!(sqlstate(&client, "SELECT * FROM ext").await, "42P01");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_modes_resolve_to_offsets_at_create() {
    let broker = Broker::start();
    broker.create_topic("m", 2).await;
    let producer = broker.producer();
    let old: Vec<String> = (0..10).map(|i| format!(r#"{{"a": {i}}}"#)).collect();
    produce(
        &producer,
        "m",
        old.iter()
            .enumerate()
            .map(|(i, p)| Record {
                partition: Some((i % 2) as i32),
                timestamp_ms: Some(1_700_000_000_000 + i as i64 * 1000),
                ..Record::new(p.as_bytes())
            })
            .collect(),
    )
    .await;
    let server = Server::start();
    let client = server.client().await;
    let mk = |name: &str, extra: &str| {
        format!(
            "CREATE SOURCE {name} (a INT) WITH (connector='kafka', topic='m', properties.bootstrap.server='{}'{extra}) FORMAT PLAIN ENCODE JSON",
            broker.bootstrap()
        )
    };
    client.batch_execute(&mk("e", "")).await.unwrap();
    client
        .batch_execute(&mk("l", ", scan.startup.mode='latest'"))
        .await
        .unwrap();
    // Records 6..9 are at or after this time.
    client
        .batch_execute(&mk(
            "ts",
            ", scan.startup.mode='timestamp', scan.startup.timestamp.millis='1700000006000'",
        ))
        .await
        .unwrap();
    for v in ["e", "l", "ts"] {
        client
            .batch_execute(&format!(
                "CREATE MATERIALIZED VIEW v_{v} AS SELECT count(*) AS n, sum(a) AS s FROM {v}"
            ))
            .await
            .unwrap();
    }
    let new: Vec<String> = (10..13).map(|i| format!(r#"{{"a": {i}}}"#)).collect();
    produce(
        &producer,
        "m",
        new.iter().map(|p| Record::new(p.as_bytes())).collect(),
    )
    .await;
    client.batch_execute("FLUSH").await.unwrap();
    assert_eq!(
        rows(&client, "SELECT n, s FROM v_e").await,
        vec![vec!["13", "78"]]
    );
    assert_eq!(
        rows(&client, "SELECT n, s FROM v_l").await,
        vec![vec!["3", "33"]]
    );
    assert_eq!(
        rows(&client, "SELECT n, s FROM v_ts").await,
        vec![vec!["7", "63"]]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connector_table_is_exactly_once_across_kill_9() {
    let broker = Broker::start();
    broker.create_topic("events", 3).await;
    let mut server = Server::start_with(crate::support::ServerOptions {
        env: vec![("STREAMLAKE_CHECKPOINT_INTERVAL".into(), "300ms".into())],
        ..Default::default()
    });
    {
        let client = server.client().await;
        client
            .batch_execute(&format!(
                "CREATE TABLE raw (id BIGINT, v INT) INCLUDE partition AS p INCLUDE offset AS o
                 WITH (connector='kafka', topic='events', properties.bootstrap.server='{}')
                 FORMAT PLAIN ENCODE JSON",
                broker.bootstrap()
            ))
            .await
            .unwrap();
    }
    const N: i64 = 6000;
    let bootstrap = broker.bootstrap();
    let producing = tokio::spawn(async move {
        let producer: rdkafka::producer::FutureProducer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("linger.ms", "5")
            .create()
            .unwrap();
        for chunk in 0..(N / 200) {
            let payloads: Vec<String> = (chunk * 200..(chunk + 1) * 200)
                .map(|i| {
                    if i % 97 == 0 {
                        "garbage".to_string()
                    } else {
                        format!(r#"{{"id": {i}, "v": {}}}"#, i % 13)
                    }
                })
                .collect();
            let keys: Vec<String> = (chunk * 200..(chunk + 1) * 200)
                .map(|i| i.to_string())
                .collect();
            produce(
                &producer,
                "events",
                payloads
                    .iter()
                    .zip(&keys)
                    .map(|(p, k)| Record {
                        key: Some(k.as_bytes()),
                        ..Record::new(p.as_bytes())
                    })
                    .collect(),
            )
            .await;
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    });
    let mut rng = Rng(11);
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(300 + rng.below(900))).await;
        server.kill9();
        server.restart();
    }
    producing.await.unwrap();
    let client = server.client().await;
    client.batch_execute("FLUSH").await.unwrap();
    let bad = (0..N).filter(|i| i % 97 == 0).count() as i64;
    let got = rows(
        &client,
        "SELECT count(*), count(DISTINCT id), sum(id), count(DISTINCT (p, o)) FROM raw",
    )
    .await;
    let sum: i64 = (0..N).filter(|i| i % 97 != 0).sum();
    let good = N - bad;
    assert_eq!(
        got[0],
        vec![
            good.to_string(),
            good.to_string(),
            sum.to_string(),
            good.to_string()
        ]
    );
    let dl = rows(
        &client,
        "SELECT count(*), count(DISTINCT (partition, \"offset\")) FROM streamlake.dead_letters WHERE source = 'raw'",
    )
    .await;
    assert_eq!(dl[0], vec![bad.to_string(), bad.to_string()]);
    // The committed offsets are the topic's end.
    let parts = rows(
        &client,
        "SELECT sum(committed_offset), sum(high_watermark) FROM streamlake.source_partitions WHERE source = 'raw'",
    )
    .await;
    assert_eq!(parts[0][0], N.to_string(), "{parts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_and_jsonb_sources_and_drop_source_cascade_during_ingest() {
    let broker = Broker::start();
    broker.create_topic("csv", 2).await;
    broker.create_topic("docs", 1).await;
    let server = Server::start();
    let client = server.client().await;
    client
        .batch_execute(&format!(
            "CREATE SOURCE c (id INT, name VARCHAR, amount NUMERIC(10,2), day DATE) \
             WITH (connector='kafka', topic='csv', properties.bootstrap.server='{0}') \
             FORMAT PLAIN ENCODE CSV (delimiter = ';');
             CREATE SOURCE d (doc JSONB) INCLUDE header 'trace' AS trace INCLUDE header AS hs \
             WITH (connector='kafka', topic='docs', properties.bootstrap.server='{0}') \
             FORMAT PLAIN ENCODE JSON;
             CREATE MATERIALIZED VIEW hv AS SELECT count(*) FILTER (WHERE trace = CAST('t-1' AS BYTEA)) AS traced, \
                count(*) FILTER (WHERE (hs ->> 'trace') = 't-1' AND (hs ->> 'other') = 'x') AS both_headers FROM d;
             CREATE MATERIALIZED VIEW cv AS SELECT count(*) AS n, sum(amount) AS s, count(name) AS names FROM c;
             CREATE MATERIALIZED VIEW dv AS SELECT doc ->> 'kind' AS kind, count(*) AS n, \
                sum(CAST(doc #>> '{{v,x}}' AS BIGINT)) AS x, max(doc -> 'v') AS v FROM d GROUP BY doc ->> 'kind'",
            broker.bootstrap()
        ))
        .await
        .unwrap();
    let producer = broker.producer();
    let csv = [
        "id;name;amount;day", // a header: skipped
        "1;alice;10.50;2026-01-02",
        "2;\"semi;colon\";-3.25;2026-01-03\n",
        "3;;0.01;2026-01-04\r\n", // empty name is NULL
        "4;\"\";1;2026-01-05",    // quoted empty string is ''
        "5;too;many;fields;here", // dead letter
        "x;bad;1;2026-01-01",     // dead letter
    ];
    produce(
        &producer,
        "csv",
        csv.iter().map(|p| Record::new(p.as_bytes())).collect(),
    )
    .await;
    let docs = [
        r#"{"doc": {"kind": "a", "v": {"x": 5}}}"#,
        r#"{"doc": {"kind": "a", "v": {"x": 7}, "extra": [1, 2]}}"#,
        r#"{"doc": {"kind": "b"}}"#,
        r#"{"doc": null}"#,
    ];
    produce(
        &producer,
        "docs",
        docs.iter()
            .map(|p| Record {
                headers: &[("trace", b"t-1"), ("other", b"x")],
                ..Record::new(p.as_bytes())
            })
            .collect(),
    )
    .await;
    client.batch_execute("FLUSH").await.unwrap();
    assert_eq!(
        rows(&client, "SELECT n, s, names FROM cv").await,
        vec![vec!["4", "8.26", "3"]]
    );
    assert_eq!(
        rows(
            &client,
            "SELECT kind, n, x, v FROM dv ORDER BY kind NULLS LAST"
        )
        .await,
        vec![
            vec!["a", "2", "12", "{\"x\":7}"],
            vec!["b", "1", "NULL", "NULL"],
            vec!["NULL", "1", "NULL", "NULL"]
        ]
    );
    assert_eq!(
        rows(
            &client,
            "SELECT count(*) FROM streamlake.dead_letters WHERE source = 'c'"
        )
        .await[0][0],
        "2"
    );
    assert_eq!(
        rows(&client, "SELECT traced, both_headers FROM hv").await,
        vec![vec!["4", "4"]]
    );

    // DROP SOURCE … CASCADE while records keep arriving and FLUSH runs.
    let bootstrap = broker.bootstrap();
    let producing = tokio::spawn(async move {
        let producer: rdkafka::producer::FutureProducer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .create()
            .unwrap();
        for i in 0..20 {
            let lines: Vec<String> = (0..100)
                .map(|k| format!("{};n;1;2026-01-01", i * 100 + k))
                .collect();
            produce(
                &producer,
                "csv",
                lines.iter().map(|l| Record::new(l.as_bytes())).collect(),
            )
            .await;
        }
    });
    let flusher = {
        let c2 = server.client().await;
        tokio::spawn(async move {
            for _ in 0..5 {
                let _ = c2.batch_execute("FLUSH").await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sqlstate(&client, "DROP SOURCE c").await, "2BP01");
    client.batch_execute("DROP SOURCE c CASCADE").await.unwrap();
    assert_eq!(sqlstate(&client, "SELECT * FROM cv").await, "42P01");
    producing.await.unwrap();
    flusher.await.unwrap();
    client.batch_execute("FLUSH").await.unwrap();
    // The name is free again, and the new source reads the topic afresh.
    client
        .batch_execute(&format!(
            "CREATE SOURCE c (id INT, name VARCHAR, amount NUMERIC(10,2), day DATE) \
             WITH (connector='kafka', topic='csv', properties.bootstrap.server='{}') \
             FORMAT PLAIN ENCODE CSV (delimiter = ';');
             CREATE MATERIALIZED VIEW cv AS SELECT count(*) AS n FROM c",
            broker.bootstrap()
        ))
        .await
        .unwrap();
    client.batch_execute("FLUSH").await.unwrap();
    assert_eq!(rows(&client, "SELECT n FROM cv").await, vec![vec!["2004"]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_while_producing_loses_and_repeats_nothing() {
    let mut broker = Broker::start();
    broker.create_topic("r", 3).await;
    let server = Server::start();
    let client = server.client().await;
    client
        .batch_execute(&format!(
            "CREATE SOURCE r (id BIGINT) WITH (connector='kafka', topic='r', properties.bootstrap.server='{0}') FORMAT PLAIN ENCODE JSON;
             CREATE TABLE rt (id BIGINT) WITH (connector='kafka', topic='r', properties.bootstrap.server='{0}') FORMAT PLAIN ENCODE JSON;
             CREATE MATERIALIZED VIEW rv AS SELECT count(*) AS n, count(DISTINCT id) AS d, sum(id) AS s FROM r",
            broker.bootstrap()
        ))
        .await
        .unwrap();
    let producer = broker.producer();
    let batch = |from: i64| -> Vec<String> {
        (from..from + 500)
            .map(|i| format!(r#"{{"id": {i}}}"#))
            .collect()
    };
    let first = batch(0);
    produce(
        &producer,
        "r",
        first.iter().map(|p| Record::new(p.as_bytes())).collect(),
    )
    .await;
    broker.stop();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let waiting = rows(
        &client,
        "SELECT DISTINCT state FROM streamlake.source_partitions WHERE source = 'r'",
    )
    .await;
    // FLUSH cannot learn the high watermarks: it honours statement_timeout.
    client
        .batch_execute("SET statement_timeout = '1500ms'")
        .await
        .unwrap();
    let t = Instant::now();
    assert_eq!(sqlstate(&client, "FLUSH").await, "57014");
    assert!(t.elapsed() < Duration::from_secs(10));
    client
        .batch_execute("SET statement_timeout = 0")
        .await
        .unwrap();
    // … and a cancel request.
    let token = client.cancel_token();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(700)).await;
        token.cancel_query(tokio_postgres::NoTls).await.unwrap();
    });
    assert_eq!(sqlstate(&client, "FLUSH").await, "57014");
    canceller.await.unwrap();
    broker.restart();
    let second = batch(500);
    produce(
        &producer,
        "r",
        second.iter().map(|p| Record::new(p.as_bytes())).collect(),
    )
    .await;
    client.batch_execute("FLUSH").await.unwrap();
    assert_eq!(
        rows(&client, "SELECT n, d, s FROM rv").await,
        vec![vec!["1000", "1000", "499500"]],
        "states while the broker was down: {waiting:?}"
    );
    assert_eq!(
        rows(&client, "SELECT count(*), count(DISTINCT id) FROM rt").await,
        vec![vec!["1000", "1000"]]
    );
}

/// Neither tansu 0.6 nor librdkafka's mock cluster can add partitions to a
/// topic (CreatePartitions is unsupported), so the test makes the reader
/// meet partitions it did not know at start another way: the source's
/// stored start offsets are cut down to partition 0 while the server is
/// stopped; after the restart the reader finds partitions 1 and 2 through
/// its metadata refresh, as it would find added ones, and must read them
/// from their earliest offset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_unknown_at_start_are_found_and_read_from_their_start() {
    let broker = Broker::start();
    broker.create_topic("grow", 3).await;
    assert!(
        broker.add_partitions("grow", 4).await.is_err(),
        "tansu grows topics now: test adding a partition for real"
    );
    let mut server = Server::start();
    let client = server.client().await;
    client
        .batch_execute(&format!(
            "CREATE SOURCE g (id BIGINT) INCLUDE partition AS p WITH (connector='kafka', topic='grow', properties.bootstrap.server='{}') FORMAT PLAIN ENCODE JSON;
             CREATE MATERIALIZED VIEW gv AS SELECT p, count(*) AS n FROM g GROUP BY p",
            broker.bootstrap()
        ))
        .await
        .unwrap();
    drop(client);
    server.stop();
    let status = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); \
             c.execute(\"UPDATE streamlake_sources SET start_offsets = '{\\\"0\\\":0}' WHERE name = 'g'\"); c.commit()",
        )
        .arg(server.catalog_db())
        .status()
        .unwrap();
    assert!(status.success());
    let producer = broker.producer();
    let payloads: Vec<String> = (0..30).map(|i| format!(r#"{{"id": {i}}}"#)).collect();
    produce(
        &producer,
        "grow",
        payloads
            .iter()
            .enumerate()
            .map(|(i, p)| Record {
                partition: Some((i % 3) as i32),
                ..Record::new(p.as_bytes())
            })
            .collect(),
    )
    .await;
    server.restart();
    let client = server.client().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        client.batch_execute("FLUSH").await.unwrap();
        let got = rows(&client, "SELECT p, n FROM gv ORDER BY p").await;
        if got == vec![vec!["0", "10"], vec!["1", "10"], vec!["2", "10"]] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "partitions 1 and 2 not read: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(server.log().contains("new partition"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_error_modes_dlq_topic_catalog_listing_and_group_offsets() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::{Headers, Message};
    let broker = Broker::start();
    broker.create_topic("o", 1).await;
    broker.create_topic("o_dlq", 1).await;
    let server = Server::start();
    let client = server.client().await;
    let mk = |name: &str, extra: &str| {
        format!(
            "CREATE SOURCE {name} (a INT) WITH (connector='kafka', topic='o', properties.bootstrap.server='{}'{extra}) FORMAT PLAIN ENCODE JSON;
             CREATE MATERIALIZED VIEW {name}_v AS SELECT count(*) AS n, sum(a) AS s FROM {name}",
            broker.bootstrap()
        )
    };
    client
        .batch_execute(&mk("s_skip", ", on_error = 'skip'"))
        .await
        .unwrap();
    client
        .batch_execute(&mk("s_fail", ", on_error = 'fail'"))
        .await
        .unwrap();
    client
        .batch_execute(&mk("s_dlq", ", dlq.topic = 'o_dlq'"))
        .await
        .unwrap();
    let payloads = [
        "{\"a\": 1}",
        "{\"a\": 2}",
        "oops",
        "{\"a\": 4}",
        "[]",
        "{\"a\": 8}",
    ];
    produce(
        &broker.producer(),
        "o",
        payloads.iter().map(|p| Record::new(p.as_bytes())).collect(),
    )
    .await;
    client.batch_execute("FLUSH").await.unwrap();
    assert_eq!(
        rows(&client, "SELECT n, s FROM s_skip_v").await,
        vec![vec!["4", "15"]]
    );
    assert_eq!(
        rows(&client, "SELECT n, s FROM s_dlq_v").await,
        vec![vec!["4", "15"]]
    );
    // 'fail' stops at the first bad record, keeping what came before it.
    assert_eq!(
        rows(&client, "SELECT n, s FROM s_fail_v").await,
        vec![vec!["2", "3"]]
    );
    let state = rows(
        &client,
        "SELECT state, last_error LIKE '%offset 2%' FROM streamlake.source_partitions WHERE source = 's_fail'",
    )
    .await;
    assert_eq!(state, vec![vec!["error", "t"]]);
    let dl = rows(
        &client,
        "SELECT source, count(*) FROM streamlake.dead_letters GROUP BY source ORDER BY source",
    )
    .await;
    assert_eq!(dl, vec![vec!["s_dlq", "2"]], "skip and fail record nothing");

    // The DLQ topic got the bad records, with headers saying why.
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", "test-dlq")
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset("o_dlq", 0, rdkafka::Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < 2 && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let headers: Vec<String> = m
                .headers()
                .map(|h| h.iter().map(|x| x.key.to_string()).collect())
                .unwrap_or_default();
            got.push((m.payload().map(|p| p.to_vec()), headers));
        }
    }
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].0.as_deref(), Some(&b"oops"[..]));
    assert!(
        got[0].1.contains(&"streamlake.error".to_string()),
        "{got:?}"
    );

    // Sources are relations clients can list and describe.
    let listed = rows(
        &client,
        "SELECT relname FROM pg_catalog.pg_class WHERE relname IN ('s_skip', 's_dlq') ORDER BY relname",
    )
    .await;
    assert_eq!(listed, vec![vec!["s_dlq"], vec!["s_skip"]]);
    let described = rows(&client, "DESCRIBE s_skip").await;
    assert_eq!(described[0][0], "a", "{described:?}");

    // Consumer-group offsets for Kafka's lag tools, after a checkpoint.
    let group: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", "streamlake-s_skip")
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition("o", 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        client.batch_execute("FLUSH").await.unwrap();
        let committed = group
            .committed_offsets(tpl.clone(), Duration::from_secs(5))
            .unwrap();
        let o = committed.find_partition("o", 0).unwrap().offset();
        if o == rdkafka::Offset::Offset(6) {
            break;
        }
        assert!(Instant::now() < deadline, "group offset {o:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_playground_streams_trades_into_its_views() {
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let port = crate::support::free_port();
    let log = std::fs::File::create(dir.path().join("playground.log")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_streamlake"))
        .current_dir(dir.path())
        .args(["playground", "--listen", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let result = async {
        let deadline = Instant::now() + Duration::from_secs(60);
        let client = loop {
            if let Ok((c, conn)) = tokio_postgres::connect(
                &format!("host=127.0.0.1 port={port} dbname=dev user=tester"),
                tokio_postgres::NoTls,
            )
            .await
            {
                tokio::spawn(conn);
                break c;
            }
            assert!(Instant::now() < deadline, "playground did not start");
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        // Trades arrive about 20 a second; malformed ones about 1 in 50.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            client.batch_execute("FLUSH").await.unwrap();
            let v = rows(
                &client,
                "SELECT coalesce(sum(trades), 0) FROM volume_by_symbol",
            )
            .await;
            let dl = rows(&client, "SELECT count(*) FROM streamlake.dead_letters").await;
            let usd = rows(&client, "SELECT count(*) FROM trades_usd").await;
            if v[0][0].parse::<i64>().unwrap() > 20
                && dl[0][0] != "0"
                && usd[0][0].parse::<i64>().unwrap() > 0
            {
                break;
            }
            assert!(Instant::now() < deadline, "no trades: {v:?} {dl:?} {usd:?}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        // Deduplicated: one row per trade id in the silver view.
        let dup = rows(
            &client,
            "SELECT count(*) - count(DISTINCT trade_id) FROM trades_clean",
        )
        .await;
        assert_eq!(dup[0][0], "0");
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
    result
}
