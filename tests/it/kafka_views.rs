//! The differential suite fed through Kafka: the same random events are
//! produced to a topic (read by a source on a real tansu broker) and
//! inserted into the PostgreSQL oracle — with exact duplicates,
//! out-of-order times, NULLs, integers beyond float precision and
//! malformed records (Kafka only: they must become dead letters, not rows).
//! After each FLUSH every view equals its query on the oracle and as a
//! batch query in streamlake; a restart (views rebuild from the source's
//! start offsets) must give the same again.

use tokio_postgres::Client;

use crate::broker::{Broker, Record, produce};
use crate::oracle::Postgres;
use crate::support::{Rng, Server, rows};
use crate::views::{VIEWS, diff, normalized, pg_query};

const EXTRA_VIEWS: &[(&str, &str)] = &[(
    "v_big",
    "SELECT grp, count(big) AS n, sum(big) AS s, min(big) AS lo, max(big) AS hi FROM items GROUP BY grp",
)];

/// One event as (SQL tuple, JSON record).
fn event(rng: &mut Rng, id: i64) -> (String, String) {
    let grp = ["a", "b", "c", "d"][rng.below(4) as usize];
    let cat = rng.below(4);
    let amount = match rng.below(10) {
        0 => None,
        _ => Some(rng.below(200) as i64 - 20),
    };
    let price = match rng.below(8) {
        0 => None,
        _ => Some(format!("{}.{}", rng.below(100), rng.below(4) * 25)),
    };
    let note = match rng.below(5) {
        0 => None,
        k => Some(format!("n{k}")),
    };
    // Out of order: times are random, not increasing.
    let ts = match rng.below(9) {
        0 => None,
        _ => Some(format!(
            "2024-01-01 {:02}:{:02}:{:02}",
            rng.below(2),
            rng.below(60),
            rng.below(4) * 15
        )),
    };
    let big = match rng.below(6) {
        0 => None,
        1 => Some(i64::MAX - rng.below(1000) as i64),
        2 => Some(i64::MIN + rng.below(1000) as i64),
        _ => Some(9_007_199_254_740_993 + rng.below(1_000_000) as i64),
    };
    let sql_opt = |v: Option<String>, quote: bool| match v {
        None => "NULL".to_string(),
        Some(v) if quote => format!("'{v}'"),
        Some(v) => v,
    };
    let json_opt = |v: Option<String>, quote: bool| match v {
        None => "null".to_string(),
        Some(v) if quote => format!("\"{v}\""),
        Some(v) => v,
    };
    let amount_s = amount.map(|a| a.to_string());
    let big_s = big.map(|b| b.to_string());
    let sql = format!(
        "({id}, '{grp}', {cat}, {}, {}, {}, {}, {})",
        sql_opt(amount_s.clone(), false),
        sql_opt(price.clone(), false),
        sql_opt(note.clone(), true),
        sql_opt(ts.clone(), true),
        sql_opt(big_s.clone(), false),
    );
    // Missing keys are NULL too: leave some out instead of writing null.
    let note_json = if note.is_none() && id % 2 == 0 {
        String::new()
    } else {
        format!(", \"note\": {}", json_opt(note, true))
    };
    let json = format!(
        "{{\"id\": {id}, \"grp\": \"{grp}\", \"cat\": {cat}, \"amount\": {}, \"price\": {}{note_json}, \"ts\": {}, \"big\": {}}}",
        json_opt(amount_s, false),
        json_opt(price, false),
        json_opt(ts, true),
        json_opt(big_s, false),
    );
    (sql, json)
}

const MALFORMED: &[&str] = &[
    "{\"id\": 1.5}",
    "{\"id\": 1, \"cat\": 99999999999}",
    "[1]",
    "",
    "{\"id\": 1, \"ts\": \"noon\"}",
    "{\"id\": 1}{\"id\": 2}",
];

async fn compare(c: &Client, pg: &Client, seed: u64, step: usize) {
    c.batch_execute("FLUSH").await.unwrap();
    for (name, query) in VIEWS.iter().chain(EXTRA_VIEWS) {
        let view = normalized(rows(c, &format!("SELECT * FROM {name}")).await);
        let oracle = normalized(rows(pg, pg_query(name, query)).await);
        diff(seed, step, name, "PostgreSQL", &view, &oracle);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_over_a_kafka_source_equal_their_queries_on_postgres() {
    let seed = 5u64;
    let broker = Broker::start();
    broker.create_topic("items", 3).await;
    let oracle = Postgres::start();
    let pg = oracle.client().await;
    let mut server = Server::start();
    let c = server.client().await;
    for sql in [
        "CREATE TABLE groups_ref (grp TEXT PRIMARY KEY, label TEXT, weight INT);
         INSERT INTO groups_ref VALUES ('a', 'alpha', 2), ('b', 'beta', 3), ('e', 'epsilon', 1)",
        "CREATE TABLE cats_ref (cat INT PRIMARY KEY, cname TEXT);
         INSERT INTO cats_ref VALUES (0, 'zero'), (1, 'one'), (3, 'three')",
    ] {
        c.batch_execute(sql).await.unwrap();
        pg.batch_execute(sql).await.unwrap();
    }
    pg.batch_execute(
        "CREATE TABLE items (id BIGINT, grp TEXT, cat INT, amount BIGINT, \
         price DOUBLE PRECISION, note TEXT, ts TIMESTAMP, big BIGINT)",
    )
    .await
    .unwrap();
    c.batch_execute(&format!(
        "CREATE SOURCE items (id BIGINT, grp TEXT, cat INT, amount BIGINT, \
         price DOUBLE PRECISION, note TEXT, ts TIMESTAMP, big BIGINT) \
         WITH (connector = 'kafka', topic = 'items', properties.bootstrap.server = '{}') \
         FORMAT PLAIN ENCODE JSON",
        broker.bootstrap()
    ))
    .await
    .unwrap();

    let producer = broker.producer();
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut next_id = 0i64;
    let mut bad = 0;
    let mut round = |rng: &mut Rng, n: usize| {
        let mut sql = Vec::new();
        let mut json = Vec::new();
        for _ in 0..n {
            if rng.below(20) == 0 {
                json.push(MALFORMED[rng.below(MALFORMED.len() as u64) as usize].to_string());
                bad += 1;
                continue;
            }
            next_id += 1;
            let (s, j) = event(rng, next_id);
            // Exact duplicates: the same record delivered twice.
            if rng.below(10) == 0 {
                sql.push(s.clone());
                json.push(j.clone());
            }
            sql.push(s);
            json.push(j);
        }
        (sql, json)
    };
    // Events before the views exist are backfilled from the start offsets.
    let (sql, json) = round(&mut rng, 40);
    pg.batch_execute(&format!("INSERT INTO items VALUES {}", sql.join(",")))
        .await
        .unwrap();
    produce(
        &producer,
        "items",
        json.iter().map(|j| Record::new(j.as_bytes())).collect(),
    )
    .await;
    for (name, query) in VIEWS.iter().chain(EXTRA_VIEWS) {
        c.batch_execute(&format!("CREATE MATERIALIZED VIEW {name} AS {query}"))
            .await
            .unwrap_or_else(|e| panic!("create {name}: {e:?}"));
        // Views over views read the oracle's views of the same name.
        pg.batch_execute(&format!("CREATE VIEW {name} AS {}", pg_query(name, query)))
            .await
            .unwrap_or_else(|e| panic!("postgres: create {name}: {e}"));
    }
    compare(&c, &pg, seed, 0).await;
    for step in 1..=4 {
        let (sql, json) = round(&mut rng, 150);
        if !sql.is_empty() {
            pg.batch_execute(&format!("INSERT INTO items VALUES {}", sql.join(",")))
                .await
                .unwrap();
        }
        produce(
            &producer,
            "items",
            json.iter().map(|j| Record::new(j.as_bytes())).collect(),
        )
        .await;
        compare(&c, &pg, seed, step).await;
    }
    let dead = rows(
        &c,
        "SELECT count(*) FROM streamlake.dead_letters WHERE source = 'items'",
    )
    .await;
    assert_eq!(dead[0][0], bad.to_string());
    // A restart: views over the source rebuild from its start offsets.
    drop(c);
    server.stop();
    server.restart();
    let c = server.client().await;
    compare(&c, &pg, seed, 99).await;
    let dead = rows(
        &c,
        "SELECT count(*) FROM streamlake.dead_letters WHERE source = 'items'",
    )
    .await;
    assert_eq!(
        dead[0][0],
        bad.to_string(),
        "dead letters recorded twice after a restart"
    );
}
